"""The grouped counts behind every statistics table, as SQL over the store (DOMAIN §6).

The store only compares each dossier's dates with the period and groups by those comparisons and a
few raw low-cardinality columns (status, channel, field keys): one scan, no per-row strings built,
no join with the catalog; stats.tables classifies the few thousand groups in Python. The audit stores
the grouped counts of its own period (stats_group), which is then all a table of that period reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.model import FindingKind as K
from reconcile.store import dossier, few_groups, register_entry, repeated, stats_group, wf_state
from reconcile.workflow.state import FLAG, flagged


# Open dossiers on these cannot move in the system: the statistics' "stuck" column.
STUCK_MASK = FLAG[K.UNKNOWN_VERSION] | FLAG[K.STEP_NOT_IN_VERSION] | FLAG[K.DEAD_END_STEP]


def default_period(as_of: date) -> tuple[date, date]:
    """The half-year that holds the audit date, up to that date (six-monthly reporting)."""
    return date(as_of.year, 1 if as_of.month <= 6 else 7, 1), as_of


GROUP_COLUMNS = ["field", "key1", "key2", "status", "channel", "received", "finished", "returned", "timeliness",
                 "due", "stuck", "n"]


NONE, BEFORE, IN, AFTER = 0, 1, 2, 3  # a date against the period: missing, before it, in it, after it


EARLY, ON_TIME, LATE = 1, 2, 3  # the finishing day against the due day (0: either is missing)


@dataclass(frozen=True)
class Source:
    """Per dossier, as SQL expressions: the field keys, status, channel, dates and the stuck flag."""

    from_: Any
    field: Any  # the source's own field, if any
    key1: Any  # looked up in the catalog when `field` is null (procedure code or register procedure name)
    key2: Any
    status: Any  # canonical status, or the register's outcome
    channel: Any
    received: Any
    due: Any
    finished: Any  # the day processing finished (timeliness)
    returned: Any  # the closing day when `finished` is missing
    stuck: Any  # boolean expression
    where: list[Any] = field(default_factory=list)


def system_source(run_id: int, ov: sa.Table | None) -> Source:
    d, w = dossier, wf_state
    stuck_rows = (sa.select(w.c.source_row).where(w.c.run_id == run_id, flagged(STUCK_MASK))
                  .subquery("stuck"))
    from_ = d.outerjoin(stuck_rows, stuck_rows.c.source_row == d.c.source_row)
    status, finished, returned = d.c.status, d.c.finished_at, d.c.returned_at
    stuck = stuck_rows.c.source_row.is_not(None)
    if ov is not None:
        from_ = from_.outerjoin(ov, ov.c.dossier_code == d.c.dossier_code)
        status = sa.func.coalesce(ov.c.status, status)
        finished = sa.func.coalesce(ov.c.finished_at, finished)
        returned = sa.func.coalesce(ov.c.returned_at, returned)
        stuck = sa.and_(stuck, ov.c.dossier_code.is_(None) | (ov.c.unstuck == sa.false()))
    return Source(from_, d.c.field, d.c.workflow_key, d.c.procedure, status, d.c.channel, d.c.received_at,
                   sa.func.coalesce(d.c.due_at_revised, d.c.due_at), finished, returned, stuck,
                   [d.c.run_id == run_id])


def register_source(run_id: int) -> Source:
    """The paper view: each dossier code once (its first entry), rows without a code each once."""
    r = register_entry
    firsts = repeated(run_id, "register").subquery("dup")
    from_ = r.outerjoin(firsts, firsts.c.dossier_code == r.c.dossier_code)
    return Source(from_, sa.null(), r.c.procedure, sa.null(), r.c.outcome, sa.null(), r.c.received_at, r.c.due_at,
                   r.c.returned_at, r.c.returned_at, sa.false(),
                   [r.c.run_id == run_id, sa.or_(firsts.c.first_row.is_(None), r.c.entry_id == firsts.c.first_row)])


def store_groups(conn: Connection, run_id: int, period: tuple[date, date]) -> None:
    """At audit time: the grouped counts of the system and register views of the run's own period, so
    that its statistics and reports read a few hundred rows instead of scanning every dossier."""
    start, end = period
    for view, source in (("system", system_source(run_id, None)), ("register", register_source(run_id))):
        grouped = grouped_counts(source, start, end).subquery("g")
        with few_groups(conn):
            conn.execute(sa.insert(stats_group).from_select(
                ["run_id", "view", "period_from", "period_to", *GROUP_COLUMNS],
                sa.select(sa.literal(run_id), sa.literal(view), sa.literal(start, sa.Date),
                          sa.literal(end, sa.Date), *[grouped.c[c] for c in GROUP_COLUMNS])))


def position(day: Any, start: Any, end: Any) -> Any:
    return sa.case((day.is_(None), NONE), (day < start, BEFORE), (day <= end, IN), else_=AFTER)


def grouped_counts(s: Source, start: date, end: date) -> Any:
    """Count dossiers per field keys x status x channel x the dates' positions x stuck."""
    f, t = sa.literal(start, sa.Date), sa.literal(end, sa.Date)
    timeliness = sa.case((sa.or_(s.finished.is_(None), s.due.is_(None)), 0), (s.finished < s.due, EARLY),
                         (s.finished == s.due, ON_TIME), else_=LATE)
    due = sa.case((s.due.is_(None), NONE), (s.due >= t, IN), else_=BEFORE)  # within time | overdue at the end
    cols = [s.field.label("field"), s.key1.label("key1"), s.key2.label("key2"), s.status.label("status"),
            s.channel.label("channel"), position(s.received, f, t).label("received"),
            position(s.finished, f, t).label("finished"), position(s.returned, f, t).label("returned"),
            timeliness.label("timeliness"), due.label("due"), sa.case((s.stuck, 1), else_=0).label("stuck")]
    assert [c.name for c in cols] == GROUP_COLUMNS[:-1]
    inner = sa.select(*cols).select_from(s.from_).where(*s.where).subquery("c")
    keys = [inner.c[c.name] for c in cols]
    return sa.select(*keys, sa.func.count().label("n")).group_by(*keys)
