"""The `stats` command: one statistics table of an audit run, before or after the plan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from reconcile.fix.commands import plan_actions
from reconcile.stats import tables as stats_mod
from reconcile.stats.model import StatsTable
from reconcile.stats.tables import StatsSettings
from reconcile.store import resolve_run, Store, audit_run, open_store


@dataclass(frozen=True, slots=True)
class StatsRequest:
    run_id: int | None = None
    period: tuple[date, date] | None = None  # default: the half-year holding the audit date
    layout: str = "official"
    view: str = "system"
    convention: str | None = None  # default: the settings'
    settings: StatsSettings = StatsSettings()
    plan_path: str | None = None  # view after-plan: this plan file instead of the run's plan


def statistics(store_url: str | None = None, request: StatsRequest = StatsRequest()) -> StatsTable:
    """One statistics table of an audit run (default: the latest)."""
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = resolve_run(store, conn, request.run_id)
            as_of = conn.execute(sa.select(audit_run.c.as_of).where(audit_run.c.id == run_id)).scalar_one()
            overlay = plan_overlay(conn, store, run_id, request.plan_path) if request.view == "after-plan" else []
            return stats_mod.compute(conn, run_id, as_of, period=request.period, layout=request.layout,
                                     view=request.view, settings=request.settings, convention=request.convention,
                                     overlay=overlay)
    finally:
        store.engine.dispose()


def plan_overlay(conn: sa.Connection, store: Store, run_id: int, plan_path: str | None) -> list[stats_mod.Overlay]:
    """What the plan will write, as the statistics see it."""
    return stats_mod.overlay_of((a.dossier_code, a.action, a.confirmed, a.set)
                                for a in plan_actions(conn, store, run_id, plan_path))
