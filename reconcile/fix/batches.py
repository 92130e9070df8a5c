"""A batch on the target: its compare-and-set statements run and counted, its change rows logged in
the store, the target committed, its outcome recorded (the order the safety model needs: see
reconcile.fix.apply); and the check, before any batch, that the account may make the writes.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import ReconcileError, Refused
from reconcile.faults import fault
from reconcile.fix.changelog import change_rows, copy_swapped, record_outcome
from reconcile.fix.ledger import Ledger, store_failed
from reconcile.fix.targets import cannot_write_text, StoreTarget, Target
from reconcile.fix.writes import group_writes, Ref, Write
from reconcile.store import batch_outcome, bulk_insert, change, change_batch, Store
from reconcile.util.db import first_line
from reconcile.util.dberrors import cannot_write, disk_full
from reconcile.util.stamps import actor_name, now_text

LOG_ATTEMPTS = 5  # a batch's log, when applies or undos on one server store keep taking the same next id


class ApplyFailed(ReconcileError):
    """The target rejected a statement: that batch rolled back; earlier batches stay committed."""


def execute_writes(conn: Connection, writes: list[Write], what: str) -> None:
    """`execute_refs` of writes (undo's)."""
    execute_refs(conn, group_writes(writes), what)


def execute_refs(conn: Connection, refs: list[Ref], what: str) -> None:
    """Run the batch's compare-and-set UPDATEs: one statement per group (table, key columns, written
    columns and which before-values are NULL), executed for all its rows at once (executemany) where
    the driver reports the rows matched by an executemany, else row by row. Every UPDATE must match
    exactly one row: the batch's rows are locked since they were read, so each still matches its own
    row, and a total other than the number of UPDATEs means a row changed: the caller rolls back.
    A backfill's INSERT (or its undo's compare-and-set DELETE) runs row by row and must affect one row."""
    groups = list(dict.fromkeys(g for g, _ in refs))  # in the order of their first write
    kinds = {g: g.write(0).kind for g in groups}
    for w in [g.write(i) for g in groups if kinds[g] != "update" for i in range(len(g.rows))]:
        result = conn.execute(w.statement())
        if result.rowcount not in (1, -1 if w.kind == "insert" else 1):  # -1: a driver that does not count
            raise ApplyFailed(f"{what}: the {w.kind.upper()} of {w.dossier_code} in {w.table.name} affected "
                              f"{result.rowcount} rows instead of 1 (the row changed during the batch); the batch "
                              "was rolled back.")
    groups = [g for g in groups if kinds[g] == "update"]
    if not conn.dialect.supports_sane_multi_rowcount:
        for w in [g.write(i) for g in groups for i in range(len(g.rows))]:
            result = conn.execute(w.statement())
            if result.rowcount != 1:
                raise ApplyFailed(f"{what}: the UPDATE of {w.dossier_code} in {w.table.name} matched "
                                  f"{result.rowcount} rows instead of 1 (the row changed during the batch); the "
                                  "batch was rolled back.")
        return
    for g in groups:
        matched = executemany_columns(conn, g.write(0).template(), g.params())
        if matched != len(g.rows):
            codes = ", ".join(r[0] for r in g.rows[:5]) + (", ..." if len(g.rows) > 5 else "")
            raise ApplyFailed(f"{what}: the {len(g.rows)} UPDATEs of {g.table.name} ({codes}) matched "
                              f"{matched} rows instead of {len(g.rows)} (a row changed during the batch); the "
                              "batch was rolled back.")


def executemany_columns(conn: Connection, stmt: sa.Update, columns: dict[str, list[Any]]) -> int:
    """The rows `stmt` matched, executed once per row of `columns` (parameter name -> values) as one
    DBAPI executemany: the statement compiled once, each column through its type's bind processor as
    SQLAlchemy would send it. It skips SQLAlchemy's work per row: 5000 rows in 8 ms instead of 17."""
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect)
    names = list(compiled.positiontup or compiled.binds)
    values = []
    for n in names:
        process = compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
        values.append(columns[n] if process is None else list(map(process, columns[n])))
    params = list(zip(*values)) if compiled.positiontup else [dict(zip(names, v)) for v in zip(*values)]
    return conn.exec_driver_sql(compiled.string, params).rowcount


def target_failed(target: Target, exc: sa.exc.DBAPIError, what: str, tables: list[str]) -> ReconcileError:
    """A batch's statement the target refused, in one line without the SQL or its values (personal data)."""
    if cannot_write(exc):
        return Refused(f"{what}: {cannot_write_text(target, tables)}; this batch was rolled back, nothing of it "
                       "written.")
    why = "its disk is full" if disk_full(exc) else f"it rejected a statement: {first_line(exc)}"
    return ApplyFailed(f"{what}: the system database failed: {why}; this batch was rolled back.")


def probe_writes(target: Target, needs: dict[str, dict[str, tuple[str, ...]]]) -> None:
    """Refuse (exit 3, nothing written) when the account may not make the writes a run needs (table ->
    kind -> columns): each is tried as a statement that matches no row, in a transaction rolled back, so
    the database's own privilege check answers (roles and column grants included). The batches'
    statements are checked by the database again."""
    denied = []
    for name, kinds in sorted(needs.items()):
        t = target.table(name)
        for kind, cols in kinds.items():
            try:
                with target.connection(write=True) as conn:
                    conn.execute(_no_row(t, kind, cols))
            except sa.exc.DBAPIError as exc:
                if not cannot_write(exc):
                    raise ApplyFailed(f"system database {target.describe['source']}: cannot check the right to "
                                      f"write {name}: {first_line(exc)}. Nothing written.") from None
                denied.append(name)
                break
    if denied:
        raise Refused(f"{cannot_write_text(target, denied)}: nothing written. Hint: apply with an account that may "
                      "write them (UPDATE; INSERT for backfills), or --sql FILE writes the statements for a DBA.")


def _no_row(t: sa.Table, kind: str, cols: tuple[str, ...]) -> sa.Executable:
    """A write of `kind` (update, insert, delete) of these columns that matches no row."""
    if kind == "update":
        return sa.update(t).where(sa.false()).values({c: t.c[c] for c in cols})
    if kind == "insert":
        return sa.insert(t).from_select(list(cols), sa.select(*[t.c[c] for c in cols]).where(sa.false()))
    return sa.delete(t).where(sa.false())


def log_and_commit(store: Store, target: Target, conn: Connection, refs: list[Ref], meta: dict[str, Any],
                   write_no: int, actor: str | None, ledger: Ledger, swapped: tuple[int, int] | None = None) -> int:
    """Record the batch and its change rows, commit the target, record the outcome (see reconcile.fix.apply);
    the store is checked to be the one opened before the log and before the target's commit (`ledger`).
    `swapped` (an undo): its dossiers and changes; its change rows are those of batch meta["undo_of"]
    with before- and after-values swapped, copied in the store (`refs` is not read)."""
    same = isinstance(target, StoreTarget)
    ledger.check()  # before the store is touched: a store file deleted would be created again, empty
    log = conn if same else store.engine.connect()
    try:
        cells = None if swapped else change_rows(refs)
        dossiers, changes = swapped or (len(set(cells.column("dossier_code").to_pylist())), cells.num_rows)
        for attempt in range(1, LOG_ATTEMPTS + 1):
            try:
                if not same:
                    log.begin()
                ledger.check(log)
                batch_id = int(log.execute(sa.select(sa.func.coalesce(sa.func.max(change_batch.c.id), 0)))
                               .scalar_one()) + 1
                if attempt == 1:
                    fault("batch-id", write_no)
                log.execute(sa.insert(change_batch).values(
                    id=batch_id, target=json.dumps(target.describe, ensure_ascii=False, sort_keys=True),
                    actor=actor or actor_name(), started_at=now_text(), dossiers=dossiers, changes=changes, **meta))
                if cells is None:
                    copy_swapped(log, meta["undo_of"], batch_id)
                else:
                    bulk_insert(log, change, cells.append_column("batch_id",
                                                                 pa.array([batch_id] * changes, pa.int64())))
                if not same:
                    log.commit()
                else:
                    log.execute(sa.insert(batch_outcome).values(batch_id=batch_id, outcome="committed",
                                                                finished_at=now_text()))
                break
            except sa.exc.IntegrityError as exc:
                # On a server store another apply or undo may log its batch between our max(id) and our
                # INSERT: the store's key refuses the second id. Only the log rolls back (the target's
                # transaction is open, uncommitted), so the batch is logged again under the next id.
                if same or attempt == LOG_ATTEMPTS:
                    raise store_failed(store, exc, "record the batch: another apply or undo kept taking its batch "
                                       "id (this batch was rolled back, nothing of it written)") from None
                log.rollback()
                ledger.log_rolled_back()
            except sa.exc.DBAPIError as exc:
                raise store_failed(store, exc, "record the batch (this batch was rolled back, nothing of it written)"
                                   ) from None
        if not same:
            ledger.logged(batch_id)
        fault("after-log", write_no)
        ledger.check()  # last, before the target commits
        ledger.committing = True
        try:
            conn.commit()
        except sa.exc.DBAPIError as exc:
            if same:
                raise store_failed(store, exc, "commit the batch (this batch was rolled back, nothing of it "
                                    "written)") from None
            raise ApplyFailed(f"batch {batch_id}: the system database failed to commit it: "
                              f"{'its disk is full' if disk_full(exc) else first_line(exc)}.") from None
        ledger.committed(batch_id, meta["undo_of"])
        fault("after-commit", write_no)
        if not same:
            try:
                record_outcome(store, batch_id, "committed", log)
            except sa.exc.DBAPIError as exc:
                raise store_failed(store, exc, f"record that batch {batch_id} was committed (the next apply or "
                                    "undo records it, from the system's rows)") from None
    finally:
        if not same:
            log.close()
    return batch_id
