"""The statistics table per field and period (DOMAIN §6), set-based in the store: system, register or
after-plan view, official or extended layout, a convention for withdrawn/returned dossiers.

One grouped count does the work: every dossier of the period gets a category (early, on time, late,
within time, overdue, withdrawn, returned unresolved, unclassified), an origin (carried over, online,
in person) and a stuck flag, and the store counts them per field. Python folds those few hundred
groups into rows, so every identity holds by construction:
  total = online + in_person + carried_over = resolved + in_progress + withdrawn + returned + unclassified.
A dossier's state at a day is a function of that day (open until its closing date), so this period's
carried-over count equals the previous period's in-progress count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import BadInput
from reconcile.model import FindingKind as K
from reconcile.normalize import fold
from reconcile.stats_model import CONVENTIONS, COUNTS, LAYOUTS, VIEWS, Note, StatsRow, StatsTable, columns_for
from reconcile.store import dossier, register_entry, text_key, wf_state, wf_version
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
    if view == "register":
        source = _register_source(run_id, as_of)
    else:
        ov = _overlay_table(conn, overlay) if view == "after-plan" else None
        source = _system_source(run_id, as_of, settings.online_channels, ov)
    groups = conn.execute(_grouped(source, start, end)).all()
    counts: dict[str | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    left_out = {WITHDRAWN: 0, RETURNED_UNRESOLVED: 0}
    flagged = {"submitted": 0, "no_received": 0}
    for fld, cat, origin, stuck, no_received, n in groups:
        n = int(n)
        if cat == SUBMITTED:
            flagged["submitted"] += n
            continue
        if cat in left_out and convention == "excluded":
            left_out[cat] += n
            continue
        if cat in left_out and convention == "on-time":
            cat = "on_time"
        row = counts[fld]
        row["total"] += n
        row[origin] += n
        row[cat] += n
        row["resolved"] += n if cat in ("early", "on_time", "late") else 0
        row["in_progress"] += n if cat in ("within_time", "overdue") else 0
        row["stuck"] += n if stuck and cat in ("within_time", "overdue") else 0
        flagged["no_received"] += n if no_received else 0
    rows = _rows(counts, _catalog_fields(conn, run_id), settings)
    notes = [Note(f"convention.{convention}", left_out_params(left_out) if convention == "excluded" else {}),
             Note("note.timeliness"), Note("note.carried")]
    total = next(r for r in rows if r.kind == "total")
    if total.values["stuck"]:
        notes.append(Note("note.stuck", {"n": total.values["stuck"]}))
    if total.values["unclassified"]:
        notes.append(Note("note.unclassified", {"n": total.values["unclassified"]}))
    if flagged["submitted"]:
        notes.append(Note("note.submitted", {"n": flagged["submitted"]}))
    if flagged["no_received"]:
        notes.append(Note("note.no_received", {"n": flagged["no_received"]}))
    if view == "register":
        notes.append(Note("note.register_view"))
    if view == "after-plan":
        notes.append(Note("note.after_plan", {"n": len(overlay)}))
    return StatsTable(run_id, as_of.isoformat(), start.isoformat(), end.isoformat(), view, layout, convention,
                      columns_for(layout, convention), tuple(rows), tuple(notes))


def left_out_params(left_out: dict[str, int]) -> dict[str, int]:
    return {"withdrawn": left_out[WITHDRAWN], "returned": left_out[RETURNED_UNRESOLVED]}


# ----------------------------------------------------------------------------------------- SQL

@dataclass(frozen=True)
class _Source:
    """One row per dossier: field, outcome, dates, origin facts and the stuck flag, as SQL expressions."""

    from_: Any
    field: Any
    outcome: Any
    received: Any
    due: Any
    finished: Any  # the day processing finished (timeliness)
    closed: Any  # the day the dossier left the table's in-progress count (null: open)
    online: Any  # boolean expression
    stuck: Any  # boolean expression
    where: list[Any] = field(default_factory=list)


def _field_by_procedure(run_id: int) -> Any:
    v = wf_version
    return (sa.select(v.c.procedure, sa.func.max(v.c.field).label("field"))
            .where(v.c.run_id == run_id).group_by(v.c.procedure).subquery("fp"))


def _case(value: Any, mapping: dict[str, str], default: str) -> Any:
    return sa.case(*[(value == k, sa.literal(v)) for k, v in mapping.items()], else_=sa.literal(default))


def _system_source(run_id: int, as_of: date, channels: tuple[str, ...], ov: sa.Table | None) -> _Source:
    d, w = dossier, wf_state
    fp = _field_by_procedure(run_id)
    fp2 = fp.alias("fp2")
    from_ = (d.outerjoin(fp, fp.c.procedure == d.c.workflow_key).outerjoin(fp2, fp2.c.procedure == d.c.procedure)
             .outerjoin(w, sa.and_(w.c.run_id == d.c.run_id, w.c.source_row == d.c.source_row)))
    status, finished, returned = d.c.status, d.c.finished_at, d.c.returned_at
    stuck = w.c.flags.op("&")(STUCK_MASK) != 0
    if ov is not None:
        from_ = from_.outerjoin(ov, ov.c.dossier_code == d.c.dossier_code)
        status = sa.func.coalesce(ov.c.status, status)
        finished = sa.func.coalesce(ov.c.finished_at, finished)
        returned = sa.func.coalesce(ov.c.returned_at, returned)
        stuck = sa.and_(stuck, sa.func.coalesce(ov.c.unstuck, False) == sa.false())
    outcome = _case(status, STATUS_OUTCOME, OPEN)
    closed = sa.case((outcome.in_([OPEN, SUBMITTED]), sa.null()),
                     else_=sa.func.coalesce(finished, returned, sa.literal(as_of, sa.Date)))
    online = sa.func.lower(sa.func.trim(sa.func.coalesce(d.c.channel, ""))).in_(channels)
    return _Source(from_, sa.func.coalesce(d.c.field, fp.c.field, fp2.c.field), outcome, d.c.received_at,
                   sa.func.coalesce(d.c.due_at_revised, d.c.due_at), finished, closed, online,
                   sa.func.coalesce(stuck, False), [d.c.run_id == run_id])


def _register_source(run_id: int, as_of: date) -> _Source:
    """The paper view: each dossier code once (its first entry), rows without a code each once."""
    r, v = register_entry, wf_version
    first = (sa.select(r, sa.func.row_number().over(partition_by=r.c.dossier_code, order_by=r.c.entry_id)
                       .label("nth")).where(r.c.run_id == run_id).subquery("re"))
    names = (sa.select(v.c.name_key, sa.func.max(v.c.field).label("field"))
             .where(v.c.run_id == run_id).group_by(v.c.name_key).subquery("fn"))
    from_ = (first.outerjoin(text_key, sa.and_(text_key.c.run_id == run_id, text_key.c.value == first.c.procedure))
             .outerjoin(names, names.c.name_key == text_key.c.key))
    outcome = _case(first.c.outcome, PAPER_OUTCOME, OPEN)
    closed = sa.case((outcome == OPEN, sa.null()),
                     else_=sa.func.coalesce(first.c.returned_at, sa.literal(as_of, sa.Date)))
    return _Source(from_, names.c.field, outcome, first.c.received_at, first.c.due_at, first.c.returned_at, closed,
                   sa.false(), sa.false(), [sa.or_(first.c.nth == 1, first.c.dossier_code.is_(None))])


def _grouped(s: _Source, start: date, end: date) -> Any:
    """Count the period's dossiers per field x category x origin x stuck."""
    f, t = sa.literal(start, sa.Date), sa.literal(end, sa.Date)
    recv, closed, due, fin = s.received, s.closed, s.due, s.finished
    closed_in = sa.and_(closed.is_not(None), closed <= t)
    cat = sa.case(
        (s.outcome == SUBMITTED, sa.literal(SUBMITTED)),
        (sa.and_(closed_in, s.outcome == RESOLVED),
         sa.case((sa.or_(fin.is_(None), due.is_(None)), sa.literal("unclassified")),
                 (fin < due, sa.literal("early")), (fin == due, sa.literal("on_time")), else_=sa.literal("late"))),
        (closed_in, s.outcome),
        (due.is_(None), sa.literal("unclassified")),
        (due >= t, sa.literal("within_time")),
        else_=sa.literal("overdue"))
    origin = sa.case((recv < f, sa.literal("carried_over")), (s.online, sa.literal("online")),
                     else_=sa.literal("in_person"))
    stuck = sa.case((s.stuck, 1), else_=0)
    no_received = sa.case((recv.is_(None), 1), else_=0)
    cols = [s.field.label("field"), cat.label("cat"), origin.label("origin"), stuck.label("stuck"),
            no_received.label("no_received")]
    in_table = sa.and_(sa.or_(recv.is_(None), recv <= t),
                       sa.or_(recv.is_(None), recv >= f, closed.is_(None), closed >= f))
    inner = sa.select(*cols).select_from(s.from_).where(*s.where, in_table).subquery("c")
    return (sa.select(inner.c.field, inner.c.cat, inner.c.origin, inner.c.stuck, inner.c.no_received, sa.func.count())
            .group_by(inner.c.field, inner.c.cat, inner.c.origin, inner.c.stuck, inner.c.no_received))


def _overlay_table(conn: Connection, overlay: list[Overlay]) -> sa.Table:
    """The plan's writes as a temporary table, dropped with the connection's transaction scope."""
    table = sa.Table("stats_overlay", sa.MetaData(), sa.Column("dossier_code", sa.String(80)),
                     sa.Column("status", sa.String(32)), sa.Column("finished_at", sa.Date),
                     sa.Column("returned_at", sa.Date), sa.Column("unstuck", sa.Boolean),
                     prefixes=["TEMPORARY"])
    table.drop(conn, checkfirst=True)
    table.create(conn)
    if overlay:
        conn.execute(table.insert(), [{"dossier_code": o.dossier_code, "status": o.status, "finished_at": o.finished_at,
                                       "returned_at": o.returned_at, "unstuck": o.unstuck} for o in overlay])
    return table


def _catalog_fields(conn: Connection, run_id: int) -> list[str]:
    v = wf_version
    return [f for (f,) in conn.execute(sa.select(v.c.field).where(v.c.run_id == run_id, v.c.field.is_not(None))
                                       .distinct())]


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
