"""Shared fixtures: stores on every engine (DuckDB file, PostgreSQL, MariaDB) and the demo district."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from hypothesis import settings

CASES = Path(__file__).parent / "cases"
PG_URL = os.environ.get("RECONCILE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("RECONCILE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")

# Timing is never asserted in a unit test: no property test has a per-example deadline (a busy CI host
# would fail them at random).
settings.register_profile("reconcile", deadline=None)
settings.load_profile("reconcile")


def _unreachable(what: str, url: str, exc: Exception) -> None:
    msg = f"{what} at {sa.engine.make_url(url).render_as_string(hide_password=True)} is unreachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(f"{msg} (CI is set: database tests must run, not skip)")
    pytest.skip(msg)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema per test, reached through search_path."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        _unreachable("PostgreSQL", PG_URL, exc)
    url = sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB database per test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = sa.create_engine(MARIADB_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    except sa.exc.OperationalError as exc:
        _unreachable("MariaDB", MARIADB_URL, exc)
    yield sa.engine.make_url(MARIADB_URL).set(database=name).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE `{name}`")
    admin.dispose()


@pytest.fixture(params=["duckdb", "postgresql", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The working store on each supported engine."""
    if request.param == "duckdb":
        return str(tmp_path / "store.duckdb")
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """`reconcile demo` once per session: the folder it wrote and the first audit's report."""
    from reconcile.demo.commands import demo

    out = tmp_path_factory.mktemp("demo") / "binh-son-2021-h1"
    return out, demo(out)
