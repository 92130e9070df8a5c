"""The demo district as a workflow-engine database (`reconcile simulate --system-schema activiti`).

The same dossiers as the vendor-shaped database (`reconcile.demo.simulate` calls `ActivitiSystem.add` with
exactly what it gives the vendor sink), written into the `ACT_*` tables of one engine (`--engine`:
Activiti 6, Activiti 7, Flowable 6 or Camunda 7, each with its own table and column set, the way that
engine fills them; `EngineRows`), on SQLite, PostgreSQL or MariaDB:
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
  Activiti 7 has no identity tables: its staff is written as `accounts.csv` beside the database;
- open dossiers are running instances (suspended while a supplement is requested); closed ones are
  historic instances, ended normally (result returned) or deleted with a reason (withdrawn, refused,
  stopped); dossier data the engine does not model (applicant, due date...) are process variables;
  history is kept at the engines' default level (process, activity and task instances, variables).
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import sqlalchemy as sa
import yaml

from reconcile.demo.district import (
    AS_OF, CLOSED, DUE_TIME, LAND_MAIN, LAND_RENEW, REJECTED, STOPPED, SUPPLEMENT, WITHDRAWN, Days,
    Dossier, DemoProcedure, DemoStep, SystemSink, DemoVersion,
)
from reconcile.errors import BadInput
from reconcile.util.db import connect_engine, mask_url

SQLITE_NAME = "activiti.sqlite"
SIDECARS = "sidecars"
STAFF_FILE = "accounts.csv"  # the staff of an engine without identity tables (Activiti 7)
MAIN_DEPLOYMENTS = 300  # deployments of the main land procedure over its three catalog versions
REDEPLOYS = {LAND_RENEW: 4}  # deployments per catalog version of other procedures (default 1)
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ACTIVITI = "http://activiti.org/bpmn"
# Delete reasons the vendor application gives when it ends an instance early (status code -> reason).
DELETE_REASONS = {WITHDRAWN: "Rút hồ sơ", REJECTED: "Từ chối tiếp nhận", STOPPED: "Dừng xử lý, trả lại hồ sơ"}

# ------------------------------------------------------------------------------ the engines' tables

# Column types, filled in per database the way each engine's create scripts type them.
ID, V, TXT, I, BI, T, B, BOOL = ("VARCHAR(64)", "VARCHAR(255)", "VARCHAR(4000)", "INTEGER", "BIGINT", "{timestamp}",
                                 "{blob}", "{boolean}")
Columns = tuple[tuple[str, str], ...]

# Activiti 6, the common ancestor: the tables the engine writes for deployed processes, running and
# historic instances and its identity service (a subset of its columns: those it fills for BPMN processes).
ACTIVITI6: dict[str, Columns] = {
    "ACT_GE_PROPERTY": (("NAME_", ID), ("VALUE_", "VARCHAR(300)"), ("REV_", I)),
    "ACT_GE_BYTEARRAY": (("ID_", ID), ("REV_", I), ("NAME_", V), ("DEPLOYMENT_ID_", ID), ("BYTES_", B),
                         ("GENERATED_", BOOL)),
    "ACT_RE_DEPLOYMENT": (("ID_", ID), ("NAME_", V), ("CATEGORY_", V), ("KEY_", V), ("TENANT_ID_", V),
                          ("DEPLOY_TIME_", T), ("ENGINE_VERSION_", V)),
    "ACT_RE_PROCDEF": (("ID_", ID), ("REV_", I), ("CATEGORY_", V), ("NAME_", V), ("KEY_", V), ("VERSION_", I),
                       ("DEPLOYMENT_ID_", ID), ("RESOURCE_NAME_", TXT), ("DGRM_RESOURCE_NAME_", TXT),
                       ("DESCRIPTION_", TXT), ("HAS_START_FORM_KEY_", BOOL), ("HAS_GRAPHICAL_NOTATION_", BOOL),
                       ("SUSPENSION_STATE_", I), ("TENANT_ID_", V), ("ENGINE_VERSION_", V)),
    "ACT_RU_EXECUTION": (("ID_", ID), ("REV_", I), ("PROC_INST_ID_", ID), ("BUSINESS_KEY_", V), ("PARENT_ID_", ID),
                         ("PROC_DEF_ID_", ID), ("SUPER_EXEC_", ID), ("ROOT_PROC_INST_ID_", ID), ("ACT_ID_", V),
                         ("IS_ACTIVE_", BOOL), ("IS_CONCURRENT_", BOOL), ("IS_SCOPE_", BOOL), ("IS_EVENT_SCOPE_", BOOL),
                         ("IS_MI_ROOT_", BOOL), ("SUSPENSION_STATE_", I), ("CACHED_ENT_STATE_", I), ("TENANT_ID_", V),
                         ("NAME_", V), ("START_TIME_", T), ("START_USER_ID_", V)),
    "ACT_RU_TASK": (("ID_", ID), ("REV_", I), ("EXECUTION_ID_", ID), ("PROC_INST_ID_", ID), ("PROC_DEF_ID_", ID),
                    ("NAME_", V), ("PARENT_TASK_ID_", ID), ("DESCRIPTION_", TXT), ("TASK_DEF_KEY_", V), ("OWNER_", V),
                    ("ASSIGNEE_", V), ("DELEGATION_", ID), ("PRIORITY_", I), ("CREATE_TIME_", T), ("DUE_DATE_", T),
                    ("CATEGORY_", V), ("SUSPENSION_STATE_", I), ("TENANT_ID_", V), ("FORM_KEY_", V),
                    ("CLAIM_TIME_", T)),
    "ACT_RU_IDENTITYLINK": (("ID_", ID), ("REV_", I), ("GROUP_ID_", V), ("TYPE_", V), ("USER_ID_", V),
                            ("TASK_ID_", ID), ("PROC_INST_ID_", ID), ("PROC_DEF_ID_", ID)),
    "ACT_RU_VARIABLE": (("ID_", ID), ("REV_", I), ("TYPE_", V), ("NAME_", V), ("EXECUTION_ID_", ID),
                        ("PROC_INST_ID_", ID), ("TASK_ID_", ID), ("BYTEARRAY_ID_", ID), ("LONG_", BI), ("TEXT_", TXT)),
    "ACT_RU_TIMER_JOB": (("ID_", ID), ("REV_", I), ("TYPE_", V), ("EXCLUSIVE_", BOOL), ("EXECUTION_ID_", ID),
                         ("PROCESS_INSTANCE_ID_", ID), ("PROC_DEF_ID_", ID), ("RETRIES_", I), ("DUEDATE_", T),
                         ("HANDLER_TYPE_", V), ("HANDLER_CFG_", TXT), ("TENANT_ID_", V)),
    "ACT_RU_EVENT_SUBSCR": (("ID_", ID), ("REV_", I), ("EVENT_TYPE_", V), ("EVENT_NAME_", V), ("EXECUTION_ID_", ID),
                            ("PROC_INST_ID_", ID), ("ACTIVITY_ID_", ID), ("CONFIGURATION_", V), ("CREATED_", T),
                            ("PROC_DEF_ID_", ID), ("TENANT_ID_", V)),
    "ACT_ID_USER": (("ID_", ID), ("REV_", I), ("FIRST_", V), ("LAST_", V), ("EMAIL_", V), ("PWD_", V),
                    ("PICTURE_ID_", ID)),
    "ACT_ID_GROUP": (("ID_", ID), ("REV_", I), ("NAME_", V), ("TYPE_", V)),
    "ACT_ID_MEMBERSHIP": (("USER_ID_", ID), ("GROUP_ID_", ID)),
    "ACT_HI_PROCINST": (("ID_", ID), ("PROC_INST_ID_", ID), ("BUSINESS_KEY_", V), ("PROC_DEF_ID_", ID),
                        ("START_TIME_", T), ("END_TIME_", T), ("DURATION_", BI), ("START_USER_ID_", V),
                        ("START_ACT_ID_", V), ("END_ACT_ID_", V), ("SUPER_PROCESS_INSTANCE_ID_", ID),
                        ("DELETE_REASON_", TXT), ("TENANT_ID_", V), ("NAME_", V)),
    "ACT_HI_ACTINST": (("ID_", ID), ("PROC_DEF_ID_", ID), ("PROC_INST_ID_", ID), ("EXECUTION_ID_", ID),
                       ("ACT_ID_", V), ("TASK_ID_", ID), ("CALL_PROC_INST_ID_", ID), ("ACT_NAME_", V),
                       ("ACT_TYPE_", V), ("ASSIGNEE_", V), ("START_TIME_", T), ("END_TIME_", T), ("DURATION_", BI),
                       ("DELETE_REASON_", TXT), ("TENANT_ID_", V)),
    "ACT_HI_TASKINST": (("ID_", ID), ("PROC_DEF_ID_", ID), ("TASK_DEF_KEY_", V), ("PROC_INST_ID_", ID),
                        ("EXECUTION_ID_", ID), ("NAME_", V), ("PARENT_TASK_ID_", ID), ("DESCRIPTION_", TXT),
                        ("OWNER_", V), ("ASSIGNEE_", V), ("START_TIME_", T), ("CLAIM_TIME_", T), ("END_TIME_", T),
                        ("DURATION_", BI), ("DELETE_REASON_", TXT), ("PRIORITY_", I), ("DUE_DATE_", T),
                        ("FORM_KEY_", V), ("CATEGORY_", V), ("TENANT_ID_", V)),
    "ACT_HI_VARINST": (("ID_", ID), ("PROC_INST_ID_", ID), ("EXECUTION_ID_", ID), ("TASK_ID_", ID), ("NAME_", V),
                       ("VAR_TYPE_", "VARCHAR(100)"), ("REV_", I), ("BYTEARRAY_ID_", ID), ("LONG_", BI),
                       ("TEXT_", TXT), ("CREATE_TIME_", T), ("LAST_UPDATED_TIME_", T)),
}


def _derive(base: dict[str, Columns], *, add: dict[str, Columns] | None = None,
            drop: dict[str, tuple[str, ...]] | None = None, without: tuple[str, ...] = ()) -> dict[str, Columns]:
    """Another engine's tables: `base` with columns added (at the end) or dropped, and tables left out."""
    out = {}
    for table, cols in base.items():
        if table in without:
            continue
        kept = tuple(c for c in cols if c[0] not in (drop or {}).get(table, ()))
        out[table] = kept + (add or {}).get(table, ())
    for table, cols in (add or {}).items():
        out.setdefault(table, cols)
    return out


SCOPE = (("SCOPE_ID_", V), ("SUB_SCOPE_ID_", V), ("SCOPE_TYPE_", V), ("SCOPE_DEFINITION_ID_", V))
# Activiti 7 dropped the identity service (users come from Spring Security, Keycloak or LDAP) and
# versions its applications.
ACTIVITI7 = _derive(ACTIVITI6, without=("ACT_ID_USER", "ACT_ID_GROUP", "ACT_ID_MEMBERSHIP"), add={
    "ACT_RE_DEPLOYMENT": (("VERSION_", I), ("PROJECT_RELEASE_VERSION_", V)),
    "ACT_RE_PROCDEF": (("APP_VERSION_", I),),
    "ACT_RU_EXECUTION": (("APP_VERSION_", I),),
    "ACT_RU_TASK": (("APP_VERSION_", I), ("BUSINESS_KEY_", V)),
})
# Flowable 6 shares the task, variable and identity-link services with its CMMN engine (SCOPE_* columns).
FLOWABLE6 = _derive(ACTIVITI6, add={
    "ACT_RE_DEPLOYMENT": (("DERIVED_FROM_", ID), ("DERIVED_FROM_ROOT_", ID), ("PARENT_DEPLOYMENT_ID_", V)),
    "ACT_RE_PROCDEF": (("DERIVED_FROM_", ID), ("DERIVED_FROM_ROOT_", ID), ("DERIVED_VERSION_", I)),
    "ACT_RU_EXECUTION": (("START_ACT_ID_", V), ("CALLBACK_ID_", V), ("CALLBACK_TYPE_", V), ("BUSINESS_STATUS_", V)),
    "ACT_RU_TASK": (("TASK_DEF_ID_", ID), *SCOPE, ("SUB_TASK_COUNT_", I)),
    "ACT_RU_IDENTITYLINK": SCOPE,
    "ACT_RU_VARIABLE": SCOPE[:3],
    "ACT_RU_TIMER_JOB": (("ELEMENT_ID_", V), ("ELEMENT_NAME_", V), *SCOPE, ("CREATE_TIME_", T)),
    "ACT_ID_USER": (("DISPLAY_NAME_", V), ("TENANT_ID_", V)),
    "ACT_HI_PROCINST": (("REV_", I), ("CALLBACK_ID_", V), ("CALLBACK_TYPE_", V), ("BUSINESS_STATUS_", V)),
    "ACT_HI_ACTINST": (("REV_", I), ("TRANSACTION_ORDER_", I)),
    "ACT_HI_TASKINST": (("REV_", I), ("TASK_DEF_ID_", ID), *SCOPE, ("LAST_UPDATED_TIME_", T)),
    "ACT_HI_VARINST": SCOPE[:3],
})
# Camunda 7 (forked from Activiti 5): jobs in one table, a state column on historic instances, tenants
# NULL rather than '', no identity links per process instance, root instance ids on history rows.
CAMUNDA7 = _derive(ACTIVITI6, without=("ACT_RU_TIMER_JOB",), drop={
    "ACT_RE_DEPLOYMENT": ("CATEGORY_", "KEY_", "ENGINE_VERSION_"),
    "ACT_RE_PROCDEF": ("DESCRIPTION_", "HAS_GRAPHICAL_NOTATION_", "ENGINE_VERSION_"),
    "ACT_RU_EXECUTION": ("IS_MI_ROOT_", "NAME_", "START_TIME_", "START_USER_ID_"),
    "ACT_RU_TASK": ("FORM_KEY_", "CLAIM_TIME_"),
    "ACT_RU_IDENTITYLINK": ("PROC_INST_ID_",),
    "ACT_RU_EVENT_SUBSCR": ("PROC_DEF_ID_",),
    "ACT_HI_PROCINST": ("NAME_",),
    "ACT_HI_TASKINST": ("CLAIM_TIME_", "FORM_KEY_", "CATEGORY_"),
    "ACT_HI_VARINST": ("LAST_UPDATED_TIME_",),
}, add={
    "ACT_GE_BYTEARRAY": (("TENANT_ID_", ID), ("TYPE_", I), ("CREATE_TIME_", T)),
    "ACT_RE_DEPLOYMENT": (("SOURCE_", V),),
    "ACT_RE_PROCDEF": (("VERSION_TAG_", ID), ("HISTORY_TTL_", I), ("STARTABLE_", BOOL)),
    "ACT_RU_EXECUTION": (("ACT_INST_ID_", ID), ("SEQUENCE_COUNTER_", BI)),
    "ACT_RU_TASK": (("LAST_UPDATED_", T), ("FOLLOW_UP_DATE_", T)),
    "ACT_RU_IDENTITYLINK": (("TENANT_ID_", ID),),
    "ACT_RU_JOB": (("ID_", ID), ("REV_", I), ("TYPE_", V), ("EXCLUSIVE_", BOOL), ("EXECUTION_ID_", ID),
                   ("PROCESS_INSTANCE_ID_", ID), ("PROCESS_DEF_ID_", ID), ("PROCESS_DEF_KEY_", V), ("RETRIES_", I),
                   ("DUEDATE_", T), ("HANDLER_TYPE_", V), ("HANDLER_CFG_", TXT), ("SUSPENSION_STATE_", I),
                   ("TENANT_ID_", ID)),
    "ACT_HI_PROCINST": (("PROC_DEF_KEY_", V), ("ROOT_PROC_INST_ID_", ID), ("STATE_", V)),
    "ACT_HI_ACTINST": (("PARENT_ACT_INST_ID_", ID), ("PROC_DEF_KEY_", V), ("ROOT_PROC_INST_ID_", ID),
                       ("ACT_INST_STATE_", I), ("SEQUENCE_COUNTER_", BI)),
    "ACT_HI_TASKINST": (("PROC_DEF_KEY_", V), ("ROOT_PROC_INST_ID_", ID), ("ACT_INST_ID_", ID)),
    "ACT_HI_VARINST": (("PROC_DEF_KEY_", V), ("PROC_DEF_ID_", ID), ("STATE_", "VARCHAR(20)")),
})


@dataclass(frozen=True, slots=True)
class EngineKind:
    """How one engine lays out its tables and fills them."""

    name: str
    label: str
    tables: dict[str, Columns]
    schema_version: str | None  # ACT_GE_PROPERTY schema.version (Camunda 7 keeps its own schema log)
    # Camunda 7: a process instance's own execution row stands at its activity while it has one path;
    # Activiti and Flowable give every path a child execution under the process instance.
    collapsed: bool = False
    no_tenant: str | None = ""  # TENANT_ID_ of rows without a tenant: '' (Activiti, Flowable), NULL (Camunda)
    timer_table: str = "ACT_RU_TIMER_JOB"
    activity_types: dict[str, str] = field(default_factory=dict)  # BPMN element -> ACT_TYPE_, where it differs

    @property
    def identity(self) -> bool:
        return "ACT_ID_USER" in self.tables


ENGINES = {e.name: e for e in (
    EngineKind("activiti6", "Activiti 6", ACTIVITI6, "6.0.0.4"),
    EngineKind("activiti7", "Activiti 7", ACTIVITI7, "7.1.0.0"),
    EngineKind("flowable6", "Flowable 6", FLOWABLE6, "6.8.0.0"),
    EngineKind("camunda7", "Camunda 7", CAMUNDA7, None, collapsed=True, no_tenant=None, timer_table="ACT_RU_JOB",
               activity_types={"endEvent": "noneEndEvent", "timerCatch": "intermediateTimer",
                               "messageCatch": "intermediateMessageCatch"}),
)}
ACTIVITY_TYPES = {"timerCatch": "intermediateCatchEvent", "messageCatch": "intermediateCatchEvent"}

# Keys and indexes as the engines create them (names from the Activiti 6 DDL), built once the rows are in.
KEYS = {"ACT_GE_PROPERTY": ("NAME_",), "ACT_ID_MEMBERSHIP": ("USER_ID_", "GROUP_ID_")}
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
    ("ACT_IDX_HI_ACT_INST_PROCINST", "ACT_HI_ACTINST", "PROC_INST_ID_", False),
    ("ACT_IDX_HI_ACT_INST_EXEC", "ACT_HI_ACTINST", "EXECUTION_ID_, ACT_ID_", False),
    ("ACT_IDX_HI_TASK_INST_PROCINST", "ACT_HI_TASKINST", "PROC_INST_ID_", False),
    ("ACT_IDX_HI_PROCVAR_PROC_INST", "ACT_HI_VARINST", "PROC_INST_ID_", False),
    ("ACT_IDX_HI_PROCVAR_NAME_TYPE", "ACT_HI_VARINST", "NAME_, VAR_TYPE_", False),
)


def create_tables(conn: sa.Connection, kind: EngineKind) -> None:
    """The engine's tables, typed as its create scripts type them on this database (no rows)."""
    dialect = conn.dialect.name
    types = {"blob": {"sqlite": "BLOB", "postgresql": "BYTEA"}.get(dialect, "LONGBLOB"),
             "timestamp": "DATETIME(3)" if dialect in ("mysql", "mariadb") else "TIMESTAMP",
             "boolean": "TINYINT" if dialect in ("mysql", "mariadb") else "BOOLEAN"}
    for table, cols in kind.tables.items():
        key = KEYS.get(table, ("ID_",))
        conn.exec_driver_sql(f"CREATE TABLE {table} (" + ", ".join(f"{c} {t.format(**types)}" for c, t in cols)
                             + f", PRIMARY KEY ({', '.join(key)}))")


def insert_rows(conn: sa.Connection, kind: EngineKind, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Rows into the engine's tables; a key the engine's table has no column for is left out."""
    for table, cols in kind.tables.items():
        batch = rows.get(table)
        if batch:
            names = [c for c, _ in cols]
            sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + c for c in names)})"
            conn.execute(sa.text(sql), [{c: r.get(c) for c in names} for r in batch])
            batch.clear()


def create_indexes(conn: sa.Connection, kind: EngineKind) -> None:
    for name, table, columns, unique in INDEXES:
        if table in kind.tables:
            conn.exec_driver_sql(f"CREATE {'UNIQUE ' if unique else ''}INDEX {name} ON {table} ({columns})")
    if conn.dialect.name == "postgresql":
        # planner statistics, as autovacuum keeps them on a live engine; these tables only: a bare
        # ANALYZE walks every table of the database and deadlocks with other sessions' DDL
        for table in kind.tables:
            conn.exec_driver_sql(f"ANALYZE {table}")


# ------------------------------------------------------------------------------ rows as an engine writes them


@dataclass(frozen=True, slots=True)
class Wait:
    """Where one path of a running instance waits: a user task (`task` given), a receive task, a
    timer or message catch event, or a call activity; `scope` is the embedded subprocess holding it."""

    act: str | None
    kind: str  # userTask, receiveTask, timerCatch, messageCatch, callActivity
    entered: str  # 'YYYY-MM-DD HH:MM:SS'
    task: Task | None = None
    scope: str | None = None
    due: str | None = None  # a timer's due time
    boundaries: tuple[str, ...] = ()  # boundary timer events attached to the activity, waiting with it


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    name: str | None
    assignee: str | None
    group: str | None
    due: str | None = None


class EngineRows:
    """The rows one engine writes for deployments, process instances, their executions, tasks and
    history (see EngineKind for how engines differ), collected per table for `insert_rows`."""

    def __init__(self, kind: EngineKind, sqlite: bool, first_id: int = 1) -> None:
        self.kind = kind
        self.sqlite = sqlite
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in kind.tables}
        self._next = first_id
        self.instances: dict[str, dict[str, Any]] = {}  # ACT_HI_PROCINST rows of this batch, by process instance

    def id(self) -> str:
        self._next += 1
        return str(self._next)

    def ts(self, text: str | None) -> Any:
        """A timestamp parameter: text on SQLite (as the engines' JDBC drivers store it), else a datetime."""
        return text if text is None or self.sqlite else datetime.fromisoformat(text)

    def tenant(self, tenant: str | None) -> str | None:
        return self.kind.no_tenant if tenant is None else tenant

    def add(self, table: str, **row: Any) -> None:
        if table in self.rows:
            self.rows[table].append(row)

    # ---------------------------------------------------------------- identity and deployments

    def staff(self, accounts: Iterable[tuple[str, str, str, int]]) -> None:
        """Active accounts as users with a membership of their unit's group (deactivated ones are deleted)."""
        accounts = list(accounts)
        for unit in sorted({unit for _a, _n, unit, _act in accounts}):
            self.add("ACT_ID_GROUP", ID_=unit, REV_=1, NAME_=unit, TYPE_="assignment")
        for account, name, unit, active in accounts:
            if active:
                family, _, given = name.partition(" ")
                self.add("ACT_ID_USER", ID_=account, REV_=1, FIRST_=given, LAST_=family, DISPLAY_NAME_=name)
                self.add("ACT_ID_MEMBERSHIP", USER_ID_=account, GROUP_ID_=unit)

    def deploy(self, deployment: str, name: str, at: str, resources: dict[str, bytes], tenant: str | None = None
               ) -> None:
        self.add("ACT_RE_DEPLOYMENT", ID_=deployment, NAME_=name, TENANT_ID_=self.tenant(tenant),
                 DEPLOY_TIME_=self.ts(at), SOURCE_="process application")
        for resource, data in resources.items():
            self.add("ACT_GE_BYTEARRAY", ID_=self.id(), REV_=1, NAME_=resource, DEPLOYMENT_ID_=deployment, BYTES_=data,
                     GENERATED_=False, TENANT_ID_=tenant, TYPE_=1, CREATE_TIME_=self.ts(at))

    def definition(self, procdef: str, key: str, version: int, deployment: str, resource: str, name: str,
                   tenant: str | None = None) -> None:
        self.add("ACT_RE_PROCDEF", ID_=procdef, REV_=1, CATEGORY_="http://www.activiti.org/processdef", NAME_=name,
                 KEY_=key, VERSION_=version, DEPLOYMENT_ID_=deployment, RESOURCE_NAME_=resource,
                 HAS_START_FORM_KEY_=False, HAS_GRAPHICAL_NOTATION_=False, SUSPENSION_STATE_=1,
                 TENANT_ID_=self.tenant(tenant), DERIVED_VERSION_=0, STARTABLE_=True)

    # ---------------------------------------------------------------- process instances

    def start(self, pid: str, code: str | None, procdef: str, key: str, at: str, *, starter: str | None = None,
              tenant: str | None = None, super_exec: str | None = None, super_pid: str | None = None,
              root: str | None = None, start_act: str = "start") -> None:
        """A process instance's history row (it ends with `end`) and its start event."""
        row = dict(ID_=pid, PROC_INST_ID_=pid, BUSINESS_KEY_=code, PROC_DEF_ID_=procdef, PROC_DEF_KEY_=key,
                   START_TIME_=self.ts(at), END_TIME_=None, START_USER_ID_=starter, START_ACT_ID_=start_act,
                   END_ACT_ID_=None, SUPER_PROCESS_INSTANCE_ID_=super_pid, ROOT_PROC_INST_ID_=root or pid,
                   DELETE_REASON_=None, TENANT_ID_=self.tenant(tenant), STATE_="ACTIVE", REV_=1,
                   _super_exec=super_exec)
        self.rows["ACT_HI_PROCINST"].append(row)
        self.instances[pid] = row
        self.activity(pid, pid, start_act, "startEvent", at, at)

    def end(self, pid: str, at: str, reason: str | None = None, end_act: str | None = "end") -> None:
        """The instance ran to `end_act` (reason None) or was deleted with a reason; its runtime rows go."""
        row = self.instances[pid]
        start = row["START_TIME_"]
        row.update(END_TIME_=self.ts(at), END_ACT_ID_=end_act if reason is None else None, DELETE_REASON_=reason,
                   STATE_="COMPLETED" if reason is None else "EXTERNALLY_TERMINATED",
                   DURATION_=_millis_between(start, at))
        if reason is None and end_act is not None:
            self.activity(pid, pid, end_act, "endEvent", at, at)

    def wait(self, pid: str, procdef: str, waits: list[Wait], *, code: str | None = None, tenant: str | None = None,
             suspended: bool = False, variables: dict[str, tuple[str, Any]] | None = None) -> list[str]:
        """The runtime rows of a running instance waiting at `waits` (one per parallel path), laid out as
        the engine lays out its execution tree; returns the execution id of each wait."""
        hi = self.instances[pid]
        common = dict(PROC_INST_ID_=pid, PROC_DEF_ID_=procdef, ROOT_PROC_INST_ID_=hi["ROOT_PROC_INST_ID_"],
                      SUSPENSION_STATE_=2 if suspended else 1, TENANT_ID_=self.tenant(tenant), REV_=1,
                      IS_EVENT_SCOPE_=False, IS_MI_ROOT_=False, CACHED_ENT_STATE_=0, IS_CONCURRENT_=False)
        instance = dict(common, ID_=pid, BUSINESS_KEY_=code, PARENT_ID_=None, SUPER_EXEC_=hi["_super_exec"],
                        ACT_ID_=None, IS_ACTIVE_=True, IS_SCOPE_=True, START_TIME_=hi["START_TIME_"],
                        START_USER_ID_=hi["START_USER_ID_"])
        children: list[dict[str, Any]] = []

        def child(parent: str, act: str | None, active: bool, scope: bool, concurrent: bool = False,
                  at: str | None = None) -> str:
            exec_id = self.id()
            children.append(dict(common, ID_=exec_id, PARENT_ID_=parent, ACT_ID_=act, IS_ACTIVE_=active,
                                 IS_SCOPE_=scope, IS_CONCURRENT_=concurrent, START_TIME_=self.ts(at)))
            return exec_id

        out: list[str] = []
        one_path = len(waits) == 1
        if self.kind.collapsed:
            # Camunda 7: the instance's own row stands at its one activity; several paths are concurrent
            # child executions; an embedded subprocess, or an activity with boundary events, is a scope
            # execution of its own standing at the activity.
            def scoped(w: Wait) -> bool:
                return w.scope is not None or bool(w.boundaries)

            if one_path and not scoped(waits[0]):
                instance["ACT_ID_"] = waits[0].act
                out.append(pid)
            else:
                instance.update(IS_ACTIVE_=False, ACT_ID_=(waits[0].scope or waits[0].act) if one_path else None)
                for w in waits:
                    parent = pid
                    if not one_path:
                        parent = child(pid, w.scope or w.act, not scoped(w), False, True, w.entered)
                        if not scoped(w):
                            out.append(parent)
                            continue
                    out.append(child(parent, w.act, True, True, at=w.entered))
            timers = [(exec_id, w.due) for w, exec_id in zip(waits, out) for _ in w.boundaries]
        else:
            # Activiti, Flowable: one child execution per path under the instance (or under the scope
            # execution of the embedded subprocess holding it), the instance's own row at no activity;
            # each boundary event waits in a child execution of the activity's.
            timers = []
            for w in waits:
                parent = pid
                if w.scope is not None:
                    parent = child(pid, w.scope, True, True, at=w.entered)
                exec_id = child(parent, w.act, True, False, at=w.entered)
                out.append(exec_id)
                timers += [(child(exec_id, b, True, False, at=w.entered), w.due) for b in w.boundaries]
        for exec_id, due in timers:
            self.add(self.kind.timer_table, ID_=self.id(), REV_=1, TYPE_="timer", EXCLUSIVE_=True,
                     EXECUTION_ID_=exec_id, PROCESS_INSTANCE_ID_=pid, PROC_DEF_ID_=procdef, PROCESS_DEF_ID_=procdef,
                     RETRIES_=3, DUEDATE_=self.ts(due), HANDLER_TYPE_="trigger-timer", SUSPENSION_STATE_=1,
                     TENANT_ID_=self.tenant(tenant))
        self.add("ACT_RU_EXECUTION", **instance)
        for row in children:
            self.add("ACT_RU_EXECUTION", **row)
        for w, exec_id in zip(waits, out):
            self._wait_rows(pid, procdef, w, exec_id, tenant, suspended)
        for name, (kind, value) in (variables or {}).items():
            long_ = _millis(value) if kind == "date" else None
            text = None if kind == "date" else value
            self.add("ACT_RU_VARIABLE", ID_=self.id(), REV_=1, TYPE_=kind, NAME_=name, EXECUTION_ID_=pid,
                     PROC_INST_ID_=pid, LONG_=long_, TEXT_=text)
        hi["STATE_"] = "SUSPENDED" if suspended else "ACTIVE"
        return out

    def _wait_rows(self, pid: str, procdef: str, w: Wait, exec_id: str, tenant: str | None, suspended: bool) -> None:
        if w.task is not None:
            t = w.task
            self.add("ACT_RU_TASK", ID_=t.id, REV_=1, EXECUTION_ID_=exec_id, PROC_INST_ID_=pid, PROC_DEF_ID_=procdef,
                     NAME_=t.name, TASK_DEF_KEY_=w.act, ASSIGNEE_=t.assignee, PRIORITY_=50,
                     CREATE_TIME_=self.ts(w.entered), DUE_DATE_=self.ts(t.due), SUSPENSION_STATE_=2 if suspended else 1,
                     TENANT_ID_=self.tenant(tenant))
            if t.group is not None:
                self.add("ACT_RU_IDENTITYLINK", ID_=self.id(), REV_=1, GROUP_ID_=t.group, TYPE_="candidate",
                         TASK_ID_=t.id, TENANT_ID_=tenant)
        if w.kind == "timerCatch":
            self.add(self.kind.timer_table, ID_=self.id(), REV_=1, TYPE_="timer", EXCLUSIVE_=True,
                     EXECUTION_ID_=exec_id, PROCESS_INSTANCE_ID_=pid, PROC_DEF_ID_=procdef, PROCESS_DEF_ID_=procdef,
                     RETRIES_=3,
                     DUEDATE_=self.ts(w.due), HANDLER_TYPE_="trigger-timer", HANDLER_CFG_=w.act, ELEMENT_ID_=w.act,
                     SUSPENSION_STATE_=1, TENANT_ID_=self.tenant(tenant))
        if w.kind == "messageCatch":
            self.add("ACT_RU_EVENT_SUBSCR", ID_=self.id(), REV_=1, EVENT_TYPE_="message", EVENT_NAME_=w.act,
                     EXECUTION_ID_=exec_id, PROC_INST_ID_=pid, ACTIVITY_ID_=w.act, CREATED_=self.ts(w.entered),
                     PROC_DEF_ID_=procdef, TENANT_ID_=self.tenant(tenant))

    # ---------------------------------------------------------------- history

    def activity(self, pid: str, exec_id: str, act: str, kind: str, start: str, end: str | None = None, *,
                 assignee: str | None = None, task: str | None = None, name: str | None = None,
                 called: str | None = None, reason: str | None = None) -> None:
        """An activity instance (ACT_HI_ACTINST), typed as the engine types it."""
        hi = self.instances[pid]
        types = self.kind.activity_types or ACTIVITY_TYPES
        self.add("ACT_HI_ACTINST", ID_=self.id(), REV_=1, PROC_DEF_ID_=hi["PROC_DEF_ID_"],
                 PROC_DEF_KEY_=hi["PROC_DEF_KEY_"], PROC_INST_ID_=pid, ROOT_PROC_INST_ID_=hi["ROOT_PROC_INST_ID_"],
                 EXECUTION_ID_=exec_id, ACT_ID_=act, TASK_ID_=task, CALL_PROC_INST_ID_=called, ACT_NAME_=name,
                 ACT_TYPE_=types.get(kind, ACTIVITY_TYPES.get(kind, kind)),
                 ASSIGNEE_=assignee, START_TIME_=self.ts(start), END_TIME_=self.ts(end),
                 DURATION_=None if end is None else _millis_between(start, end), DELETE_REASON_=reason,
                 TENANT_ID_=hi["TENANT_ID_"], ACT_INST_STATE_=0)

    def task_history(self, pid: str, exec_id: str, task_id: str, key: str, name: str | None, assignee: str | None,
                     start: str, end: str | None, reason: str | None = None) -> None:
        """A user task's history: its task instance and its activity instance."""
        hi = self.instances[pid]
        self.add("ACT_HI_TASKINST", ID_=task_id, REV_=1, PROC_DEF_ID_=hi["PROC_DEF_ID_"],
                 PROC_DEF_KEY_=hi["PROC_DEF_KEY_"], TASK_DEF_KEY_=key, PROC_INST_ID_=pid,
                 ROOT_PROC_INST_ID_=hi["ROOT_PROC_INST_ID_"], EXECUTION_ID_=exec_id, NAME_=name, ASSIGNEE_=assignee,
                 START_TIME_=self.ts(start), END_TIME_=self.ts(end),
                 DURATION_=None if end is None else _millis_between(start, end), DELETE_REASON_=reason, PRIORITY_=50,
                 TENANT_ID_=hi["TENANT_ID_"])
        self.activity(pid, exec_id, key, "userTask", start, end, assignee=assignee, task=task_id, name=name)

    def variable(self, pid: str, name: str, kind: str, value: Any) -> None:
        """A process variable's history row (running instances also get an ACT_RU_VARIABLE row in `wait`)."""
        long_ = _millis(value) if kind == "date" else None
        text = None if kind == "date" else value
        self.add("ACT_HI_VARINST", ID_=self.id(), PROC_INST_ID_=pid, EXECUTION_ID_=pid, NAME_=name, VAR_TYPE_=kind,
                 REV_=1, LONG_=long_, TEXT_=text, PROC_DEF_ID_=self.instances[pid]["PROC_DEF_ID_"],
                 STATE_="CREATED")

    def flush_into(self, conn: sa.Connection) -> None:
        for row in self.rows["ACT_HI_PROCINST"]:
            row.pop("_super_exec", None)
        insert_rows(conn, self.kind, self.rows)
        self.instances.clear()


def _millis(text: str) -> int:
    """A `date` variable's LONG_: milliseconds since the epoch (local time written as UTC)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _millis_between(start: Any, end: Any) -> int:
    a, b = (v if isinstance(v, datetime) else datetime.fromisoformat(str(v)) for v in (start, end))
    return int((b - a).total_seconds() * 1000)


def process_key(code: str) -> str:
    """The engine's process key for a procedure code (a BPMN id cannot start with a digit)."""
    return f"TTHC_{code}"


# ------------------------------------------------------------------------------ BPMN and sidecars


def bpmn_xml(key: str, name: str, steps: tuple[DemoStep, ...]) -> bytes:
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


def sidecar(p: DemoProcedure, v: DemoVersion) -> dict[str, Any]:
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


def plan_deployments(procs: tuple[DemoProcedure, ...], first_id: int = 1) -> list[Deployment]:
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


def write_sidecars(folder: Path, procs: tuple[DemoProcedure, ...], deployments: list[Deployment]) -> None:
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


def write_staff(path: Path, accounts: list[tuple[str, str, str, int]]) -> None:
    """The staff directory as an accounts.csv file (`audit --staff`), for an engine without identity tables."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("account", "name", "unit", "active"))
        out.writerows((a, n, u, int(bool(act))) for a, n, u, act in accounts)


# ------------------------------------------------------------------------------ the sink


class ActivitiSystem(SystemSink):
    """Writes dossiers as process instances of the planned deployments (see the module docstring)."""

    BATCH = 20_000

    def __init__(self, url: str, days: Days, accounts: list[tuple[str, str, str, int]],
                 procs: tuple[DemoProcedure, ...], engine: str = "activiti6") -> None:
        self.kind = ENGINES[engine]
        self.engine = connect_engine(url, what="engine database", create=True)
        existing = [t for t in sa.inspect(self.engine).get_table_names() if t.upper().startswith("ACT_")]
        if existing:
            self.engine.dispose()
            raise BadInput(f"{mask_url(url)}: already holds engine tables ({', '.join(sorted(existing)[:5])}...). "
                           "Hint: give an empty database or schema.")
        self.days = days
        self.procs = procs
        self.deployments = plan_deployments(procs)
        # Ids are numbered as the engine numbers them; a definition whose resource is missing gets one kept
        # aside per procedure, so that its id is the same on every engine.
        self._spare = {process_key(p.code): str(int(self.deployments[-1].id) + 1 + i) for i, p in enumerate(procs)}
        self.out = EngineRows(self.kind, self.engine.dialect.name == "sqlite",
                              int(self.deployments[-1].id) + len(procs) + 1)
        self._by_version: dict[tuple[str, int], list[Deployment]] = {}
        for dep in self.deployments:
            self._by_version.setdefault((dep.key, dep.logical), []).append(dep)
        self._broken: dict[str, Deployment] = {}
        self._names = {(p.code, s.id): s.name for p in procs for v in p.versions
                       for s in (v.deployed or ()) + v.steps}
        with self.engine.begin() as conn:
            create_tables(conn, self.kind)
        if self.kind.schema_version:
            self.out.add("ACT_GE_PROPERTY", NAME_="schema.version", VALUE_=self.kind.schema_version, REV_=1)
        self.out.staff(accounts)

    def _definition(self, d: Dossier, p: DemoProcedure) -> Deployment:
        key = process_key(p.code)
        if d.version > len(p.versions):  # a version the catalog lacks: its resource is missing
            if key not in self._broken:
                last = max(dep.version for dep in self.deployments if dep.key == key)
                dep_id = self._spare[key]
                at = datetime.combine(self.days.dates[d.recv], datetime.min.time())
                self._broken[key] = Deployment(dep_id, f"{key}:{last + 1}:{dep_id}", key, last + 1, 0, at,
                                               f"{p.folder}.bpmn20.xml", None)
            return self._broken[key]
        deps = self._by_version[key, d.version]
        received = datetime.fromisoformat(f"{self.days.iso[d.recv]} {d.recv_t}")
        i = bisect.bisect_right([dep.deployed_at for dep in deps], received) - 1
        return deps[max(i, 0)]

    def add(self, d: Dossier, p: DemoProcedure, events: list[tuple[Any, ...]]) -> None:
        iso, out = self.days.iso, self.out
        dep = self._definition(d, p)
        pid = out.id()
        is_open = d.status not in CLOSED
        out.start(pid, d.code, dep.procdef_id, dep.key, f"{iso[d.recv]} {d.recv_t}",
                  starter=events[0][4] if events else None)
        variables = {"procedure": ("string", p.code), "applicant": ("string", d.applicant),
                     "phone": ("string", d.phone), "address": ("string", d.address), "agency": ("string", p.agency),
                     "channel": ("string", "1"), "due_at": ("date", f"{iso[d.due]} {DUE_TIME}")}
        if d.fin is not None:
            variables["finished_at"] = ("date", f"{iso[d.fin]} {d.fin_t}")
        for name, (kind, value) in variables.items():
            out.variable(pid, name, kind, value)
        history = _task_history(events, d)
        task_ids = [out.id() for _ in history]  # in start order, as the engine numbers them
        exec_id = pid
        if is_open:
            current = task_ids[-1] if history and history[-1]["end"] is None else out.id()
            entered = f"{iso[d.entered]} {d.entered_t}"
            now = Task(current, self._names.get((p.code, d.step or "")), d.assignee, d.unit,
                       f"{iso[d.step_due]} {DUE_TIME}")
            (exec_id,) = out.wait(pid, dep.procdef_id, [Wait(d.step, "userTask", entered, now)], code=d.code,
                                  suspended=d.status == SUPPLEMENT, variables=variables)
        for past, task_id in zip(history, task_ids):
            out.task_history(pid, exec_id, task_id, past["key"], self._names.get((p.code, past["key"])),
                             past["assignee"], past["start"], past["end"], past["reason"])
        if not is_open:
            out.end(pid, f"{iso[d.ret]} {d.ret_t}", DELETE_REASONS.get(d.status))
        if len(out.rows["ACT_HI_PROCINST"]) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        with self.engine.begin() as conn:
            self.out.flush_into(conn)

    def close(self) -> None:
        out = self.out
        for dep in self.deployments + sorted(self._broken.values(), key=lambda x: x.key):
            at = str(dep.deployed_at)
            out.deploy(dep.id, dep.resource, at, {dep.resource: dep.xml} if dep.xml is not None else {})
            out.definition(dep.procdef_id, dep.key, dep.version, dep.id, dep.resource,
                           next(p.name for p in self.procs if process_key(p.code) == dep.key))
        try:
            self._flush()
            with self.engine.begin() as conn:
                create_indexes(conn, self.kind)
        finally:
            self.engine.dispose()


def _task_history(events: list[tuple[Any, ...]], d: Dossier) -> list[dict[str, Any]]:
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
