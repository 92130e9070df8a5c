"""Workflow state of every open dossier, across every workflow version at once: the version it runs
on (pinned, else inferred), whether its step exists and can still reach the end, who can act on it,
and how long it has not moved. The workflow findings and the census are both read from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.model import OPEN_STATUSES, FindingKind
from reconcile.store import (
    account, dossier, finding, migration_step, step_event, wf_state, wf_step, wf_version, work_day,
)
from reconcile.util.calendar import FIRST_DAY, is_working_day
from reconcile.util.sqlfuncs import json_text, obj

K = FindingKind
# Statuses for which an open dossier must sit on a current task (a submitted online dossier has none yet).
NEEDS_TASK = tuple(s.value for s in OPEN_STATUSES if s.value != "submitted")
EARLIEST_DAY = FIRST_DAY  # dates before this are typing errors, not movements

# Why an open dossier cannot reach the end as things stand (census columns, in this order).
ORPHAN_KINDS = (K.UNKNOWN_VERSION, K.STEP_NOT_IN_VERSION, K.DEAD_END_STEP, K.UNIT_WITHOUT_STAFF,
                K.ASSIGNEE_INACTIVE)
# superseded_version is no orphan kind: a dossier on a version the migration rules move on from can
# still finish where it is.
CENSUS_KINDS = (*ORPHAN_KINDS, K.STALLED, K.SUPERSEDED_VERSION)
# wf_state.flags: one bit per census kind, plus two facts the census counts. The bits of earlier schemas
# keep their place (superseded_version came later, after the two facts), so older runs read the same.
_BITS: tuple[str, ...] = (*ORPHAN_KINDS, K.STALLED, "version_assumed", "step_known", K.SUPERSEDED_VERSION)
FLAG = {kind: 1 << _BITS.index(kind) for kind in CENSUS_KINDS}
VERSION_ASSUMED, STEP_KNOWN = 1 << _BITS.index("version_assumed"), 1 << _BITS.index("step_known")
ORPHAN_MASK = sum(FLAG[k] for k in ORPHAN_KINDS)


def _conditions(c: Any) -> dict[FindingKind, Any]:
    """When an open dossier has each workflow finding, over wf_state's columns `c`."""
    return {
        K.UNKNOWN_VERSION: ~c.version_known,
        K.STEP_NOT_IN_VERSION: sa.and_(c.version_known, ~c.step_known,
                                       sa.or_(c.step.is_not(None), c.status.in_(NEEDS_TASK))),
        K.DEAD_END_STEP: sa.and_(c.step_known, ~c.reaches_final),
        K.UNIT_WITHOUT_STAFF: sa.and_(c.step_known, c.unit_staff == 0),
        K.ASSIGNEE_INACTIVE: sa.and_(c.assignee.is_not(None), ~c.assignee_active),
        K.STALLED: c.idle_days > c.stalled_after,
        K.SUPERSEDED_VERSION: c.migrates_to_version.is_not(None),
    }


def flagged(mask: Any) -> Any:
    """wf_state rows with any of the flags in `mask` (a number, or a column holding one)."""
    return wf_state.c.flags.op("&")(mask) != 0


@dataclass(frozen=True, slots=True)
class StallRule:
    """A dossier is stalled when it has not moved for more than max(factor x the step's days,
    min_days) working days."""

    factor: float = 2.0
    min_days: int = 10


def record_state(conn: Connection, run_id: int, as_of: date, rule: StallRule) -> None:
    """Fill the run's work_day calendar and wf_state (one row per open dossier), set-based."""
    _record_calendar(conn, run_id, as_of)
    d, st, v, acc, ev = dossier, wf_step, wf_version, account, step_event
    in_run = (d.c.run_id == run_id,)
    # Version inference for dossiers with no pinned version: the latest version holding the current
    # step that was valid on the received date, else the earliest version holding the step.
    has_step = sa.and_(st.c.run_id == run_id, st.c.procedure == d.c.workflow_key,
                       sa.or_(d.c.current_step.is_(None), st.c.step_id == d.c.current_step))
    dated = (sa.select(sa.func.max(st.c.version))
             .select_from(st.join(v, sa.and_(v.c.run_id == st.c.run_id, v.c.procedure == st.c.procedure,
                                              v.c.version == st.c.version)))
             .where(has_step, sa.or_(v.c.valid_from.is_(None), d.c.received_at.is_(None),
                                     v.c.valid_from <= d.c.received_at))
             .scalar_subquery())
    undated = sa.select(sa.func.min(st.c.version)).where(has_step).scalar_subquery()
    pinned = d.c.workflow_version
    base = (
        sa.select(
            d.c.source_row, d.c.dossier_code, d.c.status, d.c.workflow_key.label("procedure"),
            pinned.label("pinned_version"),
            sa.case((pinned.is_not(None), pinned), else_=sa.func.coalesce(dated, undated)).label("version"),
            sa.case((pinned.is_not(None), "pinned"), (dated.is_not(None), "step_and_date"),
                    (undated.is_not(None), "step"), else_="none").label("version_basis"),
            d.c.current_step.label("step"), d.c.assignee, d.c.unit,
            d.c.step_entered_at, d.c.received_at,
        )
        .where(*in_run, d.c.status.in_([s.value for s in OPEN_STATUSES]))
        .cte("b")  # read twice: by the dossier, and for its few distinct (procedure, version, step)
    )
    b = base
    here = st.alias("here")
    last_event = (sa.select(ev.c.dossier_code, sa.func.max(ev.c["at"]).label("at"))
                  .where(ev.c.run_id == run_id).group_by(ev.c.dossier_code).subquery("le"))
    # The latest of: last event, entering the step; else the received date.
    moved = sa.case(
        (sa.and_(last_event.c["at"].is_not(None),
                 sa.or_(b.c.step_entered_at.is_(None), last_event.c["at"] > b.c.step_entered_at)),
         last_event.c["at"]),
        else_=sa.func.coalesce(b.c.step_entered_at, b.c.received_at))
    # The lookups below are small tables joined once, not subqueries correlated with each dossier: a
    # server store runs a correlated subquery once per open dossier (at 1M dossiers, 160k times each).
    known = (sa.select(v.c.procedure, v.c.version).where(v.c.run_id == run_id).distinct().subquery("vk"))
    version_known = known.c.version.is_not(None)

    # The versions before and after a dossier's own that hold its step: per distinct (procedure, version,
    # step) of the open dossiers (a few hundred), then joined, not once per dossier.
    placed = sa.select(b.c.procedure, b.c.version, b.c.step).distinct().subquery("vs")

    def other_version(agg: Any, cmp: Any) -> Any:
        return (sa.select(agg(st.c.version)).where(st.c.run_id == run_id, st.c.procedure == placed.c.procedure,
                                                   st.c.step_id == placed.c.step, cmp(st.c.version))
                .scalar_subquery())

    others = sa.select(placed, other_version(sa.func.max, lambda c: c < placed.c.version).label("earlier"),
                       other_version(sa.func.min, lambda c: c > placed.c.version).label("later")).subquery("ov")

    unit = sa.func.coalesce(here.c.unit, b.c.unit)
    by_unit = (sa.select(acc.c.unit, sa.func.count().label("n")).where(acc.c.run_id == run_id, acc.c.active.is_(True))
               .group_by(acc.c.unit).subquery("su"))
    staff = sa.func.coalesce(by_unit.c.n, 0)
    # A system with no staff directory at all (an engine whose users live in LDAP or Keycloak) cannot
    # say who is active: the staff checks are left unknown (NULL) rather than failed for everyone.
    directory = sa.exists().where(acc.c.run_id == run_id)
    accounts = (sa.select(acc.c.account, sa.func.max(sa.case((acc.c.active.is_(True), 1), else_=0)).label("active"))
                .where(acc.c.run_id == run_id).group_by(acc.c.account).subquery("ac"))
    assignee_known = accounts.c.account.is_not(None)
    assignee_active = sa.func.coalesce(accounts.c.active, 0) == 1
    mig = migration_step
    then = work_day.alias("then")
    now = (sa.select(work_day.c.number).where(work_day.c.run_id == run_id, work_day.c.day == as_of)
           .scalar_subquery())
    threshold = sa.func.coalesce(here.c.days, 0) * rule.factor
    select = (
        sa.select(
            sa.literal(run_id).label("run_id"), b.c.source_row, b.c.dossier_code, b.c.status, b.c.procedure,
            b.c.pinned_version, b.c.version, b.c.version_basis, version_known.label("version_known"),
            b.c.step, here.c.step_id.is_not(None).label("step_known"),
            here.c.reaches_final,
            unit.label("step_unit"), here.c.days.label("step_days"),
            others.c.earlier.label("earlier_version_with_step"), others.c.later.label("later_version_with_step"),
            sa.case((unit.is_(None), sa.null()), (~directory, sa.null()), else_=staff).label("unit_staff"),
            b.c.assignee,
            sa.case((b.c.assignee.is_(None), sa.null()), (~directory, sa.null()),
                    else_=assignee_known).label("assignee_known"),
            sa.case((b.c.assignee.is_(None), sa.null()), (~directory, sa.null()),
                    else_=assignee_active).label("assignee_active"),
            moved.label("since"),
            (now - then.c.number).label("idle_days"),
            sa.case((threshold > rule.min_days, sa.func.ceil(threshold)), else_=rule.min_days)
            .cast(sa.Integer).label("stalled_after"),
            mig.c.to_procedure.label("migrates_to_procedure"), mig.c.to_version.label("migrates_to_version"),
            mig.c.to_step.label("migrates_to_step"), mig.c.rules.label("migration_rules"),
        )
        .select_from(
            b.outerjoin(here, sa.and_(here.c.run_id == run_id, here.c.procedure == b.c.procedure,
                                      here.c.version == b.c.version, here.c.step_id == b.c.step))
            .outerjoin(others, sa.and_(others.c.procedure == b.c.procedure, others.c.version == b.c.version,
                                       others.c.step == b.c.step))
            .outerjoin(last_event, last_event.c.dossier_code == b.c.dossier_code)
            .outerjoin(known, sa.and_(known.c.procedure == b.c.procedure, known.c.version == b.c.version))
            .outerjoin(by_unit, by_unit.c.unit == unit)
            .outerjoin(accounts, accounts.c.account == b.c.assignee)
            .outerjoin(then, sa.and_(then.c.run_id == run_id, then.c.day == moved))
            .outerjoin(mig, sa.and_(mig.c.run_id == run_id, mig.c.procedure == b.c.procedure,
                                    mig.c.version == b.c.version, mig.c.step == b.c.step))
        )
    )
    sub = select.subquery("s")
    bits = [sa.case((cond, FLAG[kind]), else_=0) for kind, cond in _conditions(sub.c).items()]
    bits += [sa.case((sub.c.version_basis != "pinned", VERSION_ASSUMED), else_=0),
             sa.case((sub.c.step_known, STEP_KNOWN), else_=0)]
    cols = [c.name for c in wf_state.c if c.name != "flags"]
    conn.execute(sa.insert(wf_state).from_select(
        [*cols, "flags"], sa.select(*[sub.c[c] for c in cols], sum(bits[1:], bits[0]))))


def _record_calendar(conn: Connection, run_id: int, as_of: date) -> None:
    """Working-day numbers from the earliest date a dossier could have last moved up to the audit
    date (weekends and Vietnamese public holidays, lunar ones included, do not count)."""
    d, ev = dossier, step_event
    lows = [conn.execute(sa.select(sa.func.min(c)).where(t.c.run_id == run_id)).scalar()
            for t, c in ((d, d.c.received_at), (d, d.c.step_entered_at), (ev, ev.c["at"]))]
    first = max(EARLIEST_DAY, min([x for x in lows if x is not None] + [as_of]))
    rows, number, day = [], 0, first
    while day <= as_of:
        number += is_working_day(day)
        rows.append({"run_id": run_id, "day": day, "number": number})
        day += timedelta(days=1)
    conn.execute(sa.insert(work_day), rows)


def workflow_findings(conn: Connection, run_id: int) -> None:
    """unknown_version, step_not_in_version, dead_end_step, assignee_inactive, unit_without_staff,
    stalled and superseded_version (only when the catalog has migration rules), each from the run's
    wf_state."""
    w, d = wf_state, dossier
    ev = json_text(obj(system=obj(row=d.c.source_row, status=d.c.status, workflow_key=d.c.workflow_key,
                                  workflow_version=d.c.workflow_version, current_step=d.c.current_step,
                                  assignee=d.c.assignee, unit=d.c.unit, step_entered_at=d.c.step_entered_at,
                                  received_at=d.c.received_at, due_at=d.c.due_at))).label("evidence")
    version = dict(workflow_key=w.c.procedure, workflow_version=w.c.version, version_basis=w.c.version_basis,
                   current_step=w.c.step)
    latest = (sa.select(sa.func.max(wf_version.c.version))
              .where(wf_version.c.run_id == run_id, wf_version.c.procedure == w.c.procedure).scalar_subquery())
    kinds: list[tuple[FindingKind, Any]] = [
        (K.UNKNOWN_VERSION, obj(
            workflow_key=w.c.procedure, workflow_version=w.c.pinned_version, current_step=w.c.step,
            latest_catalog_version=latest, versions_with_step=_versions_with_step(run_id),
            reason=sa.case(
                (d.c.version_problem.is_not(None), d.c.version_problem),
                (w.c.procedure.is_(None), "the dossier has no workflow key"),
                (latest.is_(None), "the workflow key is not in the catalog"),
                (w.c.pinned_version.is_(None), "no workflow version pinned, and no catalog version has its step"),
                else_="the pinned version is not in the catalog"))),
        (K.STEP_NOT_IN_VERSION, obj(**version, steps_in_version=_steps_in_version(run_id),
             earlier_version_with_step=w.c.earlier_version_with_step,
             later_version_with_step=w.c.later_version_with_step,
             reason=sa.case((w.c.step.is_(None), "open dossier with no current task"),
                            (w.c.earlier_version_with_step.is_not(None),
                             "the current step is not in its workflow version, but an earlier version has it: "
                             "the version was changed while the dossier sat on the step"),
                            else_="the current step is not in its workflow version"))),
        (K.DEAD_END_STEP, obj(
            **version, reason="no path leads from this step to a final step of its version")),
        (K.ASSIGNEE_INACTIVE, obj(
            assignee=w.c.assignee, unit=d.c.unit, active_colleagues_in_unit=_active_in(run_id, d.c.unit),
            reason=sa.case((~w.c.assignee_known, "the assignee is not in the staff directory"),
                           else_="the assignee account is deactivated"))),
        (K.UNIT_WITHOUT_STAFF, obj(
            **version, unit=w.c.step_unit, reason="no active account in the step's unit")),
        (K.STALLED, obj(
            **version, since=w.c.since, idle_working_days=w.c.idle_days,
            stalled_after_working_days=w.c.stalled_after, step_days=w.c.step_days,
            reason="no movement for longer than the threshold, in working days")),
        (K.SUPERSEDED_VERSION, obj(
            **version, to_workflow_key=w.c.migrates_to_procedure, to_workflow_version=w.c.migrates_to_version,
            to_step=w.c.migrates_to_step, rules=w.c.migration_rules,
            reason="the migration rules move dossiers on this step of this version to a later version")),
    ]
    # One pass for every kind, as for the class findings: each open dossier's row once per flag it has
    # (a join to the kinds' bits), the system row joined once for all (on a server store each kind's own
    # statement hashed or scanned every dossier of the run).
    bits = sa.union_all(*[sa.select(sa.literal(kind.value).label("kind"), sa.literal(FLAG[kind]).label("bit"))
                          for kind, _ in kinds]).subquery("k")
    kind = bits.c.kind
    select = (sa.select(sa.literal(run_id), kind, sa.case(*[(kind == k.value, k.severity.value) for k, _ in kinds]),
                        w.c.dossier_code, json_text(sa.case(*[(kind == k.value, details) for k, details in kinds])),
                        ev)
              .select_from(w.join(bits, flagged(bits.c.bit))
                           .join(d, sa.and_(d.c.run_id == run_id, d.c.source_row == w.c.source_row)))
              .where(w.c.run_id == run_id))
    conn.execute(sa.insert(finding).from_select(
        ["run_id", "kind", "severity", "dossier_code", "details", "evidence"], select))


def _steps_in_version(run_id: int) -> Any:
    w, st = wf_state, wf_step
    return (sa.select(sa.func.count()).where(st.c.run_id == run_id, st.c.procedure == w.c.procedure,
                                             st.c.version == w.c.version).scalar_subquery())


def _versions_with_step(run_id: int) -> Any:
    w, st = wf_state, wf_step
    return (sa.select(sa.func.count()).where(st.c.run_id == run_id, st.c.procedure == w.c.procedure,
                                             st.c.step_id == w.c.step).scalar_subquery())


def _active_in(run_id: int, unit: Any) -> Any:
    acc = account
    return (sa.select(sa.func.count()).where(acc.c.run_id == run_id, acc.c.unit == unit, acc.c.active.is_(True))
            .scalar_subquery())


@dataclass(slots=True)
class CensusRow:
    """Open dossiers on one step of one workflow version, and why those that cannot finish are stuck."""

    procedure: str | None
    version: int | None
    step: str | None
    version_in_catalog: bool
    step_in_version: bool
    open: int
    orphaned: int  # with at least one of the ORPHAN_KINDS
    by_reason: dict[str, int]  # finding kind -> dossiers (ORPHAN_KINDS, then stalled)
    version_assumed: int  # dossiers with no pinned version, placed here by inference
    oldest_since: date | None  # the longest-waiting dossier's last movement
    later_version_with_step: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"procedure": self.procedure, "version": self.version, "step": self.step,
                "version_in_catalog": self.version_in_catalog, "step_in_version": self.step_in_version,
                "open": self.open, "orphaned": self.orphaned, "by_reason": self.by_reason,
                "version_assumed": self.version_assumed,
                "oldest_since": self.oldest_since.isoformat() if self.oldest_since else None,
                "later_version_with_step": self.later_version_with_step}


_NO_REASONS = {k.value: 0 for k in CENSUS_KINDS}


def census(conn: Connection, run_id: int) -> list[CensusRow]:
    """Per procedure x version x step. One GROUP BY over the run's wf_state, by step and flags (a few
    groups per step), folded here: about twice a bare count, where a sum per reason costs 7x."""
    w = wf_state.c
    rows = conn.execute(
        sa.select(w.procedure, w.version, w.step, w.flags, sa.func.count(), sa.func.min(w.since),
                  sa.func.min(w.later_version_with_step))
        .where(w.run_id == run_id)
        .group_by(w.procedure, w.version, w.step, w.flags)
    ).all()
    decoded: dict[int, tuple[bool, list[str]]] = {}  # flags -> (orphaned, kinds)
    groups: dict[tuple[Any, Any, Any], CensusRow] = {}
    for procedure, version, step, flags, n, since, later in rows:
        if flags not in decoded:
            decoded[flags] = (any(flags & FLAG[k] for k in ORPHAN_KINDS),
                              [k.value for k in CENSUS_KINDS if flags & FLAG[k]])
        orphaned, kinds = decoded[flags]
        g = groups.get((procedure, version, step))
        if g is None:
            g = groups[(procedure, version, step)] = CensusRow(
                procedure, version, step, not flags & FLAG[K.UNKNOWN_VERSION], False, 0, 0, _NO_REASONS.copy(), 0,
                since, later)
        g.open += n
        g.step_in_version |= bool(flags & STEP_KNOWN)
        g.version_assumed += n if flags & VERSION_ASSUMED else 0
        g.orphaned += n if orphaned else 0
        for k in kinds:
            g.by_reason[k] += n
        if since is not None and (g.oldest_since is None or since < g.oldest_since):
            g.oldest_since = since
    out = list(groups.values())
    return sorted(out, key=lambda c: (c.procedure or "", c.version if c.version is not None else -1, c.step or ""))
