"""Fix plans: the latest audit's stuck dossiers turned into one reviewable action each (DESIGN §6).

Per dossier, the first that applies:
- resolved on paper, open in the system -> `close` with the register's outcome and return date;
- on a step its version no longer has, or on a dead end -> `migrate`: by a migration rule when one
  matches (`resolver`), else to the latest version's step paired with the lost one by the version
  diff (same id, same name, same unit and place), always as a guess awaiting a person's confirmation;
- assigned to an inactive account with an active colleague in the unit -> `reassign` (the least
  loaded colleague, so a unit's backlog is spread);
- anything else (unknown version, unit without staff, no target) -> `escalate`, for a vendor ticket;
- none of those, but on a version the migration rules move on from (superseded_version) -> `migrate`
  by the rules (confirmed unless a hop is a guess nobody confirmed).
On the register, not in the system (missing_in_system) -> `backfill`: create the system record from the
register row, never confirmed (a person confirms it in the plan file); `escalate` when the register's
procedure name is not exactly one catalog procedure's. A backfill has no fingerprint (no system row).
Every action carries the fingerprint of the dossier row it was computed from; `apply` refuses rows
that changed since. The plan also validates itself and reports the deadline impact of migrations.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.fix import planfile
from reconcile.fix.reasons import reason
from reconcile.model import FindingKind, MatchClass
from reconcile.store import (
    account, audit_run, code_match, dossier, reconciliation, register_entry, text_key, wf_state, wf_step, wf_transition,
    wf_version,
)
from reconcile.util.calendar import add_working_days
from reconcile.util.gctune import fewer_collections
from reconcile.workflow.catalog import Step, WorkflowVersion
from reconcile.workflow.model import StepRef
from reconcile.workflow.diff import diff_versions
from reconcile.workflow.state import FLAG, ORPHAN_KINDS, ORPHAN_MASK, flagged

K = FindingKind
PLAN_FORMAT = 1
CLOSE_STATUS = {"returned": "returned", "withdrawn": "withdrawn", "rejected": "rejected"}


@dataclass(frozen=True, slots=True)
class Target(StepRef):
    """Where a migration rule (or the version diff's guess: no rules, not confirmed) sends a dossier."""

    rules: tuple[str, ...]
    confirmed: bool
    assignee: str | None = None


# (procedure, version, step, facts) -> Target, or None when no rule applies (see reconcile.workflow.rules).
Resolver = Callable[[str, int, str, dict[str, Any]], Target | None]


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 3x (100k actions: 0.3 s)
class Action:
    dossier_code: str
    action: str  # migrate | reassign | close | backfill | escalate
    rule: str  # rule id(s), or the default choice's name
    reason: str
    fingerprint: str | None
    confirmed: bool
    set: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)
    reason_code: str | None = None  # reconcile.fix.reasons: `reason` is its English sentence (None: a plan file's own)
    reason_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"dossier_code": self.dossier_code, "action": self.action, "rule": self.rule,
                             "reason": self.reason}
        if self.reason_code is not None:
            d["reason_code"], d["reason_args"] = self.reason_code, self.reason_args
        d["confirmed"], d["fingerprint"] = self.confirmed, self.fingerprint
        # The pinned copies: what a reviewer looks for first.
        new = self.set
        if self.action == "migrate":
            d["version"], d["step"] = new["workflow_version"], new["current_step"]
        if "assignee" in new:
            d["assignee"] = new["assignee"]
        if self.action == "close" and "returned_at" in new:
            d["returned_at"] = new["returned_at"]
        d["set"], d["evidence"] = new, self.evidence
        return d


@dataclass(frozen=True, slots=True)
class Plan:
    header: dict[str, Any]
    actions: list[Action]
    validation: dict[str, Any]
    deadline_impact: list[dict[str, Any]]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.action] = out.get(a.action, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.header | {"counts": self.counts(), "validation": self.validation,
                                       "deadline_impact": self.deadline_impact},
                "actions": [a.to_dict() for a in self.actions]}

    @fewer_collections(paused=True)
    def to_yaml(self) -> str:
        """The plan file's text: YAML in the layout `apply` reads fast (see reconcile.fix.planfile)."""
        return planfile.dump(self.to_dict())


@fewer_collections(paused=True)
def build_plan(conn: Connection, run_id: int, store_url: str, resolver: Resolver | None = None) -> Plan:
    run = conn.execute(sa.select(audit_run).where(audit_run.c.id == run_id)).mappings().one()
    as_of: date = run["as_of"]
    versions = _catalog(conn, run_id)
    latest = {p: max(vs) for p, vs in _by_procedure(versions).items()}
    staff = _Staff(conn, run_id)
    actions: list[Action] = []
    impact: list[dict[str, Any]] = []
    orphans: set[str] = set()
    deadline = _Deadlines(versions, as_of)
    for row in _candidates(conn, run_id):
        flags = row["flags"] or 0
        orphaned = flags & ORPHAN_MASK
        if orphaned:
            orphans.add(row["dossier_code"])
        base = {"dossier_code": row["dossier_code"], "fingerprint": row["fingerprint"]}
        evidence = {"status": row["status"], "workflow_key": row["workflow_key"],
                    "workflow_version": row["workflow_version"], "current_step": row["current_step"],
                    "assignee": row["assignee"], "unit": row["unit"], "received_at": _plain(row["received_at"]),
                    "due_at": _plain(row["due_at"])}
        if row["class"] == "resolved_not_closed":
            actions.append(_close(row, base, evidence))
        elif flags & (FLAG[K.STEP_NOT_IN_VERSION] | FLAG[K.DEAD_END_STEP]):
            action = _migrate(row, base, evidence, versions, latest, staff, resolver)
            assert action is not None  # only a superseded dossier may get none
            actions.append(action)
            if action.action == "migrate":
                to = (action.set.get("workflow_key", row["workflow_key"]), action.set["workflow_version"])
                impact.append(deadline(row, to))
        elif flags & FLAG[K.ASSIGNEE_INACTIVE] and (who := staff.take(row["unit"])):
            actions.append(Action(**base, action="reassign", rule="default:reassign",
                                  **reason("reassign_inactive_assignee", assignee=row["assignee"], who=who,
                                           unit=row["unit"]),
                                  confirmed=True, set={"assignee": who}, evidence=evidence))
        elif orphaned:
            why = [k.value for k in ORPHAN_KINDS if flags & FLAG[k]]
            actions.append(Action(**base, action="escalate", rule="default:escalate",
                                  **reason("no_rule_or_default", findings=why), confirmed=True, set={},
                                  evidence=evidence))
        elif flags & FLAG[K.SUPERSEDED_VERSION] and resolver is not None and row["current_step"]:
            action = _migrate(row, base, evidence, versions, latest, staff, resolver, superseded=True)
            if action is not None:
                actions.append(action)
                if action.action == "migrate":
                    to = (action.set.get("workflow_key", row["workflow_key"]), action.set["workflow_version"])
                    impact.append(deadline(row, to))
    actions += [_backfill(row, procedures) for row, procedures in _backfill_candidates(conn, run_id)]
    actions.sort(key=lambda a: a.dossier_code)
    header = {"format": PLAN_FORMAT, "store": store_url, "run": run_id, "run_fingerprint": run["fingerprint"],
              "as_of": as_of.isoformat(), "system": _system(run["inputs"])}
    return Plan(header, actions, _validate(actions, orphans, versions, staff), impact)


# ------------------------------------------------------------------------------------ choices

def _close(row: Any, base: dict[str, Any], evidence: dict[str, Any]) -> Action:
    outcome, returned = row["paper_outcome"], row["paper_returned_at"]
    new: dict[str, Any] = {"status": CLOSE_STATUS.get(outcome, "returned")}
    if returned is not None:
        new["returned_at"] = returned.isoformat()
        if row["finished_at"] is None:
            new["finished_at"] = returned.isoformat()
    return Action(**base, action="close", rule="default:close", confirmed=True,
                  **reason("closed_on_paper", outcome=outcome, file=row["source_file"], sheet=row["sheet"],
                           row=row["row_no"], status=row["status"]),
                  set=new, evidence=evidence | {"register": {
                      "file": row["source_file"], "sheet": row["sheet"], "row": row["row_no"],
                      "returned": _plain(returned), "outcome": outcome}})


def _migrate(row: Any, base: dict[str, Any], evidence: dict[str, Any], versions: dict[tuple[str, int], WorkflowVersion],
             latest: dict[str, int], staff: "_Staff", resolver: Resolver | None, superseded: bool = False
             ) -> Action | None:
    """Superseded (not an orphan): by the rules only, from the version the dossier runs on (pinned or
    inferred); None when no rule applies to it as it is."""
    proc, version, step = row["workflow_key"], row["workflow_version"], row["current_step"]
    if superseded:
        version = row["state_version"]
    facts = {"on_paper": row["source_file"] is not None, "paper_returned_at": row["paper_returned_at"],
             "unit": row["unit"], "received_at": row["received_at"]}
    target = resolver(proc, version, step, facts) if resolver and step else None
    rule = ",".join(target.rules) if target else "default:migrate"
    if superseded and target is None:
        return None
    if target is None and step:
        target = _proposed(proc, version, step, row["earlier_version_with_step"], versions, latest)
    if target is None:
        return Action(**base, action="escalate", rule="default:escalate", confirmed=True, set={}, evidence=evidence,
                      **reason("no_migration_target", step=step, version=version))
    to = versions.get((target.procedure, target.version))
    step_def = to.step(target.step) if to else None
    if step_def is None or target.step not in to.reachable_final():  # type: ignore[union-attr]
        return Action(**base, action="escalate", rule=rule, confirmed=True, set={}, evidence=evidence,
                      **reason("target_invalid", procedure=target.procedure, version=target.version,
                               step=target.step))
    new: dict[str, Any] = {"workflow_version": target.version, "current_step": target.step}
    if target.procedure != proc:  # a rule may move dossiers to another procedure (the 2025 land reform)
        new = {"workflow_key": target.procedure} | new
    unit = step_def.unit or row["unit"]
    if unit != row["unit"] or not staff.active(row["assignee"]):
        who = target.assignee if staff.active(target.assignee) else staff.take(unit)
        if who is None:
            return Action(**base, action="escalate", rule=rule, confirmed=True, set={}, evidence=evidence,
                          **reason("target_without_staff", version=target.version, step=target.step, unit=unit))
        new |= {"assignee": who, "unit": unit}
    # A rule's target names its rules; the version diff's guess has none. Superseded: always a rule's.
    code = "superseded_by_rule" if superseded else "step_lost_by_rule" if target.rules else "step_lost_by_diff"
    return Action(**base, action="migrate", rule=rule, confirmed=target.confirmed, set=new, evidence=evidence,
                  **reason(code, step=step, version=version, to_version=target.version, to_step=target.step,
                           to_name=step_def.name, rule=rule))


def _proposed(proc: str, version: int, step: str, earlier: int | None,
              versions: dict[tuple[str, int], WorkflowVersion], latest: dict[str, int]) -> Target | None:
    """The latest version's step that the version diff pairs with the lost one (never confirmed)."""
    newest = versions.get((proc, latest.get(proc, -1)))
    source = versions.get((proc, earlier)) if earlier is not None else versions.get((proc, version))
    if newest is None or source is None or source.step(step) is None:
        return None
    if newest.step(step) is not None and newest.version != version:
        return Target(proc, newest.version, step, (), confirmed=False)
    diff = _version_diff(source, newest)
    paired = next((r.added for r in diff.replaced if r.removed == step), None)
    return Target(proc, newest.version, paired, (), confirmed=False) if paired else None


# Once per pair of versions, not once per orphan dossier: the step comparison (DeepDiff) is not cheap.
_version_diff = functools.lru_cache(maxsize=256)(diff_versions)


class _Deadlines:
    """The due date recomputed in working days from the received date with the target version's time
    limit (its steps' days along the first path to a final step); once per (version, received date)."""

    def __init__(self, versions: dict[tuple[str, int], WorkflowVersion], as_of: date) -> None:
        self.versions, self.as_of = versions, as_of
        self.due: dict[tuple[tuple[str, int], date], date] = {}

    def __call__(self, row: Any, to: tuple[str, int]) -> dict[str, Any]:
        received, due, version = row["received_at"], row["due_at"], self.versions[to]
        new_due = None
        if received:
            new_due = self.due.get((to, received))
            if new_due is None:
                new_due = self.due[to, received] = add_working_days(received, math.ceil(_time_limit(version)))
        return {"dossier_code": row["dossier_code"], "version": version.version, "due_at": _plain(due),
                "new_due_at": _plain(new_due), "late_before": bool(due and due < self.as_of),
                "late_after": bool(new_due and new_due < self.as_of)}


def _time_limit(v: WorkflowVersion) -> float:
    total, seen, step = 0.0, set(), v.steps[0] if v.steps else None
    while step is not None and step.id not in seen:
        seen.add(step.id)
        total += step.days
        if step.final or not step.next:
            break
        step = v.step(step.next[0])
    return total


def _validate(actions: list[Action], orphans: set[str], versions: dict[tuple[str, int], WorkflowVersion],
              staff: "_Staff") -> dict[str, Any]:
    """What a reviewer must know before signing the plan off; `problems` lists what breaks a rule."""
    problems = []
    for a in actions:
        new = a.set.get("assignee")
        if new is not None and new not in staff.actives:
            problems.append(f"{a.dossier_code}: new assignee {new} is not active")
        if a.action == "migrate":
            v = versions.get((a.set.get("workflow_key", a.evidence["workflow_key"]), a.set["workflow_version"]))
            if v is None or a.set["current_step"] not in v.reachable_final():
                problems.append(f"{a.dossier_code}: target step {a.set['current_step']} cannot reach a final step")
    handled = {a.dossier_code: a.action for a in actions}
    missing = sorted(orphans - set(handled))
    problems += [f"{code}: orphan with no action" for code in missing]
    orphan_actions = Counter(map(handled.get, orphans))
    backfills = Counter(a.action == "backfill" for a in actions if not a.confirmed)  # unconfirmed
    return {
        "orphans": len(orphans),
        "covered": orphan_actions["migrate"] + orphan_actions["reassign"] + orphan_actions["close"],
        "escalated": orphan_actions["escalate"],
        "guesses_awaiting_confirmation": backfills[False],
        "backfills_awaiting_confirmation": backfills[True],
        "problems": problems,
    }


# ------------------------------------------------------------------------------------ backfill

def _backfill(row: Any, procedures: list[str]) -> Action:
    """A register-only dossier: create its system record from the register row (a person confirms it),
    or escalate when the register's procedure name is not exactly one catalog procedure's."""
    where = {"file": row["source_file"], "sheet": row["sheet"], "row": row["row_no"]}
    evidence = {"register": where | {k: _plain(row[k]) for k in (
        "code_raw", "procedure", "applicant", "agency", "received_raw", "due_raw", "returned_raw", "outcome", "note")}}
    base = {"dossier_code": row["dossier_code"], "fingerprint": None, "evidence": evidence}  # no system row
    if len(procedures) != 1:
        code = "backfill_ambiguous_procedure" if procedures else "backfill_unknown_procedure"
        args = where | {"name": row["procedure"] or ""} | ({"matches": procedures} if procedures else {})
        return Action(**base, action="escalate", rule="default:escalate", confirmed=True, set={},
                      **reason(code, **args))
    status = CLOSE_STATUS.get(row["outcome"], "received")  # returned/withdrawn/rejected on paper, else open
    new = {"dossier_code": row["dossier_code"], "procedure": procedures[0], "workflow_key": procedures[0],
           "applicant": row["applicant"], "received_at": _plain(row["received_at"]), "due_at": _plain(row["due_at"]),
           "status": status}
    if status != "received":
        new["returned_at"] = _plain(row["returned_at"])
    return Action(**base, action="backfill", rule="default:backfill", confirmed=False,
                  set={k: v for k, v in new.items() if v is not None},
                  **reason("missing_in_system", **where, procedure=procedures[0], status=status))


# -------------------------------------------------------------------------------------- reads

def _candidates(conn: Connection, run_id: int) -> list[Any]:
    """Open dossiers with an orphan finding or on a superseded version, or resolved on paper: with their
    system row and the register row that represents them."""
    w, d, rc, r = wf_state, dossier, reconciliation, register_entry
    wanted = ORPHAN_MASK | FLAG[K.SUPERSEDED_VERSION]
    stmt = (
        sa.select(w.c.flags, w.c.earlier_version_with_step, w.c.version.label("state_version"), d.c.dossier_code,
                  d.c.fingerprint, d.c.status,
                  d.c.workflow_key, d.c.workflow_version, d.c.current_step, d.c.assignee, d.c.unit, d.c.received_at,
                  d.c.due_at, d.c.finished_at, rc.c["class"], r.c.outcome.label("paper_outcome"),
                  r.c.returned_at.label("paper_returned_at"), r.c.source_file, r.c.sheet, r.c.row_no)
        .select_from(w.join(d, sa.and_(d.c.run_id == w.c.run_id, d.c.source_row == w.c.source_row))
                     .outerjoin(rc, sa.and_(rc.c.run_id == w.c.run_id, rc.c.source_row == w.c.source_row))
                     .outerjoin(r, sa.and_(r.c.run_id == w.c.run_id,
                                           *code_match(conn, r.c.dossier_code, rc.c.dossier_code),
                                           r.c.entry_id == rc.c.entry_id)))
        .where(w.c.run_id == run_id, d.c.dossier_code.is_not(None),
               sa.or_(flagged(wanted), rc.c["class"] == "resolved_not_closed"))
        .order_by(d.c.dossier_code)
    )
    return conn.execute(stmt).mappings().all()


def _backfill_candidates(conn: Connection, run_id: int) -> list[tuple[Any, list[str]]]:
    """The run's missing_in_system dossiers (paper-only units are another class): the register row that
    represents each, with the catalog procedures whose name is the register's procedure name (the
    audit's link, text_key -> wf_version.name_key)."""
    r, rc, tk = register_entry, reconciliation, text_key
    names = sa.select(wf_version.c.procedure, wf_version.c.name_key).where(wf_version.c.run_id == run_id) \
        .distinct().subquery("names")
    stmt = (
        sa.select(rc.c.dossier_code, r.c.source_file, r.c.sheet, r.c.row_no, r.c.code_raw, r.c.procedure,
                  r.c.applicant, r.c.agency, r.c.received_raw, r.c.received_at, r.c.due_raw, r.c.due_at,
                  r.c.returned_raw, r.c.returned_at, r.c.outcome, r.c.note, names.c.procedure.label("catalog"))
        .select_from(rc.join(r, sa.and_(r.c.run_id == rc.c.run_id,
                                        *code_match(conn, r.c.dossier_code, rc.c.dossier_code),
                                        r.c.entry_id == rc.c.entry_id))
                     .outerjoin(tk, sa.and_(tk.c.run_id == run_id, tk.c.value == r.c.procedure))
                     .outerjoin(names, names.c.name_key == tk.c.key))
        .where(rc.c.run_id == run_id, rc.c["class"] == MatchClass.MISSING_IN_SYSTEM.value)
        .order_by(rc.c.dossier_code, names.c.procedure)
    )
    out: dict[str, tuple[Any, list[str]]] = {}
    for row in conn.execute(stmt).mappings():
        _, procedures = out.setdefault(row["dossier_code"], (row, []))
        if row["catalog"] is not None:
            procedures.append(row["catalog"])
    return list(out.values())


def _catalog(conn: Connection, run_id: int) -> dict[tuple[str, int], WorkflowVersion]:
    """The run's catalog snapshot, as the audit saw it."""
    nexts: dict[tuple[str, int, str], list[str]] = {}
    for p, v, a, b in conn.execute(sa.select(wf_transition.c.procedure, wf_transition.c.version,
                                             wf_transition.c.from_step, wf_transition.c.to_step)
                                   .where(wf_transition.c.run_id == run_id)):
        nexts.setdefault((p, v, a), []).append(b)
    steps: dict[tuple[str, int], list[Step]] = {}
    for s in conn.execute(sa.select(wf_step).where(wf_step.c.run_id == run_id)
                          .order_by(wf_step.c.procedure, wf_step.c.version, wf_step.c.line)).mappings():
        steps.setdefault((s["procedure"], s["version"]), []).append(Step(
            s["step_id"], s["name"] or "", s["unit"], s["days"], tuple(nexts.get((s["procedure"], s["version"],
                                                                                  s["step_id"]), ())),
            s["final"], s["line"] or 0, bool(s["may_end"])))
    out = {}
    for v in conn.execute(sa.select(wf_version).where(wf_version.c.run_id == run_id)).mappings():
        key = (v["procedure"], v["version"])
        out[key] = WorkflowVersion(v["procedure"], v["name"], v["field"], v["version"], v["valid_from"],
                                   tuple(steps.get(key, ())), v["path"])
    return out


def _by_procedure(versions: dict[tuple[str, int], WorkflowVersion]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for p, v in versions:
        out.setdefault(p, []).append(v)
    return out


class _Staff:
    """Active accounts per unit, handed out least-loaded first (ties by account name): a heap of
    (load, account) per unit."""

    def __init__(self, conn: Connection, run_id: int) -> None:
        acc, w = account, wf_state
        load = dict(conn.execute(sa.select(w.c.assignee, sa.func.count())
                                 .where(w.c.run_id == run_id, w.c.assignee.is_not(None)).group_by(w.c.assignee)).all())
        units: dict[str, dict[str, int]] = {}
        self.actives: set[str] = set()
        for name, unit in conn.execute(sa.select(acc.c.account, acc.c.unit)
                                       .where(acc.c.run_id == run_id, acc.c.active.is_(True))):
            self.actives.add(name)
            units.setdefault(unit, {})[name] = int(load.get(name, 0))
        self.by_unit = {unit: [(n, name) for name, n in pool.items()] for unit, pool in units.items()}
        for pool in self.by_unit.values():
            heapq.heapify(pool)

    def active(self, name: str | None) -> bool:
        return name is not None and name in self.actives

    def take(self, unit: str | None) -> str | None:
        pool = self.by_unit.get(unit or "")
        if not pool:
            return None
        n, who = pool[0]
        heapq.heapreplace(pool, (n + 1, who))
        return who


def _system(inputs_json: str) -> dict[str, Any]:
    import json

    system = json.loads(inputs_json).get("system", {})
    return {k: system[k] for k in ("profile", "source", "mapping") if k in system}


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else v
