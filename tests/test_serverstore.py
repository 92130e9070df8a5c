"""A server store's load path and session: the settings every connection gets (and their override),
indexes built after a first run's loads, planner statistics fresh after each fill, and a first run
killed half-way leaving the store's indexes as they were. Real PostgreSQL and MariaDB servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import invoke
from test_golden import BASIC, audit_basic

from reconcile.errors import BadInput
from reconcile.faults import FAULT_ENV
from reconcile.store import _INDEXES, SERVER_SETTINGS, audit_run, finding, open_store, server_settings

OVERRIDE = "RECONCILE_STORE_SETTINGS"


# ------------------------------------------------------------------------------ settings, parsed

def test_settings_are_the_defaults_with_the_override_on_top() -> None:
    assert server_settings("postgresql", "") == SERVER_SETTINGS["postgresql"]
    got = server_settings("postgresql", " work_mem = 64MB , enable_nestloop=off")
    assert got == {**SERVER_SETTINGS["postgresql"], "work_mem": "64MB", "enable_nestloop": "off"}
    assert server_settings("mariadb", "sort_buffer_size=8M")["sort_buffer_size"] == "8M"
    assert server_settings("duckdb", "") == {}


@pytest.mark.parametrize("dialect, text, message", [
    ("postgresql", "shared_buffers=1GB", "RECONCILE_STORE_SETTINGS: 'shared_buffers=1GB' is not a postgresql store "
                                         "setting. Hint: name=value, comma-separated, with a name among"),
    ("postgresql", "work_mem", "RECONCILE_STORE_SETTINGS: 'work_mem' is not a postgresql store setting."),
    ("postgresql", "work_mem=1GB; DROP TABLE finding", "the value is not a plain number or size. Hint:"),
    ("mariadb", "sort_buffer_size=big", "the value is not a plain number or size. Hint:"),
    ("mariadb", "work_mem=64MB", "is not a mysql store setting"),
])
def test_a_bad_setting_is_bad_input_naming_it(dialect: str, text: str, message: str) -> None:
    with pytest.raises(BadInput) as exc:
        server_settings(dialect, text)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_the_server_settings_leave_an_embedded_store_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "work_mem=64MB")
    open_store(str(tmp_path / "s.duckdb")).engine.dispose()


def test_a_bad_setting_stops_a_command_in_one_line_with_exit_2(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "work_mem=lots of it")
    result = invoke("history", "--store", pg_url, expect=2)
    assert result.stderr.startswith("error: RECONCILE_STORE_SETTINGS: 'work_mem=lots of it': the value is not")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------ settings, in the session

def test_every_postgresql_store_session_has_the_settings_and_the_override(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "work_mem=96MB,max_parallel_workers_per_gather=0")
    store = open_store(pg_url)
    try:
        for _ in range(2):  # a fresh connection each time, and one back from the pool
            with store.connect() as conn:
                shown = {name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                         for name in ("work_mem", "maintenance_work_mem", "jit", "max_parallel_workers_per_gather")}
                assert shown == {"work_mem": "96MB", "maintenance_work_mem": "512MB", "jit": "off",
                                 "max_parallel_workers_per_gather": "0"}
                assert conn.exec_driver_sql("SELECT current_setting('transaction_read_only')").scalar() == "off"
            store.engine.dispose()
    finally:
        store.engine.dispose()


def test_every_mariadb_store_session_has_the_settings_and_the_override(
        mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "sort_buffer_size=32M")
    store = open_store(mariadb_url)
    try:
        with store.connect() as conn:
            got = conn.exec_driver_sql("SELECT @@session.sort_buffer_size, @@session.join_buffer_size, "
                                       "@@session.max_heap_table_size").one()
        assert tuple(got) == (32 << 20, 64 << 20, 256 << 20)
    finally:
        store.engine.dispose()


# ------------------------------------------------------------------------------ load path, PostgreSQL

def _pg_indexes(url: str) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = set(conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
                    .scalars())
    engine.dispose()
    return names


def _analyzed(url: str) -> dict[str, float]:
    """Rows per table as the planner's statistics say (ANALYZE ran: not -1 or 0)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = dict(conn.exec_driver_sql(
            "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r'").all())
    engine.dispose()
    return rows


def test_a_first_audit_on_postgresql_builds_every_index_and_leaves_fresh_statistics(pg_url: str) -> None:
    audit_basic(pg_url)
    assert {str(ix.name) for ix in _INDEXES} <= _pg_indexes(pg_url)
    planner = _analyzed(pg_url)
    store = open_store(pg_url, create=False)
    with store.connect() as conn:
        actual = {t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one()
                  for t in ("register_entry", "dossier", "reconciliation", "wf_state", "finding", "step_event")}
    store.engine.dispose()
    assert all(n > 0 for n in actual.values())
    assert {t: planner[t] for t in actual} == {t: float(n) for t, n in actual.items()}
    second = audit_basic(pg_url)  # a store with a run keeps its indexes while it loads the next
    assert second["run"]["id"] == 2 and {str(ix.name) for ix in _INDEXES} <= _pg_indexes(pg_url)
    assert _analyzed(pg_url)["finding"] == 2 * planner["finding"]


def test_a_first_postgresql_audit_killed_after_its_loads_leaves_the_indexes_and_no_rows(pg_url: str) -> None:
    audit_basic(pg_url)  # creates the schema, then empty it again so the next audit is a first run
    store = open_store(pg_url, create=False)
    with store.begin() as conn:
        for name in ("finding", "wf_state", "reconciliation", "dossier", "register_entry", "stats_group",
                     "work_day", "step_event", "account", "text_key", "register_book", "wf_version", "wf_step",
                     "wf_transition", "migration_step", "audit_run"):
            conn.exec_driver_sql(f'DELETE FROM "{name}"')
    store.engine.dispose()
    before = _pg_indexes(pg_url)
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV} | {FAULT_ENV: "audit-system:1:KILL"}
    proc = subprocess.run(
        [sys.executable, "-m", "reconcile", "audit", "--register", str(BASIC / "register-2021.csv"),
         "--system", str(BASIC / "system"), "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30",
         "--store", pg_url], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert _pg_indexes(pg_url) == before and {str(ix.name) for ix in _INDEXES} <= before
    store = open_store(pg_url, create=False)
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_run)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(finding)).scalar_one() == 0
    store.engine.dispose()
    assert audit_basic(pg_url)["run"]["id"] == 1


# ------------------------------------------------------------------------------ the plan's statistics view

def test_the_after_plan_groups_from_the_stored_groups_equal_grouping_every_dossier(
        demo_run: tuple[Path, Any], tmp_path: Path) -> None:
    """The plan's view is the run's stored groups, less the planned dossiers as they are, plus them as
    the plan leaves them: the same counts as grouping the whole run with the plan applied."""
    import shutil
    from collections import Counter

    from reconcile.stats import tables as stats

    from reconcile.audit import groups
    from reconcile.stats.commands import plan_overlay

    store_path = tmp_path / "store.duckdb"  # a copy: the demo's store is shared by other tests
    shutil.copy(demo_run[0] / "inputs" / "reconcile.duckdb", store_path)
    store = open_store(str(store_path), create=False)
    try:
        with store.connect() as conn:
            run = conn.execute(sa.select(audit_run.c.as_of, audit_run.c.settings).where(audit_run.c.id == 1)).one()
            period = json.loads(run.settings)["period"]
            start, end = date.fromisoformat(period["from"]), date.fromisoformat(period["to"])
            overlay = plan_overlay(conn, store, 1, None)
            ov = stats._overlay_table(conn, overlay)
            delta = stats._after_plan_groups(conn, 1, ov, start, end)
            full = conn.execute(groups.grouped_counts(groups.system_source(1, ov), start, end)).all()
    finally:
        store.engine.dispose()
    assert len(overlay) > 50 and delta
    assert Counter(tuple(g) for g in delta) == Counter(tuple(g) for g in full)


# ------------------------------------------------------------------------------ the bulk path, value by value

AWKWARD = ["plain", "", None, 'quote " and, comma', "new\nline\r\ttab", "back\\slash \\N", "Đặng Văn Giàng",
           "NULL", "😀 emoji", "x" * 80]


@pytest.mark.parametrize("server", ["pg_url", "mariadb_url"])
def test_the_bulk_load_keeps_every_value_as_it_was(server: str, request: pytest.FixtureRequest) -> None:
    """COPY (PostgreSQL) and the driver's multi-row INSERTs (MariaDB) keep NULL apart from '', quotes,
    separators, backslashes, line breaks, Unicode, dates and booleans."""
    import pyarrow as pa

    from reconcile.store import account, bulk_insert

    n = len(AWKWARD)
    data = pa.table({"run_id": pa.array([7] * n, pa.int32()), "account": pa.array([f"a{i}" for i in range(n)]),
                     "name": pa.array(AWKWARD, pa.string()),
                     "unit": pa.array(AWKWARD[::-1], pa.string()).dictionary_encode(),
                     "active": pa.array([i % 3 == 0 if i != 4 else None for i in range(n)], pa.bool_())
                     .fill_null(False)})
    store = open_store(request.getfixturevalue(server))
    try:
        with store.begin() as conn:
            bulk_insert(conn, account, data)
        with store.connect() as conn:
            got = conn.execute(sa.select(account.c.name, account.c.unit, account.c.active)
                               .where(account.c.run_id == 7).order_by(account.c.account)).all()
    finally:
        store.engine.dispose()
    order = sorted(range(n), key=lambda i: f"a{i}")
    assert [tuple(r) for r in got] == [(AWKWARD[i], AWKWARD[::-1][i], bool(i % 3 == 0 and i != 4)) for i in order]


def test_a_mariadb_store_has_the_indexes_by_row_also_when_opened_from_schema_10(mariadb_url: str) -> None:
    from reconcile.store import _MARIADB_INDEXES, meta_table

    def indexes() -> set[str]:
        engine = sa.create_engine(mariadb_url)
        with engine.connect() as conn:
            names = set(conn.exec_driver_sql("SELECT index_name FROM information_schema.statistics "
                                             "WHERE table_schema = DATABASE()").scalars())
        engine.dispose()
        return names

    wanted = {str(ix.name) for ix in _MARIADB_INDEXES}
    open_store(mariadb_url).engine.dispose()
    assert wanted <= indexes()
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as conn:  # a store written by the previous schema: no such indexes
        for ix in _MARIADB_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX {ix.name} ON {ix.table.name}")
        conn.execute(sa.update(meta_table).where(meta_table.c.key == "schema_version").values(value="10"))
    engine.dispose()
    assert not wanted & indexes()
    open_store(mariadb_url).engine.dispose()
    assert wanted <= indexes()


# ------------------------------------------------------------------------------ the pipelined load

def test_ahead_yields_every_item_in_order_and_raises_the_workers_error_as_it_was() -> None:
    import threading

    from reconcile.audit.serverload import ahead

    workers = []

    def items() -> Any:
        workers.append(threading.current_thread())
        yield from range(5)
        raise BadInput("row 6: not a date")

    got = []
    with pytest.raises(BadInput, match="row 6: not a date"):
        for item in ahead(items()):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert workers[0] is not threading.current_thread() and not workers[0].is_alive()


def test_ahead_stops_its_worker_when_the_caller_stops_early() -> None:
    import threading

    from reconcile.audit.serverload import ahead

    produced, workers = [], []

    def items() -> Any:
        workers.append(threading.current_thread())
        for i in range(1000):
            produced.append(i)
            yield i

    with pytest.raises(KeyboardInterrupt):
        for item in ahead(items()):
            if item == 2:
                raise KeyboardInterrupt
    assert not workers[0].is_alive() and len(produced) <= 5  # one item ahead, one being put


@pytest.mark.parametrize("server", ["pg_url", "mariadb_url"])
def test_a_load_of_several_batches_stores_every_row_once(server: str, request: pytest.FixtureRequest) -> None:
    """load_batches prepares each batch in a worker while the last is sent: every row arrives, once."""
    import pyarrow as pa

    from reconcile.audit.serverload import load_batches
    from reconcile.store import account

    batches = [pa.table({"account": [f" a{b}-{i} " for i in range(1000)], "name": [f"n{i}" for i in range(1000)],
                         "unit": ["u"] * 1000, "active": [i % 2 == 0 for i in range(1000)]}) for b in range(7)]
    store = open_store(request.getfixturevalue(server))
    try:
        with store.begin() as conn:
            n = load_batches(conn, account, lambda raw: f"SELECT trim(account) AS account, name, unit, active "
                                                        f"FROM {raw}", iter(batches), 3)
        with store.connect() as conn:
            got = conn.execute(sa.select(account.c.account, account.c.active).where(account.c.run_id == 3)).all()
    finally:
        store.engine.dispose()
    assert n == 7000
    assert sorted(got) == sorted((f"a{b}-{i}", i % 2 == 0) for b in range(7) for i in range(1000))


def test_few_groups_turns_postgresqls_sorts_off_for_its_statements_only(pg_url: str) -> None:
    from reconcile.store import few_groups

    store = open_store(pg_url)
    try:
        with store.begin() as conn:
            setting = "SELECT current_setting('enable_sort')"
            with few_groups(conn):
                inside = conn.exec_driver_sql(setting).scalar_one()
                plan = "\n".join(conn.exec_driver_sql(
                    "EXPLAIN SELECT mod(g, 3), count(*) FROM generate_series(1, 100000) g GROUP BY mod(g, 3)").scalars())
            after = conn.exec_driver_sql(setting).scalar_one()
        with store.connect() as conn:
            later = conn.exec_driver_sql(setting).scalar_one()
    finally:
        store.engine.dispose()
    assert (inside, after, later) == ("off", "on", "on")
    assert "HashAggregate" in plan and "Sort" not in plan


def test_the_codes_on_several_rows_are_grouped_along_the_index_by_code(pg_url: str) -> None:
    """fill_repeated_codes groups each side in the order of its index by code, with hashing and sorting
    off for its statements only (PostgreSQL hashed every code of the side otherwise)."""
    from reconcile.store import fill_repeated_codes, repeated_code

    audit_basic(pg_url)
    store = open_store(pg_url)
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("INSERT INTO repeated_code"):
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))

    sa.event.listen(store.engine, "before_cursor_execute", explain)
    try:
        with store.begin() as conn:
            conn.execute(sa.delete(repeated_code))
            fill_repeated_codes(conn, 1)
            settings = conn.exec_driver_sql("SELECT current_setting('enable_hashagg'), "
                                            "current_setting('enable_sort')").one()
            codes = conn.execute(sa.select(repeated_code.c.side, repeated_code.c.dossier_code)).all()
    finally:
        store.engine.dispose()
    assert [p for p in plans if "Index" in p and "HashAggregate" not in p and "Sort" not in p] == plans
    assert len(plans) == 2 and tuple(settings) == ("on", "on")
    assert codes == [("register", "000.00.53.H48-210105-0009")]
