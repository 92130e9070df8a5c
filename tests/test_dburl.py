"""Database URLs and connections under hostile input, on real SQLite, PostgreSQL, MariaDB and DuckDB: a
mapping's `query:` runs as one statement in a read-only session, passwords are never printed, the store is
a local DuckDB file opened without extensions, a missing SQLite file is not created, driver options and a
store held by another process give one line. Each case checks the exit code, the whole message and that
nothing was written (databases by checksum)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
import yaml

from helpers import invoke
from test_apply import audited, copy_vendor, district, make_plan  # noqa: F401 (district: a fixture)
from test_sources import BASIC, MAPPING, vendor_database, vendor_url  # noqa: F401 (vendor_url: a fixture)

from reconcile.db import connect_engine, mask_url
from reconcile.sources.workbench import connect as workbench
from reconcile.store import open_store

HINT_QUERY = "Hint: a query: is one SELECT statement, and it runs read-only."
SECRET = "S3cret"


def checksum(url: str) -> str:
    """A digest of every table of a database (a SQLite file: its bytes), to prove nothing was written."""
    if url.startswith("sqlite:///"):
        return hashlib.sha256(Path(url[len("sqlite:///"):]).read_bytes()).hexdigest()
    engine = sa.create_engine(url)
    md = sa.MetaData()
    with engine.connect() as conn:
        md.reflect(conn)
        content = {name: sorted(map(repr, conn.execute(sa.select(t)).all())) for name, t in md.tables.items()}
    engine.dispose()
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    names = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    return names


def one_line(result: Any) -> str:
    """The run's only output line (on stderr), with no traceback."""
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def audit_args(tmp_path: Path, system: str, mapping: str | None = None, store: str | None = None) -> list[str]:
    return ["audit", "--register", str(BASIC / "register-2021.csv"), "--system", system,
            *(["--mapping", mapping] if mapping else []), "--workflows", str(BASIC / "workflows"),
            "--as-of", "2021-06-30", "--store", store or str(tmp_path / "store.duckdb")]


def quoted(url: str, name: str) -> str:
    return f"`{name}`" if url.startswith("mysql") else f'"{name}"'

# ------------------------------------------------------------------------------------------ the store

def _sqlite_file(path: Path) -> Path:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE HS_HOSO (MA_HOSO TEXT)")
    engine.dispose()
    return path


STORE_HINT = "the store is a local DuckDB file (default reconcile.duckdb) or a postgresql:// or mysql:// URL"
NOT_A_STORE = {
    "vendor.sqlite": ("a SQLite database, not a DuckDB store. Hint: a vendor database is --system "
                      "sqlite:///vendor.sqlite; " + STORE_HINT + "."),
    "register.csv": "not a DuckDB database. Hint: " + STORE_HINT + ".",
    "book.xlsx": "a Zip archive (an XLSX workbook?), not a DuckDB store. Hint: " + STORE_HINT + ".",
    "folder": "a folder, not a file. Hint: --store FOLDER/reconcile.duckdb.",
    "md:district": "a remote or extension database (md:), not a local file. Hint: " + STORE_HINT
                   + "; a local name with a colon: ./NAME.",
    "motherduck:district": "a remote or extension database (motherduck:), not a local file. Hint: " + STORE_HINT
                           + "; a local name with a colon: ./NAME.",
    "duckdb:///s3://bucket/store.duckdb": "a remote or extension database (s3:), not a local file. Hint: "
                                          + STORE_HINT + "; a local name with a colon: ./NAME.",
    "s3://bucket/store.duckdb": "s3:// is not a store. Hint: " + STORE_HINT + ".",
    "https://example.org/store.duckdb": "https:// is not a store. Hint: " + STORE_HINT + ".",
}


@pytest.mark.parametrize("store", sorted(NOT_A_STORE))
def test_a_store_that_is_not_a_local_duckdb_file_is_refused_and_left_alone(tmp_path: Path, store: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _sqlite_file(tmp_path / "vendor.sqlite")
    (tmp_path / "register.csv").write_bytes((BASIC / "register-2021.csv").read_bytes())
    import openpyxl

    openpyxl.Workbook().save(tmp_path / "book.xlsx")
    (tmp_path / "folder").mkdir()
    before = {p.name: p.read_bytes() if p.is_file() else None for p in tmp_path.iterdir()}
    line = one_line(invoke(*audit_args(tmp_path, str(BASIC / "system"), store=store), expect=2))
    shown = store.removeprefix("duckdb:///")
    assert line == f"error: store {shown}: {NOT_A_STORE[store]}"
    assert {p.name: p.read_bytes() if p.is_file() else None for p in tmp_path.iterdir()} == before
    assert list((tmp_path / "folder").iterdir()) == []


def _settings(conn: Any) -> list[Any]:
    return list(conn.execute("SELECT current_setting('autoinstall_known_extensions'), "
                             "current_setting('autoload_known_extensions')").fetchone())


def test_every_duckdb_connection_loads_no_extension(tmp_path: Path) -> None:
    """The store (whatever its URL says) and the scratch workbench."""
    store = open_store(str(tmp_path / "a.duckdb"))
    with store.connect() as conn:
        assert _settings(conn.connection.dbapi_connection) == [False, False]
    store.engine.dispose()
    engine = connect_engine(f"duckdb:///{tmp_path / 'b.duckdb'}?autoload_known_extensions=true", what="store")
    with engine.connect() as conn:
        assert _settings(conn.connection.dbapi_connection) == [False, False]
    engine.dispose()
    assert _settings(workbench()) == [False, False]
