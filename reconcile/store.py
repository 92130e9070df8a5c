"""The working store: schema, connection, and each engine's fast bulk-load path."""

from __future__ import annotations

import io
import itertools
from contextlib import AbstractContextManager, contextmanager
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reconcile.errors import BadInput
from reconcile.util.db import connect_engine, mask_url, normalize_url, parse_url

SCHEMA_VERSION = 13  # 2: wf_state and work_day (workflow census); 3: change_batch, change, batch_outcome (apply/undo);
# 4: migration_step, and wf_state's migrates_to_* columns (superseded_version; added to older stores by ALTER TABLE);
# 5: stats_group (the statistics of each run's own period); 6: no indexes in a DuckDB store (dropped from older ones);
# 7: dossier.fingerprint nullable (closed dossiers get none); 8: plan_file, plan_action (the plans `reconcile plan`
# wrote); 9: dossier.version_problem (why the system's workflow version cannot be read; added to older stores by
# ALTER TABLE); 10: wf_step.may_end (a step after which the procedure may end; added likewise); 11: indexes by row
# on MariaDB stores (_MARIADB_INDEXES); 12: notice_batch, notice (what `reconcile notify`
# listed for sending; new tables); 13: repeated_code (filled for older runs on upgrade),
# reconciliation.differs (added by ALTER TABLE)
DEFAULT_STORE = "reconcile.duckdb"

metadata = sa.MetaData()

CODE = sa.String(80)
NAME = sa.String(255)
KEY = sa.String(120)


# Exact (binary) comparison of codes and names on MariaDB, whatever the database's default collation.
TABLE_OPTS = {f"{d}_{k}": v for d in ("mysql", "mariadb")
               for k, v in (("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))}


def _table(name: str, *columns: Any) -> sa.Table:
    return sa.Table(name, metadata, *columns, **TABLE_OPTS)


def _run_id() -> sa.Column[Any]:
    return sa.Column("run_id", sa.Integer, nullable=False)


meta_table = _table(
    "store_meta",
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

audit_run = _table(
    "audit_run",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("tool_version", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),  # JSON: files and URLs (password hidden), fingerprints
    sa.Column("settings", sa.Text, nullable=False),  # JSON
    sa.Column("periods", sa.Text, nullable=False),  # JSON: register books and the periods they cover
    sa.Column("register_entries", sa.Integer, nullable=False),
    sa.Column("system_dossiers", sa.Integer, nullable=False),
)

register_entry = _table(
    "register_entry",
    _run_id(),
    sa.Column("entry_id", sa.Integer, nullable=False),
    sa.Column("source_file", NAME, nullable=False),
    sa.Column("sheet", NAME),
    sa.Column("row_no", sa.Integer, nullable=False),
    sa.Column("book", NAME, nullable=False),
    sa.Column("stt", sa.Integer),
    sa.Column("stt_raw", KEY),
    sa.Column("code_raw", NAME),
    sa.Column("dossier_code", CODE),
    sa.Column("code_ok", sa.Boolean, nullable=False),
    sa.Column("procedure", sa.Text),
    sa.Column("quantity", KEY),
    sa.Column("applicant", NAME),
    sa.Column("applicant_key", NAME),
    sa.Column("address", sa.Text),
    sa.Column("agency", NAME),
    sa.Column("received_raw", KEY),
    sa.Column("received_at", sa.Date),
    sa.Column("due_raw", KEY),
    sa.Column("due_at", sa.Date),
    sa.Column("transferred_raw", KEY),
    sa.Column("transferred_at", sa.Date),
    sa.Column("returned_raw", KEY),
    sa.Column("returned_at", sa.Date),
    sa.Column("signed", NAME),
    sa.Column("note", sa.Text),
    sa.Column("outcome", sa.String(16), nullable=False),
)

# Comparison keys of the register's repeated names (procedures, agencies), one row per distinct value:
# a few dozen rows instead of a copy of every long name on every entry.
text_key = _table(
    "text_key",
    _run_id(),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
)

register_book = _table(
    "register_book",
    _run_id(),
    sa.Column("book", NAME, nullable=False),
    sa.Column("period_from", sa.Date, nullable=False),
    sa.Column("period_to", sa.Date, nullable=False),
    sa.Column("entries", sa.Integer, nullable=False),
)

dossier = _table(
    "dossier",
    _run_id(),
    sa.Column("source_row", sa.Integer, nullable=False),
    sa.Column("code_raw", NAME),
    sa.Column("dossier_code", CODE),
    sa.Column("procedure", NAME),
    sa.Column("field", NAME),
    sa.Column("applicant", NAME),
    sa.Column("applicant_key", NAME),
    sa.Column("phone", KEY),
    sa.Column("address", sa.Text),
    sa.Column("agency", NAME),
    sa.Column("channel", KEY),
    sa.Column("received_at", sa.Date),
    sa.Column("due_at", sa.Date),
    sa.Column("due_at_revised", sa.Date),
    sa.Column("finished_at", sa.Date),
    sa.Column("returned_at", sa.Date),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("status_raw", KEY),
    sa.Column("workflow_key", NAME),
    sa.Column("workflow_version", sa.Integer),
    sa.Column("current_step", KEY),
    sa.Column("assignee", KEY),
    sa.Column("unit", KEY),
    sa.Column("step_entered_at", sa.Date),
    sa.Column("step_due_at", sa.Date),
    sa.Column("version_problem", sa.Text),  # why the system's workflow version cannot be read (activiti profile)
    sa.Column("fingerprint", sa.String(32)),  # md5 of the row as read; open dossiers only (what plans act on)
    sa.Column("problems", sa.Text),  # values that did not parse; a run with any is refused
)

step_event = _table(
    "step_event",
    _run_id(),
    sa.Column("dossier_code", CODE),
    sa.Column("seq", sa.Integer),
    sa.Column("from_step", KEY),
    sa.Column("to_step", KEY),
    sa.Column("account", KEY),
    sa.Column("at", sa.Date, quote=True),  # a reserved word in DuckDB
    sa.Column("action", NAME),
)

account = _table(
    "account",
    _run_id(),
    sa.Column("account", KEY, nullable=False),
    sa.Column("name", NAME),
    sa.Column("unit", KEY),
    sa.Column("active", sa.Boolean, nullable=False),
)

wf_version = _table(
    "wf_version",
    _run_id(),
    sa.Column("procedure", NAME, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("name_key", sa.Text, nullable=False),
    sa.Column("field", NAME),
    sa.Column("valid_from", sa.Date),
    sa.Column("path", NAME, nullable=False),
    sa.Column("is_latest", sa.Boolean, nullable=False),
)

wf_step = _table(
    "wf_step",
    _run_id(),
    sa.Column("procedure", NAME, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("step_id", KEY, nullable=False),
    sa.Column("name", NAME),
    sa.Column("unit", KEY),
    sa.Column("days", sa.Float, nullable=False),
    sa.Column("final", sa.Boolean, nullable=False),
    sa.Column("reaches_final", sa.Boolean, nullable=False),
    sa.Column("line", sa.Integer),
    sa.Column("may_end", sa.Boolean),  # null in runs of schema 8 and before (none had such steps)
)

wf_transition = _table(
    "wf_transition",
    _run_id(),
    sa.Column("procedure", NAME, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("from_step", KEY, nullable=False),
    sa.Column("to_step", KEY, nullable=False),
)

reconciliation = _table(
    "reconciliation",
    _run_id(),
    sa.Column("dossier_code", CODE, nullable=False),
    sa.Column("class", sa.String(32), nullable=False),
    sa.Column("entry_id", sa.Integer),
    sa.Column("source_row", sa.Integer),
    # The pair differs in a date, the applicant or the procedure (schema 13; null in older runs).
    sa.Column("differs", sa.Boolean),
)

# The codes on several rows of one side of a run (schema 13), found once by the audit: its classification,
# its duplicate_code findings and the register's statistics view read these few rows instead of each
# grouping every row of the side by code (at 1M dossiers on PostgreSQL, 0.65 s per grouping).
repeated_code = _table(
    "repeated_code",
    _run_id(),
    sa.Column("side", sa.String(8), nullable=False),  # register | system
    sa.Column("dossier_code", CODE, nullable=False),
    sa.Column("first_row", sa.Integer, nullable=False),  # register_entry.entry_id | dossier.source_row
    # The row the classification reads: on paper the first with a return date, else the first.
    sa.Column("pick_row", sa.Integer, nullable=False),
)

finding = _table(
    "finding",
    _run_id(),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("dossier_code", CODE),
    sa.Column("details", sa.Text, nullable=False),  # JSON
    sa.Column("evidence", sa.Text, nullable=False),  # JSON
)

# The statistics' grouped count of the run's own reporting period (see reconcile.stats.tables), stored by
# the audit: the system and register views of that period read these few hundred rows.
stats_group = _table(
    "stats_group",
    _run_id(),
    sa.Column("view", sa.String(16), nullable=False),
    sa.Column("period_from", sa.Date, nullable=False),
    sa.Column("period_to", sa.Date, nullable=False),
    sa.Column("field", NAME),
    sa.Column("key1", sa.Text),
    sa.Column("key2", NAME),
    sa.Column("status", sa.String(32)),
    sa.Column("channel", KEY),
    *[sa.Column(name, sa.SmallInteger, nullable=False)
      for name in ("received", "finished", "returned", "timeliness", "due", "stuck")],
    sa.Column("n", sa.BigInteger, nullable=False),
)

# Lookups by run and code; DuckDB scans columnar data faster than it maintains ART indexes on
# bulk loads, so these are created on server databases only.
wf_state = _table(
    # The workflow state of each open dossier, computed once per run: the findings of the workflow
    # kinds and the census both read it (so the census is one GROUP BY).
    "wf_state",
    _run_id(),
    sa.Column("source_row", sa.Integer, nullable=False),
    sa.Column("dossier_code", CODE),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("procedure", NAME),
    sa.Column("pinned_version", sa.Integer),
    sa.Column("version", sa.Integer),  # the pinned version, else the assumed one
    sa.Column("version_basis", sa.String(16), nullable=False),  # pinned | step_and_date | step | none
    sa.Column("version_known", sa.Boolean, nullable=False),  # the version is in the catalog
    sa.Column("step", KEY),
    sa.Column("step_known", sa.Boolean, nullable=False),  # the step is in that version
    sa.Column("reaches_final", sa.Boolean),  # null when the step is unknown
    sa.Column("step_unit", KEY),
    sa.Column("step_days", sa.Float),
    sa.Column("earlier_version_with_step", sa.Integer),
    sa.Column("later_version_with_step", sa.Integer),
    sa.Column("unit_staff", sa.Integer),  # active accounts in the step's unit
    sa.Column("assignee", KEY),
    sa.Column("assignee_known", sa.Boolean),
    sa.Column("assignee_active", sa.Boolean),
    sa.Column("since", sa.Date),  # last movement: latest event, else entering the step, else receipt
    sa.Column("idle_days", sa.Integer),  # working days from `since` to the audit date
    sa.Column("stalled_after", sa.Integer, nullable=False),  # working days
    # Where the run's migration rules move (procedure, version, step), from migration_step; null: nowhere.
    sa.Column("migrates_to_procedure", NAME),
    sa.Column("migrates_to_version", sa.Integer),
    sa.Column("migrates_to_step", KEY),
    sa.Column("migration_rules", sa.String(255)),  # rule ids of the hops, comma-separated
    sa.Column("flags", sa.Integer, nullable=False),  # see workflow.state.FLAG: the findings this dossier has
)
# Columns schema 4 added to wf_state (open_store adds them to a store made by an older version).
WF_STATE_V4 = ("migrates_to_procedure", "migrates_to_version", "migrates_to_step", "migration_rules")
migration_step = _table(
    # The (procedure, version, step) triples the run's migration rules (beside the catalog) move to a
    # later version or another procedure: the chain walked with no facts (conditional rules do not count;
    # an in-place rule counts when the chain goes on to a later version). A dossier open on one of them
    # runs on a superseded version (the superseded_version finding). No rules: no rows.
    "migration_step",
    _run_id(),
    sa.Column("procedure", NAME, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("step", KEY, nullable=False),
    sa.Column("to_procedure", NAME, nullable=False),
    sa.Column("to_version", sa.Integer, nullable=False),
    sa.Column("to_step", KEY, nullable=False),
    sa.Column("rules", sa.String(255), nullable=False),  # rule ids of the hops, comma-separated
    sa.Column("needs_confirmation", sa.Boolean, nullable=False),  # a hop is a guess nobody confirmed
)
work_day = _table(
    # Working-day numbers of the run's calendar: working days between two dates is a subtraction.
    "work_day",
    _run_id(),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),  # working days from the calendar's first day to `day`
)
# What `apply` and `undo` wrote (append-only: no code path updates or deletes these rows). The store and
# the target are different databases, so a batch is logged in two steps: change_batch + change rows before
# the target transaction commits, batch_outcome after it. A batch without an outcome was interrupted in
# between; the next apply/undo on that target settles it (committed or rolled_back) from the target's rows.
change_batch = _table(
    "change_batch",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(8), nullable=False),  # apply | undo
    sa.Column("run_id", sa.Integer, nullable=False),  # the audit run the plan was computed from
    sa.Column("plan", sa.Text),  # the plan file (apply)
    sa.Column("plan_sha256", sa.String(64)),
    sa.Column("undo_of", sa.Integer),  # undo: the batch it reverts
    sa.Column("target", sa.Text, nullable=False),  # JSON: profile, source (password hidden), mapping
    sa.Column("actor", NAME, nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("dossiers", sa.Integer, nullable=False),
    sa.Column("changes", sa.Integer, nullable=False),
)
change = _table(
    "change",
    sa.Column("batch_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("dossier_code", CODE, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # migrate | reassign | close (undo: the same)
    sa.Column("rule", NAME),
    sa.Column("table_name", NAME, nullable=False),  # the target table written (vendor name, or dossier)
    sa.Column("row_key", sa.Text, nullable=False),  # JSON: key column -> value of the row written
    sa.Column("column_name", NAME, nullable=False),
    sa.Column("field", sa.String(32), nullable=False),  # the canonical field
    sa.Column("before_value", sa.Text),  # JSON-encoded typed value (see apply.encode_value)
    sa.Column("after_value", sa.Text),
)
batch_outcome = _table(
    "batch_outcome",
    sa.Column("batch_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # committed | recovered | rolled_back
    sa.Column("finished_at", sa.String(32), nullable=False),
)
# The plan files `reconcile plan` wrote (append-only, like the change log): the sha256 of the file's exact
# bytes and its actions as apply reads them, checked as apply checks them, so that apply reads a file
# byte-identical to one written here from these rows instead of parsing and checking it again.
plan_file = _table(
    "plan_file",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    _run_id(),
    sa.Column("run_fingerprint", sa.String(64), nullable=False),
    sa.Column("checks", sa.Integer, nullable=False),  # the version of apply's plan checks the actions passed
    sa.Column("written_at", sa.String(32), nullable=False),
    sa.Column("actions", sa.Integer, nullable=False),
)
plan_action = _table(
    "plan_action",
    sa.Column("plan_id", sa.Integer, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),  # of the action's item in the file
    sa.Column("dossier_code", CODE, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("rule", NAME, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(32)),
    sa.Column("confirmed", sa.Boolean, nullable=False),
    sa.Column("set_values", sa.Text, nullable=False),  # JSON: [[field, apply.encode_value of its value], ...]
    sa.Column("reason_code", sa.String(64)),
    sa.Column("reason_args", sa.Text),  # JSON; null: none
)
# The notices `reconcile notify` listed for the SMS gateway (append-only): one row per (dossier, phone) and
# notice, so that the same notice is never listed twice. The phone is kept masked with a digest to match on:
# only the gateway CSV holds numbers in clear.
notice_batch = _table(
    "notice_batch",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("mode", sa.String(16), nullable=False),  # applied | overdue
    sa.Column("sources", sa.Text, nullable=False),  # JSON: the audit runs and apply batches read
    sa.Column("actor", NAME, nullable=False),
    sa.Column("listed_at", sa.String(32), nullable=False),
    sa.Column("messages", sa.Integer, nullable=False),
    sa.Column("skipped", sa.Integer, nullable=False),  # dossiers listed apart (no usable number, opted out)
    sa.Column("out", sa.Text, nullable=False),  # the gateway CSV written
)
notice = _table(
    "notice",
    sa.Column("batch_id", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    _run_id(),
    sa.Column("dossier_code", CODE, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # closed | moved | overdue
    sa.Column("notice_key", sa.String(255), nullable=False),  # what was told: the state and its date or step
    sa.Column("phone_masked", sa.String(32), nullable=False),
    sa.Column("phone_digest", sa.String(64), nullable=False),  # sha256 of the E.164 number
    sa.Column("segments", sa.Integer, nullable=False),
)
_INDEXES = [
    sa.Index("ix_register_entry_code", register_entry.c.run_id, register_entry.c.dossier_code),
    sa.Index("ix_dossier_code", dossier.c.run_id, dossier.c.dossier_code),
    sa.Index("ix_finding_code", finding.c.run_id, finding.c.dossier_code),
    sa.Index("ix_reconciliation_code", reconciliation.c.run_id, reconciliation.c.dossier_code),
    sa.Index("ix_wf_state_row", wf_state.c.run_id, wf_state.c.source_row),
    sa.Index("ix_work_day", work_day.c.run_id, work_day.c.day),
    sa.Index("ix_plan_file_sha256", plan_file.c.sha256),
    sa.Index("ix_plan_action_plan", plan_action.c.plan_id, plan_action.c.line),
]
# Joins by row, on MariaDB only (schema 11): it joins a derived table to a big one by index lookups or by a
# nested loop (measured at 100k dossiers: the reconciliation INSERT 5.5 s with them, over 170 s without).
# PostgreSQL hash-joins these with its statistics; building them would cost its audit seconds for nothing.
_MARIADB_INDEXES = [
    sa.Index("ix_register_entry_id", register_entry.c.run_id, register_entry.c.entry_id),
    sa.Index("ix_dossier_row", dossier.c.run_id, dossier.c.source_row),
    sa.Index("ix_reconciliation_row", reconciliation.c.run_id, reconciliation.c.source_row),
]
for _ix in _INDEXES + _MARIADB_INDEXES:  # created by open_store for server engines only: DuckDB's ART indexes
    _ix.table.indexes.discard(_ix)       # cost more than they save


def code_match(conn: Connection, left: Any, right: Any) -> list[Any]:
    """An extra join condition on the dossier code for joining a few of a run's rows by id, on a server
    store: it then finds them through its index by code instead of hashing every row of the run
    (MariaDB, without, joined the register to the reconciliation by block nested loops). None on
    DuckDB, which has no such index and pays for a string in its join key (0.1 s -> 0.4 s at 1M)."""
    return [] if conn.dialect.name == "duckdb" else [left == right]


def fill_repeated_codes(conn: Connection, run_id: int | None = None) -> None:
    """repeated_code's rows for run `run_id` (for every run when None: the upgrade to schema 13): each
    code on several register entries, or on several system records, of one run."""
    re_, d = register_entry, dossier
    first_with_return = sa.func.min(sa.case((re_.c.returned_at.is_not(None), re_.c.entry_id)))
    sides = (("register", re_, re_.c.entry_id, sa.func.coalesce(first_with_return, sa.func.min(re_.c.entry_id))),
             ("system", d, d.c.source_row, sa.func.min(d.c.source_row)))
    # Grouped in the order of the index by code, which is sorted already: PostgreSQL otherwise hashes every
    # code of the side (at 1M: 0.8 s a side, against under 0.15 s walking the index).
    with planner_settings(conn, enable_hashagg="off", enable_sort="off"):
        for side, t, row, pick in sides:
            runs = [] if run_id is None else [t.c.run_id == run_id]
            conn.execute(sa.insert(repeated_code).from_select(
                ["run_id", "side", "dossier_code", "first_row", "pick_row"],
                sa.select(t.c.run_id, sa.literal(side), t.c.dossier_code, sa.func.min(row), pick)
                .where(*runs, t.c.dossier_code.is_not(None))
                .group_by(t.c.run_id, t.c.dossier_code).having(sa.func.count() > 1)))


def repeated(run_id: int, side: str) -> Any:
    """SELECT dossier_code, first_row, pick_row: the run's codes on several rows of `side`."""
    rc = repeated_code
    return (sa.select(rc.c.dossier_code, rc.c.first_row, rc.c.pick_row)
            .where(rc.c.run_id == run_id, rc.c.side == side))


def begin_fill(conn: Connection) -> set[str]:
    """Before an audit fills a PostgreSQL store that holds no run yet: drop the indexes of the run's
    tables, which `filled` builds once each table is full (one sort per index instead of an index
    insertion per row). A store with runs keeps its indexes, whose rebuild would cost every earlier
    run's rows. The drop is part of the run's transaction: a run that fails leaves the indexes as
    they were. Returns the names dropped."""
    if conn.dialect.name != "postgresql" or conn.execute(sa.select(audit_run.c.id).limit(1)).first() is not None:
        return set()
    dropped = set()
    for ix in _INDEXES:
        if ix.table.name in _RUN_TABLES:
            conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{ix.name}"')
            dropped.add(str(ix.name))
    return dropped


_RUN_TABLES = ("register_entry", "dossier", "reconciliation", "finding", "wf_state", "work_day")


def filled(conn: Connection, dropped: set[str], *tables: sa.Table) -> None:
    """After a run's rows went into `tables`: build their indexes dropped by `begin_fill`, then fresh
    planner statistics (PostgreSQL). Autovacuum cannot see rows of a transaction still open, and without
    statistics the planner guesses a handful of rows per run and picks nested loops over 1M rows.
    (MariaDB: ANALYZE TABLE would commit the run's transaction; InnoDB estimates from its indexes.)"""
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        for ix in _INDEXES:
            if ix.table is table and ix.name in dropped:
                ix.create(conn)
                dropped.discard(str(ix.name))
        conn.exec_driver_sql(f'ANALYZE "{table.name}"')


@contextmanager
def planner_settings(conn: Connection, **settings: str) -> Iterator[None]:
    """PostgreSQL planner settings for the statements inside only: each is set local to the transaction
    and put back as it was on the way out. Other engines: nothing."""
    if conn.dialect.name != "postgresql":
        yield
        return
    before = {name: conn.exec_driver_sql("SELECT current_setting(%(n)s)", {"n": name}).scalar_one()
              for name in settings}
    for name, value in settings.items():
        conn.exec_driver_sql("SELECT set_config(%(n)s, %(v)s, true)", {"n": name, "v": value})
    try:
        yield
    finally:
        for name, value in before.items():
            conn.exec_driver_sql("SELECT set_config(%(n)s, %(v)s, true)", {"n": name, "v": value})


def few_groups(conn: Connection) -> AbstractContextManager[None]:
    """Statements inside group many rows into few groups (a few hundred): PostgreSQL is told not to
    sort for them. Its planner multiplies the grouped columns' distinct counts, expects as many groups
    as rows, and sorts a million rows to group them where a hash table of a few hundred entries does
    (measured at 1M: the two statistics groupings about half the time)."""
    return planner_settings(conn, enable_sort="off")


@dataclass
class Store:
    engine: Engine
    url: str
    created_file: Path | None = None  # the embedded store file this open created

    def discard_if_created(self) -> None:
        """After a failed first run, remove the store file it created: bad input leaves nothing behind."""
        self.engine.dispose()
        if self.created_file is not None:
            for p in (self.created_file, self.created_file.with_name(self.created_file.name + ".wal")):
                p.unlink(missing_ok=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def begin(self) -> Any:
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    def next_run_id(self, conn: Connection) -> int:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(audit_run.c.id), 0))).scalar_one()) + 1

    def latest_run_id(self, conn: Connection) -> int | None:
        return conn.execute(sa.select(sa.func.max(audit_run.c.id))).scalar_one_or_none()


def bulk_insert(conn: Connection, table: sa.Table, data: pa.Table) -> None:
    """Insert an Arrow table through the engine's fast path; columns are matched by name."""
    if data.num_rows == 0:
        return
    if conn.dialect.name != "duckdb":
        send_rows(conn, table, encode_rows(conn.dialect.name, table, data))
        return
    cols = [c for c in data.column_names if c in table.c]
    names = ", ".join(f'"{c}"' for c in cols)
    raw = conn.connection.dbapi_connection
    name = f"_load_{table.name}"
    raw.register(name, data.select(cols))
    try:
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM {name}')
    finally:
        raw.unregister(name)


@dataclass(frozen=True)
class Encoded:
    """Rows for a server store's table as its bulk path sends them: for PostgreSQL, CSV text for COPY;
    for MariaDB the Arrow table itself (turned into the driver's tuples 20,000 rows at a time as they
    are sent, so that no whole batch of Python objects is held)."""

    columns: list[str]
    csv: bytes | None = None
    data: pa.Table | None = None


def encode_rows(dialect: str, table: sa.Table, data: pa.Table) -> Encoded:
    """The rows of `data` (columns matched by name) encoded for a server store's bulk path. The CPU-bound
    half of a load, apart from the connection: serverload runs it a batch ahead in a worker thread."""
    cols = [c for c in data.column_names if c in table.c]
    data = data.select(cols)
    if dialect != "postgresql":
        return Encoded(cols, data=data)
    buf = io.BytesIO()
    pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return Encoded(cols, csv=buf.getvalue())


def send_rows(conn: Connection, table: sa.Table, rows: Encoded) -> None:
    """Send encode_rows' rows to the server: one COPY (PostgreSQL) or multi-row INSERTs (MariaDB)."""
    cursor = conn.connection.dbapi_connection.cursor()
    if rows.csv is not None:
        names = ", ".join(f'"{c}"' for c in rows.columns)
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN WITH (FORMAT csv)') as copy:
            copy.write(rows.csv)
        return
    # MariaDB (PyMySQL): multi-row INSERTs through the driver's executemany, straight to the driver column
    # by column: SQLAlchemy's work per row and per value (dicts, bind processors) cost more than the
    # driver's own. LOAD DATA LOCAL is not used: a client that allows it lets the server read any file
    # the client can.
    assert rows.data is not None
    quote = conn.dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in rows.columns)}) "
           f"VALUES ({', '.join(['%s'] * len(rows.columns))})")
    for batch in rows.data.to_batches(max_chunksize=20_000):
        cursor.executemany(sql, list(zip(*(col.to_pylist() for col in batch.columns))))


def insert_select(store: "Store", conn: Connection, table: sa.Table, select: Callable[[str], str], data: pa.Table,
                  run_id: int) -> int:
    """INSERT the rows of a workbench SELECT over an Arrow table (`select(name)` is the SQL reading
    `data` as table `name`); returns the number of rows. On a DuckDB store the SELECT runs in the
    store itself (no copy); elsewhere in a scratch DuckDB, then through the engine's bulk path."""
    if data.num_rows == 0:
        return 0
    if store.dialect == "duckdb":
        return _duckdb_insert(conn, table, select, data, run_id)
    from reconcile.util.scratch import select_arrow

    out = select_arrow(select("raw"), {"raw": data})
    out = out.append_column("run_id", pa.repeat(pa.scalar(run_id, pa.int32()), out.num_rows))
    bulk_insert(conn, table, out)
    return out.num_rows


def insert_stream(conn: Connection, table: sa.Table, select: Callable[[str], str], batches: Iterator[pa.Table],
                  run_id: int) -> int:
    """INSERT the rows of a workbench SELECT over a stream of Arrow tables, on a DuckDB store, as one
    statement (`select` must read its source once). One INSERT writes whole, compressed row groups;
    an INSERT per batch leaves partial ones that DuckDB rewrites when it checkpoints (measured on
    1M register rows: about 2.5 s more at close). Returns the number of rows."""
    first = next(batches, None)
    if first is None:
        return 0
    schema = first.schema
    failed: list[BaseException] = []

    def record_batches() -> Iterator[pa.RecordBatch]:
        try:
            for t in itertools.chain([first], batches):
                yield from _conform(t, schema).to_batches()
        except BaseException as exc:  # DuckDB reports it as its own error: keep it to raise as it was
            failed.append(exc)
            raise

    try:
        return _duckdb_insert(conn, table, select, pa.RecordBatchReader.from_batches(schema, record_batches()), run_id)
    except Exception:
        if failed:
            raise failed[0] from None
        raise


def _duckdb_insert(conn: Connection, table: sa.Table, select: Callable[[str], str],
                   source: pa.Table | pa.RecordBatchReader, run_id: int) -> int:
    """INSERT … SELECT in a DuckDB store over `source`, which DuckDB reads as `_arrow_raw` from this
    frame's local variables (a replacement scan). A registered view would do too, but one dropped
    inside the run's transaction keeps its Arrow data alive until commit: every batch would stay in
    memory for the whole run."""
    _arrow_raw = source  # noqa: F841 (read by DuckDB)
    duck = conn.connection.dbapi_connection  # the driver's connection: execute() sees this frame
    (n,), = duck.execute(f'INSERT INTO "{table.name}" BY NAME SELECT {int(run_id)} AS run_id, * '
                         f'FROM ({select("_arrow_raw")})').fetchall()
    return int(n)


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """`t` with `schema`'s column types: batches of one source may differ in dictionary encoding only."""
    if t.schema == schema:
        return t
    cols = []
    for f in schema:
        col = t.column(f.name)
        if col.type != f.type:
            col = pc.dictionary_encode(col) if pa.types.is_dictionary(f.type) else col.cast(f.type)
        cols.append(col)
    return pa.table(cols, schema=schema)


DUCKDB_MEMORY = "500MB"  # measured at 1M vs 1M dossiers: peak 0.94 GB in the same time as 600MB (1.04 GB)


def _tune_duckdb(engine: Engine) -> None:
    """DuckDB settings for bulk loads. Its memory is capped (RECONCILE_DUCKDB_MEMORY, default
    DUCKDB_MEMORY); beyond the cap it spills to a temporary folder next to the store."""
    limit = os.environ.get("RECONCILE_DUCKDB_MEMORY", "").strip() or DUCKDB_MEMORY
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", limit, re.IGNORECASE):
        raise BadInput(f"RECONCILE_DUCKDB_MEMORY={limit!r} is not a memory size. Expected e.g. 500MB or 2GB.")

    @sa.event.listens_for(engine, "connect")
    def _settings(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute(f"SET memory_limit = '{limit}'")
        dbapi_conn.execute("SET preserve_insertion_order = false")

    engine.dispose()  # connections made before the listener get the settings too


# Session settings of every connection to a server store (RECONCILE_STORE_SETTINGS overrides them, name=value
# comma-separated). A server's defaults are sized for many small transactions: PostgreSQL's 4 MB work_mem
# sends the audit's 1M-row hash joins and sorts to disk in batches, and its JIT compiles each big statement
# for longer than it runs. Values apply to this tool's sessions only, never to the server.
SERVER_SETTINGS: dict[str, dict[str, str]] = {
    "postgresql": {"work_mem": "256MB", "maintenance_work_mem": "512MB", "hash_mem_multiplier": "2",
                   "jit": "off", "temp_buffers": "64MB"},
    "mysql": {"sort_buffer_size": "64M", "join_buffer_size": "64M", "tmp_table_size": "256M",
              "max_heap_table_size": "256M"},
}
# Further settings an override may name (a closed list: names reach SQL text on MariaDB).
_MORE_SETTINGS = {
    "postgresql": ("max_parallel_workers_per_gather", "random_page_cost", "effective_cache_size",
                   "synchronous_commit", "enable_nestloop"),
    "mysql": ("join_cache_level", "optimizer_search_depth", "read_rnd_buffer_size", "bulk_insert_buffer_size"),
}
_SETTING_VALUE = re.compile(r"[A-Za-z0-9_.]{1,32}")
_MYSQL_SIZE = re.compile(r"(\d+)([KMG]?)", re.IGNORECASE)


def server_settings(dialect: str, override: str | None = None) -> dict[str, str]:
    """The session settings of a server store: SERVER_SETTINGS, with RECONCILE_STORE_SETTINGS's
    name=value pairs (or `override`) on top. A name this dialect does not know, or a value that is
    not a plain word or size, is bad input."""
    family = "mysql" if dialect in ("mysql", "mariadb") else dialect
    settings = dict(SERVER_SETTINGS.get(family, {}))
    text = os.environ.get("RECONCILE_STORE_SETTINGS", "") if override is None else override
    known = sorted({*settings, *_MORE_SETTINGS.get(family, ())})
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, eq, value = (x.strip() for x in item.partition("="))
        where = f"RECONCILE_STORE_SETTINGS: {item!r}"
        if not eq or name.lower() not in known:
            raise BadInput(f"{where} is not a {family} store setting. Hint: name=value, comma-separated, "
                           f"with a name among {', '.join(known)}.")
        if not _SETTING_VALUE.fullmatch(value) or (family == "mysql" and not _MYSQL_SIZE.fullmatch(value)):
            raise BadInput(f"{where}: the value is not a plain number or size. Hint: e.g. work_mem=128MB "
                           "(PostgreSQL) or sort_buffer_size=32M (MariaDB).")
        settings[name.lower()] = value
    return settings


def _tune_server(engine: Engine, settings: dict[str, str]) -> None:
    """Apply server_settings to each new connection of a server store."""
    dialect = engine.dialect.name

    @sa.event.listens_for(engine, "connect")
    def _settings(dbapi_conn: Any, _: Any) -> None:
        with dbapi_conn.cursor() as cur:
            for name, value in settings.items():
                if dialect == "postgresql":  # set_config binds both: nothing from the environment in SQL text
                    cur.execute("SELECT set_config(%s, %s, false)", (name, value))
                else:  # SET cannot bind a name: the name is from the closed list, the value a checked size
                    cur.execute(f"SET SESSION {name} = %s", (_mysql_bytes(value),))
        if dialect == "postgresql":
            dbapi_conn.commit()  # psycopg opened a transaction for set_config: leave the session idle

    engine.dispose()  # connections made before the listener get the settings too


def _mysql_bytes(value: str) -> int:
    number, unit = _MYSQL_SIZE.fullmatch(value).groups()  # type: ignore[union-attr]  # checked by server_settings
    return int(number) << {"": 0, "k": 10, "m": 20, "g": 30}[unit.lower()]


STORE_BACKENDS = ("duckdb", "postgresql", "mysql", "mariadb")
STORE_HINT = "the store is a local DuckDB file (default reconcile.duckdb) or a postgresql:// or mysql:// URL"


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open (and on first use create) the working store; checks the recorded schema version."""
    url = url or os.environ.get("RECONCILE_STORE") or DEFAULT_STORE
    full = normalize_url(url)
    backend = parse_url(full, "store", STORE_HINT).get_backend_name()
    if backend not in STORE_BACKENDS:
        raise BadInput(f"store {mask_url(url)}: {backend}:// is not a store. Hint: {STORE_HINT}.")
    created: Path | None = None
    if full.startswith("duckdb:///") and ":memory:" not in full:
        path = Path(full[len("duckdb:///"):])
        shown = mask_url(str(path))  # a mistyped URL taken for a path may hold a password
        _check_store_file(path, shown)
        created = None if path.exists() else path
        if not path.exists() and not create:
            raise BadInput(f"store {shown}: no such file. Hint: run `reconcile audit` first, or pass --store.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"store {shown}: cannot create its folder: {exc.strerror}.") from None
    # Checked before connecting: a bad override opens nothing. (An embedded store has its own setting.)
    settings = server_settings(backend) if backend != "duckdb" else {}
    engine = connect_engine(full, what="store")
    if engine.dialect.name == "duckdb":
        _tune_duckdb(engine)
    else:
        _tune_server(engine, settings)
    store = Store(engine, full, created)
    with engine.begin() as conn:
        found = None
        if sa.inspect(conn).has_table(meta_table.name):
            found = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
            if found is not None and int(found) > SCHEMA_VERSION:
                raise BadInput(f"store {mask_url(full)}: schema version {found} is newer than this tool's "
                               f"({SCHEMA_VERSION}). Hint: upgrade dossier-reconcile.")
        if found is not None and int(found) == SCHEMA_VERSION:
            return store  # up to date: opening writes nothing
        metadata.create_all(conn)
        if found is not None and int(found) < 4:
            _add_columns(conn, wf_state, WF_STATE_V4)
        for ix in _INDEXES:
            if store.dialect != "duckdb":
                ix.create(conn, checkfirst=True)
            elif found is not None:
                conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{ix.name}"')
        if store.dialect in ("mysql", "mariadb"):
            for ix in _MARIADB_INDEXES:
                ix.create(conn, checkfirst=True)
        if found is not None and int(found) < 7:  # after the indexes: DuckDB alters no indexed table
            _drop_not_null(conn, dossier.c.fingerprint)
        if found is not None and int(found) < 9:
            _add_columns(conn, dossier, ("version_problem",))
        if found is not None and int(found) < 10:
            _add_columns(conn, wf_step, ("may_end",))
        if found is not None and int(found) < 13:
            fill_repeated_codes(conn)
            _add_columns(conn, reconciliation, ("differs",))
        conn.execute(sa.delete(meta_table).where(meta_table.c.key == "schema_version"))
        conn.execute(sa.insert(meta_table).values(key="schema_version", value=str(SCHEMA_VERSION)))
    return store


def _check_store_file(path: Path, shown: str) -> None:
    """A DuckDB store path names a DuckDB file (or none yet): DuckDB would open another format's file
    (SQLite) through an extension, and a mistyped URL must not become folders."""
    if shown != str(path):  # mask_url found credentials: a mistyped URL, never a folder to create
        raise BadInput(f"store {shown}: a URL with a password taken for a file path. Hint: {STORE_HINT}, "
                       "e.g. postgresql://user:password@host/db.")
    if path.is_dir():
        raise BadInput(f"store {shown}: a folder, not a file. Hint: --store FOLDER/reconcile.duckdb.")
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as fh:
        head = fh.read(16)
    if head[8:12] == b"DUCK":
        return
    kind, hint = "not a DuckDB database", STORE_HINT
    if head.startswith(b"SQLite format 3\0"):
        kind = "a SQLite database, not a DuckDB store"
        hint = f"a vendor database is --system sqlite:///{path}; {STORE_HINT}"
    elif head.startswith(b"PK\x03\x04"):
        kind = "a Zip archive (an XLSX workbook?), not a DuckDB store"
    raise BadInput(f"store {shown}: {kind}. Hint: {hint}.")


def _add_columns(conn: Connection, table: sa.Table, names: tuple[str, ...]) -> None:
    """Columns a newer schema added to an existing table (nullable, so old rows stay valid)."""
    have = set(conn.execute(sa.text(f"SELECT * FROM {table.name} WHERE 1 = 0")).keys())  # duckdb cannot reflect
    for name in names:
        if name not in have:
            col = table.c[name]
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} "
                                 f"{col.type.compile(dialect=conn.dialect)}"))


def _drop_not_null(conn: Connection, col: sa.Column[Any]) -> None:
    """A column an older schema declared NOT NULL becomes nullable."""
    table, name = col.table.name, col.name
    if conn.dialect.name == "mysql":
        conn.execute(sa.text(f"ALTER TABLE {table} MODIFY {name} {col.type.compile(dialect=conn.dialect)} NULL"))
    else:
        conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL"))


def iter_rows(conn: Connection, stmt: Any, batch: int = 10_000) -> Iterator[Any]:
    """Stream a query in explicit batches (SQLAlchemy fetches text() one row at a time otherwise)."""
    result = conn.execution_options(yield_per=batch).execute(stmt)
    for part in result.partitions():
        yield from part


def store_file(store: Store) -> Path | None:
    """An embedded store's file; None for a server store (or one in memory)."""
    url = store.url
    return Path(url[len("duckdb:///"):]) if url.startswith("duckdb:///") and ":memory:" not in url else None


def store_name(store: Store) -> str:
    """The store as a command's --store takes it: an embedded store's path, else its URL (password hidden)."""
    file = store_file(store)
    return str(file) if file is not None else mask_url(store.url)


def resolve_run(store: Store, conn: sa.Connection, run_id: int | None) -> int:
    """The given audit run, checked to exist, or the latest one (BadInput: none)."""
    if run_id is None:
        latest = store.latest_run_id(conn)
        if latest is None:
            raise BadInput(f"store {mask_url(store.url)}: no audit run yet. Hint: run `reconcile audit` first.")
        return int(latest)
    exists = conn.execute(sa.select(audit_run.c.id).where(audit_run.c.id == run_id)).scalar()
    if exists is None:
        raise BadInput(f"run {run_id}: no such audit run in {mask_url(store.url)}. Hint: `reconcile history`.")
    return run_id
