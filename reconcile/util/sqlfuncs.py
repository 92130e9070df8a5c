"""Portable SQL functions (JSON building, date differences) compiled per store engine."""

from __future__ import annotations

from string import Formatter
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class _Portable(FunctionElement[Any]):
    """A function whose SQL differs by engine: `sql` maps a dialect name ("" for the rest) to a template
    over the compiled arguments, `{all}` (all of them, comma-separated) or `{0}`, `{1}`... (one each)."""

    inherit_cache = True
    sql: ClassVar[dict[str, str]] = {}


class json_object(_Portable):
    """json_object(k1, v1, k2, v2, ...) as a JSON value (nestable)."""

    inherit_cache = True
    type = sa.Text()
    sql = {"": "json_object({all})", "postgresql": "json_build_object({all})"}


class json_agg(_Portable):
    """Aggregate JSON values into a JSON array, in the order of `order_by` (json_agg(value, order_by)):
    without one each engine keeps its own scan order, and the same run's evidence would differ by store.
    DuckDB's json_group_array is a macro, which takes no ORDER BY; list() is an aggregate and does."""

    inherit_cache = True
    type = sa.Text()
    sql = {"": "to_json(list({0} ORDER BY {1}))", "postgresql": "json_agg({0} ORDER BY {1})",
           "mysql": "JSON_ARRAYAGG({0} ORDER BY {1})", "mariadb": "JSON_ARRAYAGG({0} ORDER BY {1})"}


class json_text(_Portable):
    """A JSON value as text, for storing in a Text column."""

    inherit_cache = True
    type = sa.Text()
    sql = {"": "{all}", "duckdb": "CAST({all} AS VARCHAR)", "postgresql": "CAST({all} AS VARCHAR)"}


class days_between(_Portable):
    """days_between(a, b) = b - a in days, for two dates."""

    inherit_cache = True
    type = sa.Integer()
    sql = {"": "CAST(julianday({1}) - julianday({0}) AS INTEGER)", "duckdb": "date_diff('day', {0}, {1})",
           "postgresql": "({1} - {0})", "mysql": "DATEDIFF({1}, {0})", "mariadb": "DATEDIFF({1}, {0})"}


def obj(**pairs: Any) -> json_object:
    """json_object from keyword arguments; keys are constants, values column expressions."""
    args: list[Any] = []
    for k, v in pairs.items():
        args += [sa.literal_column(f"'{k}'"), v]
    return json_object(*args)


@compiles(_Portable)
def _compile(element: _Portable, compiler: Any, **kw: Any) -> str:
    template = element.sql.get(compiler.dialect.name, element.sql[""])
    if "{all}" in template:
        return template.format(all=compiler.process(element.clauses, **kw))
    # Each argument compiled once, in the order the template shows them: compiling names and registers
    # its bound parameters, so the statement reads as if written by hand.
    args = list(element.clauses)
    done: dict[int, str] = {}
    for _, name, _, _ in Formatter().parse(template):
        if name is not None and int(name) not in done:
            done[int(name)] = compiler.process(args[int(name)], **kw)
    return template.format(*(done.get(i, "") for i in range(len(args))))
