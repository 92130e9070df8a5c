"""Version diff: pairing rules, transitions, open dossiers from the store, and a cross-check with SpiffWorkflow."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.util.diff import SpecDiff

from helpers import invoke
from reconcile.workflow.bpmn import parse_bpmn
from reconcile.workflow.catalog import Step, WorkflowVersion, catalog_from_docs
from reconcile.store import audit_run, dossier, open_store, wf_state
from reconcile.workflow.diff import ChangedStep, FieldChange, Replacement, diff_versions

from conftest import CASES

BPMN = CASES / "bpmn"
LAND_V1 = (BPMN / "land-v1.bpmn").read_bytes()
LAND_V2 = (BPMN / "land-v2.bpmn").read_bytes()
PROCESS = "Process_DatDai"


def version(data: bytes, number: int = 1) -> WorkflowVersion:
    doc = parse_bpmn(data, f"v{number}.bpmn", version=number).doc
    return catalog_from_docs([(doc, f"v{number}.bpmn")]).versions[0]


def without_s07(data: bytes) -> bytes:
    """land v1 with step S07 taken out by hand: S06 leads straight to S08."""
    root = etree.fromstring(data)
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
    for el in root.xpath("//bpmn:*[@id='S07' or @id='F8'] | //bpmn:flowNodeRef[text()='S07']", namespaces=ns):
        el.getparent().remove(el)
    root.xpath("//bpmn:sequenceFlow[@id='F7']", namespaces=ns)[0].set("targetRef", "S08")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


INTERRUPTING = LAND_V1.replace(b'name="Qu\xc3\xa1 h\xe1\xba\xa1n" cancelActivity="false"', b'name="Qu\xc3\xa1 h\xe1\xba\xa1n"')
assert INTERRUPTING != LAND_V1

# Version pairs in the style of Camunda Modeler exports; land v1 -> v2 exercises every pairing rule.
PAIRS = {
    "land v1 -> v2": (LAND_V1, LAND_V2),
    "unit and due date of S08": (LAND_V1, LAND_V1.replace(
        b'camunda:candidateGroups="LANHDAO" camunda:dueDate="P1D"',
        b'camunda:candidateGroups="PHOCHUTICH" camunda:dueDate="P3D"')),
    "S08 renamed": (LAND_V1, LAND_V1.replace('name="Ký duyệt"'.encode(), 'name="Lãnh đạo ký duyệt"'.encode())),
    # S03's timer made interrupting: only then is it the step's time limit (a non-interrupting one is a reminder).
    "timer of S03": (INTERRUPTING, INTERRUPTING.replace(b">P5D<", b">P7D<")),
    "S07 taken out": (LAND_V1, without_s07(LAND_V1)),
}


# ---------------------------------------------------------------- our diff


def test_land_v1_to_v2_pairs_each_replaced_step_by_its_rule_and_labels_it_a_guess() -> None:
    d = diff_versions(version(LAND_V1, 1), version(LAND_V2, 2))

    assert d.removed == ("S02",)
    assert d.added == ("S05",)
    assert d.replaced == (
        Replacement("S04", "s04", "id", "same id after normalisation ('S04' ~ 's04')", ()),
        Replacement("S06", "Activity_1x2y3z", "name", "same name 'Xác nhận nghĩa vụ tài chính'", ()),
        Replacement("S07", "S07B", "unit+position",
                    "same unit 'VPDK' and same place (after Activity_1x2y3z, before S08)",
                    (FieldChange("name", "Lập hồ sơ cấp giấy", "Chuẩn bị giấy chứng nhận"),)),
    )
    assert all(r.guess for r in d.replaced)
    assert d.changed == (
        ChangedStep("S03", (FieldChange("unit", "VPDK", "CNVPDK"),)),
        ChangedStep("S08", (FieldChange("days", 1.0, 2.0),)),
    )
    assert d.transitions_removed == (("S01", "S02"), ("S02", "S03"))
    assert d.transitions_added == (("S01", "S03"), ("S03", "S05"), ("S05", "Activity_1x2y3z"), ("S05", "S08"))
    assert d.affected_steps == ("S02", "S04", "S06", "S07", "S03", "S08")


def test_identical_versions_have_no_differences_and_final_changes_show() -> None:
    a = version(LAND_V1)
    assert diff_versions(a, a).empty

    b = version(without_s07(LAND_V1), 2)
    d = diff_versions(a, b)
    assert (d.removed, d.added, d.replaced, d.changed) == (("S07",), (), (), ())
    assert d.transitions_removed == (("S06", "S07"), ("S07", "S08"))
    assert d.transitions_added == (("S06", "S08"),)


def test_a_step_with_no_unit_is_never_paired_by_position() -> None:
    docs = [{"procedure": "P", "name": "p", "version": n, "steps": [
        {"id": "A", "name": "a", "days": 1, "next": [middle]},
        {"id": middle, "name": middle, "days": 1, "next": ["Z"]},
        {"id": "Z", "name": "z", "days": 1, "final": True}]} for n, middle in ((1, "B"), (2, "C"))]
    a, b = catalog_from_docs([(doc, f"v{doc['version']}") for doc in docs]).versions

    d = diff_versions(a, b)
    assert (d.removed, d.added, d.replaced) == (("B",), ("C",), ())


def test_a_step_that_comes_to_may_end_the_process_or_to_open_a_side_path_is_a_change() -> None:
    steps = [{"id": "A", "name": "a", "days": 1, "next": ["B", "R"]}, {"id": "B", "name": "b", "days": 1, "final": True},
             {"id": "R", "name": "r", "days": 1}]
    later = [{**steps[0], "may_end": True}, steps[1], {**steps[2], "side_of": "A"}]
    a, b = catalog_from_docs([({"procedure": "P", "name": "p", "version": n, "steps": s}, f"v{n}")
                              for n, s in ((1, steps), (2, later))]).versions
    assert diff_versions(a, b).changed == (ChangedStep("A", (FieldChange("may_end", False, True),)),
                                           ChangedStep("R", (FieldChange("side_of", None, "A"),)))



def test_a_name_written_differently_or_days_of_another_number_type_is_no_change() -> None:
    """Names compare as compare_key sees them, days by value (the store may hand back 2 for 2.0); the
    change lists the values as each version writes them."""
    a, b = (replace(version(LAND_V1, n), steps=()) for n in (1, 2))
    first = Step("S01", "Tiếp nhận  hồ sơ", "Bộ phận một cửa", 2.0, (), False, 1)
    same = replace(first, name="tiếp nhận hồ sơ", days=Decimal(2))
    d = diff_versions(replace(a, steps=(first,)), replace(b, steps=(same,)))
    assert d.empty

    later = replace(same, unit=None, final=True)
    assert diff_versions(replace(a, steps=(first,)), replace(b, steps=(later,))).changed == (ChangedStep("S01", (
        FieldChange("unit", "Bộ phận một cửa", None), FieldChange("final", False, True))),)


# ---------------------------------------------------------------- cross-check with SpiffWorkflow


def spiff(a: bytes, b: bytes, steps: set[str]) -> tuple[set[str], dict[str, str], dict[str, list[str]]]:
    """SpecDiff restricted to task specs that are steps: removed, aligned to another id, changed attributes."""
    def spec(data: bytes) -> Any:
        parser = BpmnParser()
        parser.add_bpmn_xml(etree.fromstring(data), filename="x.bpmn")
        return parser.get_spec(PROCESS)

    diff = SpecDiff(BpmnWorkflowSerializer.configure(), spec(a), spec(b))
    removed = {s.name for s in diff.removed if s.name in steps}
    moved = {s.name: t.name for s, t in diff.alignment.items() if s.name in steps and t and t.name != s.name}
    changed = {s.name: sorted(c) for s, c in diff.changed.items() if s.name in steps}
    return removed, moved, changed


@pytest.mark.parametrize("pair", list(PAIRS))
def test_removed_and_changed_steps_agree_with_spiffworkflow_except_where_documented(pair: str) -> None:
    a_bytes, b_bytes = PAIRS[pair]
    a, b = version(a_bytes, 1), version(b_bytes, 2)
    ours = diff_versions(a, b)
    removed, moved, changed = spiff(a_bytes, b_bytes, {s.id for s in a.steps})

    # Removed steps agree: both say which first-version steps have no counterpart.
    assert set(ours.removed) == removed
    # Renames both see (of a step kept or of a replaced one); we also see the attributes SpiffWorkflow
    # ignores (unit from candidateGroups or lane, days from camunda:dueDate): its task specs lack them.
    ours_changed = {c.step: sorted(f.field for f in c.changes) for c in ours.changed}
    ours_renamed = {s for s, fields in ours_changed.items() if "name" in fields} | {
        r.removed for r in ours.replaced if any(f.field == "name" for f in r.changes)}
    assert {s for s, fields in changed.items() if "bpmn_name" in fields} == ours_renamed

    if pair == "land v1 -> v2":
        # It pairs replaced steps silently (and S04 with a parallel gateway, having no same-id rule);
        # we pair by normalised id, name, then unit and place, and label each pairing a guess.
        assert moved == {"S04": "Gateway_Nhap", "S06": "Activity_1x2y3z", "S07": "S07B"}
        assert {r.removed: r.added for r in ours.replaced} == {"S04": "s04", "S06": "Activity_1x2y3z",
                                                               "S07": "S07B"}
        assert ours_changed == {"S03": ["unit"], "S08": ["days"]}
        # Its changes are structural (inputs/outputs moved); neither S03's unit nor S08's days.
        assert changed["S03"] == ["outputs"] and changed["S08"] == ["inputs"]
    elif pair == "unit and due date of S08":
        assert (moved, changed) == ({}, {})
        assert ours_changed == {"S08": ["days", "unit"]}
    elif pair == "S08 renamed":
        assert changed == {"S08": ["bpmn_name"]} and ours_changed == {"S08": ["name"]}
    elif pair == "timer of S03":
        # It reports the timer event spec; we report the step's time limit that the timer sets.
        assert changed == {}
        assert ours_changed == {"S03": ["days"]}
    elif pair == "S07 taken out":
        assert removed == {"S07"} and moved == {}


# ---------------------------------------------------------------- CLI and open dossiers


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "workflows" / "land"
    root.mkdir(parents=True)
    shutil.copy(BPMN / "land-v1.bpmn", root / "v1.bpmn")
    shutil.copy(BPMN / "land-v2.bpmn", root / "v2.bpmn")
    return tmp_path / "workflows"


def seed_store(url: str) -> None:
    """An audit run with dossiers on v1 steps (open and closed) and one on v2."""
    store = open_store(url)
    rows = [("S02", "in_progress"), ("S02", "received"), ("S02", "returned"), ("S06", "in_progress"),
            ("S08", "finished"), ("S09", "in_progress")]
    with store.begin() as conn:
        for run_id in (1, 2):
            conn.execute(sa.insert(audit_run).values(
                id=run_id, as_of=date(2021, 6, 30), started_at="2021-07-01T08:00:00", tool_version="t",
                fingerprint="f", inputs="{}", settings="{}", periods="[]", register_entries=0, system_dossiers=0))
        conn.execute(sa.insert(dossier), [
            {"run_id": 2, "source_row": i, "dossier_code": f"000.00.00.H48-210101-{i:04d}", "status": status,
             "workflow_key": PROCESS, "workflow_version": 1, "current_step": step, "fingerprint": "x"}
            for i, (step, status) in enumerate(rows)] + [
            {"run_id": 2, "source_row": 99, "dossier_code": None, "status": "in_progress", "workflow_key": PROCESS,
             "workflow_version": 2, "current_step": "S03", "fingerprint": "x"},
            {"run_id": 1, "source_row": 98, "dossier_code": None, "status": "in_progress", "workflow_key": PROCESS,
             "workflow_version": 1, "current_step": "S03", "fingerprint": "x"},
        ])
        # The audit's workflow state of the open ones (the version each runs on), which the counts read.
        conn.execute(sa.insert(wf_state), [
            {"run_id": r["run_id"], "source_row": r["source_row"], "status": r["status"], "procedure": PROCESS,
             "pinned_version": r["workflow_version"], "version": r["workflow_version"], "version_basis": "pinned",
             "version_known": True, "step": r["current_step"], "step_known": True, "stalled_after": 10, "flags": 0}
            for r in conn.execute(sa.select(dossier).where(dossier.c.status.not_in(["returned"]))).mappings()])
    store.engine.dispose()


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_diff_json_counts_open_dossiers_on_affected_steps_in_the_latest_run(
    engine: str, catalog: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = str(tmp_path / "store.duckdb") if engine == "duckdb" else request.getfixturevalue("pg_url")
    seed_store(url)

    result = invoke("workflows", "diff", PROCESS, "1", "2", "--workflows", str(catalog), "--store", url,
                    "--format", "json", expect=0)
    data = json.loads(result.stdout)
    assert data["open_dossiers"] == {"S02": 2, "S04": 0, "S06": 1, "S07": 0, "S03": 0, "S08": 1}
    assert data["store"].endswith(", audit run 2")
    assert data["removed"] == ["S02"]
    assert data["replaced"][2] == {
        "removed": "S07", "added": "S07B", "paired_by": "unit+position",
        "why": "same unit 'VPDK' and same place (after Activity_1x2y3z, before S08)",
        "changes": [{"field": "name", "before": "Lập hồ sơ cấp giấy", "after": "Chuẩn bị giấy chứng nhận"}],
        "guess": True,
    }
    assert data["transitions_removed"] == [["S01", "S02"], ["S02", "S03"]]


def test_diff_without_a_store_leaves_counts_null_and_says_so(catalog: Path, tmp_path: Path) -> None:
    missing = tmp_path / "none.duckdb"
    result = invoke("workflows", "diff", PROCESS, "1", "2", "--workflows", str(catalog), "--store", str(missing),
                    "--format", "json", expect=0)
    data = json.loads(result.stdout)
    assert data["open_dossiers"] is None
    assert data["store"] == (f"no store: store {missing}: no such file. Hint: run `reconcile audit` first, "
                             "or pass --store.")
    assert not missing.exists()


def test_diff_with_an_empty_store_says_there_is_no_run(catalog: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "empty.duckdb")
    open_store(url).engine.dispose()
    result = invoke("workflows", "diff", PROCESS, "1", "2", "--workflows", str(catalog), "--store", url, expect=0)

    assert f"Open dossiers from store {url} holds no audit run. Hint: run `reconcile audit` first." in result.stdout
    assert "│ removed  │ S02 │" in result.stdout
    assert "guess: same id after normalisation ('S04' ~ 's04')" in result.stdout


def test_diff_table_reads_the_project_file(catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_store(str(tmp_path / "store.duckdb"))
    (tmp_path / "reconcile.yaml").write_text("workflows: workflows\nstore: store.duckdb\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    out = invoke("workflows", "diff", PROCESS, "1", "2", expect=0).stdout
    assert out.splitlines()[0] == (f"{PROCESS} v1 (workflows/land/v1.bpmn) -> v2 (workflows/land/v2.bpmn)")
    assert "│ changed  │ S08 │ S08 " in out and "days: 1 -> 2" in out


def test_diff_of_unknown_procedure_or_version_is_bad_input(catalog: Path) -> None:
    result = invoke("workflows", "diff", "X", "1", "2", "--workflows", str(catalog), expect=2)
    assert result.stderr == f"error: {catalog}: no procedure 'X'. Procedures here: {PROCESS}.\n"
    result = invoke("workflows", "diff", PROCESS, "1", "5", "--workflows", str(catalog), expect=2)
    assert result.stderr == f"error: {catalog}: procedure '{PROCESS}' has no version 5. Versions here: 1, 2.\n"
    result = invoke("workflows", "diff", PROCESS, "1", "2", "--config", str(catalog / "none.yaml"), expect=2)
    assert result.stderr == f"error: {catalog / 'none.yaml'}: no such file.\n"
