"""Open and check every input of an audit before the store is touched."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from reconcile.errors import BadInput
from reconcile.sources.register import RegisterData, RegisterMapping, load_register, load_register_mapping
from reconcile.sources.system import SystemData, check_staff_file, load_csv_profile, load_mapping_profile, load_staff
from reconcile.store import mask_url
from reconcile.util.progress import QUIET, Progress
from reconcile.workflow.catalog import Catalog, WorkflowVersion, load_catalog
from reconcile.workflow.state import StallRule


@dataclass(frozen=True, slots=True)
class AuditInputs:
    register: tuple[str, ...]
    system: str
    workflows: str | None  # optional with the activiti profile (the engine holds the catalog)
    as_of: date
    mapping: str | None = None
    register_mapping: str | None = None
    date_tolerance_days: int = 0
    paper_only_units: tuple[str, ...] = ()
    profile: str | None = None  # mapping, csv or activiti; None: a URL is mapping, a folder csv
    sidecars: str | None = None  # activiti: working days per process key and version
    tenant: str | None = None  # activiti: read one tenant (district) of a shared engine
    schema: str | None = None  # activiti: the database schema holding the engine's tables
    staff: str | None = None  # the staff directory, instead of the system's (accounts.csv or a mapping's account:)
    stall: StallRule = StallRule()
    period: tuple[date, date] | None = None  # the statistics' reporting period (default: the half-year)


PROFILES = ("mapping", "csv", "activiti")


def check_profile(system: str, mapping: str | None, profile: str | None = None, sidecars: str | None = None,
                  tenant: str | None = None, schema: str | None = None) -> None:
    """The system options fit together (before any input is read)."""
    if profile is not None and profile not in PROFILES:
        raise BadInput(f"--profile {profile}: expected one of {', '.join(PROFILES)}.")
    if sidecars and profile != "activiti":
        raise BadInput("--sidecars is for --profile activiti (working days of the engine's process versions).")
    for option, value in (("--tenant", tenant), ("--schema", schema)):
        if value is not None and profile != "activiti":
            raise BadInput(f"{option} is for --profile activiti (the engine's tenants and database schema).")
        if value is not None and not value.strip():
            raise BadInput(f"{option}: an empty value. Hint: leave the option out.")
    if profile == "activiti":
        if "://" not in system:
            raise BadInput(f"--system {mask_url(system)}: the activiti profile reads the engine's database. "
                           "Hint: --system URL, e.g. postgresql://user@host/activiti or sqlite:///activiti.db.")
        if mapping:
            raise BadInput("--mapping is for the mapping profile; the activiti profile knows the engine's tables.")
    if profile == "csv" and "://" in system:
        raise BadInput(f"--profile csv reads an export folder, not the URL {mask_url(system)}.")
    if profile == "mapping" and "://" not in system:
        raise BadInput(f"--profile mapping reads a database URL; {mask_url(system)} is a folder (--profile csv).")


def load_system(system: str, mapping: str | None, profile: str | None = None, sidecars: str | None = None,
                tenant: str | None = None, schema: str | None = None, staff: str | None = None
                ) -> tuple[SystemData, Catalog | None]:
    """The system source, and with the activiti profile the catalog deployed in the engine; `staff`
    replaces the system's staff directory. A system with no staff at all is said once, in its warnings."""
    check_profile(system, mapping, profile, sidecars, tenant, schema)
    deployed = None
    if profile == "activiti":
        from reconcile.sources.activiti import load_activiti_profile

        data, deployed = load_activiti_profile(system, sidecars, tenant=tenant, schema=schema)
    else:
        data = _load_system(system, mapping)
    if staff is not None:
        data.accounts = load_staff(staff, system)
        data.where["account"] = staff
    if data.accounts.num_rows == 0:
        data.warnings.append(f"{data.where.get('account', 'accounts')}: no staff accounts, so assignee_inactive and "
                             "unit_without_staff are not checked. Hint: --staff FILE gives the staff directory (an "
                             "accounts.csv file: account, unit, active; or a YAML file with a mapping's account: "
                             "block, read from the --system database).")
    return data, deployed


def _load_system(system: str, mapping: str | None) -> SystemData:
    if "://" in system:
        if not mapping:
            raise BadInput(f"--system {mask_url(system)}: a database URL needs --mapping FILE "
                           "(which tables and columns hold dossiers, tasks and accounts).")
        return load_mapping_profile(system, mapping)
    if mapping:
        shown = mask_url(system)
        if Path(system).is_file():
            raise BadInput(f"--system {shown}: a file path where --mapping needs a database URL. Hint: a SQLite file "
                           f"is --system sqlite:///{shown}.")
        raise BadInput(f"--mapping is for database URLs; {shown} is a folder (csv profile).")
    return load_csv_profile(system)


def _fingerprint_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@dataclass
class Loaded:
    """Every input opened and checked as far as possible before the store is touched; the rows
    themselves are read batch by batch while they are stored."""

    register: RegisterData
    system: SystemData
    catalog: Catalog
    inputs_doc: dict[str, Any]  # "register" is filled in by record_run from `hashes`
    warnings: list[str]
    hashes: Future[list[dict[str, str]]] | None = None  # register files hashed while the run loads
    rules: Any = None  # rules.RuleSet: the migration rules beside the catalog folder (None: none there)


def load_inputs(inputs: AuditInputs, progress: Progress = QUIET) -> Loaded:
    check_profile(inputs.system, inputs.mapping, inputs.profile, inputs.sidecars, inputs.tenant, inputs.schema)
    if inputs.staff is not None:
        check_staff_file(inputs.staff)
    progress.stage("reading the catalog")
    if inputs.workflows is None and inputs.profile != "activiti":
        raise BadInput("audit: missing --workflows. Hint: the catalog folder; only --profile activiti reads it "
                       "from the engine.")
    files = load_catalog(inputs.workflows) if inputs.workflows is not None else None
    reg_mapping = load_register_mapping(inputs.register_mapping) if inputs.register_mapping else RegisterMapping()
    progress.stage("opening the register")
    register = load_register(inputs.register, reg_mapping)
    progress.stage("opening the system")
    system, deployed = load_system(inputs.system, inputs.mapping, inputs.profile, inputs.sidecars, inputs.tenant,
                                   inputs.schema, inputs.staff)
    catalog = _merge_catalogs(deployed, files)
    rules = _load_rules(inputs.workflows, catalog)
    options = {"mapping": inputs.mapping, "sidecars": inputs.sidecars, "tenant": inputs.tenant,
               "schema": inputs.schema, "staff": inputs.staff}
    inputs_doc = {
        "system": {"profile": system.profile, "source": system.source, **{k: v for k, v in options.items() if v}},
        "workflows": {"dir": inputs.workflows, "versions": len(catalog.versions),
                      **({"engine_versions": len(deployed.versions)} if deployed is not None else {}),
                      **({"rules": len(rules.rules)} if rules is not None else {})},
    }
    # Hashing a large register takes a while; hashlib releases the GIL, so it overlaps the load.
    pool = ThreadPoolExecutor(max_workers=1)
    hashes = pool.submit(lambda: [{"file": f, "sha256": _fingerprint_file(f)} for f in register.files])
    pool.shutdown(wait=False)  # the task runs on; record_run waits for its result
    return Loaded(register, system, catalog, inputs_doc,
                  list(catalog.warnings) + register.warnings + system.warnings, hashes, rules)


def _load_rules(directory: str | None, catalog: Catalog) -> Any:
    """The migration rules below the catalog folder, validated against the catalog (bad rules are bad
    input: nothing is stored); None when there are none."""
    from reconcile.workflow import rules

    if directory is None or not rules.rule_files(directory):
        return None
    return rules.load_rules(directory, catalog)


def _merge_catalogs(deployed: Catalog | None, files: Catalog | None) -> Catalog:
    """The engine's versions plus the catalog folder's; a version in both is an error naming both."""
    if deployed is None or files is None:
        catalog = deployed or files
        assert catalog is not None
        return catalog
    problems = [f"{v.path}: procedure '{v.procedure}' version {v.version} is also deployed in the engine "
                f"({other.path}). Hint: leave it out of --workflows, or give the engine's versions other numbers."
                for v in files.versions if (other := deployed.get(v.procedure, v.version)) is not None]
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{len(problems)} versions both in the engine and "
                       "in --workflows", problems)
    versions: list[WorkflowVersion] = sorted(deployed.versions + files.versions,
                                             key=lambda v: (v.procedure, v.version))
    return Catalog(tuple(versions), deployed.warnings + files.warnings)
