"""The activiti profile: the system state and the workflow catalog read from a workflow engine's own
tables (`ACT_*`, shared by Activiti 5/6, Flowable 6 and Camunda 7), read-only, on any SQLAlchemy database.

What is read, and what it means:
- catalog: one version per process definition (`ACT_RE_PROCDEF` KEY_ = procedure, VERSION_ = version),
  its BPMN the deployment's resource in `ACT_GE_BYTEARRAY` (DEPLOYMENT_ID_, NAME_ = RESOURCE_NAME_),
  `valid_from` the deployment's DEPLOY_TIME_; working days (and the field) from an optional sidecar
  folder: `<KEY>.yaml` for every version, `<KEY>.v<N>.yaml` for engine versions N and later (the
  latest N at or below a version wins). A definition whose resource is missing is left out (warning):
  its instances become `unknown_version` findings.
- dossiers: top-level process instances (not started by a call activity: SUPER_EXEC_ /
  SUPER_PROCESS_INSTANCE_ID_ empty, where the engine has them); BUSINESS_KEY_ is the dossier code,
  PROC_DEF_ID_ gives workflow_key and workflow_version. Running ones are the process-instance rows
  of `ACT_RU_EXECUTION` (ID_ = PROC_INST_ID_), ended ones the `ACT_HI_PROCINST` rows with an
  END_TIME_. The current step is the running instance's user task in `ACT_RU_TASK` (the earliest
  created, if several): TASK_DEF_KEY_, ASSIGNEE_, CREATE_TIME_ (entered the step), DUE_DATE_; the
  unit is its candidate group (`ACT_RU_IDENTITYLINK`, TYPE_ 'candidate'). received_at is START_TIME_
  (`ACT_HI_PROCINST`), returned_at the END_TIME_ of an ended instance, finished_at the END_TIME_, or
  the time a running instance entered its final step. Process variables (`ACT_HI_VARINST`, else
  `ACT_RU_VARIABLE`) named like a dossier field (VARIABLE_FIELDS: applicant, due_at, ...) fill that
  field and win over the above.
- statuses (STATUS_RULES): running -> in_progress; running and suspended (SUSPENSION_STATE_ 2) ->
  supplement_requested (a pause waiting on the applicant: still open, unlike `stopped`); running on
  its version's first step -> received, on a final step -> finished (result ready, not handed over);
  ended without DELETE_REASON_ (ran to its end event) -> returned; deleted with a reason -> withdrawn
  if the reason says so (a canonical status name, or "rút hồ sơ"), rejected if it says "từ chối" or
  "rejected", else stopped. awaiting_payment is not visible in the engine (in_progress).
- accounts: `ACT_ID_USER` users, one row per group in `ACT_ID_MEMBERSHIP` (the group is the unit); all
  active: an assignee who is no longer a user is reported as an inactive assignee.
- events: task history (`ACT_HI_TASKINST`, else the task rows of `ACT_HI_ACTINST`): each task started
  is a move from the previous task (by its assignee; the first by the instance's START_USER_ID_), and
  an ended instance's last task leads nowhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from reconcile.bpmn import ImportedBpmn, load_sidecar, parse_bpmn
from reconcile.catalog import Catalog, WorkflowVersion, catalog_from_docs
from reconcile.errors import BadInput
from reconcile.model import Status
from reconcile.normalize import fold, looks_like_code, normalize_code
from reconcile.sources.system import (
    BATCH_ROWS, DOSSIER_FIELDS, EVENT_FIELDS, TASK_FIELDS, SystemData, _read_only, _text,
)
from reconcile.db import connect_engine, mask_url
from reconcile.store import iter_rows

# Tables the profile needs, and the columns it reads from each (upper case, as the engines document them).
REQUIRED: dict[str, tuple[str, ...]] = {
    "ACT_RE_PROCDEF": ("ID_", "KEY_", "VERSION_", "DEPLOYMENT_ID_", "RESOURCE_NAME_", "NAME_"),
    "ACT_RE_DEPLOYMENT": ("ID_", "DEPLOY_TIME_"),
    "ACT_GE_BYTEARRAY": ("DEPLOYMENT_ID_", "NAME_", "BYTES_"),
    "ACT_RU_EXECUTION": ("ID_", "PROC_INST_ID_", "BUSINESS_KEY_", "PROC_DEF_ID_", "SUSPENSION_STATE_"),
    "ACT_RU_TASK": ("ID_", "PROC_INST_ID_", "PROC_DEF_ID_", "TASK_DEF_KEY_", "ASSIGNEE_", "CREATE_TIME_",
                    "DUE_DATE_"),
    "ACT_RU_IDENTITYLINK": ("TASK_ID_", "GROUP_ID_", "TYPE_"),
    "ACT_ID_USER": ("ID_", "FIRST_", "LAST_"),
    "ACT_ID_MEMBERSHIP": ("USER_ID_", "GROUP_ID_"),
}
# Read where present (an engine may run with history off).
OPTIONAL: dict[str, tuple[str, ...]] = {
    "ACT_HI_PROCINST": ("PROC_INST_ID_", "BUSINESS_KEY_", "PROC_DEF_ID_", "START_TIME_", "END_TIME_",
                        "START_USER_ID_", "DELETE_REASON_"),
    "ACT_HI_TASKINST": ("ID_", "PROC_INST_ID_", "TASK_DEF_KEY_", "ASSIGNEE_", "START_TIME_", "END_TIME_"),
    "ACT_HI_ACTINST": ("ID_", "PROC_INST_ID_", "ACT_ID_", "ACT_TYPE_", "ASSIGNEE_", "START_TIME_", "END_TIME_"),
    "ACT_HI_VARINST": ("PROC_INST_ID_", "NAME_", "TEXT_", "LONG_"),
    "ACT_RU_VARIABLE": ("PROC_INST_ID_", "NAME_", "TEXT_", "LONG_"),
}
# Read where present: an instance started by a call activity points at its caller; it is no dossier.
CALLER = {"ACT_RU_EXECUTION": "SUPER_EXEC_", "ACT_HI_PROCINST": "SUPER_PROCESS_INSTANCE_ID_"}
VARIABLE_FIELDS = ("procedure", "field", "applicant", "phone", "address", "agency", "channel", "received_at",
                   "due_at", "due_at_revised", "finished_at", "returned_at")
DATE_FIELDS = frozenset({"received_at", "due_at", "due_at_revised", "finished_at", "returned_at"})
SUSPENDED = 2
WITHDRAWN_WORDS = ("rut ho so", "rut hs", "xin rut", "withdrawn")
REJECTED_WORDS = ("tu choi", "rejected")
STATUS_RULES = {
    "running": Status.IN_PROGRESS, "suspended": Status.SUPPLEMENT_REQUESTED, "first step": Status.RECEIVED,
    "final step": Status.FINISHED, "ended": Status.RETURNED, "deleted": Status.STOPPED,
}
SIDECAR_FILE = re.compile(r"^(?P<key>.+?)(?:\.v(?P<version>\d+))?\.yaml$")
_TASK_TYPES = ("userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask",
               "businessRuleTask", "callActivity", "task")


@dataclass(frozen=True, slots=True)
class _Table:
    """One engine table as this database spells it (PostgreSQL folds unquoted names to lower case);
    columns are looked up by their documented upper-case names."""

    name: str
    clause: sa.TableClause
    cols: dict[str, sa.ColumnClause[Any]]

    def __getitem__(self, column: str) -> sa.ColumnClause[Any]:
        return self.cols[column]

    def top_level(self) -> sa.ColumnElement[bool]:
        """Not started by another process instance's call activity (when the table says)."""
        caller = CALLER.get(self.name)
        return self.cols[caller].is_(None) if caller in self.cols else sa.true()


class _Schema:
    def __init__(self, conn: sa.Connection, where: str) -> None:
        self.inspector = sa.inspect(conn)
        self.where = where
        self.actual = {n.upper(): n for n in self.inspector.get_table_names()}

    def table(self, name: str, columns: tuple[str, ...], required: bool = True) -> _Table | None:
        actual = self.actual.get(name)
        if actual is None:
            if not required:
                return None
            found = sorted(self.actual.values())
            shown = ", ".join(found[:40]) + (f" (and {len(found) - 40} more)" if len(found) > 40 else "")
            raise BadInput(f"{self.where}: table {name} does not exist; the activiti profile needs it. "
                           f"Tables: {shown or '(none)'}. Hint: point --system at the engine's database "
                           "(the Activiti 5/6, Flowable 6 or Camunda 7 schema).")
        have = {c["name"].upper(): c["name"] for c in self.inspector.get_columns(actual)}
        missing = [c for c in columns if c not in have]
        if missing:
            raise BadInput(f"{self.where}: column {name}.{missing[0]} does not exist. Columns of {name}: "
                           f"{', '.join(have.values())}. Hint: the activiti profile reads the Activiti 5/6, "
                           "Flowable 6 and Camunda 7 schema.")
        read = columns + tuple(c for c in (CALLER.get(name),) if c is not None and c in have)
        clause = sa.table(actual, *[sa.column(have[c]) for c in read])
        return _Table(name, clause, {c: clause.c[have[c]] for c in read})


# ---------------------------------------------------------------------------------- the profile


def load_activiti_profile(url: str, sidecars: str | None = None) -> tuple[SystemData, Catalog]:
    """Check the engine's tables and read its catalog and staff now; stream instances and history later."""
    side = _load_sidecars(sidecars) if sidecars else {}
    engine = connect_engine(url, what="engine database", read_only=True)
    where = mask_url(str(engine.url))
    try:
        with _read_only(engine) as conn:
            schema = _Schema(conn, where)
            tables: dict[str, _Table | None] = {n: schema.table(n, c) for n, c in REQUIRED.items()}
            tables.update({n: schema.table(n, c, required=False) for n, c in OPTIONAL.items()})
            t = _Tables(tables)
            catalog, definitions = _catalog(conn, t, where, side)
            warnings = _business_key_warnings(conn, t, where)
            accounts = _accounts(conn, t)
    except BaseException:
        engine.dispose()
        raise
    shape = {(v.procedure, v.version): _shape(v) for v in catalog.versions}

    def dossier_batches() -> Iterator[pa.Table]:
        with _read_only(engine) as conn:
            tasks = _current_tasks(conn, t)
            result = conn.execution_options(yield_per=BATCH_ROWS).execute(_instances(t))
            first = 1
            for part in result.partitions(BATCH_ROWS):
                yield _dossier_batch(part, tasks, definitions, shape, first)
                first += len(part)

    def event_batches() -> Iterator[pa.Table]:
        stmt = _history(t)
        if stmt is None:
            return
        with _read_only(engine) as conn:
            yield from _event_batches(iter_rows(conn, stmt))

    places = {"dossier": f"{where} ACT_RU_EXECUTION/ACT_HI_PROCINST", "account": f"{where} ACT_ID_USER",
              "events": f"{where} {'ACT_HI_TASKINST' if t.get('ACT_HI_TASKINST') else 'ACT_HI_ACTINST'}"}
    data = SystemData(where, "activiti", accounts, dossier_batches, event_batches, writable=False, where=places,
                      warnings=warnings)
    return data, catalog


class _Tables(dict[str, "_Table | None"]):
    def __getitem__(self, name: str) -> _Table:
        table = super().__getitem__(name)
        assert table is not None, name  # callers check optional tables with .get() first
        return table


def _load_sidecars(folder: str) -> dict[str, list[tuple[int, str, dict[str, Any]]]]:
    """KEY -> [(first engine version, path, sidecar)], by version."""
    d = Path(folder)
    if not d.is_dir():
        raise BadInput(f"{folder}: no such directory. Hint: --sidecars DIR holds <KEY>.yaml or <KEY>.v<N>.yaml "
                       "files (working days per task of a process key).")
    out: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for p in sorted(d.glob("*.yaml")):
        m = SIDECAR_FILE.match(p.name)
        if m:
            out.setdefault(m["key"], []).append((int(m["version"] or 1), str(p), load_sidecar(str(p))))
    for entries in out.values():
        entries.sort(key=lambda e: e[0])
    return out


def _sidecar_for(side: dict[str, list[tuple[int, str, dict[str, Any]]]], key: str, version: int
                 ) -> tuple[str | None, dict[str, Any] | None]:
    found = [e for e in side.get(key, ()) if e[0] <= version]
    return (found[-1][1], found[-1][2]) if found else (None, None)


def _catalog(conn: sa.Connection, t: _Tables, where: str, side: dict[str, list[tuple[int, str, dict[str, Any]]]]
             ) -> tuple[Catalog, dict[str, tuple[str, int]]]:
    """One catalog version per process definition with its BPMN; identical redeploys are parsed once.
    The catalog's warnings include the BPMN parser's and missing resources."""
    pd, dep, ba = t["ACT_RE_PROCDEF"], t["ACT_RE_DEPLOYMENT"], t["ACT_GE_BYTEARRAY"]
    stmt = (
        sa.select(pd["ID_"].label("procdef"), pd["KEY_"].label("key"), pd["VERSION_"].label("version"),
                  pd["DEPLOYMENT_ID_"].label("deployment"), pd["RESOURCE_NAME_"].label("resource"),
                  dep["DEPLOY_TIME_"].label("deployed"), ba["BYTES_"].label("bytes"))
        .select_from(pd.clause.outerjoin(dep.clause, dep["ID_"] == pd["DEPLOYMENT_ID_"])
                     .outerjoin(ba.clause, sa.and_(ba["DEPLOYMENT_ID_"] == pd["DEPLOYMENT_ID_"],
                                                   ba["NAME_"] == pd["RESOURCE_NAME_"])))
        .order_by(pd["KEY_"], pd["VERSION_"])
    )
    definitions: dict[str, tuple[str, int]] = {}
    warnings: list[str] = []
    parsed: dict[tuple[bytes, str | None], ImportedBpmn] = {}
    docs: list[tuple[dict[str, Any], str]] = []
    for r in conn.execute(stmt):
        key, version = str(r.key), int(r.version)
        definitions[str(r.procdef)] = (key, version)
        if r.bytes is None:
            warnings.append(f"{where}: ACT_RE_PROCDEF {r.procdef} ({key} version {version}): deployment "
                            f"{r.deployment} has no resource {r.resource!r} in ACT_GE_BYTEARRAY; the version is "
                            "left out of the catalog, so its open dossiers are reported as unknown_version.")
            continue
        side_path, sidecar = _sidecar_for(side, key, version)
        data = bytes(r.bytes)
        if (data, side_path) not in parsed:
            source = f"{where} ACT_GE_BYTEARRAY deployment {r.deployment} resource {r.resource}"
            parsed[data, side_path] = imported = parse_bpmn(data, source, procedure=key, version=version,
                                                            sidecar=sidecar)
            warnings.extend(imported.warnings)
        doc = dict(parsed[data, side_path].doc, procedure=key, version=version)
        if r.deployed is not None:
            doc["valid_from"] = _text_time(r.deployed)[:10]
        docs.append((doc, f"{where} ACT_RE_PROCDEF {r.procdef}"))
    built = catalog_from_docs(docs)
    warnings += _collapse(list(built.warnings), f"{where} ACT_RE_PROCDEF ", definitions)
    return Catalog(built.versions, tuple(warnings)), definitions


def _collapse(warnings: list[str], prefix: str, definitions: dict[str, tuple[str, int]]) -> list[str]:
    """One line per warning that identical redeploys repeat: the first definition's, with a count."""
    groups: dict[str, list[tuple[str, int]]] = {}
    first: dict[str, str] = {}
    for w in warnings:
        rest = w.removeprefix(prefix)
        procdef = next((d for d in definitions if rest.startswith(d + ":")), None) if rest != w else None
        text = rest[len(procdef):] if procdef is not None else w
        first.setdefault(text, w)
        if procdef is not None:
            groups.setdefault(text, []).append(definitions[procdef])
    out = []
    for text, w in first.items():
        more = groups.get(text, [])[1:]
        if more:
            versions = sorted(v for _, v in more)
            w += f" (the same in {len(more)} more deployed versions of {more[0][0]}: {versions[0]}-{versions[-1]})"
        out.append(w)
    return out


def _shape(v: WorkflowVersion) -> tuple[str, frozenset[str]]:
    return v.steps[0].id, frozenset(s.id for s in v.steps if s.final)


def _business_key_warnings(conn: sa.Connection, t: _Tables, where: str, limit: int = 10) -> list[str]:
    """Process instances whose BUSINESS_KEY_ does not look like a dossier code (kept, with a warning)."""
    e, h = t["ACT_RU_EXECUTION"], t.get("ACT_HI_PROCINST")
    parts = [sa.select(sa.literal("ACT_RU_EXECUTION").label("tab"), e["ID_"].label("pid"),
                       e["BUSINESS_KEY_"].label("code")).where(e["ID_"] == e["PROC_INST_ID_"], e.top_level())]
    if h is not None:
        parts.append(sa.select(sa.literal("ACT_HI_PROCINST"), h["PROC_INST_ID_"], h["BUSINESS_KEY_"])
                     .where(h["END_TIME_"].is_not(None), h.top_level()))
    out, more = [], 0
    for tab, pid, code in iter_rows(conn, sa.union_all(*parts)):
        if looks_like_code(normalize_code(code)):
            continue
        if len(out) < limit:
            what = "no BUSINESS_KEY_" if code is None else f"BUSINESS_KEY_ {code!r} does not look like a dossier code"
            out.append(f"{where}: {tab} process instance {pid}: {what} (kept). Expected e.g. "
                       "000.00.53.H48-210105-0001.")
        else:
            more += 1
    if more:
        out.append(f"... and {more} more process instances whose business key is not a dossier code.")
    return out


def _accounts(conn: sa.Connection, t: _Tables) -> pa.Table:
    u, m = t["ACT_ID_USER"], t["ACT_ID_MEMBERSHIP"]
    rows = conn.execute(
        sa.select(u["ID_"], u["FIRST_"], u["LAST_"], m["GROUP_ID_"])
        .select_from(u.clause.outerjoin(m.clause, m["USER_ID_"] == u["ID_"]))
        .order_by(u["ID_"], m["GROUP_ID_"])).all()
    return pa.table({
        "account": _text([r[0] for r in rows]),
        "name": _text([" ".join(str(x) for x in (r[2], r[1]) if x) or None for r in rows]),
        "unit": _text([r[3] for r in rows]),
        "active": pa.array([True] * len(rows), pa.bool_()),
    })


def _current_tasks(conn: sa.Connection, t: _Tables) -> dict[str, Any]:
    """Process instance -> its current user task (the earliest created) with its candidate group."""
    tk, il = t["ACT_RU_TASK"], t["ACT_RU_IDENTITYLINK"]
    stmt = (
        sa.select(tk["PROC_INST_ID_"].label("pid"), tk["TASK_DEF_KEY_"].label("step"),
                  tk["ASSIGNEE_"].label("assignee"), tk["CREATE_TIME_"].label("entered"),
                  tk["DUE_DATE_"].label("due"), il["GROUP_ID_"].label("unit"))
        .select_from(tk.clause.outerjoin(il.clause, sa.and_(il["TASK_ID_"] == tk["ID_"], il["TYPE_"] == "candidate")))
        .where(tk["PROC_INST_ID_"].is_not(None))
        .order_by(tk["PROC_INST_ID_"], tk["CREATE_TIME_"], tk["ID_"], il["GROUP_ID_"])
    )
    tasks: dict[str, Any] = {}
    for r in iter_rows(conn, stmt):
        tasks.setdefault(str(r.pid), r)
    return tasks


def _instances(t: _Tables) -> sa.Select[Any]:
    """Running and ended process instances, with the dossier-field variables pivoted onto them."""
    e, h = t["ACT_RU_EXECUTION"], t.get("ACT_HI_PROCINST")
    start = h["START_TIME_"] if h is not None else sa.null()
    running = (sa.select(e["PROC_INST_ID_"].label("pid"), e["BUSINESS_KEY_"].label("code"),
                         e["PROC_DEF_ID_"].label("procdef"), e["SUSPENSION_STATE_"].label("suspension"),
                         start.label("started"), sa.null().label("ended"), sa.null().label("reason"))
               .select_from(e.clause.outerjoin(h.clause, h["PROC_INST_ID_"] == e["ID_"]) if h is not None
                            else e.clause)
               .where(e["ID_"] == e["PROC_INST_ID_"], e.top_level()))
    parts = [running]
    if h is not None:
        parts.append(sa.select(h["PROC_INST_ID_"], h["BUSINESS_KEY_"], h["PROC_DEF_ID_"], sa.null(),
                               h["START_TIME_"], h["END_TIME_"], h["DELETE_REASON_"])
                     .where(h["END_TIME_"].is_not(None), h.top_level()))
    u = sa.union_all(*parts).subquery("i")
    stmt = sa.select(u)
    var = t.get("ACT_HI_VARINST") or t.get("ACT_RU_VARIABLE")
    if var is not None:
        pivot = (sa.select(var["PROC_INST_ID_"].label("pid"), *[
            c for f in VARIABLE_FIELDS for c in (
                sa.func.max(sa.case((var["NAME_"] == f, var["TEXT_"]))).label(f"v_{f}"),
                sa.func.max(sa.case((var["NAME_"] == f, var["LONG_"]))).label(f"l_{f}"))])
            .where(var["NAME_"].in_(VARIABLE_FIELDS)).group_by(var["PROC_INST_ID_"]).subquery("v"))
        stmt = sa.select(u, *[c for c in pivot.c if c.key != "pid"]).select_from(
            u.outerjoin(pivot, pivot.c.pid == u.c.pid))
    return stmt.order_by(u.c.started, u.c.pid)


def _text_time(v: Any) -> str:
    return v.isoformat(sep=" ") if isinstance(v, datetime) else str(v)


def _times(values: list[Any]) -> pa.Array:
    """Engine timestamps as text (SQLite hands back text, PostgreSQL datetimes)."""
    arr = pa.array(values)
    if pa.types.is_timestamp(arr.type):
        return _seconds_text(arr)
    if pa.types.is_date(arr.type):
        return pc.cast(arr, pa.string())
    return arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr


def _seconds_text(arr: pa.Array) -> pa.Array:
    """'YYYY-MM-DD HH:MM:SS' (the store keeps days; fractions of a second would only add noise)."""
    return pc.cast(pc.cast(arr, pa.timestamp("s", arr.type.tz), safe=False), pa.string())


def _variable(text: list[Any], long_: list[Any], date_field: bool) -> pa.Array:
    """A variable's values as text: TEXT_, else LONG_ (a `date` variable: milliseconds since the epoch)."""
    numbers = pa.array(long_, pa.int64())
    other = _seconds_text(pc.cast(numbers, pa.timestamp("ms"))) if date_field else pc.cast(numbers, pa.string())
    return pc.coalesce(pa.array([None if t is None else str(t) for t in text], pa.string()), other)


def _status(row: Any, task: Any, key: str | None, version: int | None,
            shape: dict[tuple[str, int], tuple[str, frozenset[str]]]) -> tuple[Status, str]:
    """The canonical status of one instance (module docstring; STATUS_RULES) and the engine state it came from."""
    if row.ended is not None:
        if row.reason is None:
            return STATUS_RULES["ended"], "ended"
        plain = str(row.reason).strip().lower().replace(" ", "_")
        reason = fold(str(row.reason)) or ""  # no diacritics, no spaces
        canonical = {s.value: s for s in Status}
        if plain in canonical:
            status = canonical[plain]
        elif any(fold(w) in reason for w in WITHDRAWN_WORDS):
            status = Status.WITHDRAWN
        elif any(fold(w) in reason for w in REJECTED_WORDS):
            status = Status.REJECTED
        else:
            status = STATUS_RULES["deleted"]
        return status, f"deleted: {row.reason}"
    if row.suspension is not None and int(row.suspension) == SUSPENDED:
        return STATUS_RULES["suspended"], "suspended"
    first, finals = shape.get((key, version), (None, frozenset())) if key is not None and version is not None \
        else (None, frozenset())
    step = task.step if task is not None else None
    if step is not None and step in finals:
        return STATUS_RULES["final step"], "running"
    if step is not None and step == first:
        return STATUS_RULES["first step"], "running"
    return STATUS_RULES["running"], "running"


def _definition(procdef: Any, definitions: dict[str, tuple[str, int]]) -> tuple[str | None, int | None]:
    """KEY_ and VERSION_ of a definition id; ids of deleted definitions read as KEY:VERSION:ID."""
    if procdef is None:
        return None, None
    found = definitions.get(str(procdef))
    if found:
        return found
    parts = str(procdef).split(":")
    if len(parts) >= 3 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None, None


def _dossier_batch(part: list[Any], tasks: dict[str, Any], definitions: dict[str, tuple[str, int]],
                   shape: dict[tuple[str, int], tuple[str, frozenset[str]]], first: int) -> pa.Table:
    """Column-wise: variables and times are converted by Arrow; Python decides status and task per instance."""
    n = len(part)
    column = {k: [r[i] for r in part] for i, k in enumerate(part[0]._fields)}
    out: dict[str, pa.Array] = {f: pa.nulls(n, pa.string()) for f in DOSSIER_FIELDS + TASK_FIELDS[1:]}
    for f in VARIABLE_FIELDS:
        if f"v_{f}" in column:
            out[f] = _variable(column[f"v_{f}"], column[f"l_{f}"], f in DATE_FIELDS)
    per_row: dict[str, list[Any]] = {f: [None] * n for f in ("status", "status_raw", "workflow_key",
                                                               "workflow_version", "final_entered", *TASK_FIELDS[1:])}
    for i, row in enumerate(part):
        key, version = _definition(row.procdef, definitions)
        task = tasks.get(str(row.pid)) if row.ended is None else None
        status, raw = _status(row, task, key, version, shape)
        per_row["status"][i], per_row["status_raw"][i] = status.value, raw
        per_row["workflow_key"][i], per_row["workflow_version"][i] = key, version
        if task is not None:
            per_row["current_step"][i], per_row["assignee"][i], per_row["unit"][i] = task.step, task.assignee, task.unit
            per_row["step_entered_at"][i], per_row["step_due_at"][i] = task.entered, task.due
            if status is Status.FINISHED:
                per_row["final_entered"][i] = task.entered
    ended = _times(column["ended"])
    out.update(
        dossier_code=_text(column["code"]), status=pa.array(per_row["status"], pa.string()),
        status_raw=pa.array(per_row["status_raw"], pa.string()), workflow_key=_text(per_row["workflow_key"]),
        workflow_version=_text(per_row["workflow_version"]),
        current_step=_text(per_row["current_step"]), assignee=_text(per_row["assignee"]), unit=_text(per_row["unit"]),
        step_entered_at=_times(per_row["step_entered_at"]), step_due_at=_times(per_row["step_due_at"]),
        received_at=pc.coalesce(out["received_at"], _times(column["started"])),
        returned_at=pc.coalesce(out["returned_at"], ended),
        finished_at=pc.coalesce(out["finished_at"], ended, _times(per_row["final_entered"])),
    )
    out["source_row"] = pa.array(range(first, first + n), pa.int32())
    return pa.table(out)


def _history(t: _Tables) -> sa.Select[Any] | None:
    """Task instances with their process instance, in instance and start order (None: no history)."""
    h = t.get("ACT_HI_PROCINST")
    ti, ai = t.get("ACT_HI_TASKINST"), t.get("ACT_HI_ACTINST")
    if h is None or (ti is None and ai is None):
        return None
    x = ti if ti is not None else ai
    assert x is not None
    step = x["TASK_DEF_KEY_"] if ti is not None else x["ACT_ID_"]
    stmt = (sa.select(x["PROC_INST_ID_"].label("pid"), x["ID_"].label("tid"), step.label("step"),
                      x["ASSIGNEE_"].label("assignee"), x["START_TIME_"].label("started"),
                      x["END_TIME_"].label("ended"), h["BUSINESS_KEY_"].label("code"),
                      h["START_USER_ID_"].label("starter"), h["END_TIME_"].label("instance_ended"),
                      h["DELETE_REASON_"].label("reason"))
            .select_from(x.clause.join(h.clause, h["PROC_INST_ID_"] == x["PROC_INST_ID_"]))
            .where(h.top_level())
            .order_by(x["PROC_INST_ID_"], x["START_TIME_"]))
    if ti is None:
        stmt = stmt.where(x["ACT_TYPE_"].in_(_TASK_TYPES))
    return stmt


def _event_batches(rows: Iterator[Any]) -> Iterator[pa.Table]:
    """EVENT_FIELDS tables from task instances grouped by process instance (see the module docstring)."""
    out: list[tuple[Any, ...]] = []
    group: list[Any] = []

    def flush_group() -> None:
        tasks = sorted(group, key=lambda r: (_text_time(r.started), len(str(r.tid)), str(r.tid)))
        head = tasks[0]
        for k, task in enumerate(tasks):
            prev = tasks[k - 1] if k else None
            out.append((head.code, k + 1, prev.step if prev else None, task.step,
                        prev.assignee if prev else head.starter, _text_time(task.started), None))
        last = tasks[-1]
        if head.instance_ended is not None:
            at = last.ended if last.ended is not None else head.instance_ended
            out.append((head.code, len(tasks) + 1, last.step, None, last.assignee, _text_time(at),
                        head.reason or "completed"))
        group.clear()

    for row in rows:
        if group and str(row.pid) != str(group[0].pid):
            flush_group()
            if len(out) >= BATCH_ROWS:
                yield _events_table(out)
                out = []
        group.append(row)
    if group:
        flush_group()
    if out:
        yield _events_table(out)


def _events_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.table({f: _text([r[i] for r in rows]) for i, f in enumerate(EVENT_FIELDS)})
