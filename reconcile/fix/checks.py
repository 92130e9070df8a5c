"""A plan checked against the store it was made for before apply reads any target: the audit run
unchanged, the header's system the run's, each action's dossier and fingerprint the run's, the target
checks, and backfills of dossiers the run found on the register only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import BadInput, collect
from reconcile.fix.planread import load_plan, PlanAction, PlanFile, WRITING
from reconcile.fix.planrecord import recorded_plan
from reconcile.fix.rows import read_arrow
from reconcile.fix.targetcheck import target_problems
from reconcile.fix.targets import StoreRows
from reconcile.fix.values import decode_value
from reconcile.store import audit_run, change, change_batch, dossier, mask_url, open_store, reconciliation, Store
from reconcile.util import scratch, yamlio
from reconcile.util.db import same_url
from reconcile.util.inlists import IN_CHUNK, chunks
from reconcile.util.structdiff import differing

_q = yamlio.shown  # a value from the file in a message: quoted, cut short


def load_checked(path: str | Path, store_url: str | None) -> tuple[PlanFile, Store, StoreRows]:
    """The plan file, the store it was made for and the run's rows of its writing actions, all checked:
    a file byte-identical to a plan `reconcile plan` recorded in that store for the plan's run is read
    from the store (recorded_plan), any other file in full (load_plan)."""
    plan, store = recorded_plan(Path(path), store_url)
    if plan is None:
        if store is not None:
            store.engine.dispose()
        plan = load_plan(path)
        return plan, *_open_checked(plan, store_url)
    return plan, *_open_checked(plan, store_url, store)


def _open_checked(plan: PlanFile, store_url: str | None, recorded_in: Store | None = None
                  ) -> tuple[Store, StoreRows]:
    """The store the plan was made for, with the plan's audit run unchanged, and the run's rows of the
    plan's writing actions; refused (exit 2) otherwise. `recorded_in`: that store, open, which recorded
    the plan (its actions' dossiers and fingerprints were the run's when it was made: not checked again)."""
    if store_url is None and "***" in plan.store:
        raise BadInput(f"{plan.path}: the plan's store {plan.store} hides a password. Hint: pass --store URL.")
    store = recorded_in or open_store(store_url or plan.store, create=False)
    try:
        if not same_url(mask_url(store.url), plan.store):
            raise BadInput(f"{plan.path}: plan made for the store {plan.store}, not {mask_url(store.url)}. "
                           "Hint: pass the plan's --store, or plan again against this store.")
        with store.connect() as conn:
            run = conn.execute(sa.select(audit_run).where(audit_run.c.id == plan.run)).mappings().first()
        if run is None:
            raise BadInput(f"{plan.path}: plan made for audit run {plan.run}, which {mask_url(store.url)} does not "
                           "hold. Hint: plan again from this store's latest run.")
        if run["fingerprint"] != plan.run_fingerprint:
            raise BadInput(f"{plan.path}: plan made for a run {plan.run} with fingerprint {plan.run_fingerprint}, "
                           f"but this store's run {plan.run} has {run['fingerprint']}. Hint: plan again.")
        recorded = json.loads(run["inputs"]).get("system", {})
        keys = ("profile", "source", "mapping")
        edited = [f"{plan.path}: plan.system.{key} {_q(plan.system.get(key))} differs from audit run {plan.run}'s "
                  f"{_q(recorded.get(key))}. Hint: the header is written by `reconcile plan`; plan again."
                  for key in differing({k: plan.system.get(k) for k in keys}, {k: recorded.get(k) for k in keys})]
        collect(edited, f"{plan.path}: plan.system differs from audit run {plan.run}'s in {len(edited)} fields")
        known = _check_fingerprints(plan, store, checked=recorded_in is not None)
        if recorded_in is None:  # a recorded plan passed these when `reconcile plan` recorded it
            with store.connect() as conn:
                problems = target_problems(conn, plan.run, plan.path, plan.actions)
            if problems:
                raise BadInput(problems[0] if len(problems) == 1 else f"{plan.path}: {len(problems)} actions set "
                               f"values audit run {plan.run} does not know", problems)
        _check_backfills(plan, store)
    except BaseException:
        store.engine.dispose()
        raise
    return store, known


def _check_fingerprints(plan: PlanFile, store: Store, checked: bool = False) -> StoreRows:
    """Each writing action names a dossier of the run and the fingerprint the audit stored for it (one
    join: only the problems come back); `checked`: known to (a recorded plan): only the rows are read."""
    writing = [a for a in plan.actions if a.action in WRITING]
    with store.connect() as conn:
        rows = _store_rows(conn, plan.run, [a.dossier_code for a in writing])
        earlier = None  # csv profile: fingerprints the store's rows held before apply wrote them
        if not checked and plan.system.get("profile") == "csv":
            earlier = read_arrow(conn, sa.select(change.c.dossier_code, change.c.before_value)
                                 .join(change_batch, change_batch.c.id == change.c.batch_id)
                                 .where(change_batch.c.run_id == plan.run, change.c.table_name == dossier.name,
                                        change.c.column_name == "fingerprint"),
                                 change.c.dossier_code, [a.dossier_code for a in writing])
    if not checked:
        problems = [f"{plan.path}:{line}: dossier {code} is not a system dossier of audit run {plan.run}. Hint: check "
                    "the code; plans act on the system's dossiers." if unknown else
                    f"{plan.path}:{line}: dossier {code}: fingerprint {fp} is not the one audit run {plan.run} "
                    "stored. Hint: do not edit fingerprints; plan again."
                    for line, code, fp, unknown in _fingerprint_problems(writing, rows, earlier)]
        if problems:
            raise BadInput(problems[0] if len(problems) == 1 else f"{plan.path}: {len(problems)} actions do not "
                           f"match audit run {plan.run}", problems)
    return _known(rows)


def _fingerprint_problems(writing: list[PlanAction], rows: pa.Table, earlier: pa.Table | None
                          ) -> list[tuple[int, str, str, bool]]:
    """The writing actions whose dossier the run does not hold (unknown), or none of whose rows holds the
    action's fingerprint, now or before apply wrote it (`earlier`: change rows, csv profile), by line."""
    plan = pa.table({"line": pa.array([a.line for a in writing], pa.int64()),
                     "code": pa.array([a.dossier_code for a in writing], pa.string()),
                     "fingerprint": pa.array([a.fingerprint for a in writing], pa.string())})
    before = earlier.column("before_value").to_pylist() if earlier is not None else []
    logged = pa.table({"code": earlier.column("dossier_code") if earlier is not None else pa.array([], pa.string()),
                       "fingerprint": pa.array([v if type(v) is str else None for v in map(decode_value, before)],
                                               pa.string())})
    found = scratch.select_arrow("""
        WITH matched AS (
            SELECT p.line, p.code, p.fingerprint, count(r.dossier_code) = 0 AS unknown,
                   count(r.dossier_code) FILTER (WHERE r.fingerprint = p.fingerprint) > 0 AS held
            FROM plan p LEFT JOIN store_rows r ON r.dossier_code = p.code
            GROUP BY p.line, p.code, p.fingerprint)
        SELECT line, code, fingerprint, unknown FROM matched m
        WHERE unknown OR NOT (held OR EXISTS (SELECT 1 FROM logged l WHERE l.code = m.code
                                                                    AND l.fingerprint = m.fingerprint))
        ORDER BY line""", {"plan": plan, "store_rows": rows, "logged": logged})
    return list(zip(*(found.column(i).to_pylist() for i in range(4))))


def _store_rows(conn: Connection, run_id: int, codes: list[str]) -> pa.Table:
    """The run's system rows of these dossiers (dossier_code, code_raw, source_row, fingerprint)."""
    d = dossier
    stmt = sa.select(d.c.dossier_code, d.c.code_raw, d.c.source_row, d.c.fingerprint).where(d.c.run_id == run_id)
    return read_arrow(conn, stmt, d.c.dossier_code, codes)


def _known(rows: pa.Table) -> StoreRows:
    """_store_rows by dossier code, each row a dict."""
    out: StoreRows = {}
    for code, raw, source_row, fp in zip(*(rows.column(i).to_pylist() for i in range(4))):
        row = {"dossier_code": code, "code_raw": raw, "source_row": source_row, "fingerprint": fp}
        out.setdefault(code, []).append(row)  # a code held by several rows: duplicate_code
    return out


def _check_backfills(plan: PlanFile, store: Store) -> None:
    """Each backfill names a dossier the audit run found on the register only (missing_in_system)."""
    codes = sorted({a.dossier_code for a in plan.actions if a.action == "backfill"})
    found: set[str] = set()
    with store.connect() as conn:
        for part in chunks(codes, IN_CHUNK):
            found.update(conn.execute(sa.select(reconciliation.c.dossier_code).where(
                reconciliation.c.run_id == plan.run, reconciliation.c["class"] == "missing_in_system",
                reconciliation.c.dossier_code.in_(part))).scalars())
    problems = [f"{plan.path}:{a.line}: dossier {a.dossier_code} is not missing_in_system in audit run {plan.run}. "
                "Hint: a backfill creates a dossier that is on the register only; check the code."
                for a in plan.actions if a.action == "backfill" and a.dossier_code not in found]
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{plan.path}: {len(problems)} backfills do not "
                       f"match audit run {plan.run}", problems)
