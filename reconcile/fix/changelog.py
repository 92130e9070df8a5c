"""The change log in the store (change_batch, change, batch_outcome): a batch's change rows built
from its writes, an undo's copied swapped, outcomes recorded, and a batch's rows read back decoded.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from contextlib import nullcontext
from dataclasses import dataclass
import json
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.fix.rows import read_arrow
from reconcile.fix.values import decode_values, encode_value
from reconcile.fix.writes import Ref, WriteGroup
from reconcile.store import batch_outcome, change, Store
from reconcile.util.stamps import now_text

CHANGE_COLUMNS = ("dossier_code", "action", "rule", "table_name", "row_key", "column_name", "field", "before_value",
                  "after_value")


def record_outcome(store: Store, batch_id: int, outcome: str, conn: Connection | None = None) -> bool:
    """Record a batch's outcome in its own store transaction (on `conn`, else a new connection); False
    when it has one already: another apply or undo settled it from the target's rows meanwhile."""
    with (store.connect() if conn is None else nullcontext(conn)) as c:
        try:
            with c.begin():
                c.execute(sa.insert(batch_outcome).values(batch_id=batch_id, outcome=outcome, finished_at=now_text()))
        except sa.exc.IntegrityError:
            return False
    return True


def change_rows(refs: list[Ref]) -> pa.Table:
    """The change rows of a batch's writes (without batch_id): each write's columns in turn, in the
    writes' order (seq), built column by column from each group's rows."""
    starts: dict[WriteGroup, list[int]] = {}  # per group: the seq before each row's first cell
    n = 0
    for g, i in refs:
        at = starts.get(g)
        if at is None:
            at = starts[g] = [0] * len(g.rows)
        at[i] = n
        n += len(g.columns)
    parts = []
    for g, at in starts.items():
        codes, actions, rules, _, befores, afters = (list(c) for c in zip(*g.rows))
        row_keys = pa.array(g.row_keys(), pa.string())
        for j, (c, f) in enumerate(g.columns):
            parts.append(pa.table({
                "seq": pa.array([s + j + 1 for s in at], pa.int64()), "dossier_code": pa.array(codes, pa.string()),
                "action": pa.array(actions, pa.string()), "rule": pa.array(rules, pa.string()),
                "table_name": pa.array([g.table.name] * len(at), pa.string()), "row_key": row_keys,
                "column_name": pa.array([c] * len(at), pa.string()), "field": pa.array([f] * len(at), pa.string()),
                "before_value": _encoded([b[j] for b in befores]), "after_value": _encoded([a[j] for a in afters])}))
    if not parts:
        return pa.table({"seq": pa.array([], pa.int64()),
                         **{name: pa.array([], pa.string()) for name in CHANGE_COLUMNS}})
    cells = pa.concat_tables(parts)
    return cells if len(parts) == 1 else cells.sort_by("seq")


def _encoded(values: list[Any]) -> pa.Array:
    """`encode_value` of each value, as an Arrow column."""
    return pa.array([encode_value(v) for v in values], pa.string())


def copy_swapped(log: Connection, of: int, batch_id: int) -> None:
    """An undo's change rows: those of batch `of` (in its order), before- and after-values swapped, with
    one INSERT ... SELECT in the store."""
    c = change
    swap = {"before_value": c.c.after_value, "after_value": c.c.before_value}
    log.execute(sa.insert(c).from_select(["batch_id", "seq", *CHANGE_COLUMNS], sa.select(
        sa.literal(batch_id, sa.Integer), c.c.seq, *[swap.get(n, c.c[n]) for n in CHANGE_COLUMNS])
        .where(c.c.batch_id == of)))


@dataclass(frozen=True, slots=True)
class Logged:
    """A batch's change rows as columns, in their order (seq): the stored texts (CHANGE_COLUMNS), the
    values decoded, each row's key (its key columns, and its value: a tuple when several columns), and
    the rows' positions by table and key columns (each group is read and written with one statement)."""

    text: dict[str, list[Any]]
    before: list[Any]
    after: list[Any]
    key_columns: list[tuple[str, ...]]
    keys: list[Any]
    groups: dict[tuple[str, tuple[str, ...]], list[int]]

    def key(self, i: int) -> tuple[tuple[str, Any], ...]:
        """Row i's key as `Write.key`: (column, value) pairs."""
        names = self.key_columns[i]
        return tuple(zip(names, self.keys[i] if len(names) > 1 else (self.keys[i],)))


def read_logged(conn: Connection, batch_ids: list[int]) -> dict[int, Logged]:
    """These batches' change rows, read as columns with one statement (`read_arrow`)."""
    c = change
    names = ("batch_id", *CHANGE_COLUMNS)
    data = read_arrow(conn, sa.select(*[c.c[n] for n in names]).where(c.c.batch_id.in_(batch_ids))
                      .order_by(c.c.batch_id, c.c.seq))
    columns = [data.column(n).to_pylist() for n in names]
    at = columns[0]  # ordered by batch: each batch's rows are one slice of every column
    return {b: _decoded_rows(dict(zip(CHANGE_COLUMNS, [col[bisect_left(at, b):bisect_right(at, b)]
                                                       for col in columns[1:]])))
            for b in batch_ids}


def _decoded_rows(text: dict[str, list[Any]]) -> Logged:
    """A batch's change rows (CHANGE_COLUMNS, in their order) with their values and keys decoded."""
    key_columns, keys = decoded_keys(text["row_key"])
    tables = text["table_name"]
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, g in enumerate(zip(tables, key_columns)):
        groups.setdefault(g, []).append(i)
    return Logged(text, _decoded(text["before_value"]), _decoded(text["after_value"]), key_columns, keys, groups)


def _decoded(texts: list[str | None]) -> list[Any]:
    """decode_value of each text, worked out once per distinct text (a batch's values repeat: the same
    accounts, statuses, dates)."""
    distinct = list(set(texts))
    found = dict(zip(distinct, decode_values(distinct)))
    return [found[text] for text in texts]


def decoded_keys(texts: list[str]) -> tuple[list[tuple[str, ...]], list[Any]]:
    """Each row key (`row_key_text`: key column -> encoded value) as its sorted key columns and its value
    (a tuple when several columns). The distinct keys (a key repeats for each column written in its row)
    are read with one json.loads, their values with another (one each takes 3x as long)."""
    distinct = list(dict.fromkeys(texts))
    keys = json.loads("[" + ",".join(distinct) + "]")
    columns = [tuple(sorted(key)) for key in keys]
    values = iter(decode_values([key[c] for key, cols in zip(keys, columns) for c in cols]))
    found = {}
    for text, cols in zip(distinct, columns):
        value = tuple(next(values) for _ in cols)
        found[text] = (cols, value[0] if len(cols) == 1 else value)
    return [found[text][0] for text in texts], [found[text][1] for text in texts]
