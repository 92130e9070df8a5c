"""System loaders: the csv export profile and the mapping profile (any SQL database + YAML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
import yaml

from reconcile.errors import BadInput
from reconcile.model import Status
from reconcile.store import connect_engine, iter_rows, mask_url

DOSSIER_FIELDS = (
    "dossier_code", "procedure", "field", "applicant", "phone", "address", "agency", "channel",
    "received_at", "due_at", "due_at_revised", "finished_at", "returned_at", "status",
    "workflow_key", "workflow_version",
)
TASK_FIELDS = ("dossier_code", "current_step", "assignee", "unit", "step_entered_at", "step_due_at")
ACCOUNT_FIELDS = ("account", "name", "unit", "active")
EVENT_FIELDS = ("dossier_code", "seq", "from_step", "to_step", "account", "at", "action")

CSV_DOSSIER_HEADER = (
    "dossier_code", "procedure", "applicant", "status", "workflow_key", "workflow_version", "current_step",
    "assignee", "unit", "received_at", "due_at", "finished_at", "returned_at",
)
CSV_ACCOUNT_HEADER = ("account", "unit", "active")
CSV_EVENT_HEADER = ("dossier_code", "seq", "from_step", "to_step", "account", "at")
STATUS_NAMES = {s.value: s.value for s in Status}


@dataclass
class SystemData:
    """The system side as raw text columns, before normalisation in the workbench."""

    dossiers: pa.Table  # DOSSIER_FIELDS + TASK_FIELDS[1:] + status_raw + source_row, all strings but source_row
    accounts: pa.Table  # account, name, unit (strings), active (bool)
    events: pa.Table  # EVENT_FIELDS, strings
    source: str  # what was read, printable (password hidden)
    profile: str
    writable: bool = False
    where: dict[str, str] = field(default_factory=dict)  # table role -> name used in messages


# ------------------------------------------------------------------------------ csv profile


def load_csv_profile(directory: str | Path) -> SystemData:
    d = Path(directory)
    if not d.is_dir():
        raise BadInput(f"{d}: not a directory. Hint: --system DIR (csv export) or --system URL --mapping FILE.")
    dossiers = _read_csv_table(d / "dossiers.csv", CSV_DOSSIER_HEADER)
    accounts = _read_csv_table(d / "accounts.csv", CSV_ACCOUNT_HEADER)
    events_path = d / "events.csv"
    events = _read_csv_table(events_path, CSV_EVENT_HEADER) if events_path.exists() else _empty(EVENT_FIELDS)

    status = dossiers.column("status")
    bad = [i for i, v in enumerate(status.to_pylist()) if (v or "").strip() not in STATUS_NAMES]
    if bad:
        v = status[bad[0]].as_py()
        raise BadInput(f"{d / 'dossiers.csv'}, row {bad[0] + 2}: status {v!r} is not a canonical status "
                       f"({len(bad)} such rows). Expected one of: {', '.join(STATUS_NAMES)}.")
    n = dossiers.num_rows
    cols = {f: (dossiers.column(f) if f in dossiers.column_names else pa.nulls(n, pa.string()))
            for f in DOSSIER_FIELDS + TASK_FIELDS[1:]}
    cols["status_raw"] = dossiers.column("status")
    cols["source_row"] = pa.array(range(2, n + 2), pa.int32())
    active = accounts.column("active").to_pylist()
    bad_active = [i for i, v in enumerate(active) if (v or "").strip() not in ("0", "1")]
    if bad_active:
        i = bad_active[0]
        raise BadInput(f"{d / 'accounts.csv'}, row {i + 2}: active {active[i]!r} is not 1 or 0.")
    acc = pa.table({
        "account": accounts.column("account"),
        "name": accounts.column("name") if "name" in accounts.column_names else pa.nulls(accounts.num_rows, pa.string()),
        "unit": accounts.column("unit"),
        "active": pa.array([v.strip() == "1" for v in active], pa.bool_()),
    })
    ev = pa.table({f: events.column(f) if f in events.column_names else pa.nulls(events.num_rows, pa.string())
                   for f in EVENT_FIELDS})
    where = {"dossier": str(d / "dossiers.csv"), "account": str(d / "accounts.csv"), "events": str(events_path)}
    return SystemData(pa.table(cols), acc, ev, str(d), "csv", writable=False, where=where)


def _read_csv_table(path: Path, required: tuple[str, ...]) -> pa.Table:
    if not path.is_file():
        raise BadInput(f"{path}: no such file. Hint: the csv profile needs dossiers.csv and accounts.csv.")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: the file is empty. Expected a header: {', '.join(required)}.")
    head = path.open("rb").read(4096)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sample's end
            line = head[: exc.start].count(b"\n") + 1
            raise BadInput(f"{path}, row {line}: not UTF-8 (legacy 8-bit "
                           "encoding?). Hint: export the file as UTF-8.") from None
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True, null_values=[""],
                                                 column_types=_all_strings(path)),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc).splitlines()[0]
        hint = "export the file as UTF-8" if "UTF8" in msg else "check the quoting and column count"
        raise BadInput(f"{path}: {msg}. Hint: {hint}.") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise BadInput(f"{path}, row 1: required column {missing[0]!r} missing. "
                       f"Header found: {', '.join(table.column_names)}. Expected: {', '.join(required)}.")
    return table


def _all_strings(path: Path) -> dict[str, pa.DataType]:
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline().rstrip("\r\n").split(",")
    return {h.strip('"'): pa.string() for h in header}


def _empty(fields: tuple[str, ...]) -> pa.Table:
    return pa.table({f: pa.array([], pa.string()) for f in fields})


# -------------------------------------------------------------------------- mapping profile


@dataclass(frozen=True, slots=True)
class TableMapping:
    role: str
    table: str | None
    query: str | None
    columns: dict[str, str]


@dataclass(frozen=True, slots=True)
class SourceMapping:
    path: str
    dossier: TableMapping
    task: TableMapping | None
    account: TableMapping
    events: TableMapping | None
    status_values: dict[str, str]
    active_values: tuple[str, ...]
    writable: bool


_ROLES = {"dossier": DOSSIER_FIELDS, "task": TASK_FIELDS, "account": ACCOUNT_FIELDS, "events": EVENT_FIELDS}
_REQUIRED = {
    "dossier": ("dossier_code", "status"),
    "task": ("dossier_code", "current_step"),
    "account": ("account", "active"),
    "events": ("dossier_code",),
}


def load_mapping(path: str | Path) -> SourceMapping:
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: no such file. Hint: --mapping FILE describes the vendor schema (see README).")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        raise BadInput(f"{where}: YAML syntax error: {exc.problem}.") from None
    if not isinstance(data, dict):
        raise BadInput(f"{p}:1:1: expected a mapping with keys dossier, task, account, events.")
    problems: list[str] = []
    roles: dict[str, TableMapping | None] = {}
    for role, fields in _ROLES.items():
        spec = data.get(role)
        if spec is None:
            if role in ("dossier", "account"):
                problems.append(f"{p}: '{role}' is required (table and columns).")
            roles[role] = None
            continue
        if not isinstance(spec, dict) or not (spec.get("table") or spec.get("query")):
            problems.append(f"{p}: {role}: expected 'table: NAME' (or 'query: SQL') and 'columns'.")
            continue
        cols = spec.get("columns") or {}
        unknown = [c for c in cols if c not in fields]
        problems += [f"{p}: {role}.columns: unknown field {c!r}. Known: {', '.join(fields)}." for c in unknown]
        problems += [f"{p}: {role}.columns: {c!r} is required." for c in _REQUIRED[role] if c not in cols]
        roles[role] = TableMapping(role, spec.get("table"), spec.get("query"), {k: str(v) for k, v in cols.items()})
    status_values = {str(k): str(v) for k, v in ((data.get("dossier") or {}).get("status_values") or {}).items()}
    bad = [v for v in status_values.values() if v not in STATUS_NAMES]
    problems += [f"{p}: dossier.status_values: {v!r} is not a canonical status. "
                 f"Expected one of: {', '.join(STATUS_NAMES)}." for v in bad]
    if not status_values and "dossier" in data:
        problems.append(f"{p}: dossier.status_values is required: vendor status value -> canonical status.")
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{p}: {len(problems)} problems", problems)
    active = (data.get("account") or {}).get("active_values", [1])
    return SourceMapping(
        path=str(p), dossier=roles["dossier"], task=roles.get("task"), account=roles["account"],  # type: ignore[arg-type]
        events=roles.get("events"), status_values=status_values,
        active_values=tuple(str(v) for v in active), writable=bool(data.get("writable", False)),
    )


def load_mapping_profile(url: str, mapping_path: str | Path) -> SystemData:
    mapping = load_mapping(mapping_path)
    engine = connect_engine(url, what="system database")
    try:
        with engine.connect() as conn:
            _begin_read_only(conn)
            dossiers = _select(conn, mapping.dossier, mapping)
            task = _select(conn, mapping.task, mapping) if mapping.task else None
            accounts = _select(conn, mapping.account, mapping)
            events = _select(conn, mapping.events, mapping) if mapping.events else None
            conn.rollback()
    finally:
        engine.dispose()
    return _assemble(dossiers, task, accounts, events, mapping, mask_url(str(engine.url)))


def _begin_read_only(conn: sa.Connection) -> None:
    """Every read of the vendor database runs in a read-only transaction."""
    name = conn.dialect.name
    if name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    elif name in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")  # before the implicit transaction starts
    elif name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # first statement of the autobegun transaction


def _select(conn: sa.Connection, tm: TableMapping, mapping: SourceMapping) -> dict[str, list[Any]]:
    if tm.query:
        try:
            result = conn.execution_options(yield_per=20_000).execute(sa.text(tm.query))
        except sa.exc.DBAPIError as exc:
            raise BadInput(f"{mapping.path}: {tm.role}.query failed: {str(exc.orig).splitlines()[0]}.") from None
        keys = list(result.keys())
        missing = [c for c in tm.columns.values() if c not in keys]
        if missing:
            raise BadInput(f"{mapping.path}: {tm.role}.query has no column {missing[0]!r}. "
                           f"Columns: {', '.join(keys)}.")
        idx = {f: keys.index(c) for f, c in tm.columns.items()}
        rows = [r for part in result.partitions() for r in part]
    else:
        insp = sa.inspect(conn)
        tables = insp.get_table_names()
        if tm.table not in tables:
            raise BadInput(f"{mapping.path}: {tm.role}.table {tm.table!r} does not exist. "
                           f"Tables: {', '.join(sorted(tables)) or '(none)'}.")
        table = sa.Table(tm.table, sa.MetaData(), autoload_with=conn)
        missing = [c for c in tm.columns.values() if c not in table.c]
        if missing:
            raise BadInput(f"{mapping.path}: {tm.role}.columns: {tm.table}.{missing[0]} does not exist. "
                           f"Columns of {tm.table}: {', '.join(table.c.keys())}.")
        fields = list(tm.columns)
        stmt = sa.select(*[table.c[tm.columns[f]] for f in fields])
        idx = {f: i for i, f in enumerate(fields)}
        rows = list(iter_rows(conn, stmt, 20_000))
    return {f: [r[i] for r in rows] for f, i in idx.items()}


def _text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def _assemble(d: dict[str, list[Any]], task: dict[str, list[Any]] | None, acc: dict[str, list[Any]],
              ev: dict[str, list[Any]] | None, m: SourceMapping, source: str) -> SystemData:
    n = len(d["dossier_code"])
    raw_status = ["" if v is None else str(v) for v in d["status"]]
    unmapped = sorted({v for v in raw_status if v not in m.status_values})
    if unmapped:
        table = m.dossier.table or "dossier.query"
        col = m.dossier.columns["status"]
        raise BadInput(f"{m.path}: dossier.status_values: {table}.{col} holds value(s) "
                       f"{', '.join(repr(v) for v in unmapped[:10])} with no canonical status. "
                       "Hint: add them under status_values.")
    cols: dict[str, pa.Array] = {}
    for f in DOSSIER_FIELDS:
        cols[f] = _text(d[f]) if f in d else pa.nulls(n, pa.string())
    cols["status"] = pa.array([m.status_values[v] for v in raw_status], pa.string())
    cols["status_raw"] = pa.array(raw_status, pa.string())
    cols["source_row"] = pa.array(range(1, n + 1), pa.int32())
    # Join the current task to its dossier (first task per code; more are reported as duplicates later).
    tasks: dict[str, int] = {}
    if task:
        for i, code in enumerate(task["dossier_code"]):
            tasks.setdefault(str(code), i)
    codes = [str(c) if c is not None else None for c in d["dossier_code"]]
    for f in TASK_FIELDS[1:]:
        if task and f in task:
            vals = task[f]
            cols[f] = _text([vals[tasks[c]] if c in tasks else None for c in codes])
        else:
            cols[f] = pa.nulls(n, pa.string())
    active_set = set(m.active_values)
    accounts = pa.table({
        "account": _text(acc["account"]),
        "name": _text(acc["name"]) if "name" in acc else pa.nulls(len(acc["account"]), pa.string()),
        "unit": _text(acc["unit"]) if "unit" in acc else pa.nulls(len(acc["account"]), pa.string()),
        "active": pa.array([str(v) in active_set for v in acc["active"]], pa.bool_()),
    })
    if ev:
        ne = len(ev["dossier_code"])
        events = pa.table({f: _text(ev[f]) if f in ev else pa.nulls(ne, pa.string()) for f in EVENT_FIELDS})
    else:
        events = _empty(EVENT_FIELDS)
    where = {"dossier": m.dossier.table or "dossier.query", "account": m.account.table or "account.query",
             "events": (m.events.table if m.events else None) or "events"}
    return SystemData(pa.table(cols), accounts, events, source, "mapping", writable=m.writable, where=where)
