"""The `show CODE` command: one dossier on paper, in the system, and what fixes wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from reconcile.errors import BadInput
from reconcile.store import (
    resolve_run, batch_outcome, change, change_batch, dossier, finding, open_store, reconciliation, register_entry,
    step_event,
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

    def to_dict(self) -> dict[str, Any]:
        return {"dossier_code": self.code, "run": self.run_id, "class": self.match_class,
                "register": self.register_rows, "system": self.system, "events": self.events,
                "findings": self.findings, "changes": self.changes}


def show(code: str, store_url: str | None = None, run_id: int | None = None) -> DossierView:
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
    finally:
        store.engine.dispose()
    if not reg and not sys_:
        raise BadInput(f"show: dossier {norm} is neither on the register nor in the system of run {run_id}.")
    return DossierView(norm, run_id, reg, sys_, events, fnd, cls, changes)


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
