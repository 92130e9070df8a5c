"""`show CODE` on the small simulated district: paper <-> system <-> plan differences of one dossier.

The audit finds mismatches with set-based SQL; `show` finds them again for one dossier with DeepDiff.
The tests take the expected values from the audit's findings and the plan, so the two must agree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import invoke
from reconcile.demo.simulate import simulate


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, list[dict[str, Any]]]]:
    """The small district audited: (its folder, the store, findings by kind)."""
    out = tmp_path_factory.mktemp("show") / "d"
    simulate(out, scale=0.05)
    report = json.loads(invoke("audit", "--config", str(out / "reconcile.yaml"), "--format", "json").stdout)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for f in report["findings"]:
        by_kind.setdefault(f["kind"], []).append(f)
    return out, str(out / "reconcile.duckdb"), by_kind


def show(store: str, code: str, *extra: str) -> dict[str, Any]:
    return json.loads(invoke("show", code, "--store", store, "--format", "json", *extra, expect=0).stdout)


def test_a_date_and_a_name_the_audit_found_different_are_the_differences_show_lists(audited) -> None:
    _, store, by_kind = audited
    for f in by_kind["date_mismatch"]:
        d = f["details"]
        view = show(store, f["dossier_code"])
        assert {"field": d["field"], "register": d["register"], "system": d["system"]} in \
            view["differences"]["register_system"]
    mismatch = by_kind["field_mismatch"][0]
    view = show(store, mismatch["dossier_code"])
    found = {x["field"]: (x["register"], x["system"]) for x in view["differences"]["register_system"]}
    for x in mismatch["details"]["fields"]:
        assert found[x["field"]] == (x["register"], x["system"])


def test_a_dossier_returned_on_paper_shows_the_plan_closing_it(audited) -> None:
    _, store, by_kind = audited
    f = by_kind["resolved_not_closed"][0]
    view = show(store, f["dossier_code"])
    returned = f["details"]["returned_on_paper"]
    assert {"field": "outcome", "register": "returned", "system": f["details"]["system_status"]} in \
        view["differences"]["register_system"]
    assert {"field": "returned_at", "register": returned, "system": None} in view["differences"]["register_system"]
    [action] = view["plan"]["actions"]
    assert action["action"] == "close" and view["plan"]["file"] is None
    plan = {x["field"]: (x["system"], x["plan"]) for x in view["differences"]["plan_system"]}
    assert plan["status"] == (f["details"]["system_status"], "returned")
    assert plan["returned_at"] == (None, returned)

    table = invoke("show", f["dossier_code"], "--store", store, expect=0).stdout
    assert "Differences (register / system / plan)" in table and "Plan (the run's plan as built now): close" in table
    row = next(line for line in table.splitlines() if "returned_at" in line and "(empty)" in line)
    assert row.count(returned) == 2  # on paper and in the plan, not in the system


def test_a_migration_shows_the_version_and_step_it_would_set(audited) -> None:
    _, store, by_kind = audited
    f = by_kind["superseded_version"][0]
    d = f["details"]
    view = show(store, f["dossier_code"])
    [action] = view["plan"]["actions"]
    assert action["action"] == "migrate"
    plan = {x["field"]: (x["system"], x["plan"]) for x in view["differences"]["plan_system"]}
    assert plan["workflow_version"] == (d["workflow_version"], d["to_workflow_version"])
    assert plan["current_step"] == (d["current_step"], d["to_step"])


def test_a_dossier_missing_from_the_system_is_backfilled_from_nothing(audited) -> None:
    _, store, by_kind = audited
    f = by_kind["missing_in_system"][0]
    view = show(store, f["dossier_code"])
    assert view["system"] == [] and view["differences"]["register_system"] == []
    [action] = view["plan"]["actions"]
    assert action["action"] == "backfill"
    rows = view["differences"]["plan_system"]
    assert rows and all(x["system"] is None for x in rows)
    assert {x["field"]: x["plan"] for x in rows} == {k: v for k, v in action["set"].items() if v is not None}


def test_a_matched_dossier_without_findings_has_no_differences(audited) -> None:
    _, store, by_kind = audited
    flagged = {f["dossier_code"] for fs in by_kind.values() for f in fs}
    view = show(store, "000.00.53.H48-210104-0001")
    assert view["class"] == "matched" and "000.00.53.H48-210104-0001" not in flagged
    assert view["differences"] == {"register_system": [], "plan_system": []} and view["plan"]["actions"] == []
    assert "Differences: none" in invoke("show", "000.00.53.H48-210104-0001", "--store", store, expect=0).stdout


def test_show_reads_the_plan_file_it_is_given(audited, tmp_path: Path) -> None:
    folder, store, by_kind = audited
    work = tmp_path / "d"
    shutil.copytree(folder, work)
    store = str(work / "reconcile.duckdb")
    code = by_kind["resolved_not_closed"][0]["dossier_code"]
    path = tmp_path / "plan.yaml"
    invoke("plan", "--store", store, "--out", str(path), expect=0)
    plan = yaml.safe_load(path.read_text(encoding="utf-8"))
    item = next(a for a in plan["actions"] if a["dossier_code"] == code)
    item["set"]["returned_at"] = item["returned_at"] = "2021-06-01"  # a reviewer corrected the date
    path.write_text(yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), encoding="utf-8")

    view = show(store, code, "--plan", str(path))
    assert view["plan"]["file"] == str(path)
    plan_rows = {x["field"]: (x["system"], x["plan"]) for x in view["differences"]["plan_system"]}
    assert plan_rows["returned_at"] == (None, "2021-06-01")
    assert show(store, code)["differences"]["plan_system"] != view["differences"]["plan_system"]


def test_without_its_rules_folder_show_still_shows_the_dossier_and_says_why_there_is_no_plan(
        audited, tmp_path: Path) -> None:
    folder, _, by_kind = audited
    work = tmp_path / "d"
    shutil.copytree(folder, work)
    (work / "reconcile.duckdb").unlink()
    invoke("audit", "--config", str(work / "reconcile.yaml"), "--format", "json", expect=1)
    (work / "workflows").rename(tmp_path / "moved")
    store = str(work / "reconcile.duckdb")
    f = by_kind["date_mismatch"][0]
    view = show(store, f["dossier_code"])
    assert view["plan"]["actions"] == [] and "catalog folder" in view["plan"]["unavailable"]
    assert view["differences"]["register_system"]  # the paper <-> system part needs no plan
    out = invoke("show", f["dossier_code"], "--store", store, expect=0).stdout
    assert "Plan: not available: run 1: its catalog folder" in out
    invoke("show", f["dossier_code"], "--store", store, "--plan", str(tmp_path / "none.yaml"), expect=2)
