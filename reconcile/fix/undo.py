"""Undo a batch that apply wrote: restore its before-values where the rows still hold its after-values
(compare-and-set), refuse the whole undo otherwise (the moved values listed); the undo is itself a
logged batch. The safety model is apply's (see reconcile.fix.apply)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reconcile.errors import BadInput, Refused
from reconcile.faults import fault
from reconcile.fix.batches import (
    ApplyFailed, execute_writes, executemany_columns, log_and_commit, probe_writes, target_failed,
)
from reconcile.fix.changelog import Logged, read_logged
from reconcile.fix.settle import current_values, settle
from reconcile.fix.targets import StoreTarget, Target, VendorTarget
from reconcile.fix.values import ABSENT, same_value, shown_value
from reconcile.fix.writes import Renderer, Write
from reconcile.fix.ledger import Ledger, stopping
from reconcile.sources.system import load_mapping
from reconcile.store import Store, batch_outcome, change_batch, connect_engine, mask_url, normalize_url, open_store
from reconcile.util.db import same_url
from reconcile.util.gctune import fewer_collections

PREFETCH = 10  # batches whose change rows undo reads with one statement


@dataclass(frozen=True, slots=True)
class UndoResult:
    mode: str  # dry_run | undo
    batch: int
    undo_batch: int | None
    rows: int  # the rows written back, one statement each
    build: Callable[[], list[Write]]  # those statements' writes, built when asked for (the dry run's text)
    render: Callable[[Write], str]
    changes: int
    settled: tuple[str, ...] = ()

    @property
    def writes(self) -> tuple[Write, ...]:
        return tuple(self.build())

    @property
    def statements(self) -> tuple[str, ...]:
        return tuple(map(self.render, self.build()))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "batch": self.batch, "undo_batch": self.undo_batch, "rows": self.rows,
                "changes": self.changes, "statements": list(self.statements), "settled": list(self.settled)}


def undo(batch_id: int, store_url: str | None = None, *, yes: bool = False, system_url: str | None = None,
         actor: str | None = None) -> UndoResult:
    """Restore the before-values of a batch where the rows still hold its after-values; if any row no
    longer does, refuse the whole undo (Refused, exit 3) and list them. The undo is itself a batch."""
    return list(undo_batches([batch_id], store_url, yes=yes, system_url=system_url, actor=actor))[0]


def undo_batches(batch_ids: list[int], store_url: str | None = None, *, yes: bool = False,
                 system_url: str | None = None, actor: str | None = None) -> Iterator[UndoResult]:
    """`undo` of each batch in turn (newest first, as given), yielding each result when done; the first
    refused stops the rest. The store and each target are opened once for all (20 batches: 2 s less)."""
    store = open_store(store_url, create=False)
    targets: dict[tuple[str, int], Target] = {}
    logged: dict[int, Logged] = {}
    probed: set[tuple[Any, ...]] = set()
    try:
        ledger = Ledger(store, "undo", lambda ledger: "reconcile undo " + " ".join(
            str(b) for b in batch_ids if b not in {u for _, u in ledger.done}) + " --yes") if yes else None
        for n, batch_id in enumerate(batch_ids):
            with stopping(ledger), fewer_collections():  # around each batch: not while the caller runs
                result = _undo_next(store, batch_ids, n, targets, logged, probed, system_url, ledger, actor)
            yield result
        if ledger is not None:
            ledger.check_end()
    finally:
        for target in targets.values():
            target.close()
        store.engine.dispose()


def _undo_next(store: Store, batch_ids: list[int], n: int, targets: dict[tuple[str, int], Target],
               logged: dict[int, Logged], probed: set[tuple[Any, ...]], system_url: str | None,
               ledger: Ledger | None, actor: str | None) -> UndoResult:
    """Undo batch_ids[n]: its change rows (read with the next few batches' into `logged`), its target
    (opened and settled once, in `targets`), the writes it needs checked once (`probed`)."""
    batch_id = batch_ids[n]
    with store.connect() as conn:
        if batch_id not in logged:  # the change rows of the next few batches, with one statement
            logged.clear()
            logged.update(read_logged(conn, batch_ids[n:n + PREFETCH]))
        batch = conn.execute(sa.select(change_batch).where(change_batch.c.id == batch_id)).mappings().first()
    if batch is None:
        raise BadInput(f"batch {batch_id}: no such batch in {mask_url(store.url)}. Hint: `reconcile history`.")
    where = (batch["target"], int(batch["run_id"]))
    settled: tuple[str, ...] = ()
    if where not in targets:  # settled once: this run's own batches all get their outcome
        if ledger is not None:
            _refuse_if_not_writable(dict(batch))
        targets[where] = _undo_target(store, dict(batch), system_url)
        settled = tuple(settle(store, targets[where])) if ledger is not None else ()
    target = targets[where]
    if ledger is not None:
        needs = {t: {k: cols for k, cols in kinds.items() if (where, t, k, cols) not in probed}
                 for t, kinds in _needs(logged[batch_id]).items()}
        probe_writes(target, {t: kinds for t, kinds in needs.items() if kinds})
        probed.update((where, t, k, cols) for t, kinds in needs.items() for k, cols in kinds.items())
    return _undo(store, target, dict(batch), logged[batch_id], ledger, actor, settled, n + 1)


def _needs(logged: Logged) -> dict[str, dict[str, tuple[str, ...]]]:
    """The writes restoring a batch makes (table -> update/insert/delete -> columns): see probe_writes."""
    out: dict[str, dict[str, set[str]]] = {}
    for i, (table, column) in enumerate(zip(logged.text["table_name"], logged.text["column_name"])):
        kind = "delete" if logged.before[i] is ABSENT else "insert" if logged.after[i] is ABSENT else "update"
        out.setdefault(table, {}).setdefault(kind, set()).add(column)
    return {t: {kind: tuple(sorted(cols)) for kind, cols in kinds.items()} for t, kinds in out.items()}


def _refuse_if_not_writable(batch: dict[str, Any]) -> None:
    """Undo needs no mapping (the change log names every table and column), but a mapping that no longer
    says `writable: true` is the office's word that the tool must not write there: undo obeys it too."""
    path = json.loads(batch["target"]).get("mapping")
    if path and Path(path).is_file() and not load_mapping(path).writable:
        raise Refused(f"{path}: the mapping does not declare `writable: true` (any more): nothing written. Hint: "
                      f"set it back to true to undo batch {batch['id']}, or `reconcile undo {batch['id']} --dry-run` "
                      "for the statements.")


def _undo_target(store: Store, batch: dict[str, Any], system_url: str | None) -> Target:
    described = json.loads(batch["target"])
    if described["profile"] == "csv":
        return StoreTarget(store, int(batch["run_id"]))
    source = described["source"]
    if system_url is None and "***" in source:
        raise BadInput(f"batch {batch['id']}: the system URL {source} hides a password. Hint: pass --system URL.")
    if system_url is not None and not same_url(mask_url(normalize_url(system_url)), source):
        raise BadInput(f"--system {mask_url(system_url)}: batch {batch['id']} wrote to {source}.")
    target = _UndoVendorTarget(system_url or source, described)
    return target


class _UndoVendorTarget(Target):
    """The vendor database as undo needs it: the logged tables and columns, no mapping."""

    def __init__(self, url: str, described: dict[str, Any]) -> None:
        self.url, self.describe = url, described
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
            raise BadInput(f"system database {url[len('sqlite:///'):]}: no such file. Hint: run undo from the "
                           "folder apply ran in, or pass --system URL.")
        self.engine = connect_engine(url, what="system database", read_only=True)  # reads; writes: _write_engine
        self.dialect = self.engine.dialect
        self._writer: Engine | None = None
        self.workbench: duckdb.DuckDBPyConnection | None = None
        self.tables: dict[str, sa.Table] = {}

    def table(self, name: str) -> sa.Table:
        if name not in self.tables:
            with self.engine.connect() as conn:
                self.tables[name] = sa.Table(name, sa.MetaData(), autoload_with=conn)
        return self.tables[name]

    def written_tables(self) -> list[str]:
        return list(self.tables)

    begin_read = VendorTarget.begin_read
    begin_write = VendorTarget.begin_write
    close = VendorTarget.close


def _undo(store: Store, target: Target, batch: dict[str, Any], logged: Logged, ledger: Ledger | None,
          actor: str | None, settled: tuple[str, ...], n: int) -> UndoResult:
    bid, yes = int(batch["id"]), ledger is not None
    with store.connect() as conn:
        outcome = conn.execute(sa.select(batch_outcome.c.outcome).where(batch_outcome.c.batch_id == bid)).scalar()
        undone = conn.execute(
            sa.select(change_batch.c.id).join(batch_outcome, batch_outcome.c.batch_id == change_batch.c.id)
            .where(change_batch.c.undo_of == bid, batch_outcome.c.outcome.in_(("committed", "recovered")))).scalar()
    if outcome is None:
        raise Refused(f"batch {bid} was interrupted and has no outcome yet. Hint: `reconcile undo {bid} --yes` "
                      "settles it first when the target can tell; else see `reconcile history`.")
    if outcome == "rolled_back":
        raise Refused(f"batch {bid} was rolled back: nothing of it was written, nothing to undo.")
    if undone is not None:
        raise Refused(f"batch {bid} was already undone by batch {undone}.")
    text = logged.text
    tables = {name: target.table(name) for name in dict.fromkeys(text["table_name"])}
    what = f"undo of batch {bid}"
    with target.connection(write=yes) as conn:
        try:
            bulk = _bulk(conn, logged) if yes else {}
            rest = [i for g, at in logged.groups.items() if g not in bulk for i in at]
            # the rows written in bulk are checked by their compare-and-set UPDATEs; the others are read first
            now = current_values(conn, target, logged, yes, rest) if rest else []
            if rest and not all(map(same_value, now, [logged.after[i] for i in rest])):
                _refuse_moved(conn, target, logged, bid, yes)
            if yes:
                try:
                    _write_back(conn, logged, tables, bulk, rest, what)
                except ApplyFailed:  # a compare-and-set matched fewer rows: list the values that moved, if any
                    conn.rollback()
                    _refuse_moved(conn, target, logged, bid, yes)
                    raise
        except sa.exc.DBAPIError as exc:
            conn.rollback()
            raise target_failed(target, exc, what, list(tables)) from None
        undo_id = None
        if ledger is not None:
            fault("after-writes", n)
            meta = {"kind": "undo", "run_id": batch["run_id"], "plan": batch["plan"],
                    "plan_sha256": batch["plan_sha256"], "undo_of": bid}
            undo_id = log_and_commit(store, target, conn, [], meta, n, actor, ledger,
                                     swapped=(len(set(text["dossier_code"])), len(logged.keys)))
    rows = len(set(zip(text["table_name"], text["row_key"])))
    return UndoResult("undo" if yes else "dry_run", bid, undo_id, rows, lambda: _writes_back(logged, tables),
                      Renderer(target.dialect), len(logged.keys), settled)


def _writes_back(logged: Logged, tables: dict[str, sa.Table], at: list[int] | None = None) -> list[Write]:
    """The writes restoring the before-values of the change rows at these positions (default: all), one
    per row, in the order of the rows' first change: the dry run's statements, and the rows
    `_write_back` does not write in bulk."""
    t = logged.text
    code, action, rule, tname, rkey, column, field = (t[n] for n in (
        "dossier_code", "action", "rule", "table_name", "row_key", "column_name", "field"))
    rows: dict[tuple[str, str], list[int]] = {}
    for i in range(len(code)) if at is None else at:
        rows.setdefault((tname[i], rkey[i]), []).append(i)
    return [Write(code[ix[0]], action[ix[0]], rule[ix[0]], tables[tname[ix[0]]], logged.key(ix[0]),
                  tuple((column[i], field[i], logged.after[i], logged.before[i]) for i in ix)) for ix in rows.values()]


def _refuse_moved(conn: Connection, target: Target, logged: Logged, bid: int, lock: bool) -> None:
    """Refuse the undo (Refused) listing every value that no longer holds the batch's after-value."""
    text = logged.text
    current = current_values(conn, target, logged, lock)
    listed = [f"{text['dossier_code'][i]}: {text['table_name'][i]}.{text['column_name'][i]} holds "
              f"{'(row gone)' if now is ABSENT else shown_value(now)}, batch {bid} wrote {shown_value(after)}"
              for i, (now, after) in enumerate(zip(current, logged.after)) if not same_value(now, after)]
    if listed:
        raise Refused(f"undo of batch {bid} refused: {len(listed)} values changed since it was applied; nothing "
                      "written", [f"undo of batch {bid} refused, nothing written: {x}" for x in listed])


def _bulk(conn: Connection, logged: Logged) -> dict[tuple[str, tuple[str, ...]], int]:
    """The groups (table, key columns) `_write_back` writes with one executemany, with their columns a row."""
    if not conn.dialect.supports_sane_multi_rowcount:
        return {}
    found = {g: _alike(logged, at) for g, at in logged.groups.items()}
    return {g: k for g, k in found.items() if k is not None}


def _write_back(conn: Connection, logged: Logged, tables: dict[str, sa.Table],
                bulk: dict[tuple[str, tuple[str, ...]], int], rest: list[int], what: str) -> None:
    """Restore the before-values with compare-and-set UPDATEs: a `bulk` group with one executemany, its
    parameters built from the columns; the `rest` (and backfills' DELETEs and INSERTs) through `execute_writes`.
    A compare-and-set that matches no row: ApplyFailed."""
    for (tname, names), k in bulk.items():
        at = logged.groups[tname, names]
        n = len(at) // k
        keys = [logged.keys[i] for i in at[::k]]
        params = {f"k{j}": list(col) for j, col in enumerate(zip(*keys) if len(names) > 1 else [keys])}
        for j in range(k):
            params[f"b{j}"] = [logged.after[i] for i in at[j::k]]
            params[f"a{j}"] = [logged.before[i] for i in at[j::k]]
        template = _writes_back(logged, tables, at[:k])[0].template()
        matched = executemany_columns(conn, template, params)
        if matched != n:
            codes = [logged.text["dossier_code"][i] for i in at[:5 * k:k]]
            raise ApplyFailed(f"{what}: the {n} UPDATEs of {tname} ({', '.join(codes)}{', ...' if n > 5 else ''}) "
                              f"matched {matched} rows instead of {n} (a row changed during the batch); the batch "
                              "was rolled back.")
    if rest:
        execute_writes(conn, _writes_back(logged, tables, sorted(rest)), what)


def _alike(logged: Logged, at: list[int]) -> int | None:
    """k when the rows at these positions are UPDATEs of k columns a row, logged row after row: each row
    once, the same columns in the same order, each column's compared values of one type and not NULL,
    its restored values all NULL or none, the keys of one type: one statement's executemany then."""
    rkey = [logged.text["row_key"][i] for i in at]
    column = [logged.text["column_name"][i] for i in at]
    k = next((j for j, r in enumerate(rkey) if r != rkey[0]), len(rkey))
    n = len(at) // k
    if n * k != len(at) or column != column[:k] * n or len(set(rkey[::k])) != n \
            or any(rkey[j::k] != rkey[::k] for j in range(1, k)):
        return None
    if len({type(logged.keys[i]) if type(logged.keys[i]) is not tuple else tuple(map(type, logged.keys[i]))
            for i in at}) > 1:
        return None
    for j in range(k):
        before, after = [logged.before[i] for i in at[j::k]], [logged.after[i] for i in at[j::k]]
        if ABSENT in before or ABSENT in after or None in after or len(set(map(type, after))) > 1 \
                or before.count(None) not in (0, n):
            return None
    return k
