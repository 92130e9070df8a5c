"""The `apply` command: a plan file applied to the system in batches (undo: reconcile.fix.undo).

Safety model:
- A dry run by default: the statements are built from the target's rows as read now (in a read-only
  transaction) and shown; nothing is written without `yes`.
- Every UPDATE is built with SQLAlchemy Core from the mapping: identifiers quoted by SQLAlchemy,
  values bound (rendered as literals only for display and `--sql`). Each one is a compare-and-set:
  it changes the row only if the written columns still hold the values read.
- A confirmed `backfill` INSERTs the dossier row (mapped columns of the dossier role only) after
  re-checking, inside the batch, that no row with its code exists; one that exists is refused (or is
  "already applied" when it holds exactly the planned values). Its change rows log every inserted
  column with the before-value ABSENT (no row); undo turns them into a compare-and-set DELETE.
- Writes run in batches, each one transaction on the target that re-reads its rows (locked),
  recomputes each dossier's fingerprint exactly as the audit did (the workbench SQL) and refuses
  rows that changed since the audit. A row already holding the planned values is "already applied":
  a plan applied twice changes nothing the second time, and a rerun completes an interrupted run.
- The log (store tables change_batch, change, batch_outcome) is append-only. The store and the
  target are different databases: a batch and its change rows are recorded before the target
  transaction commits and its outcome after; an interrupted batch is settled by the next apply or
  undo from the target's rows (committed: the rows hold the after-values; rolled back: the before-values).
- With the csv profile the target is the store's own snapshot of the run (its `dossier` rows):
  target writes and log rows are one transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import BadInput, Refused
from reconcile.faults import fault
from reconcile.fix.batches import execute_refs, log_and_commit, probe_writes, target_failed
from reconcile.fix.checks import load_checked
from reconcile.fix.ledger import Ledger, stopping
from reconcile.fix.planread import PlanAction, PlanFile
from reconcile.fix.settle import settle
from reconcile.fix.targets import open_target, StoreTarget, Target, VendorTarget
from reconcile.fix.writes import Ref, Renderer, Write
from reconcile.store import mask_url, Store
from reconcile.util.gctune import fewer_collections
from reconcile.util.inlists import chunks

DEFAULT_BATCH_SIZE = 5000  # per batch: one target transaction (its rows locked) and two store commits
REFUSED_STATES = ("stale", "missing", "ambiguous")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What apply did (or would do) with one action of the plan."""

    line: int
    dossier_code: str
    action: str
    rule: str
    state: str  # written, would_write, already_applied, stale, missing, ambiguous, unconfirmed, rejected, escalate
    detail: str = ""
    refs: tuple[Ref, ...] = ()  # its writes
    batch: int | None = None
    render: Callable[[Write], str] | None = None  # the statements' text, rendered when asked for

    @property
    def writes(self) -> tuple[Write, ...]:
        return tuple(g.write(i) for g, i in self.refs)

    @property
    def statements(self) -> tuple[str, ...]:
        return tuple(map(self.render, self.writes)) if self.render else ()

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "dossier_code": self.dossier_code, "action": self.action, "rule": self.rule,
                "state": self.state, "detail": self.detail, "statements": list(self.statements), "batch": self.batch}


@dataclass(frozen=True, slots=True)
class ApplyResult:
    mode: str  # dry_run | apply
    plan: str
    run: int
    target: dict[str, Any]
    writable: bool
    outcomes: tuple[Outcome, ...]
    batches: tuple[int, ...]
    parts: tuple[str | tuple[PlanAction, Outcome], ...]  # the script's lines; a written action stands for its
    settled: tuple[str, ...] = ()                        # comment and statements

    @property
    def script(self) -> str:
        """The statements as a SQL script, in batches (rendered now: apply --yes does not need them)."""
        return "\n".join(p if isinstance(p, str) else "\n".join(
            (_comment(f"{p[0].dossier_code} {p[0].action} ({p[0].rule}): {p[0].reason}"), *p[1].statements))
            for p in self.parts) + "\n"

    def counts(self) -> dict[str, int]:
        return dict(Counter(o.state for o in self.outcomes))

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.state in REFUSED_STATES]

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "plan": self.plan, "run": self.run, "target": self.target,
                "writable": self.writable, "counts": self.counts(), "batches": list(self.batches),
                "settled": list(self.settled), "outcomes": [o.to_dict() for o in self.outcomes]}


def _comment(text: str) -> str:
    return "-- " + " ".join(str(text).split())  # no line break can end the comment


@fewer_collections()
def apply_plan(plan_path: str | Path, store_url: str | None = None, *, yes: bool = False,
               batch_size: int = DEFAULT_BATCH_SIZE, system_url: str | None = None,
               mapping_path: str | None = None, actor: str | None = None) -> ApplyResult:
    """Dry run (yes=False: read-only, returns the statements) or apply in batches (yes=True)."""
    if batch_size < 1:
        raise BadInput(f"--batch-size {batch_size}: expected 1 or more.")
    plan, store, known = load_checked(plan_path, store_url)
    try:
        target = open_target(plan, store, known, system_url, mapping_path)
        try:
            writable = isinstance(target, StoreTarget) or target.mapping.writable  # type: ignore[attr-defined]
            if yes and not writable:
                raise Refused(f"{target.mapping.path}: the mapping does not declare `writable: true`: "  # type: ignore
                              "nothing written. Hint: --sql FILE writes the statements for a DBA or the vendor.")
            ledger = None
            if yes:
                if isinstance(target, VendorTarget):
                    _refuse_queries(target)
                probe_writes(target, target.needs(plan))
                ledger = Ledger(store, "apply", lambda _: f"reconcile apply {plan.path} --yes")
            settled = tuple(settle(store, target)) if yes else ()
            return _run(plan, store, target, batch_size, writable, settled, actor, ledger)
        finally:
            target.close()
    finally:
        store.engine.dispose()


def _refuse_queries(target: VendorTarget) -> None:
    """apply --yes re-reads the dossier and task rows inside its write transaction, which cannot be
    read-only: a mapping's `query:`, promised to run read-only, is never run there."""
    for role, tm in target.roles.items():
        if tm.query:
            raise Refused(f"{target.mapping.path}: {role}.query: apply --yes would run it inside its write "
                          "transaction, where it cannot be read-only: nothing written. Hint: map "
                          f"{role}.table, or write the statements with --sql FILE for a DBA.")


def _run(plan: PlanFile, store: Store, target: Target, batch_size: int, writable: bool, settled: tuple[str, ...],
         actor: str | None, ledger: Ledger | None) -> ApplyResult:
    """The plan's batches: written and logged with a ledger (apply --yes), else only shown."""
    yes = ledger is not None
    outcomes: list[Outcome] = []
    todo = []
    for a in plan.actions:
        if a.action == "escalate":
            outcomes.append(Outcome(a.line, a.dossier_code, a.action, a.rule, "escalate",
                                    "nothing to write: goes to a vendor ticket"))
        elif a.rejected:
            outcomes.append(Outcome(a.line, a.dossier_code, a.action, a.rule, "rejected",
                                    "rejected by a reviewer (rejected: true): not applied"))
        elif not a.confirmed and a.action == "backfill":
            outcomes.append(Outcome(a.line, a.dossier_code, a.action, a.rule, "unconfirmed",
                                    "a record to create awaiting a person: set confirmed: true to apply it"))
        elif not a.confirmed:
            outcomes.append(Outcome(a.line, a.dossier_code, a.action, a.rule, "unconfirmed",
                                    "a guess awaiting a person: set confirmed: true to apply it"))
        else:
            todo.append(a)
    dialect = target.dialect
    script: list[str | tuple[PlanAction, Outcome]] = [
        _comment(f"dossier-reconcile apply: plan {plan.path} (sha256 {plan.sha256[:16]}), audit run {plan.run}, "
                 f"target {target.describe['source']}"),
        _comment("Built from the target's rows as read now; each UPDATE changes its row only if the written "
                 "columns still hold the values read (compare-and-set); each INSERT creates a dossier found "
                 "on the register only, after checking that no row has its code.")]
    begin = "START TRANSACTION;" if dialect.name in ("mysql", "mariadb") else "BEGIN;"
    render = Renderer(dialect)
    batches: list[int] = []
    by_line: dict[int, Outcome] = {}
    write_no = 0
    with stopping(ledger):
        for n, part in enumerate(chunks(todo, batch_size), 1):
            fault("before-batch", n)
            with target.connection(write=yes) as conn:
                inserts = [a for a in part if a.action == "backfill"]
                try:
                    planned = target.plan_batch(conn, [a for a in part if a.action != "backfill"], lock=yes) \
                        + (target.plan_inserts(conn, inserts, lock=yes) if inserts else [])
                except sa.exc.DBAPIError as exc:  # the locked read (FOR UPDATE needs the right to write)
                    raise target_failed(target, exc, f"batch {n} (plan lines {part[0].line}-{part[-1].line})",
                                        target.written_tables()) from None
                writes = [(a, refs) for a, state, _, refs in planned if state == "write"]
                batch_id = None
                if ledger is not None and writes:
                    write_no += 1
                    batch_id = _write_batch(plan, store, target, conn, writes, write_no, actor, ledger)
                    batches.append(batch_id)
            state_of = {"write": "written" if yes else "would_write"}
            made = [Outcome(a.line, a.dossier_code, a.action, a.rule, state_of.get(state, state), detail, refs,
                            batch_id if state == "write" else None, render) for a, state, detail, refs in planned]
            by_line.update(zip((a.line for a, *_ in planned), made))
            if writes:
                script += [_comment(f"batch {n}: plan lines {part[0].line}-{part[-1].line}"), begin]
                script += [(a, o) for (a, state, *_), o in zip(planned, made) if state == "write"]
                script.append("COMMIT;")
    if ledger is not None:
        ledger.check_end()
    refused = [by_line[a.line] for a in todo if by_line[a.line].state in REFUSED_STATES]
    if refused:
        script.append(_comment(f"refused ({len(refused)}), not written:"))
        script += [_comment(f"{o.dossier_code} (plan line {o.line}): {o.state}: {o.detail}") for o in refused]
    skipped = list(outcomes)
    if skipped:
        script.append(_comment(f"not applied ({len(skipped)}):"))
        script += [_comment(f"{o.dossier_code} (plan line {o.line}): {o.action}: {o.detail}") for o in skipped]
    outcomes += list(by_line.values())
    outcomes.sort(key=lambda o: o.line)
    return ApplyResult("apply" if yes else "dry_run", plan.path, plan.run, target.describe, writable,
                       tuple(outcomes), tuple(batches), tuple(script), settled)


def _write_batch(plan: PlanFile, store: Store, target: Target, conn: Connection,
                 writes: list[tuple[PlanAction, tuple[Ref, ...]]], write_no: int, actor: str | None,
                 ledger: Ledger) -> int:
    refs = [r for _, rs in writes for r in rs]
    what = f"batch {write_no} (plan lines {writes[0][0].line}-{writes[-1][0].line})"
    try:
        execute_refs(conn, refs, what)
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        raise target_failed(target, exc, what, sorted({g.table.name for g, _ in refs})) from None
    fault("after-writes", write_no)
    meta = {"kind": "apply", "run_id": plan.run, "plan": plan.path, "plan_sha256": plan.sha256, "undo_of": None}
    return log_and_commit(store, target, conn, refs, meta, write_no, actor, ledger)


def summary_lines(result: ApplyResult, store_arg: str | None) -> list[str]:
    counts = result.counts()
    order = ("written", "would_write", "already_applied", "stale", "missing", "ambiguous", "unconfirmed",
             "rejected", "escalate", "backfill")
    lines = [*result.settled, "plan " + result.plan + ": " + ", ".join(
        f"{counts[k]} {k.replace('_', ' ')}" for k in order if counts.get(k)) if counts else
        f"plan {result.plan}: no actions"]
    for o in result.refused:
        lines.append(f"refused: {o.dossier_code} (plan line {o.line}, {o.action}): {o.state}: {o.detail}")
    guesses = counts.get("unconfirmed", 0)
    if guesses:
        lines.append(f"skipped {guesses} unconfirmed guesses: set confirmed: true in the plan to apply them.")
    if counts.get("rejected"):
        lines.append(f"skipped {counts['rejected']} rejected by a reviewer (rejected: true in the plan).")
    if result.batches:
        ids = " ".join(str(b) for b in reversed(result.batches))
        store = f" --store {mask_url(store_arg)}" if store_arg else ""  # passwords are never printed
        lines.append(f"batches: {', '.join(str(b) for b in result.batches)}")
        lines.append(f"undo: reconcile undo {ids}{store}")
    return lines
