"""The `history` command: every batch apply and undo logged, with its outcome."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from reconcile.store import batch_outcome, change_batch, open_store


def history(store_url: str | None = None) -> list[dict[str, Any]]:
    """Every batch, oldest first: id, kind, plan, run, times, counts, outcome, undo-of, undone-by."""
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            cb, bo = change_batch, batch_outcome
            rows = [dict(r) for r in conn.execute(
                sa.select(cb, bo.c.outcome, bo.c.finished_at).outerjoin(bo, bo.c.batch_id == cb.c.id)
                .order_by(cb.c.id)).mappings()]
    finally:
        store.engine.dispose()
    undone_by = {r["undo_of"]: r["id"] for r in rows
                 if r["kind"] == "undo" and r["outcome"] in ("committed", "recovered")}
    return [{"id": r["id"], "kind": r["kind"], "plan": r["plan"], "run": r["run_id"],
             "target": json.loads(r["target"]).get("source"), "actor": r["actor"], "started_at": r["started_at"],
             "finished_at": r["finished_at"], "outcome": r["outcome"] or "pending", "dossiers": r["dossiers"],
             "changes": r["changes"], "undo_of": r["undo_of"], "undone_by": undone_by.get(r["id"])}
            for r in rows]


def history_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no batches yet: `reconcile apply PLAN --yes` writes one."]
    out = [f"{'batch':>5}  {'kind':<5}  {'outcome':<11}  {'run':>3}  {'dossiers':>8}  {'changes':>7}  "
           f"{'started (UTC)':<25}  plan / undo"]
    for r in rows:
        extra = f"undo of {r['undo_of']}" if r["undo_of"] is not None else (r["plan"] or "")
        if r["undone_by"] is not None:
            extra += f" (undone by {r['undone_by']})"
        out.append(f"{r['id']:>5}  {r['kind']:<5}  {r['outcome']:<11}  {r['run']:>3}  {r['dossiers']:>8}  "
                   f"{r['changes']:>7}  {r['started_at']:<25}  {extra}")
    return out
