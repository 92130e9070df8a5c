"""The dossiers whose citizens are to be told, read from the store: those the live apply batches closed or
moved on (with the plan's canonical values), or those open and overdue at an audit's date."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import BadInput
from reconcile.model import Status
from reconcile.store import (
    audit_run, batch_outcome, change, change_batch, dossier, plan_action, plan_file, register_entry, wf_step,
    wf_version,
)
from reconcile.util.inlists import chunks

# Actions a citizen notices: a close gives the dossier its end state, a migrate lets it move again. A reassign
# changes only the clerk, so it is not news to the applicant.
TOLD_ACTIONS = {"close": "closed", "migrate": "moved"}
# Open and waiting on the office. Supplement requests and tax payments wait on the applicant (the clock is
# paused or restarts), and a finished dossier only waits to be collected: none of them is the office's delay.
OVERDUE_STATUSES = (Status.SUBMITTED.value, Status.RECEIVED.value, Status.IN_PROGRESS.value)
DONE = ("committed", "recovered")


@dataclass(frozen=True, slots=True)
class Candidate:
    run_id: int
    dossier_code: str
    kind: str  # closed | moved | overdue
    status: str  # the canonical state the citizen is told about
    when: date | None  # closed: the return date; overdue: the appointment date
    procedure: str | None  # the procedure (code) the dossier is on, after a move its new one
    version: int | None
    step: str | None
    unit: str | None  # the unit code handling it now, when known without the catalog
    batch: int | None = None  # the apply batch that closed or moved it

    @property
    def notice_key(self) -> str:
        """What the notice tells: the same key is never listed twice for one dossier and phone."""
        if self.kind == "moved":
            return f"moved:{self.procedure}:{self.version}:{self.step}"
        return f"{self.kind}:{self.status}:{self.when.isoformat() if self.when else ''}"


@dataclass(frozen=True, slots=True)
class Contact:
    """What the store holds about a dossier for its notice: the phones written, and names."""
    phones: tuple[str, ...]  # the system's phone column, one per row of the code
    register_texts: tuple[str, ...]  # the register's "address, phone" cells
    agency: str | None
    procedure_name: str | None  # the register's procedure name, when the catalog has none


@dataclass
class Catalog:
    names: dict[str, str] = field(default_factory=dict)  # procedure -> name (its latest version's)
    steps: dict[tuple[str, int, str], tuple[str | None, str | None]] = field(default_factory=dict)  # -> name, unit


def live_batches(conn: Connection, run_id: int | None, wanted: tuple[int, ...]) -> list[Any]:
    """The apply batches in force: committed (or recovered) and not undone by a committed undo; those of
    `run_id` when given, `wanted` ones when given (each checked)."""
    b = change_batch
    done = sa.select(batch_outcome.c.batch_id).where(batch_outcome.c.outcome.in_(DONE))
    undo = change_batch.alias("undo")
    undone = sa.select(undo.c.undo_of).where(undo.c.kind == "undo", undo.c.undo_of.is_not(None),
                                             undo.c.id.in_(done))
    rows = conn.execute(sa.select(b.c.id, b.c.kind, b.c.run_id, b.c.plan, b.c.plan_sha256,
                                  b.c.id.in_(done).label("done"), b.c.id.in_(undone).label("undone"))
                        .order_by(b.c.id)).all()
    by_id = {r.id: r for r in rows}
    problems = []
    for batch in wanted:
        r = by_id.get(batch)
        why = ("no such batch" if r is None else "an undo batch" if r.kind != "apply" else
               "not committed" if not r.done else "undone since" if r.undone else
               f"of audit run {r.run_id}, not {run_id}" if run_id is not None and r.run_id != run_id else None)
        if why:
            problems.append(f"--batch {batch}: {why}. Hint: `reconcile history` lists the batches; notices are "
                            "for committed apply batches not undone.")
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{len(problems)} batches cannot be notified",
                       problems)
    return [r for r in rows if r.kind == "apply" and r.done and not r.undone
            and (not wanted or r.id in wanted) and (run_id is None or r.run_id == run_id)]


def applied(conn: Connection, batches: list[Any]) -> list[Candidate]:
    """One candidate per dossier the batches closed or moved on (the latest batch's, when several did),
    with the canonical values its plan set."""
    latest: dict[str, tuple[int, str]] = {}
    if batches:
        ids = [b.id for b in batches]
        stmt = (sa.select(change.c.batch_id, change.c.dossier_code, change.c.action).distinct()
                .where(change.c.batch_id.in_(ids), change.c.action.in_(list(TOLD_ACTIONS))))
        for batch_id, code, action in conn.execute(stmt):
            if code not in latest or latest[code][0] < batch_id:
                latest[code] = (batch_id, action)
    out = []
    for b in batches:
        codes = sorted(c for c, (batch_id, _) in latest.items() if batch_id == b.id)
        if not codes:
            continue
        sets = _plan_sets(conn, b, codes)
        for code in codes:
            action = latest[code][1]
            values = sets.get((code, action))
            if values is None:
                raise BadInput(f"batch {b.id}: its plan {b.plan} has no confirmed {action} of {code}. Hint: the "
                               "plan file was replaced after apply; notify needs the plan the batch applied.")
            if action == "close":
                # a close that sets no status (a plan written by hand) is told the dossier's status as read
                out.append(Candidate(b.run_id, code, "closed", str(values.get("status") or ""),
                                     _day(values.get("returned_at")),
                                     None, None, None, None, b.id))
            else:
                out.append(Candidate(b.run_id, code, "moved", "", None, values.get("workflow_key"),
                                     int(values["workflow_version"]), str(values["current_step"]), values.get("unit"),
                                     b.id))
    return out


def _day(v: Any) -> date | None:
    return v.date() if hasattr(v, "date") and callable(v.date) else v


def _plan_sets(conn: Connection, batch: Any, codes: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """(code, action) -> the canonical values the batch's plan set: from the plan as `reconcile plan`
    recorded it (same sha256), else from the plan file if it is still the one applied."""
    from reconcile.fix.planread import load_plan  # heavy; only this path needs it
    from reconcile.fix.values import decode_value

    plan_id = conn.execute(sa.select(sa.func.min(plan_file.c.id)).where(plan_file.c.sha256 == batch.plan_sha256)
                           ).scalar()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if plan_id is not None:
        for part in chunks(codes):
            stmt = sa.select(plan_action.c.dossier_code, plan_action.c.action, plan_action.c.set_values).where(
                plan_action.c.plan_id == plan_id, plan_action.c.confirmed, plan_action.c.dossier_code.in_(part))
            for code, action, text in conn.execute(stmt):
                out[(code, action)] = {f: decode_value(v) for f, v in json.loads(text)}
        return out
    plan = load_plan(batch.plan) if batch.plan else None
    if plan is None or plan.sha256 != batch.plan_sha256:
        raise BadInput(f"batch {batch.id}: its plan file {batch.plan} is gone or changed since apply, and the store "
                       "has no record of it. Hint: put the applied plan file back at that path.")
    wanted = set(codes)
    for a in plan.actions:
        if a.confirmed and a.dossier_code in wanted:
            out[(a.dossier_code, a.action)] = dict(a.set)
    return out


def overdue(conn: Connection, run_id: int) -> list[Candidate]:
    """The run's dossiers open and waiting on the office at its audit date, past their (revised) due date."""
    as_of = conn.execute(sa.select(audit_run.c.as_of).where(audit_run.c.id == run_id)).scalar_one()
    d = dossier
    due = sa.func.coalesce(d.c.due_at_revised, d.c.due_at)
    stmt = (sa.select(d.c.dossier_code, d.c.status, due.label("due"), d.c.procedure, d.c.workflow_version,
                      d.c.current_step, d.c.unit)
            .where(d.c.run_id == run_id, d.c.dossier_code.is_not(None), d.c.status.in_(OVERDUE_STATUSES), due < as_of)
            .order_by(d.c.dossier_code, d.c.source_row))
    seen: set[str] = set()
    out = []
    for r in conn.execute(stmt):
        if r.dossier_code not in seen:  # a code held by two rows (duplicate_code) is told once
            seen.add(r.dossier_code)
            out.append(Candidate(run_id, r.dossier_code, "overdue", r.status, r.due, r.procedure, r.workflow_version,
                                 r.current_step, r.unit))
    return out


def contacts(conn: Connection, run_id: int, codes: Iterable[str]) -> dict[str, tuple[Contact, dict[str, Any]]]:
    """Per code: its Contact and the system row's values the message needs (procedure, status, unit)."""
    phones: dict[str, list[str]] = {}
    texts: dict[str, list[str]] = {}
    rows: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    d, r = dossier, register_entry
    for part in chunks(sorted(set(codes))):
        for row in conn.execute(sa.select(d.c.dossier_code, d.c.phone, d.c.agency, d.c.procedure, d.c.workflow_key,
                                          d.c.workflow_version, d.c.current_step, d.c.unit, d.c.status)
                                .where(d.c.run_id == run_id, d.c.dossier_code.in_(part)).order_by(d.c.source_row)):
            rows.setdefault(row.dossier_code, dict(row._mapping))
            if row.phone and row.phone not in phones.setdefault(row.dossier_code, []):
                phones[row.dossier_code].append(row.phone)
        for row in conn.execute(sa.select(r.c.dossier_code, r.c.address, r.c.procedure)
                                .where(r.c.run_id == run_id, r.c.dossier_code.in_(part)).order_by(r.c.entry_id)):
            if row.address:
                texts.setdefault(row.dossier_code, []).append(row.address)
            if row.procedure:
                names.setdefault(row.dossier_code, row.procedure)
    return {code: (Contact(tuple(phones.get(code, ())), tuple(texts.get(code, ())), row.get("agency"),
                           names.get(code)), row)
            for code, row in ((c, rows.get(c, {})) for c in set(codes))}


def catalog(conn: Connection, run_id: int) -> Catalog:
    """The run's procedure names and steps (name, unit): a catalog is a few hundred rows."""
    out = Catalog()
    v = wf_version
    for procedure, name in conn.execute(sa.select(v.c.procedure, v.c.name).where(v.c.run_id == run_id)
                                        .order_by(v.c.procedure, v.c.version)):
        out.names[procedure] = name  # the latest version's name wins
    s = wf_step
    for row in conn.execute(sa.select(s.c.procedure, s.c.version, s.c.step_id, s.c.name, s.c.unit)
                            .where(s.c.run_id == run_id)):
        out.steps[(row.procedure, row.version, row.step_id)] = (row.name, row.unit)
    return out

