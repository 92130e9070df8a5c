"""Read and check a plan file on its own (its YAML text: reconcile.fix.planfile): the header, each
action and its `set` in canonical values; every problem with file:line and a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
import hashlib
from pathlib import Path
import re
from typing import Any, Callable

import yaml

from reconcile.errors import BadInput
from reconcile.fix import planfile
from reconcile.model import Status
from reconcile.util import yamlio
from reconcile.util.structdiff import differing

PLAN_FORMAT = 1
ACTIONS = ("migrate", "reassign", "close", "backfill", "escalate")
WRITING = ("migrate", "reassign", "close")
# Canonical fields apply may write, per mapping role.
WRITABLE = {
    "dossier": ("status", "workflow_key", "workflow_version", "due_at_revised", "finished_at", "returned_at"),
    "task": ("current_step", "assignee", "unit", "step_entered_at", "step_due_at"),
}
ROLE_OF = {f: role for role, fields in WRITABLE.items() for f in fields}
DATE_FIELDS = ("due_at_revised", "finished_at", "returned_at", "step_entered_at", "step_due_at", "received_at",
               "due_at")
# The fields a backfill's row is created with (mapping role dossier), and those it must have.
BACKFILL_FIELDS = ("dossier_code", "procedure", "workflow_key", "applicant", "received_at", "due_at", "status",
                   "returned_at")
BACKFILL_REQUIRED = ("dossier_code", "status", "received_at")
REQUIRED_SET = {"migrate": ("workflow_version", "current_step"), "reassign": ("assignee",), "close": ("returned_at",)}
PINNED = {"version": "workflow_version", "step": "current_step", "assignee": "assignee", "returned_at": "returned_at"}
STATUS_NAMES = tuple(s.value for s in Status)
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class PlanAction:
    line: int  # of the item in the plan file
    dossier_code: str
    action: str
    rule: str
    reason: str
    fingerprint: str | None
    confirmed: bool
    set: tuple[tuple[str, Any], ...]  # canonical field -> value (dates as date/datetime, version int)
    reason_code: str | None = None  # reconcile.fix.reasons; None in plan files of older versions
    reason_args: dict[str, Any] = field(default_factory=dict, compare=False)
    rejected: bool = False  # `rejected: true`: a reviewer said no (reconcile review); never applied


@dataclass(frozen=True, slots=True)
class PlanFile:
    path: str
    sha256: str
    store: str
    run: int
    run_fingerprint: str
    system: dict[str, str]  # profile, source, mapping
    actions: tuple[PlanAction, ...]


def _node_lines(root: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Line (1-based) of every value in a composed YAML document, by key path (a loop: a plan may nest as
    deep as the parser allows)."""
    out: dict[tuple[Any, ...], int] = {}
    todo: list[tuple[tuple[Any, ...], yaml.Node]] = [((), root)] if root is not None else []
    while todo:
        path, node = todo.pop()
        out[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            todo += [(path + (k.value,), v) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(path + (i,), v) for i, v in enumerate(node.value)]
    return out


def _read_yaml(p: Path, text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The file read by PyYAML (reconcile.util.yamlio: no aliases, finite numbers, dates as text), with the
    line of every value by key path."""
    node, data = yamlio.parse(text, str(p))
    return data, _node_lines(node)


def _action_lines(node: yaml.Node | None, data: Any) -> dict[int, int]:
    """The line of each action (a mapping) of `data["actions"]` by id(), from the node tree it was made from."""
    items = data.get("actions") if isinstance(data, dict) else None
    seq = yamlio.value_node(node, "actions")
    if not isinstance(items, list) or not isinstance(seq, yaml.SequenceNode) or len(seq.value) != len(items):
        return {}
    return {id(item): n.start_mark.line + 1 for item, n in zip(items, seq.value) if type(item) is dict}


def load_plan(path: str | Path) -> PlanFile:
    """Read and check a plan file on its own; every problem with file:line and a hint."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: no such file. Hint: `reconcile plan --out {p.name}` writes one.")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{p}: not UTF-8. Hint: save the plan as UTF-8.") from None
    # The layout `reconcile plan` writes is read fast (planfile); any other YAML by PyYAML (yamlio). Both
    # give the line of each action; other lines are looked up (PyYAML again) only when a problem is reported.
    fast = planfile.load(text)
    lines: dict[tuple[Any, ...], int] | None = None
    if fast is None:
        node, data = yamlio.parse(text, str(p))
        item_lines = _action_lines(node, data)
        del node  # a node per value, with its marks: a plan's worth of them is not kept
    else:
        data, item_lines = fast
    problems: list[str] = []

    def at(*keys: Any) -> str:
        nonlocal lines
        if lines is None:
            lines = _read_yaml(p, text)[1]
        for n in range(len(keys), -1, -1):
            if keys[:n] in lines:
                return f"{p}:{lines[keys[:n]]}"
        return f"{p}:1"

    if not isinstance(data, dict) or not isinstance(data.get("plan"), dict) or "actions" not in data:
        raise BadInput(f"{at()}: expected a plan file with 'plan:' (header) and 'actions:' (list). "
                       "Hint: `reconcile plan --out plan.yaml` writes one.")
    head = data["plan"]
    check_header(head, at, problems)
    items = data["actions"]
    if items is None:
        items = []
    if not isinstance(items, list):
        problems.append(f"{at('actions')}: 'actions' must be a list of actions.")
        items = []
    actions = check_actions(items, item_lines, at, problems)
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{p}: {len(problems)} problems in the plan", problems)
    return checked_plan(p, hashlib.sha256(raw).hexdigest(), head, tuple(actions))


_q = yamlio.shown  # a value from the file in a message: quoted, cut short


def check_header(head: dict[str, Any], at: Callable[..., str], problems: list[str]) -> None:
    """The plan header's format, store, run, run_fingerprint and system."""
    if head.get("format") != PLAN_FORMAT or type(head.get("format")) is not int:
        problems.append(f"{at('plan', 'format')}: plan.format {_q(head.get('format'))}: this tool reads format "
                        f"{PLAN_FORMAT}. Hint: write the plan again with this version's `reconcile plan`.")
    for key in ("store", "run_fingerprint"):
        if not isinstance(head.get(key), str) or not head.get(key):
            problems.append(f"{at('plan', key)}: plan.{key} is missing or not text. Hint: the header is written by "
                            "`reconcile plan`; do not edit it.")
    run = head.get("run")
    if not isinstance(run, int) or isinstance(run, bool) or run < 1:
        problems.append(f"{at('plan', 'run')}: plan.run {_q(run)} is not an audit run id. Hint: the header is "
                        "written by `reconcile plan`; do not edit it.")
    system = head.get("system")
    if not isinstance(system, dict) or not isinstance(system.get("profile"), str) \
            or not isinstance(system.get("source"), str):
        problems.append(f"{at('plan', 'system')}: plan.system needs profile and source. Hint: the header is "
                        "written by `reconcile plan`; do not edit it.")


def check_actions(items: list[Any], item_lines: dict[int, int], at: Callable[..., str], problems: list[str]
                  ) -> list[PlanAction]:
    """The plan's actions, each checked (`item_lines`: the line of an item by id(), else `at` tells)."""
    actions: list[PlanAction] = []
    seen: dict[str, int] = {}
    sets: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, item in enumerate(items):
        line = item_lines.get(id(item)) or int(at("actions", i).rsplit(":", 1)[1])
        found = _check_action(item, i, line, at, problems, sets)
        if found is None:
            continue
        if found.dossier_code in seen:
            problems.append(f"{at('actions', i, 'dossier_code')}: dossier {found.dossier_code} already has an "
                            f"action at line {seen[found.dossier_code]}. Hint: one action per dossier.")
            continue
        seen[found.dossier_code] = found.line
        actions.append(found)
    return actions


def checked_plan(p: Path, sha256: str, head: dict[str, Any], actions: tuple[PlanAction, ...]) -> PlanFile:
    """A checked plan: its header (see check_header) and actions."""
    system = head["system"]
    return PlanFile(path=str(p), sha256=sha256, store=head["store"], run=int(head["run"]),
                    run_fingerprint=head["run_fingerprint"],
                    system={k: str(system[k]) for k in ("profile", "source", "mapping") if system.get(k) is not None},
                    actions=actions)


def _check_action(item: Any, i: int, line: int, at: Callable[..., str], problems: list[str],
                  checked_sets: dict[tuple[Any, ...], dict[str, Any]]) -> PlanAction | None:
    """One action, checked; a writing action's `set` is checked once per distinct `set_key` in `checked_sets`."""
    if not isinstance(item, dict):
        problems.append(f"{at('actions', i)}: action {i + 1} is not a mapping (dossier_code, action, rule, ...).")
        return None
    before = len(problems)
    code, kind = item.get("dossier_code"), item.get("action")
    if not isinstance(code, str) or not code.strip():
        problems.append(f"{at('actions', i, 'dossier_code')}: dossier_code missing or empty.")
    if kind not in ACTIONS:
        problems.append(f"{at('actions', i, 'action')}: action {_q(kind)}: expected one of {', '.join(ACTIONS)}.")
    for key in ("rule", "reason"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            problems.append(f"{at('actions', i, key)}: {key} missing or empty. Hint: every action says which "
                            "rule (or default choice) made it, and why.")
    for key, want, what in (("reason_code", str, "a reason code"), ("reason_args", dict, "a mapping")):
        if item.get(key) is not None and not isinstance(item[key], want):
            problems.append(f"{at('actions', i, key)}: {key}: expected {what}. Hint: leave it as `reconcile plan` "
                            "wrote it.")
    confirmed = item.get("confirmed", True)
    if not isinstance(confirmed, bool):
        problems.append(f"{at('actions', i, 'confirmed')}: confirmed {_q(confirmed)}: expected true or false.")
    # A reviewer's decision (reconcile review, or by hand): `rejected: true` comes with `confirmed: false`, so
    # a tool that does not know `rejected` skips the action too; who and when are text, kept as written.
    rejected = item.get("rejected", False)
    if not isinstance(rejected, bool):
        problems.append(f"{at('actions', i, 'rejected')}: rejected {_q(rejected)}: expected true or false.")
    elif rejected and confirmed is True:
        problems.append(f"{at('actions', i, 'rejected')}: rejected true, but confirmed true. Hint: a rejected action "
                        "has confirmed: false; keep one decision.")
    for key in ("reviewed_by", "reviewed_at"):
        if item.get(key) is not None and not (isinstance(item[key], str) and item[key].strip()):
            problems.append(f"{at('actions', i, key)}: {key} {_q(item[key])}: expected text (who decided, when).")
    fp = item.get("fingerprint")
    writes = kind in WRITING
    if kind == "backfill" and fp is not None:
        problems.append(f"{at('actions', i, 'fingerprint')}: fingerprint {_q(fp)}: a backfill creates a row that "
                        "does not exist yet, so its fingerprint is null. Hint: plan it again.")
    if writes and not (isinstance(fp, str) and _FINGERPRINT.fullmatch(fp)):
        problems.append(f"{at('actions', i, 'fingerprint')}: fingerprint {_q(fp)}: expected the 32-hex-digit "
                        "fingerprint of the dossier row the action was computed from. Hint: plan it again.")
    sets = item.get("set") or {}
    values: dict[str, Any] = {}
    if not isinstance(sets, dict):
        problems.append(f"{at('actions', i, 'set')}: set must map fields to values.")
    elif writes:
        key = _set_key(kind, sets, item)
        checked = checked_sets.get(key) if key is not None else None
        if checked is not None:
            values = checked
        else:
            had = len(problems)
            values = _canonical_set(sets, tuple(ROLE_OF), "apply writes", lambda *k: at("actions", i, "set", *k),
                                    problems)
            missing = [f for f in REQUIRED_SET[kind] if f not in sets]
            problems += [f"{at('actions', i, 'set')}: a {kind} action sets {f}. Hint: add set.{f}." for f in missing]
            pinned = {pin: f for pin, f in PINNED.items() if pin in item and f in values}
            for pin in differing({pin: _canonical_or_none(f, item[pin]) for pin, f in pinned.items()},
                                 {pin: values[f] for pin, f in pinned.items()}):  # a copy an edit left behind
                problems.append(f"{at('actions', i, pin)}: {pin} {_q(item[pin])} differs from set.{pinned[pin]} "
                                f"{_q(sets[pinned[pin]])}. Hint: edit both, or neither.")
            if key is not None and len(problems) == had:
                checked_sets[key] = values
    elif kind == "backfill":
        values = _check_backfill_set(sets, code, lambda *k: at("actions", i, "set", *k), problems)
    if len(problems) > before:
        return None
    return PlanAction(line, code.strip(), kind, item["rule"], " ".join(str(item["reason"]).split()),
                      fp if isinstance(fp, str) else None, confirmed and not rejected, tuple(sorted(values.items())),
                      item.get("reason_code"), item.get("reason_args") or {}, rejected)


def _set_key(kind: str, sets: dict[Any, Any], item: dict[Any, Any]) -> tuple[Any, ...] | None:
    """All a writing action's `set` check depends on: its kind, set and pinned copies, values with their
    types (YAML's 1 and true are equal); None when a value is unhashable."""
    key = (kind, tuple([(f, type(v), v) for f, v in sets.items()]),
           tuple([(pin, type(item[pin]), item[pin]) for pin in PINNED if pin in item]))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _check_backfill_set(sets: dict[str, Any], code: Any, at: Callable[..., str], problems: list[str]
                        ) -> dict[str, Any]:
    """The canonical values of a backfill's `set`: the row it creates."""
    values = _canonical_set(sets, BACKFILL_FIELDS, "a backfill writes", at, problems)
    problems += [f"{at()}: a backfill action sets {f}. Hint: add set.{f}, or plan it again."
                 for f in BACKFILL_REQUIRED if f not in sets]
    if isinstance(code, str) and "dossier_code" in values and values["dossier_code"] != code.strip():
        problems.append(f"{at('dossier_code')}: set.dossier_code {_q(values['dossier_code'])} differs from the "
                        f"action's dossier_code {_q(code)}. Hint: edit both, or neither.")
    return values


def _canonical_set(sets: dict[str, Any], allowed: tuple[str, ...], what: str, at: Callable[..., str],
                   problems: list[str]) -> dict[str, Any]:
    """An action's `set` in canonical values; `at(field)` is where a field is in the file."""
    values: dict[str, Any] = {}
    for f, v in sets.items():
        if f not in allowed:
            problems.append(f"{at(f)}: set.{f}: not a field {what}. Writable: {', '.join(allowed)}.")
            continue
        try:
            values[f] = _canonical(f, v)
        except ValueError as exc:
            problems.append(f"{at(f)}: set.{f}: {exc}.")
    return values


def _canonical(f: str, v: Any) -> Any:
    if f in DATE_FIELDS:
        if v is None or isinstance(v, (date, datetime)):
            return v
        if isinstance(v, str):
            try:
                return datetime.fromisoformat(v) if len(v.strip()) > 10 else date.fromisoformat(v.strip())
            except ValueError:
                pass
        raise ValueError(f"{_q(v)} is not a date. Expected YYYY-MM-DD (or an ISO date and time)")
    if f == "workflow_version":
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
        raise ValueError(f"{_q(v)} is not a version number")
    if f == "status":
        if v in STATUS_NAMES:
            return v
        raise ValueError(f"{_q(v)} is not a canonical status. Expected one of: {', '.join(STATUS_NAMES)}")
    if isinstance(v, str) and v.strip():
        return v
    raise ValueError(f"{_q(v)}: expected a non-empty text")


def _canonical_or_none(f: str, v: Any) -> Any:
    try:
        return _canonical(f, v)
    except ValueError:
        return None
