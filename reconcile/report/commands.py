"""`reconcile report`: build one audit run's ReportData from the store and write it in each format."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.audit.results import join_catalog_field, run_report
from reconcile.errors import BadInput
from reconcile.fix.commands import PlannedAction, plan_actions
from reconcile.model import FindingKind
from reconcile.report.data import (
    AGE_BUCKETS, Action, CensusLine, Evidence, FindingItem, FindingSection, RateChange, ReportData, Summary, WorkItem,
    Worklist,
)
from reconcile.stats import tables as stats_mod
from reconcile.stats.tables import StatsSettings
from reconcile.store import (
    Store, audit_run, code_match, dossier, finding, open_store, reconciliation, register_entry, resolve_run,
    wf_state, wf_step, wf_version,
)
from reconcile.util.files import write_atomically
from reconcile.util.i18n import check_lang
from reconcile.workflow.state import ORPHAN_MASK, flagged
from reconcile.workflow.state import census as census_rows

FORMATS = ("html", "md", "xlsx", "json", "csv")
DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class ReportRequest:
    run_id: int | None = None
    formats: tuple[str, ...] = ("html",)
    langs: tuple[str, ...] = ("vi",)
    out: str = "."
    limit: int = DEFAULT_LIMIT
    settings: StatsSettings = StatsSettings()
    period: tuple[Any, Any] | None = None
    district: str | None = None
    plan_path: str | None = None  # the plan file whose effect the report shows (default: the run's plan)


def report(store_url: str | None, request: ReportRequest) -> list[Path]:
    """Build the report data of one run and write every requested format and language; the paths written."""
    for lang in request.langs:
        check_lang(lang)
    data = build(store_url, request)  # first: a run that does not exist leaves no folder behind
    out = Path(request.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot create the folder: {exc.strerror}. Hint: pick a writable folder.") from None
    return write(data, request.formats, request.langs, out)


def write(data: ReportData, formats: tuple[str, ...], langs: tuple[str, ...], out: Path) -> list[Path]:
    written: list[Path] = []

    def put(name: str, content: str | bytes) -> None:
        write_atomically(out / name, content)
        written.append(out / name)

    for fmt in formats:
        if fmt == "json":
            put("report.json", json.dumps(data.to_dict(), ensure_ascii=False, indent=2, sort_keys=True,
                                          default=str) + "\n")
            continue
        for lang in langs:
            if fmt == "html":
                from reconcile.report.htmlout import render_html

                put(f"report.{lang}.html", render_html(data, lang))
            elif fmt == "md":
                from reconcile.report.mdout import render_markdown

                put(f"report.{lang}.md", render_markdown(data, lang))
            elif fmt == "xlsx":
                from reconcile.report.xlsxout import write_report_xlsx

                write_report_xlsx(data, lang, out / f"report.{lang}.xlsx")
                written.append(out / f"report.{lang}.xlsx")
            elif fmt == "csv":
                from reconcile.report.csvout import report_csv

                for name, text in sorted(report_csv(data, lang).items()):
                    put(f"report.{lang}.{name}", text)
    return written


# -------------------------------------------------------------------------------------- building

def build(store_url: str | None, request: ReportRequest) -> ReportData:
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = resolve_run(store, conn, request.run_id)
            return _build(store, conn, run_id, request)
    finally:
        store.engine.dispose()


def _build(store: Store, conn: Connection, run_id: int, request: ReportRequest) -> ReportData:
    run = run_report(store, run_id)
    as_of = conn.execute(sa.select(audit_run.c.as_of).where(audit_run.c.id == run_id)).scalar_one()
    plan = plan_actions(conn, store, run_id, request.plan_path)
    overlay = stats_mod.overlay_of((a.dossier_code, a.action, a.confirmed, a.set) for a in plan)

    def table(view: str) -> Any:
        return stats_mod.compute(conn, run_id, as_of, period=request.period, layout="official", view=view,
                                 settings=request.settings, overlay=overlay)

    before, after, paper = table("system"), table("after-plan"), table("register")
    facts = _dossier_facts(conn, run_id)
    actions = {a.dossier_code: a for a in plan}
    census = _census(conn, run_id)
    sections = _sections(run.findings, facts)
    plan_counts = dict(sorted(Counter(a.action for a in plan).items()))
    summary = Summary(
        register_entries=run.run["counts"]["register_entries"], system_dossiers=run.run["counts"]["system_dossiers"],
        findings=len(run.findings), by_kind=run.summary, open_dossiers=sum(c.open for c in census),
        orphaned=sum(c.orphaned for c in census), plan_actions=plan_counts,
        plan_unconfirmed=sum(1 for a in plan if not a.confirmed),
        on_time_before=before.total.on_time, on_time_after=after.total.on_time)
    doc = {k: v for k, v in run.run.items() if k not in ("inputs", "settings")}
    return ReportData(
        run=doc, district=request.district, limit=request.limit, summary=summary, census=census, findings=sections,
        stats_before=before, stats_after=after, stats_register=paper,
        rates=[RateChange(b.label, b.kind, b.on_time, a.on_time) for b, a in zip(before.rows, after.rows)],
        stuck_age=_stuck_age(conn, run_id), worklists=_worklists(run.findings, facts, actions))


def _dossier_facts(conn: Connection, run_id: int) -> dict[str, dict[str, Any]]:
    """Per dossier code with a finding: unit, field, applicant, current step and its name."""
    f, rc, d, r, s = finding, reconciliation, dossier, register_entry, wf_step
    codes = sa.select(f.c.dossier_code).where(f.c.run_id == run_id, f.c.dossier_code.is_not(None)).distinct() \
        .subquery("fc")
    from_, by_code, by_name = join_catalog_field(
        codes.join(rc, sa.and_(rc.c.run_id == run_id, rc.c.dossier_code == codes.c.dossier_code))
        .outerjoin(d, sa.and_(d.c.run_id == run_id, *code_match(conn, d.c.dossier_code, rc.c.dossier_code),
                              d.c.source_row == rc.c.source_row))
        .outerjoin(r, sa.and_(r.c.run_id == run_id, *code_match(conn, r.c.dossier_code, rc.c.dossier_code),
                              r.c.entry_id == rc.c.entry_id)), run_id, d, r)
    stmt = (
        sa.select(codes.c.dossier_code, d.c.unit, r.c.agency, d.c.applicant, r.c.applicant.label("paper_applicant"),
                  d.c.current_step, s.c.name.label("step_name"), r.c.source_file, r.c.sheet, r.c.row_no,
                  sa.func.coalesce(d.c.field, by_code, by_name).label("field"))
        .select_from(from_.outerjoin(s, sa.and_(s.c.run_id == run_id, s.c.procedure == d.c.workflow_key,
                                                s.c.version == d.c.workflow_version, s.c.step_id == d.c.current_step)))
    )
    out: dict[str, dict[str, Any]] = {}
    for row in conn.execute(stmt).mappings():
        out.setdefault(row["dossier_code"], {
            "unit": row["unit"] or row["agency"] or "", "field": row["field"] or "",
            "applicant": row["applicant"] or row["paper_applicant"], "step": row["current_step"],
            "step_name": row["step_name"],
            "paper": Evidence(Path(row["source_file"]).name, row["sheet"], row["row_no"]) if row["source_file"]
            else Evidence()})
    return out


def _evidence(ev: dict[str, Any], fact: dict[str, Any]) -> Evidence:
    """The finding's own register row, else the row that represents the dossier on paper."""
    paper = ev.get("register") or (ev.get("register_rows") or [None])[0]
    if not paper:
        return fact.get("paper") or Evidence()
    return Evidence(paper.get("file"), paper.get("sheet"), paper.get("row"))


def _sections(findings: list[dict[str, Any]], facts: dict[str, dict[str, Any]]) -> list[FindingSection]:
    by_kind: dict[str, list[FindingItem]] = defaultdict(list)
    severity: dict[str, str] = {}
    for f in findings:  # already sorted by kind order, code, details
        fact = facts.get(f["dossier_code"] or "", {})
        by_kind[f["kind"]].append(FindingItem(f["dossier_code"], fact.get("unit", ""), fact.get("field", ""),
                                              f["details"], _evidence(f["evidence"], fact)))
        severity[f["kind"]] = f["severity"]
    out = []
    for kind in FindingKind:
        items = by_kind.get(kind.value)
        if items:
            units = Counter(i.unit for i in items)
            out.append(FindingSection(kind.value, severity[kind.value], len(items),
                                      sorted(units.items(), key=lambda u: (-u[1], u[0])), items))
    return out


def _census(conn: Connection, run_id: int) -> list[CensusLine]:
    names = dict(conn.execute(sa.select(wf_version.c.procedure, wf_version.c.name)
                              .where(wf_version.c.run_id == run_id, wf_version.c.is_latest)).all())
    return [CensusLine(r.procedure or "", names.get(r.procedure or "", ""), r.version, r.step, r.open, r.orphaned,
                       {k: n for k, n in r.by_reason.items() if n}) for r in census_rows(conn, run_id)]


def _stuck_age(conn: Connection, run_id: int) -> list[tuple[int, int | None, int]]:
    """Open dossiers that cannot reach the end, by working days since they last moved."""
    w = wf_state
    bucket = sa.case(*[(w.c.idle_days >= lo, lo) for lo in reversed(AGE_BUCKETS[1:])], else_=0)
    counts = dict(conn.execute(sa.select(bucket, sa.func.count())
                               .where(w.c.run_id == run_id, flagged(ORPHAN_MASK))
                               .group_by(bucket)).all())
    bounds = [*AGE_BUCKETS[1:], None]
    return [(lo, None if hi is None else hi - 1, int(counts.get(lo, 0))) for lo, hi in zip(AGE_BUCKETS, bounds)]


def _worklists(findings: list[dict[str, Any]], facts: dict[str, dict[str, Any]],
               actions: dict[str, PlannedAction]) -> list[Worklist]:
    """Per unit, every dossier with a finding: its issues, the plan's proposal, where it is on paper."""
    issues: dict[str, list[str]] = defaultdict(list)
    evidence: dict[str, Evidence] = {}
    for f in findings:
        code = f["dossier_code"]
        if code is None:
            continue
        if f["kind"] not in issues[code]:
            issues[code].append(f["kind"])
        if code not in evidence or evidence[code].file is None:
            evidence[code] = _evidence(f["evidence"], facts.get(code, {}))
    units: dict[str, list[WorkItem]] = defaultdict(list)
    for code in sorted(issues):
        fact = facts.get(code, {})
        units[fact.get("unit", "")].append(WorkItem(code, fact.get("applicant"), fact.get("step"),
                                                    fact.get("step_name"), issues[code], _action(actions.get(code)),
                                                    evidence[code]))
    return [Worklist(unit, items) for unit, items in sorted(units.items())]


def _action(a: PlannedAction | None) -> Action:
    if a is None:
        return Action("none", {})
    params: dict[str, Any] = {}
    if a.action == "migrate":
        params = {"step": a.set.get("current_step"), "version": a.set.get("workflow_version")}
    elif a.action == "reassign":
        params = {"assignee": a.set.get("assignee")}
    elif a.action == "close":  # a plan file holds dates, a built plan ISO text: the report wants text
        returned = a.set.get("returned_at")
        params = {"date": returned.isoformat()[:10] if isinstance(returned, date) else returned or ""}
    return Action(a.action, params, a.rule, a.confirmed)
