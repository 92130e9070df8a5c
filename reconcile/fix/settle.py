"""What logged cells hold now in the target, and the outcome of batches an interrupted apply or undo
left without one, read from those cells.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import wrote
from reconcile.fix.changelog import Logged, read_logged, record_outcome
from reconcile.fix.targets import for_update, StoreTarget, Target
from reconcile.fix.values import ABSENT, same_value
from reconcile.store import batch_outcome, change_batch, Store, store_name
from reconcile.util.inlists import IN_CHUNK, chunks


def settle(store: Store, target: Target) -> Iterator[str]:
    """Give each batch logged but left without an outcome (a run killed between the log and the
    target's commit, or between the commit and the outcome) its outcome, read from the target. The
    rows are read locked, as a batch locks them: a batch another apply is still writing is waited for,
    never recorded as rolled back while it commits."""
    if isinstance(target, StoreTarget):
        return
    described = json.dumps(target.describe, ensure_ascii=False, sort_keys=True)
    with store.connect() as conn:
        pending = [int(i) for i, t in conn.execute(
            sa.select(change_batch.c.id, change_batch.c.target)
            .where(~sa.exists().where(batch_outcome.c.batch_id == change_batch.c.id))
            .order_by(change_batch.c.id)) if t == described]
        logged = read_logged(conn, pending)
    for batch_id in pending:
        with target.connection(write=True) as locked:
            current = current_values(locked, target, logged[batch_id], lock=True)
            holds_after = all(map(same_value, current, logged[batch_id].after))
            holds_before = all(map(same_value, current, logged[batch_id].before))
            # neither (changed since) or both (cannot tell): left for a person; recorded meanwhile: by its own run
            outcome = "recovered" if holds_after else "rolled_back"
            recorded = holds_after != holds_before and record_outcome(store, batch_id, outcome)
        if holds_after == holds_before:
            yield (f"batch {batch_id} was interrupted and its rows now hold neither its before- nor its after-values; "
                   "left without an outcome (check `reconcile history`).")
        elif recorded:
            wrote(f"the outcome of batch {batch_id} ({outcome}) to the store {store_name(store)}")
            yield (f"batch {batch_id} was interrupted after the target committed: recorded as committed."
                   if holds_after else f"batch {batch_id} was interrupted before the target committed: nothing of "
                   "it was written; recorded as rolled back.")


def current_values(conn: Connection, target: Target, logged: Logged, lock: bool = False,
                   only: list[int] | None = None) -> list[Any]:
    """The value each logged cell (or those at positions `only`) holds now in the target (ABSENT: its
    row is gone), read per table and key columns."""
    out: list[Any] = [ABSENT] * len(logged.keys)
    columns = logged.text["column_name"]
    groups = logged.groups
    if only is not None:
        groups = {}
        for i in only:
            groups.setdefault((logged.text["table_name"][i], logged.key_columns[i]), []).append(i)
    for (tname, names), at in groups.items():
        cols = tuple(sorted({columns[i] for i in at}))
        found = _rows_by_key(conn, target.table(tname), names, cols, list(dict.fromkeys(logged.keys[i] for i in at)),
                             lock)
        pos = {c: len(names) + j for j, c in enumerate(cols)}
        for i in at:
            row = found.get(logged.keys[i])
            if row is not None:
                out[i] = row[pos[columns[i]]]
    return out if only is None else [out[i] for i in only]


def _rows_by_key(conn: Connection, t: sa.Table, names: tuple[str, ...], cols: tuple[str, ...], keys: list[Any],
                 lock: bool) -> dict[Any, Any]:
    """The rows (key columns, then `cols`) holding these keys now, by key (a tuple when several key
    columns), IN_CHUNK keys a statement (`keys_condition`)."""
    found: dict[Any, Any] = {}
    for part in chunks(keys, IN_CHUNK):
        pairs = [tuple(zip(names, key if len(names) > 1 else (key,))) for key in part]
        stmt = sa.select(*[t.c[c] for c in names + cols]).where(keys_condition(t, pairs))
        for row in conn.execute(for_update(stmt, conn, lock)):
            found[tuple(row[:len(names)]) if len(names) > 1 else row[0]] = row
    return found


def keys_condition(t: sa.Table, keys: list[tuple[tuple[str, Any], ...]]) -> Any:
    """WHERE for the rows with these keys: one IN list when the keys differ in one column only (a
    dossier code; a store row's source_row within its run), else one AND per key."""
    names = [c for c, _ in keys[0]]
    if all([c for c, _ in kv] == names for kv in keys):
        varying = [i for i in range(len(names)) if len({kv[i][1] for kv in keys}) > 1]
        if len(varying) <= 1:
            i = varying[0] if varying else len(names) - 1
            return sa.and_(*[t.c[c] == v for j, (c, v) in enumerate(keys[0]) if j != i],
                           t.c[names[i]].in_([kv[i][1] for kv in keys]))
    return sa.or_(*[sa.and_(*[t.c[c] == v for c, v in kv]) for kv in keys])
