"""The demo district as a workflow-engine database (`reconcile simulate --system-schema activiti`).

The same dossiers as the vendor-shaped database (`reconcile.simulate` calls `ActivitiSystem.add` with
exactly what it gives the vendor sink), written into the `ACT_*` tables that Activiti 5/6, Flowable 6
and Camunda 7 share, on SQLite or PostgreSQL:
- every catalog version is deployed as BPMN 2.0 XML (`bpmn_xml`: user tasks with
  `activiti:candidateGroups` = the unit, gateways where a step has several successors), its working
  days in a sidecar per procedure and version (`sidecars/<KEY>.v<N>.yaml`, N the first engine version
  it applies to);
- the main land procedure is redeployed `MAIN_DEPLOYMENTS` times over the year, most of them
  identical redeploys, as vendors do; a dossier runs on the last deployment of its catalog version
  made before it was received;
- version 2 of that procedure was edited in place in the vendor system: here its deployed bytes are
  the edited definition (a patched `ACT_GE_BYTEARRAY`), while instances still sit on the removed tasks;
- a dossier on a version the catalog lacks runs on a process definition whose BPMN resource is
  missing from `ACT_GE_BYTEARRAY`; one whose vendor record pins no version (the audit infers it)
  runs on a deployment of the version inferred, as an engine always pins one;
- deactivated staff accounts are users deleted from `ACT_ID_USER` (their tasks keep the assignee);
- open dossiers are running instances (suspended while a supplement is requested); closed ones are
  historic instances, ended normally (result returned) or deleted with a reason (withdrawn, refused,
  stopped); dossier data the engine does not model (applicant, due date...) are process variables.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import sqlalchemy as sa
import yaml

from reconcile.errors import BadInput
from reconcile.simulate import (
    AS_OF, CLOSED, DUE_TIME, LAND_MAIN, LAND_RENEW, REJECTED, RETURNED, STOPPED, SUPPLEMENT, WITHDRAWN, _Days,
    _Dossier, _Procedure, _Step, _SystemSink, _Version,
)
from reconcile.db import connect_engine, mask_url

SQLITE_NAME = "activiti.sqlite"
SIDECARS = "sidecars"
MAIN_DEPLOYMENTS = 300  # deployments of the main land procedure over its three catalog versions
REDEPLOYS = {LAND_RENEW: 4}  # deployments per catalog version of other procedures (default 1)
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ACTIVITI = "http://activiti.org/bpmn"
# Delete reasons the vendor application gives when it ends an instance early (status code -> reason).
DELETE_REASONS = {WITHDRAWN: "Rút hồ sơ", REJECTED: "Từ chối tiếp nhận", STOPPED: "Dừng xử lý, trả lại hồ sơ"}

# The ACT_* tables and columns written (a subset of each engine's own; names as the engines document them).
V, I, T, B, BOOL = "VARCHAR(255)", "INTEGER", "{timestamp}", "{blob}", "BOOLEAN"
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "ACT_GE_PROPERTY": (("NAME_", V), ("VALUE_", V), ("REV_", I)),
    "ACT_RE_DEPLOYMENT": (("ID_", V), ("NAME_", V), ("CATEGORY_", V), ("TENANT_ID_", V), ("DEPLOY_TIME_", T)),
    "ACT_GE_BYTEARRAY": (("ID_", V), ("REV_", I), ("NAME_", V), ("DEPLOYMENT_ID_", V), ("BYTES_", B),
                         ("GENERATED_", BOOL)),
    "ACT_RE_PROCDEF": (("ID_", V), ("REV_", I), ("CATEGORY_", V), ("NAME_", V), ("KEY_", V), ("VERSION_", I),
                       ("DEPLOYMENT_ID_", V), ("RESOURCE_NAME_", V), ("SUSPENSION_STATE_", I),
                       ("TENANT_ID_", V)),
    "ACT_RU_EXECUTION": (("ID_", V), ("REV_", I), ("PROC_INST_ID_", V), ("BUSINESS_KEY_", V), ("PARENT_ID_", V),
                         ("PROC_DEF_ID_", V), ("SUPER_EXEC_", V), ("ACT_ID_", V), ("IS_ACTIVE_", BOOL),
                         ("IS_SCOPE_", BOOL), ("SUSPENSION_STATE_", I), ("TENANT_ID_", V)),
    "ACT_RU_TASK": (("ID_", V), ("REV_", I), ("EXECUTION_ID_", V), ("PROC_INST_ID_", V), ("PROC_DEF_ID_", V),
                    ("NAME_", V), ("TASK_DEF_KEY_", V), ("OWNER_", V), ("ASSIGNEE_", V), ("PRIORITY_", I),
                    ("CREATE_TIME_", T), ("DUE_DATE_", T), ("SUSPENSION_STATE_", I), ("TENANT_ID_", V)),
    "ACT_RU_IDENTITYLINK": (("ID_", V), ("REV_", I), ("GROUP_ID_", V), ("TYPE_", V), ("USER_ID_", V),
                            ("TASK_ID_", V), ("PROC_INST_ID_", V), ("PROC_DEF_ID_", V)),
    "ACT_RU_VARIABLE": (("ID_", V), ("REV_", I), ("TYPE_", V), ("NAME_", V), ("EXECUTION_ID_", V),
                        ("PROC_INST_ID_", V), ("TASK_ID_", V), ("LONG_", "BIGINT"), ("TEXT_", "VARCHAR(4000)")),
    "ACT_ID_USER": (("ID_", V), ("REV_", I), ("FIRST_", V), ("LAST_", V), ("EMAIL_", V)),
    "ACT_ID_GROUP": (("ID_", V), ("REV_", I), ("NAME_", V), ("TYPE_", V)),
    "ACT_ID_MEMBERSHIP": (("USER_ID_", V), ("GROUP_ID_", V)),
    "ACT_HI_PROCINST": (("ID_", V), ("PROC_INST_ID_", V), ("BUSINESS_KEY_", V), ("PROC_DEF_ID_", V),
                        ("START_TIME_", T), ("END_TIME_", T), ("START_USER_ID_", V), ("START_ACT_ID_", V),
                        ("END_ACT_ID_", V), ("SUPER_PROCESS_INSTANCE_ID_", V), ("DELETE_REASON_", "VARCHAR(4000)"),
                        ("TENANT_ID_", V)),
    "ACT_HI_TASKINST": (("ID_", V), ("PROC_DEF_ID_", V), ("TASK_DEF_KEY_", V), ("PROC_INST_ID_", V),
                        ("EXECUTION_ID_", V), ("NAME_", V), ("ASSIGNEE_", V), ("START_TIME_", T), ("END_TIME_", T),
                        ("DELETE_REASON_", "VARCHAR(4000)"), ("PRIORITY_", I), ("DUE_DATE_", T)),
    "ACT_HI_VARINST": (("ID_", V), ("PROC_INST_ID_", V), ("EXECUTION_ID_", V), ("TASK_ID_", V), ("NAME_", V),
                       ("VAR_TYPE_", V), ("REV_", I), ("LONG_", "BIGINT"), ("TEXT_", "VARCHAR(4000)")),
}

# Keys and indexes as the engines create them (names from the Activiti 6 DDL), built once the rows are in.
KEYS = {t: ("NAME_",) if t == "ACT_GE_PROPERTY" else ("USER_ID_", "GROUP_ID_") if t == "ACT_ID_MEMBERSHIP" else ("ID_",)
        for t in TABLES}
INDEXES = (
    ("ACT_UNIQ_PROCDEF", "ACT_RE_PROCDEF", "KEY_, VERSION_, TENANT_ID_", True),
    ("ACT_IDX_BYTEAR_DEPL", "ACT_GE_BYTEARRAY", "DEPLOYMENT_ID_", False),
    ("ACT_IDX_EXEC_BUSKEY", "ACT_RU_EXECUTION", "BUSINESS_KEY_", False),
    ("ACT_IDX_EXE_PROCINST", "ACT_RU_EXECUTION", "PROC_INST_ID_", False),
    ("ACT_IDX_TASK_CREATE", "ACT_RU_TASK", "CREATE_TIME_", False),
    ("ACT_IDX_TASK_PROCINST", "ACT_RU_TASK", "PROC_INST_ID_", False),
    ("ACT_IDX_TSKASS_TASK", "ACT_RU_IDENTITYLINK", "TASK_ID_", False),
    ("ACT_IDX_IDENT_LNK_GROUP", "ACT_RU_IDENTITYLINK", "GROUP_ID_", False),
    ("ACT_IDX_VAR_PROCINST", "ACT_RU_VARIABLE", "PROC_INST_ID_", False),
    ("ACT_IDX_HI_PRO_INST_END", "ACT_HI_PROCINST", "END_TIME_", False),
    ("ACT_IDX_HI_PRO_I_BUSKEY", "ACT_HI_PROCINST", "BUSINESS_KEY_", False),
    ("ACT_UNIQ_HI_PRO_INST", "ACT_HI_PROCINST", "PROC_INST_ID_", True),
    ("ACT_IDX_HI_TASK_INST_PROCINST", "ACT_HI_TASKINST", "PROC_INST_ID_", False),
    ("ACT_IDX_HI_PROCVAR_PROC_INST", "ACT_HI_VARINST", "PROC_INST_ID_", False),
    ("ACT_IDX_HI_PROCVAR_NAME_TYPE", "ACT_HI_VARINST", "NAME_, VAR_TYPE_", False),
)


def process_key(code: str) -> str:
    """The engine's process key for a procedure code (a BPMN id cannot start with a digit)."""
    return f"TTHC_{code}"


# ------------------------------------------------------------------------------ BPMN and sidecars


def bpmn_xml(key: str, name: str, steps: tuple[_Step, ...]) -> bytes:
    """One process as Activiti Modeler exports it: start, user tasks routed to candidate groups,
    an exclusive gateway where a task has several successors, one end event after the final tasks."""
    ET.register_namespace("", BPMN)
    ET.register_namespace("activiti", ACTIVITI)
    root = ET.Element(f"{{{BPMN}}}definitions",
                      {"id": f"Definitions_{key}", "targetNamespace": "http://www.activiti.org/processdef"})
    proc = ET.SubElement(root, f"{{{BPMN}}}process", {"id": key, "name": name, "isExecutable": "true"})
    ET.SubElement(proc, f"{{{BPMN}}}startEvent", {"id": "start"})
    flows: list[tuple[str, str]] = [("start", steps[0].id)]
    for s in steps:
        ET.SubElement(proc, f"{{{BPMN}}}userTask",
                      {"id": s.id, "name": s.name, f"{{{ACTIVITI}}}candidateGroups": s.unit})
        if len(s.next) > 1:
            gw = f"gw_{s.id}"
            ET.SubElement(proc, f"{{{BPMN}}}exclusiveGateway", {"id": gw})
            flows += [(s.id, gw)] + [(gw, t) for t in s.next]
        else:
            flows += [(s.id, t) for t in s.next]
        if s.final:
            flows.append((s.id, "end"))
    ET.SubElement(proc, f"{{{BPMN}}}endEvent", {"id": "end"})
    for k, (src, dst) in enumerate(flows, 1):
        ET.SubElement(proc, f"{{{BPMN}}}sequenceFlow", {"id": f"flow{k}", "sourceRef": src, "targetRef": dst})
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def sidecar(p: _Procedure, v: _Version) -> dict[str, Any]:
    """What the BPMN does not say: the field, and each task's working days."""
    return {"name": p.name, "field": p.field, "steps": {s.id: {"days": s.days} for s in v.steps}}


# ------------------------------------------------------------------------------ deployments


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    procdef_id: str
    key: str
    version: int  # the engine's VERSION_
    logical: int  # the catalog version it deploys (0: a definition whose resource is missing)
    deployed_at: datetime
    resource: str
    xml: bytes | None


def plan_deployments(procs: tuple[_Procedure, ...], first_id: int = 1) -> list[Deployment]:
    """Every deployment of every procedure, in deployment order per procedure; the main land procedure
    is redeployed MAIN_DEPLOYMENTS times, spread over its versions in proportion to how long each was current."""
    out: list[Deployment] = []
    next_id = first_id
    end = datetime.combine(AS_OF, datetime.min.time())
    for p in procs:
        key = process_key(p.code)
        starts = [datetime.combine(v.valid_from, datetime.min.time()) for v in p.versions]
        spans = [(starts[i + 1] if i + 1 < len(starts) else end) - starts[i] for i in range(len(starts))]
        if p.code == LAND_MAIN:
            total = sum(s.days for s in spans)
            counts = [max(1, round(MAIN_DEPLOYMENTS * s.days / total)) for s in spans]
            counts[-1] += MAIN_DEPLOYMENTS - sum(counts)
        else:
            counts = [REDEPLOYS.get(p.code, 1)] * len(p.versions)
        number = 0
        for v, start, span, n in zip(p.versions, starts, spans, counts):
            xml = bpmn_xml(key, p.name, v.steps)
            for k in range(n):
                number += 1
                at = start + timedelta(minutes=int(span.total_seconds() // 60 * k // n))
                out.append(Deployment(str(next_id), f"{key}:{number}:{next_id}", key, number, v.number, at,
                                      f"{p.folder}.bpmn20.xml", xml))
                next_id += 1
    return out


def write_sidecars(folder: Path, procs: tuple[_Procedure, ...], deployments: list[Deployment]) -> None:
    """One sidecar per procedure and catalog version, named by the first engine version it applies to."""
    folder.mkdir(parents=True, exist_ok=True)
    first: dict[tuple[str, int], int] = {}
    for dep in deployments:
        first.setdefault((dep.key, dep.logical), dep.version)
    for p in procs:
        key = process_key(p.code)
        for v in p.versions:
            text = yaml.safe_dump(sidecar(p, v), allow_unicode=True, sort_keys=False, width=1000)
            (folder / f"{key}.v{first[key, v.number]}.yaml").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------ the sink


class ActivitiSystem(_SystemSink):
    """Writes dossiers as process instances of the planned deployments (see the module docstring)."""

    BATCH = 20_000

    def __init__(self, url: str, days: _Days, accounts: list[tuple[str, str, str, int]],
                 procs: tuple[_Procedure, ...]) -> None:
        self.engine = connect_engine(url, what="engine database", create=True)
        self.sqlite = self.engine.dialect.name == "sqlite"
        existing = [t for t in sa.inspect(self.engine).get_table_names() if t.upper().startswith("ACT_")]
        if existing:
            self.engine.dispose()
            raise BadInput(f"{mask_url(url)}: already holds engine tables ({', '.join(sorted(existing)[:5])}...). "
                           "Hint: give an empty database or schema.")
        self.days = days
        self.procs = procs
        self.deployments = plan_deployments(procs)
        self._ids = int(self.deployments[-1].id) + 1
        self._by_version: dict[tuple[str, int], list[Deployment]] = {}
        for dep in self.deployments:
            self._by_version.setdefault((dep.key, dep.logical), []).append(dep)
        self._broken: dict[str, Deployment] = {}
        self._names = {(p.code, s.id): s.name for p in procs for v in p.versions
                       for s in (v.deployed or ()) + v.steps}
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        dialect = self.engine.dialect.name  # the types each engine's own DDL uses there
        blob = {"sqlite": "BLOB", "postgresql": "BYTEA"}.get(dialect, "LONGBLOB")
        timestamp = "DATETIME(3)" if dialect in ("mysql", "mariadb") else "TIMESTAMP"
        with self.engine.begin() as conn:
            for table, cols in TABLES.items():
                conn.exec_driver_sql(f"CREATE TABLE {table} ("
                                     + ", ".join(f"{c} {t.format(blob=blob, timestamp=timestamp)}" for c, t in cols)
                                     + f", PRIMARY KEY ({', '.join(KEYS[table])}))")
        self.rows["ACT_GE_PROPERTY"].append({"NAME_": "schema.version", "VALUE_": "6.0.0.4", "REV_": 1})
        units = sorted({unit for _a, _n, unit, _act in accounts})
        self.rows["ACT_ID_GROUP"] += [{"ID_": u, "REV_": 1, "NAME_": u, "TYPE_": "assignment"} for u in units]
        for account, name, unit, active in accounts:
            if not active:
                continue  # deactivated: deleted from the identity tables
            family, _, given = name.partition(" ")
            self.rows["ACT_ID_USER"].append({"ID_": account, "REV_": 1, "FIRST_": given, "LAST_": family,
                                             "EMAIL_": None})
            self.rows["ACT_ID_MEMBERSHIP"].append({"USER_ID_": account, "GROUP_ID_": unit})

    def _id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def _ts(self, text: str) -> Any:
        """A timestamp parameter: text on SQLite (as the engines' JDBC drivers store it), else a datetime."""
        return text if self.sqlite else datetime.fromisoformat(text)

    def _definition(self, d: _Dossier, p: _Procedure) -> Deployment:
        key = process_key(p.code)
        if d.version > len(p.versions):  # a version the catalog lacks: its resource is missing
            if key not in self._broken:
                last = max(dep.version for dep in self.deployments if dep.key == key)
                dep_id = self._id()
                at = datetime.combine(self.days.dates[d.recv], datetime.min.time())
                self._broken[key] = Deployment(dep_id, f"{key}:{last + 1}:{dep_id}", key, last + 1, 0, at,
                                               f"{p.folder}.bpmn20.xml", None)
            return self._broken[key]
        deps = self._by_version[key, d.version]
        received = datetime.fromisoformat(f"{self.days.iso[d.recv]} {d.recv_t}")
        i = bisect.bisect_right([dep.deployed_at for dep in deps], received) - 1
        return deps[max(i, 0)]

    def add(self, d: _Dossier, p: _Procedure, events: list[tuple[Any, ...]]) -> None:
        iso, rows = self.days.iso, self.rows
        dep = self._definition(d, p)
        pid = self._id()
        is_open = d.status not in CLOSED
        ended = None if is_open else self._ts(f"{iso[d.ret]} {d.ret_t}")
        rows["ACT_HI_PROCINST"].append({
            "ID_": pid, "PROC_INST_ID_": pid, "BUSINESS_KEY_": d.code, "PROC_DEF_ID_": dep.procdef_id,
            "START_TIME_": self._ts(f"{iso[d.recv]} {d.recv_t}"), "END_TIME_": ended,
            "START_USER_ID_": events[0][4] if events else None, "START_ACT_ID_": "start",
            "END_ACT_ID_": "end" if d.status == RETURNED else None, "SUPER_PROCESS_INSTANCE_ID_": None,
            "DELETE_REASON_": DELETE_REASONS.get(d.status), "TENANT_ID_": "",
        })
        variables = {"procedure": ("string", p.code), "applicant": ("string", d.applicant),
                     "phone": ("string", d.phone), "address": ("string", d.address), "agency": ("string", p.agency),
                     "channel": ("string", "1"), "due_at": ("date", f"{iso[d.due]} {DUE_TIME}")}
        if d.fin is not None:
            variables["finished_at"] = ("date", f"{iso[d.fin]} {d.fin_t}")
        for name, (kind, value) in variables.items():
            long_ = _millis(value) if kind == "date" else None
            text = None if kind == "date" else value
            rows["ACT_HI_VARINST"].append({"ID_": self._id(), "PROC_INST_ID_": pid, "EXECUTION_ID_": pid,
                                           "TASK_ID_": None, "NAME_": name, "VAR_TYPE_": kind, "REV_": 1,
                                           "LONG_": long_, "TEXT_": text})
            if is_open:
                rows["ACT_RU_VARIABLE"].append({"ID_": self._id(), "REV_": 1, "TYPE_": kind, "NAME_": name,
                                                "EXECUTION_ID_": pid, "PROC_INST_ID_": pid, "TASK_ID_": None,
                                                "LONG_": long_, "TEXT_": text})
        history = _task_history(events, d)
        task_ids = [self._id() for _ in history]  # in start order, as the engine numbers them
        if is_open:
            suspended = 2 if d.status == SUPPLEMENT else 1
            exec_id = self._id()
            task_id = task_ids[-1] if history and history[-1]["end"] is None else self._id()
            rows["ACT_RU_EXECUTION"] += [
                {"ID_": pid, "REV_": 1, "PROC_INST_ID_": pid, "BUSINESS_KEY_": d.code, "PARENT_ID_": None,
                 "PROC_DEF_ID_": dep.procdef_id, "SUPER_EXEC_": None, "ACT_ID_": None, "IS_ACTIVE_": False,
                 "IS_SCOPE_": True,
                 "SUSPENSION_STATE_": suspended, "TENANT_ID_": ""},
                {"ID_": exec_id, "REV_": 1, "PROC_INST_ID_": pid, "BUSINESS_KEY_": None, "PARENT_ID_": pid,
                 "PROC_DEF_ID_": dep.procdef_id, "SUPER_EXEC_": None, "ACT_ID_": d.step, "IS_ACTIVE_": True,
                 "IS_SCOPE_": False,
                 "SUSPENSION_STATE_": suspended, "TENANT_ID_": ""},
            ]
            rows["ACT_RU_TASK"].append({
                "ID_": task_id, "REV_": 1, "EXECUTION_ID_": exec_id, "PROC_INST_ID_": pid,
                "PROC_DEF_ID_": dep.procdef_id, "NAME_": self._names.get((p.code, d.step or "")),
                "TASK_DEF_KEY_": d.step, "OWNER_": None, "ASSIGNEE_": d.assignee, "PRIORITY_": 50,
                "CREATE_TIME_": self._ts(f"{iso[d.entered]} {d.entered_t}"),
                "DUE_DATE_": self._ts(f"{iso[d.step_due]} {DUE_TIME}"), "SUSPENSION_STATE_": suspended,
                "TENANT_ID_": "",
            })
            rows["ACT_RU_IDENTITYLINK"].append({"ID_": self._id(), "REV_": 1, "GROUP_ID_": d.unit,
                                                "TYPE_": "candidate", "USER_ID_": None, "TASK_ID_": task_id,
                                                "PROC_INST_ID_": None, "PROC_DEF_ID_": None})
        for task, task_id in zip(history, task_ids):
            rows["ACT_HI_TASKINST"].append({
                "ID_": task_id, "PROC_DEF_ID_": dep.procdef_id, "TASK_DEF_KEY_": task["key"],
                "PROC_INST_ID_": pid, "EXECUTION_ID_": pid, "NAME_": self._names.get((p.code, task["key"])),
                "ASSIGNEE_": task["assignee"], "START_TIME_": self._ts(task["start"]),
                "END_TIME_": None if task["end"] is None else self._ts(task["end"]),
                "DELETE_REASON_": task["reason"], "PRIORITY_": 50, "DUE_DATE_": None,
            })
        if len(rows["ACT_HI_PROCINST"]) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        with self.engine.begin() as conn:
            for table, cols in TABLES.items():
                batch = self.rows[table]
                if batch:
                    sql = f"INSERT INTO {table} ({', '.join(c for c, _ in cols)}) VALUES " \
                          f"({', '.join(':' + c for c, _ in cols)})"
                    conn.execute(sa.text(sql), batch)
                    self.rows[table] = []

    def close(self) -> None:
        for dep in self.deployments + sorted(self._broken.values(), key=lambda x: x.key):
            self.rows["ACT_RE_DEPLOYMENT"].append({"ID_": dep.id, "NAME_": dep.resource, "CATEGORY_": None,
                                                   "TENANT_ID_": "", "DEPLOY_TIME_": self._ts(str(dep.deployed_at))})
            if dep.xml is not None:
                self.rows["ACT_GE_BYTEARRAY"].append({"ID_": f"{dep.id}.bpmn", "REV_": 1, "NAME_": dep.resource,
                                                      "DEPLOYMENT_ID_": dep.id, "BYTES_": dep.xml,
                                                      "GENERATED_": False})
            self.rows["ACT_RE_PROCDEF"].append({
                "ID_": dep.procdef_id, "REV_": 1, "CATEGORY_": "http://www.activiti.org/processdef",
                "NAME_": next(p.name for p in self.procs if process_key(p.code) == dep.key), "KEY_": dep.key,
                "VERSION_": dep.version, "DEPLOYMENT_ID_": dep.id, "RESOURCE_NAME_": dep.resource,
                "SUSPENSION_STATE_": 1, "TENANT_ID_": "",
            })
        try:
            self._flush()
            with self.engine.begin() as conn:
                for name, table, columns, unique in INDEXES:
                    conn.exec_driver_sql(f"CREATE {'UNIQUE ' if unique else ''}INDEX {name} ON {table} ({columns})")
                if self.engine.dialect.name == "postgresql":
                    conn.exec_driver_sql("ANALYZE")  # planner statistics, as autovacuum keeps them on a live engine
        finally:
            self.engine.dispose()


def _millis(text: str) -> int:
    """A `date` variable's LONG_: milliseconds since the epoch (local time written as UTC)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _task_history(events: list[tuple[Any, ...]], d: _Dossier) -> list[dict[str, Any]]:
    """ACT_HI_TASKINST rows from the vendor-shaped history (code, seq, from, to, account, at, action):
    a move to a step starts a task; the move out of it ends it, by the account that made the move."""
    tasks: list[dict[str, Any]] = []
    last_at = ""
    for _code, _seq, _frm, to, account, at, _action in events:
        at = max(at, last_at)  # an engine's clock never runs backwards within one instance
        last_at = at
        if tasks and tasks[-1]["end"] is None:
            tasks[-1].update(end=at, assignee=account, reason="completed")
        if to is not None:
            tasks.append({"key": to, "start": at, "end": None, "assignee": None, "reason": None})
    if d.status not in CLOSED and tasks and tasks[-1]["end"] is None:
        tasks[-1]["assignee"] = d.assignee  # the current task
    return tasks

