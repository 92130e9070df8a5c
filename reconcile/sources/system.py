"""System loaders: the csv export profile and the mapping profile (any SQL database + YAML)."""

from __future__ import annotations

import csv
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from jsonschema import Draft202012Validator

from reconcile import errors

from reconcile.util import yamlio
from reconcile.util.db import begin_read_only, connect_engine, first_line, mask_url
from reconcile.errors import BadInput
from reconcile.model import Status
from reconcile.sources import arrowread
from reconcile.util import scratch
from reconcile.sources.csvio import line_chunks, line_offset
from reconcile.sources.text import decode

DOSSIER_FIELDS = (
    "dossier_code", "procedure", "field", "applicant", "phone", "address", "agency", "channel",
    "received_at", "due_at", "due_at_revised", "finished_at", "returned_at", "status",
    "workflow_key", "workflow_version",
)
TASK_FIELDS = ("dossier_code", "current_step", "assignee", "unit", "step_entered_at", "step_due_at")
# Facts only some profiles know, empty elsewhere: why the dossier's workflow version cannot be read from the
# system (the activiti profile: a deleted or unreadable process definition); the unknown_version finding says it.
NOTE_FIELDS = ("version_problem",)
ACCOUNT_FIELDS = ("account", "name", "unit", "active")
EVENT_FIELDS = ("dossier_code", "seq", "from_step", "to_step", "account", "at", "action")

CSV_DOSSIER_HEADER = (
    "dossier_code", "procedure", "applicant", "status", "workflow_key", "workflow_version", "current_step",
    "assignee", "unit", "received_at", "due_at", "finished_at", "returned_at",
)
# Read dictionary-encoded (see _csv_batches); status stays plain for the vectorised status check.
REPEATING_DOSSIER = ("procedure", "workflow_key", "workflow_version", "current_step", "assignee", "unit")
CSV_ACCOUNT_HEADER = ("account", "unit", "active")
CSV_EVENT_HEADER = ("dossier_code", "seq", "from_step", "to_step", "account", "at")
STATUS_NAMES = {s.value: s.value for s in Status}
_STATUS_SET = pa.array(list(STATUS_NAMES), pa.string())


BATCH_ROWS = 100_000  # rows per Arrow batch: bounded memory (a DuckDB store takes all batches in one INSERT)
Batches = Callable[[], Iterator[pa.Table]]


@dataclass
class SystemData:
    """An opened system source: checked now, its dossiers and events read batch by batch."""

    source: str  # what was read, printable (password hidden)
    profile: str
    accounts: pa.Table  # account, name, unit (strings), active (bool)
    dossier_batches: Batches  # DOSSIER_FIELDS + TASK_FIELDS[1:] + NOTE_FIELDS + status_raw (strings) + source_row (int)
    event_batches: Batches  # EVENT_FIELDS, strings
    writable: bool = False
    where: dict[str, str] = field(default_factory=dict)  # table role -> name used in messages
    warnings: list[str] = field(default_factory=list)  # found while opening (kept rows that look wrong)

    @property
    def dossiers(self) -> pa.Table:
        """Every dossier at once (tests and small sources)."""
        return _concat(list(self.dossier_batches()), DOSSIER_FIELDS + TASK_FIELDS[1:] + NOTE_FIELDS + ("status_raw",),
                       {"source_row": pa.int32()})

    @property
    def events(self) -> pa.Table:
        return _concat(list(self.event_batches()), EVENT_FIELDS)


def _concat(parts: list[pa.Table], fields: tuple[str, ...], extra: dict[str, pa.DataType] | None = None) -> pa.Table:
    if parts:
        return pa.concat_tables(parts)
    return pa.table({**{f: pa.array([], pa.string()) for f in fields},
                     **{k: pa.array([], t) for k, t in (extra or {}).items()}})


def from_tables(dossiers: pa.Table, accounts: pa.Table, events: pa.Table, source: str = "tables",
                profile: str = "csv") -> SystemData:
    """A SystemData over in-memory tables (tests, simulations)."""
    for f in NOTE_FIELDS:
        if f not in dossiers.column_names:
            dossiers = dossiers.append_column(f, pa.nulls(dossiers.num_rows, pa.string()))
    return SystemData(source, profile, accounts, lambda: iter([dossiers]), lambda: iter([events]))


# ------------------------------------------------------------------------------ csv profile


def load_csv_profile(directory: str | Path) -> SystemData:
    d = Path(directory)
    if not d.is_dir():
        raise BadInput(f"{mask_url(str(d))}: not a directory. Hint: --system DIR (csv export) or --system URL "
                       "--mapping FILE.")
    dossiers_path, events_path = d / "dossiers.csv", d / "events.csv"
    _check_csv(dossiers_path, CSV_DOSSIER_HEADER)
    acc = read_accounts_csv(d / "accounts.csv")
    if events_path.exists():
        _check_csv(events_path, CSV_EVENT_HEADER)

    def dossier_batches() -> Iterator[pa.Table]:
        first = 2
        for batch in _csv_batches(dossiers_path, CSV_DOSSIER_HEADER, REPEATING_DOSSIER):
            n = batch.num_rows
            status = batch.column("status")
            known = pc.fill_null(pc.is_in(pc.utf8_trim_whitespace(status), value_set=_STATUS_SET), False)
            if not pc.all(known).as_py():
                i = pc.index(known, False).as_py()
                raise BadInput(f"{dossiers_path}, row {first + i}: status {status[i].as_py()!r} is not a "
                               f"canonical status. Expected one of: {', '.join(STATUS_NAMES)}.")
            cols = {f: (batch.column(f) if f in batch.column_names else pa.nulls(n, pa.string()))
                    for f in DOSSIER_FIELDS + TASK_FIELDS[1:] + NOTE_FIELDS}
            cols["status_raw"] = status
            cols["source_row"] = pa.array(range(first, first + n), pa.int32())
            yield pa.table(cols)
            first += n

    def event_batches() -> Iterator[pa.Table]:
        if not events_path.exists():
            return
        for batch in _csv_batches(events_path, CSV_EVENT_HEADER, ("from_step", "to_step", "account")):
            yield pa.table({f: batch.column(f) if f in batch.column_names else pa.nulls(batch.num_rows, pa.string())
                            for f in EVENT_FIELDS})

    where = {"dossier": str(dossiers_path), "account": str(d / "accounts.csv"), "events": str(events_path)}
    return SystemData(str(d), "csv", acc, dossier_batches, event_batches, writable=False, where=where)


def read_accounts_csv(path: Path) -> pa.Table:
    """A staff directory in the accounts.csv format: account, unit, active (1/0), optional name."""
    parts = list(_csv_batches(path, CSV_ACCOUNT_HEADER))
    empty = pa.table({c: pa.array([], pa.string()) for c in CSV_ACCOUNT_HEADER})
    accounts = pa.concat_tables(parts) if parts else empty
    active = accounts.column("active").to_pylist()
    bad_active = [i for i, v in enumerate(active) if (v or "").strip() not in ("0", "1")]
    if bad_active:
        i = bad_active[0]
        raise BadInput(f"{path}, row {i + 2}: active {active[i]!r} is not 1 or 0.")
    return pa.table({
        "account": accounts.column("account"),
        "name": (accounts.column("name") if "name" in accounts.column_names
                 else pa.nulls(accounts.num_rows, pa.string())),
        "unit": accounts.column("unit"),
        "active": pa.array([v.strip() == "1" for v in active], pa.bool_()),
    })


def _check_csv(path: Path, required: tuple[str, ...]) -> list[str]:
    """The header of a csv-profile file; refuses missing/empty files, legacy encodings, missing columns."""
    if not path.is_file():
        raise BadInput(f"{path}: no such file. Hint: the csv profile needs dossiers.csv and accounts.csv.")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: the file is empty. Expected a header: {', '.join(required)}.")
    with path.open("rb") as fh:
        head = fh.read(64 * 1024)
    first = decode(path, head, partial=True, shown=str(path)).splitlines()[0] if head else ""
    header = [h.strip().strip('"') for h in next(csv.reader([first]))] if first else []
    missing = [c for c in required if c not in header]
    if missing:
        raise BadInput(f"{path}, row 1: required column {missing[0]!r} missing. "
                       f"Header found: {', '.join(header)}. Expected: {', '.join(required)}.")
    return header


def _csv_batches(path: Path, required: tuple[str, ...], repeating: tuple[str, ...] = ()) -> Iterator[pa.Table]:
    """The file's rows as string columns, piece by piece; `repeating` columns (few distinct values)
    are read dictionary-encoded, which saves most of their memory."""
    header = _check_csv(path, required)
    code = pa.dictionary(pa.int32(), pa.string())
    read = pacsv.ReadOptions(column_names=header, block_size=16 << 20)
    convert = pacsv.ConvertOptions(strings_can_be_null=True, null_values=[""],
                                   column_types={h: code if h in repeating else pa.string() for h in header})
    for _, data in line_chunks(path, line_offset(path, 1)):
        try:
            yield pacsv.read_csv(pa.py_buffer(data), read_options=read, convert_options=convert)
        except pa.ArrowInvalid as exc:
            msg = str(exc).splitlines()[0]
            hint = "export the file as UTF-8" if "UTF8" in msg else "check the quoting and column count"
            raise BadInput(f"{path}: {msg}. Hint: {hint}.") from None


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
_NAME = {"type": "string", "minLength": 1}


def _role_schema(role: str, **extra: Any) -> dict[str, Any]:
    required = ["columns", *(["status_values"] if role == "dossier" else [])]
    columns = {"type": "object", "additionalProperties": False, "required": list(_REQUIRED[role]),
               "properties": {f: _NAME for f in _ROLES[role]}}
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": {"table": _NAME, "query": _NAME, **extra, "columns": columns}}


# The shape of a source mapping (every key, every type); what the database holds is checked when it is read.
MAPPING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["dossier", "account"],
    "properties": {
        "profile": {"enum": ["mapping"]},
        "writable": {"type": "boolean", "hint": "write true or false, without quotes; only true lets apply write"},
        "dossier": _role_schema("dossier", status_values={"type": "object", "minProperties": 1,
                                                          "additionalProperties": {"enum": list(STATUS_NAMES)},
                                                          "hint": "vendor value: canonical status, e.g. "
                                                                  "{0: submitted, 1: received}"}),
        "task": _role_schema("task"),
        "account": _role_schema("account", active_values={"type": "array", "minItems": 1,
                                                          "items": {"type": ["string", "integer", "boolean"]},
                                                          "hint": "the values that mean active, as a list: [1]"}),
        "events": _role_schema("events"),
    },
}
_MAPPING = Draft202012Validator(MAPPING_SCHEMA)
MAPPING_HINT = 'Hint: see "System: mapping profile" in docs/file-formats.md.'


# A staff file (`--staff FILE.yaml`): a mapping's account: block alone, read from the --system database.
STAFF_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["account"],
                                "properties": {"account": MAPPING_SCHEMA["properties"]["account"]}}
_STAFF = Draft202012Validator(STAFF_SCHEMA)
STAFF_HINT = ("Hint: --staff FILE is an accounts.csv-format file (account, unit, active) or a YAML file with a "
              "mapping's account: block.")


def _checked_mapping(p: Path, validator: Draft202012Validator, keys: str, hint: str) -> dict[str, Any]:
    """A mapping file's document, its every key and type checked against `validator` (file:line:col, exit 2)."""
    node, data = yamlio.load(p)
    if not isinstance(data, dict):
        raise BadInput(f"{p}:1:1: expected a mapping with keys {keys}. {hint}")
    problems = yamlio.schema_problems(str(p), node, validator, data, hint)
    for role in _ROLES:
        spec = data.get(role)
        if isinstance(spec, dict) and not (spec.get("table") or spec.get("query")):
            problems.append(f"{yamlio.at(str(p), yamlio.key_node(node, role))}: {role}: expected 'table: NAME' (or "
                            f"'query: SQL'). {hint}")
    errors.collect(sorted(problems, key=lambda line: yamlio.position(line, str(p))),
                   f"{p}: {len(problems)} problems in the mapping")
    return data


def load_mapping(path: str | Path) -> SourceMapping:
    """A source mapping file, its every key and type checked (file:line:col, exit 2)."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: no such file. Hint: --mapping FILE describes the vendor schema "
                       "(see docs/file-formats.md).")
    data = _checked_mapping(p, _MAPPING, "dossier, task, account, events", MAPPING_HINT)
    roles = {role: TableMapping(role, spec.get("table"), spec.get("query"), dict(spec["columns"]))
             for role in _ROLES if (spec := data.get(role)) is not None}
    return SourceMapping(
        path=str(p), dossier=roles["dossier"], task=roles.get("task"), account=roles["account"],
        events=roles.get("events"), status_values={str(k): v for k, v in data["dossier"]["status_values"].items()},
        active_values=tuple(str(v) for v in data["account"].get("active_values", [1])),
        writable=data.get("writable", False),
    )


def load_mapping_profile(url: str, mapping_path: str | Path) -> SystemData:
    """Check the mapping against the database now (tables, columns, status values); stream later."""
    mapping = load_mapping(mapping_path)
    engine = connect_engine(url, what="system database", read_only=True)
    roles = {r: tm for r, tm in (("dossier", mapping.dossier), ("task", mapping.task), ("account", mapping.account),
                                 ("events", mapping.events)) if tm is not None}
    try:
        with _read_only(engine) as conn:
            stmts = {role: _statement(conn, tm, mapping) for role, tm in roles.items()}
            status = stmts["dossier"].subquery("d").c.status
            with _reading(mapping.dossier, mapping):
                found = {"" if v is None else str(v) for (v,) in conn.execute(sa.select(status).distinct())}
            unmapped = sorted(found - set(mapping.status_values))
            if unmapped:
                raise BadInput(f"{mapping.path}: dossier.status_values: {mapping.dossier.table or 'dossier.query'}."
                               f"{mapping.dossier.columns['status']} holds value(s) "
                               f"{', '.join(repr(v) for v in unmapped[:10])} with no canonical status. "
                               "Hint: add them under status_values.")
            accounts = _read_accounts(conn, stmts["account"], mapping)
    except BaseException:
        engine.dispose()
        raise

    def dossier_batches() -> Iterator[pa.Table]:
        # The current task of each dossier (the first one per code) is joined in SQL: the task table
        # goes into a scratch DuckDB once, and each dossier batch is joined to it there.
        with closing(scratch.connect()) as wb:
            if mapping.task is not None:
                _load_tasks(wb, _role_batches(engine, stmts["task"], mapping.task, mapping))
            first = 1
            for part in _role_batches(engine, stmts["dossier"], mapping.dossier, mapping):
                yield _dossier_table(part, wb if mapping.task is not None else None, mapping, first)
                first += part.num_rows

    def event_batches() -> Iterator[pa.Table]:
        if mapping.events is None:
            return
        for part in _role_batches(engine, stmts["events"], mapping.events, mapping):
            yield _fields(part, EVENT_FIELDS)

    where = {"dossier": mapping.dossier.table or "dossier.query", "account": mapping.account.table or "account.query",
             "events": (mapping.events.table if mapping.events else None) or "events"}
    return SystemData(mask_url(str(engine.url)), "mapping", accounts, dossier_batches, event_batches,
                      writable=mapping.writable, where=where)


def _read_accounts(conn: sa.Connection, stmt: sa.Select[Any], mapping: SourceMapping) -> pa.Table:
    with _reading(mapping.account, mapping):
        acc = list(conn.execute(stmt).mappings())
    active = set(mapping.active_values)
    return pa.table({
        "account": _text([r["account"] for r in acc]),
        "name": _text([r.get("name") for r in acc]),
        "unit": _text([r.get("unit") for r in acc]),
        "active": pa.array([str(r["active"]) in active for r in acc], pa.bool_()),
    })


def check_staff_file(path: str) -> Path:
    """A --staff file is a .csv or a .yaml file that exists (checked before any input is read)."""
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".yaml", ".yml"):
        raise BadInput(f"--staff {path}: expected a .csv or .yaml file. {STAFF_HINT}")
    if not p.is_file():
        raise BadInput(f"--staff {path}: no such file. {STAFF_HINT}")
    return p


def load_staff(path: str, url: str | None) -> pa.Table:
    """A staff directory given apart from the system's (`--staff`): an accounts.csv-format file, or a
    mapping file whose `account:` block is read (read-only) from the system database `url`."""
    p = check_staff_file(path)
    if p.suffix.lower() == ".csv":
        return read_accounts_csv(p)
    data = _checked_mapping(p, _STAFF, "account", STAFF_HINT)
    if url is None or "://" not in url:
        raise BadInput(f"{p}: an account: block is read from the system database, and --system is a folder. "
                       "Hint: give the staff as an accounts.csv file.")
    spec = data["account"]
    tm = TableMapping("account", spec.get("table"), spec.get("query"), dict(spec["columns"]))
    mapping = SourceMapping(str(p), tm, None, tm, None, {}, tuple(str(v) for v in spec.get("active_values", [1])),
                            False)
    engine = connect_engine(url, what="system database", read_only=True)
    try:
        with _read_only(engine) as conn:
            return _read_accounts(conn, _statement(conn, tm, mapping), mapping)
    finally:
        engine.dispose()


class _read_only:
    """A connection whose every read runs in a read-only transaction, rolled back at the end."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def __enter__(self) -> sa.Connection:
        self.conn = self.engine.connect()
        begin_read_only(self.conn)
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


@contextmanager
def _reading(tm: TableMapping, mapping: SourceMapping) -> Iterator[None]:
    """A database error while reading a role (the mapping's own SQL, a permission, a value) is one line."""
    try:
        yield
    except (sa.exc.DBAPIError, arrowread.DriverError) as exc:
        if tm.query:
            raise BadInput(f"{mapping.path}: {tm.role}.query failed: {first_line(exc).rstrip('.')}. Hint: a query: "
                           "is one SELECT statement, and it runs read-only.") from None
        raise BadInput(f"{mapping.path}: {tm.role}.table {tm.table}: reading failed: "
                       f"{first_line(exc).rstrip('.')}.") from None


def _statement(conn: sa.Connection, tm: TableMapping, mapping: SourceMapping) -> sa.Select[Any]:
    """SELECT the mapped columns labelled with canonical names; names are checked against the database."""
    if tm.query:
        source = sa.text(f"({tm.query}) AS q")  # the mapping's own SQL, by design; one statement, read-only
        with _reading(tm, mapping):
            keys = list(conn.execute(sa.select(sa.text("*")).select_from(source).where(sa.false())).keys())
        missing = [c for c in tm.columns.values() if c not in keys]
        if missing:
            raise BadInput(f"{mapping.path}: {tm.role}.query has no column {missing[0]!r}. "
                           f"Columns: {', '.join(keys)}.")
        return sa.select(*[sa.column(c).label(f) for f, c in tm.columns.items()]).select_from(source)
    tables = sa.inspect(conn).get_table_names()
    if tm.table not in tables:
        raise BadInput(f"{mapping.path}: {tm.role}.table {tm.table!r} does not exist. "
                       f"Tables: {', '.join(sorted(tables)) or '(none)'}.")
    table = sa.Table(tm.table, sa.MetaData(), autoload_with=conn)
    missing = [c for c in tm.columns.values() if c not in table.c]
    if missing:
        raise BadInput(f"{mapping.path}: {tm.role}.columns: {tm.table}.{missing[0]} does not exist. "
                       f"Columns of {tm.table}: {', '.join(table.c.keys())}.")
    return sa.select(*[table.c[c].label(f) for f, c in tm.columns.items()])


def _text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def _role_batches(engine: sa.Engine, stmt: sa.Select[Any], tm: TableMapping,
                  mapping: SourceMapping) -> Iterator[pa.Table]:
    """A role's rows as text columns, batch by batch, read-only (ADBC where it applies: arrowread)."""
    with _reading(tm, mapping):
        yield from arrowread.text_batches(engine, stmt, BATCH_ROWS, lambda: _read_only(engine))


def _fields(part: pa.Table, fields: tuple[str, ...]) -> pa.Table:
    """The batch's columns in `fields` order, a field the mapping leaves out all NULL."""
    n = part.num_rows
    return pa.table({f: part.column(f) if f in part.column_names else pa.nulls(n, pa.string()) for f in fields})


def _load_tasks(wb: duckdb.DuckDBPyConnection, batches: Iterator[pa.Table]) -> None:
    """Keep the first task row of each dossier code (in the task table's order) in `wb`'s table task."""
    wb.execute("CREATE TEMP TABLE task_row (n BIGINT, " + ", ".join(f"{f} VARCHAR" for f in TASK_FIELDS) + ")")
    n = 0
    for part in batches:
        batch = _fields(part, TASK_FIELDS).append_column("n", pa.array(range(n, n + part.num_rows), pa.int64()))
        wb.register("batch", batch)
        wb.execute(f"INSERT INTO task_row SELECT n, {', '.join(TASK_FIELDS)} FROM batch")
        wb.unregister("batch")
        n += part.num_rows
    wb.execute("CREATE TEMP TABLE task AS SELECT * EXCLUDE (n) FROM task_row WHERE dossier_code IS NOT NULL "
               "QUALIFY row_number() OVER (PARTITION BY dossier_code ORDER BY n) = 1")
    wb.execute("DROP TABLE task_row")


def _dossier_table(part: pa.Table, wb: duckdb.DuckDBPyConnection | None, m: SourceMapping, first: int) -> pa.Table:
    """The raw system table of a dossier batch: its fields, the mapped status, and its current task's
    fields (joined in `wb`, in the batch's order)."""
    n = part.num_rows
    raw_status = pc.fill_null(part.column("status"), "")
    keys = pa.array(list(m.status_values), pa.string())
    at = pc.index_in(raw_status, value_set=keys)
    if at.null_count:  # the values were checked when the source was opened: changed since
        bad = raw_status[pc.index(pc.is_null(at), True).as_py()].as_py()
        raise BadInput(f"{m.path}: dossier.status_values: {m.dossier.table or 'dossier.query'}."
                       f"{m.dossier.columns['status']} holds value(s) {bad!r} with no canonical status. "
                       "Hint: add them under status_values.")
    cols = dict(zip(DOSSIER_FIELDS, _fields(part, DOSSIER_FIELDS).columns))
    cols["status"] = pa.array(list(m.status_values.values()), pa.string()).take(at)
    cols["status_raw"] = raw_status
    cols["source_row"] = pa.array(range(first, first + n), pa.int32())
    if wb is None:
        task = pa.table({f: pa.nulls(n, pa.string()) for f in TASK_FIELDS[1:]})
    else:
        wb.register("batch", pa.table({"dossier_code": part.column("dossier_code"),
                                       "i": pa.array(range(n), pa.int64())}))
        task = wb.sql(f"SELECT {', '.join('t.' + f for f in TASK_FIELDS[1:])} FROM batch b LEFT JOIN task t "
                          "ON t.dossier_code = b.dossier_code ORDER BY b.i").to_arrow_table()
        wb.unregister("batch")
    for f in TASK_FIELDS[1:]:
        cols[f] = task.column(f)
    for f in NOTE_FIELDS:
        cols[f] = pa.nulls(n, pa.string())
    return pa.table(cols)


def dossier_columns(dossier: dict[str, Any], status: list[Any], task: dict[str, Any], m: SourceMapping,
                    first: int) -> pa.Table:
    """The raw system table of a batch from its columns: the dossier's and its current task's fields
    (a field left out: all NULL) and the raw status values (each one in the mapping's status_values)."""
    n = len(status)
    cols: dict[str, pa.Array] = {f: _text(dossier.get(f) or [None] * n) for f in DOSSIER_FIELDS}
    raw_status = ["" if v is None else str(v) for v in status]
    cols["status"] = pa.array([m.status_values[v] for v in raw_status], pa.string())
    cols["status_raw"] = pa.array(raw_status, pa.string())
    cols["source_row"] = pa.array(range(first, first + n), pa.int32())
    for f in TASK_FIELDS[1:]:
        cols[f] = _text(task.get(f) or [None] * n)
    for f in NOTE_FIELDS:
        cols[f] = pa.nulls(n, pa.string())
    for f in REPEATING_DOSSIER:  # as the csv profile reads them: few distinct values, a fraction of the memory
        cols[f] = pc.dictionary_encode(cols[f])
    return pa.table(cols)
