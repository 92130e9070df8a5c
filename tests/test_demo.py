"""The demo district: the audit finds exactly what the simulator planted, and `make demo`'s
committed findings.json is what the code produces today."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from helpers import REGEN
from reconcile.audit.results import RunReport
from reconcile.model import FindingKind

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "reports" / "binh-son-2021-h1"


def test_demo_audit_finds_exactly_the_planted_defects(demo_run: tuple[Path, RunReport]) -> None:
    out, report = demo_run
    truth = json.loads((out / "inputs" / "ground_truth.json").read_text(encoding="utf-8"))
    expected = {(f["kind"], f["dossier_code"]) for f in truth["findings"] if f["dossier_code"]}
    found = {(f["kind"], f["dossier_code"]) for f in report.findings if f["dossier_code"]}
    assert sorted(found - expected) == [] and sorted(expected - found) == []
    gaps = sorted((f["details"]["missing_from"], f["details"]["missing_to"]) for f in report.findings
                  if f["kind"] == "register_numbering_gap")
    assert gaps == sorted((f["missing_from"], f["missing_to"]) for f in truth["findings"]
                          if f["kind"] == "register_numbering_gap")


def test_demo_field_level_details_match_the_ground_truth(demo_run: tuple[Path, RunReport]) -> None:
    out, report = demo_run
    truth = json.loads((out / "inputs" / "ground_truth.json").read_text(encoding="utf-8"))
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for f in report.findings:
        if f["kind"] == "date_mismatch":
            found[(f["kind"], f["dossier_code"])].add(f["details"]["field"])
        if f["kind"] == "field_mismatch":
            found[(f["kind"], f["dossier_code"])] |= {x["field"] for x in f["details"]["fields"]}
    expected = {(f["kind"], f["dossier_code"]): set(f["fields"]) for f in truth["findings"] if "fields" in f}
    assert dict(found) == expected


def test_demo_covers_every_finding_kind(demo_run: tuple[Path, RunReport]) -> None:
    _, report = demo_run
    kinds = {k.value for k in FindingKind}
    assert set(report.summary) == kinds
    assert report.run["counts"] == {"register_entries": 13904, "system_dossiers": 15256}
    assert report.run["paper_only_units"] == {"UBND xã Bình Hải": 16, "UBND xã Bình Tân Phú": 16}


DEMO_FILES = {"findings.json", "census.json", "fixes.json", "report.json",
              *(f"report.{lang}.{ext}" for lang in ("vi", "en") for ext in
                ("html", "md", "xlsx", "findings.csv", "worklists.csv", "stats.csv", "census.csv"))}


def _outputs(folder: Path) -> set[str]:
    """The demo's output files: the folder's own, its tickets/ bundle and its notices/ (inputs/ is not
    committed)."""
    return ({p.name for p in folder.iterdir() if p.is_file()}
            | {f"{sub}/{p.name}" for sub in ("tickets", "notices") if (folder / sub).is_dir()
               for p in (folder / sub).iterdir()})


def test_committed_demo_outputs_are_current(demo_run: tuple[Path, RunReport]) -> None:
    """`make demo` regenerates reports/binh-son-2021-h1/ byte for byte; RECONCILE_REGEN=1 rewrites it."""
    out, _ = demo_run
    written = _outputs(out)
    assert DEMO_FILES <= written and {n for n in written - DEMO_FILES
                                      if not n.startswith(("tickets/", "notices/"))} == set()
    assert {"tickets/index.md", "tickets/tickets.csv", "tickets/tickets.json"} <= written
    assert {n for n in written if n.startswith("notices/")} == {"notices/sms-1.csv", "notices/skipped-1.csv"}
    changed = []
    for name in sorted(written):
        fresh = (out / name).read_bytes().replace(str(out).encode(), b"reports/binh-son-2021-h1")
        committed = COMMITTED / name
        if REGEN:
            committed.parent.mkdir(exist_ok=True)
            committed.write_bytes(fresh)
        if not committed.exists() or committed.read_bytes() != fresh:
            changed.append(name)
    assert not changed, f"demo output changed or missing: {changed}; run `make demo` and commit"
    assert _outputs(COMMITTED) == written


def test_demo_census_shows_the_edited_in_place_orphans(demo_run: tuple[Path, RunReport]) -> None:
    out, report = demo_run
    census = json.loads((out / "census.json").read_text(encoding="utf-8"))
    gone = {r["step"]: r for r in census["rows"] if r["procedure"] == "1.004227.000.00.00.H48" and r["version"] == 2
            and not r["step_in_version"]}
    truth = json.loads((out / "inputs" / "ground_truth.json").read_text(encoding="utf-8"))
    planted = sum(1 for f in truth["findings"] if f["kind"] == "step_not_in_version")
    assert sorted(gone) == ["S02", "S05"] and sum(r["orphaned"] for r in gone.values()) == planted
    assert census["total"]["by_reason"]["stalled"] == report.summary["stalled"]


def test_demo_census_and_wf_state_agree_with_the_version_inference(demo_run: tuple[Path, RunReport]) -> None:
    import duckdb

    out, report = demo_run
    truth = json.loads((out / "inputs" / "ground_truth.json").read_text(encoding="utf-8"))
    assumed = truth["version_assumed"]
    con = duckdb.connect(str(out / "inputs" / "reconcile.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT dossier_code, procedure, version, step, version_basis FROM wf_state "
                           "WHERE run_id = ? AND version_basis <> 'pinned' ORDER BY dossier_code",
                           [report.run["id"]]).fetchall()
    finally:
        con.close()
    assert rows == [(a["dossier_code"], a["procedure"], a["version"], a["step"], a["basis"]) for a in assumed]
    assert {a["basis"] for a in assumed} == {"step_and_date", "step"}
    census = json.loads((out / "census.json").read_text(encoding="utf-8"))
    per_step = Counter((a["procedure"], a["version"], a["step"]) for a in assumed)
    assert {(r["procedure"], r["version"], r["step"]): r["version_assumed"] for r in census["rows"]
            if r["version_assumed"]} == per_step
    # The loop without an exit and the unstaffed survey step, as the census shows them.
    by_step = {(r["procedure"], r["version"], r["step"]): r for r in census["rows"]}
    dead = [by_step[k] for k in by_step if k[:2] == ("1.004227.000.00.00.H48", 3) and k[2] in ("S03A", "S03B")]
    assert sum(r["by_reason"]["dead_end_step"] for r in dead) == report.summary["dead_end_step"] == 8
    survey = by_step[("1.004199.000.00.00.H48", 2, "S02B")]
    assert survey["by_reason"]["unit_without_staff"] == survey["orphaned"] == report.summary["unit_without_staff"]
    assert census["total"]["by_reason"]["stalled"] == report.summary["stalled"] == 80


def test_audit_in_the_demo_folder_repeats_the_demo_from_its_project_file(
        demo_run: tuple[Path, RunReport], monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import invoke

    out, report = demo_run
    fixes = json.loads((out / "fixes.json").read_text(encoding="utf-8"))
    monkeypatch.chdir(out / "inputs")
    again = json.loads(invoke("audit", "--format", "json", expect=1).stdout)
    assert again["run"]["id"] == 4  # the demo's store, as the project file says: after its three audits
    assert again["summary"] == fixes["findings"]["after_apply"]  # the demo ends with the plan applied


def test_demo_fixes_every_planted_orphan_or_escalates_it(demo_run: tuple[Path, RunReport]) -> None:
    out, report = demo_run
    fixes = json.loads((out / "fixes.json").read_text(encoding="utf-8"))
    before, after, undone = (fixes["findings"][k] for k in ("before", "after_apply", "after_undo"))
    # Closed, migrated and reassigned: those findings are gone; the escalated ones stay for the vendor.
    for kind in ("resolved_not_closed", "step_not_in_version", "assignee_inactive"):
        assert before[kind] > 0 and kind not in after
    for kind in ("unknown_version", "dead_end_step", "unit_without_staff"):
        assert after[kind] == before[kind]
    # Nothing else changed (no clean dossier touched), and undo restores the audit exactly.
    paper = ("missing_in_system", "missing_in_register", "closed_not_resolved", "status_mismatch", "date_mismatch",
             "field_mismatch", "duplicate_code", "register_numbering_gap")
    assert {k: after.get(k) for k in paper} == {k: before.get(k) for k in paper}
    assert undone == before == report.summary
    # Every confirmed close, migrate and reassign is written (orphans, and superseded dossiers migrated
    # by the rules); escalations are left for the vendor.
    planned = fixes["plan"]["counts"]
    writes = planned["close"] + planned["migrate"] + planned["reassign"]
    # The backfills of the dossiers on the register only await a person's confirmation: not applied.
    assert fixes["apply"]["counts"] == {"written": writes, "escalate": fixes["plan"]["validation"]["escalated"],
                                        "unconfirmed": planned["backfill"]}
    assert planned["backfill"] == fixes["plan"]["validation"]["backfills_awaiting_confirmation"] == before[
        "missing_in_system"]
    assert fixes["apply_again"]["counts"]["written"] == writes
    assert "superseded_version" not in after and before["superseded_version"] > 0
