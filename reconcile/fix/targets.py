"""Where apply's writes go: the vendor database through the source mapping (`VendorTarget`), or, with
the csv profile, the store's own snapshot of the audit run (`StoreTarget`). A target re-reads a batch's
rows and turns each action into its writes, or into the reason it is refused.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager, nullcontext
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import duckdb
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reconcile.errors import BadInput, Refused
from reconcile.fix.planread import PlanAction, PlanFile, ROLE_OF, WRITING
from reconcile.fix.values import ABSENT, coerce_value, encode_value, same_value
from reconcile.fix.writes import Planned, Ref, with_refs, Write, WriteGroup
from reconcile.sources.system import _reading, _statement, dossier_columns, load_mapping, SourceMapping
from reconcile.sources.workbench import dossier_sql
from reconcile.store import connect_engine, dossier, mask_url, normalize_url, Store
from reconcile.util import scratch, yamlio
from reconcile.util.db import begin_read_only, first_line, same_url
from reconcile.util.dberrors import cannot_write
from reconcile.util.inlists import IN_CHUNK, chunks

StoreRows = dict[str, list[dict[str, Any]]]  # dossier code -> the run's rows: code_raw, source_row, fingerprint

_q = yamlio.shown  # a value from the file in a message: quoted, cut short


class Target:
    """Where the writes go: the vendor database through the mapping, or the store's snapshot."""

    describe: dict[str, Any]
    engine: Engine
    dialect: sa.Dialect

    def begin_read(self) -> Connection:
        raise NotImplementedError

    def begin_write(self) -> Connection:
        raise NotImplementedError

    @contextmanager
    def connection(self, write: bool) -> Iterator[Connection]:
        """One batch's connection: whatever it did not commit (a dry run, a failure) is rolled back, then
        it is closed."""
        conn = self.begin_write() if write else self.begin_read()
        try:
            yield conn
        finally:
            if conn.in_transaction():
                conn.rollback()
            conn.close()

    def plan_batch(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        raise NotImplementedError

    def plan_inserts(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        """The backfills' INSERTs, after re-reading the rows that hold their codes now."""
        raise NotImplementedError

    def table(self, name: str) -> sa.Table:
        raise NotImplementedError

    def needs(self, plan: PlanFile) -> dict[str, dict[str, tuple[str, ...]]]:
        """The writes the plan's confirmed actions make (table -> update/insert -> columns): see probe_writes."""
        return {}

    def written_tables(self) -> list[str]:
        """The tables apply may write."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def for_update(stmt: Any, conn: Connection, lock: bool) -> Any:
    """`stmt` as a locking read when `lock` (FOR UPDATE; on SQLite the write transaction holds the
    database's lock already)."""
    return stmt.with_for_update() if lock and conn.dialect.name in ("postgresql", "mysql", "mariadb") else stmt


def _backfill_outcome(a: PlanAction, found: list[Any], table: sa.Table, key: tuple[tuple[str, Any], ...],
                      values: list[tuple[str, str, Any]]) -> tuple[PlanAction, str, str, list[Write]]:
    """A backfill given the rows holding its code now (`values`: column, field, value to insert): the
    INSERT when there is none; already applied when one holds exactly those values; else refused."""
    if not found:
        return a, "write", "", [Write(a.dossier_code, a.action, a.rule, table, key,
                                      tuple((c, f, ABSENT, v) for c, f, v in values))]
    if len(found) == 1 and all(same_value(getattr(found[0], f), v) for _, f, v in values):
        return a, "already_applied", "", []
    return a, "stale", (f"exists now: {len(found)} row(s) in {table.name} with this code since the audit, not "
                        "holding the planned values; not overwritten"), []


class VendorTarget(Target):
    """The vendor database of the mapping profile: reads and writes through the mapping."""

    def __init__(self, url: str, mapping: SourceMapping, known: StoreRows, run_id: int, recorded: dict[str, str]
                 ) -> None:
        self.url, self.mapping, self.known, self.run_id = url, mapping, known, run_id
        self.describe = {"profile": "mapping", "source": recorded["source"], "mapping": recorded.get("mapping")}
        if url.startswith("sqlite:///") and ":memory:" not in url and not Path(url[len("sqlite:///"):]).is_file():
            raise BadInput(f"system database {url[len('sqlite:///'):]}: no such file. Hint: run apply from the "
                           "folder the audit ran in, or pass --system URL.")
        self.engine = connect_engine(url, what="system database", read_only=True)  # reads; writes: _write_engine
        self._writer: Engine | None = None
        self.workbench: duckdb.DuckDBPyConnection | None = None
        self.dialect = self.engine.dialect
        self.roles = {r: tm for r, tm in (("dossier", mapping.dossier), ("task", mapping.task)) if tm is not None}
        with self.begin_read() as conn:
            self.selects = {r: _statement(conn, tm, mapping) for r, tm in self.roles.items()}
            self.tables = {r: sa.Table(tm.table, sa.MetaData(), autoload_with=conn)
                           for r, tm in self.roles.items() if tm.table}
        inverse: dict[str, list[str]] = {}
        for vendor, canonical in mapping.status_values.items():
            inverse.setdefault(canonical, []).append(vendor)
        self.status_inverse = inverse
        # each role's fields by their position in its rows, and `_sets` of the plan's sets
        self.positions = {r: {f: i for i, f in enumerate(stmt.selected_columns.keys())}
                          for r, stmt in self.selects.items()}
        self.set_plans: dict[tuple[tuple[str, Any], ...], tuple[bool, list[tuple[str, int, str, Any, str]]]] = {}

    def needs(self, plan: PlanFile) -> dict[str, dict[str, tuple[str, ...]]]:
        shapes = {(a.action == "backfill", tuple(f for f, _ in a.set)) for a in plan.actions
                  if a.confirmed and (a.action in WRITING or a.action == "backfill")}
        out: dict[str, dict[str, set[str]]] = {}
        for backfill, fields in shapes:
            for f in fields:
                tm = self.roles["dossier" if backfill else ROLE_OF[f]]
                out.setdefault(tm.table, {}).setdefault("insert" if backfill else "update", set()).add(tm.columns[f])
        return {t: {kind: tuple(sorted(cols)) for kind, cols in kinds.items()} for t, kinds in out.items()}

    def written_tables(self) -> list[str]:
        return [self.tables[role].name for role in self.roles if role in self.tables]

    def check_fields(self, plan: PlanFile) -> None:
        """Every field the plan sets has a column in a mapped table, and a value that column takes (a
        backfill: its dossier role's, once confirmed)."""
        problems = []
        unfit: dict[tuple[str, str, type, Any], str | None] = {}  # a value's problem, None when it fits
        for a in plan.actions:
            if a.action not in WRITING and not (a.action == "backfill" and a.confirmed):
                continue
            for f, v in a.set:
                role = "dossier" if a.action == "backfill" else ROLE_OF[f]
                key = (f, role, type(v), v)
                if key not in unfit:  # plans repeat values (the same accounts, statuses, dates): check each once
                    unfit[key] = self._unfit(f, v, role)
                if unfit[key] is not None:
                    problems.append(f"{plan.path}:{a.line}: set.{f}: {unfit[key]}")
        if problems:
            raise BadInput(problems[0] if len(problems) == 1 else f"{plan.path}: {len(problems)} fields the target "
                           "cannot take", problems)

    def _unfit(self, f: str, v: Any, role: str) -> str | None:
        """Why the field `f` of `role` cannot be written with `v` (no column, no table, not its type), or None."""
        tm = self.roles.get(role)
        if tm is None or f not in tm.columns:
            return (f"the mapping {self.mapping.path} has no {role}.columns.{f}. Hint: map the column, or leave the "
                    "field out of the plan.")
        if not tm.table:
            return (f"{role} is read through a query in {self.mapping.path}; apply writes tables only. Hint: map "
                    f"{role}.table, or use --sql and adapt the script.")
        try:
            self.vendor_value(f, v, role)
        except ValueError as exc:
            return f"{exc}."
        return None

    def vendor_value(self, f: str, v: Any, role: str | None = None) -> tuple[str, Any]:
        """The column of field `f` (of `role`, default the role apply updates it in) and `v` in its type."""
        role = role or ROLE_OF[f]
        col = self.tables[role].c[self.roles[role].columns[f]]
        if f == "status":
            vendor = self.status_inverse.get(v, [])
            if len(vendor) != 1:
                why = "no vendor value" if not vendor else f"several vendor values ({', '.join(vendor)})"
                raise ValueError(f"status {_q(v)} has {why} in {self.mapping.path} status_values. Hint: "
                                 "status_values must name exactly one vendor value for it")
            v = vendor[0]
        try:
            return col.name, coerce_value(v, col)
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(f"{_q(v)} does not fit {col.table.name}.{col.name} ({col.type}): {exc}") from None

    def begin_read(self) -> Connection:
        conn = self.engine.connect()
        begin_read_only(conn)
        return conn

    def begin_write(self) -> Connection:
        if self._writer is None:
            self._writer = _write_engine(self.url)
        try:
            conn = self._writer.connect()
            conn.begin()
        except sa.exc.DBAPIError as exc:
            if cannot_write(exc):  # SQLite: BEGIN IMMEDIATE on a read-only file
                raise Refused(f"{cannot_write_text(self, self.written_tables())}: nothing written.") from None
            raise BadInput(f"system database {mask_url(self.url)}: cannot start a write transaction: "
                           f"{first_line(exc)}. Hint: another program may hold a lock; try again.") from None
        return conn

    def table(self, name: str) -> sa.Table:
        for t in self.tables.values():
            if t.name == name:
                return t
        with self.begin_read() as conn:
            t = sa.Table(name, sa.MetaData(), autoload_with=conn)
        self.tables[f"_{name}"] = t
        return t

    def plan_batch(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        known = self.known  # the audit run's rows: read once (the run does not change)
        found = [known.get(a.dossier_code, ()) for a in actions]
        codes = sorted({r["code_raw"] for rows in found for r in rows if r["code_raw"] is not None})
        rows = {role: self._read(conn, role, codes, lock) for role in self.selects}
        rows.setdefault("task", BatchRows([], ("dossier_code",)))
        fingerprints = self._fingerprints(rows["dossier"], rows["task"])
        groups: dict[tuple[Any, ...], WriteGroup] = {}  # the batch's writes by role and shape (see Write.shape)
        out: Planned = []
        for a, mine in zip(actions, found):
            needs_task, sets = self._sets(a.set)
            state, detail, at = self._find(mine, needs_task, rows)
            if state:
                out.append((a, state, detail, ()))
                continue
            cells = []  # role, column, field, before, after of each value to change
            for role, i, colname, after, f in sets:
                before = rows[role].columns[i][at[role]]
                if not same_value(before, after):
                    cells.append((role, colname, f, before, after))
            if not cells:
                out.append((a, "already_applied", "", ()))
                continue
            fp = fingerprints[at["dossier"]]
            if fp is None or fp.startswith("!"):
                out.append((a, "stale", (fp or "!")[1:] or "cannot recompute the fingerprint", ()))
            elif fp != a.fingerprint:
                out.append((a, "stale", "changed since the audit (fingerprint differs)", ()))
            else:
                out.append((a, "write", "", self._add_writes(groups, a, cells, rows, at)))
        return out

    def _find(self, mine: list[dict[str, Any]], needs_task: bool, rows: dict[str, BatchRows]
              ) -> tuple[str, str, dict[str, Any]]:
        """Where an action's dossier (the audit run's rows `mine`) is among the batch's rows, by role;
        else the state and detail of its refusal."""
        if len(mine) != 1:
            return ("ambiguous", f"{len(mine)} system rows share this code (duplicate_code); fix by hand", {}) \
                if mine else ("missing", f"not among the system dossiers of audit run {self.run_id}", {})
        tm, raw = self.roles, mine[0]["code_raw"]
        code = str(raw)
        nd, nt = rows["dossier"].count(code), rows["task"].count(code)
        if not nd:
            return "missing", (f"no row in {tm['dossier'].table} with {tm['dossier'].columns['dossier_code']} = "
                               f"{raw!r} any more"), {}
        if nd > 1 or (needs_task and nt > 1):
            n, what = (nd, tm["dossier"].table) if nd > 1 else (nt, "task")
            return "ambiguous", f"{n} rows in {what} with code {raw!r}; fix by hand", {}
        if needs_task and not nt:
            return "missing", f"no current task row in {tm['task'].table} (apply does not insert rows)", {}
        return "", "", {"dossier": rows["dossier"].first[code], "task": rows["task"].first.get(code)}

    def _add_writes(self, groups: dict[tuple[Any, ...], WriteGroup], a: PlanAction, cells: list[tuple[Any, ...]],
                    rows: dict[str, BatchRows], at: dict[str, Any]) -> tuple[Ref, ...]:
        """An action's writes (one per role, in the order of its cells) added to the batch's groups."""
        refs = []
        for role in dict.fromkeys([cell[0] for cell in cells]):
            _, cols, fields, befores, afters = zip(*[cell for cell in cells if cell[0] == role])
            key = rows[role].codes_raw[at[role]]
            shape = (role, type(key), cols, fields, tuple(map(type, befores)), tuple(map(type, afters)))
            g = groups.get(shape) or groups.setdefault(shape, WriteGroup(
                self.tables[role], (self.roles[role].columns["dossier_code"],), tuple(zip(cols, fields))))
            refs.append(g.add(a.dossier_code, a.action, a.rule, (key,), befores, afters))
        return tuple(refs)

    def _read(self, conn: Connection, role: str, codes: list[Any], lock: bool) -> BatchRows:
        """The role's rows with these codes (locked when writing): one SELECT per IN_CHUNK codes."""
        select = self.selects[role]
        key = select.selected_columns["dossier_code"].element
        stmt = for_update(select.where(key.in_(sa.bindparam("codes", expanding=True))), conn, lock)
        tm = self.roles[role]
        with _reading(tm, self.mapping) if tm.query else nullcontext():  # the mapping's own SQL failed: one line
            rows = [r for part in chunks(codes, IN_CHUNK)
                    for r in conn.execute(stmt, {"codes": part}).all()]
        return BatchRows(rows, tuple(self.positions[role]))

    def _sets(self, sets: tuple[tuple[str, Any], ...]) -> tuple[bool, list[tuple[str, int, str, Any, str]]]:
        """Whether an action's `set` writes the task; per field: role, position in the role's rows, column,
        value in the column's type, field. Plans repeat sets (the same accounts, statuses, dates): each
        is worked out once."""
        found = self.set_plans.get(sets)
        if found is None:
            cols = [(ROLE_OF[f], self.positions[ROLE_OF[f]][f], *self.vendor_value(f, v), f) for f, v in sets]
            found = self.set_plans[sets] = (any(role == "task" for role, *_ in cols), cols)
        return found

    def plan_inserts(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        table, stmt = self.tables["dossier"], self.selects["dossier"]
        values = {a.line: [(*self.vendor_value(f, v, "dossier"), f) for f, v in a.set] for a in actions}
        codes = {a.line: next(v for c, v, f in values[a.line] if f == "dossier_code") for a in actions}
        key = stmt.selected_columns["dossier_code"].element
        found: dict[Any, list[Any]] = {}
        for part in chunks(sorted(set(codes.values())), IN_CHUNK):
            for r in conn.execute(for_update(stmt.where(key.in_(part)), conn, lock)):
                found.setdefault(r.dossier_code, []).append(r)
        return with_refs([_backfill_outcome(a, found.get(codes[a.line], []), table, ((key.name, codes[a.line]),),
                                            [(c, f, v) for c, v, f in values[a.line]]) for a in actions])

    def _fingerprints(self, dossiers: BatchRows, tasks: BatchRows) -> list[str | None]:
        """The fingerprint of each dossier row as the audit computes it (system.dossier_columns + workbench
        SQL); a row that cannot be read as the audit reads it gets '!' and the reason."""
        status = dossiers.columns[dossiers.fields.index("status")]
        result: list[str | None] = [None] * len(status)
        good = []
        for i, v in enumerate(status):
            raw = "" if v is None else str(v)
            if raw in self.mapping.status_values:
                good.append(i)
            else:
                result[i] = f"!status value {raw!r} has no canonical status in the mapping"
        if not good:
            return result
        columns = {f: [col[i] for i in good] for f, col in zip(dossiers.fields, dossiers.columns) if f != "status"}
        at = [tasks.first.get(dossiers.codes[i]) for i in good]  # each row's current task
        task_columns = {f: [None if i is None else col[i] for i in at] for f, col in zip(tasks.fields, tasks.columns)}
        new = self.workbench is None
        if new:  # one scratch DuckDB for every batch (a new one costs 20-50 ms)
            self.workbench = scratch.connect()
        read = dossier_columns(columns, [status[i] for i in good], task_columns, self.mapping, 0)
        self.workbench.register("raw", read)
        try:
            if new:  # and one view (parsing its SQL costs 10-20 ms a batch)
                self.workbench.execute("CREATE TEMP VIEW fingerprints AS "
                                       f"SELECT source_row, fingerprint FROM ({dossier_sql('raw')})")
            fps = self.workbench.execute("SELECT * FROM fingerprints").fetchall()  # 7 ms a batch less than .sql()
        finally:
            self.workbench.unregister("raw")
        for row_no, fp in fps:
            result[good[row_no]] = fp
        return result

    def close(self) -> None:
        self.engine.dispose()
        if self._writer is not None:
            self._writer.dispose()
        if self.workbench is not None:
            self.workbench.close()


class BatchRows:
    """A role's rows of a batch as columns (in its SELECT's order), and where each dossier code (as
    text) is: its first row, and how many rows have it."""

    def __init__(self, rows: list[Any], fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.columns = list(zip(*rows)) if rows else [()] * len(fields)
        self.codes_raw = self.columns[fields.index("dossier_code")]
        self.codes = [c if type(c) is str else str(c) for c in self.codes_raw]
        self.first: dict[str, int] = {}
        for i, code in enumerate(self.codes):
            self.first.setdefault(code, i)
        self.counts = Counter(self.codes)

    def count(self, code: str) -> int:
        return self.counts[code]


class StoreTarget(Target):
    """The csv profile: the store's own snapshot of the run (its dossier rows) is the system. Its
    fingerprint column is kept up to date by the writes (logged, so undo restores it)."""

    COLUMNS = {f: f for f in ROLE_OF}

    def __init__(self, store: Store, run_id: int) -> None:
        self.store, self.run_id, self.engine, self.dialect = store, run_id, store.engine, store.engine.dialect
        self.describe = {"profile": "csv", "source": f"store snapshot of audit run {run_id}"}

    def check_fields(self, plan: PlanFile) -> None:
        problems = []
        for a in plan.actions:
            for f, v in a.set:
                try:
                    coerce_value(v, dossier.c[f])
                except ValueError as exc:
                    problems.append(f"{plan.path}:{a.line}: set.{f}: {_q(v)} does not fit the store's {f}: {exc}.")
        if problems:
            raise BadInput(problems[0] if len(problems) == 1 else f"{plan.path}: {len(problems)} values the store "
                           "cannot take", problems)

    def begin_read(self) -> Connection:
        conn = self.engine.connect()
        conn.begin()
        return conn

    begin_write = begin_read

    def table(self, name: str) -> sa.Table:
        assert name == dossier.name, name
        return dossier

    def written_tables(self) -> list[str]:
        return [dossier.name]

    def plan_batch(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        d = dossier
        cols = [d.c.source_row, d.c.dossier_code, d.c.fingerprint, d.c.status_raw, *[d.c[f] for f in ROLE_OF]]
        rows: dict[str, list[Any]] = {}
        for part in chunks(sorted({a.dossier_code for a in actions}), IN_CHUNK):
            stmt = sa.select(*cols).where(d.c.run_id == self.run_id, d.c.dossier_code.in_(part))
            for r in conn.execute(for_update(stmt, conn, lock)):
                rows.setdefault(r.dossier_code, []).append(r)
        out = []
        for a in actions:
            found = rows.get(a.dossier_code, [])
            if not found:
                out.append((a, "missing", f"not among the system dossiers of audit run {self.run_id}", []))
                continue
            mine = [r for r in found if r.fingerprint == a.fingerprint]
            if not mine and len(found) == 1 and all(same_value(getattr(found[0], f), coerce_value(v, d.c[f]))
                                                    for f, v in a.set):
                out.append((a, "already_applied", "", []))
                continue
            if not mine:
                out.append((a, "ambiguous", f"{len(found)} system rows share this code and none has the plan's "
                            "fingerprint", []) if len(found) > 1 else
                           (a, "stale", "changed since the audit (fingerprint differs)", []))
                continue
            row = mine[0]
            writes = [(c, f, b, after) for c, f, b, after in
                      [(f, f, getattr(row, f), coerce_value(v, d.c[f])) for f, v in a.set] if not same_value(b, after)]
            if not writes:
                out.append((a, "already_applied", "", []))
                continue
            if any(f == "status" for _, f, _, _ in writes):
                status = dict(a.set)["status"]
                if row.status_raw != status:
                    writes.append(("status_raw", "status_raw", row.status_raw, status))
            new_fp = hashlib.md5(json.dumps([row.fingerprint, [(f, encode_value(v)) for _, f, _, v in writes]])
                                 .encode()).hexdigest()
            writes.append(("fingerprint", "fingerprint", row.fingerprint, new_fp))
            out.append((a, "write", "", [Write(a.dossier_code, a.action, a.rule, d,
                                               (("run_id", self.run_id), ("source_row", row.source_row)),
                                               tuple(writes))]))
        return with_refs(out)

    def plan_inserts(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        """A backfill adds a row to the run's snapshot (after its last source_row), with its code as the
        raw code, its status as the raw status and a fingerprint of its values."""
        d = dossier
        found: dict[str, list[Any]] = {}
        for part in chunks(sorted({a.dossier_code for a in actions}), IN_CHUNK):
            for r in conn.execute(sa.select(d).where(d.c.run_id == self.run_id, d.c.dossier_code.in_(part))):
                found.setdefault(r.dossier_code, []).append(r)
        last = conn.execute(sa.select(sa.func.max(d.c.source_row)).where(d.c.run_id == self.run_id)).scalar() or 0
        out = []
        for a in actions:
            values = [(f, f, coerce_value(v, d.c[f])) for f, v in a.set]
            new = dict(a.set)
            values += [("code_raw", "code_raw", new["dossier_code"]), ("status_raw", "status_raw", new["status"]),
                       ("fingerprint", "fingerprint", hashlib.md5(json.dumps(
                           ["backfill", [(f, encode_value(v)) for _, f, v in values]]).encode()).hexdigest())]
            outcome = _backfill_outcome(a, found.get(a.dossier_code, []), d,
                                        (("run_id", self.run_id), ("source_row", last + 1)), values)
            last += outcome[1] == "write"
            out.append(outcome)
        return with_refs(out)


def _write_engine(url: str) -> Engine:
    """An engine for writing; on SQLite every transaction takes the write lock first (BEGIN IMMEDIATE),
    so the rows read at its start cannot change before it commits."""
    engine = connect_engine(url, what="system database")
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        engine.dispose()
    return engine


def cannot_write_text(target: Target, tables: list[str]) -> str:
    """`the account ... cannot write TABLES`, naming the account of the target's URL."""
    user = target.engine.url.username
    who = f"the account {user!r}" if user else "this process"
    return (f"system database {target.describe['source']}: {who} cannot write {', '.join(tables)} (no privilege, "
            "or the database is read-only)")


def open_target(plan: PlanFile, store: Store, known: StoreRows, system_url: str | None,
                mapping_path: str | None) -> Target:
    profile = plan.system.get("profile")
    if profile == "csv":
        return StoreTarget(store, plan.run)
    if profile != "mapping":
        raise Refused(f"{plan.path}: audit run {plan.run} read the system with the {profile} profile; the tool "
                      "never writes engine tables. Hint: `reconcile tickets` gives the vendor the changes.")
    source = plan.system["source"]
    url = system_url or source
    if system_url is None and "***" in source:
        raise BadInput(f"{plan.path}: the system URL {source} hides a password. Hint: pass --system URL.")
    if system_url is not None and not same_url(mask_url(normalize_url(system_url)), source):
        raise BadInput(f"--system {mask_url(system_url)}: the plan was made from {source}. Hint: apply a plan to "
                       "the database it was audited from.")
    mapping = load_mapping(mapping_path or plan.system.get("mapping") or "")
    target = VendorTarget(url, mapping, known, plan.run, plan.system)
    try:
        target.check_fields(plan)
    except BaseException:
        target.close()
        raise
    return target
