"""`reconcile simulate` and the demo: write the deterministic demo district under a folder (DESIGN §10).

`simulate(out)` writes the paper register book of 2021, a vendor-shaped system database (SQLite +
mapping, or the csv export profile) or a workflow-engine database (demo.activiti), a copy of the
workflow catalog it draws from (the repository's `workflows/`), the project file and
`ground_truth.json`. The district itself (its procedures, people, calendar and planted defects, and
the writers of each format) is demo.district.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from reconcile.demo.activiti import ENGINES, SIDECARS, STAFF_FILE, ActivitiSystem, write_sidecars, write_staff
from reconcile.demo.activiti import SQLITE_NAME as ENGINE_SQLITE
from reconcile.demo.district import (
    AS_OF, CALIBRATION_REF, CATALOG, MAPPING_YAML, PERIOD_FROM, PROJECT_YAML, REGISTER_FORMATS, REGISTER_STEM,
    SQLITE_NAME, SYSTEM_FORMATS, SYSTEM_SCHEMAS, CsvRegister, CsvSystem, Emitter, Generator, load_calibration,
    load_procedures, Progress, RegisterSink, SimulationResult, SqliteSystem, SystemSink, XlsxRegister, yaml_str,
)
from reconcile.errors import BadInput
from reconcile.util.db import normalize_url, parse_url


def simulate(out: Path, *, seed: int = 2021, scale: float = 1.0, register_format: str = "xlsx",
             system_format: str = "sqlite", progress: Progress | None = None, system_schema: str = "vendor",
             system_url: str | None = None, engine_kind: str = "activiti6", catalog: Path = CATALOG,
             ) -> SimulationResult:
    """Write the demo district under `out` (deterministic for a given seed and scale); with
    system_schema "activiti" the system is a workflow-engine database of `engine_kind` (see demo.activiti).
    The district's procedures are the workflow catalog `catalog` (workflows/ by default), copied to OUT/workflows."""
    if register_format not in REGISTER_FORMATS:
        raise BadInput(f"register format {register_format!r}: expected one of {', '.join(REGISTER_FORMATS)}.")
    if system_format not in SYSTEM_FORMATS:
        raise BadInput(f"system format {system_format!r}: expected one of {', '.join(SYSTEM_FORMATS)}.")
    if system_schema not in SYSTEM_SCHEMAS:
        raise BadInput(f"system schema {system_schema!r}: expected one of {', '.join(SYSTEM_SCHEMAS)}.")
    engine = system_schema == "activiti"
    if engine and system_format != "sqlite":
        raise BadInput("--system-schema activiti writes a database (SQLite, or --system-url). "
                       "Hint: leave out --system-format csv.")
    if system_url is not None and not engine:
        raise BadInput("--system-url is for --system-schema activiti; the vendor schema is written as SQLite.")
    if engine_kind != "activiti6" and not engine:
        raise BadInput(f"--engine {engine_kind} is for --system-schema activiti.")
    if engine:
        if engine_kind not in ENGINES:
            raise BadInput(f"--engine {engine_kind}: expected one of {', '.join(ENGINES)}.")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 < scale <= 1000):
        raise BadInput(f"scale {scale!r}: expected a number above 0 (1 = the real district, at most 1000).")
    if system_url is not None:  # a URL that does not parse is refused before any folder is made
        parse_url(normalize_url(system_url), "engine database")
    procs = load_procedures(catalog)  # a catalog the simulator cannot use is refused before any folder is made
    out = Path(out)
    for sub in ("register", "system", "workflows"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    gen = Generator(seed, scale, progress, procs)
    gen.plan()
    gen.build_plants()

    book = f"{REGISTER_STEM}.{register_format}"
    register_path = out / "register" / book
    mapping_path: Path | None
    engine_url: str | None = None
    system: SystemSink
    if engine:  # first: an engine database it may not write to is refused before any file is started
        system_path = out / "system" / ENGINE_SQLITE
        if system_url is None:
            system_path.unlink(missing_ok=True)
        engine_url = system_url or f"sqlite:///{system_path}"
        system = engine_sink = ActivitiSystem(engine_url, gen.days, gen.accounts, gen.procs, engine_kind)
        mapping_path = None
    elif system_format == "sqlite":
        system_path = out / "system" / SQLITE_NAME
        system = SqliteSystem(system_path, gen.days, gen.accounts)
        mapping_path = out / "system" / "mapping.yaml"
    else:
        system_path = out / "system"
        system = CsvSystem(system_path, gen.days, gen.accounts)
        mapping_path = None
    register: RegisterSink = (XlsxRegister if register_format == "xlsx" else CsvRegister)(register_path, gen.days)
    emitter = Emitter(gen, system, register, book)
    try:
        emitter.run()
    finally:
        system.close()
    gen.progress("register", 0, 1)
    register.close()
    gen.progress("register", 1, 1)
    if mapping_path is not None:
        mapping_path.write_text(MAPPING_YAML, encoding="utf-8")
    sidecars = staff = None
    if engine:
        sidecars = out / "system" / SIDECARS
        write_sidecars(sidecars, gen.procs, engine_sink.deployments)
        if not engine_sink.kind.identity:  # an engine without identity tables: the staff comes as a file
            staff = out / "system" / STAFF_FILE
            write_staff(staff, gen.accounts)

    workflows = out / "workflows"
    _copy_catalog(catalog, workflows, gen.progress)

    config = out / "reconcile.yaml"
    inputs = [f"register: [{register_path.relative_to(out).as_posix()}]",
              f"system: {'sqlite:///' if mapping_path else ''}{system_path.relative_to(out).as_posix()}",
              *([f"mapping: {mapping_path.relative_to(out).as_posix()}"] if mapping_path else []),
              "workflows: workflows", "store: reconcile.duckdb"]
    if sidecars is not None:  # the engine database: its catalog is the engine's deployed versions
        system_line = system_url or f"sqlite:///{system_path.relative_to(out).as_posix()}"
        inputs = [inputs[0], f"system: {yaml_str(system_line)}", "profile: activiti",
                  f"sidecars: {sidecars.relative_to(out).as_posix()}", "store: reconcile.duckdb"]
        if staff is not None:
            inputs.append(f"staff: {staff.relative_to(out).as_posix()}")
    config.write_text(PROJECT_YAML + _statistics_yaml() + "\n".join(inputs) + "\n", encoding="utf-8")
    truth = out / "ground_truth.json"
    truth.write_text(_ground_truth(gen, emitter), encoding="utf-8")
    return SimulationResult(
        out=out, register_files=(register_path,), system=system_path, mapping=mapping_path, workflows=workflows,
        config=config, ground_truth=truth, register_entries=emitter.rows_written, system_dossiers=emitter.dossiers,
        system_url=engine_url, sidecars=sidecars,
    )


def _copy_catalog(catalog: Path, out: Path, progress: Progress) -> None:
    """The catalog's version files, BPMN sidecars and rules files, byte for byte, so that the district
    folder is whole by itself (its project file says `workflows: workflows`)."""
    files = sorted(p.relative_to(catalog) for p in catalog.rglob("*")
                   if p.is_file() and p.name.endswith((".yaml", ".bpmn")))
    for k, rel in enumerate(files, 1):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes((catalog / rel).read_bytes())
        progress("workflows", k, len(files))


def _statistics_yaml() -> str:
    """The project's `statistics:` block: the appendix's row order and its land sub-total."""
    cal = load_calibration()
    land = cal["totals"]["land"]
    fields = [r["field"] for r in cal["rows"]]
    land_fields = [r["field"] for r in cal["rows"] if r["row"] in land["rows"]]
    label = land["label"].removeprefix("Tổng ")
    return ("statistics:  # the appendix's rows in its order, and its land sub-total\n"
            "  convention: separate\n"
            f"  fields: [{', '.join(yaml_str(f) for f in fields)}]\n"
            f"  groups: [{{label: {yaml_str(label)}, fields: [{', '.join(yaml_str(f) for f in land_fields)}]}}]\n")


def _ground_truth(gen: Generator, emitter: Emitter) -> str:
    findings = sorted(gen.findings, key=lambda f: (f["kind"], f["dossier_code"] or "", f.get("missing_from", 0)))
    summary: dict[str, int] = {}
    for f in findings:
        summary[f["kind"]] = summary.get(f["kind"], 0) + 1
    doc = {
        "seed": gen.seed,
        "scale": float(gen.scale),
        "as_of": AS_OF.isoformat(),
        "period": {"from": PERIOD_FROM.isoformat(), "to": AS_OF.isoformat()},
        "counts": {"register_entries": emitter.rows_written, "system_dossiers": emitter.dossiers},
        "findings": findings,
        "summary": summary,
        "paper_only": sorted(gen.paper_only),
        "version_assumed": sorted(gen.assumed, key=lambda a: a["dossier_code"]),
        "bad_codes": sorted(gen.bad_codes),
        "calibration": CALIBRATION_REF,
    }
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
