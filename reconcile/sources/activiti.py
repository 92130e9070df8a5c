"""The activiti profile: the system state and the workflow catalog read from a workflow engine's own
tables (`ACT_*`, shared by Activiti 5/6/7, Flowable 6 and Camunda 7), read-only, on any SQLAlchemy database.

What is read, and what it means:
- catalog: one version per process definition (`ACT_RE_PROCDEF` KEY_ = procedure, VERSION_ = version),
  its BPMN the process with id KEY_ in the deployment's resource in `ACT_GE_BYTEARRAY` (DEPLOYMENT_ID_,
  NAME_ = RESOURCE_NAME_; one resource may hold several processes), `valid_from` the deployment's
  DEPLOY_TIME_; working days (and the field) from an optional sidecar folder: `<KEY>.yaml` for every
  version, `<KEY>.v<N>.yaml` for engine versions N and later (the latest N at or below a version wins).
  A definition whose resource is missing or that the importer cannot read is left out with a warning
  naming it; its dossiers are `unknown_version`, with that reason. Tenants (TENANT_ID_): `tenant`
  reads one tenant's definitions and instances (and the shared definitions, with no tenant); a key
  deployed under several tenants is read as one procedure per tenant, `KEY@TENANT`.
- dossiers: top-level process instances (not started by a call activity: SUPER_EXEC_ /
  SUPER_PROCESS_INSTANCE_ID_ empty, where the engine has them); BUSINESS_KEY_ is the dossier code,
  PROC_DEF_ID_ gives workflow_key and workflow_version (an id missing from ACT_RE_PROCDEF gives
  neither: unknown_version, with that reason). Running ones are the process-instance rows of
  `ACT_RU_EXECUTION` (ID_ = PROC_INST_ID_), ended ones the `ACT_HI_PROCINST` rows with an END_TIME_.
  Several instances with one business key are one dossier restarted: the running one is the dossier
  (else the last one started), the others its history; received_at is the first one's START_TIME_.
- where a dossier sits: every active execution's current activity (`ACT_RU_EXECUTION` ACT_ID_,
  IS_ACTIVE_), placed on a step of its version's BPMN (`_places`): a task is its own step, anything
  inside an embedded subprocess the subprocess's step, a catch event or event-based gateway the step
  before it (else after it), and the executions of an instance started by a call activity the call
  activity's step; gateways, start, end and boundary events are no place. An activity the deployed
  BPMN lacks is a step of its own (not in the version: step_not_in_version). A user task
  (`ACT_RU_TASK` by EXECUTION_ID_) gives the assignee, CREATE_TIME_ (entered the step) and DUE_DATE_,
  its candidate group (`ACT_RU_IDENTITYLINK`, TYPE_ 'candidate') the unit; other waits entered when
  their open `ACT_HI_ACTINST` row started. Of several parallel places the dossier's current step is
  the one that needs attention first (not in its version, then no way to a final step, then no active
  staff in its unit, then an inactive assignee, then the earliest entered): every place is checked.
- statuses (STATUS_RULES): running -> in_progress; running and suspended (SUSPENSION_STATE_ 2) ->
  supplement_requested (a pause waiting on the applicant: still open, unlike `stopped`); running with
  every place on its version's first step -> received, on final steps -> finished (result ready, not
  handed over); ended without DELETE_REASON_ (ran to its end event) -> returned; deleted with a reason
  -> withdrawn if the reason says so (a canonical status name, or "rút hồ sơ"), rejected if it says
  "từ chối" or "rejected", else stopped. awaiting_payment is not visible in the engine (in_progress).
  received_at is START_TIME_ (`ACT_HI_PROCINST`), returned_at the END_TIME_ of an ended instance,
  finished_at the END_TIME_, or the time a running instance entered its final step. Process variables
  (`ACT_HI_VARINST`, else `ACT_RU_VARIABLE`) named like a dossier field (VARIABLE_FIELDS: applicant,
  due_at, ...) fill that field and win over the above.
- accounts: `ACT_ID_USER` users, one row per group in `ACT_ID_MEMBERSHIP` (the group is the unit); all
  active: an assignee who is no longer a user is reported as an inactive assignee. The identity tables
  are optional (Activiti 7 has none; LDAP and Keycloak set-ups leave them empty): without users there
  is no staff directory, and the audit skips the staff checks unless one is given (`--staff`).
- events: activity history (`ACT_HI_ACTINST`, else the task history `ACT_HI_TASKINST`) of every
  instance of a dossier, called instances included: each activity a token waited in (tasks, catch
  events, call activities; not gateways, start, end, boundary or throw events) is a move from the
  previous one (by its assignee; the first by the instance's START_USER_ID_), and an ended instance's
  last activity leads nowhere.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from lxml import etree

from reconcile.errors import BadInput
from reconcile.model import Status
from reconcile.sources.system import (
    BATCH_ROWS, DOSSIER_FIELDS, EVENT_FIELDS, NOTE_FIELDS, TASK_FIELDS, SystemData, _read_only, _text,
)
from reconcile.store import iter_rows
from reconcile.util.db import connect_engine, mask_url
from reconcile.util.inlists import chunks
from reconcile.util.normalize import fold, looks_like_code, normalize_code
from reconcile.workflow.bpmn import BPMN_NS, ImportedBpmn, load_sidecar, parse_bpmn
from reconcile.workflow.catalog import Catalog, WorkflowVersion, catalog_from_docs

# Tables the profile needs, and the columns it reads from each (upper case, as the engines document them).
REQUIRED: dict[str, tuple[str, ...]] = {
    "ACT_RE_PROCDEF": ("ID_", "KEY_", "VERSION_", "DEPLOYMENT_ID_", "RESOURCE_NAME_", "NAME_"),
    "ACT_RE_DEPLOYMENT": ("ID_", "DEPLOY_TIME_"),
    "ACT_GE_BYTEARRAY": ("DEPLOYMENT_ID_", "NAME_", "BYTES_"),
    "ACT_RU_EXECUTION": ("ID_", "PROC_INST_ID_", "BUSINESS_KEY_", "PROC_DEF_ID_", "SUSPENSION_STATE_", "ACT_ID_"),
    "ACT_RU_TASK": ("ID_", "EXECUTION_ID_", "PROC_INST_ID_", "PROC_DEF_ID_", "TASK_DEF_KEY_", "ASSIGNEE_",
                    "CREATE_TIME_", "DUE_DATE_"),
    "ACT_RU_IDENTITYLINK": ("TASK_ID_", "GROUP_ID_", "TYPE_"),
}
# Read where present: an engine may run with history off, or keep its users elsewhere.
OPTIONAL: dict[str, tuple[str, ...]] = {
    "ACT_ID_USER": ("ID_", "FIRST_", "LAST_"),
    "ACT_ID_MEMBERSHIP": ("USER_ID_", "GROUP_ID_"),
    "ACT_HI_PROCINST": ("PROC_INST_ID_", "BUSINESS_KEY_", "PROC_DEF_ID_", "START_TIME_", "END_TIME_",
                        "START_USER_ID_", "DELETE_REASON_"),
    "ACT_HI_TASKINST": ("ID_", "PROC_INST_ID_", "TASK_DEF_KEY_", "ASSIGNEE_", "START_TIME_", "END_TIME_"),
    "ACT_HI_ACTINST": ("ID_", "PROC_INST_ID_", "EXECUTION_ID_", "ACT_ID_", "ACT_TYPE_", "ASSIGNEE_", "START_TIME_",
                       "END_TIME_"),
    "ACT_HI_VARINST": ("PROC_INST_ID_", "NAME_", "TEXT_", "LONG_"),
    "ACT_RU_VARIABLE": ("PROC_INST_ID_", "NAME_", "TEXT_", "LONG_"),
}
# Columns read where the engine has them: the caller of an instance started by a call activity, whether
# an execution is active, and the tenant.
OPTIONAL_COLUMNS = {
    "ACT_RU_EXECUTION": ("SUPER_EXEC_", "IS_ACTIVE_", "TENANT_ID_"),
    "ACT_HI_PROCINST": ("SUPER_PROCESS_INSTANCE_ID_", "TENANT_ID_"),
    "ACT_RE_PROCDEF": ("TENANT_ID_",),
}
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
# Activity types a token passes through without waiting (engines name them differently: Activiti and
# Flowable by the element, `exclusiveGateway`, `endEvent`; Camunda 7 by behaviour, `noneEndEvent`,
# `boundaryTimer`, `startTimerEvent`): not moves of a dossier. Event-based gateways wait.
PASSING = re.compile(r"(?i)^(?!eventBasedGateway$).*Gateway$|^start|EndEvent$|^boundary|Throw|^multiInstanceBody$")
# BPMN elements a token waits in between steps: they belong to the step before them.
WAITS = frozenset({"intermediateCatchEvent", "eventBasedGateway"})


@dataclass(frozen=True, slots=True)
class _Table:
    """One engine table as this database spells it (PostgreSQL folds unquoted names to lower case);
    columns are looked up by their documented upper-case names."""

    name: str
    clause: sa.TableClause
    cols: dict[str, sa.ColumnClause[Any]]

    def __getitem__(self, column: str) -> sa.ColumnClause[Any]:
        return self.cols[column]

    def get(self, column: str) -> sa.ColumnClause[Any] | None:
        return self.cols.get(column)

    def top_level(self) -> sa.ColumnElement[bool]:
        """Not started by another process instance's call activity (when the table says)."""
        caller = CALLER.get(self.name)
        return self.cols[caller].is_(None) if caller in self.cols else sa.true()

    def tenant_is(self, tenant: str | None) -> sa.ColumnElement[bool]:
        """Rows of one tenant (None: every tenant); engines write no tenant as '' or NULL."""
        if tenant is None:
            return sa.true()
        return sa.func.coalesce(self.cols["TENANT_ID_"], "") == tenant


class _Schema:
    def __init__(self, conn: sa.Connection, where: str, schema: str | None) -> None:
        self.inspector = sa.inspect(conn)
        self.where = where
        self.schema = schema
        if schema is not None and schema not in self.inspector.get_schema_names():
            raise BadInput(f"{where}: --schema {schema}: no such schema. Schemas: "
                           f"{', '.join(self._schemas()) or '(none)'}.")
        self.actual = {n.upper(): n for n in self.inspector.get_table_names(schema=schema)}

    def _schemas(self) -> list[str]:
        hidden = {"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"}
        return sorted(s for s in self.inspector.get_schema_names() if s not in hidden)

    def table(self, name: str, columns: tuple[str, ...], required: bool = True) -> _Table | None:
        actual = self.actual.get(name)
        if actual is None:
            if not required:
                return None
            found = sorted(self.actual.values())
            shown = ", ".join(found[:40]) + (f" (and {len(found) - 40} more)" if len(found) > 40 else "")
            raise BadInput(f"{self.where}: table {name} does not exist{self._in_schema()}; the activiti profile needs "
                           f"it. Tables: {shown or '(none)'}.{self._elsewhere(name)} Hint: point --system at the "
                           "engine's database (the Activiti 5/6/7, Flowable 6 or Camunda 7 schema)"
                           f"{', and --schema at its schema' if len(self._schemas()) > 1 else ''}.")
        have = {c["name"].upper(): c["name"] for c in self.inspector.get_columns(actual, schema=self.schema)}
        missing = [c for c in columns if c not in have]
        if missing:
            raise BadInput(f"{self.where}: column {name}.{missing[0]} does not exist. Columns of {name}: "
                           f"{', '.join(have.values())}. Hint: the activiti profile reads the Activiti 5/6/7, "
                           "Flowable 6 and Camunda 7 schema.")
        read = columns + tuple(c for c in OPTIONAL_COLUMNS.get(name, ()) if c in have)
        clause = sa.table(actual, *[sa.column(have[c]) for c in read], schema=self.schema)
        return _Table(name, clause, {c: clause.c[have[c]] for c in read})

    def _in_schema(self) -> str:
        return f" in schema {self.schema}" if self.schema is not None else ""

    def _elsewhere(self, name: str) -> str:
        """The other schemas of a server database, and those that hold the table."""
        schemas = self._schemas()
        if len(schemas) <= 1:
            return ""
        holding = [s for s in schemas if s != self.schema
                   and name in {t.upper() for t in self.inspector.get_table_names(schema=s)}]
        return (f" Schemas here: {', '.join(schemas)}"
                + (f"; {name} is in {', '.join(holding)} (--schema {holding[0]})." if holding else "."))


class _Tables(dict[str, "_Table | None"]):
    def __getitem__(self, name: str) -> _Table:
        table = super().__getitem__(name)
        assert table is not None, name  # callers check optional tables with .get() first
        return table


@dataclass(frozen=True, slots=True)
class _Definition:
    """One ACT_RE_PROCDEF row as the catalog reads it."""

    procedure: str  # KEY_, or KEY_@TENANT_ID_ when the key is deployed under several tenants
    version: int
    places: dict[str, str | None] | None  # BPMN element id -> the step it belongs to (None: no place); None: unread
    problem: str | None = None  # why the catalog lacks this version


@dataclass(slots=True)
class _Place:
    """One place a running dossier sits at (see the module docstring)."""

    step: str | None
    assignee: str | None
    unit: str | None
    entered: Any
    due: Any
    task: bool


# ---------------------------------------------------------------------------------- the profile


def load_activiti_profile(url: str, sidecars: str | None = None, *, tenant: str | None = None,
                          schema: str | None = None) -> tuple[SystemData, Catalog]:
    """Check the engine's tables and read its catalog and staff now; stream instances and history later."""
    side = _load_sidecars(sidecars) if sidecars else {}
    engine = connect_engine(url, what="engine database", read_only=True)
    where = mask_url(str(engine.url))
    try:
        with _read_only(engine) as conn:
            found = _Schema(conn, where, schema)
            tables: dict[str, _Table | None] = {n: found.table(n, c) for n, c in REQUIRED.items()}
            tables.update({n: found.table(n, c, required=False) for n, c in OPTIONAL.items()})
            t = _Tables(tables)
            warnings = _check_tenant(conn, t, where, tenant)
            catalog, definitions = _catalog(conn, t, where, side, tenant)
            warnings += _business_key_warnings(conn, t, where, tenant)
            accounts, staff_place = _accounts(conn, t, where)
    except BaseException:
        engine.dispose()
        raise

    def dossier_batches() -> Iterator[pa.Table]:
        staff = _Staff(data.accounts)  # the engine's, or the --staff directory put in their place
        judge = _Judge(catalog, staff)
        with _read_only(engine) as conn:
            places = _running_places(conn, t, definitions, tenant)
            result = conn.execution_options(yield_per=BATCH_ROWS).execute(_instances(t, tenant))
            first = 1
            for part in result.partitions(BATCH_ROWS):
                yield _dossier_batch(part, places, definitions, judge, first)
                first += len(part)

    def event_batches() -> Iterator[pa.Table]:
        with _read_only(engine) as conn:
            yield from _event_batches(conn, t, tenant)

    history = "ACT_HI_ACTINST" if t.get("ACT_HI_ACTINST") else "ACT_HI_TASKINST"
    places = {"dossier": f"{where} ACT_RU_EXECUTION/ACT_HI_PROCINST", "account": staff_place,
              "events": f"{where} {history}"}
    data = SystemData(where, "activiti", accounts, dossier_batches, event_batches, writable=False, where=places,
                      warnings=warnings)
    return data, catalog


def _check_tenant(conn: sa.Connection, t: _Tables, where: str, tenant: str | None) -> list[str]:
    """`tenant` exists (and the tables know tenants); without one, a warning when there are several."""
    pd = t["ACT_RE_PROCDEF"]
    has_tenants = all(x.get("TENANT_ID_") is not None for x in (pd, t["ACT_RU_EXECUTION"], t.get("ACT_HI_PROCINST"))
                      if x is not None)
    if not has_tenants:
        if tenant is not None:
            raise BadInput(f"{where}: --tenant {tenant}: this engine's tables have no TENANT_ID_ column. "
                           "Hint: leave out --tenant.")
        return []
    tenants = sorted({str(v) for x in (pd, t["ACT_RU_EXECUTION"], t.get("ACT_HI_PROCINST")) if x is not None
                      for (v,) in conn.execute(sa.select(x["TENANT_ID_"]).distinct()) if v})
    if tenant is not None and tenant not in tenants:
        raise BadInput(f"{where}: --tenant {tenant}: no process definition or instance of that tenant. "
                       f"Tenants here: {', '.join(tenants) or '(none: no row has a TENANT_ID_)'}.")
    if tenant is None and len(tenants) > 1:
        return [f"{where}: the engine serves {len(tenants)} tenants ({', '.join(tenants)}); all are read, and a "
                "process key deployed under several tenants is one procedure per tenant, KEY@TENANT. Hint: "
                "--tenant ID audits one district."]
    return []


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


# ---------------------------------------------------------------------------------- the catalog


def _catalog(conn: sa.Connection, t: _Tables, where: str, side: dict[str, list[tuple[int, str, dict[str, Any]]]],
             tenant: str | None) -> tuple[Catalog, dict[str, _Definition]]:
    """One catalog version per process definition with its BPMN; identical redeploys are parsed once.
    A definition the catalog cannot take is a warning (once per distinct resource) and a _Definition
    with its problem; the catalog's warnings include the BPMN parser's."""
    pd, dep, ba = t["ACT_RE_PROCDEF"], t["ACT_RE_DEPLOYMENT"], t["ACT_GE_BYTEARRAY"]
    in_tenant = sa.or_(pd.tenant_is(tenant), pd.tenant_is("")) if tenant is not None else sa.true()
    tenant_col = pd.get("TENANT_ID_")
    owner = sa.func.coalesce(tenant_col, "") if tenant_col is not None else sa.literal("")
    owners: dict[str, set[str]] = {}
    for key, ten in conn.execute(sa.select(pd["KEY_"], owner).where(in_tenant).distinct()):
        owners.setdefault(str(key), set()).add(str(ten or ""))
    stmt = (
        sa.select(pd["ID_"].label("procdef"), pd["KEY_"].label("key"), pd["VERSION_"].label("version"),
                  owner.label("tenant"), pd["DEPLOYMENT_ID_"].label("deployment"),
                  pd["RESOURCE_NAME_"].label("resource"), dep["DEPLOY_TIME_"].label("deployed"),
                  ba["BYTES_"].label("bytes"))
        .select_from(pd.clause.outerjoin(dep.clause, dep["ID_"] == pd["DEPLOYMENT_ID_"])
                     .outerjoin(ba.clause, sa.and_(ba["DEPLOYMENT_ID_"] == pd["DEPLOYMENT_ID_"],
                                                   ba["NAME_"] == pd["RESOURCE_NAME_"])))
        .where(in_tenant)
        .order_by(pd["KEY_"], owner, pd["VERSION_"])
    )
    definitions: dict[str, _Definition] = {}
    warnings: list[str] = []
    parsed: dict[tuple[bytes, str | None, str], ImportedBpmn | str] = {}  # parse key -> import, or why not
    places: dict[tuple[bytes, str | None, str], dict[str, str | None]] = {}
    unreadable: dict[tuple[Any, ...], list[tuple[str, int]]] = {}  # first failure -> every definition failing so
    docs: list[tuple[dict[str, Any], str]] = []
    for r in conn.execute(stmt):
        key, version, ten = str(r.key), int(r.version), str(r.tenant or "")
        procedure = f"{key}@{ten}" if ten and len(owners.get(key, ())) > 1 else key
        name = f"ACT_RE_PROCDEF {r.procdef} ({procedure} version {version})"
        if r.bytes is None:
            problem = f"deployment {r.deployment} has no resource {r.resource!r} in ACT_GE_BYTEARRAY"
            definitions[str(r.procdef)] = _Definition(procedure, version, None, problem)
            warnings.append(f"{where}: {name}: {problem}; the version is left out of the catalog, so its open "
                            "dossiers are reported as unknown_version.")
            continue
        side_path, sidecar = _sidecar_for(side, key, version)
        data = bytes(r.bytes)
        pkey = (data, side_path, key)
        if pkey not in parsed:
            source = f"{where} ACT_GE_BYTEARRAY deployment {r.deployment} resource {r.resource}"
            parsed[pkey] = _import(data, source, procedure, version, key, sidecar, f"{where} {name}")
        imported = parsed[pkey]
        if isinstance(imported, str):
            definitions[str(r.procdef)] = _Definition(procedure, version, None, f"its BPMN cannot be read: {imported}")
            unreadable.setdefault((pkey, name, imported), []).append((procedure, version))
            continue
        if pkey not in places:
            places[pkey] = _places(data, key, {s["id"] for s in imported.doc["steps"]})
            warnings.extend(imported.warnings)
        definitions[str(r.procdef)] = _Definition(procedure, version, places[pkey])
        doc = dict(imported.doc, procedure=procedure, version=version)
        if r.deployed is not None:
            doc["valid_from"] = _text_time(r.deployed)[:10]
        docs.append((doc, f"{where} ACT_RE_PROCDEF {r.procdef}"))
    for (_, name, why), defs in unreadable.items():
        more = defs[1:]
        again = (f" (the same in {len(more)} more deployed versions of {more[0][0]}: "
                 f"{', '.join(str(v) for _, v in more)})" if more else "")
        warnings.append(f"{where}: {name}: its BPMN cannot be read, so the version is left out of the catalog and "
                        f"its open dossiers are reported as unknown_version{again}. Why: {why}")
    built = catalog_from_docs(docs)
    ids = {d: (v.procedure, v.version) for d, v in definitions.items()}
    warnings += _collapse(list(built.warnings), f"{where} ACT_RE_PROCDEF ", ids)
    return Catalog(built.versions, tuple(warnings)), definitions


def _import(data: bytes, source: str, procedure: str, version: int, key: str, sidecar: dict[str, Any] | None,
            where: str) -> ImportedBpmn | str:
    """The process KEY_ of a deployed resource as a checked catalog version, or why it cannot be one."""
    try:
        imported = parse_bpmn(data, source, procedure=procedure, version=version, process_id=key, sidecar=sidecar)
        catalog_from_docs([(dict(imported.doc), where)])  # the version's own checks (e.g. no final step)
    except BadInput as exc:
        return " ".join(exc.problems) if len(exc.problems) > 1 else str(exc)
    return imported


def _places(data: bytes, key: str, steps: set[str]) -> dict[str, str | None]:
    """BPMN element id -> the step a token there belongs to, for the process `key` (module docstring)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, recover=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:  # parse_bpmn read it; nothing to place if this parser cannot
        return {}
    process = next((p for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("id") == key), None)
    if process is None:
        return {}
    out: dict[str, str | None] = {el.get("id"): None for el in process.iter() if el.get("id")}
    incoming: dict[str, list[str]] = {}
    outgoing: dict[str, list[str]] = {}
    for el in process:
        if not isinstance(el.tag, str):
            continue
        node = el.get("id")
        if node in steps:
            for inner in el.iter():  # a task, or everything inside the subprocess that is the step
                if inner.get("id"):
                    out[inner.get("id")] = node
        elif etree.QName(el).localname == "sequenceFlow":
            src, dst = el.get("sourceRef"), el.get("targetRef")
            if src and dst:
                outgoing.setdefault(src, []).append(dst)
                incoming.setdefault(dst, []).append(src)
    for el in process:
        if isinstance(el.tag, str) and etree.QName(el).localname in WAITS and el.get("id") not in steps:
            node = el.get("id")
            out[node] = _nearest_step(node, incoming, steps) or _nearest_step(node, outgoing, steps)
    return out


def _nearest_step(start: str, edges: dict[str, list[str]], steps: set[str]) -> str | None:
    """The first step met from `start` along `edges` (breadth first, through gateways and events)."""
    seen, queue = {start}, deque(edges.get(start, ()))
    while queue:
        node = queue.popleft()
        if node in steps:
            return node
        if node not in seen:
            seen.add(node)
            queue.extend(edges.get(node, ()))
    return None


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


def _business_key_warnings(conn: sa.Connection, t: _Tables, where: str, tenant: str | None,
                           limit: int = 10) -> list[str]:
    """Process instances whose BUSINESS_KEY_ does not look like a dossier code (kept, with a warning)."""
    e, h = t["ACT_RU_EXECUTION"], t.get("ACT_HI_PROCINST")
    parts = [sa.select(sa.literal("ACT_RU_EXECUTION").label("tab"), e["ID_"].label("pid"),
                       e["BUSINESS_KEY_"].label("code"))
             .where(e["ID_"] == e["PROC_INST_ID_"], e.top_level(), e.tenant_is(tenant))]
    if h is not None:
        parts.append(sa.select(sa.literal("ACT_HI_PROCINST"), h["PROC_INST_ID_"], h["BUSINESS_KEY_"])
                     .where(h["END_TIME_"].is_not(None), h.top_level(), h.tenant_is(tenant)))
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


# ---------------------------------------------------------------------------------- staff


def _accounts(conn: sa.Connection, t: _Tables, where: str) -> tuple[pa.Table, str]:
    """Users with their groups, and where they were read (for messages)."""
    u, m = t.get("ACT_ID_USER"), t.get("ACT_ID_MEMBERSHIP")
    rows: Sequence[Any] = ()
    if u is not None:
        joined = u.clause.outerjoin(m.clause, m["USER_ID_"] == u["ID_"]) if m is not None else u.clause
        group = m["GROUP_ID_"] if m is not None else sa.null()
        rows = conn.execute(sa.select(u["ID_"], u["FIRST_"], u["LAST_"], group).select_from(joined)
                            .order_by(u["ID_"], group)).all()
    place = f"{where} ACT_ID_USER" if u is not None else f"{where} (no ACT_ID_USER table)"
    return pa.table({
        "account": _text([r[0] for r in rows]),
        "name": _text([" ".join(str(x) for x in (r[2], r[1]) if x) or None for r in rows]),
        "unit": _text([r[3] for r in rows]),
        "active": pa.array([True] * len(rows), pa.bool_()),
    }), place


class _Staff:
    """The staff directory as the audit's staff checks read it (none: those checks are skipped)."""

    def __init__(self, accounts: pa.Table) -> None:
        self.known = accounts.num_rows > 0
        rows = accounts.select(["account", "unit", "active"]).to_pylist()
        self.active = {r["account"] for r in rows if r["active"]}
        self.staffed = {r["unit"] for r in rows if r["active"] and r["unit"] is not None}


class _Judge:
    """Which of a dossier's parallel places needs attention first (the module docstring's order)."""

    def __init__(self, catalog: Catalog, staff: _Staff) -> None:
        self.catalog = catalog
        self.staff = staff
        self.good: dict[tuple[str, int], frozenset[str]] = {}

    def rank(self, place: _Place, version: WorkflowVersion | None) -> tuple[Any, ...]:
        step = version.step(place.step) if version is not None and place.step is not None else None
        if version is not None and (version.procedure, version.version) not in self.good:
            self.good[version.procedure, version.version] = version.reachable_final()
        unit = (step.unit if step is not None else None) or place.unit
        staff = self.staff
        good = self.good[version.procedure, version.version] if version is not None else frozenset()
        return (version is not None and step is None,
                step is not None and step.id not in good,
                staff.known and unit is not None and unit not in staff.staffed,
                staff.known and place.assignee is not None and place.assignee not in staff.active,
                _text_time(place.entered) if place.entered is not None else "",
                place.step or "")

    def pick(self, places: list[_Place], version: WorkflowVersion | None) -> _Place:
        return min(places, key=lambda p: tuple(not x if isinstance(x, bool) else x for x in self.rank(p, version)))


# ---------------------------------------------------------------------------------- where dossiers sit


def _running_places(conn: sa.Connection, t: _Tables, definitions: dict[str, _Definition], tenant: str | None
                    ) -> dict[str, list[_Place]]:
    """Top-level process instance -> the places it sits at (module docstring)."""
    e, tk, il, ai = t["ACT_RU_EXECUTION"], t["ACT_RU_TASK"], t["ACT_RU_IDENTITYLINK"], t.get("ACT_HI_ACTINST")
    active = e.get("IS_ACTIVE_")
    caller = e.get("SUPER_EXEC_")
    execs: dict[str, tuple[str, str | None, Any, bool, str | None]] = {}  # id -> pid, act, procdef, active, caller
    for r in iter_rows(conn, sa.select(e["ID_"], e["PROC_INST_ID_"], e["ACT_ID_"], e["PROC_DEF_ID_"],
                                       active if active is not None else sa.true(),
                                       caller if caller is not None else sa.null())
                       .where(e.tenant_is(tenant))):
        execs[str(r[0])] = (str(r[1]), None if r[2] is None else str(r[2]), r[3], bool(r[4]),
                            None if r[5] is None else str(r[5]))
    tasks: dict[str, list[Any]] = {}  # execution (else process instance) -> its tasks
    stmt = (sa.select(tk["EXECUTION_ID_"].label("exec"), tk["PROC_INST_ID_"].label("pid"),
                      tk["TASK_DEF_KEY_"].label("step"), tk["ASSIGNEE_"].label("assignee"),
                      tk["CREATE_TIME_"].label("entered"), tk["DUE_DATE_"].label("due"), il["GROUP_ID_"].label("unit"))
            .select_from(tk.clause.outerjoin(il.clause, sa.and_(il["TASK_ID_"] == tk["ID_"],
                                                                il["TYPE_"] == "candidate")))
            .where(tk["PROC_INST_ID_"].is_not(None))
            .order_by(tk["PROC_INST_ID_"], tk["CREATE_TIME_"], tk["ID_"], il["GROUP_ID_"]))
    seen_tasks: set[tuple[Any, ...]] = set()
    for r in iter_rows(conn, stmt):
        if (r.exec, r.pid, r.step, r.entered) in seen_tasks:
            continue  # the same task with another candidate group: the first group is its unit
        seen_tasks.add((r.exec, r.pid, r.step, r.entered))
        owner = str(r.exec) if r.exec is not None and str(r.exec) in execs else f"pid:{r.pid}"
        tasks.setdefault(owner, []).append(r)
    entered: dict[tuple[str, str], Any] = {}  # (execution, activity) -> when its open activity instance started
    if ai is not None:
        for ex, act, start in iter_rows(conn, sa.select(ai["EXECUTION_ID_"], ai["ACT_ID_"], ai["START_TIME_"])
                                        .where(ai["END_TIME_"].is_(None))):
            entered[str(ex), str(act)] = max(start, entered.get((str(ex), str(act)), start))

    callers = {pid: c for _, (pid, _, _, _, c) in execs.items() if c is not None}

    def anchor(pid: str, depth: int = 0) -> tuple[str, str | None]:
        """The top-level instance of `pid`, and the execution in it whose call activity started `pid`."""
        c = callers.get(pid)
        if c is None or c not in execs or depth > 50:
            return pid, None
        root, exec_id = anchor(execs[c][0], depth + 1)
        return root, exec_id if exec_id is not None else c

    out: dict[str, list[_Place]] = {}
    for exec_id, (pid, act, _, is_active, _) in execs.items():
        if act is None or not is_active:
            continue
        root, via = anchor(pid)
        at = execs[via] if via is not None else execs[exec_id]
        root_def = definitions.get(str(execs[root][2])) if root in execs else None
        where_act = at[1]
        if root_def is None or root_def.places is None:
            step: str | None = where_act
        else:
            step = root_def.places.get(where_act, where_act) if where_act is not None else None
        if step is None:
            continue  # a gateway, start, end or boundary event: no place
        own = tasks.get(exec_id, [])
        for task in own or [None]:
            start = task.entered if task is not None else entered.get(
                (via or exec_id, where_act or "")) or entered.get((exec_id, act))
            out.setdefault(root, []).append(_Place(step, task.assignee if task else None, task.unit if task else None,
                                                   start, task.due if task else None, task is not None))
    for owner, rows in tasks.items():  # tasks no execution row stands for: by their process instance
        if owner.startswith("pid:") and owner[4:] not in out:
            out[owner[4:]] = [_Place(r.step, r.assignee, r.unit, r.entered, r.due, True) for r in rows]
    for root, places in out.items():
        root_def = definitions.get(str(execs[root][2])) if root in execs else None
        if root_def is None or root_def.places is None and any(p.task for p in places):
            places[:] = [p for p in places if p.task] or places  # an unread definition: its tasks say most
        by_step: dict[str | None, _Place] = {}
        for p in places:  # one place per step: the one with a task, else the earliest entered
            best = by_step.get(p.step)
            if best is None or (p.task, -_order(p.entered)) > (best.task, -_order(best.entered)):
                by_step[p.step] = p
        places[:] = list(by_step.values())
    return out


def _order(v: Any) -> float:
    if v is None:
        return float("inf")
    text = _text_time(v)
    return datetime.fromisoformat(text[:19]).timestamp() if text[:4].isdigit() else float("inf")


def _instances(t: _Tables, tenant: str | None) -> sa.Select[Any]:
    """Dossiers: running top-level instances, and ended ones no other instance of the same business key
    supersedes (running, or started later); the dossier-field variables pivoted onto them."""
    e, h = t["ACT_RU_EXECUTION"], t.get("ACT_HI_PROCINST")
    start: Any = h["START_TIME_"] if h is not None else sa.null()
    first_start = None
    if h is not None:
        same = [sa.func.coalesce(h["TENANT_ID_"], "")] if h.get("TENANT_ID_") is not None else []
        first_start = (sa.select(h["BUSINESS_KEY_"].label("code"), *[c.label("tenant") for c in same],
                                 sa.func.min(h["START_TIME_"]).label("first"))
                       .where(h.top_level(), h.tenant_is(tenant), h["BUSINESS_KEY_"].is_not(None))
                       .group_by(h["BUSINESS_KEY_"], *same).subquery("f"))

    def first_of(code: Any, ten: Any) -> sa.ColumnElement[bool]:
        assert first_start is not None
        cond = first_start.c.code == code
        return sa.and_(cond, first_start.c.tenant == sa.func.coalesce(ten, "")) if "tenant" in first_start.c else cond

    running_from: Any = e.clause
    if h is not None:
        running_from = running_from.outerjoin(h.clause, h["PROC_INST_ID_"] == e["ID_"])
    received: Any = start
    if first_start is not None:
        running_from = running_from.outerjoin(first_start, first_of(e["BUSINESS_KEY_"], e.get("TENANT_ID_")))
        received = sa.func.coalesce(first_start.c.first, start)
    running = (sa.select(e["PROC_INST_ID_"].label("pid"), e["BUSINESS_KEY_"].label("code"),
                         e["PROC_DEF_ID_"].label("procdef"), e["SUSPENSION_STATE_"].label("suspension"),
                         received.label("started"), sa.null().label("ended"), sa.null().label("reason"))
               .select_from(running_from)
               .where(e["ID_"] == e["PROC_INST_ID_"], e.top_level(), e.tenant_is(tenant)))
    parts = [running]
    if h is not None and first_start is not None:
        e2, h2 = e.clause.alias("e2"), h.clause.alias("h2")

        def col(alias: Any, table: _Table, name: str) -> Any:
            return alias.c[table[name].name]

        def same_dossier(alias: Any, table: _Table) -> list[Any]:
            cond = [col(alias, table, "BUSINESS_KEY_") == h["BUSINESS_KEY_"]]
            caller = CALLER[table.name]
            if caller in table.cols:
                cond.append(col(alias, table, caller).is_(None))
            if table.get("TENANT_ID_") is not None and h.get("TENANT_ID_") is not None:
                cond.append(sa.func.coalesce(col(alias, table, "TENANT_ID_"), "")
                            == sa.func.coalesce(h["TENANT_ID_"], ""))
            return cond

        still_running = sa.exists().where(col(e2, e, "ID_") == col(e2, e, "PROC_INST_ID_"), *same_dossier(e2, e))
        later = sa.exists().where(*same_dossier(h2, h), col(h2, h, "END_TIME_").is_not(None), sa.or_(
            col(h2, h, "START_TIME_") > h["START_TIME_"],
            sa.and_(col(h2, h, "START_TIME_") == h["START_TIME_"], col(h2, h, "PROC_INST_ID_") > h["PROC_INST_ID_"])))
        ended_from = h.clause.outerjoin(first_start, first_of(h["BUSINESS_KEY_"], h.get("TENANT_ID_")))
        parts.append(sa.select(h["PROC_INST_ID_"], h["BUSINESS_KEY_"], h["PROC_DEF_ID_"], sa.null(),
                               sa.func.coalesce(first_start.c.first, h["START_TIME_"]), h["END_TIME_"],
                               h["DELETE_REASON_"])
                     .select_from(ended_from)
                     .where(h["END_TIME_"].is_not(None), h.top_level(), h.tenant_is(tenant), ~still_running, ~later))
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


def _status(row: Any, places: list[_Place], version: WorkflowVersion | None) -> tuple[Status, str]:
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
    named = {p.step for p in places if p.step is not None}
    if version is not None and named and all(p.step is not None for p in places):
        if all((s := version.step(x)) is not None and s.final for x in named):
            return STATUS_RULES["final step"], "running"
        if named <= {s.id for s in version.starts()}:  # waiting at an entry (several starts: any of them)
            return STATUS_RULES["first step"], "running"
    return STATUS_RULES["running"], "running"


def _dossier_batch(part: Sequence[Any], places: dict[str, list[_Place]], definitions: dict[str, _Definition],
                   judge: _Judge, first: int) -> pa.Table:
    """Column-wise: variables and times are converted by Arrow; Python decides status and place per instance."""
    n = len(part)
    column = {k: [r[i] for r in part] for i, k in enumerate(part[0]._fields)}
    out: dict[str, pa.Array] = {f: pa.nulls(n, pa.string()) for f in DOSSIER_FIELDS + TASK_FIELDS[1:] + NOTE_FIELDS}
    for f in VARIABLE_FIELDS:
        if f"v_{f}" in column:
            out[f] = _variable(column[f"v_{f}"], column[f"l_{f}"], f in DATE_FIELDS)
    per_row: dict[str, list[Any]] = {f: [None] * n for f in ("status", "status_raw", "workflow_key", "workflow_version",
                                                               "version_problem", "final_entered", *TASK_FIELDS[1:])}
    for i, row in enumerate(part):
        found = definitions.get(str(row.procdef)) if row.procdef is not None else None
        key, version = (found.procedure, found.version) if found is not None else (None, None)
        wf = judge.catalog.get(found.procedure, found.version) if found is not None else None
        here = places.get(str(row.pid), []) if row.ended is None else []
        status, raw = _status(row, here, wf)
        per_row["status"][i], per_row["status_raw"][i] = status.value, raw
        per_row["workflow_key"][i], per_row["workflow_version"][i] = key, version
        if row.procdef is not None and found is None:
            per_row["version_problem"][i] = f"process definition {row.procdef} is not in ACT_RE_PROCDEF"
        elif found is not None:
            per_row["version_problem"][i] = found.problem
        if here:
            place = judge.pick(here, wf)
            per_row["current_step"][i], per_row["assignee"][i] = place.step, place.assignee
            per_row["unit"][i] = place.unit
            per_row["step_entered_at"][i], per_row["step_due_at"][i] = place.entered, place.due
            if status is Status.FINISHED:
                per_row["final_entered"][i] = place.entered
    ended = _times(column["ended"])
    out.update(
        dossier_code=_text(column["code"]), status=pa.array(per_row["status"], pa.string()),
        status_raw=pa.array(per_row["status_raw"], pa.string()), workflow_key=_text(per_row["workflow_key"]),
        workflow_version=_text(per_row["workflow_version"]), version_problem=_text(per_row["version_problem"]),
        current_step=_text(per_row["current_step"]), assignee=_text(per_row["assignee"]), unit=_text(per_row["unit"]),
        step_entered_at=_times(per_row["step_entered_at"]), step_due_at=_times(per_row["step_due_at"]),
        received_at=pc.coalesce(out["received_at"], _times(column["started"])),
        returned_at=pc.coalesce(out["returned_at"], ended),
        finished_at=pc.coalesce(out["finished_at"], ended, _times(per_row["final_entered"])),
    )
    out["source_row"] = pa.array(range(first, first + n), pa.int32())
    return pa.table(out)


# ---------------------------------------------------------------------------------- history


def _event_batches(conn: sa.Connection, t: _Tables, tenant: str | None) -> Iterator[pa.Table]:
    """EVENT_FIELDS tables: the moves of each dossier, over all its instances (module docstring)."""
    h = t.get("ACT_HI_PROCINST")
    ai, ti = t.get("ACT_HI_ACTINST"), t.get("ACT_HI_TASKINST")
    if h is None or (ai is None and ti is None):
        return
    x = ai if ai is not None else ti
    assert x is not None
    base = (sa.select(x["PROC_INST_ID_"].label("pid"), x["ID_"].label("tid"),
                      (x["ACT_ID_"] if ai is not None else x["TASK_DEF_KEY_"]).label("step"),
                      (x["ACT_TYPE_"] if ai is not None else sa.literal("userTask")).label("kind"),
                      x["ASSIGNEE_"].label("assignee"), x["START_TIME_"].label("started"),
                      x["END_TIME_"].label("ended"), h["BUSINESS_KEY_"].label("code"),
                      h["START_USER_ID_"].label("starter"), h["END_TIME_"].label("instance_ended"),
                      h["DELETE_REASON_"].label("reason"))
            .select_from(x.clause.join(h.clause, h["PROC_INST_ID_"] == x["PROC_INST_ID_"]))
            .where(h.tenant_is(tenant)))
    # Called instances: their moves are their top-level instance's (its dossier's), read first (few).
    called: dict[Any, list[Any]] = {}
    caller = h.get("SUPER_PROCESS_INSTANCE_ID_")
    if caller is not None:
        supers = {str(p): str(s) for p, s in conn.execute(
            sa.select(h["PROC_INST_ID_"], caller).where(caller.is_not(None), h.tenant_is(tenant)))}
        roots = {p: _root(p, supers) for p in supers}
        keys: dict[str, Any] = {}
        for chunk in chunks(sorted(set(roots.values()))):
            keys.update({str(p): (c if c is not None else ("pid", str(p))) for p, c in conn.execute(
                sa.select(h["PROC_INST_ID_"], h["BUSINESS_KEY_"]).where(h["PROC_INST_ID_"].in_(chunk)))})
        for chunk in chunks(sorted(supers)):
            for r in conn.execute(base.where(h["PROC_INST_ID_"].in_(chunk))):
                called.setdefault(keys.get(roots[str(r.pid)], ("pid", roots[str(r.pid)])), []).append(r)
    out: list[tuple[Any, ...]] = []
    group: list[Any] = []
    group_key: Any = None
    stmt = base.where(h.top_level()).order_by(h["BUSINESS_KEY_"], h["PROC_INST_ID_"], x["START_TIME_"])
    for row in iter_rows(conn, stmt):
        key = row.code if row.code is not None else ("pid", str(row.pid))
        if group and key != group_key:
            out.extend(_moves(group, called.pop(group_key, [])))
            group = []
            if len(out) >= BATCH_ROWS:
                yield _events_table(out)
                out = []
        group_key = key
        group.append(row)
    if group:
        out.extend(_moves(group, called.pop(group_key, [])))
    if out:
        yield _events_table(out)


def _root(pid: str, supers: dict[str, str]) -> str:
    seen = {pid}
    while pid in supers and supers[pid] not in seen:
        pid = supers[pid]
        seen.add(pid)
    return pid



def _moves(rows: list[Any], called: Iterable[Any]) -> list[tuple[Any, ...]]:
    """The EVENT_FIELDS rows of one dossier: its instances' activities and called instances' in time order,
    and each ended top-level instance's end."""
    code = rows[0].code
    acts = sorted((r for r in [*rows, *called] if r.step is not None and not PASSING.search(str(r.kind or ""))),
                  key=lambda r: (_text_time(r.started), len(str(r.tid)), str(r.tid)))
    timeline: list[tuple[str, int, Any]] = [(_text_time(r.started), 0, r) for r in acts]
    ends: dict[str, Any] = {}
    for r in rows:
        if r.instance_ended is not None:
            ends.setdefault(str(r.pid), r)
    last_end: dict[str, Any] = {}
    for r in acts:
        if str(r.pid) in ends:
            last_end[str(r.pid)] = r.ended if r.ended is not None else ends[str(r.pid)].instance_ended
    timeline += [(_text_time(last_end[p]), 1, ends[p]) for p in ends if p in last_end]
    timeline.sort(key=lambda e: (e[0], e[1]))
    out: list[tuple[Any, ...]] = []
    step, account = None, None
    starters = {str(r.pid): r.starter for r in rows}
    for at, kind, r in timeline:
        if kind == 0:
            who = account if step is not None else starters.get(str(r.pid), r.starter)
            out.append((code, len(out) + 1, step, r.step, who, at, None))
            step, account = r.step, r.assignee
        else:
            out.append((code, len(out) + 1, step, None, account, at, r.reason or "completed"))
            step, account = None, None
    return out


def _events_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.table({f: _text([r[i] for r in rows]) for i, f in enumerate(EVENT_FIELDS)})
