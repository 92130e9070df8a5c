"""`reconcile report` on the demo district: what the report data holds, every format written,
byte-identical re-renders, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import invoke
from reconcile.util import i18n

FORMATS = ("html", "md", "xlsx", "json", "csv")


@pytest.fixture(scope="module")
def store(demo_run: tuple[Path, Any]) -> str:
    return str(demo_run[0] / "inputs" / "reconcile.duckdb")


@pytest.fixture(scope="module")
def project(demo_run: tuple[Path, Any]) -> str:
    return str(demo_run[0] / "inputs" / "reconcile.yaml")


def _report(store: str, project: str, out: Path, *args: str) -> list[str]:
    result = invoke("report", "--store", store, "--config", project, "--run", "1", "--out", str(out), *args, expect=0)
    return sorted(Path(line.removeprefix("wrote ")).name for line in result.stdout.splitlines())


def test_report_json_holds_the_run_summary_statistics_and_worklists(store: str, project: str, tmp_path: Path,
                                                                    demo_run: tuple[Path, Any]) -> None:
    assert _report(store, project, tmp_path, "--format", "json") == ["report.json"]
    doc = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    findings = json.loads((demo_run[0] / "findings.json").read_text(encoding="utf-8"))
    fixes = json.loads((demo_run[0] / "fixes.json").read_text(encoding="utf-8"))
    s = doc["summary"]
    assert s["by_kind"] == findings["summary"] and s["findings"] == len(findings["findings"])
    assert s["plan_actions"] == fixes["plan"]["counts"]
    assert s["on_time_before"] == [9905, 12463]  # the appendix's total: on time (early included) / resolved
    assert s["on_time_after"][1] == 12463 + fixes["plan"]["counts"]["close"]
    assert doc["district"] == "huyện Bình Sơn, tỉnh Quảng Ngãi" and "inputs" not in doc["run"]
    assert [sec["kind"] for sec in doc["findings"]] == list(findings["summary"])
    assert sum(sec["count"] for sec in doc["findings"]) == len(findings["findings"])
    # Every dossier with a finding is on exactly one unit's worklist; those on paper carry their row.
    coded = {f["dossier_code"] for f in findings["findings"] if f["dossier_code"]}
    listed = [i["dossier_code"] for w in doc["worklists"] for i in w["items"]]
    assert sorted(listed) == sorted(coded)
    item = next(i for w in doc["worklists"] for i in w["items"] if i["dossier_code"] == "000.00.53.H48-210222-0039")
    assert item["issues"] == ["step_not_in_version", "stalled", "superseded_version"]
    assert item["action"]["action"] == "migrate" and item["action"]["params"] == {"step": "S06A", "version": 3}
    assert item["evidence"]["file"] == "so-theo-doi-ho-so-2021.xlsx" and item["evidence"]["row"] > 1
    assert sum(n for _, _, n in doc["stuck_age"]) == s["orphaned"]
    assert doc["stats_before"]["view"] == "system" and doc["stats_after"]["view"] == "after-plan"


def test_every_format_in_both_languages_renders_the_same_bytes_twice(store: str, project: str,
                                                                     tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    names = _report(store, project, first, "--format", "all", "--lang", "vi", "--lang", "en")
    assert _report(store, project, second, "--format", "all", "--lang", "vi", "--lang", "en") == names
    assert "report.vi.html" in names and "report.en.xlsx" in names and "report.vi.worklists.csv" in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    vi = (first / "report.vi.md").read_text(encoding="utf-8")
    en = (first / "report.en.md").read_text(encoding="utf-8")
    assert "15.256" in vi and "30/06/2021" in vi and i18n.percent(9905, 12463, "vi") in vi
    assert "15,256" in en and "2021-06-30" in en


def test_a_reviewed_plan_file_gives_the_same_report_as_the_runs_plan(store: str, project: str, tmp_path: Path,
                                                                     demo_run: tuple[Path, Any]) -> None:
    plan = demo_run[0] / "inputs" / "plan.yaml"  # the demo's plan of run 1, unedited
    _report(store, project, tmp_path / "built", "--format", "json")
    _report(store, project, tmp_path / "file", "--format", "json", "--plan", str(plan))
    assert (tmp_path / "file" / "report.json").read_bytes() == (tmp_path / "built" / "report.json").read_bytes()


def test_report_bad_input_is_one_line(store: str, project: str, tmp_path: Path) -> None:
    result = invoke("report", "--store", store, "--run", "42", "--out", str(tmp_path / "new"), expect=2)
    assert result.stderr.strip() == f"error: run 42: no such audit run in duckdb:///{store}. Hint: `reconcile history`."
    assert not (tmp_path / "new").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    result = invoke("report", "--store", store, "--run", "1", "--out", str(blocker / "sub"), expect=2)
    assert result.stderr.strip() == (f"error: --out {blocker / 'sub'}: cannot create the folder: Not a directory. "
                                     "Hint: pick a writable folder.")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = invoke("report", "--store", store, "--run", "1", "--format", "json", "--out", str(locked))
        if result.exit_code == 0:  # root ignores permissions: nothing to check
            return
        assert result.exit_code == 2
        assert result.stderr.strip() == (f"error: {locked / 'report.json'}: cannot write: Permission denied. "
                                         "Hint: check the folder is writable.")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)
    result = invoke("report", "--store", str(tmp_path / "none.duckdb"), "--out", str(tmp_path), expect=2)
    assert "no such file" in result.stderr and result.stderr.count("\n") == 1


def test_finding_details_are_told_in_the_report_language(demo_run: tuple[Path, Any]) -> None:
    from reconcile.report.csvout import details_text

    findings = json.loads((demo_run[0] / "findings.json").read_text(encoding="utf-8"))["findings"]
    for f in findings:  # every kind of the demo: each detail and each reason has its words
        vi, en = details_text(f["details"], "vi"), details_text(f["details"], "en")
        assert f["details"]["reason"] not in vi if "reason" in f["details"] else True, vi
        assert "_" not in vi.split(": ")[0] and "_" not in en.split(": ")[0], (vi, en)
    gap = {"book": "b.xlsx", "problem": "gap", "missing_from": 7, "missing_to": 9, "count": 3,
           "reason": "entry numbers skipped in the book"}
    assert details_text(gap, "vi") == ("Sổ: b.xlsx; Vấn đề: nhảy số; Thiếu từ số: 7; đến số: 9; Số lượng: 3; "
                                       "Lý do: sổ bị nhảy số thứ tự")
    assert details_text({"field": "due_at", "timeliness_flips": True}, "en") == "field: due; timeliness flips: yes"
    # A detail or reason the catalog does not know yet is shown as stored, not dropped.
    assert details_text({"new_key": "x", "reason": "a new reason"}, "vi") == "new_key: x; Lý do: a new reason"
