"""Command functions: plain Python behind each CLI command, returning typed results."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pyarrow as pa
import sqlalchemy as sa

from reconcile import __version__, jsonio, planfile
from reconcile.audit import AuditSettings, run_audit
from reconcile.calendar import FIRST_DAY, LAST_DAY
from reconcile.catalog import Catalog, WorkflowVersion, load_catalog
from reconcile.dberrors import disk_full
from reconcile.errors import BadInput, Refused, collect, wrote
from reconcile.faults import fault
from reconcile.model import FindingKind, MatchClass
from reconcile.normalize import compare_key, normalize_code
from reconcile.files import write_atomically
from reconcile.gctune import fewer_collections
from reconcile.plan import Plan, Resolver, Target, build_plan
from reconcile.progress import QUIET, Progress
from reconcile.serverload import load_batches
from reconcile import stats as stats_mod
from reconcile.stats import StatsSettings
from reconcile.stats_model import StatsTable
from reconcile.sources.register import RegisterData, RegisterMapping, load_register, load_register_mapping
from reconcile.sources.system import SystemData, check_staff_file, load_csv_profile, load_mapping_profile, load_staff
from reconcile.sources.workbench import (
    DOSSIER_TEXTS, REGISTER_TEXTS, SystemDigest, account_sql, check_stored_dossiers, check_stored_register, dossier_sql,
    event_sql, register_sql, with_normalised_text,
)
from reconcile.store import (
    Store, account, audit_run, batch_outcome, begin_fill, change, change_batch, dossier, filled, finding, insert_select,
    insert_stream, iter_rows, mask_url, migration_step, open_store, reconciliation, register_book, register_entry,
    step_event, store_name, text_key, wf_step, wf_transition, wf_version,
)
from reconcile.wfstate import CENSUS_KINDS, CensusRow, StallRule
from reconcile.wfstate import census as census_rows

if TYPE_CHECKING:
    from reconcile.apply import PlanFile


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


@dataclass(frozen=True, slots=True)
class RunReport:
    """One audit run as reports show it."""

    run: dict[str, Any]
    summary: dict[str, int]
    findings: list[dict[str, Any]]
    breakdown: list[dict[str, Any]] = field(default_factory=list)  # kind x field x unit counts
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "summary": self.summary, "breakdown": self.breakdown, "findings": self.findings}


def project_period(project: dict[str, Any], where: str = "reconcile.yaml") -> tuple[date, date] | None:
    """The project file's `period: {from, to}` (the statistics' reporting period), if any."""
    period = project.get("period")
    if period is None:
        return None
    if not isinstance(period, dict) or "from" not in period or "to" not in period:
        raise BadInput(f"{where}: period: expected {{from: DATE, to: DATE}}.")
    return parse_as_of(str(period["from"]), f"{where}: period.from"), parse_as_of(str(period["to"]), f"{where}: period.to")


def parse_as_of(text: str, what: str = "--as-of") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.strptime(text, "%d/%m/%Y").date()
    except ValueError:
        raise BadInput(f"{what}: {text!r} is not a date. Expected YYYY-MM-DD or dd/mm/yyyy.") from None


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


def _catalog_tables(catalog: Catalog, run_id: int) -> tuple[list[dict[str, Any]], ...]:
    versions, steps, transitions = [], [], []
    for v in catalog.versions:
        latest = catalog.latest(v.procedure)
        versions.append({"run_id": run_id, "procedure": v.procedure, "version": v.version, "name": v.name,
                         "name_key": compare_key(v.name) or "", "field": v.field, "valid_from": v.valid_from,
                         "path": v.path, "is_latest": latest is not None and latest.version == v.version})
        good = v.reachable_final()
        for s in v.steps:
            steps.append({"run_id": run_id, "procedure": v.procedure, "version": v.version, "step_id": s.id,
                          "name": s.name, "unit": s.unit, "days": float(s.days), "final": s.final,
                          "reaches_final": s.id in good, "line": s.line, "may_end": s.may_end})
            transitions += [{"run_id": run_id, "procedure": v.procedure, "version": v.version,
                             "from_step": s.id, "to_step": t} for t in s.next]
    return versions, steps, transitions


def _books(book_years: dict[str, dict[int | None, int]], declared: dict[str, tuple[date, date]]
           ) -> list[dict[str, Any]]:
    """Each book covers a period: as declared, else the calendar year most of its entries were received in."""
    out = []
    for book in sorted(book_years):
        years = {y: n for y, n in book_years[book].items() if y is not None}
        if book in declared:
            start, end = declared[book]
        elif years:
            year = max(years.items(), key=lambda kv: (kv[1], kv[0]))[0]
            start, end = date(year, 1, 1), date(year, 12, 31)
        else:
            raise BadInput(f"{book}: no entry has a received date, so the period the book covers is unknown. "
                           "Hint: declare period: {from, to} in --register-mapping.")
        out.append({"book": book, "period_from": start, "period_to": end,
                    "entries": sum(book_years[book].values())})
    return out


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
    from reconcile import rules

    if directory is None or not rules.rule_files(directory):
        return None
    return rules.load_rules(directory, catalog)


def _migration_rows(ruleset: Any, run_id: int) -> list[dict[str, Any]]:
    """migration_step rows: the steps the rules move on from (see rules.superseded_steps)."""
    from reconcile.rules import superseded_steps

    return [{"run_id": run_id, "procedure": p, "version": v, "step": s, "to_procedure": res.procedure,
             "to_version": res.version, "to_step": res.step, "rules": ",".join(res.rules),
             "needs_confirmation": res.needs_confirmation}
            for (p, v, s), res in superseded_steps(ruleset)]


def _rules_digest(ruleset: Any) -> str:
    h = hashlib.sha256()
    for path in ruleset.files:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


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


def _catalog_digest(catalog: Catalog) -> str:
    h = hashlib.sha256()
    for v in catalog.versions:
        h.update(repr((v.procedure, v.version, v.name, v.field, v.valid_from, v.steps)).encode())
    return h.hexdigest()[:16]


def record_run(store: Store, loaded: Loaded, settings: AuditSettings, progress: Progress = QUIET,
               started_at: str | None = None) -> int:
    """Read, store, check and audit one run in one transaction: all of it lands, or none. Stored rows
    are checked before the audit; a value that does not parse rolls the whole run back."""
    system = loaded.system
    with store.begin() as conn:
        run_id = store.next_run_id(conn)
        dropped = begin_fill(conn)  # a first run on PostgreSQL: indexes built after the loads
        progress.stage("storing the register")
        n_reg = _store_batches(store, conn, run_id, register_entry, register_sql, loaded.register.batches(),
                               progress.rows, texts=REGISTER_TEXTS)
        fault("audit-register", 1)
        filled(conn, dropped, register_entry)
        progress.stage("checking the register")
        reg_checks = check_stored_register(conn, run_id, settings.as_of)
        _store_text_keys(conn, run_id)
        books = _books(reg_checks.book_years, loaded.register.periods)
        loaded.warnings.extend(reg_checks.warnings)
        sys_digest = SystemDigest()
        progress.stage("storing the system", "dossiers")
        n_sys = _store_batches(store, conn, run_id, dossier, partial(dossier_sql, open_fingerprints=True),
                               system.dossier_batches(), progress.rows, sys_digest.add, DOSSIER_TEXTS)
        filled(conn, dropped, dossier)
        progress.stage("checking the system")
        check_stored_dossiers(conn, run_id, system.where.get("dossier", "dossiers"))
        fault("audit-system", 1)
        insert_select(store, conn, account, account_sql, system.accounts, run_id)
        progress.stage("storing the system's step events", "events")
        _store_batches(store, conn, run_id, step_event, event_sql, system.event_batches(), progress.rows)
        versions, steps, transitions = _catalog_tables(loaded.catalog, run_id)
        migrations = _migration_rows(loaded.rules, run_id) if loaded.rules is not None else []
        for table, rows in ((wf_version, versions), (wf_step, steps), (wf_transition, transitions),
                            (migration_step, migrations)):
            if rows:
                conn.execute(sa.insert(table), rows)
        if books:
            conn.execute(sa.insert(register_book), [{"run_id": run_id, **b} for b in books])
        filled(conn, dropped, account, step_event, text_key, wf_version, wf_step, wf_transition, migration_step,
               register_book)
        run_audit(conn, run_id, settings, progress, dropped)
        progress.stage("committing")
        # Contents, not paths: the same data audited from anywhere has the same fingerprint.
        if loaded.hashes is not None:
            loaded.inputs_doc["register"] = loaded.hashes.result()
        content = {"register": [d["sha256"] for d in loaded.inputs_doc.get("register", [])],
                   "system": sys_digest.digest(system.accounts), "catalog": _catalog_digest(loaded.catalog),
                   **({"rules": _rules_digest(loaded.rules)} if loaded.rules is not None else {})}
        fingerprint = hashlib.sha256(json.dumps([content, settings.to_dict(), __version__],
                                                sort_keys=True, default=str).encode()).hexdigest()[:16]
        conn.execute(sa.insert(audit_run).values(
            id=run_id, as_of=settings.as_of, started_at=started_at or _started_at(), tool_version=__version__,
            fingerprint=fingerprint, inputs=json.dumps(loaded.inputs_doc, ensure_ascii=False, sort_keys=True),
            settings=json.dumps(settings.to_dict(), ensure_ascii=False, sort_keys=True),
            periods=json.dumps(books, ensure_ascii=False, default=str),
            register_entries=n_reg, system_dossiers=n_sys,
        ))
        fault("audit-commit", 1)
    return run_id


def _store_batches(store: Store, conn: sa.Connection, run_id: int, table: sa.Table, select: Callable[..., str],
                   batches: Iterator[pa.Table], progress: Callable[[int], None] = lambda _: None,
                   inspect: Callable[[pa.Table], None] = lambda _: None, texts: tuple[str, ...] = ()) -> int:
    """Store every batch through a workbench SELECT; each batch is released once stored, so peak
    memory is a batch or three (server stores prepare the next one ahead), not the source. On a DuckDB store all batches are one streamed INSERT
    (store.insert_stream), the `texts` columns normalised on the Arrow side so the stream is read
    once; elsewhere each batch goes through serverload.load_batches (the same normalising SELECT, a batch
    ahead in a worker thread)."""
    def seen() -> Iterator[pa.Table]:
        n = 0
        for batch in batches:
            inspect(batch)
            n += batch.num_rows
            yield batch
            progress(n)

    try:
        if store.dialect == "duckdb":
            stream = (with_normalised_text(b, texts) for b in seen())
            return insert_stream(conn, table, (lambda raw: select(raw, texts)) if texts else select, stream, run_id)
        # Each distinct repeated name normalised once on the Arrow side here too (not by the SELECT's
        # regexes on every row), as on a DuckDB store; the next batch while the server takes this one.
        sql = (lambda raw: select(raw, texts)) if texts else select
        return load_batches(conn, table, sql, (with_normalised_text(batch, texts) for batch in seen()), run_id)
    finally:
        # Arrow's allocator keeps freed pieces for reuse; hand them back before the next source and
        # the audit queries, when DuckDB needs the memory (peak 0.98 -> 0.83 GB at 1M).
        pa.default_memory_pool().release_unused()


def _store_text_keys(conn: sa.Connection, run_id: int) -> None:
    """Comparison keys of the register's distinct procedure and agency names (see store.text_key)."""
    re_ = register_entry
    values = {v for col in (re_.c.procedure, re_.c.agency) for (v,) in conn.execute(
        sa.select(col).where(re_.c.run_id == run_id, col.is_not(None)).distinct())}
    rows = [{"run_id": run_id, "value": v, "key": compare_key(v)} for v in sorted(values)]
    if rows:
        conn.execute(sa.insert(text_key), rows)


def audit(inputs: AuditInputs, store_url: str | None = None, progress: Progress = QUIET,
          started_at: str | None = None, with_findings: bool = True) -> RunReport:
    """Open and check every input, then read, store and audit them in one transaction; the report
    of the run (without its findings when `with_findings` is false: see findings_of)."""
    if not FIRST_DAY <= inputs.as_of <= LAST_DAY:
        raise BadInput(f"--as-of: {inputs.as_of.isoformat()} is outside the dates an audit can be as of, "
                       f"{FIRST_DAY.isoformat()}..{LAST_DAY.isoformat()}. Hint: give the date the register and the "
                       "system were read (working days count Vietnam's holidays, known up to 2100).")
    started_at = started_at or _started_at()  # when the audit started, not when its long run is recorded
    loaded = load_inputs(inputs, progress)
    settings = AuditSettings(inputs.as_of, inputs.date_tolerance_days, inputs.paper_only_units, inputs.stall,
                             inputs.period)
    store = open_store(store_url)
    try:
        run_id = record_run(store, loaded, settings, progress, started_at)
    except BaseException as exc:
        store.discard_if_created()
        if isinstance(exc, Exception) and disk_full(exc):
            raise Refused(f"store {store_name(store)}: the disk it is on is full: the audit was rolled back, nothing "
                          "written. Hint: free space on that disk, or pass --store on another one.") from None
        raise
    wrote(f"audit run {run_id} to the store {store_name(store)}")
    fault("audit-committed", 1)
    progress.stage("reading the results")
    try:
        report = run_report(store, run_id, with_findings)
    finally:
        store.engine.dispose()
    return replace(report, warnings=loaded.warnings)


def findings_of(store_url: str | None, run_id: int) -> Iterator[dict[str, Any]]:
    """iter_findings of a run in the store at `store_url`."""
    store = open_store(store_url, create=False)
    try:
        yield from iter_findings(store, run_id)
    finally:
        store.engine.dispose()


def _started_at() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _resolve_run(store: Store, conn: sa.Connection, run_id: int | None) -> int:
    if run_id is None:
        latest = store.latest_run_id(conn)
        if latest is None:
            raise BadInput(f"store {mask_url(store.url)}: no audit run yet. Hint: run `reconcile audit` first.")
        return int(latest)
    exists = conn.execute(sa.select(audit_run.c.id).where(audit_run.c.id == run_id)).scalar()
    if exists is None:
        raise BadInput(f"run {run_id}: no such audit run in {mask_url(store.url)}. Hint: `reconcile history`.")
    return run_id


def iter_findings(store: Store, run_id: int) -> Iterator[dict[str, Any]]:
    """The run's findings sorted so that the same run always renders the same (kind, code, details),
    each parsed only as it is yielded: while they are sorted the rows stay the JSON text they are
    stored as (at 10M dossiers the parsed findings took 0.9 GB)."""
    order = {k.value: i for i, k in enumerate(FindingKind)}
    stmt = sa.select(finding.c.kind, finding.c.severity, finding.c.dossier_code, finding.c.details,
                     finding.c.evidence).where(finding.c.run_id == run_id)
    with store.connect() as conn:
        rows = [((order.get(kind, 99), code or "", jsonio.dumps(jsonio.loads(details), sort_keys=True)),
                 kind, severity, code, details, evidence)
                for kind, severity, code, details, evidence in iter_rows(conn, stmt)]
    rows.sort(key=lambda row: row[0])
    for _, kind, severity, code, details, evidence in rows:
        yield {"kind": kind, "severity": severity, "dossier_code": code, "details": jsonio.loads(details),
               "evidence": jsonio.loads(evidence)}


def run_report(store: Store, run_id: int | None = None, with_findings: bool = True) -> RunReport:
    """Read one run back from the store: its summary, breakdown and (unless `with_findings` is false,
    for a caller that streams them with iter_findings) its findings."""
    with store.connect() as conn:
        run_id = _resolve_run(store, conn, run_id)
        run = conn.execute(sa.select(audit_run).where(audit_run.c.id == run_id)).mappings().one()
        counts = dict(conn.execute(sa.select(finding.c.kind, sa.func.count()).where(finding.c.run_id == run_id)
                                   .group_by(finding.c.kind)).all())
        classes = dict(conn.execute(
            sa.select(reconciliation.c["class"], sa.func.count()).where(reconciliation.c.run_id == run_id)
            .group_by(reconciliation.c["class"])).all())
        paper_only = conn.execute(
            sa.select(register_entry.c.agency, sa.func.count())
            .select_from(reconciliation.join(register_entry, sa.and_(
                register_entry.c.run_id == reconciliation.c.run_id,
                register_entry.c.entry_id == reconciliation.c.entry_id)))
            .where(reconciliation.c.run_id == run_id,
                   reconciliation.c["class"] == MatchClass.PAPER_ONLY_UNIT.value)
            .group_by(register_entry.c.agency)).all()
        breakdown = _breakdown(conn, run_id)
    summary = {k.value: int(counts[k.value]) for k in FindingKind if counts.get(k.value)}
    run_doc = {
        "id": run["id"], "as_of": run["as_of"].isoformat(), "started_at": run["started_at"],
        "tool_version": run["tool_version"], "fingerprint": run["fingerprint"],
        "counts": {"register_entries": run["register_entries"], "system_dossiers": run["system_dossiers"]},
        "periods": json.loads(run["periods"]),
        "classes": {c: int(n) for c, n in sorted(classes.items())},
        "paper_only_units": {a or "": int(n) for a, n in sorted(paper_only, key=lambda x: x[0] or "")},
        "inputs": json.loads(run["inputs"]), "settings": json.loads(run["settings"]),
    }
    findings = list(iter_findings(store, run_id)) if with_findings else []
    return RunReport(run_doc, summary, findings, breakdown)


def _breakdown(conn: sa.Connection, run_id: int) -> list[dict[str, Any]]:
    """Findings per kind, statistics field and unit (the system's unit, else the register's agency)."""
    rc, d, r, f = reconciliation, dossier, register_entry, finding
    from_, by_code, by_name = join_catalog_field(
        f.outerjoin(rc, sa.and_(rc.c.run_id == f.c.run_id, rc.c.dossier_code == f.c.dossier_code))
        .outerjoin(d, sa.and_(d.c.run_id == f.c.run_id, d.c.source_row == rc.c.source_row))
        .outerjoin(r, sa.and_(r.c.run_id == f.c.run_id, r.c.entry_id == rc.c.entry_id)), run_id, d, r)
    field_ = sa.func.coalesce(by_code, by_name, "")
    unit = sa.func.coalesce(d.c.unit, r.c.agency, "")
    stmt = (sa.select(f.c.kind, field_.label("field"), unit.label("unit"), sa.func.count().label("n"))
            .select_from(from_).where(f.c.run_id == run_id).group_by(f.c.kind, field_, unit))
    rows = [{"kind": k, "field": fl, "unit": u, "count": int(n)} for k, fl, u, n in conn.execute(stmt)]
    return sorted(rows, key=lambda x: (x["kind"], x["field"], x["unit"]))


def join_catalog_field(from_: Any, run_id: int, d: Any, r: Any) -> tuple[Any, Any, Any]:
    """`from_` (which holds the system row `d` and the register row `r`) joined to the catalog's field of
    the system's procedure code and of the register's procedure name: (from_, field by code, by name)."""
    v = wf_version
    by_code = (sa.select(v.c.procedure, sa.func.max(v.c.field).label("field")).where(v.c.run_id == run_id)
               .group_by(v.c.procedure).subquery("fk"))
    by_name = (sa.select(v.c.name_key, sa.func.max(v.c.field).label("field")).where(v.c.run_id == run_id)
               .group_by(v.c.name_key).subquery("fn"))
    from_ = (from_.outerjoin(by_code, by_code.c.procedure == d.c.workflow_key)
             .outerjoin(text_key, sa.and_(text_key.c.run_id == run_id, text_key.c.value == r.c.procedure))
             .outerjoin(by_name, by_name.c.name_key == text_key.c.key))
    return from_, by_code.c.field, by_name.c.field


@dataclass(frozen=True, slots=True)
class DossierView:
    code: str
    run_id: int
    register_rows: list[dict[str, Any]]
    system: list[dict[str, Any]]
    events: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    match_class: str | None
    changes: list[dict[str, Any]] = field(default_factory=list)  # what apply/undo wrote, oldest first

    def to_dict(self) -> dict[str, Any]:
        return {"dossier_code": self.code, "run": self.run_id, "class": self.match_class,
                "register": self.register_rows, "system": self.system, "events": self.events,
                "findings": self.findings, "changes": self.changes}


@dataclass(frozen=True, slots=True)
class Census:
    run_id: int
    as_of: date
    rows: list[CensusRow]
    names: dict[str, str]  # procedure -> name in its latest catalog version

    def to_dict(self) -> dict[str, Any]:
        total = {"open": sum(r.open for r in self.rows), "orphaned": sum(r.orphaned for r in self.rows),
                 "by_reason": {k.value: sum(r.by_reason[k.value] for r in self.rows) for k in CENSUS_KINDS},
                 "version_assumed": sum(r.version_assumed for r in self.rows)}
        return {"run": {"id": self.run_id, "as_of": self.as_of.isoformat()}, "total": total,
                "procedures": self.names, "rows": [r.to_dict() for r in self.rows]}


def census(store_url: str | None = None, run_id: int | None = None) -> Census:
    """Open dossiers per procedure x version x step across every version, orphans by reason."""
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = _resolve_run(store, conn, run_id)
            as_of = conn.execute(sa.select(audit_run.c.as_of).where(audit_run.c.id == run_id)).scalar_one()
            names = dict(conn.execute(sa.select(wf_version.c.procedure, wf_version.c.name)
                                      .where(wf_version.c.run_id == run_id, wf_version.c.is_latest)).all())
            return Census(run_id, as_of, census_rows(conn, run_id), names)
    finally:
        store.engine.dispose()


def plan(store_url: str | None = None, run_id: int | None = None, rules_dir: str | None = None) -> Plan:
    """The fix plan for one audit run (default: the latest), from its findings, the catalog snapshot
    and the migration rules beside the catalog the run audited (or in `rules_dir`)."""
    if rules_dir is not None and not Path(rules_dir).is_dir():  # else a typo plans silently without rules
        raise BadInput(f"--rules {rules_dir}: no such directory. Hint: give the workflow catalog folder (the one "
                       "holding <procedure>/v<N>.yaml and rules.yaml files).")
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = _resolve_run(store, conn, run_id)
            resolver = _resolver(rules_dir) if rules_dir is not None else run_resolver(conn, run_id)
            return build_plan(conn, run_id, mask_url(store.url), resolver)
    finally:
        store.engine.dispose()


@fewer_collections(paused=True)
def write_plan(result: Plan, out: str | Path | None, store_url: str | None = None) -> str:
    """The plan file's text (`result.to_yaml()`), written to `out` when given (else the caller prints
    it), and recorded in the store the plan was made from (apply.record_plan): apply then reads that
    very file from the store instead of parsing and checking it again."""
    from reconcile.apply import record_plan

    data = result.to_dict()
    text = planfile.dump(data)  # what result.to_yaml() writes, with its data kept for the record
    if out:
        write_atomically(out, text)
    store = open_store(store_url, create=False)
    try:
        record_plan(store, data, text)
    except sa.exc.DBAPIError:  # a store that takes no writes (read-only, locked): apply reads the file in full
        pass
    finally:
        store.engine.dispose()
    return text


@dataclass(frozen=True, slots=True)
class StatsRequest:
    run_id: int | None = None
    period: tuple[date, date] | None = None  # default: the half-year holding the audit date
    layout: str = "official"
    view: str = "system"
    convention: str | None = None  # default: the settings'
    settings: StatsSettings = StatsSettings()
    plan_path: str | None = None  # view after-plan: this plan file instead of the run's plan


def statistics(store_url: str | None = None, request: StatsRequest = StatsRequest()) -> StatsTable:
    """One statistics table of an audit run (default: the latest)."""
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = _resolve_run(store, conn, request.run_id)
            as_of = conn.execute(sa.select(audit_run.c.as_of).where(audit_run.c.id == run_id)).scalar_one()
            overlay = plan_overlay(conn, store, run_id, request.plan_path) if request.view == "after-plan" else []
            return stats_mod.compute(conn, run_id, as_of, period=request.period, layout=request.layout,
                                     view=request.view, settings=request.settings, convention=request.convention,
                                     overlay=overlay)
    finally:
        store.engine.dispose()


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One action of a plan, whether built now or read from a plan file."""

    dossier_code: str
    action: str
    rule: str
    confirmed: bool
    set: dict[str, Any]


def plan_actions(conn: sa.Connection, store: Store, run_id: int, plan_path: str | None) -> list[PlannedAction]:
    """The given plan file's actions (it must be made for this run), else the run's plan as `reconcile
    plan` builds it."""
    if plan_path is None:
        built = build_plan(conn, run_id, mask_url(store.url), run_resolver(conn, run_id))
        return [PlannedAction(a.dossier_code, a.action, a.rule, a.confirmed, a.set) for a in built.actions]
    loaded = load_run_plan(conn, plan_path, run_id)
    return [PlannedAction(a.dossier_code, a.action, a.rule, a.confirmed, dict(a.set)) for a in loaded.actions]


def load_run_plan(conn: sa.Connection, plan_path: str | Path, run_id: int) -> PlanFile:
    """A reviewed plan file, refused (BadInput) unless it was made for audit run `run_id` and what its
    confirmed actions set is what `apply` would accept (the run's catalog and staff directory), so that
    the statistics and tickets never show the effect of a plan apply refuses."""
    from reconcile.apply import load_plan, target_problems

    loaded = load_plan(plan_path)
    if loaded.run != run_id:
        raise BadInput(f"{plan_path}: the plan was made for audit run {loaded.run}, not run {run_id}. "
                       f"Hint: pass --run {loaded.run}, or make a plan for run {run_id} with `reconcile plan`.")
    problems = target_problems(conn, run_id, str(plan_path), loaded.actions)
    collect(problems, f"{plan_path}: {len(problems)} actions set values audit run {run_id} does not know")
    return loaded


def plan_overlay(conn: sa.Connection, store: Store, run_id: int, plan_path: str | None) -> list[stats_mod.Overlay]:
    """What the plan will write, as the statistics see it."""
    return stats_mod.overlay_of((a.dossier_code, a.action, a.confirmed, a.set)
                                for a in plan_actions(conn, store, run_id, plan_path))


def run_resolver(conn: sa.Connection, run_id: int) -> Resolver | None:
    """The migration rules the run audited with, read again from the catalog folder it recorded; an
    error (not a plan without rules) when that folder had rules and cannot be found from here."""
    inputs = json.loads(conn.execute(sa.select(audit_run.c.inputs).where(audit_run.c.id == run_id)).scalar_one())
    workflows = inputs.get("workflows") or {}
    directory = workflows.get("dir")
    if workflows.get("rules") and not (directory and Path(directory).is_dir()):
        raise BadInput(f"run {run_id}: its catalog folder {directory} (with {workflows['rules']} migration rules) "
                       "is not found from here. Hint: run from the folder the audit ran in, or pass the rules "
                       "folder (`plan --rules DIR`) or a plan file (`--plan FILE`).")
    return _resolver(directory)


def _resolver(directory: str | None) -> Resolver | None:
    """Migration rules below the catalog folder as the plan's resolver; None when there are none."""
    from reconcile import rules

    if not directory or not Path(directory).is_dir() or not rules.rule_files(directory):
        return None
    ruleset = rules.load_rules(directory, load_catalog(directory))

    def resolve(procedure: str, version: int, step: str, facts: dict[str, Any]) -> Target | None:
        paper = ("missing" if not facts["on_paper"] else "returned" if facts["paper_returned_at"] else
                 "not_returned")
        res = ruleset.resolve(procedure, version, step, rules.Facts(paper, facts["unit"], facts["received_at"]))
        if not res.moved:
            return None
        return Target(res.procedure, res.version, res.step, res.rules, not res.needs_confirmation, res.assignee)

    return resolve


def show(code: str, store_url: str | None = None, run_id: int | None = None) -> DossierView:
    norm = normalize_code(code)
    if not norm:
        raise BadInput("show: empty dossier code.")
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = _resolve_run(store, conn, run_id)

            def rows(table: sa.Table, order: Any) -> list[dict[str, Any]]:
                stmt = sa.select(table).where(table.c.run_id == run_id, table.c.dossier_code == norm).order_by(order)
                return [_plain({k: v for k, v in r.items() if k != "run_id"}) for r in conn.execute(stmt).mappings()]

            reg = rows(register_entry, register_entry.c.entry_id)
            sys_ = rows(dossier, dossier.c.source_row)
            events = rows(step_event, step_event.c.seq)
            fnd = [{"kind": f["kind"], "severity": f["severity"], "details": json.loads(f["details"]),
                    "evidence": json.loads(f["evidence"])} for f in rows(finding, finding.c.kind)]
            cls = conn.execute(sa.select(reconciliation.c["class"]).where(
                reconciliation.c.run_id == run_id, reconciliation.c.dossier_code == norm)).scalar()
            changes = dossier_changes(conn, norm)
    finally:
        store.engine.dispose()
    if not reg and not sys_:
        raise BadInput(f"show: dossier {norm} is neither on the register nor in the system of run {run_id}.")
    return DossierView(norm, run_id, reg, sys_, events, fnd, cls, changes)


def dossier_changes(conn: sa.Connection, code: str) -> list[dict[str, Any]]:
    """Every value apply and undo wrote for a dossier (any audit run), from the store's change log:
    batch, kind (apply/undo), the batch's outcome (pending while an interrupted batch is unsettled;
    rolled_back: nothing of it was written), table, column, before, after, time; oldest first. `row` says
    whether the batch inserted the row (before: None), deleted it (after: None) or updated it."""
    from reconcile.apply import ABSENT, decode_value

    c, cb, bo = change, change_batch, batch_outcome
    stmt = (sa.select(c.c.batch_id, cb.c.kind, bo.c.outcome, cb.c.run_id, cb.c.undo_of, c.c.action, c.c.rule,
                      c.c.table_name, c.c.column_name, c.c.field, c.c.before_value, c.c.after_value,
                      cb.c.started_at, cb.c.actor)
            .join(cb, cb.c.id == c.c.batch_id).outerjoin(bo, bo.c.batch_id == c.c.batch_id)
            .where(c.c.dossier_code == code).order_by(c.c.batch_id, c.c.seq))
    out = []
    for r in conn.execute(stmt).mappings():
        before, after = decode_value(r["before_value"]), decode_value(r["after_value"])
        row = "insert" if before is ABSENT else "delete" if after is ABSENT else "update"
        plain = _plain({"before": None if before is ABSENT else before, "after": None if after is ABSENT else after})
        out.append({"batch": r["batch_id"], "kind": r["kind"], "outcome": r["outcome"] or "pending",
                    "run": r["run_id"], "undo_of": r["undo_of"], "action": r["action"], "rule": r["rule"],
                    "table": r["table_name"], "row": row, "column": r["column_name"], "field": r["field"], **plain,
                    "at": r["started_at"], "actor": r["actor"]})
    return out


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in d.items()}


# The demo's run carries a fixed timestamp (the morning after the period) so that its reports are
# byte-identical each time `make demo` runs.
DEMO_STARTED_AT = "2021-07-01T08:00:00+00:00"


def demo(out: Path, progress: Progress = QUIET) -> RunReport:
    """Simulate the demo district into OUT/inputs, audit it into a fresh store (OUT/findings.json,
    OUT/census.json), fix it: plan -> apply -> audit -> undo -> audit -> apply (OUT/fixes.json), and
    write the first audit's reports (OUT/report.*) and vendor tickets (OUT/tickets/)."""
    from reconcile.project import load_project  # it imports this module
    from reconcile.simulate import simulate

    inputs_dir = out / "inputs"
    progress.stage("simulating")
    sim = simulate(inputs_dir)
    project = load_project(sim.config)
    store_path = inputs_dir / "reconcile.duckdb"  # the project file's store: `cd` there and `reconcile show`
    for leftover in (store_path, store_path.with_name(store_path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    inputs = AuditInputs(
        register=tuple(str(p) for p in sim.register_files), system=sim.system_source,
        workflows=str(sim.workflows), as_of=parse_as_of(str(project["as_of"])),
        mapping=str(sim.mapping) if sim.mapping else None,
        date_tolerance_days=int(project.get("date_tolerance_days", 0)),
        paper_only_units=tuple(project.get("paper_only_units") or ()),
        period=project_period(project),
    )
    report = audit(inputs, str(store_path), progress, started_at=DEMO_STARTED_AT)
    out.mkdir(parents=True, exist_ok=True)
    docs = {"findings.json": report.to_dict(), "census.json": census(str(store_path)).to_dict(),
            "fixes.json": _demo_fixes(inputs, store_path, inputs_dir / "plan.yaml", report, progress)}
    for name, doc in docs.items():
        (out / name).write_text(jsonio.dumps(doc, pretty=True) + "\n", encoding="utf-8")
    progress.stage("reports")
    _demo_reports(out, store_path, report.run["id"], project)
    progress.stage("tickets")
    from reconcile.tickets import tickets

    tickets(str(store_path), out / "tickets", report.run["id"])  # masked: what the vendor would receive
    return report


def _demo_reports(out: Path, store_path: Path, run_id: int, project: dict[str, Any]) -> None:
    """The full report set of the first audit (before any fix), in both languages."""
    from reconcile.report import FORMATS, ReportRequest, report as write_report

    request = ReportRequest(run_id=run_id, formats=FORMATS, langs=("vi", "en"), out=str(out),
                            settings=stats_mod.settings_from(project.get("statistics"), "reconcile.yaml"),
                            period=project_period(project), district=project.get("district"))
    write_report(str(store_path), request)


def _demo_fixes(inputs: AuditInputs, store_path: Path, plan_path: Path, before: RunReport,
                progress: Progress) -> dict[str, Any]:
    """The whole fixing loop on the demo's vendor database, with the findings before and after."""
    from reconcile.apply import apply_plan
    from reconcile.undo import undo

    store = str(store_path)
    progress.stage("plan")
    fix_plan = plan(store)
    write_plan(fix_plan, plan_path, store)
    progress.stage("apply")
    applied = apply_plan(plan_path, store, yes=True, actor="demo")
    after = audit(inputs, store, progress, started_at=DEMO_STARTED_AT)
    progress.stage("undo")
    undone = [undo(b, store, yes=True, actor="demo") for b in reversed(applied.batches)]
    restored = audit(inputs, store, progress, started_at=DEMO_STARTED_AT)
    progress.stage("apply again")
    again = apply_plan(plan_path, store, yes=True, actor="demo")
    return {
        "plan": {"run": before.run["id"], "counts": fix_plan.counts(), "validation": fix_plan.validation},
        "apply": {"counts": applied.counts(), "batches": list(applied.batches)},
        "findings": {"before": before.summary, "after_apply": after.summary, "after_undo": restored.summary},
        "undo": {"batches": [u.undo_batch for u in undone], "changes": sum(u.changes for u in undone)},
        "apply_again": {"counts": again.counts(), "batches": list(again.batches)},
    }
