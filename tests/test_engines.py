"""The activiti profile on engine databases as Activiti 6, Activiti 7, Flowable 6 and Camunda 7 keep
them, on PostgreSQL and MariaDB. The tables are the engines' own (reconcile.demo.activiti.ENGINES,
written from their documented table and column names and types), the rows laid out as each engine lays
them out (EngineRows: execution trees with scope and concurrent executions, history, identity links,
deployments and byte arrays). One small district per engine and database holds one dossier per
situation: wait states (receive task, timer, call activity, embedded subprocess, two parallel tasks),
a restarted instance, two tenants with the same process key, a resource holding two processes, a
version with an implicit end, an unreadable version, a definition id missing from ACT_RE_PROCDEF, and
staff checks with and without identity tables. Every planted finding is found and none is invented."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers import invoke

from reconcile.demo.activiti import ENGINES, EngineKind, EngineRows, Task, Wait, create_indexes, create_tables

SON, HAI = "binhson", "binhhai"  # two districts (tenants) served by one engine
KEY, SUB = "TTHC_S", "TTHC_SUB"
NAME = "Đăng ký thế chấp quyền sử dụng đất"
AS_OF = "2021-06-30"
ACTIVITI = 'xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:activiti="http://activiti.org/bpmn"'


def flows(*pairs: str) -> str:
    return "".join(f'<sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}"/>'
                   for a, b in (p.split(">") for p in pairs))


# One resource, two processes (the dossier's, and the tax office's it calls), as Activiti Modeler exports.
V1 = f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions {ACTIVITI} targetNamespace="http://www.activiti.org/processdef">
  <process id="{KEY}" name="{NAME}" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="S01" name="Tiếp nhận hồ sơ" activiti:candidateGroups="MOTCUA"/>
    <boundaryEvent id="S01_remind" attachedToRef="S01" cancelActivity="false">
      <timerEventDefinition><timeDuration>P2D</timeDuration></timerEventDefinition>
    </boundaryEvent>
    <receiveTask id="S02" name="Chờ thông tin địa chính"/>
    <intermediateCatchEvent id="T1" name="Chờ niêm yết">
      <timerEventDefinition><timeDuration>P3D</timeDuration></timerEventDefinition>
    </intermediateCatchEvent>
    <callActivity id="S03" name="Liên thông thuế" calledElement="{SUB}"/>
    <subProcess id="SP" name="Thẩm định">
      <startEvent id="sp_start"/>
      <userTask id="I1" name="Thẩm tra hồ sơ" activiti:candidateGroups="VPDK"/>
      <endEvent id="sp_end"/>
      {flows("sp_start>I1", "I1>sp_end")}
    </subProcess>
    <parallelGateway id="fork"/>
    <userTask id="S05A" name="Cập nhật cơ sở dữ liệu" activiti:candidateGroups="VPDK"/>
    <userTask id="S05B" name="Xác nhận nghĩa vụ thuế" activiti:candidateGroups="THUE"/>
    <parallelGateway id="join"/>
    <userTask id="S06" name="Ký duyệt" activiti:candidateGroups="LANHDAO"/>
    <endEvent id="end"/>
    {flows("start>S01", "S01>S02", "S02>T1", "T1>S03", "S03>SP", "SP>fork", "fork>S05A", "fork>S05B", "S05A>join",
           "S05B>join", "join>S06", "S06>end")}
  </process>
  <process id="{SUB}" name="Liên thông thuế" isExecutable="true">
    <startEvent id="sub_start"/>
    <userTask id="SUB1" name="Xác định nghĩa vụ tài chính" activiti:candidateGroups="THUE"/>
    <endEvent id="sub_end"/>
    {flows("sub_start>SUB1", "SUB1>sub_end")}
  </process>
</definitions>
""".encode()
# Version 2: the signing step ends the process by having no outgoing flow (an implicit end, valid BPMN).
V2 = f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions {ACTIVITI} targetNamespace="http://www.activiti.org/processdef">
  <process id="{KEY}" name="{NAME}" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="S01" name="Tiếp nhận hồ sơ" activiti:candidateGroups="MOTCUA"/>
    <userTask id="S06" name="Ký duyệt" activiti:candidateGroups="MOTCUA"/>
    {flows("start>S01", "S01>S06")}
  </process>
</definitions>
""".encode()
V3 = b"\x1f\x8b\x08\x00 not XML: a resource the deployment stored compressed"

STAFF = [("mc.lan", "Nguyễn Thị Lan", "MOTCUA", 1), ("vp.binh", "Trần Văn Bình", "VPDK", 1),
         ("thue.an", "Lê Văn An", "THUE", 1), ("thue.cu", "Phạm Văn Cư", "THUE", 0),
         ("lanh.dao", "Võ Văn Đạo", "LANHDAO", 0), ("bh.mai", "Đỗ Thị Mai", "MOTCUA_BH", 1)]


def code(day: str, n: int = 1, agency: str = "000.00.53.H48") -> str:
    return f"{agency}-21{day.replace('-', '')}-{n:04d}"


D = {  # dossier -> its code (received day in 2021)
    "task": code("06-28"), "receive": code("05-24"), "timer": code("06-21"), "call": code("06-18"),
    "subprocess": code("06-17"), "parallel": code("06-16"), "restarted": code("06-14"), "stalled": code("05-05"),
    "no_definition": code("06-21", 2), "implicit_end": code("06-21", 3), "unreadable": code("06-21", 4),
    "no_staff_unit": code("06-10"), "returned": code("06-01"),
}
OTHER_DISTRICT = code("06-22", 1, "000.00.52.H48")
PLANTED = {("assignee_inactive", D["parallel"]), ("stalled", D["stalled"]), ("unknown_version", D["no_definition"]),
           ("unknown_version", D["unreadable"]), ("unit_without_staff", D["no_staff_unit"])}
STAFF_FINDINGS = {("assignee_inactive", D["parallel"]), ("unit_without_staff", D["no_staff_unit"])}


@dataclass
class District:
    url: str
    kind: EngineKind
    register: Path
    staff: Path
    missing_procdef: str
    unreadable_why: str


def build(url: str, kind: EngineKind, folder: Path, schema_url: str | None = None) -> District:
    """The district's engine database at `url` (tables created through `schema_url` when given), and
    its paper register."""
    out = EngineRows(kind, sqlite=False)
    out.staff(STAFF)
    resource = "dang-ky-the-chap.bpmn20.xml"
    for dep, tenant in (("101", SON), ("401", HAI)):
        out.deploy(dep, resource, "2021-01-04 08:00:00", {resource: V1}, tenant)
        out.definition(f"{KEY}:1:{dep}", KEY, 1, dep, resource, NAME, tenant)
        out.definition(f"{SUB}:1:{dep}", SUB, 1, dep, resource, "Liên thông thuế", tenant)
    for version, data in ((2, V2), (3, V3)):
        dep = f"{version}01"
        out.deploy(dep, resource, f"2021-0{version}-01 08:00:00", {resource: data}, SON)
        out.definition(f"{KEY}:{version}:{dep}", KEY, version, dep, resource, NAME, SON)
    v1 = f"{KEY}:1:101"
    register: list[dict[str, str]] = []
    tasks = iter(range(5000, 6000))

    def dossier(name: str, started: str, *, procdef: str = v1, tenant: str = SON, pid: str | None = None,
                on_register: bool = True) -> str:
        pid = pid or out.id()
        c = D.get(name, name)
        out.start(pid, c, procdef, KEY, started, starter="mc.lan", tenant=tenant)
        applicant = f"Người nộp {name}"
        due = f"2021-07-{int(c.split('-')[1][4:]) % 20 + 5:02d} 17:00:00"  # the same for a restarted instance
        out.variable(pid, "applicant", "string", applicant)
        out.variable(pid, "due_at", "date", due)
        if on_register:
            register.append({"code": c, "applicant": applicant, "received": started[:10], "due": due[:10],
                             "returned": ""})
        return pid

    def done(pid: str, *steps: tuple[str, str, str, str]) -> None:
        """Activities the instance has left: (activity, kind, start, end)."""
        for act, kind, start, end in steps:
            if kind == "userTask":
                out.task_history(pid, pid, str(next(tasks)), act, None, "mc.lan", start, end)
            else:
                out.activity(pid, pid, act, kind, start, end)

    def waiting(pid: str, waits: list[Wait], *, procdef: str = v1, tenant: str = SON) -> list[str]:
        """The instance waits at `waits`; their open history rows go with the executions."""
        execs = out.wait(pid, procdef, waits, code=out.instances[pid]["BUSINESS_KEY_"], tenant=tenant)
        for w, exec_id in zip(waits, execs):
            if w.scope is not None:
                out.activity(pid, exec_id, w.scope, "subProcess", w.entered)
            if w.task is not None:
                out.task_history(pid, exec_id, w.task.id, str(w.act), w.task.name, w.task.assignee, w.entered, None)
            else:
                out.activity(pid, exec_id, str(w.act), w.kind, w.entered)
        return execs

    def task(act: str, at: str, assignee: str | None, group: str) -> Wait:
        return Wait(act, "userTask", at, Task(str(next(tasks)), None, assignee, group),
                    boundaries=("S01_remind",) if act == "S01" else ())

    s01 = ("S01", "userTask")
    # A user task with a reminder timer on it.
    pid = dossier("task", "2021-06-28 08:00:00")
    waiting(pid, [task("S01", "2021-06-28 08:00:00", "mc.lan", "MOTCUA")])
    # A receive task (no task row): waiting for the cadastral office's message since it left the first
    # step, a month after that step started (the last task started; the activities say it moved since).
    pid = dossier("receive", "2021-05-24 08:00:00")
    done(pid, (*s01, "2021-05-24 08:00:00", "2021-06-25 09:00:00"))
    waiting(pid, [Wait("S02", "receiveTask", "2021-06-25 09:00:00")])
    # An intermediate timer after the receive task: the dossier belongs to S02 meanwhile.
    pid = dossier("timer", "2021-06-21 08:00:00")
    done(pid, (*s01, "2021-06-21 08:00:00", "2021-06-22 10:00:00"),
         ("S02", "receiveTask", "2021-06-22 10:00:00", "2021-06-24 10:00:00"))
    waiting(pid, [Wait("T1", "timerCatch", "2021-06-24 10:00:00", due="2021-06-27 10:00:00")])
    # A call activity: the tax office's instance (no business key) waits at its own user task.
    pid = dossier("call", "2021-06-18 08:00:00")
    done(pid, (*s01, "2021-06-18 08:00:00", "2021-06-21 09:00:00"),
         ("S02", "receiveTask", "2021-06-21 09:00:00", "2021-06-21 15:00:00"),
         ("T1", "timerCatch", "2021-06-21 15:00:00", "2021-06-22 08:00:00"))
    (caller,) = waiting(pid, [Wait("S03", "callActivity", "2021-06-22 08:00:00")])
    sub = out.id()
    out.start(sub, None, f"{SUB}:1:101", SUB, "2021-06-22 08:00:00", tenant=SON, super_exec=caller, super_pid=pid,
              root=pid, start_act="sub_start")
    waiting(sub, [Wait("SUB1", "userTask", "2021-06-23 09:00:00", Task(str(next(tasks)), None, "thue.an", "THUE"))],
            procdef=f"{SUB}:1:101")
    # A task inside the embedded subprocess.
    pid = dossier("subprocess", "2021-06-17 08:00:00")
    done(pid, (*s01, "2021-06-17 08:00:00", "2021-06-18 08:00:00"),
         ("S02", "receiveTask", "2021-06-18 08:00:00", "2021-06-18 09:00:00"),
         ("T1", "timerCatch", "2021-06-18 09:00:00", "2021-06-21 09:00:00"),
         ("S03", "callActivity", "2021-06-21 09:00:00", "2021-06-23 10:00:00"))
    waiting(pid, [Wait("I1", "userTask", "2021-06-23 10:00:00", Task(str(next(tasks)), None, "vp.binh", "VPDK"),
                       scope="SP")])
    # Two parallel tasks; the later one is assigned to a deactivated account.
    pid = dossier("parallel", "2021-06-16 08:00:00")
    done(pid, (*s01, "2021-06-16 08:00:00", "2021-06-16 15:00:00"),
         ("S02", "receiveTask", "2021-06-16 15:00:00", "2021-06-17 08:00:00"),
         ("T1", "timerCatch", "2021-06-17 08:00:00", "2021-06-20 08:00:00"),
         ("S03", "callActivity", "2021-06-21 08:00:00", "2021-06-22 08:00:00"),
         ("SP", "subProcess", "2021-06-22 08:00:00", "2021-06-24 11:00:00"),
         ("fork", "parallelGateway", "2021-06-24 11:00:00", "2021-06-24 11:00:00"))
    waiting(pid, [task("S05A", "2021-06-24 11:00:00", "vp.binh", "VPDK"),
                  task("S05B", "2021-06-24 11:01:00", "thue.cu", "THUE")])
    # Restarted by the vendor: the old instance deleted, a new one with the same business key.
    old = dossier("restarted", "2021-06-14 08:00:00")
    out.task_history(old, old, str(next(tasks)), "S01", None, "mc.lan", "2021-06-14 08:00:00", "2021-06-21 08:00:00",
                     "Khởi động lại quy trình")
    out.end(old, "2021-06-21 08:00:00", "Khởi động lại quy trình")
    pid = dossier("restarted", "2021-06-21 08:30:00", on_register=False)
    waiting(pid, [task("S01", "2021-06-21 08:30:00", "mc.lan", "MOTCUA")])
    # Waiting at the receive task since May: stalled.
    pid = dossier("stalled", "2021-05-05 08:00:00")
    done(pid, (*s01, "2021-05-05 08:00:00", "2021-05-10 09:00:00"))
    waiting(pid, [Wait("S02", "receiveTask", "2021-05-10 09:00:00")])
    # A definition id ACT_RE_PROCDEF does not hold (its deployment deleted); it reads like version 1.
    missing = f"{KEY}:1:999"
    pid = dossier("no_definition", "2021-06-21 09:00:00", procdef=missing)
    waiting(pid, [task("S01", "2021-06-21 09:00:00", "mc.lan", "MOTCUA")], procdef=missing)
    # On the version with an implicit end, at its last task.
    pid = dossier("implicit_end", "2021-06-21 10:00:00", procdef=f"{KEY}:2:201")
    done(pid, (*s01, "2021-06-21 10:00:00", "2021-06-25 10:00:00"))
    waiting(pid, [task("S06", "2021-06-25 10:00:00", "mc.lan", "MOTCUA")], procdef=f"{KEY}:2:201")
    # On the version whose resource cannot be read.
    pid = dossier("unreadable", "2021-06-21 11:00:00", procdef=f"{KEY}:3:301")
    waiting(pid, [task("S01", "2021-06-21 11:00:00", "mc.lan", "MOTCUA")], procdef=f"{KEY}:3:301")
    # At the signing step, whose unit's only account was deactivated.
    pid = dossier("no_staff_unit", "2021-06-10 08:00:00")
    done(pid, (*s01, "2021-06-10 08:00:00", "2021-06-10 09:00:00"),
         ("S05A", "userTask", "2021-06-25 08:00:00", "2021-06-28 08:00:00"))
    waiting(pid, [task("S06", "2021-06-28 08:00:00", None, "LANHDAO")])
    # Ran to its end: the result was handed over.
    pid = dossier("returned", "2021-06-01 08:00:00")
    done(pid, (*s01, "2021-06-01 08:00:00", "2021-06-02 08:00:00"),
         ("S06", "userTask", "2021-06-02 08:00:00", "2021-06-10 17:00:00"))
    out.end(pid, "2021-06-10 17:00:00")
    register[-1]["returned"] = "2021-06-10"
    # The other district's dossier, on its own deployment of the same key.
    pid = dossier(OTHER_DISTRICT, "2021-06-22 08:00:00", procdef=f"{KEY}:1:401", tenant=HAI, on_register=False)
    waiting(pid, [task("S01", "2021-06-22 08:00:00", "bh.mai", "MOTCUA_BH")], procdef=f"{KEY}:1:401", tenant=HAI)

    engine = sa.create_engine(schema_url or url)
    with engine.begin() as conn:
        create_tables(conn, kind)
        out.flush_into(conn)
        create_indexes(conn, kind)
    engine.dispose()
    return District(url, kind, write_register(folder, register), write_staff(folder), missing,
                    f"its BPMN cannot be read: {url_shown(url)} ACT_GE_BYTEARRAY deployment 301 resource "
                    f"{resource}:1:1: malformed XML: Start tag expected, '<' not found. Hint: open the file in a BPMN "
                    "modeller and export it again.")


def url_shown(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def write_register(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "so-theo-doi-2021.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["STT", "Mã hồ sơ", "Tên TTHC", "Tên cá nhân, tổ chức", "Nhận hồ sơ", "Hẹn trả kết quả",
                      "Trả kết quả", "Ghi chú"])
        for i, r in enumerate(rows, 1):
            out.writerow([i, r["code"], NAME, r["applicant"], dmy(r["received"]), dmy(r["due"]), dmy(r["returned"]),
                          ""])
    return path


def write_staff(folder: Path) -> Path:
    path = folder / "accounts.csv"
    path.write_text("account,name,unit,active\n" + "".join(f"{a},{n},{u},{act}\n" for a, n, u, act in STAFF),
                    encoding="utf-8")
    return path


def dmy(iso: str) -> str:
    return f"{iso[8:10]}/{iso[5:7]}/{iso[:4]}" if iso else ""


def audit(d: District, tmp_path: Path, *extra: str, expect: int = 1) -> tuple[set[tuple[str, str]], dict, list[str]]:
    store = tmp_path / f"s{len(list(tmp_path.glob('s*.duckdb')))}.duckdb"
    result = invoke("audit", "--register", str(d.register), "--system", d.url, "--profile", "activiti",
                    "--as-of", AS_OF, "--store", str(store), "--format", "json", *extra, expect=expect)
    report = json.loads(result.stdout)
    pairs = {(f["kind"], f["dossier_code"]) for f in report["findings"]}
    return pairs, report, result.stderr.splitlines()


@pytest.fixture(params=[(e, s) for e in ENGINES for s in ("postgresql", "mariadb")], ids=lambda p: f"{p[0]}-{p[1]}")
def district(request: pytest.FixtureRequest, tmp_path: Path) -> District:
    engine, server = request.param
    url = request.getfixturevalue("pg_url" if server == "postgresql" else "mariadb_url")
    return build(url, ENGINES[engine], tmp_path)


# ------------------------------------------------------------------------------ every engine x database


def test_every_planted_finding_is_found_and_none_invented(district: District, tmp_path: Path) -> None:
    """One district (--tenant) on each engine and database: the wait states, the restarted instance, the
    two-process resource, the unreadable version and the missing definition read as they are."""
    staff = () if district.kind.identity else ("--staff", str(district.staff))
    pairs, report, stderr = audit(district, tmp_path, "--tenant", SON, *staff)
    assert pairs == PLANTED
    details = {(f["kind"], f["dossier_code"]): f["details"] for f in report["findings"]}
    assert details["unknown_version", D["no_definition"]]["reason"] == \
        f"process definition {district.missing_procdef} is not in ACT_RE_PROCDEF"
    assert details["unknown_version", D["no_definition"]]["workflow_key"] is None
    assert details["unknown_version", D["unreadable"]]["reason"] == district.unreadable_why
    assert report["run"]["counts"]["system_dossiers"] == len(D)  # the restarted dossier once; no called instance
    assert not [line for line in stderr if line.startswith("error")]
    shown = url_shown(district.url)
    assert (f"warning: {shown}: ACT_RE_PROCDEF {KEY}:3:301 ({KEY} version 3): its BPMN cannot be read, so the "
            "version is left out of the catalog and its open dossiers are reported as unknown_version. Why: "
            + district.unreadable_why.removeprefix("its BPMN cannot be read: ")) in stderr

    state, moves = read(district, SON, *staff)
    assert state[D["receive"]] == ("S02", None, "in_progress")
    assert state[D["timer"]] == ("S02", None, "in_progress")  # the timer after the receive task
    assert state[D["call"]] == ("S03", "thue.an", "in_progress")  # the called instance's task
    assert state[D["subprocess"]] == ("SP", "vp.binh", "in_progress")
    assert state[D["parallel"]] == ("S05B", "thue.cu", "in_progress")  # the place that needs attention
    assert state[D["restarted"]] == ("S01", "mc.lan", "received")
    assert state[D["task"]] == ("S01", "mc.lan", "received")
    assert state[D["no_staff_unit"]] == ("S06", None, "finished")
    # The restarted dossier's history holds its first instance; the called instance's task is a move.
    assert moves[D["restarted"]] == [(None, "S01", None), ("S01", None, "Khởi động lại quy trình"), (None, "S01", None)]
    assert moves[D["call"]] == [(None, "S01", None), ("S01", "S02", None), ("S02", "T1", None), ("T1", "S03", None),
                                ("S03", "SUB1", None)]


def read(d: District, tenant: str, *extra: str) -> tuple[dict[str, tuple[str | None, ...]],
                                                          dict[str, list[tuple[str | None, ...]]]]:
    """Each dossier's (current step, assignee, status) and its moves (from, to, action), as the profile reads them."""
    from reconcile.audit.inputs import load_system

    system, _ = load_system(d.url, None, "activiti", None, tenant, None, extra[1] if extra else None)
    state = {r["dossier_code"]: (r["current_step"], r["assignee"], r["status"]) for r in system.dossiers.to_pylist()}
    moves: dict[str, list[tuple[str | None, ...]]] = {}
    for e in sorted(system.events.to_pylist(), key=lambda e: (e["dossier_code"], int(e["seq"]))):
        moves.setdefault(e["dossier_code"], []).append((e["from_step"], e["to_step"], e["action"]))
    return state, moves


def test_two_tenants_with_the_same_key_load_as_one_procedure_each(district: District, tmp_path: Path) -> None:
    staff = () if district.kind.identity else ("--staff", str(district.staff))
    pairs, report, stderr = audit(district, tmp_path, *staff)
    assert pairs == PLANTED | {("missing_in_register", OTHER_DISTRICT)}
    assert (f"warning: {url_shown(district.url)}: the engine serves 2 tenants ({HAI}, {SON}); all are read, and a "
            "process key deployed under several tenants is one procedure per tenant, KEY@TENANT. Hint: --tenant ID "
            "audits one district.") in stderr
    keys = {f["dossier_code"]: f["evidence"]["system"]["workflow_key"] for f in report["findings"]}
    assert keys[OTHER_DISTRICT] == f"{KEY}@{HAI}" and keys[D["parallel"]] == f"{KEY}@{SON}"


def test_without_a_staff_directory_the_staff_checks_are_skipped_once_said(district: District,
                                                                          tmp_path: Path) -> None:
    """Activiti 7 has no identity tables; LDAP and Keycloak set-ups leave them empty. Either way the
    staff checks are skipped (said once), or the staff comes from --staff."""
    if district.kind.identity:
        engine = sa.create_engine(district.url)
        with engine.begin() as conn:
            for table in ("ACT_ID_MEMBERSHIP", "ACT_ID_USER", "ACT_ID_GROUP"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
        engine.dispose()
    pairs, report, stderr = audit(district, tmp_path, "--tenant", SON)
    assert pairs == PLANTED - STAFF_FINDINGS
    place = "ACT_ID_USER" if district.kind.identity else "(no ACT_ID_USER table)"
    said = [line for line in stderr if "no staff accounts" in line]
    assert said == [f"warning: {url_shown(district.url)} {place}: no staff accounts, so assignee_inactive and "
                    "unit_without_staff are not checked. Hint: --staff FILE gives the staff directory (an accounts.csv "
                    "file: account, unit, active; or a YAML file with a mapping's account: block, read from the "
                    "--system database)."]
    census = invoke("census", "--store", str(tmp_path / "s0.duckdb"), "--format", "json", expect=1)
    rows = json.loads(census.stdout)["rows"]
    assert sum(r["orphaned"] for r in rows) == len({p for p in pairs if p[0] == "unknown_version"})  # not every one
    pairs, _, stderr = audit(district, tmp_path, "--tenant", SON, "--staff", str(district.staff))
    assert pairs == PLANTED
    assert not [line for line in stderr if "no staff accounts" in line]


# ------------------------------------------------------------------------------ one engine will do


def test_a_version_with_an_implicit_end_is_read(pg_url: str, tmp_path: Path) -> None:
    d = build(pg_url, ENGINES["activiti6"], tmp_path)
    pairs, _, _ = audit(d, tmp_path, "--tenant", SON)
    assert {p for p in pairs if p[1] == D["implicit_end"]} == set()


@pytest.mark.pg
def test_engine_tables_in_another_postgresql_schema(pg_url: str, tmp_path: Path) -> None:
    """Tables in a schema the connection does not search: named by --schema; without it the error
    lists the schemas and says which holds the tables."""
    other = pg_url.split("search_path%3D")[-1].split("&")[0] + "_flowable"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{other}"')
    try:
        in_other = sa.engine.make_url(pg_url).update_query_dict({"options": f"-csearch_path={other}"})
        d = build(pg_url, ENGINES["flowable6"], tmp_path, in_other.render_as_string(hide_password=False))
        result = invoke("audit", "--register", str(d.register), "--system", pg_url, "--profile", "activiti",
                        "--as-of", AS_OF, "--store", str(tmp_path / "x.duckdb"), expect=2)
        line = result.stderr.strip()
        assert line.startswith(f"error: {url_shown(pg_url)}: table ACT_RE_PROCDEF does not exist; the activiti profile "
                               "needs it. Tables: (none). Schemas here: ")
        # other tests (pytest-xdist workers) may hold engine tables in their own schemas meanwhile
        holding = re.search(r"; ACT_RE_PROCDEF is in ([^()]*) \(--schema [^)]+\)\. Hint: ", line)
        assert holding and other in holding[1].split(", ")
        assert line.endswith("Hint: point --system at the engine's database (the Activiti 5/6/7, Flowable 6 or "
                             "Camunda 7 schema), and --schema at its schema.")
        assert not (tmp_path / "x.duckdb").exists()
        pairs, report, _ = audit(d, tmp_path, "--tenant", SON, "--schema", other)
        assert pairs == PLANTED
        assert report["run"]["inputs"]["system"]["schema"] == other
        result = invoke("audit", "--register", str(d.register), "--system", pg_url, "--profile", "activiti",
                        "--as-of", AS_OF, "--store", str(tmp_path / "y.duckdb"), "--schema", "nowhere", expect=2)
        assert result.stderr.startswith(f"error: {url_shown(pg_url)}: --schema nowhere: no such schema. Schemas: ")
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{other}" CASCADE')
        engine.dispose()


@pytest.mark.pg
def test_staff_from_a_mapping_account_block(pg_url: str, tmp_path: Path) -> None:
    """The vendor application's own staff table beside the engine's (Activiti 7 has none), named by a
    mapping file's account: block."""
    d = build(pg_url, ENGINES["activiti7"], tmp_path)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE dm_canbo (taikhoan VARCHAR(64), phong VARCHAR(64), hoatdong INTEGER)")
        conn.execute(sa.text("INSERT INTO dm_canbo VALUES (:a, :u, :x)"),
                     [{"a": a, "u": u, "x": x} for a, _, u, x in STAFF])
    engine.dispose()
    staff = tmp_path / "staff.yaml"
    staff.write_text("account:\n  table: dm_canbo\n  columns: {account: taikhoan, unit: phong, active: hoatdong}\n"
                     "  active_values: [1]\n", encoding="utf-8")
    pairs, report, _ = audit(d, tmp_path, "--tenant", SON, "--staff", str(staff))
    assert pairs == PLANTED
    assert report["run"]["inputs"]["system"]["staff"] == str(staff)
    staff.write_text("account:\n  table: dm_canbo\n  columns: {account: taikhoan, unit: phong}\n", encoding="utf-8")
    result = invoke("audit", "--register", str(d.register), "--system", pg_url, "--profile", "activiti",
                    "--as-of", AS_OF, "--store", str(tmp_path / "z.duckdb"), "--staff", str(staff), expect=2)
    assert result.stderr == (f"error: {staff}:3:12: account.columns: 'active' is required. Keys here: account, unit. "
                             "Hint: --staff FILE is an accounts.csv-format file (account, unit, active) or a YAML file "
                             "with a mapping's account: block.\n")
    assert not (tmp_path / "z.duckdb").exists()


@pytest.mark.pg
def test_an_unknown_tenant_is_refused_with_the_tenants_there(pg_url: str, tmp_path: Path) -> None:
    d = build(pg_url, ENGINES["camunda7"], tmp_path)
    result = invoke("audit", "--register", str(d.register), "--system", pg_url, "--profile", "activiti",
                    "--as-of", AS_OF, "--store", str(tmp_path / "t.duckdb"), "--tenant", "binhchau", expect=2)
    assert result.stderr == (f"error: {url_shown(pg_url)}: --tenant binhchau: no process definition or instance of "
                             f"that tenant. Tenants here: {HAI}, {SON}.\n")
    assert not (tmp_path / "t.duckdb").exists()
