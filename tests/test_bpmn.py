"""BPMN import: steps, transitions, units and durations from real exports; bad input one line each."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from helpers import invoke
from reconcile.workflow.bpmn import load_sidecar, parse_bpmn, to_yaml
from reconcile.workflow.catalog import FORMAT_HINT, catalog_from_docs, load_catalog
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

    assert result.warnings == (
        "land-v1.bpmn:6: 1 step of 8 has no duration (no dueDate, interrupting timer or sidecar entry), so its "
        "days are set to 0: 'S03'.",
        "land-v1.bpmn:73: non-interrupting boundary event 'Timer_S03' (timer) on 'S03' leads to no task: not a "
        "way out of the task; its timer is not the task's duration.",
    )
    assert result.doc["procedure"] == "Process_DatDai"
    assert result.doc["name"] == "Đăng ký biến động quyền sử dụng đất"
    assert result.doc["version"] == 1
    assert [(s["id"], s["unit"], s["days"], s["next"], s["final"]) for s in result.doc["steps"]] == [
        ("S01", "MOTCUA", 0.5, ["S02"], False),  # candidateGroups, dueDate PT4H
        ("S02", "MOTCUA", 1, ["S03"], False),  # lane
        ("S03", "VPDK", 0, ["S04"], False),  # lane; its P5D timer does not interrupt it: no duration
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
        "mixed-engines.bpmn:14: subProcess 'kiemtra' imported as one step; its 2 inner task(s) are not imported.",
        "mixed-engines.bpmn:24: step 'kyduyet': dueDate 'P2M' is not a duration in days, weeks or hours (up to "
        "1000 working days); ignored.",
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
    assert result.warnings == (  # one warning for every step with no duration
        "p.bpmn:3: 2 steps of 2 have no duration (no dueDate, interrupting timer or sidecar entry), so their days "
        "are set to 0: 'A', 'B'.",
        "p.bpmn:11: task 'B' has no name; its id is used.",
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
    assert yaml.safe_load(text)["steps"] == [{k: v for k, v in s.items() if v is not False and v != []}
                                             for s in doc["steps"]]
    assert [(s.id, s.next, s.final) for s in version.steps] == [
        (s["id"], tuple(s["next"]), s["final"]) for s in doc["steps"]]


# ---------------------------------------------------------------- the standard as the engines read it


def shape(result) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    """Each step as (id, unit, days, next, then the flags it carries: final, may_end, start, side_of=X)."""
    flags = []
    for s in result.doc["steps"]:
        marks = [k for k in ("final", "may_end", "start") if s.get(k)]
        marks += [f"side_of={s['side_of']}"] if s.get("side_of") else []
        flags.append((s["id"], s.get("unit"), s["days"], s["next"], *marks))
    return flags


def test_non_interrupting_boundary_events_open_side_steps_and_interrupting_ones_are_exits() -> None:
    """A reminder timer (PT5M) opens a side path: its tasks are not in the task's next, never final because
    of it, and the 5 minutes are not the task's days; the interrupting timer (P10D) is a way out and the
    task's duration."""
    result = imported("boundary-events.bpmn")

    assert shape(result) == [
        ("S03", "VPDK", 10, ["S04", "E"]),
        ("S04", "MOTCUA", 1, [], "final"),
        ("E", "LANHDAO", 0, [], "final"),
        ("R1", "VPDK", 0, ["R2"], "side_of=S03"),
        ("R2", None, 0, [], "may_end"),
    ]
    assert result.warnings == (
        "boundary-events.bpmn:3: 3 steps of 5 have no duration (no dueDate, interrupting timer or sidecar entry), "
        "so their days are set to 0: 'E', 'R1', 'R2'.",
        "boundary-events.bpmn:7: non-interrupting boundary event 'nhac' (timer) on 'S03' opens a side path to "
        "'R1': not a way out of the task; its timer is not the task's duration.",
        "boundary-events.bpmn:16: non-interrupting boundary event 'bosung' (message) on 'S03' leads to no task: "
        "not a way out of the task.",
    )
    catalog = catalog_from_docs([(result.doc, "x")])
    assert catalog.warnings == ()  # the side path is reachable from the step it waits beside
    assert catalog.versions[0].reachable_final() == {"S03", "S04", "E", "R1", "R2"}


def test_event_subprocesses_are_not_steps_and_their_triggers_are_noted() -> None:
    result = imported("event-subprocess.bpmn")

    assert shape(result) == [("A", "MOTCUA", 0.5, ["B"]), ("B", "TUPHAP", 1, [], "final")]
    assert result.warnings == (
        "event-subprocess.bpmn:11: event subprocess 'huy' (triggered by message) not imported: it runs only when "
        "its trigger fires; its 1 inner task(s) are not steps.",
        "event-subprocess.bpmn:20: event subprocess 'nhac' (triggered by timer, non-interrupting) not imported: it "
        "runs only when its trigger fires; its 1 inner task(s) are not steps.",
    )


def test_a_link_throw_event_continues_at_the_catch_event_of_the_same_name() -> None:
    result = imported("link-events.bpmn")
    assert shape(result) == [("A", "MOTCUA", 0.5, ["B"]), ("B", "TUPHAP", 1, [], "final")]
    assert result.warnings == ()

    data = (BPMN / "link-events.bpmn").read_bytes().replace(b'<bpmn:linkEventDefinition name="trang2"/>\n    </bpmn:'
                                                            b'intermediateThrowEvent>', b'<bpmn:linkEventDefinition '
                                                            b'name="trang3"/>\n    </bpmn:intermediateThrowEvent>')
    with pytest.raises(BadInput) as caught:
        parse_bpmn(data, "p.bpmn")
    assert caught.value.problems == [
        "p.bpmn:8: link throw event 'toPage2' (link 'trang3'): no link catch event of that name in process "
        "'hotich'. Hint: give the catch event's link the same name in the modeller."
    ]


def test_compensation_handlers_are_left_out_before_the_graph_checks(tmp_path: Path) -> None:
    """The handler has no flow in or out: it is left out with a warning, not refused for having no way out."""
    result = imported("compensation.bpmn")

    assert shape(result) == [("thu", "KETOAN", 1, ["xuly"]), ("xuly", "MOTCUA", 2, [], "final")]
    assert result.warnings == (
        "compensation.bpmn:10: compensation handler 'hoan' (serviceTask) not imported: it runs only when "
        "compensation is thrown.",
    )


def test_an_activity_without_outgoing_flow_ends_its_token_with_a_warning(tmp_path: Path) -> None:
    """B has no outgoing flow: every engine ends its token there, so it is a way to the end (final), and A,
    whose gateway may also end the process, may end it."""
    result = imported("dangling-task.bpmn")

    assert shape(result) == [("A", None, 0, ["B"], "may_end"), ("B", None, 0, [], "final")]
    assert result.warnings == (
        "dangling-task.bpmn:3: 2 steps of 2 have no duration (no dueDate, interrupting timer or sidecar entry), so "
        "their days are set to 0: 'A', 'B'.",
        "dangling-task.bpmn:11: userTask 'B' has no outgoing sequence flow: its token ends there (an implicit end).",
    )
    (tmp_path / "p").mkdir()
    shutil.copy(BPMN / "dangling-task.bpmn", tmp_path / "p" / "v1.bpmn")
    check = invoke("workflows", "check", str(tmp_path), expect=0)
    assert check.stdout == f"{tmp_path}: valid: 1 procedures, 1 versions, 2 steps, 2 warnings\n"


def test_units_come_from_groups_owners_named_lanes_the_pool_then_the_assignee_never_an_id() -> None:
    """Candidate groups in any namespace, potentialOwner's group(...), the innermost named lane (an unnamed
    lane takes the name of the lane around it; a lane with no name around it gives nothing), the pool; an
    element id is never a unit."""
    data = (BPMN / "units.bpmn").read_bytes()
    units = {s["id"]: s.get("unit") for s in parse_bpmn(data, "u.bpmn").doc["steps"]}
    assert units == {"groups": "MOTCUA", "owner": "LANHDAO", "performer": "Văn phòng đăng ký",
                     "lane": "Văn phòng đăng ký", "pool": "UBND huyện Bình Sơn", "person": "UBND huyện Bình Sơn"}

    no_pool = parse_bpmn(data.replace(b' processRef="ubnd"', b""), "u.bpmn")
    units = {s["id"]: s.get("unit") for s in no_pool.doc["steps"]}
    assert units["person"] == "motcua.dung"  # the assignee, last
    assert units["performer"] == "Văn phòng đăng ký"  # a named lane beats the humanPerformer (a person)
    assert "pool" not in units or units["pool"] is None  # ${approver} is an expression, and no lane is named
    assert "u.bpmn:38: step 'pool': assignee '${approver}' is an expression, not a unit; skipped." in no_pool.warnings
    ids = {el.decode() for el in re.findall(rb'id="([^"]+)"', data)}
    assert not ids & {s.get("unit") for s in no_pool.doc["steps"]}


def test_every_first_task_after_a_start_is_an_entry_and_import_warns_like_check(tmp_path: Path) -> None:
    """Two start events, the second forking at once: D, A and B are all entries; only X, which nothing
    leads to, is unreachable, and import-bpmn says so exactly as workflows check does."""
    result = imported("fork-after-start.bpmn")
    assert shape(result)[:4] == [("D", None, 0, ["C"], "start"), ("C", None, 0, [], "final"),
                                 ("A", None, 0, ["C"], "start"), ("B", None, 0, ["C"], "start")]

    (tmp_path / "bpmn" / "p").mkdir(parents=True)
    (tmp_path / "yaml" / "p").mkdir(parents=True)
    path, out = tmp_path / "bpmn" / "p" / "v1.bpmn", tmp_path / "yaml" / "p" / "v1.yaml"
    shutil.copy(BPMN / "fork-after-start.bpmn", path)
    imported_ = invoke("workflows", "import-bpmn", str(path), "--out", str(out), expect=0)
    unreachable = f"warning: {path}:24: step 'X' cannot be reached from any start step ('D', 'A', 'B')."
    assert imported_.stderr.splitlines()[1:] == [unreachable, f"wrote {out}"]
    checked = invoke("workflows", "check", str(tmp_path / "bpmn"), expect=0)
    assert checked.stderr.splitlines() == imported_.stderr.splitlines()[:2]
    assert invoke("workflows", "check", str(tmp_path / "yaml"), expect=0).stderr == (  # the YAML says the same
        f"warning: {out}:24:7: step 'X' cannot be reached from any start step ('D', 'A', 'B').\n")


def test_the_executable_process_else_the_only_one_with_tasks_else_every_pool_named(tmp_path: Path) -> None:
    data = (BPMN / "collaboration.bpmn").read_bytes()
    assert parse_bpmn(data, "c.bpmn").doc["procedure"] == "ubnd"  # the only one isExecutable="true"

    drawn = data.replace(b'isExecutable="true"', b'isExecutable="false"')
    only = drawn.replace(b'<bpmn:task id="nop" name="N\xe1\xbb\x99p h\xe1\xbb\x93 s\xc6\xa1"/>', b"")
    only = only.replace(b'targetRef="nop"', b'targetRef="e1"').replace(b'sourceRef="nop" targetRef="e1"', b"")
    assert parse_bpmn(only, "c.bpmn").doc["procedure"] == "ubnd"  # the applicant's pool holds no task

    with pytest.raises(BadInput) as caught:
        parse_bpmn(drawn, "c.bpmn")
    assert caught.value.problems == [
        "c.bpmn:15: 2 processes, none marked isExecutable=\"true\" and 2 hold tasks: 'Công dân' (congdan), "
        "'UBND xã' (ubnd). Hint: pick one with --process ID (in a catalog folder: process: ID in the sidecar "
        "v<N>.bpmn.yaml)."
    ]
    (tmp_path / "w" / "p").mkdir(parents=True)
    (tmp_path / "w" / "p" / "v1.bpmn").write_bytes(drawn)
    (tmp_path / "w" / "p" / "v1.bpmn.yaml").write_text("process: ubnd\n", encoding="utf-8")
    assert load_catalog(tmp_path / "w").versions[0].procedure == "ubnd"


def test_a_step_that_may_end_the_process_on_one_branch_is_not_the_final_step() -> None:
    """S02 (appraisal) may end with a rejection; the result step is S04."""
    result = imported("rejection.bpmn")
    assert shape(result) == [("S01", "MOTCUA", 0.5, ["S02"]), ("S02", "VPDK", 5, ["S03"], "may_end"),
                             ("S03", "LANHDAO", 1, ["S04"]), ("S04", "MOTCUA", 0.5, [], "final")]
    text = to_yaml(result.doc)
    assert "  next: [S03]\n  may_end: true\n" in text
    version = catalog_from_docs([(yaml.safe_load(text), "x")]).versions[0]
    assert [(s.id, s.final, s.may_end) for s in version.steps] == [
        ("S01", False, False), ("S02", False, True), ("S03", False, False), ("S04", True, False)]


def test_well_formed_xml_parses_whatever_its_namespace_uris_say() -> None:
    """A namespace URI holding a space and an undeclared prefix break Namespaces in XML, not XML."""
    result = imported("namespaces.bpmn")
    assert shape(result) == [("A", "MOTCUA", 1, [], "final")]


def test_a_process_with_no_task_is_refused_with_its_line_and_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "empty.bpmn"  # a timer between a start and an end event: nothing a dossier waits on
    path.write_text('<?xml version="1.0"?>\n<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">\n'
                    '  <process id="p">\n    <startEvent id="s"/><sequenceFlow id="f1" sourceRef="s" targetRef="t"/>\n'
                    '    <intermediateCatchEvent id="t"><timerEventDefinition/></intermediateCatchEvent>\n'
                    '    <sequenceFlow id="f2" sourceRef="t" targetRef="e"/><endEvent id="e"/>\n  </process>\n'
                    '</definitions>\n', encoding="utf-8")
    out = tmp_path / "v1.yaml"
    result = invoke("workflows", "import-bpmn", str(path), "--out", str(out), expect=2)
    assert result.stderr == (f"error: {path}:3: process 'p' has no task: a catalog version needs at least one "
                             "step. Hint: export the process that holds the procedure's tasks.\n")
    assert not out.exists() and not result.stdout


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
    pools = "'Đăng ký hộ kinh doanh' (hokinhdoanh), 'Thay đổi hộ kinh doanh' (hokinhdoanh_thaydoi)"
    hint = "Hint: pick one with --process ID (in a catalog folder: process: ID in the sidecar v<N>.bpmn.yaml)."
    assert problems("two-processes.bpmn") == [
        f'two-processes.bpmn:10: 2 processes, none marked isExecutable="true" and 2 hold tasks: {pools}. {hint}'
    ]
    assert problems("two-processes.bpmn", process_id="nope") == [
        f"two-processes.bpmn:3: no process 'nope'; the processes here: {pools}. {hint}"
    ]


def test_flow_to_a_missing_element_is_refused() -> None:
    assert problems("flow-to-missing.bpmn") == [
        "flow-to-missing.bpmn:7: sequence flow 'f2' target 'B_deleted': no such element in process 'p'. "
        "Hint: reconnect the flow in the modeller."
    ]


def test_flow_with_no_target_is_refused_saying_so() -> None:
    data = (BPMN / "flow-to-missing.bpmn").read_bytes().replace(b'targetRef="B_deleted"', b"")
    with pytest.raises(BadInput) as caught:
        parse_bpmn(data, "p.bpmn")
    assert caught.value.problems == [
        "p.bpmn:7: sequence flow 'f2' has no targetRef. Hint: reconnect the flow in the modeller."
    ]


def test_elements_without_an_id_are_refused_with_their_line_and_a_hint() -> None:
    data = (BPMN / "dangling-task.bpmn").read_bytes()
    with pytest.raises(BadInput) as caught:
        parse_bpmn(data.replace(b'<process id="p" name="P">', b'<process name="P">'), "p.bpmn")
    assert caught.value.problems == [
        "p.bpmn:3: the <process> element has no id. Hint: give the process an id in the modeller (it is the "
        "procedure's key)."
    ]
    with pytest.raises(BadInput) as caught:
        parse_bpmn(data.replace(b'<userTask id="B"', b'<userTask'), "p.bpmn")
    assert caught.value.problems == [
        "p.bpmn:9: sequence flow 'f3' target 'B': no such element in process 'p'. Hint: reconnect the flow in the "
        "modeller.",
        "p.bpmn:11: userTask with no id. Hint: give every element an id in the modeller (flows refer to them by id).",
    ]


def test_bad_sidecar_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "v1.bpmn.yaml"
    path.write_text("steps:\n  S01: {days: -1, owner: X}\n", encoding="utf-8")

    with pytest.raises(BadInput) as caught:
        load_sidecar(str(path))
    hint = ("Hint: a sidecar holds procedure, name, field, version, valid_from, process and steps: {TASK_ID: {days, "
            "unit, name}}.")
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
    shutil.copy(BPMN / "flow-to-missing.bpmn", "workflows/a/v1.bpmn")
    shutil.copy(BPMN / "land-v1.bpmn", "workflows/a/v2.bpmn")
    Path("workflows/a/v2.bpmn.yaml").write_text("version: 3\n", encoding="utf-8")

    with pytest.raises(BadInput) as caught:
        load_catalog("workflows")
    assert caught.value.problems == [
        "workflows/a/v1.bpmn:7: sequence flow 'f2' target 'B_deleted': no such element in process 'p'. "
        "Hint: reconnect the flow in the modeller.",
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
        f"engine Q:1: 'procedure' is required. Keys here: name. {FORMAT_HINT}",
        f"engine Q:1: 'version' is required. Keys here: name. {FORMAT_HINT}",
        f"engine Q:1: 'steps' is required. Keys here: name. {FORMAT_HINT}",
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
    assert result.stderr == (f"error: {BPMN / 'two-processes.bpmn'}:10: 2 processes, none marked "
                             "isExecutable=\"true\" and 2 hold tasks: 'Đăng ký hộ kinh doanh' (hokinhdoanh), 'Thay "
                             "đổi hộ kinh doanh' (hokinhdoanh_thaydoi). Hint: pick one with --process ID (in a catalog "
                             "folder: process: ID in the sidecar v<N>.bpmn.yaml).\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.yaml"]


def test_import_bpmn_refuses_a_process_without_a_reachable_end(tmp_path: Path) -> None:
    path = tmp_path / "loop.bpmn"
    path.write_text((BPMN / "dangling-task.bpmn").read_text(encoding="utf-8")
                    .replace('<sequenceFlow id="f4" sourceRef="gw" targetRef="end"/>', "")
                    .replace('<userTask id="B" name="Thẩm định"/>',
                             '<userTask id="B" name="Thẩm định"/><sequenceFlow id="f5" sourceRef="B" targetRef="A"/>')
                    .replace('<endEvent id="end"/>', ""), encoding="utf-8")

    result = invoke("workflows", "import-bpmn", str(path), expect=2)
    assert result.stderr == (f"error: {path}:3: no path of process 'p' reaches an end: every task leads on to "
                             "another for ever. Hint: connect the task that ends the procedure to an end event in "
                             "the modeller.\n")
    assert not result.stdout


def test_workflows_check_counts_and_errors(tmp_path: Path) -> None:
    shutil.copytree(CASES / "catalog" / "sample", tmp_path / "ok")
    shutil.copy(BPMN / "land-v2.bpmn", tmp_path / "ok" / "land" / "v3.bpmn")
    result = invoke("workflows", "check", str(tmp_path / "ok"), expect=0)
    assert result.stdout == f"{tmp_path / 'ok'}: valid: 3 procedures, 4 versions, 20 steps, 3 warnings\n"
    v3 = tmp_path / "ok" / "land" / "v3.bpmn"
    assert result.stderr.splitlines()[2] == (
        f"warning: {v3}:6: name 'Đăng ký biến động quyền sử dụng đất' is also used by procedure "
        "'1.004227.000.00.00.H48'; register rows with this name cannot be matched by name.")

    (tmp_path / "bad" / "x").mkdir(parents=True)
    shutil.copy(BPMN / "malformed.bpmn", tmp_path / "bad" / "x" / "v1.bpmn")
    result = invoke("workflows", "check", str(tmp_path / "bad"), expect=2)
    assert result.stderr == (f"error: {tmp_path / 'bad' / 'x' / 'v1.bpmn'}:6:13: malformed XML: Opening and "
                             "ending tag mismatch: userTask line 5 and process. Hint: open the file in a BPMN "
                             "modeller and export it again.\n")


# ---------------------------------------------------------------- what the engine profile makes of it


def test_a_dossier_waiting_on_a_step_that_may_end_the_process_is_in_progress_not_finished(tmp_path: Path) -> None:
    """Every deployment of the main land procedure's v3 gets a rejection branch: its gateway after S03 may
    also go to the end event. S03 may end the process but is not its result: the dossiers waiting there
    are in progress, none of them finished."""
    from lxml import etree

    from reconcile.demo.district import LAND_MAIN

    from reconcile.demo.simulate import simulate
    from reconcile.demo.activiti import process_key
    from reconcile.sources.activiti import load_activiti_profile

    district = simulate(tmp_path / "d", scale=0.02, register_format="csv", system_schema="activiti")
    con = sqlite3.connect(district.system)
    changed = 0
    for rowid, data in con.execute("SELECT rowid, BYTES_ FROM ACT_GE_BYTEARRAY").fetchall():
        root = etree.fromstring(data)
        ns = {"b": root.nsmap[None]}
        if not root.xpath("//b:userTask[@id='S03A']", namespaces=ns):
            continue  # not v3
        gateway = root.xpath("//b:sequenceFlow[@sourceRef='S03']/@targetRef", namespaces=ns)[0]
        end = root.xpath("//b:endEvent/@id", namespaces=ns)[0]
        process = root.xpath("//b:process", namespaces=ns)[0]
        etree.SubElement(process, f"{{{ns['b']}}}sequenceFlow", id="reject", sourceRef=gateway, targetRef=end)
        con.execute("UPDATE ACT_GE_BYTEARRAY SET BYTES_ = ? WHERE rowid = ?", (etree.tostring(root), rowid))
        changed += 1
    con.commit()
    con.close()
    assert changed > 0

    system, catalog = load_activiti_profile(district.system_source, str(district.sidecars))
    key = process_key(LAND_MAIN)
    v3 = [v for v in catalog.versions if v.procedure == key and v.step("S03A") is not None]
    on_s03 = [r for r in system.dossiers.to_pylist() if r["workflow_key"] == key and r["current_step"] == "S03"
              and str(r["workflow_version"]) in {str(v.version) for v in v3}]
    assert on_s03 and {r["status"] for r in on_s03} <= {"in_progress", "supplement_requested"}
    assert all((v.step("S03").may_end, v.step("S03").final) == (True, False) for v in v3)  # type: ignore[union-attr]
