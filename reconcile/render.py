"""Terminal and JSON rendering of command results (rich on a TTY, plain otherwise)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconcile.audit.results import RunReport
from reconcile.fix.plan import Plan
from reconcile.model import FindingKind
from reconcile.report.csvout import note_text, row_label
from reconcile.report.dossier import DossierView
from reconcile.report.view import points
from reconcile.stats.model import StatsTable
from reconcile.util import jsonio
from reconcile.util.i18n import day, number, percent, t
from reconcile.workflow.commands import Census
from reconcile.workflow.state import CENSUS_KINDS


def to_json(data: dict[str, Any], pretty: bool = True) -> str:
    """Indented for people; compact (faster on large audits) for pipes and files."""
    return jsonio.dumps(data, pretty=pretty)


def audit_table(report: RunReport, console: Console) -> None:
    run = report.run
    console.print(
        f"[bold]Audit run {run['id']}[/] as of {run['as_of']}: "
        f"{run['counts']['register_entries']:,} register entries, {run['counts']['system_dossiers']:,} system dossiers"
    )
    periods = ", ".join(f"{escape(p['book'])} {p['period_from']}..{p['period_to']}" for p in run["periods"])
    console.print(f"Compared the register books {periods}")
    if run["paper_only_units"]:
        units = ", ".join(f"{escape(u)} ({n})" for u, n in run["paper_only_units"].items())
        console.print(f"Paper-only units, not expected in the system: {units}")

    kinds = Table(title="Findings by kind", title_justify="left")
    kinds.add_column("kind")
    kinds.add_column("severity")
    kinds.add_column("count", justify="right")
    for kind in FindingKind:
        n = report.summary.get(kind.value, 0)
        if n:
            kinds.add_row(kind.value, kind.severity.value, f"{n:,}")
    kinds.add_row("[bold]total[/]", "", f"[bold]{sum(report.summary.values()):,}[/]")
    console.print(kinds)

    if report.breakdown:
        by = Table(title="Findings by field and unit", title_justify="left")
        for name in ("field", "unit", "kind"):
            by.add_column(name)
        by.add_column("count", justify="right")
        for row in report.breakdown:
            by.add_row(escape(row["field"] or "-"), escape(row["unit"] or "-"), row["kind"], f"{row['count']:,}")
        console.print(by)


def warnings(lines: list[str], console: Console) -> None:
    for line in lines:
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)


_INTERNAL = ("dossier_code", "code_ok", "applicant_key", "fingerprint", "problems")


def dossier_view(view: DossierView, console: Console) -> None:
    console.print(f"[bold]{escape(view.code)}[/] (run {view.run_id}): {view.match_class or 'not classified'}")
    for title, rows in (("Register", view.register_rows), ("System", view.system)):
        if not rows:
            console.print(f"{title}: none")
        for i, row in enumerate(rows, 1):
            t = Table(title=f"{title} {i}/{len(rows)}" if len(rows) > 1 else title, title_justify="left",
                      show_header=False)
            t.add_column("field", style="dim")
            t.add_column("value")
            for k, v in row.items():
                if v is not None and k not in _INTERNAL:
                    t.add_row(k, escape(str(v)))
            console.print(t)
    if view.events:
        cols = ("seq", "from_step", "to_step", "account", "at", "action")
        t = Table(title="History", title_justify="left")
        for c in cols:
            t.add_column(c)
        for e in view.events:
            t.add_row(*[escape(str(e.get(c) if e.get(c) is not None else "")) for c in cols])
        console.print(t)
    if not view.findings:
        console.print("Findings: none")
    for f in view.findings:
        details = ", ".join(f"{k}={v}" for k, v in f["details"].items() if v is not None)
        console.print(f"[bold red]{f['kind']}[/] ({f['severity']}): {escape(details)}")
    if view.changes:
        cols = ("batch", "kind", "outcome", "table", "column", "before", "after", "at")
        t = Table(title="Changes (apply / undo)", title_justify="left")
        for c in cols:
            t.add_column(c)
        for ch in view.changes:
            kind = ch["kind"] + (f" of {ch['undo_of']}" if ch["undo_of"] is not None else "")
            absent = {"insert": "before", "delete": "after"}.get(ch.get("row", ""))  # the row did not exist
            t.add_row(*[escape(kind if c == "kind" else "(no row)" if c == absent else "NULL"
                               if c in ("before", "after") and ch[c] is None else str(ch[c])) for c in cols])
        console.print(t)
    else:
        console.print("Changes: none")


def catalog_check(result: Any, console: Console) -> None:
    """`workflows check`: counts of a valid catalog (warnings go to stderr separately)."""
    console.print(f"{escape(result.directory)}: valid: {result.procedures:,} procedures, {result.versions:,} "
                  f"versions, {result.steps:,} steps, {len(result.warnings):,} warnings")


def workflow_diff(report: Any, console: Console) -> None:
    """`workflows diff`: one table of step changes with open dossiers, one of transitions."""
    d = report.diff
    console.print(f"[bold]{escape(d.procedure)}[/] v{d.version_a} ({escape(report.path_a)}) -> "
                  f"v{d.version_b} ({escape(report.path_b)})")
    console.print(f"Open dossiers from {escape(report.store_note)}")
    if d.empty:
        console.print("No differences.")
        return
    counts = report.open_dossiers

    def open_on(step: str | None) -> str:
        if step is None:
            return ""
        return "?" if counts is None else f"{counts.get(step, 0):,}"

    def changes(items: Any) -> str:
        def shown(x: Any) -> str:
            return f"{x:g}" if isinstance(x, float) else "-" if x is None else str(x)

        return "; ".join(f"{c.field}: {shown(c.before)} -> {shown(c.after)}" for c in items)

    steps = Table(title="Steps", title_justify="left")
    for name in ("change", f"v{d.version_a}", f"v{d.version_b}", "detail", "open dossiers"):
        steps.add_column(name, justify="right" if name == "open dossiers" else "left")
    for s in d.removed:
        steps.add_row("removed", escape(s), "", "", open_on(s))
    for r in d.replaced:
        detail = f"guess: {r.why}" + (f"; {changes(r.changes)}" if r.changes else "")
        steps.add_row("replaced", escape(r.removed), escape(r.added), escape(detail), open_on(r.removed))
    for c in d.changed:
        steps.add_row("changed", escape(c.step), escape(c.step), escape(changes(c.changes)), open_on(c.step))
    for s in d.added:
        steps.add_row("added", "", escape(s), "", "")
    console.print(steps)
    if d.transitions_added or d.transitions_removed:
        tr = Table(title="Transitions", title_justify="left")
        tr.add_column("change")
        tr.add_column("from")
        tr.add_column("to")
        for a, b in d.transitions_removed:
            tr.add_row(f"removed (v{d.version_a})", escape(a), escape(b))
        for a, b in d.transitions_added:
            tr.add_row(f"added (v{d.version_b})", escape(a), escape(b))
        console.print(tr)


_SHORT = {"unknown_version": "unknown\nversion", "step_not_in_version": "step not\nin version",
          "dead_end_step": "dead\nend", "unit_without_staff": "unit\nno staff",
          "assignee_inactive": "assignee\ninactive", "stalled": "stalled",
          "superseded_version": "superseded\nversion"}


def census_table(census: Census, console: Console) -> None:
    """Open dossiers per procedure x version x step; rows with orphans stand out."""
    doc = census.to_dict()
    console.print(f"[bold]Census[/] of audit run {census.run_id} as of {census.as_of}: "
                  f"{doc['total']['open']:,} open dossiers, {doc['total']['orphaned']:,} cannot reach the end")
    t = Table(title="Open dossiers per procedure, version and step", title_justify="left")
    for name, justify in (("procedure", "left"), ("ver", "right"), ("step", "left"), ("open", "right"),
                          ("orphaned", "right")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for k in CENSUS_KINDS:
        t.add_column(_SHORT[k.value], justify="right")
    for name in ("assumed\nversion", "oldest\nsince", "later version\nhas step"):
        t.add_column(name, justify="right")
    for r in census.rows:
        version = "-" if r.version is None else str(r.version) + ("" if r.version_in_catalog else "?")
        gone = r.version_in_catalog and not r.step_in_version and r.step is not None
        step = (r.step or "-") + (" (gone)" if gone else "")
        style = "red" if r.orphaned else None
        t.add_row(escape(r.procedure or "-"), version, escape(step), f"{r.open:,}", f"{r.orphaned:,}",
                  *[f"{r.by_reason[k.value]:,}" if r.by_reason[k.value] else "" for k in CENSUS_KINDS],
                  f"{r.version_assumed:,}" if r.version_assumed else "",
                  str(r.oldest_since or ""), "" if r.later_version_with_step is None else f"v{r.later_version_with_step}",
                  style=style)
    total = doc["total"]
    t.add_row("[bold]total[/]", "", "", f"[bold]{total['open']:,}[/]", f"[bold]{total['orphaned']:,}[/]",
              *[f"{total['by_reason'][k.value]:,}" for k in CENSUS_KINDS], f"{total['version_assumed']:,}", "", "")
    console.print(t)
    console.print("ver? = version not in the catalog; (gone) = step not in its version; orphaned = cannot reach "
                  "the end as things stand (unknown version, missing step, dead end, no staff, inactive assignee); "
                  "superseded version = the migration rules move the step on to a later version.")


def stats_table(table: StatsTable, console: Console, lang: str, before: StatsTable | None = None) -> None:
    """The statistics table with its numbered columns, the notes under it; with `before`, the on-time
    rate per row before -> after."""
    p = {"from": day(table.period_from, lang), "to": day(table.period_to, lang), "as_of": day(table.as_of, lang),
         "run": table.run_id}
    console.print(f"[bold]{escape(t('stats.title', lang, view=t('view.' + table.view, lang)))}[/] · "
                  f"{escape(t('layout.' + table.layout, lang))}")
    console.print(escape(t("stats.period", lang, **p)))
    out = Table(show_lines=False, pad_edge=False)
    out.add_column(t("col.stt", lang), justify="right", no_wrap=True)
    out.add_column(t("col.field", lang), min_width=20)
    for c in table.columns:
        out.add_column(f"({c.number})", justify="right", no_wrap=True)
    out.add_column("%", justify="right", no_wrap=True)
    if before is not None:
        out.add_column("Δ", justify="right", no_wrap=True)
    rates = {(r.kind, r.label): r.on_time for r in before.rows} if before else {}
    for r in table.rows:
        label = row_label(r, lang)
        cells = [number(r.values[c.key], lang) for c in table.columns]
        extra = [percent(*r.on_time, lang)]
        if before is not None:
            extra.append(points(rates.get((r.kind, r.label), (0, 0)), r.on_time, lang))
        bold = r.kind in ("total", "group")
        out.add_row("" if r.stt is None else str(r.stt), escape(label), *cells, *extra,
                    style="bold" if bold else None)
    console.print(out)
    legend = [f"({c.number}) {t(c.label, lang)}" for c in table.columns] + [f"% {t('col.on_time_rate', lang)}"]
    if before is not None:
        legend.append(f"Δ {t('col.rate_change', lang)}")
    console.print(escape(" · ".join(legend)), highlight=False)
    for n in table.notes:
        console.print(escape(note_text(n, lang)), highlight=False)


def plan_summary(plan: Plan, console: Console, out: str | None) -> None:
    """Counts a reviewer reads before opening the plan file."""
    v = plan.validation
    counts = ", ".join(f"{n:,} {k}" for k, n in sorted(plan.counts().items())) or "nothing to do"
    console.print(f"plan for audit run {plan.header['run']}: {counts}" + (f"; wrote {escape(out)}" if out else ""))
    console.print(f"orphans {v['orphans']:,}: {v['covered']:,} actions fix dossiers, {v['escalated']:,} escalated; "
                  f"{v['guesses_awaiting_confirmation']:,} guesses and {v.get('backfills_awaiting_confirmation', 0):,} "
                  "backfills await confirmation (apply skips them)")
    late = [d for d in plan.deadline_impact if d["late_after"] and not d["late_before"]]
    console.print(f"deadline impact: {len(plan.deadline_impact):,} migrations recomputed in working days, "
                  f"{len(late):,} become late")
    for p in v["problems"]:
        console.print(f"[red]problem:[/] {escape(p)}")


def fixes_table(doc: dict[str, Any], console: Console) -> None:
    """The demo's fixing loop: the plan, and the findings before, after apply and after undo."""
    counts = ", ".join(f"{n:,} {k}" for k, n in sorted(doc["plan"]["counts"].items()))
    console.print(f"[bold]Fixes[/]: plan for audit run {doc['plan']['run']}: {counts}; applied in batch(es) "
                  f"{', '.join(map(str, doc['apply']['batches']))}, undone by {', '.join(map(str, doc['undo']['batches']))}"
                  f", applied again in {', '.join(map(str, doc['apply_again']['batches']))}")
    f = doc["findings"]
    t = Table(title="Findings before and after the fixes", title_justify="left")
    for name in ("kind", "before", "after apply", "after undo"):
        t.add_column(name, justify="left" if name == "kind" else "right")
    for kind in FindingKind:
        row = [f[k].get(kind.value, 0) for k in ("before", "after_apply", "after_undo")]
        if any(row):
            t.add_row(kind.value, *[f"{n:,}" for n in row])
    console.print(t)


def check_report_table(result: Any, console: Console) -> None:
    """`check-report`: how the table was read, its broken identities, and the prose's numbers."""
    console.print(f"[bold]{escape(result.file)}[/]: layout {result.layout} ({escape(result.layout_from)}), "
                  f"{result.rows} rows")
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    if result.violations:
        t = Table(title="Broken identities", title_justify="left")
        for name in ("row", "identity", "left", "right", "difference"):
            t.add_column(name, justify="left" if name in ("row", "identity") else "right")
        for v in result.violations:
            t.add_row(escape(v.row), escape(v.identity), *v.shown())
        console.print(t)
    for line in result.not_checked:
        console.print(f"not checked: {escape(line)}")
    for line in result.confirmed:
        console.print(f"[green]confirmed:[/] {escape(line)}")
    for line in result.unchecked:
        console.print(f"[yellow]unchecked:[/] {escape(line)}")
    n = len(result.violations)
    console.print(f"[bold red]{n} broken identit{'y' if n == 1 else 'ies'}[/]" if n else "[bold]all identities hold[/]")
