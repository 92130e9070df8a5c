"""End-to-end: the hand-made basic scenario, on every store engine, against its golden findings."""

from __future__ import annotations

import json

import sqlalchemy as sa
from duckdb_engine import Dialect as DuckDBDialect
from sqlalchemy.dialects import mysql, postgresql

from helpers import check_golden, invoke, stable, store_rows

from conftest import CASES
from reconcile.util.sqlfuncs import json_agg

BASIC = CASES / "golden" / "basic"


def audit_basic(store: str) -> dict:
    result = invoke(
        "audit", "--register", str(BASIC / "register-2021.csv"), "--system", str(BASIC / "system"),
        "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30",
        "--paper-only", "UBND xã Bình Hải", "--store", store, "--format", "json", expect=1,
    )
    return json.loads(result.stdout)


def test_basic_scenario_findings_match_golden_on_every_engine(store_url: str) -> None:
    check_golden(BASIC / "expected.json", stable(audit_basic(store_url)))


def test_every_planted_defect_is_found_once(tmp_path) -> None:
    report = audit_basic(str(tmp_path / "s.duckdb"))
    assert report["summary"] == {
        "missing_in_system": 1, "missing_in_register": 1, "resolved_not_closed": 1, "closed_not_resolved": 1,
        "status_mismatch": 1, "date_mismatch": 1, "field_mismatch": 1, "duplicate_code": 1,
        "register_numbering_gap": 1, "unknown_version": 1, "step_not_in_version": 1, "assignee_inactive": 1,
        "dead_end_step": 1, "unit_without_staff": 1, "stalled": 1,
    }
    by_kind = {f["kind"]: f for f in report["findings"]}
    assert by_kind["register_numbering_gap"]["dossier_code"] is None
    assert by_kind["register_numbering_gap"]["details"]["missing_from"] == 8
    assert by_kind["field_mismatch"]["details"]["fields"] == [
        {"field": "applicant", "register": "Đặng Văn Giang", "system": "Đặng Văn Giàng"}]
    # Evidence points at the paper row a clerk can open.
    assert by_kind["missing_in_system"]["evidence"]["register"]["row"] == 9
    assert by_kind["dead_end_step"]["dossier_code"] == "000.00.53.H48-210106-0014"
    assert by_kind["unit_without_staff"]["details"]["unit"] == "LUUTRU"
    # B2 allows 2.5 days: the threshold is the 10-working-day floor. 126 weekdays in (5 Jan, 30 Jun 2021]
    # less 8 weekday holidays: Tết (10-16 Feb), Hùng Kings (21 Apr), 30 Apr, 3 May (for 1 May).
    stalled = by_kind["stalled"]["details"]
    assert (stalled["since"], stalled["stalled_after_working_days"]) == ("2021-01-05", 10)
    assert stalled["idle_working_days"] == 118
    # Carried over from 2020 (outside the 2021 book) and paper-only communes are not findings.
    assert report["run"]["classes"]["outside_period"] == 1
    assert report["run"]["paper_only_units"] == {"UBND xã Bình Hải": 2}


def test_audit_runs_accumulate_and_show_reads_one_dossier(tmp_path) -> None:
    store = str(tmp_path / "s.duckdb")
    first = audit_basic(store)
    second = audit_basic(store)
    assert (first["run"]["id"], second["run"]["id"]) == (1, 2)
    out = invoke("show", " 000.00.53.h48-210105-0003 ", "--store", store, "--format", "json", expect=0)
    view = json.loads(out.stdout)
    assert view["run"] == 2 and view["class"] == "resolved_not_closed"
    assert [f["kind"] for f in view["findings"]] == ["resolved_not_closed", "step_not_in_version"]
    assert view["register"][0]["row_no"] == 4 and view["system"][0]["current_step"] == "S05"
    assert view["events"][0]["to_step"] == "S05"


def test_project_file_supplies_inputs_and_options_override_it(tmp_path) -> None:
    project = tmp_path / "reconcile.yaml"
    project.write_text(
        f"as_of: 2021-06-30\nregister: [{BASIC / 'register-2021.csv'}]\nsystem: {BASIC / 'system'}\n"
        f"workflows: {BASIC / 'workflows'}\npaper_only_units: ['UBND xã Bình Hải']\nstore: store.duckdb\n",
        encoding="utf-8")
    result = invoke("audit", "--config", str(project), "--format", "json", expect=1)
    from_file = json.loads(result.stdout)
    assert (tmp_path / "store.duckdb").exists(), "the store path is relative to the project file"
    assert stable(from_file) == stable(audit_basic(str(tmp_path / "other.duckdb")))
    result = invoke("audit", "--config", str(project), "--paper-only", "nobody", "--format", "json",
                    "--store", str(tmp_path / "third.duckdb"), expect=1)
    assert json.loads(result.stdout)["run"]["paper_only_units"] == {}


def test_audit_without_inputs_names_what_is_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("audit", "--format", "json", expect=2)
    assert result.stderr.strip() == ("error: audit: missing --register, --system, --workflows, --as-of. "
                                     "Hint: `reconcile audit --help`, or set them in reconcile.yaml.")


def test_repeated_codes_are_found_once_per_run_and_for_older_runs_on_upgrade(store_url: str) -> None:
    """The audit records the codes on several rows (repeated_code), which its classification, its
    duplicate_code findings and the register's statistics read; a store of schema 12 gets them for
    its runs when opened, the same rows the audit writes, and reconciliation's differs column (null
    for those runs)."""
    from reconcile.store import meta_table, open_store, reconciliation, repeated_code

    report = audit_basic(store_url)
    audit_basic(store_url)
    rows = sa.select(repeated_code).order_by(repeated_code.c.run_id, repeated_code.c.side)
    written = store_rows(store_url, rows)
    # 0009 is on register rows 10 and 11 (entry ids 9 and 10), neither returned: both pick the first.
    assert [tuple(r) for r in written] == [(run, "register", "000.00.53.H48-210105-0009", 9, 9) for run in (1, 2)]
    assert [f["dossier_code"] for f in report["findings"] if f["kind"] == "duplicate_code"] == [
        "000.00.53.H48-210105-0009"]
    # The classification marks the pairs that differ: those the date and field findings explain.
    marked = store_rows(store_url, sa.select(reconciliation.c.dossier_code)
                        .where(reconciliation.c.run_id == 1, reconciliation.c.differs))
    assert {c for (c,) in marked} == {
        f["dossier_code"] for f in report["findings"] if f["kind"] in ("date_mismatch", "field_mismatch")}
    store = open_store(store_url, create=False)
    with store.begin() as conn:
        conn.execute(sa.delete(repeated_code))
        conn.exec_driver_sql("ALTER TABLE reconciliation DROP COLUMN differs")
        conn.execute(sa.update(meta_table).where(meta_table.c.key == "schema_version").values(value="12"))
    store.engine.dispose()
    assert store_rows(store_url, rows) == written  # store_rows opens the store: the upgrade fills the table
    differs = sa.select(reconciliation.c.differs, sa.func.count()).group_by(reconciliation.c.differs)
    assert [tuple(r) for r in store_rows(store_url, differs)] == [(None, 2 * sum(report["run"]["classes"].values()))]


def test_evidence_lists_are_ordered_the_same_on_every_engine() -> None:
    """A duplicate code's rows are aggregated in register (or system) row order on every store engine:
    an aggregate without ORDER BY follows each engine's scan order, which PostgreSQL's parallel scans
    change from run to run at 1M rows."""
    t = sa.table("t", sa.column("v"), sa.column("row_no"))
    for dialect in (DuckDBDialect(), postgresql.dialect(), mysql.dialect()):
        sql = str(sa.select(json_agg(t.c.v, t.c.row_no)).compile(dialect=dialect))
        assert "ORDER BY t.row_no)" in sql, sql


def test_started_at_is_when_the_audit_started_not_when_it_was_recorded(tmp_path, monkeypatch) -> None:
    """A 10M audit runs for minutes before its run row is written: started_at is read before loading."""
    from reconcile.audit import commands

    loaded: list[bool] = []
    real_load = commands.load_inputs

    def load_inputs(*args, **kwargs):
        loaded.append(True)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(commands, "load_inputs", load_inputs)
    monkeypatch.setattr(commands, "now_text", lambda: "after loading" if loaded else "before loading")
    report = audit_basic(str(tmp_path / "s.duckdb"))
    assert loaded and report["run"]["started_at"] == "before loading"
