"""The statistics table per field and period (DOMAIN §6), set-based in the store: system, register or
after-plan view, official or extended layout, a convention for withdrawn/returned dossiers.

One grouped count does the work: the store compares each dossier's dates with the period and counts
dossiers per field keys, status, channel, those comparisons and a stuck flag; Python classifies the few
hundred groups (early, on time, late, within time, overdue, withdrawn, returned unresolved, cannot be
classified; carried over, online, in person) and folds them into rows, so every identity holds by
construction:
  total = online + in_person + carried_over = resolved + in_progress + withdrawn + returned + unclassified.
The audit stores that grouped count for its own period (stats_group), which is then all a table of
that period reads. A dossier's state at a day depends only on that day (open until its closing date),
so this period's carried-over count equals the previous period's in-progress count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from datetime import date, datetime
from typing import Any, Iterable

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import BadInput
from reconcile.model import FindingKind as K
from reconcile.normalize import fold
from reconcile.stats_model import CONVENTIONS, COUNTS, LAYOUTS, VIEWS, Note, StatsRow, StatsTable, columns_for
from reconcile.store import (
    TABLE_OPTS, bulk_insert, dossier, few_groups, register_entry, stats_group, text_key, wf_state, wf_version,
)
from reconcile.wfstate import FLAG

# Open dossiers on these cannot move in the system: the statistics' "stuck" column.
STUCK_MASK = FLAG[K.UNKNOWN_VERSION] | FLAG[K.STEP_NOT_IN_VERSION] | FLAG[K.DEAD_END_STEP]
ONLINE_CHANNELS = ("2", "online", "trực tuyến")  # DOMAIN §3: channel 2 = online
RESOLVED, OPEN, WITHDRAWN, RETURNED_UNRESOLVED, SUBMITTED = (
    "resolved", "open", "withdrawn", "returned_unresolved", "submitted")
STATUS_OUTCOME = {"finished": RESOLVED, "returned": RESOLVED, "withdrawn": WITHDRAWN, "stopped": RETURNED_UNRESOLVED,
                  "rejected": RETURNED_UNRESOLVED, "submitted": SUBMITTED}
PAPER_OUTCOME = {"returned": RESOLVED, "withdrawn": WITHDRAWN, "rejected": RETURNED_UNRESOLVED}


@dataclass(frozen=True, slots=True)
class Group:
    label: str  # printed after "Tổng " ("lĩnh vực đất đai")
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StatsSettings:
    """The project file's `statistics:` block."""

    convention: str = "separate"
    fields: tuple[str, ...] = ()  # row order; fields not listed follow by name
    groups: tuple[Group, ...] = ()  # sub-total rows under the grand total
    online_channels: tuple[str, ...] = ONLINE_CHANNELS


@dataclass(frozen=True, slots=True)
class Overlay:
    """What a plan action will write that the statistics see."""

    dossier_code: str
    status: str | None
    finished_at: date | None
    returned_at: date | None
    unstuck: bool  # the action moves the dossier off a step it could not leave


def settings_from(doc: Any, where: str) -> StatsSettings:
    """Validate the project file's `statistics:` mapping (None: defaults)."""
    if doc is None:
        return StatsSettings()
    known = {"convention", "fields", "groups", "online_channels"}
    if not isinstance(doc, dict) or set(doc) - known:
        extra = sorted(set(doc) - known) if isinstance(doc, dict) else []
        raise BadInput(f"{where}: statistics: expected a mapping with {', '.join(sorted(known))}"
                       + (f"; unknown key {extra[0]!r}" if extra else "") + ".")
    convention = str(doc.get("convention", "separate"))
    if convention not in CONVENTIONS:
        raise BadInput(f"{where}: statistics.convention {convention!r}: expected one of {', '.join(CONVENTIONS)}.")
    groups = []
    for i, g in enumerate(doc.get("groups") or []):
        if not isinstance(g, dict) or not g.get("label") or not isinstance(g.get("fields"), list):
            raise BadInput(f"{where}: statistics.groups[{i}]: expected {{label: TEXT, fields: [FIELD, ...]}}.")
        groups.append(Group(str(g["label"]), tuple(str(f) for f in g["fields"])))
    channels = tuple(str(c).strip().lower() for c in doc.get("online_channels") or ONLINE_CHANNELS)
    return StatsSettings(convention, tuple(str(f) for f in doc.get("fields") or ()), tuple(groups), channels)


def default_period(as_of: date) -> tuple[date, date]:
    """The half-year that holds the audit date, up to that date (six-monthly reporting)."""
    return date(as_of.year, 1 if as_of.month <= 6 else 7, 1), as_of


def compute(conn: Connection, run_id: int, as_of: date, *, period: tuple[date, date] | None = None,
            layout: str = "official", view: str = "system", settings: StatsSettings = StatsSettings(),
            convention: str | None = None, overlay: Iterable[Overlay] = ()) -> StatsTable:
    """One statistics table of audit run `run_id` (the overlay is the plan, for view after-plan)."""
    if layout not in LAYOUTS or view not in VIEWS:
        raise ValueError(f"layout {layout!r} / view {view!r}")
    convention = convention or settings.convention
    start, end = period or default_period(as_of)
    if start > end:
        raise BadInput(f"--period {start} {end}: the period ends before it starts.")
    if end > as_of:
        raise BadInput(f"--period {start} {end}: ends after the audit date {as_of}; the data says nothing about "
                       "later days. Hint: end the period on or before the audit date, or audit later.")
    overlay = list(overlay)
    groups = _stored_groups(conn, run_id, view, start, end) if view != "after-plan" else []
    if view == "after-plan":
        groups = _after_plan_groups(conn, run_id, _overlay_table(conn, overlay), start, end)
    if not groups:  # another period than the audit's, the plan's view, or a run stored before schema 5
        if view == "register":
            source = _register_source(run_id)
        else:
            source = _system_source(run_id, _overlay_table(conn, overlay) if view == "after-plan" else None)
        groups = conn.execute(_grouped(source, start, end)).all()
    v = wf_version
    catalog = conn.execute(sa.select(v.c.procedure, v.c.name_key, v.c.field).where(v.c.run_id == run_id)).all()
    fields = _field_lookup(conn, run_id, view, catalog, {g[1] for g in groups})
    counts, left_out, flagged = _fold(groups, fields, IN if as_of <= end else AFTER, convention,
                                      settings.online_channels)
    rows = _rows(counts, sorted({f for _, _, f in catalog if f}), settings)
    total = next(r for r in rows if r.kind == "total").values
    left = {"withdrawn": left_out[WITHDRAWN], "returned": left_out[RETURNED_UNRESOLVED]}
    notes = [Note(f"convention.{convention}", left if convention == "excluded" else {}), Note("note.timeliness"),
             Note("note.carried_excluded" if convention == "excluded" else "note.carried")]
    for key, n in (("note.stuck", total["stuck"]), ("note.unclassified", total["unclassified"]),
                   ("note.submitted", flagged["submitted"]), ("note.no_received", flagged["no_received"])):
        if n:
            notes.append(Note(key, {"n": n}))
    if view == "register":
        notes.append(Note("note.register_view"))
    if view == "after-plan":
        notes.append(Note("note.after_plan", {"n": len(overlay)}))
    return StatsTable(run_id, as_of.isoformat(), start.isoformat(), end.isoformat(), view, layout, convention,
                      columns_for(layout, convention), tuple(rows), tuple(notes))


def _fold(groups: list[Any], fields: Any, as_of_pos: int, convention: str, channels: tuple[str, ...]
          ) -> tuple[dict[str | None, dict[str, int]], dict[str, int], dict[str, int]]:
    """The grouped counts into per-field counters; also what the convention left out and what the
    notes must mention (submitted online, no received date)."""
    counts: dict[str | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    left_out = {WITHDRAWN: 0, RETURNED_UNRESOLVED: 0}
    flagged = {"submitted": 0, "no_received": 0}
    for own, key1, key2, status, channel, received, finished, returned, timeliness, due, stuck, n in groups:
        cat, origin = _classify(status, channel, received, finished, returned, timeliness, due, as_of_pos, channels)
        n = int(n)
        if cat is None:  # not in this period's table
            continue
        if cat == SUBMITTED:
            flagged["submitted"] += n
            continue
        if cat in left_out and convention == "excluded":
            left_out[cat] += n
            continue
        if cat in left_out and convention == "on-time":
            cat = "on_time"
        row = counts[fields(own, key1, key2)]
        row["total"] += n
        row[origin] += n
        row[cat] += n
        row["resolved"] += n if cat in ("early", "on_time", "late") else 0
        row["in_progress"] += n if cat in ("within_time", "overdue") else 0
        row["stuck"] += n if stuck and cat in ("within_time", "overdue") else 0
        flagged["no_received"] += n if received == NONE else 0
    return counts, left_out, flagged


# ----------------------------------------------------------------------------------------- SQL
# The store only compares each dossier's dates with the period and groups by those comparisons and a
# few raw low-cardinality columns (status, channel, field keys): one scan, no per-row strings built,
# no join with the catalog. Python classifies the few thousand groups.

GROUP_COLUMNS = ["field", "key1", "key2", "status", "channel", "received", "finished", "returned", "timeliness",
                 "due", "stuck", "n"]
NONE, BEFORE, IN, AFTER = 0, 1, 2, 3  # a date against the period: missing, before it, in it, after it
EARLY, ON_TIME, LATE = 1, 2, 3  # the finishing day against the due day (0: either is missing)


@dataclass(frozen=True)
class _Source:
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


def _system_source(run_id: int, ov: sa.Table | None) -> _Source:
    d, w = dossier, wf_state
    stuck_rows = (sa.select(w.c.source_row).where(w.c.run_id == run_id, w.c.flags.op("&")(STUCK_MASK) != 0)
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
    return _Source(from_, d.c.field, d.c.workflow_key, d.c.procedure, status, d.c.channel, d.c.received_at,
                   sa.func.coalesce(d.c.due_at_revised, d.c.due_at), finished, returned, stuck,
                   [d.c.run_id == run_id])


def _register_source(run_id: int) -> _Source:
    """The paper view: each dossier code once (its first entry), rows without a code each once."""
    r = register_entry
    firsts = (sa.select(r.c.dossier_code, sa.func.min(r.c.entry_id).label("first"))
              .where(r.c.run_id == run_id, r.c.dossier_code.is_not(None))
              .group_by(r.c.dossier_code).having(sa.func.count() > 1).subquery("dup"))
    from_ = r.outerjoin(firsts, firsts.c.dossier_code == r.c.dossier_code)
    return _Source(from_, sa.null(), r.c.procedure, sa.null(), r.c.outcome, sa.null(), r.c.received_at, r.c.due_at,
                   r.c.returned_at, r.c.returned_at, sa.false(),
                   [r.c.run_id == run_id, sa.or_(firsts.c.first.is_(None), r.c.entry_id == firsts.c.first)])


def store_groups(conn: Connection, run_id: int, period: tuple[date, date]) -> None:
    """At audit time: the grouped counts of the system and register views of the run's own period, so
    that its statistics and reports read a few hundred rows instead of scanning every dossier."""
    start, end = period
    for view, source in (("system", _system_source(run_id, None)), ("register", _register_source(run_id))):
        grouped = _grouped(source, start, end).subquery("g")
        with few_groups(conn):
            conn.execute(sa.insert(stats_group).from_select(
                ["run_id", "view", "period_from", "period_to", *GROUP_COLUMNS],
                sa.select(sa.literal(run_id), sa.literal(view), sa.literal(start, sa.Date),
                          sa.literal(end, sa.Date), *[grouped.c[c] for c in GROUP_COLUMNS])))


def _after_plan_groups(conn: Connection, run_id: int, ov: sa.Table, start: date, end: date) -> list[Any]:
    """The plan's view from the run's stored system groups: minus the groups of the dossiers the plan
    writes as they are, plus the same dossiers as the plan leaves them. Reads the plan's few thousand
    dossiers instead of grouping every dossier of the run again. [] when no groups are stored for the
    period (the caller groups the whole run)."""
    before = _stored_groups(conn, run_id, "system", start, end)
    if not before:
        return []
    touched = sa.select(ov.c.dossier_code)
    as_is = _system_source(run_id, None)
    as_is.where.append(dossier.c.dossier_code.in_(touched))
    planned = _system_source(run_id, ov)
    planned.where.append(ov.c.dossier_code.is_not(None))
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for rows, sign in ((before, 1), (conn.execute(_grouped(as_is, start, end)).all(), -1),
                       (conn.execute(_grouped(planned, start, end)).all(), 1)):
        for *keys, n in rows:
            counts[tuple(keys)] += sign * int(n)
    return [(*keys, n) for keys, n in counts.items() if n]


def _stored_groups(conn: Connection, run_id: int, view: str, start: date, end: date) -> list[Any]:
    g = stats_group
    return conn.execute(sa.select(*[g.c[c] for c in GROUP_COLUMNS]).where(
        g.c.run_id == run_id, g.c.view == view, g.c.period_from == start, g.c.period_to == end)).all()


def _position(day: Any, start: Any, end: Any) -> Any:
    return sa.case((day.is_(None), NONE), (day < start, BEFORE), (day <= end, IN), else_=AFTER)


def _grouped(s: _Source, start: date, end: date) -> Any:
    """Count dossiers per field keys x status x channel x the dates' positions x stuck."""
    f, t = sa.literal(start, sa.Date), sa.literal(end, sa.Date)
    timeliness = sa.case((sa.or_(s.finished.is_(None), s.due.is_(None)), 0), (s.finished < s.due, EARLY),
                         (s.finished == s.due, ON_TIME), else_=LATE)
    due = sa.case((s.due.is_(None), NONE), (s.due >= t, IN), else_=BEFORE)  # within time | overdue at the end
    cols = [s.field.label("field"), s.key1.label("key1"), s.key2.label("key2"), s.status.label("status"),
            s.channel.label("channel"), _position(s.received, f, t).label("received"),
            _position(s.finished, f, t).label("finished"), _position(s.returned, f, t).label("returned"),
            timeliness.label("timeliness"), due.label("due"), sa.case((s.stuck, 1), else_=0).label("stuck")]
    assert [c.name for c in cols] == GROUP_COLUMNS[:-1]
    inner = sa.select(*cols).select_from(s.from_).where(*s.where).subquery("c")
    keys = [inner.c[c.name] for c in cols]
    return sa.select(*keys, sa.func.count().label("n")).group_by(*keys)


def _classify(status: str | None, channel: str | None, received: int, finished: int, returned: int, timeliness: int,
              due: int, as_of_pos: int, channels: tuple[str, ...]) -> tuple[str | None, str]:
    """(category, or None when not in the period's table; origin) of one group."""
    outcome = STATUS_OUTCOME.get(status, PAPER_OUTCOME.get(status, OPEN))  # type: ignore[arg-type]
    if outcome == SUBMITTED:
        return SUBMITTED, ""
    closed = None if outcome == OPEN else finished if finished != NONE else returned if returned != NONE else as_of_pos
    if received == AFTER or (received == BEFORE and closed == BEFORE):
        return None, ""
    if closed in (BEFORE, IN):
        cat = outcome if outcome != RESOLVED else \
            ("unclassified", "early", "on_time", "late")[timeliness if finished != NONE else 0]
    else:
        cat = ("unclassified", "overdue", "within_time")[due]
    origin = ("carried_over" if received == BEFORE else
              "online" if (channel or "").strip().lower() in channels else "in_person")
    return cat, origin


def _field_lookup(conn: Connection, run_id: int, view: str, catalog: list[Any], keys: set[Any]) -> Any:
    """field(own, key1, key2): the source's field, else the catalog's field of the procedure code (system)
    or of the procedure's name (register; `keys` are the names to look up)."""
    if view == "register":
        names = {name_key: fld for _, name_key, fld in sorted(catalog, key=repr) if fld}
        texts = dict(conn.execute(sa.select(text_key.c.value, text_key.c.key).where(
            text_key.c.run_id == run_id, text_key.c.value.in_(sorted(k for k in keys if k is not None)))).all())
        return cache(lambda own, name, _: names.get(texts.get(name)))
    codes = {proc: fld for proc, _, fld in sorted(catalog, key=repr) if fld}
    return cache(lambda own, key, proc: own or codes.get(key) or codes.get(proc))


def _overlay_table(conn: Connection, overlay: list[Overlay]) -> sa.Table:
    """The plan's writes as a temporary table, dropped with the connection's transaction scope."""
    table = sa.Table("stats_overlay", sa.MetaData(), sa.Column("dossier_code", sa.String(80)),
                     sa.Column("status", sa.String(32)), sa.Column("finished_at", sa.Date),
                     sa.Column("returned_at", sa.Date), sa.Column("unstuck", sa.Boolean),
                     prefixes=["TEMPORARY"], **TABLE_OPTS)
    table.drop(conn, checkfirst=True)
    table.create(conn)
    if conn.dialect.name != "duckdb":  # MariaDB joins an unindexed table by a scan of it per dossier
        sa.Index("ix_stats_overlay_code", table.c.dossier_code).create(conn)
    bulk_insert(conn, table, pa.table({  # the engine's fast path: a plan can hold tens of thousands of actions
        "dossier_code": pa.array([o.dossier_code for o in overlay], pa.string()),
        "status": pa.array([o.status for o in overlay], pa.string()),
        "finished_at": pa.array([o.finished_at for o in overlay], pa.date32()),
        "returned_at": pa.array([o.returned_at for o in overlay], pa.date32()),
        "unstuck": pa.array([o.unstuck for o in overlay], pa.bool_())}))
    return table


# ----------------------------------------------------------------------------------------- rows

def _rows(counts: dict[str | None, dict[str, int]], catalog_fields: list[str], settings: StatsSettings
          ) -> list[StatsRow]:
    """Field rows (the configured order, then by name; fields of the catalog with no dossier show zeros),
    the unknown field last, then the grand total and the groups' sub-totals."""
    names = list(dict.fromkeys([*settings.fields, *sorted({*catalog_fields, *(f for f in counts if f)},
                                                          key=fold)]))
    rows = [StatsRow(i, "field", f, _with_derived(counts.get(f))) for i, f in enumerate(names, 1)]
    if None in counts:
        rows.append(StatsRow(len(rows) + 1, "unknown_field", "", _with_derived(counts[None])))
    out = [*rows, StatsRow(None, "total", "", _sum(rows))]
    for g in settings.groups:
        members = [r for r in rows if r.kind == "field" and r.label in g.fields]
        out.append(StatsRow(None, "group", g.label, _sum(members)))
    return out


def _with_derived(values: dict[str, int] | None) -> dict[str, int]:
    v = dict(values) if values else dict.fromkeys(COUNTS, 0)
    v["on_time_early"] = v["early"] + v["on_time"]
    return v


def _sum(rows: list[StatsRow]) -> dict[str, int]:
    return {k: sum(r.values[k] for r in rows) for k in (*COUNTS, "on_time_early")}


def overlay_of(actions: Iterable[tuple[str, str, bool, dict[str, Any]]]) -> list[Overlay]:
    """The plan's confirmed actions (dossier code, action, confirmed, values set) as an overlay: what
    `apply` will write (an unconfirmed guess is never applied, so it changes nothing here)."""
    out = []
    for code, action, confirmed, values in actions:
        if not confirmed or not values:
            continue
        out.append(Overlay(code, values.get("status"), _day(values.get("finished_at")),
                           _day(values.get("returned_at")), action in ("migrate", "close")))
    return out


def _day(v: Any) -> date | None:
    if isinstance(v, datetime):
        return v.date()
    return v if v is None or isinstance(v, date) else date.fromisoformat(str(v)[:10])
