"""One compare-and-set write of one row (`Write`), a batch's writes grouped by shape (one statement
each, executemany), and their SQL text as shown in a dry run or a --sql script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa

from reconcile.fix.planread import PlanAction
from reconcile.fix.values import ABSENT, row_key_text


@dataclass(frozen=True, slots=True)
class Write:
    """One UPDATE of one row: compare-and-set on the written columns. Every before-value ABSENT: the
    INSERT of the row (a backfill); every after-value ABSENT: its compare-and-set DELETE (undo)."""

    dossier_code: str
    action: str
    rule: str | None
    table: sa.Table
    key: tuple[tuple[str, Any], ...]  # key column -> value
    columns: tuple[tuple[str, str, Any, Any], ...]  # column, field, before, after

    @property
    def kind(self) -> str:
        if self.columns and all(before is ABSENT for _, _, before, _ in self.columns):
            return "insert"
        return "delete" if self.columns and all(after is ABSENT for _, _, _, after in self.columns) else "update"

    def statement(self) -> sa.Insert | sa.Update | sa.Delete:
        t, kind = self.table, self.kind
        if kind == "insert":
            return sa.insert(t).values(dict(self.key) | {c: after for c, _, _, after in self.columns})
        cond = [t.c[k] == v for k, v in self.key]
        cond += [t.c[c].is_(None) if before is None else t.c[c] == before for c, _, before, _ in self.columns]
        if kind == "delete":
            return sa.delete(t).where(*cond)
        return sa.update(t).where(*cond).values({c: after for c, _, _, after in self.columns})

    def row_key(self) -> str:
        return row_key_text(self.key)

    def shape(self) -> tuple[Any, ...]:
        """What the statement's text and bind types depend on: writes of one shape share one `template()`."""
        return (self.table, tuple((k, type(v)) for k, v in self.key),
                tuple((c, None if before is None else type(before), after is None)
                      for c, _, before, after in self.columns))

    def template(self, value: Callable[[str, sa.types.TypeEngine[Any]], Any] | None = None) -> sa.Update:
        """`statement()` with bound parameters instead of values (see `params()`), for executemany;
        bound with the types `statement()` gives its values. `value(name, type)` replaces the parameters."""
        t, eq = self.table, sa.sql.operators.eq
        value = value or (lambda name, type_: sa.bindparam(name, type_=type_))
        cond = [t.c[k] == value(f"k{i}", t.c[k].type.coerce_compared_value(eq, v))
                for i, (k, v) in enumerate(self.key)]
        cond += [t.c[c].is_(None) if before is None else
                 t.c[c] == value(f"b{i}", t.c[c].type.coerce_compared_value(eq, before))
                 for i, (c, _, before, _) in enumerate(self.columns)]
        return sa.update(t).where(*cond).values({c: sa.null() if after is None else value(f"a{i}", t.c[c].type)
                                                 for i, (c, _, _, after) in enumerate(self.columns)})

    def params(self) -> dict[str, Any]:
        out = {f"k{i}": v for i, (_, v) in enumerate(self.key)}
        for i, (_, _, before, after) in enumerate(self.columns):
            if before is not None:
                out[f"b{i}"] = before
            if after is not None:
                out[f"a{i}"] = after
        return out


def render_sql(stmt: Any, dialect: sa.Dialect) -> str:
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).replace("\n", " ") + ";"


class Renderer:
    """`render_sql(w.statement())` for many writes at the cost of one compile per shape: the shape's
    statement is compiled once with markers for its values, each write's values are rendered as
    literals of the types `statement()` binds them with (tests check the text is the same). A dry run or a
    --sql script of 100k writes compiles a few statements, not 100k (about 1 ms each)."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self.compiler = sa.select(sa.literal(1)).compile(dialect=dialect)
        self.shapes: dict[tuple[Any, ...], tuple[list[str], dict[str, sa.types.TypeEngine[Any]]]] = {}

    def __call__(self, w: Write) -> str:
        if w.kind != "update":  # backfills and their undo: few
            return render_sql(w.statement(), self.dialect)
        shape = w.shape()
        if shape not in self.shapes:
            types: dict[str, sa.types.TypeEngine[Any]] = {}

            def marker(name: str, type_: sa.types.TypeEngine[Any]) -> Any:
                types[name] = type_
                return sa.literal_column(f"\x00{name}\x00")

            self.shapes[shape] = (render_sql(w.template(marker), self.dialect).split("\x00"), types)
        parts, types = self.shapes[shape]
        params = w.params()
        out = list(parts)
        for i in range(1, len(out), 2):
            out[i] = self.compiler.render_literal_value(params[out[i]], types[out[i]])
        return "".join(out)


@dataclass(frozen=True, slots=True, eq=False)
class WriteGroup:
    """Writes of one kind and shape (`Write.shape`) as rows of values: one statement runs them all
    (executemany: a batch of 5000 UPDATEs is one driver call, not 5000) and the change log takes their
    cells column by column. A row is made a `Write` only to show its statement."""

    table: sa.Table
    key: tuple[str, ...]  # key columns
    columns: tuple[tuple[str, str], ...]  # written column, field
    rows: list[tuple[str, str, str | None, tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]] = field(
        default_factory=list)  # dossier code, action, rule, key values, before-values, after-values

    def add(self, code: str, action: str, rule: str | None, key: tuple[Any, ...], before: tuple[Any, ...],
            after: tuple[Any, ...]) -> Ref:
        self.rows.append((code, action, rule, key, before, after))
        return self, len(self.rows) - 1

    def write(self, i: int) -> Write:
        code, action, rule, key, before, after = self.rows[i]
        return Write(code, action, rule, self.table, tuple(zip(self.key, key)),
                     tuple((c, f, b, a) for (c, f), b, a in zip(self.columns, before, after)))

    def params(self) -> dict[str, list[Any]]:
        """`Write.params()` of every row, as columns (name -> values)."""
        _, _, _, keys, before, after = zip(*self.rows)
        of = {"k": keys, "b": before, "a": after}
        return {n: [v[int(n[1:])] for v in of[n[0]]] for n in self.write(0).params()}

    def row_keys(self) -> list[str]:
        """`Write.row_key()` of every row."""
        return [row_key_text(tuple(zip(self.key, key))) for _, _, _, key, _, _ in self.rows]


Ref = tuple[WriteGroup, int]  # a write: its group and row
Planned = list[tuple[PlanAction, str, str, tuple[Ref, ...]]]  # per action: state, detail, its writes


def group_writes(writes: list[Write]) -> list[Ref]:
    """Writes as rows of groups, one group per kind and shape, in the writes' order."""
    groups: dict[tuple[Any, ...], WriteGroup] = {}
    refs = []
    for w in writes:
        shape = (w.kind, w.shape())
        g = groups.get(shape)
        if g is None:
            g = groups[shape] = WriteGroup(w.table, tuple(k for k, _ in w.key),
                                           tuple((c, f) for c, f, _, _ in w.columns))
        refs.append(g.add(w.dossier_code, w.action, w.rule, tuple(v for _, v in w.key),
                          tuple(b for _, _, b, _ in w.columns), tuple(a for _, _, _, a in w.columns)))
    return refs


def with_refs(planned: list[tuple[PlanAction, str, str, list[Write]]]) -> Planned:
    """Planned actions with their writes grouped (see `group_writes`)."""
    refs = iter(group_writes([w for *_, ws in planned for w in ws]))
    return [(a, state, detail, tuple(next(refs) for _ in ws)) for a, state, detail, ws in planned]
