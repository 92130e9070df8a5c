"""A SELECT as an Arrow table, read by many keys (IN lists of IN_CHUNK keys where the store is not DuckDB)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.util.inlists import IN_CHUNK, chunks

def read_arrow(conn: Connection, stmt: sa.Select, code: sa.ColumnElement[Any] | None = None,
               codes: list[str] | None = None) -> pa.Table:
    """A SELECT's rows as an Arrow table (only those whose `code` is one of `codes`, when given): on a
    DuckDB store one query read as Arrow (the codes a registered table: one query for a plan's 100k codes,
    not 200), elsewhere rows (IN lists of IN_CHUNK codes) turned into columns."""
    if conn.dialect.name == "duckdb":
        raw = conn.connection.dbapi_connection
        if code is not None:
            raw.register("_plan_codes", pa.table({"code": pa.array(codes, pa.string())}))
            stmt = stmt.where(code.in_(sa.select(sa.column("code")).select_from(sa.table("_plan_codes"))))
        try:
            sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            raw.complete()  # the connection's last result (read through SQLAlchemy) is done with
            return raw.sql(sql).to_arrow_table()
        finally:
            if code is not None:
                raw.unregister("_plan_codes")
    if code is None:
        rows = conn.execute(stmt).all()
    else:
        rows = [r for part in chunks(sorted(set(codes or ())), IN_CHUNK)
                for r in conn.execute(stmt.where(code.in_(part))).all()]
    columns = list(zip(*rows)) or [()] * len(stmt.selected_columns)
    return pa.table({c.name: pa.array(values, _ARROW_TYPES[c.type.python_type])
                     for c, values in zip(stmt.selected_columns, columns)})


_ARROW_TYPES = {int: pa.int64(), str: pa.string(), bool: pa.bool_()}

