"""The `plan` command and the plan of a run as the other commands read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from reconcile.errors import BadInput, collect
from reconcile.fix import planfile
from reconcile.fix.plan import Action, Plan, Resolver, Target, build_plan
from reconcile.store import resolve_run, Store, audit_run, mask_url, open_store
from reconcile.util.files import write_atomically
from reconcile.util.gctune import fewer_collections
from reconcile.workflow.catalog import load_catalog

if TYPE_CHECKING:
    from reconcile.fix.planread import PlanFile


def plan(store_url: str | None = None, run_id: int | None = None, rules_dir: str | None = None) -> Plan:
    """The fix plan for one audit run (default: the latest), from its findings, the catalog snapshot
    and the migration rules beside the catalog the run audited (or in `rules_dir`)."""
    if rules_dir is not None and not Path(rules_dir).is_dir():  # else a typo plans silently without rules
        raise BadInput(f"--rules {rules_dir}: no such directory. Hint: give the workflow catalog folder (the one "
                       "holding <procedure>/v<N>.yaml and rules.yaml files).")
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = resolve_run(store, conn, run_id)
            resolver = _resolver(rules_dir) if rules_dir is not None else run_resolver(conn, run_id)
            return build_plan(conn, run_id, mask_url(store.url), resolver)
    finally:
        store.engine.dispose()


@fewer_collections(paused=True)
def write_plan(result: Plan, out: str | Path | None, store_url: str | None = None) -> str:
    """The plan file's text (`result.to_yaml()`), written to `out` when given (else the caller prints
    it), and recorded in the store the plan was made from (planrecord.record_plan): apply then reads that
    very file from the store instead of parsing and checking it again."""
    from reconcile.fix.planrecord import record_plan

    data = result.to_dict()
    text = planfile.dump(data)  # what result.to_yaml() writes, with its data kept for the record
    if out:
        write_atomically(out, text)
    store = open_store(store_url, create=False)
    try:
        record_plan(store, data, text)
    except sa.exc.DBAPIError:  # a store that takes no writes (read-only, locked): apply reads the file in full
        pass
    finally:
        store.engine.dispose()
    return text


# One action of a plan, whether built now or read from a plan file: the plan's own Action (a file's
# actions carry no evidence).
PlannedAction = Action


def plan_actions(conn: sa.Connection, store: Store, run_id: int, plan_path: str | None) -> list[PlannedAction]:
    """The given plan file's actions (it must be made for this run), else the run's plan as `reconcile
    plan` builds it."""
    if plan_path is None:
        built = build_plan(conn, run_id, mask_url(store.url), run_resolver(conn, run_id))
        return built.actions
    loaded = load_run_plan(conn, plan_path, run_id)
    return [Action(a.dossier_code, a.action, a.rule, a.reason, a.fingerprint, a.confirmed, dict(a.set),
                   reason_code=a.reason_code, reason_args=a.reason_args) for a in loaded.actions]


def load_run_plan(conn: sa.Connection, plan_path: str | Path, run_id: int) -> PlanFile:
    """A reviewed plan file, refused (BadInput) unless it was made for audit run `run_id` and what its
    confirmed actions set is what `apply` would accept (the run's catalog and staff directory), so that
    the statistics and tickets never show the effect of a plan apply refuses."""
    from reconcile.fix.planread import load_plan
    from reconcile.fix.targetcheck import target_problems

    loaded = load_plan(plan_path)
    if loaded.run != run_id:
        raise BadInput(f"{plan_path}: the plan was made for audit run {loaded.run}, not run {run_id}. "
                       f"Hint: pass --run {loaded.run}, or make a plan for run {run_id} with `reconcile plan`.")
    problems = target_problems(conn, run_id, str(plan_path), loaded.actions)
    collect(problems, f"{plan_path}: {len(problems)} actions set values audit run {run_id} does not know")
    return loaded


def run_resolver(conn: sa.Connection, run_id: int) -> Resolver | None:
    """The migration rules the run audited with, read again from the catalog folder it recorded; an
    error (not a plan without rules) when that folder had rules and cannot be found from here."""
    inputs = json.loads(conn.execute(sa.select(audit_run.c.inputs).where(audit_run.c.id == run_id)).scalar_one())
    workflows = inputs.get("workflows") or {}
    directory = workflows.get("dir")
    if workflows.get("rules") and not (directory and Path(directory).is_dir()):
        raise BadInput(f"run {run_id}: its catalog folder {directory} (with {workflows['rules']} migration rules) "
                       "is not found from here. Hint: run from the folder the audit ran in, or pass the rules "
                       "folder (`plan --rules DIR`) or a plan file (`--plan FILE`).")
    return _resolver(directory)


def _resolver(directory: str | None) -> Resolver | None:
    """Migration rules below the catalog folder as the plan's resolver; None when there are none."""
    from reconcile.workflow import rules

    if not directory or not Path(directory).is_dir() or not rules.rule_files(directory):
        return None
    ruleset = rules.load_rules(directory, load_catalog(directory))

    def resolve(procedure: str, version: int, step: str, facts: dict[str, Any]) -> Target | None:
        paper = ("missing" if not facts["on_paper"] else "returned" if facts["paper_returned_at"] else
                 "not_returned")
        res = ruleset.resolve(procedure, version, step, rules.Facts(paper, facts["unit"], facts["received_at"]))
        if not res.moved:
            return None
        return Target(res.procedure, res.version, res.step, res.rules, not res.needs_confirmation, res.assignee)

    return resolve
