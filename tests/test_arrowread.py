"""Vendor reads as Arrow (reconcile.sources.arrowread) on real SQLite, PostgreSQL and MariaDB: the ADBC
drivers read PostgreSQL and SQLite files, every other case the SQLAlchemy columnar path; both give
str() of the SQLAlchemy value for every column type, the reads are read-only, and the current task is
the first task row of each dossier."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from test_sources import MAPPING, vendor_database, vendor_url  # noqa: F401 (vendor_url: a fixture)

from reconcile.util.db import connect_engine
from reconcile.errors import BadInput
from reconcile.sources import arrowread
from reconcile.sources.system import _read_only, load_mapping_profile

PG_VALUES = [  # (column type, values): every value's text must be str() of what psycopg returns
    ("text", ["Nguyễn Văn A", None, "  spaced  "]),
    ("varchar(20)", ["HS-01", "", None]),
    ("char(4)", ["ab", "abcd", None]),
    ("smallint", [1, -2, None]),
    ("integer", [0, 2_147_483_647, None]),
    ("bigint", [9_007_199_254_740_993, None, -1]),
    ("boolean", [True, False, None]),
    ("date", [dt.date(2021, 1, 2), dt.date(1, 1, 1), None]),
    ("timestamp", [dt.datetime(2021, 1, 2, 3, 4, 5), dt.datetime(2021, 1, 2, 3, 4, 5, 250_000), None]),
    ("numeric(8,2)", [Decimal("1.50"), Decimal("-0.01"), None]),  # the SQLAlchemy path's text
    ("double precision", [1.0, 2.5, None]),
    ("timestamptz", [dt.datetime(2021, 1, 2, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=7))), None, None]),
]


def _read(engine: sa.Engine, stmt: sa.Select[Any]) -> dict[str, list[Any]]:
    parts = list(arrowread.text_batches(engine, stmt, 2, lambda: _read_only(engine)))
    table = pa.concat_tables(parts) if parts else None
    assert table is not None and all(t == pa.string() for t in table.schema.types)
    return table.to_pydict()


def _str_of_sqlalchemy(engine: sa.Engine, stmt: sa.Select[Any]) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        result = conn.execute(stmt)
        names, rows = list(result.keys()), result.all()
    return {n: [None if r[i] is None else str(r[i]) for r in rows] for i, n in enumerate(names)}


def _no_sqlalchemy_reading(*_: Any) -> Any:
    raise AssertionError("read through SQLAlchemy where ADBC applies")


def test_postgresql_columns_read_by_adbc_are_str_of_the_sqlalchemy_values(pg_url: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    engine = sa.create_engine(pg_url)
    plain = [(t, v) for t, v in PG_VALUES if t not in ("numeric(8,2)", "double precision", "timestamptz")]
    with engine.begin() as conn:
        for name, rows in (("plain", plain), ("every", PG_VALUES)):
            conn.exec_driver_sql(f"CREATE TABLE {name} ({', '.join(f'c{i} {t}' for i, (t, _) in enumerate(rows))})")
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            conn.execute(table.insert(), [{f"c{i}": v[r] for i, (_, v) in enumerate(rows)} for r in range(3)])
    ro = connect_engine(pg_url, what="system database", read_only=True)
    for name in ("plain", "every"):
        stmt = sa.select(sa.Table(name, sa.MetaData(), autoload_with=engine)).order_by(sa.text("c0 NULLS LAST"))
        expected = _str_of_sqlalchemy(engine, stmt)
        assert _read(ro, stmt) == expected
    # the plain types never touch SQLAlchemy's reading; a numeric, float or zoned column sends the
    # whole statement there (the text above is the same either way)
    with monkeypatch.context() as m:
        m.setattr(arrowread, "_sqlalchemy_batches", _no_sqlalchemy_reading)
        plain_stmt = sa.select(sa.Table("plain", sa.MetaData(), autoload_with=engine))
        assert _read(ro, plain_stmt)["c0"].count(None) == 1
        with pytest.raises(AssertionError, match="through SQLAlchemy"):
            _read(ro, sa.select(sa.Table("every", sa.MetaData(), autoload_with=engine)))
    assert set(expected["c8"]) == {"2021-01-02 03:04:05", "2021-01-02 03:04:05.250000", None}
    assert set(expected["c6"]) == {"True", "False", None}
    ro.dispose()
    engine.dispose()


def test_sqlite_values_of_any_type_read_by_adbc_are_str_of_the_sqlite3_values(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vendor.sqlite"
    con = sqlite3.connect(path)
    # no declared type: a column may hold integers, text and reals (the ADBC driver alone refuses that)
    con.execute("CREATE TABLE t (a, b INTEGER, c TEXT)")
    rows = [(i, i, f"x{i}") for i in range(3000)] + [("text", None, None), (1.5, 7, "y"), (None, -1, "")]
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    con.commit()
    con.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    url = f"sqlite:///{path}"
    ro = connect_engine(url, what="system database", read_only=True)
    stmt = sa.select(sa.Table("t", sa.MetaData(), autoload_with=ro))
    with monkeypatch.context() as m:
        m.setattr(arrowread, "_sqlalchemy_batches", _no_sqlalchemy_reading)
        got = _read(ro, stmt)
    assert got == _str_of_sqlalchemy(ro, stmt)
    assert got["a"][-3:] == ["text", "1.5", None] and got["b"][:2] == ["0", "1"]
    ro.dispose()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_sqlite_columns_sqlalchemy_converts_are_read_by_sqlalchemy(tmp_path: Path) -> None:
    """A declared DATETIME is a datetime to SQLAlchemy (and so to apply's fingerprints): read there."""
    path = tmp_path / "vendor.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a TEXT, at DATETIME)")
    con.execute("INSERT INTO t VALUES ('x', '2021-01-02 03:04:05')")
    con.commit()
    con.close()
    ro = connect_engine(f"sqlite:///{path}", what="system database", read_only=True)
    stmt = sa.select(sa.Table("t", sa.MetaData(), autoload_with=ro))
    assert not arrowread._adbc_renders(ro, stmt)
    assert _read(ro, stmt) == {"a": ["x"], "at": ["2021-01-02 03:04:05"]}
    ro.dispose()


def test_adbc_applies_to_postgresql_and_sqlite_files_only() -> None:
    uri = arrowread.adbc_uri(sa.engine.make_url("postgresql+psycopg://u:pw@h:5433/db?options=-csearch_path%3Ds"))
    assert uri == "postgresql://u:pw@h:5433/db?options=-csearch_path%3Ds"
    assert arrowread.adbc_uri(sa.engine.make_url("sqlite:////data/a b%#.sqlite")) == "file:/data/a%20b%25%23.sqlite?mode=ro"
    for other in ("mysql+pymysql://root@h/db", "mariadb+pymysql://root@h/db", "sqlite://",
                  "sqlite:///file:x.db?mode=ro&uri=true", "duckdb:///x.duckdb"):
        assert arrowread.adbc_uri(sa.engine.make_url(other)) is None


def test_the_adbc_postgresql_session_is_read_only_and_takes_one_statement(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (a int)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        conn.exec_driver_sql("CREATE SEQUENCE counter")
    ro = connect_engine(pg_url, what="system database", read_only=True)
    cases = {
        "SELECT nextval('counter') AS n": "cannot execute nextval() in a read-only transaction",
        "SELECT a FROM t) q; COMMIT; CREATE TABLE pwned (a int); SELECT 1 AS a FROM (SELECT 1":
            "cannot insert multiple commands into a prepared statement",
    }
    for query, refusal in cases.items():
        stmt = sa.select(sa.column("a" if "pwned" in query else "n")).select_from(sa.text(f"({query}) AS q"))
        with pytest.raises(arrowread.DriverError) as caught:
            _read(ro, stmt)
        assert str(caught.value) == refusal
    conn = arrowread._adbc_connect("postgresql", arrowread.adbc_uri(ro.url) or "")
    assert conn is not None
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        conn.commit()  # what an escaped COMMIT would do: the next transaction is read-only all the same
        with pytest.raises(Exception, match="read-only transaction"):
            cur.execute("CREATE TABLE pwned (a int)")
    conn.close()
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT is_called FROM counter").scalar() is False
        assert "pwned" not in sa.inspect(c).get_table_names()
    ro.dispose()
    engine.dispose()


def test_the_adbc_sqlite_file_is_opened_read_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vendor.sqlite'}"
    vendor_database(url)
    before = hashlib.sha256((tmp_path / "vendor.sqlite").read_bytes()).hexdigest()
    conn = arrowread._adbc_connect("sqlite", arrowread.adbc_uri(sa.engine.make_url(url)) or "")
    assert conn is not None
    with conn.cursor() as cur:
        for statement in ("CREATE TABLE pwned (a int)", 'DELETE FROM "HS_HOSO"'):
            with pytest.raises(Exception, match="(?i)readonly|read-only|query_only"):
                cur.execute(statement)
    conn.close()
    assert hashlib.sha256((tmp_path / "vendor.sqlite").read_bytes()).hexdigest() == before


def _profile_rows(url: str, mapping: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data = load_mapping_profile(url, mapping)
    dossiers = sorted(data.dossiers.to_pylist(), key=lambda r: r["source_row"])
    return dossiers, data.events.to_pylist()


def test_every_reader_gives_the_same_batches_and_the_first_task_of_each_dossier(
        tmp_path: Path, vendor_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    vendor_database(vendor_url)
    engine = sa.create_engine(vendor_url)
    q = "`" if vendor_url.startswith("mysql") else '"'
    with engine.begin() as conn:  # a second (later) task row for the first dossier, and one without a code
        first = conn.exec_driver_sql(f"SELECT {q}MA_HOSO{q} FROM {q}HS_XULY_HIENTAI{q} LIMIT 1").scalar()
        conn.exec_driver_sql(f"INSERT INTO {q}HS_XULY_HIENTAI{q} VALUES ('{first}', 'LATER', 'x', 'y')")
        conn.exec_driver_sql(f"INSERT INTO {q}HS_XULY_HIENTAI{q} VALUES (NULL, 'S9', 'x', 'y')")
    engine.dispose()
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    auto = _profile_rows(vendor_url, mapping)
    monkeypatch.setenv(arrowread.READER_ENV, "sqlalchemy")
    assert _profile_rows(vendor_url, mapping) == auto
    dossiers, events = auto
    assert len(dossiers) == 16 and [r["source_row"] for r in dossiers] == list(range(1, 17)) and len(events) > 0
    row = next(r for r in dossiers if r["dossier_code"] == first)
    assert row["current_step"] != "LATER" and row["current_step"] is not None
    assert {r["status"] for r in dossiers} <= {"submitted", "received", "in_progress", "supplement_requested",
                                               "awaiting_payment", "finished", "returned", "withdrawn", "stopped",
                                               "rejected"}
    assert all(r["status_raw"].isdigit() for r in dossiers)


def test_a_status_value_that_appears_after_the_check_is_one_line(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'vendor.sqlite'}"
    vendor_database(url)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    data = load_mapping_profile(url, mapping)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE HS_HOSO SET TRANGTHAI = 42 WHERE rowid = 3")
    engine.dispose()
    with pytest.raises(BadInput, match=r"HS_HOSO\.TRANGTHAI holds value\(s\) '42' with no canonical status"):
        list(data.dossier_batches())


def test_read_ahead_hands_over_every_batch_the_producers_error_and_stops_with_the_consumer() -> None:
    assert list(arrowread.prefetch(iter(range(10)), depth=2)) == list(range(10))

    def failing() -> Any:
        yield 1
        raise BadInput("row 2: broken")

    got = []
    with pytest.raises(BadInput, match="row 2: broken"):
        for x in arrowread.prefetch(failing()):
            got.append(x)
    assert got == [1]

    closed = []

    def endless() -> Any:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)  # the producer's connection would be closed here

    reader = arrowread.prefetch(endless(), depth=1)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()
    assert closed == [True]


def test_mariadb_columns_read_by_the_server_side_cursor_are_str_of_the_sqlalchemy_values(mariadb_url: str) -> None:
    engine = sa.create_engine(mariadb_url)
    types = ["varchar(20)", "int", "bigint", "tinyint(1)", "date", "datetime(6)", "decimal(8,2)", "double", "text"]
    values = [("a", 1, 2**40, 1, dt.date(2021, 1, 2), dt.datetime(2021, 1, 2, 3, 4, 5), Decimal("1.50"), 1.0, "ư"),
              ("b", -1, None, 0, None, dt.datetime(2021, 1, 2, 3, 4, 5, 250_000), None, 2.5, None),
              (None, None, 3, None, dt.date(1000, 1, 1), None, Decimal("-0.01"), None, "")]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE t ({', '.join(f'c{i} {t}' for i, t in enumerate(types))})")
        table = sa.Table("t", sa.MetaData(), autoload_with=conn)
        conn.execute(table.insert(), [{f"c{i}": v for i, v in enumerate(row)} for row in values])
    ro = connect_engine(mariadb_url, what="system database", read_only=True)
    assert arrowread.adbc_uri(ro.url) is None
    stmt = sa.select(sa.Table("t", sa.MetaData(), autoload_with=engine))
    got = _read(ro, stmt)
    assert got == _str_of_sqlalchemy(engine, stmt)
    assert got["c5"][:2] == ["2021-01-02 03:04:05", "2021-01-02 03:04:05.250000"] and got["c6"][0] == "1.50"
    ro.dispose()
    engine.dispose()
