"""A scratch in-memory DuckDB: the workbench that normalises rows before a store that is not DuckDB
takes them, and the place where digests and fingerprints are computed over Arrow tables."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from reconcile.util.db import DUCKDB_CONFIG


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh scratch DuckDB in memory (no extensions, the project's memory settings)."""
    return duckdb.connect(":memory:", config=DUCKDB_CONFIG)


def select_arrow(sql: str, sources: dict[str, pa.Table]) -> pa.Table:
    """Run a SELECT over the given Arrow tables (registered under their names) in a scratch DuckDB."""
    wb = connect()
    for name, table in sources.items():
        wb.register(name, table)
    return wb.sql(sql).to_arrow_table()
