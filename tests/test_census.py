"""The workflow census and the workflow-state findings behind it, on the hand-made basic scenario."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
from helpers import invoke

from conftest import CASES

BASIC = CASES / "golden" / "basic"
LAND = "1.004227.000.00.00.H48"


def audit(store: str, *extra: str) -> dict:
    result = invoke("audit", "--register", str(BASIC / "register-2021.csv"), "--system", str(BASIC / "system"),
                    "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30", "--paper-only",
                    "UBND xã Bình Hải", "--store", store, "--format", "json", *extra, expect=1)
    return json.loads(result.stdout)


def census(store: str) -> dict:
    return json.loads(invoke("census", "--store", store, "--format", "json", expect=1).stdout)


def test_census_per_version_and_step_agrees_with_the_findings_on_every_engine(store_url: str) -> None:
    report = audit(store_url)
    doc = census(store_url)
    rows = {(r["procedure"], r["version"], r["step"]): r for r in doc["rows"]}
    assert sorted(rows) == [(LAND, 1, "S02"), (LAND, 2, "S03"), (LAND, 2, "S05"), (LAND, 2, "S06"),
                            (LAND, 2, "S10"), (LAND, 2, "S11"), (LAND, 7, "S03"), ("2.000046.000.00.00.H48", 1, "B2")]
    # Six open dossiers on v2/S03: two of them placed there by version inference, one with a
    # deactivated assignee (the only orphan: the others can move on).
    s03 = rows[(LAND, 2, "S03")]
    assert (s03["open"], s03["orphaned"], s03["version_assumed"]) == (6, 1, 2)
    assert s03["by_reason"]["assignee_inactive"] == 1
    gone = rows[(LAND, 2, "S05")]
    assert (gone["step_in_version"], gone["orphaned"], gone["by_reason"]["step_not_in_version"]) == (False, 1, 1)
    assert rows[(LAND, 7, "S03")]["version_in_catalog"] is False
    assert rows[(LAND, 2, "S10")]["by_reason"]["dead_end_step"] == 1
    assert rows[(LAND, 2, "S11")]["by_reason"]["unit_without_staff"] == 1
    stalled = rows[("2.000046.000.00.00.H48", 1, "B2")]
    assert (stalled["orphaned"], stalled["by_reason"]["stalled"], stalled["oldest_since"]) == (0, 1, "2021-01-05")
    # The census counts exactly the dossiers the audit reported, kind by kind.
    assert doc["total"]["by_reason"] == {k: report["summary"].get(k, 0) for k in doc["total"]["by_reason"]}
    assert doc["total"]["open"] == sum(r["open"] for r in doc["rows"]) == 13


def test_a_removed_step_still_in_a_later_version_is_shown(tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    audit(store)
    rows = {(r["procedure"], r["version"], r["step"]): r for r in census(store)["rows"]}
    assert rows[(LAND, 1, "S02")]["later_version_with_step"] is None  # v2 dropped S02
    s05 = next(f for f in audit(store)["findings"] if f["kind"] == "step_not_in_version")
    assert s05["details"]["earlier_version_with_step"] is None and s05["details"]["version_basis"] == "pinned"


def test_version_inference_from_step_and_received_date(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    audit(str(store))
    con = duckdb.connect(str(store), read_only=True)
    rows = dict((code, (pinned, version, basis)) for code, pinned, version, basis in con.execute(
        "SELECT dossier_code, pinned_version, version, version_basis FROM wf_state "
        "WHERE dossier_code IN ('000.00.53.H48-210520-0016', '000.00.53.H48-210106-0017')").fetchall())
    con.close()
    # S03 exists only in v2 (valid from 2021-05-10): received 20 May -> v2 by step and date;
    # received 6 January, before v2 -> still v2, the only version with the step.
    assert rows == {"000.00.53.H48-210520-0016": (None, 2, "step_and_date"),
                    "000.00.53.H48-210106-0017": (None, 2, "step")}


def test_stalled_threshold_settings(tmp_path: Path) -> None:
    lenient = audit(str(tmp_path / "a.duckdb"), "--stalled-min-days", "200")
    assert "stalled" not in lenient["summary"]
    strict = audit(str(tmp_path / "b.duckdb"), "--stalled-factor", "0", "--stalled-min-days", "3")
    # Every open dossier that has not moved since 24 June or earlier (4 working days) is stalled.
    assert strict["summary"]["stalled"] == 13
    assert strict["run"]["settings"]["stalled"] == {"factor": 0.0, "min_working_days": 3}


def test_census_without_an_audit_run_is_a_clear_error(tmp_path: Path) -> None:
    result = invoke("census", "--store", str(tmp_path / "none.duckdb"), expect=2)
    assert result.stderr.strip() == (f"error: store {tmp_path / 'none.duckdb'}: no such file. Hint: run "
                                     "`reconcile audit` first, or pass --store.")


def audit_of(root: Path, store: str) -> dict:
    result = invoke("audit", "--register", str(root / "register-2021.csv"), "--system", str(root / "system"),
                    "--workflows", str(root / "workflows"), "--as-of", "2021-06-30", "--store", store,
                    "--format", "json", expect=1)
    return json.loads(result.stdout)


def with_s10_may_end(tmp_path: Path) -> Path:
    """The basic scenario with v2's S10 ("waiting for another agency") marked as a step after which the
    procedure may end (the other agency refuses): a dossier there is waiting, not stuck."""
    root = tmp_path / "basic"
    shutil.copytree(BASIC, root)
    v2 = root / "workflows" / "land" / "v2.yaml"
    text = v2.read_text(encoding="utf-8")
    v2.write_text(text.replace("    days: 3\n  - id: S11", "    days: 3\n    may_end: true\n  - id: S11"),
                  encoding="utf-8")
    assert v2.read_text(encoding="utf-8") != text
    return root


def test_a_dossier_on_a_step_that_may_end_the_procedure_is_no_dead_end(store_url: str, tmp_path: Path) -> None:
    report = audit_of(with_s10_may_end(tmp_path), store_url)
    on_s10 = "000.00.53.H48-210106-0014"
    assert [f["kind"] for f in report["findings"] if f["dossier_code"] == on_s10] == []
    assert "dead_end_step" not in report["summary"]
    rows = {(r["procedure"], r["version"], r["step"]): r for r in census(store_url)["rows"]}
    assert (rows[(LAND, 2, "S10")]["open"], rows[(LAND, 2, "S10")]["orphaned"]) == (1, 0)


def test_a_store_of_schema_8_gets_the_may_end_column(store_url: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from reconcile.store import SCHEMA_VERSION, meta_table, open_store, wf_step

    root = with_s10_may_end(tmp_path)
    audit_of(root, store_url)
    store = open_store(store_url, create=False)
    with store.begin() as conn:  # the store as schema 8 left it
        conn.exec_driver_sql("ALTER TABLE wf_step DROP COLUMN may_end")
        conn.execute(sa.update(meta_table).where(meta_table.c.key == "schema_version").values(value="8"))
    store.engine.dispose()
    report = audit_of(root, store_url)
    assert report["run"]["id"] == 2 and "dead_end_step" not in report["summary"]
    store = open_store(store_url, create=False)
    with store.connect() as conn:
        version = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
        may_end = dict(conn.execute(sa.select(wf_step.c.run_id, wf_step.c.may_end)
                                    .where(wf_step.c.step_id == "S10", wf_step.c.version == 2)).all())
    store.engine.dispose()
    assert version == str(SCHEMA_VERSION)
    assert may_end == {1: None, 2: True}  # run 1's rows were written before the column existed
