"""BPMN import: steps, transitions, units and durations from real exports; bad input one line each."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from helpers import invoke
from reconcile.bpmn import load_sidecar, parse_bpmn, to_yaml
from reconcile.catalog import catalog_from_docs, load_catalog
from reconcile.errors import BadInput

from conftest import CASES

BPMN = CASES / "bpmn"


def imported(name: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return parse_bpmn((BPMN / name).read_bytes(), name, **kwargs)  # type: ignore[arg-type]


def problems(name: str, **kwargs: object) -> list[str]:
    with pytest.raises(BadInput) as caught:
        imported(name, **kwargs)
    return caught.value.problems


# ---------------------------------------------------------------- conversion


def test_camunda_modeler_export_becomes_steps_with_gateways_as_transitions() -> None:
    result = imported("land-v1.bpmn")

    assert result.warnings == ()
    assert result.doc["procedure"] == "Process_DatDai"
    assert result.doc["name"] == "Đăng ký biến động quyền sử dụng đất"
    assert result.doc["version"] == 1
    assert [(s["id"], s["unit"], s["days"], s["next"], s["final"]) for s in result.doc["steps"]] == [
        ("S01", "MOTCUA", 0.5, ["S02"], False),  # candidateGroups, dueDate PT4H
        ("S02", "MOTCUA", 1, ["S03"], False),  # lane
        ("S03", "VPDK", 5, ["S04"], False),  # lane, timer boundary event P5D
        ("S04", "VPDK", 2, ["S06", "S08"], False),  # through the exclusive gateway
        ("S06", "THUE", 3, ["S07"], False),
        ("S08", "LANHDAO", 1, ["S09"], False),
        ("S07", "VPDK", 1, ["S08"], False),
        ("S09", "MOTCUA", 0.5, [], True),  # reaches the end event
    ]
    assert result.step_lines["S01"] == 32


def test_parallel_gateways_lead_to_every_branch_and_candidate_groups_beat_lanes() -> None:
    steps = {s["id"]: s for s in imported("land-v2.bpmn").doc["steps"]}

    assert steps["S03"]["next"] == ["s04", "S05"]
    assert steps["S03"]["unit"] == "CNVPDK"  # camunda:candidateGroups; its lane is VPDK
    assert steps["s04"]["next"] == ["Activity_1x2y3z", "S08"]


def test_other_engines_attributes_sidecar_and_unsupported_elements_are_reported() -> None:
    side = load_sidecar(str(BPMN / "mixed-engines.bpmn.yaml"))
    result = imported("mixed-engines.bpmn", sidecar=side)

    assert {k: v for k, v in result.doc.items() if k != "steps"} == {
        "procedure": "1.009972.000.00.00.H48", "name": "Cấp giấy phép xây dựng có thời hạn",
        "field": "Lĩnh vực xây dựng", "version": 1, "valid_from": "2021-03-01",
    }
    assert [(s["id"], s["name"], s["unit"], s["days"], s["next"], s["final"]) for s in result.doc["steps"]] == [
        ("tiepnhan", "Tiếp nhận hồ sơ", "MOTCUA", 0.5, ["thamdinh"], False),
        ("thamdinh", "Thẩm định", "QLDT", 7, ["kiemtra", "tralai"], False),  # the error boundary is a way out
        ("kiemtra", "Kiểm tra thực địa", "QLDT", 3, ["kyduyet"], False),  # a subprocess is one step
        ("kyduyet", "Ký duyệt", "LANHDAO", 1, ["trakq"], False),  # zeebe:assignmentDefinition
        ("tralai", "Trả lại hồ sơ", "MOTCUA", 7, [], True),  # dueDate P1W
        ("trakq", "Trả kết quả", "MOTCUA", 0.5, [], True),
    ]
    assert result.warnings == (
        "mixed-engines.bpmn:3: the sidecar describes step 'huy', which process 'xaydung' does not have; ignored.",
        "mixed-engines.bpmn:6: step 'tiepnhan' has candidate groups MOTCUA, VANTHU; the first, 'MOTCUA', "
        "is its unit.",
        "mixed-engines.bpmn:6: step 'tiepnhan': the sidecar gives 1 days, the BPMN 0.5; the BPMN wins.",
        "mixed-engines.bpmn:9: boundary event 'loi' (error) on 'thamdinh': its outgoing flow is followed as a "
        "way out of the task; its trigger is not modelled.",
        "mixed-engines.bpmn:14: subProcess 'kiemtra' imported as one step; its 2 inner task(s) are not imported.",
        "mixed-engines.bpmn:24: step 'kyduyet': dueDate 'P2M' is not a duration in days, weeks or hours; ignored.",
        "mixed-engines.bpmn:36: dataObject 'giayto' not imported (the catalog has no place for it).",
    )


def test_arguments_beat_the_sidecar_and_missing_durations_warn() -> None:
    result = imported("two-processes.bpmn", process_id="hokinhdoanh_thaydoi", procedure="2.000046", version=7,
                      sidecar={"procedure": "ignored", "version": 3})

    assert (result.doc["procedure"], result.doc["version"]) == ("2.000046", 7)
    assert result.doc["steps"] == [
        {"id": "B", "name": "Tiếp nhận", "unit": "MOTCUA", "days": 2, "next": [], "final": True}
    ]


def test_task_without_name_or_duration_gets_its_id_and_zero_days_with_warnings() -> None:
    data = (BPMN / "dangling-task.bpmn").read_bytes().replace(
        b'<userTask id="B" name="Th\xe1\xba\xa9m \xc4\x91\xe1\xbb\x8bnh"/>',
        b'<task id="B"/><sequenceFlow id="f5" sourceRef="B" targetRef="end"/>')
    result = parse_bpmn(data, "p.bpmn")

    assert [(s["id"], s["name"], s.get("unit"), s["days"]) for s in result.doc["steps"]] == [
        ("A", "Tiếp nhận", None, 0), ("B", "B", None, 0)]
    assert result.warnings == (
        "p.bpmn:6: step 'A' has no duration (no dueDate, timer or sidecar entry); days set to 0.",
        "p.bpmn:11: task 'B' has no name; its id is used.",
        "p.bpmn:11: step 'B' has no duration (no dueDate, timer or sidecar entry); days set to 0.",
    )


def test_to_yaml_round_trips_through_the_catalog_loader(tmp_path: Path) -> None:
    doc = imported("land-v1.bpmn", procedure="1.004227.000.00.00.H48", sidecar={"valid_from": "2021-01-01"}).doc
    text = to_yaml(doc)
    (tmp_path / "land").mkdir()
    (tmp_path / "land" / "v1.yaml").write_text(text, encoding="utf-8")

    assert text.startswith('procedure: 1.004227.000.00.00.H48\nname: Đăng ký biến động quyền sử dụng đất\n'
                           "version: 1\nvalid_from: '2021-01-01'\nsteps:\n- id: S01\n  name: Tiếp nhận hồ sơ\n"
                           "  unit: MOTCUA\n  days: 0.5\n  next: [S02]\n")
    version = load_catalog(tmp_path).versions[0]
    assert yaml.safe_load(text)["steps"] == [{k: v for k, v in s.items() if v not in ([], False)}
                                             for s in doc["steps"]]
    assert [(s.id, s.next, s.final) for s in version.steps] == [
        (s["id"], tuple(s["next"]), s["final"]) for s in doc["steps"]]


# ---------------------------------------------------------------- bad input


def test_malformed_xml_names_line_and_column() -> None:
    assert problems("malformed.bpmn") == [
        "malformed.bpmn:6:13: malformed XML: Opening and ending tag mismatch: userTask line 5 and process. "
        "Hint: open the file in a BPMN modeller and export it again."
    ]


def test_file_without_process_is_refused() -> None:
    assert problems("no-process.bpmn") == [
        "no-process.bpmn:2: no BPMN <process> element (root <definitions>). Hint: export a BPMN 2.0 process "
        "diagram, not a collaboration-only or DMN file."
    ]


def test_several_processes_are_listed_and_an_unknown_pick_too() -> None:
    assert problems("two-processes.bpmn") == [
        "two-processes.bpmn:10: 2 processes (hokinhdoanh, hokinhdoanh_thaydoi). Hint: pick one with --process ID."
    ]
    assert problems("two-processes.bpmn", process_id="nope") == [
        "two-processes.bpmn:3: no process 'nope'. Processes here: hokinhdoanh, hokinhdoanh_thaydoi."
    ]


def test_flow_to_a_missing_element_is_refused() -> None:
    assert problems("flow-to-missing.bpmn") == [
        "flow-to-missing.bpmn:7: sequence flow 'f2' target 'B_deleted': no such element in process 'p'. "
        "Hint: reconnect the flow in the modeller."
    ]


def test_task_without_outgoing_flow_is_refused() -> None:
    assert problems("dangling-task.bpmn") == [
        "dangling-task.bpmn:11: userTask 'B' has no outgoing sequence flow and is not an end event. "
        "Hint: connect it to the next element or to an end event."
    ]


def test_bad_sidecar_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "v1.bpmn.yaml"
    path.write_text("steps:\n  S01: {days: -1, owner: X}\n", encoding="utf-8")

    with pytest.raises(BadInput) as caught:
        load_sidecar(str(path))
    hint = "Hint: a sidecar holds procedure, name, field, version, valid_from and steps: {TASK_ID: {days, unit, name}}."
    assert caught.value.problems == [
        f"{path}:2:19: steps.S01: unknown key 'owner'. Known: days, unit, name. {hint}",
        f"{path}:2:15: steps.S01.days: -1 is less than the minimum of 0. {hint}",
    ]


# ---------------------------------------------------------------- the catalog


def test_catalog_loads_bpmn_with_sidecar_beside_yaml_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(CASES / "catalog" / "sample", "workflows")
    Path("workflows/xaydung").mkdir()
    shutil.copy(BPMN / "mixed-engines.bpmn", "workflows/xaydung/v1.bpmn")
    shutil.copy(BPMN / "mixed-engines.bpmn.yaml", "workflows/xaydung/v1.bpmn.yaml")
    catalog = load_catalog("workflows")

    version = catalog.get("1.009972.000.00.00.H48", 1)
    assert version is not None and version.path == "workflows/xaydung/v1.bpmn"
    assert version.step("kiemtra").line == 14  # type: ignore[union-attr]
    assert len(catalog.versions) == 4
    assert "workflows/xaydung/v1.bpmn:14: subProcess 'kiemtra' imported as one step; its 2 inner task(s) are " \
           "not imported." in catalog.warnings


def test_catalog_refuses_the_same_version_as_yaml_and_bpmn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.chdir(tmp_path)
    Path("workflows/land").mkdir(parents=True)
    shutil.copy(BPMN / "land-v1.bpmn", "workflows/land/v1.bpmn")
    Path("workflows/land/v1.yaml").write_text(
        to_yaml(imported("land-v1.bpmn").doc), encoding="utf-8")

    with pytest.raises(BadInput) as caught:
        load_catalog("workflows")
    assert caught.value.problems == [
        "workflows/land/v1.yaml:1:12: procedure 'Process_DatDai' version 1 is also defined in "
        "workflows/land/v1.bpmn. Keep one file per version."
    ]


def test_catalog_reports_bad_bpmn_and_sidecar_version_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.chdir(tmp_path)
    Path("workflows/a").mkdir(parents=True)
    shutil.copy(BPMN / "dangling-task.bpmn", "workflows/a/v1.bpmn")
    shutil.copy(BPMN / "land-v1.bpmn", "workflows/a/v2.bpmn")
    Path("workflows/a/v2.bpmn.yaml").write_text("version: 3\n", encoding="utf-8")

    with pytest.raises(BadInput) as caught:
        load_catalog("workflows")
    assert caught.value.problems == [
        "workflows/a/v1.bpmn:11: userTask 'B' has no outgoing sequence flow and is not an end event. "
        "Hint: connect it to the next element or to an end event.",
        "workflows/a/v2.bpmn.yaml: version 3 does not match the file name v2.bpmn. "
        "Set version: 2 or remove it from the sidecar.",
    ]


def test_catalog_from_docs_validates_like_files() -> None:
    good = {"procedure": "P", "name": "Thủ tục", "version": 1,
            "steps": [{"id": "A", "name": "a", "days": 1, "next": ["B"]},
                      {"id": "B", "name": "b", "days": 1, "final": True},
                      {"id": "C", "name": "c", "days": 1}]}
    catalog = catalog_from_docs([(good, "engine P:1")])
    assert [v.version for v in catalog.versions] == [1]
    assert catalog.warnings == (
        "engine P:1: steps[2].id: step 'C' cannot be reached from the first step 'A'.",
        "engine P:1: steps[2].id: step 'C' is not final and has no next step; dossiers there cannot finish.",
    )

    bad = {**good, "steps": [{"id": "A", "name": "a", "days": 1, "next": ["X"]},
                             {"id": "A", "name": "b", "days": 1}]}
    with pytest.raises(BadInput) as caught:
        catalog_from_docs([(bad, "engine P:2"), (good, "engine P:1 again"), ({"name": "x"}, "engine Q:1")])
    assert caught.value.problems == [
        "engine P:2: steps[1].id: duplicate step id 'A'; first defined earlier. Step ids must be unique "
        "within a version.",
        "engine P:2: steps[0].next[0]: step 'A' -> 'X': no such step. Steps here: A.",
        "engine P:2: steps: no final step. Mark the step(s) that end the procedure with final: true.",
        "engine Q:1: 'procedure' is required. Keys here: name.",
        "engine Q:1: 'version' is required. Keys here: name.",
        "engine Q:1: 'steps' is required. Keys here: name.",
        "engine P:1 again: procedure: procedure 'P' version 1 is also defined in engine P:2. "
        "Keep one file per version.",
    ]


# ---------------------------------------------------------------- CLI


def test_import_bpmn_prints_yaml_and_warnings(tmp_path: Path) -> None:
    result = invoke("workflows", "import-bpmn", str(BPMN / "mixed-engines.bpmn"),
                    "--sidecar", str(BPMN / "mixed-engines.bpmn.yaml"), "--version", "4", expect=0)

    assert yaml.safe_load(result.stdout)["version"] == 4
    assert result.stderr.splitlines()[0] == (
        f"warning: {BPMN / 'mixed-engines.bpmn'}:3: the sidecar describes step 'huy', which process 'xaydung' "
        "does not have; ignored.")


def test_import_bpmn_writes_out_file_whole_and_nothing_on_error(tmp_path: Path) -> None:
    out = tmp_path / "v1.yaml"
    invoke("workflows", "import-bpmn", str(BPMN / "land-v1.bpmn"), "--out", str(out), expect=0)
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["procedure"] == "Process_DatDai"

    bad = tmp_path / "v2.yaml"
    result = invoke("workflows", "import-bpmn", str(BPMN / "two-processes.bpmn"), "--out", str(bad), expect=2)
    assert result.stderr == (f"error: {BPMN / 'two-processes.bpmn'}:10: 2 processes (hokinhdoanh, "
                             "hokinhdoanh_thaydoi). Hint: pick one with --process ID.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.yaml"]


def test_import_bpmn_refuses_a_process_without_a_reachable_end(tmp_path: Path) -> None:
    path = tmp_path / "loop.bpmn"
    path.write_text((BPMN / "dangling-task.bpmn").read_text(encoding="utf-8")
                    .replace('<sequenceFlow id="f4" sourceRef="gw" targetRef="end"/>', "")
                    .replace('<userTask id="B" name="Thẩm định"/>',
                             '<userTask id="B" name="Thẩm định"/><sequenceFlow id="f5" sourceRef="B" targetRef="A"/>')
                    .replace('<endEvent id="end"/>', ""), encoding="utf-8")

    result = invoke("workflows", "import-bpmn", str(path), expect=2)
    assert result.stderr == (f"error: {path}: steps: no final step. Mark the step(s) that end the procedure "
                             "with final: true.\n")


def test_workflows_check_counts_and_errors(tmp_path: Path) -> None:
    shutil.copytree(CASES / "catalog" / "sample", tmp_path / "ok")
    shutil.copy(BPMN / "land-v2.bpmn", tmp_path / "ok" / "land" / "v3.bpmn")
    result = invoke("workflows", "check", str(tmp_path / "ok"), expect=0)
    assert result.stdout == f"{tmp_path / 'ok'}: valid: 3 procedures, 4 versions, 20 steps, 1 warnings\n"
    assert result.stderr == (f"warning: {tmp_path / 'ok' / 'land' / 'v3.bpmn'}: name: name 'Đăng ký biến động "
                             "quyền sử dụng đất' is also used by procedure '1.004227.000.00.00.H48'; register "
                             "rows with this name cannot be matched by name.\n")

    (tmp_path / "bad" / "x").mkdir(parents=True)
    shutil.copy(BPMN / "malformed.bpmn", tmp_path / "bad" / "x" / "v1.bpmn")
    result = invoke("workflows", "check", str(tmp_path / "bad"), expect=2)
    assert result.stderr == (f"error: {tmp_path / 'bad' / 'x' / 'v1.bpmn'}:6:13: malformed XML: Opening and "
                             "ending tag mismatch: userTask line 5 and process. Hint: open the file in a BPMN "
                             "modeller and export it again.\n")
