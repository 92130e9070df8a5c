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

from reconcile.util.db import connect_engine, mask_url
from reconcile.util.scratch import connect as workbench
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
    """The store (whatever its URL says), the scratch workbench and a DuckDB vendor database."""
    store = open_store(str(tmp_path / "a.duckdb"))
    with store.connect() as conn:
        assert _settings(conn.connection.dbapi_connection) == [False, False]
    store.engine.dispose()
    engine = connect_engine(f"duckdb:///{tmp_path / 'b.duckdb'}?autoload_known_extensions=true", what="store")
    with engine.connect() as conn:
        assert _settings(conn.connection.dbapi_connection) == [False, False]
    engine.dispose()
    assert _settings(workbench()) == [False, False]
    engine = connect_engine(f"duckdb:///{tmp_path / 'a.duckdb'}", what="system database", read_only=True)
    with engine.connect() as conn:
        assert _settings(conn.connection.dbapi_connection) == [False, False]
        with pytest.raises(sa.exc.DBAPIError, match="read-only"):
            conn.exec_driver_sql("CREATE TABLE pwned (a int)")
    engine.dispose()


# ------------------------------------------------------------------------------------------ passwords

def test_mask_url_hides_the_password_of_urls_that_do_not_parse() -> None:
    assert {text: mask_url(text) for text in (
        "postgresql://u:S3cret@db:port/x", "post gres://u:S3cret@db/x", "postgresql:/u:S3cret@db/x",
        "/work/postgresql:/u:S3cret@db/x", "u:S3cret@db/x", "postgresql://u:S3/cr:et@db:x/d",
        "mysql://u@db/x?password=S3cret", "host=db password=S3cret", "postgresql://u:S3cret@db/x",
        "reports/2021@home/x.csv", "C:/data/x.csv",
    )} == {
        "postgresql://u:S3cret@db:port/x": "postgresql://u:***@db:port/x",
        "post gres://u:S3cret@db/x": "post gres://u:***@db/x",
        "postgresql:/u:S3cret@db/x": "postgresql:/u:***@db/x",
        "/work/postgresql:/u:S3cret@db/x": "/work/postgresql:/u:***@db/x",
        "u:S3cret@db/x": "u:***@db/x",
        "postgresql://u:S3/cr:et@db:x/d": "postgresql://u:***@db:x/d",
        "mysql://u@db/x?password=S3cret": "mysql://u@db/x?password=***",
        "host=db password=S3cret": "host=db password=***",
        "postgresql://u:S3cret@db/x": "postgresql://u:***@db/x",
        "reports/2021@home/x.csv": "reports/2021@home/x.csv",  # no credentials: unchanged
        "C:/data/x.csv": "C:/data/x.csv",
    }


BAD_URLS = {  # URLs that do not parse (or name a folder), each with a planted password
    "bad_port": f"postgresql://clerk:{SECRET}@127.0.0.1:port/igate",
    "space": f"post gres://clerk:{SECRET}@127.0.0.1/igate",
    "one_slash": f"postgresql:/clerk:{SECRET}@127.0.0.1/igate",
}


@pytest.fixture(scope="module")
def applied(district: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:  # noqa: F811
    """The demo district audited and one batch applied: (store, plan, the mapping made not writable, so
    that tickets run apply's dry run)."""
    tmp = tmp_path_factory.mktemp("applied")
    _, store, mapping = audited(district, tmp)
    plan = tmp / "plan.yaml"
    make_plan(store, plan, reassign=1, close=0)
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    readonly = tmp / "readonly.yaml"
    readonly.write_text(mapping.read_text(encoding="utf-8").replace("writable: true", "writable: false"),
                        encoding="utf-8")
    return store, plan, readonly


@pytest.mark.parametrize("bad", sorted(BAD_URLS))
@pytest.mark.parametrize("command", ["audit --system", "audit --system --mapping", "audit --store", "history --store",
                                     "apply --system", "undo --system", "tickets --system", "simulate --system-url",
                                     "project file system", "project file store"])
def test_a_password_in_a_url_that_does_not_parse_is_never_printed(tmp_path: Path, command: str, bad: str,
                                                                  applied: tuple[str, Path, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url = BAD_URLS[bad]
    store, plan, readonly = applied
    monkeypatch.chdir(tmp_path)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    new_store = str(tmp_path / "new.duckdb")
    args = {
        "audit --system": audit_args(tmp_path, url, store=new_store),
        "audit --system --mapping": audit_args(tmp_path, url, str(mapping), store=new_store),
        "audit --store": audit_args(tmp_path, str(BASIC / "system"), store=url),
        "history --store": ["history", "--store", url],
        "apply --system": ["apply", str(plan), "--store", store, "--system", url, "--dry-run"],
        "undo --system": ["undo", "1", "--store", store, "--system", url, "--dry-run"],
        "tickets --system": ["tickets", "--store", store, "--plan", str(plan), "--system", url,
                             "--mapping", str(readonly), "--out", str(tmp_path / "tickets")],
        "simulate --system-url": ["simulate", "--out", str(tmp_path / "sim"), "--system-schema", "activiti",
                                  "--system-url", url],
    }.get(command)
    if args is None:  # the URL in the project file
        key = command.split()[-1]
        (tmp_path / "reconcile.yaml").write_text(yaml.safe_dump({
            "as_of": "2021-06-30", "register": [str(BASIC / "register-2021.csv")],
            "workflows": str(BASIC / "workflows"),
            "system": url if key == "system" else str(BASIC / "system"),
            "store": url if key == "store" else new_store}), encoding="utf-8")
        args = ["audit"]
    store_before = hashlib.sha256(Path(store).read_bytes()).hexdigest()
    result = invoke(*args)
    assert result.exit_code == 2, result.stderr
    line = one_line(result)
    assert line.startswith("error: ") and SECRET not in result.output and "clerk:***@" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.yaml", *(["reconcile.yaml"] if args == ["audit"]
                                                                           else [])])
    assert hashlib.sha256(Path(store).read_bytes()).hexdigest() == store_before


def test_a_password_in_a_working_url_stays_out_of_records_reports_and_tickets(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL here trusts local connections, so a planted password connects: then every place that
    records or shows the system URL (run record, plan, history, report, tickets, messages) has *** instead."""
    vendor_database(pg_url)
    url = sa.engine.make_url(pg_url).set(password=SECRET).render_as_string(hide_password=False)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    store = str(tmp_path / "store.duckdb")
    outputs = [invoke(*audit_args(tmp_path, url, str(mapping), store), "--format", "json", expect=1).output]
    outputs.append(invoke("plan", "--store", store, "--out", str(tmp_path / "plan.yaml"), expect=0).output)
    for args in (["apply", str(tmp_path / "plan.yaml"), "--store", store, "--system", url, "--dry-run"],
                 ["tickets", "--store", store, "--out", str(tmp_path / "tickets")],
                 ["report", "--store", store, "--format", "all", "--out", str(tmp_path / "report")],
                 ["history", "--store", store], ["census", "--store", store, "--format", "json"]):
        outputs.append(invoke(*args).output)
    assert "***@" in outputs[0] and not any(SECRET in out for out in outputs)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 10 and not [p for p in files if SECRET.encode() in p.read_bytes()]


# --------------------------------------------------------------- a mapping's query: (read-only, one statement)

ESCAPES = {  # closing the tool's subquery, then statements of their own
    "commit_create": "SELECT * FROM {t}) q; COMMIT; CREATE TABLE pwned (a int); SELECT * FROM (SELECT * FROM {t}",
    "commit_alone": "SELECT * FROM {t}) q; COMMIT; SELECT * FROM (SELECT * FROM {t}",
}
DRIVER_REFUSAL = {"sqlite": "You can only execute one statement at a time",
                  "postgresql": "cannot insert multiple commands into a prepared statement",
                  "mysql": "You have an error in your SQL syntax"}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_a_mapping_query_cannot_run_a_second_statement_during_audit(tmp_path: Path, vendor_url: str,
                                                                    escape: str) -> None:
    vendor_database(vendor_url)
    if vendor_url.startswith("mysql"):
        vendor_url += "?client_flag=65536"  # the URL even asks the driver for multi-statement calls
    query = ESCAPES[escape].format(t=quoted(vendor_url, "HS_HOSO"))
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING.replace("  table: HS_HOSO\n", f"  query: {json.dumps(query)}\n", 1), encoding="utf-8")
    before = checksum(vendor_url)
    line = one_line(invoke(*audit_args(tmp_path, vendor_url, str(mapping)), expect=2))
    dialect = sa.engine.make_url(vendor_url).get_backend_name()
    assert re.fullmatch(rf"error: {re.escape(str(mapping))}: dossier\.query failed: .*"
                        rf"{re.escape(DRIVER_REFUSAL[dialect])}.*\. {re.escape(HINT_QUERY)}", line), line
    assert "pwned" not in tables(vendor_url) and checksum(vendor_url) == before
    assert not (tmp_path / "store.duckdb").exists()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_a_commit_does_not_end_the_read_only_mode_of_a_vendor_session(tmp_path: Path, dialect: str,
                                                                     request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'vendor.sqlite'}" if dialect == "sqlite"
           else request.getfixturevalue("pg_url" if dialect == "postgresql" else "mariadb_url"))
    vendor_database(url)
    before = checksum(url)
    engine = connect_engine(url, what="system database", read_only=True)
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM {quoted(url, 'HS_HOSO')}").scalar() == 16
        conn.commit()  # what an escaped COMMIT would do
        for statement in ("CREATE TABLE pwned (a int)", f"DELETE FROM {quoted(url, 'HS_HOSO')}"):
            with pytest.raises(sa.exc.DBAPIError, match="(?i)read.only|readonly"):
                conn.exec_driver_sql(statement)
            conn.rollback()
    engine.dispose()
    assert "pwned" not in tables(url) and checksum(url) == before


def test_a_mapping_query_calling_a_writing_function_is_refused_in_one_line(tmp_path: Path, pg_url: str) -> None:
    vendor_database(pg_url)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SEQUENCE counter")
    engine.dispose()
    mapping = tmp_path / "m.yaml"
    query = """SELECT h.*, nextval('counter') AS n FROM "HS_HOSO" h"""
    mapping.write_text(MAPPING.replace("  table: HS_HOSO\n", f"  query: {json.dumps(query)}\n", 1), encoding="utf-8")
    before = checksum(pg_url)
    line = one_line(invoke(*audit_args(tmp_path, pg_url, str(mapping)), expect=2))
    assert line == (f"error: {mapping}: dossier.query failed: cannot execute nextval() in a read-only transaction. "
                    f"{HINT_QUERY}")
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:  # the sequence never moved
        assert conn.exec_driver_sql("SELECT is_called FROM counter").scalar() is False
    engine.dispose()
    assert checksum(pg_url) == before and not (tmp_path / "store.duckdb").exists()


@pytest.fixture
def pg_district(district: Path, tmp_path: Path, pg_url: str) -> Iterator[tuple[str, str, Path, Path]]:  # noqa: F811
    """The demo district's vendor database in PostgreSQL, audited, and a hand-made plan of it that writes
    the dossier table only (closes): (system URL, store, mapping, plan)."""
    copy_vendor(f"sqlite:///{district / 'system' / 'binh-son-igate.sqlite'}", pg_url)
    url, store, mapping = audited(district, tmp_path, pg_url)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan, reassign=0, close=3)
    doc = yaml.safe_load(plan.read_text(encoding="utf-8"))
    doc["actions"] = [a for a in doc["actions"] if a["action"] == "close"]
    plan.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    yield url, store, mapping, plan


def _with_task_query(mapping: Path, query: str, out: Path) -> Path:
    doc = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    del doc["task"]["table"]
    doc["task"]["query"] = query
    out.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return out


def test_a_mapping_query_cannot_escape_the_dry_run_of_apply(pg_district: tuple[str, str, Path, Path],
                                                            tmp_path: Path) -> None:
    url, store, mapping, plan = pg_district
    hostile = _with_task_query(mapping, ESCAPES["commit_create"].format(t='"HS_XULY_HIENTAI"'), tmp_path / "h.yaml")
    before, store_before = checksum(url), hashlib.sha256(Path(store).read_bytes()).hexdigest()
    line = one_line(invoke("apply", str(plan), "--store", store, "--mapping", str(hostile), "--dry-run", expect=2))
    assert line == (f"error: {hostile}: task.query failed: cannot insert multiple commands into a prepared "
                    f"statement. {HINT_QUERY}")
    assert "pwned" not in tables(url) and checksum(url) == before
    assert hashlib.sha256(Path(store).read_bytes()).hexdigest() == store_before


def test_apply_yes_refuses_a_mapping_that_reads_through_a_query(pg_district: tuple[str, str, Path, Path],
                                                                tmp_path: Path) -> None:
    """apply --yes re-reads the rows it writes inside its write transaction, which cannot be read-only."""
    url, store, mapping, plan = pg_district
    viewed = _with_task_query(mapping, 'SELECT * FROM "HS_XULY_HIENTAI"', tmp_path / "q.yaml")
    invoke("apply", str(plan), "--store", store, "--mapping", str(viewed), "--dry-run", expect=0)  # reads: fine
    before = checksum(url)
    line = one_line(invoke("apply", str(plan), "--store", store, "--mapping", str(viewed), "--yes", expect=3))
    assert line == (f"error: {viewed}: task.query: apply --yes would run it inside its write transaction, where it "
                    "cannot be read-only: nothing written. Hint: map task.table, or write the statements with --sql "
                    "FILE for a DBA.")
    assert checksum(url) == before
    assert invoke("history", "--store", store, "--format", "json", expect=0).stdout.strip() == '{"batches":[]}'


# ------------------------------------------------------------ SQLite files, driver options, a store in use

@pytest.mark.parametrize("profile", ["mapping", "activiti"])
def test_a_missing_sqlite_system_file_is_no_such_file_and_is_not_created(tmp_path: Path, profile: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    args = audit_args(tmp_path, "sqlite:///typo.sqlite", str(mapping) if profile == "mapping" else None)
    what = "system database" if profile == "mapping" else "engine database"
    line = one_line(invoke(*args, *(["--profile", "activiti"] if profile == "activiti" else []), expect=2))
    assert line == (f"error: {what} typo.sqlite: no such file. Hint: check the path (sqlite:///relative/path from "
                    "the current folder, sqlite:////absolute/path).")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml"]


OPTION_ERRORS = {
    "mysql://root@127.0.0.1:3306/test?charset=bogus":
        "system database URL 'mysql+pymysql://root@127.0.0.1:3306/test?charset=bogus': charset 'bogus' is not a "
        "MySQL/MariaDB character set. Hint: ?charset=utf8mb4, or leave it out.",
    "mysql://root@127.0.0.1:3306/test?colour=blue":
        "system database URL 'mysql+pymysql://root@127.0.0.1:3306/test?colour=blue': unknown option 'colour' after "
        "'?'. Hint: the query of a database URL takes the driver's connection options only (e.g. ?sslmode=require, "
        "?charset=utf8mb4).",
    "postgresql://postgres@127.0.0.1:5432/test?colour=blue":
        "system database URL 'postgresql+psycopg://postgres@127.0.0.1:5432/test?colour=blue': unknown option "
        "'colour' after '?'. Hint: the query of a database URL takes the driver's connection options only (e.g. "
        "?sslmode=require, ?charset=utf8mb4).",
    f"postgresql://postgres:{SECRET}@127.0.0.1:99999/test":
        "system database URL 'postgresql+psycopg://postgres:***@127.0.0.1:99999/test': port 99999 is not a port "
        "(1-65535). Hint: e.g. postgresql://user@host/db, mysql://user@host/db or a file path.",
    f"mysql://root:{SECRET}@127.0.0.1:port/test":
        "system database URL 'mysql+pymysql://root:***@127.0.0.1:port/test': port 'port' is not a number. Hint: "
        "e.g. postgresql://user@host/db, mysql://user@host/db or a file path.",
}


@pytest.mark.parametrize("url", sorted(OPTION_ERRORS))
def test_bad_driver_options_in_a_url_are_one_line_with_a_hint(tmp_path: Path, url: str) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    line = one_line(invoke(*audit_args(tmp_path, url, str(mapping)), expect=2))
    assert line == f"error: {OPTION_ERRORS[url]}"
    assert not (tmp_path / "store.duckdb").exists()


def test_a_store_held_by_another_process_is_refused_with_exit_3(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    invoke(*audit_args(tmp_path, str(BASIC / "system"), store=str(store)), expect=1)
    invoke("plan", "--store", str(store), "--out", str(tmp_path / "plan.yaml"), expect=0)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(store)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        before = hashlib.sha256(store.read_bytes()).hexdigest()
        expected = (f"error: store {store}: in use by another process (PID {holder.pid}), such as another reconcile "
                    "audit, apply or undo: nothing written. Hint: a DuckDB store takes one process at a time; run "
                    "again when that one has finished.")
        for args in (audit_args(tmp_path, str(BASIC / "system"), store=str(store)),
                     ["apply", str(tmp_path / "plan.yaml"), "--store", str(store), "--yes"],
                     ["history", "--store", str(store)]):
            assert one_line(invoke(*args, expect=3)) == expected
        assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    finally:
        holder.communicate("")
    invoke("history", "--store", str(store), expect=0)  # free again
