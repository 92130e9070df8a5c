"""The `show CODE` command: one dossier on paper, in the system, what the plan would do and what fixes wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from reconcile.errors import BadInput
from reconcile.fix.commands import plan_actions
from reconcile.report.dossier_diff import Difference, differences
from reconcile.store import (
    resolve_run, batch_outcome, change, change_batch, dossier, finding, open_store, reconciliation, register_entry,
    step_event, wf_version,
)
from reconcile.util.normalize import normalize_code


@dataclass(frozen=True, slots=True)
class DossierView:
    code: str
    run_id: int
    register_rows: list[dict[str, Any]]
    system: list[dict[str, Any]]
    events: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    match_class: str | None
    changes: list[dict[str, Any]] = field(default_factory=list)  # what apply/undo wrote, oldest first
    plan_source: str = ""  # the plan file's path, or "" for the run's plan as `reconcile plan` builds it
    plan: list[dict[str, Any]] = field(default_factory=list)  # that plan's actions for this dossier
    differences: list[Difference] = field(default_factory=list)  # register <-> system, plan <-> system
    plan_unavailable: str | None = None  # why the run's plan could not be built (then no plan is compared)

    def to_dict(self) -> dict[str, Any]:
        return {"dossier_code": self.code, "run": self.run_id, "class": self.match_class,
                "register": self.register_rows, "system": self.system, "events": self.events,
                "findings": self.findings, "changes": self.changes,
                "plan": {"file": self.plan_source or None, "actions": self.plan}
                | ({"unavailable": self.plan_unavailable} if self.plan_unavailable else {}),
                "differences": {
                    "register_system": [d.to_dict() for d in self.differences if d.between == "register-system"],
                    "plan_system": [d.to_dict() for d in self.differences if d.between == "plan-system"]}}


def show(code: str, store_url: str | None = None, run_id: int | None = None, plan_path: str | None = None
         ) -> DossierView:
    """The dossier `code` in audit run `run_id` (default: the latest), with the actions of the plan file
    `plan_path` for it (default: the run's plan as `reconcile plan` builds it)."""
    norm = normalize_code(code)
    if not norm:
        raise BadInput("show: empty dossier code.")
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = resolve_run(store, conn, run_id)

            def rows(table: sa.Table, order: Any) -> list[dict[str, Any]]:
                stmt = sa.select(table).where(table.c.run_id == run_id, table.c.dossier_code == norm).order_by(order)
                return [_plain({k: v for k, v in r.items() if k != "run_id"}) for r in conn.execute(stmt).mappings()]

            reg = rows(register_entry, register_entry.c.entry_id)
            sys_ = rows(dossier, dossier.c.source_row)
            events = rows(step_event, step_event.c.seq)
            fnd = [{"kind": f["kind"], "severity": f["severity"], "details": json.loads(f["details"]),
                    "evidence": json.loads(f["evidence"])} for f in rows(finding, finding.c.kind)]
            cls = conn.execute(sa.select(reconciliation.c["class"]).where(
                reconciliation.c.run_id == run_id, reconciliation.c.dossier_code == norm)).scalar()
            changes = dossier_changes(conn, norm)
            if not reg and not sys_:
                raise BadInput(f"show: dossier {norm} is neither on the register nor in the system of run {run_id}.")
            names: dict[str, dict[int, str]] = {}
            unavailable = None
            for p, v, name in conn.execute(sa.select(wf_version.c.procedure, wf_version.c.version, wf_version.c.name)
                                           .where(wf_version.c.run_id == run_id)):
                names.setdefault(p, {})[v] = name
            try:
                actions = plan_actions(conn, store, run_id, plan_path)
            except BadInput as exc:
                if plan_path is not None:
                    raise
                # The dossier is still worth showing when the run's plan cannot be built from here (its
                # rules folder moved): say why instead of the plan.
                actions, unavailable = [], str(exc)
            plan = [{"action": a.action, "rule": a.rule, "confirmed": a.confirmed, "reason": a.reason,
                     "set": _plain(a.set)} for a in actions if a.dossier_code == norm]
    finally:
        store.engine.dispose()
    return DossierView(norm, run_id, reg, sys_, events, fnd, cls, changes, plan_path or "", plan,
                       differences(reg, sys_, names, plan), unavailable)


def dossier_changes(conn: sa.Connection, code: str) -> list[dict[str, Any]]:
    """Every value apply and undo wrote for a dossier (any audit run), from the store's change log:
    batch, kind (apply/undo), the batch's outcome (pending while an interrupted batch is unsettled;
    rolled_back: nothing of it was written), table, column, before, after, time; oldest first. `row` says
    whether the batch inserted the row (before: None), deleted it (after: None) or updated it."""
    from reconcile.fix.values import ABSENT, decode_value

    c, cb, bo = change, change_batch, batch_outcome
    stmt = (sa.select(c.c.batch_id, cb.c.kind, bo.c.outcome, cb.c.run_id, cb.c.undo_of, c.c.action, c.c.rule,
                      c.c.table_name, c.c.column_name, c.c.field, c.c.before_value, c.c.after_value,
                      cb.c.started_at, cb.c.actor)
            .join(cb, cb.c.id == c.c.batch_id).outerjoin(bo, bo.c.batch_id == c.c.batch_id)
            .where(c.c.dossier_code == code).order_by(c.c.batch_id, c.c.seq))
    out = []
    for r in conn.execute(stmt).mappings():
        before, after = decode_value(r["before_value"]), decode_value(r["after_value"])
        row = "insert" if before is ABSENT else "delete" if after is ABSENT else "update"
        plain = _plain({"before": None if before is ABSENT else before, "after": None if after is ABSENT else after})
        out.append({"batch": r["batch_id"], "kind": r["kind"], "outcome": r["outcome"] or "pending",
                    "run": r["run_id"], "undo_of": r["undo_of"], "action": r["action"], "rule": r["rule"],
                    "table": r["table_name"], "row": row, "column": r["column_name"], "field": r["field"], **plain,
                    "at": r["started_at"], "actor": r["actor"]})
    return out


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in d.items()}
