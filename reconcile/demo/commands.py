"""The `demo` command: simulate the demo district, audit it, fix it, write its reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconcile.audit.commands import audit
from reconcile.audit.inputs import AuditInputs
from reconcile.audit.results import RunReport
from reconcile.fix.commands import plan, write_plan
from reconcile.notify.notices import NotifyRequest, notify
from reconcile.project import load_project, project_period
from reconcile.stats import tables as stats_mod
from reconcile.util import jsonio
from reconcile.util.calendar import parse_as_of
from reconcile.util.progress import QUIET, Progress
from reconcile.workflow.commands import census


# The demo's run carries a fixed timestamp (the morning after the period) so that its reports are
# byte-identical each time `make demo` runs.
DEMO_STARTED_AT = "2021-07-01T08:00:00+00:00"


def demo(out: Path, progress: Progress = QUIET) -> RunReport:
    """Simulate the demo district into OUT/inputs, audit it into a fresh store (OUT/findings.json,
    OUT/census.json), fix it: plan -> apply -> audit -> undo -> audit -> apply (OUT/fixes.json), and
    write the first audit's reports (OUT/report.*), vendor tickets (OUT/tickets/) and the notices of the
    citizens whose dossiers the applied plan closed or moved on (OUT/notices/)."""
    from reconcile.demo.simulate import simulate

    inputs_dir = out / "inputs"
    progress.stage("simulating")
    sim = simulate(inputs_dir)
    project = load_project(sim.config)
    store_path = inputs_dir / "reconcile.duckdb"  # the project file's store: `cd` there and `reconcile show`
    for leftover in (store_path, store_path.with_name(store_path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    inputs = AuditInputs(
        register=tuple(str(p) for p in sim.register_files), system=sim.system_source,
        workflows=str(sim.workflows), as_of=parse_as_of(str(project["as_of"])),
        mapping=str(sim.mapping) if sim.mapping else None,
        date_tolerance_days=int(project.get("date_tolerance_days", 0)),
        paper_only_units=tuple(project.get("paper_only_units") or ()),
        period=project_period(project),
    )
    report = audit(inputs, str(store_path), progress, started_at=DEMO_STARTED_AT)
    out.mkdir(parents=True, exist_ok=True)
    docs = {"findings.json": report.to_dict(), "census.json": census(str(store_path)).to_dict(),
            "fixes.json": _demo_fixes(inputs, store_path, inputs_dir / "plan.yaml", report, progress)}
    for name, doc in docs.items():
        (out / name).write_text(jsonio.dumps(doc, pretty=True) + "\n", encoding="utf-8")
    progress.stage("reports")
    _demo_reports(out, store_path, report.run["id"], project)
    progress.stage("tickets")
    from reconcile.fix.tickets import tickets

    tickets(str(store_path), out / "tickets", report.run["id"])  # masked: what the vendor would receive
    progress.stage("notices")
    # the citizens whose dossiers the applied plan closed or moved on: the SMS gateway's list
    notify(str(store_path), NotifyRequest(out=str(out / "notices"), actor="demo", listed_at=DEMO_STARTED_AT))
    return report


def _demo_reports(out: Path, store_path: Path, run_id: int, project: dict[str, Any]) -> None:
    """The full report set of the first audit (before any fix), in both languages."""
    from reconcile.report.commands import FORMATS, ReportRequest
    from reconcile.report.commands import report as write_report

    request = ReportRequest(run_id=run_id, formats=FORMATS, langs=("vi", "en"), out=str(out),
                            settings=stats_mod.settings_from(project.get("statistics"), "reconcile.yaml"),
                            period=project_period(project), district=project.get("district"))
    write_report(str(store_path), request)


def _demo_fixes(inputs: AuditInputs, store_path: Path, plan_path: Path, before: RunReport,
                progress: Progress) -> dict[str, Any]:
    """The whole fixing loop on the demo's vendor database, with the findings before and after."""
    from reconcile.fix.apply import apply_plan
    from reconcile.fix.undo import undo

    store = str(store_path)
    progress.stage("plan")
    fix_plan = plan(store)
    write_plan(fix_plan, plan_path, store)
    progress.stage("apply")
    applied = apply_plan(plan_path, store, yes=True, actor="demo")
    after = audit(inputs, store, progress, started_at=DEMO_STARTED_AT)
    progress.stage("undo")
    undone = [undo(b, store, yes=True, actor="demo") for b in reversed(applied.batches)]
    restored = audit(inputs, store, progress, started_at=DEMO_STARTED_AT)
    progress.stage("apply again")
    again = apply_plan(plan_path, store, yes=True, actor="demo")
    return {
        "plan": {"run": before.run["id"], "counts": fix_plan.counts(), "validation": fix_plan.validation},
        "apply": {"counts": applied.counts(), "batches": list(applied.batches)},
        "findings": {"before": before.summary, "after_apply": after.summary, "after_undo": restored.summary},
        "undo": {"batches": [u.undo_batch for u in undone], "changes": sum(u.changes for u in undone)},
        "apply_again": {"counts": again.counts(), "batches": list(again.batches)},
    }
