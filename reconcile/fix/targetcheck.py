"""Target checks: where a plan's writing actions send a dossier (procedure, version, step) and to
whom (assignee) must exist in the audit run's catalog and staff directory. Run by apply, by `reconcile
plan` before it records a plan, and by stats, report and tickets --plan.
"""

from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.fix.planread import PlanAction, WRITING
from reconcile.fix.rows import read_arrow
from reconcile.store import account, dossier, wf_step, wf_version
from reconcile.util import yamlio

_POSITION = ("workflow_key", "workflow_version", "current_step")


def target_problems(conn: Connection, run_id: int, path: str, actions: Iterable[PlanAction]) -> list[str]:
    """What the confirmed writing actions set, against audit run `run_id`'s catalog and staff directory: where
    a dossier goes (its procedure, version and step, each the action's value else the dossier's) must be a
    step of a version the run's catalog holds, from which the procedure can finish; a new assignee must be
    an active account of the run's staff directory, and for a `reassign`, of the dossier's unit (set.unit,
    else its own). One line per action, `path:line` (each distinct case worked out once)."""
    todo = [(a, dict(a.set)) for a in actions if a.action in WRITING and a.confirmed]  # what apply would write
    todo = [(a, new) for a, new in todo if "assignee" in new or not new.keys().isdisjoint(_POSITION)]
    if not todo:
        return []
    d = dossier
    rows = read_arrow(conn, sa.select(d.c.dossier_code, d.c.fingerprint, d.c.workflow_key, d.c.workflow_version,
                                      d.c.current_step, d.c.unit).where(d.c.run_id == run_id),
                      d.c.dossier_code, sorted({a.dossier_code for a, _ in todo})).to_pylist()
    # the row the action was computed from (csv profile: apply rewrites the fingerprint; then the code's row)
    now = {r["dossier_code"]: r for r in reversed(rows)} | {(r["dossier_code"], r["fingerprint"]): r for r in rows}
    steps: dict[tuple[str, int], dict[str, bool]] = {}
    for p, v in conn.execute(sa.select(wf_version.c.procedure, wf_version.c.version)
                             .where(wf_version.c.run_id == run_id)):
        steps[p, v] = {}
    for p, v, step, final in conn.execute(sa.select(wf_step.c.procedure, wf_step.c.version, wf_step.c.step_id,
                                                    wf_step.c.reaches_final).where(wf_step.c.run_id == run_id)
                                          .order_by(wf_step.c.line)):
        steps.setdefault((p, v), {})[step] = bool(final)
    staff = {name: (unit, bool(active)) for name, unit, active in conn.execute(
        sa.select(account.c.account, account.c.unit, account.c.active).where(account.c.run_id == run_id))}
    known: dict[tuple[Any, ...], str | None] = {}
    problems = []
    for a, new in todo:
        row = now.get((a.dossier_code, a.fingerprint)) or now.get(a.dossier_code) or {}
        position = tuple(new[f] if f in new else row.get(f) for f in _POSITION)
        case = (a.action, *(position if not new.keys().isdisjoint(_POSITION) else (None,) * 3),
                new.get("assignee"), new.get("unit", row.get("unit")))
        if case not in known:
            known[case] = _target_problem(run_id, steps, staff, *case)
        if known[case] is not None:
            problems.append(f"{path}:{a.line}: dossier {a.dossier_code}: {known[case]}")
    return problems


def _target_problem(run_id: int, steps: dict[tuple[str, int], dict[str, bool]], staff: dict[str, tuple[Any, bool]],
                    action: str, procedure: Any, version: Any, step: Any, assignee: Any, unit: Any) -> str | None:
    """Why one case of target_problems is refused, or None."""
    named = yamlio.cut(str(procedure), yamlio.LIMIT)  # set.workflow_key may be any text of the plan's
    if version is not None:
        here = steps.get((procedure, version))
        if here is None:
            versions = sorted(v for p, v in steps if p == procedure)
            return (f"version {version} of procedure {named} is not in audit run {run_id}'s catalog. Hint: "
                    + (f"versions there: {', '.join(map(str, versions))}." if versions else
                       "the catalog has no version of it; escalate the dossier instead."))
        if step is not None and step not in here:
            return (f"step {yamlio.shown(step)} is not a step of version {version} of {named}. Hint: steps there: "
                    f"{', '.join(here)}.")
        if step is not None and not here[step]:
            return (f"step {step} of version {version} of {named} cannot reach a final step. Hint: choose a step "
                    f"from which the procedure can finish: {', '.join(s for s, ok in here.items() if ok)}.")
    if assignee is None:
        return None
    who = staff.get(assignee)
    if who is None or not who[1]:
        why = "is not an account in" if who is None else "is inactive in"
        return f"set.assignee {yamlio.shown(assignee)} {why} audit run {run_id}'s staff directory. Hint: " + \
            _colleagues(staff, unit if action == "reassign" else None)
    if action == "reassign" and unit is not None and who[0] != unit:
        return (f"set.assignee {assignee} belongs to unit {who[0]}, not to the dossier's unit {unit}. Hint: "
                + _colleagues(staff, unit))
    return None


def _colleagues(staff: dict[str, tuple[Any, bool]], unit: Any) -> str:
    """A hint: the active accounts of `unit` (or that there are none), or where to look."""
    if unit is None:
        return "name an active account (`reconcile show CODE` lists the dossier's unit)."
    names = sorted(n for n, (u, active) in staff.items() if active and u == unit)
    if not names:
        return f"unit {unit} has no active account; escalate the dossier instead."
    more = f" (and {len(names) - 10} more)" if len(names) > 10 else ""
    return f"active accounts of {unit}: {', '.join(names[:10])}{more}."
