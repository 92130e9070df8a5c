"""The audit: set-based SQL in the store that classifies every dossier and records the findings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.audit.groups import default_period, store_groups
from reconcile.model import CLOSED_STATUSES, OUTCOME_STATUSES, FindingKind, MatchClass, Outcome
from reconcile.store import (
    bulk_insert, code_match, dossier, fill_repeated_codes, filled, finding, reconciliation, register_book, register_entry,
    repeated, repeated_code, stats_group, text_key, wf_state, wf_version, work_day,
)
from reconcile.util.normalize import compare_key
from reconcile.util.progress import QUIET, Progress
from reconcile.util.sqlfuncs import days_between, json_agg, json_text, obj
from reconcile.workflow.state import StallRule, record_state, workflow_findings

K = FindingKind
DATE_FIELDS = ("received_at", "due_at", "returned_at")
# The columns _Compared reads on each side of a pair.
COMPARED_REGISTER = (*DATE_FIELDS, "applicant_key", "procedure")
COMPARED_SYSTEM = (*DATE_FIELDS, "due_at_revised", "applicant_key", "procedure", "workflow_key")


@dataclass(frozen=True, slots=True)
class AuditSettings:
    as_of: date
    date_tolerance_days: int = 0
    paper_only_units: tuple[str, ...] = ()
    stall: StallRule = StallRule()
    period: tuple[date, date] | None = None  # the statistics' reporting period (default: stats.default_period)

    def stats_period(self) -> tuple[date, date]:
        return self.period or default_period(self.as_of)

    def to_dict(self) -> dict[str, Any]:
        start, end = self.stats_period()
        return {"as_of": self.as_of.isoformat(), "date_tolerance_days": self.date_tolerance_days,
                "paper_only_units": list(self.paper_only_units),
                "stalled": {"factor": self.stall.factor, "min_working_days": self.stall.min_days},
                "period": {"from": start.isoformat(), "to": end.isoformat()}}


def _representatives(run_id: int) -> tuple[Any, Any]:
    """One register row and one system row per code, with the columns the classification reads: on
    paper the first row with a return date, else the first row; in the system the first record. The
    codes on several rows (repeated_code) name theirs. Written as IN lists over repeated_code, not as
    a left join to it filtered on its nulls: PostgreSQL estimated that at one row and then joined the
    catalog lookups by nested loops; a NOT EXISTS cost DuckDB a correlated join."""
    def kept(t: sa.Table, side: str, row: Any) -> Any:
        codes = repeated(run_id, side).subquery()
        return sa.or_(t.c.dossier_code.not_in(sa.select(codes.c.dossier_code)), row.in_(sa.select(codes.c.pick_row)))

    re_, d = register_entry, dossier
    reg = (sa.select(re_.c.dossier_code, re_.c.entry_id, re_.c.agency, re_.c.outcome,
                     *[re_.c[c] for c in COMPARED_REGISTER])
           .where(re_.c.run_id == run_id, re_.c.dossier_code.is_not(None), kept(re_, "register", re_.c.entry_id))
           .subquery("r"))
    sys_ = (sa.select(d.c.dossier_code, d.c.source_row, d.c.status, *[d.c[c] for c in COMPARED_SYSTEM])
            .where(d.c.run_id == run_id, d.c.dossier_code.is_not(None), kept(d, "system", d.c.source_row))
            .subquery("s"))
    return reg, sys_


@dataclass(frozen=True)
class _Compared:
    """What the audit compares between a code's register row `r` and system row `s` (tables or
    subqueries with the store's column names), as SQL: the dates, each within the tolerance; the
    applicant; the procedure, when the paper's procedure name is a catalog name (its key, `pk`) other
    than the system's procedure code's (`vk`: the catalog's procedures, `vn`: its (procedure, name)
    pairs; small tables joined, not correlated EXISTS subqueries, for which DuckDB materialises the
    whole join of pairs once more)."""

    r: Any
    s: Any
    pk: Any
    vk: Any
    vn: Any
    system_dates: dict[str, Any]
    proc_differs: Any
    differs: Any  # true when anything compared differs

    @classmethod
    def of(cls, run_id: int, tolerance_days: int, r: Any, s: Any) -> "_Compared":
        tol = int(tolerance_days)
        system_dates = {"received_at": s.c.received_at, "due_at": sa.func.coalesce(s.c.due_at_revised, s.c.due_at),
                        "returned_at": s.c.returned_at}
        date_differs = [sa.or_(d > tol, d < -tol)
                        for d in (days_between(r.c[f], system_dates[f]) for f in DATE_FIELDS)]
        v = wf_version
        pk = sa.select(text_key.c.value, text_key.c.key).where(text_key.c.run_id == run_id).subquery("pk")
        vk = sa.select(v.c.procedure).where(v.c.run_id == run_id).distinct().subquery("vk")
        vn = sa.select(v.c.procedure, v.c.name_key).where(v.c.run_id == run_id).distinct().subquery("vn")
        proc_differs = sa.and_(pk.c.key.is_not(None), vk.c.procedure.is_not(None), vn.c.procedure.is_(None),
                               pk.c.key != sa.func.lower(sa.func.coalesce(s.c.procedure, "")))
        applicant_differs = sa.and_(r.c.applicant_key.is_not(None), s.c.applicant_key.is_not(None),
                                    r.c.applicant_key != s.c.applicant_key)
        return cls(r, s, pk, vk, vn, system_dates, proc_differs,
                   sa.or_(applicant_differs, proc_differs, *date_differs))

    def onto(self, stmt: Any) -> Any:
        """`stmt` (a SELECT whose FROM holds r and s) with the catalog lookups joined."""
        r, s, pk, vk, vn = self.r, self.s, self.pk, self.vk, self.vn
        return (stmt.outerjoin_from(r, pk, pk.c.value == r.c.procedure)
                .outerjoin_from(s, vk, vk.c.procedure == s.c.workflow_key)
                .outerjoin_from(s, vn, sa.and_(vn.c.procedure == s.c.workflow_key, vn.c.name_key == pk.c.key)))


def _register_evidence(r: Any) -> Any:
    return obj(file=r.c.source_file, sheet=r.c.sheet, row=r.c.row_no, stt=r.c.stt_raw, code=r.c.code_raw,
               received=r.c.received_raw, due=r.c.due_raw, returned=r.c.returned_raw, note=r.c.note)


def _system_evidence(s: Any) -> Any:
    return obj(row=s.c.source_row, status=s.c.status, status_raw=s.c.status_raw,
               workflow_key=s.c.workflow_key, workflow_version=s.c.workflow_version,
               current_step=s.c.current_step, assignee=s.c.assignee, unit=s.c.unit,
               received_at=s.c.received_at, due_at=s.c.due_at, finished_at=s.c.finished_at,
               returned_at=s.c.returned_at)


def _both_evidence(r: Any, s: Any) -> Any:
    return obj(
        register=sa.case((r.c.entry_id.is_(None), sa.null()), else_=_register_evidence(r)),
        system=sa.case((s.c.source_row.is_(None), sa.null()), else_=_system_evidence(s)),
    )


def _insert_findings(conn: Connection, run_id: int, kind: FindingKind | None, select: Any) -> int:
    """`select` yields dossier_code, details and evidence columns; kind and severity too when `kind`
    is None (one pass writing several kinds)."""
    sub = select.subquery("f")
    kind_cols = ((sub.c.kind, sub.c.severity) if kind is None
                 else (sa.literal(kind.value), sa.literal(kind.severity.value)))
    stmt = sa.insert(finding).from_select(
        ["run_id", "kind", "severity", "dossier_code", "details", "evidence"],
        sa.select(sa.literal(run_id), *kind_cols, sub.c.dossier_code, sub.c.details, sub.c.evidence),
    )
    return conn.execute(stmt).rowcount or 0


def run_audit(conn: Connection, run_id: int, settings: AuditSettings, progress: Progress = QUIET,
              dropped: set[str] | None = None) -> None:
    """Classify every code of the union of both sides, then record every finding of the run. `dropped`:
    the indexes store.begin_fill dropped, built here once their tables are full."""
    dropped = set() if dropped is None else dropped
    progress.stage("matching the codes")
    fill_repeated_codes(conn, run_id)
    filled(conn, dropped, repeated_code)
    reg, sys_ = _representatives(run_id)
    _classify(conn, run_id, settings, reg, sys_)
    filled(conn, dropped, reconciliation)
    # From here on the reconciliation table names each code's representative rows: plain joins.
    r, s = register_entry.alias("r"), dossier.alias("s")
    progress.stage("finding missing and unclosed dossiers")
    _class_findings(conn, run_id, r, s)
    progress.stage("comparing dates and fields")
    _pair_findings(conn, run_id, settings, r, s)
    progress.stage("finding duplicate codes and numbering gaps")
    _duplicate_findings(conn, run_id)
    _numbering_findings(conn, run_id)
    progress.stage("workflow state of open dossiers")
    record_state(conn, run_id, settings.as_of, settings.stall)
    filled(conn, dropped, work_day, wf_state)
    progress.stage("workflow findings")
    workflow_findings(conn, run_id)
    progress.stage("statistics")
    store_groups(conn, run_id, settings.stats_period())
    filled(conn, dropped, finding, stats_group)


def _classify(conn: Connection, run_id: int, settings: AuditSettings, r: Any, s: Any) -> None:
    """Each code's class, from its representative rows `r` and `s` (see _representatives)."""
    closed = [c.value for c in CLOSED_STATUSES]
    # The run's register books cover a handful of periods: compared as values, not by a subquery
    # correlated with every pair (which DuckDB runs by materialising all the pairs once more).
    books = conn.execute(sa.select(register_book.c.period_from, register_book.c.period_to)
                         .where(register_book.c.run_id == run_id).distinct()).all()
    in_period = sa.or_(sa.false(), *[s.c.received_at.between(start, end) for start, end in books])
    paper_only = [k for k in (compare_key(u) for u in settings.paper_only_units) if k]
    agrees = sa.or_(*[
        sa.and_(r.c.outcome == o.value, s.c.status.in_([st.value for st in statuses]))
        for o, statuses in OUTCOME_STATUSES.items()
    ])
    cls = sa.case(
        (s.c.source_row.is_(None),
         sa.case((r.c.agency.in_(sa.select(text_key.c.value).where(text_key.c.run_id == run_id,
                                                                  text_key.c.key.in_(paper_only))),
                  MatchClass.PAPER_ONLY_UNIT.value)
                 if paper_only else (sa.false(), ""), else_=MatchClass.MISSING_IN_SYSTEM.value)),
        (r.c.entry_id.is_(None),
         sa.case((sa.and_(s.c.received_at.is_not(None), ~in_period), MatchClass.OUTSIDE_PERIOD.value),
                 else_=MatchClass.MISSING_IN_REGISTER.value)),
        (sa.and_(r.c.outcome != Outcome.NONE.value, s.c.status.not_in(closed)),
         MatchClass.RESOLVED_NOT_CLOSED.value),
        (sa.and_(r.c.outcome == Outcome.NONE.value, s.c.status.in_(closed)),
         MatchClass.CLOSED_NOT_RESOLVED.value),
        (sa.and_(r.c.outcome != Outcome.NONE.value, ~agrees), MatchClass.STATUS_MISMATCH.value),
        else_=MatchClass.MATCHED.value,
    )
    if conn.dialect.name in ("mysql", "mariadb"):  # no FULL OUTER JOIN: the union of codes, then both sides
        codes = sa.union(sa.select(r.c.dossier_code), sa.select(s.c.dossier_code)).subquery("codes")
        code = codes.c.dossier_code
        pairs = codes.outerjoin(r, r.c.dossier_code == code).outerjoin(s, s.c.dossier_code == code)
    else:
        code = sa.func.coalesce(r.c.dossier_code, s.c.dossier_code)
        pairs = r.join(s, r.c.dossier_code == s.c.dossier_code, full=True)
    # Whether the pair differs in what _pair_findings compares, found in this same pass over every pair:
    # that step then reads the few pairs that differ, not every pair again.
    compared = _Compared.of(run_id, settings.date_tolerance_days, r, s)
    differs = sa.case((compared.differs, sa.true()), else_=sa.false())
    select = compared.onto(sa.select(sa.literal(run_id), code, cls, r.c.entry_id, s.c.source_row, differs)
                           .select_from(pairs))
    conn.execute(sa.insert(reconciliation).from_select(
        ["run_id", "dossier_code", "class", "entry_id", "source_row", "differs"], select))


def _pairs(conn: Connection, run_id: int, r: Any, s: Any, classes: list[str] | None = None) -> Any:
    """SELECT rc.dossier_code FROM the run's reconciliation joined to its representative rows (by code
    too on a server store: store.code_match)."""
    rc = reconciliation
    stmt = (
        sa.select(rc.c.dossier_code)
        .select_from(rc)
        .outerjoin(r, sa.and_(r.c.run_id == run_id, *code_match(conn, r.c.dossier_code, rc.c.dossier_code),
                              r.c.entry_id == rc.c.entry_id))
        .outerjoin(s, sa.and_(s.c.run_id == run_id, *code_match(conn, s.c.dossier_code, rc.c.dossier_code),
                              s.c.source_row == rc.c.source_row))
        .where(rc.c.run_id == run_id)
    )
    return stmt.where(rc.c["class"].in_(classes)) if classes is not None else stmt


def _class_findings(conn: Connection, run_id: int, r: Any, s: Any) -> None:
    """The five class findings in one pass over the (few) non-matching codes."""
    details = {
        K.MISSING_IN_SYSTEM: obj(received_at=r.c.received_at, procedure=r.c.procedure, agency=r.c.agency,
                                 reason=sa.literal_column("'on the paper register, not in the system'")),
        K.MISSING_IN_REGISTER: obj(received_at=s.c.received_at, procedure=s.c.procedure, status=s.c.status,
                                   reason=sa.literal_column("'in the system, not on any loaded register book "
                                                            "covering its received date'")),
        K.RESOLVED_NOT_CLOSED: obj(paper_outcome=r.c.outcome, returned_on_paper=r.c.returned_at,
                                   system_status=s.c.status, current_step=s.c.current_step,
                                   reason=sa.literal_column("'resolved on paper, still open in the system'")),
        K.CLOSED_NOT_RESOLVED: obj(paper_outcome=r.c.outcome, system_status=s.c.status,
                                   finished_at=s.c.finished_at, returned_at=s.c.returned_at,
                                   reason=sa.literal_column("'closed in the system, no result or outcome on "
                                                            "paper'")),
        K.STATUS_MISMATCH: obj(paper_outcome=r.c.outcome, system_status=s.c.status,
                               returned_on_paper=r.c.returned_at, returned_at=s.c.returned_at,
                               reason=sa.literal_column("'closed on both sides with different outcomes'")),
    }
    cls = reconciliation.c["class"]
    select = _pairs(conn, run_id, r, s, [k.value for k in details]).add_columns(
        cls.label("kind"),
        sa.case(*[(cls == k.value, k.severity.value) for k in details]).label("severity"),
        json_text(sa.case(*[(cls == k.value, d) for k, d in details.items()])).label("details"),
        json_text(_both_evidence(r, s)).label("evidence"),
    )
    _insert_findings(conn, run_id, None, select)


def _timeliness(end: date | None, due: date | None, as_of: date) -> str | None:
    """early / on_time / late by the end date; within / overdue at the audit date when still open."""
    if due is None:
        return None
    if end is None:
        return "overdue" if due < as_of else "within"
    return "early" if end < due else "on_time" if end == due else "late"


def _pair_findings(conn: Connection, run_id: int, settings: AuditSettings, r: Any, s: Any) -> None:
    """date_mismatch and field_mismatch: the classification marked the few pairs that differ somewhere
    (reconciliation.differs); they are read with their evidence, and Python explains them (which
    fields differ, with both values)."""
    tol = int(settings.date_tolerance_days)
    compared = _Compared.of(run_id, tol, r, s)
    rows = conn.execute(
        compared.onto(_pairs(conn, run_id, r, s)).add_columns(
            reconciliation.c.entry_id, reconciliation.c.source_row,
            *[r.c[f].label(f"r_{f}") for f in DATE_FIELDS],
            *[e.label(f"s_{f}") for f, e in compared.system_dates.items()],
            r.c.applicant.label("r_applicant"), s.c.applicant.label("s_applicant"),
            r.c.applicant_key.label("r_applicant_key"), s.c.applicant_key.label("s_applicant_key"),
            r.c.procedure.label("r_procedure"), compared.pk.c.key.label("r_procedure_key"),
            compared.proc_differs.label("proc_differs"), s.c.workflow_key, s.c.workflow_version,
            json_text(_both_evidence(r, s)).label("evidence"))
        .where(reconciliation.c.differs)
        .order_by(reconciliation.c.dossier_code)
    ).mappings().all()
    if not rows:
        return
    v = wf_version
    # Catalog name and key per procedure and version; a version the catalog lacks uses the latest.
    names: dict[str, dict[int, tuple[str, str]]] = {}
    for p, ver, name, key in conn.execute(sa.select(v.c.procedure, v.c.version, v.c.name, v.c.name_key)
                                          .where(v.c.run_id == run_id).order_by(v.c.procedure, v.c.version)):
        names.setdefault(p, {})[ver] = (name, key)
    out: list[dict[str, Any]] = []

    def add(kind: FindingKind, code: str, details: dict[str, Any], row: Any) -> None:
        out.append({"run_id": run_id, "kind": kind.value, "severity": kind.severity.value, "dossier_code": code,
                    "details": json.dumps(details, ensure_ascii=False, default=str),
                    "evidence": row["evidence"]})

    for row in rows:
        code = row["dossier_code"]
        # Timeliness by the date the result went back to the applicant, each side with its own due date.
        t_reg = _timeliness(row["r_returned_at"], row["r_due_at"], settings.as_of)
        t_sys = _timeliness(row["s_returned_at"], row["s_due_at"], settings.as_of)
        for f in DATE_FIELDS:
            rv, sv = row[f"r_{f}"], row[f"s_{f}"]
            if rv is not None and sv is not None and abs((sv - rv).days) > tol:
                add(K.DATE_MISMATCH, code, {
                    "field": f, "register": rv.isoformat(), "system": sv.isoformat(),
                    "difference_days": (sv - rv).days, "tolerance_days": tol, "register_timeliness": t_reg,
                    "system_timeliness": t_sys, "timeliness_flips": None if None in (t_reg, t_sys) else t_reg != t_sys,
                }, row)
        if not (row["proc_differs"] or (row["r_applicant_key"] and row["s_applicant_key"]
                                        and row["r_applicant_key"] != row["s_applicant_key"])):
            continue  # dates only
        versions = names.get(row["workflow_key"], {})
        s_name, s_key = versions.get(row["workflow_version"]) or (
            versions[max(versions)] if versions else (None, None))
        paper = {"applicant": row["r_applicant_key"], "procedure": row["r_procedure_key"]}
        system = {"applicant": row["s_applicant_key"] if row["r_applicant_key"] and row["s_applicant_key"]
                  else row["r_applicant_key"], "procedure": s_key if row["proc_differs"] else row["r_procedure_key"]}
        fields = sorted(k for k in paper if None not in (paper[k], system[k]) and paper[k] != system[k])
        shown = {"applicant": (row["r_applicant"], row["s_applicant"]), "procedure": (row["r_procedure"], s_name)}
        if fields:
            add(K.FIELD_MISMATCH, code, {"fields": [{"field": f, "register": shown[f][0], "system": shown[f][1]}
                                                    for f in fields]}, row)
    bulk_insert(conn, finding, pa.Table.from_pylist(out))


def _duplicate_findings(conn: Connection, run_id: int) -> None:
    """The same code on several register rows, or on several system records."""
    re_, d = register_entry, dossier
    sides = (
        (re_, "register", "the same code on several register rows", "register_rows",
         obj(file=re_.c.source_file, sheet=re_.c.sheet, row=re_.c.row_no, stt=re_.c.stt_raw, code=re_.c.code_raw),
         re_.c.entry_id),
        (d, "system", "the same code on several system records", "system_rows",
         obj(row=d.c.source_row, status=d.c.status), d.c.source_row),
    )
    for t, side, reason, rows_key, row, order in sides:
        dup = repeated(run_id, side).with_only_columns(repeated_code.c.dossier_code)
        select = (
            sa.select(t.c.dossier_code,
                      json_text(obj(side=sa.literal_column(f"'{side}'"), count=sa.func.count(),
                                    reason=sa.literal_column(f"'{reason}'"))).label("details"),
                      json_text(obj(**{rows_key: json_agg(row, order)})).label("evidence"))
            .where(t.c.run_id == run_id, t.c.dossier_code.in_(dup))
            .group_by(t.c.dossier_code)
        )
        _insert_findings(conn, run_id, K.DUPLICATE_CODE, select)


def _numbering_findings(conn: Connection, run_id: int) -> None:
    re_ = register_entry
    prev = sa.func.lag(re_.c.stt).over(partition_by=re_.c.book, order_by=(re_.c.stt, re_.c.entry_id))
    numbered = (sa.select(re_.c.book, re_.c.stt, re_.c.source_file, re_.c.sheet, re_.c.row_no,
                          sa.func.coalesce(prev, 0).label("prev"))
                .where(re_.c.run_id == run_id, re_.c.stt.is_not(None)).subquery("n"))
    n = numbered
    problem = sa.case((n.c.stt == n.c.prev, "duplicate_number"), else_="gap")
    select = (
        sa.select(
            sa.null().label("dossier_code"),
            json_text(obj(book=n.c.book, problem=problem,
                          missing_from=sa.case((n.c.stt == n.c.prev, sa.null()), else_=n.c.prev + 1),
                          missing_to=sa.case((n.c.stt == n.c.prev, sa.null()), else_=n.c.stt - 1),
                          count=sa.case((n.c.stt == n.c.prev, 1), else_=n.c.stt - n.c.prev - 1),
                          reason=sa.case((n.c.stt == n.c.prev, "entry number used twice"),
                                         else_="entry numbers skipped in the book"))).label("details"),
            json_text(obj(register=obj(file=n.c.source_file, sheet=n.c.sheet, row=n.c.row_no,
                                       stt=n.c.stt))).label("evidence"),
        )
        .where(sa.or_(n.c.stt - n.c.prev > 1, n.c.stt == n.c.prev))
    )
    _insert_findings(conn, run_id, K.REGISTER_NUMBERING_GAP, select)
