"""Portable SQL functions (JSON building, date differences) compiled per store engine."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class json_object(FunctionElement[Any]):
    """json_object(k1, v1, k2, v2, ...) as a JSON value (nestable)."""

    inherit_cache = True
    type = sa.Text()


class json_agg(FunctionElement[Any]):
    """Aggregate JSON values into a JSON array, in the order of `order_by` (json_agg(value, order_by)):
    without one each engine keeps its own scan order, and the same run's evidence would differ by store."""

    inherit_cache = True
    type = sa.Text()


def _agg_args(element: json_agg, compiler: Any, **kw: Any) -> str:
    value, order_by = list(element.clauses)
    return f"{compiler.process(value, **kw)} ORDER BY {compiler.process(order_by, **kw)}"


class json_text(FunctionElement[Any]):
    """A JSON value as text, for storing in a Text column."""

    inherit_cache = True
    type = sa.Text()


class days_between(FunctionElement[Any]):
    """days_between(a, b) = b - a in days, for two dates."""

    inherit_cache = True
    type = sa.Integer()


def obj(**pairs: Any) -> json_object:
    """json_object from keyword arguments; keys are constants, values column expressions."""
    args: list[Any] = []
    for k, v in pairs.items():
        args += [sa.literal_column(f"'{k}'"), v]
    return json_object(*args)


@compiles(json_object)
def _json_object(element: json_object, compiler: Any, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "postgresql")
def _json_object_pg(element: json_object, compiler: Any, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


@compiles(json_agg)
def _json_agg(element: json_agg, compiler: Any, **kw: Any) -> str:
    # DuckDB's json_group_array is a macro, which takes no ORDER BY; list() is an aggregate and does
    return f"to_json(list({_agg_args(element, compiler, **kw)}))"


@compiles(json_agg, "postgresql")
def _json_agg_pg(element: json_agg, compiler: Any, **kw: Any) -> str:
    return f"json_agg({_agg_args(element, compiler, **kw)})"


@compiles(json_agg, "mysql")
@compiles(json_agg, "mariadb")
def _json_agg_my(element: json_agg, compiler: Any, **kw: Any) -> str:
    return f"JSON_ARRAYAGG({_agg_args(element, compiler, **kw)})"


@compiles(json_text)
def _json_text(element: json_text, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(json_text, "duckdb")
@compiles(json_text, "postgresql")
def _json_text_cast(element: json_text, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS VARCHAR)"


@compiles(days_between)
def _days_between(element: days_between, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"CAST(julianday({compiler.process(b, **kw)}) - julianday({compiler.process(a, **kw)}) AS INTEGER)"


@compiles(days_between, "duckdb")
def _days_between_duck(element: days_between, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"date_diff('day', {compiler.process(a, **kw)}, {compiler.process(b, **kw)})"


@compiles(days_between, "postgresql")
def _days_between_pg(element: days_between, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"({compiler.process(b, **kw)} - {compiler.process(a, **kw)})"


@compiles(days_between, "mysql")
@compiles(days_between, "mariadb")
def _days_between_my(element: days_between, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"DATEDIFF({compiler.process(b, **kw)}, {compiler.process(a, **kw)})"
