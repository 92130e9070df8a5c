"""Apply a plan file to the system through its source mapping, list batches (undo: reconcile.fix.undo).

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

import getpass
import hashlib
import json
import re
from bisect import bisect_left, bisect_right
from contextlib import contextmanager, nullcontext
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import duckdb
import orjson
import pyarrow as pa
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection, Engine

from reconcile.fix import planfile

from reconcile.util import yamlio
from reconcile.util.db import begin_read_only, first_line
from reconcile.util.dberrors import cannot_write, disk_full
from reconcile.errors import BadInput, ReconcileError, Refused, wrote
from reconcile.faults import fault
from reconcile.util.gctune import fewer_collections
from reconcile.fix.ledger import Ledger, stopping, store_failed
from reconcile.model import Status
from reconcile.sources.system import (
    SourceMapping, _reading, _statement, dossier_columns, load_mapping,
)
from reconcile.util import scratch
from reconcile.sources.workbench import dossier_sql
from reconcile.store import (
    Store, account, audit_run, batch_outcome, bulk_insert, change, change_batch, connect_engine, dossier, mask_url,
    normalize_url, open_store, plan_action, plan_file, reconciliation, store_name, wf_step, wf_version,
)

PLAN_FORMAT = 1
LOG_ATTEMPTS = 5  # a batch's log, when applies or undos on one server store keep taking the same next id
DEFAULT_BATCH_SIZE = 5000  # per batch: one target transaction (its rows locked) and two store commits
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
REFUSED_STATES = ("stale", "missing", "ambiguous")
IN_CHUNK = 500
IN_LARGE = 30_000  # see _in_chunk
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")
# json.dumps(v, ensure_ascii=False[, sort_keys=True]) without building an encoder per call
_JSON = json.JSONEncoder(ensure_ascii=False)
_json_text = json.encoder.encode_basestring  # json.dumps(s, ensure_ascii=False) of a str, in C


# ------------------------------------------------------------------------------------ plan file


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
    _check_header(head, at, problems)
    items = data["actions"]
    if items is None:
        items = []
    if not isinstance(items, list):
        problems.append(f"{at('actions')}: 'actions' must be a list of actions.")
        items = []
    actions = _check_actions(items, item_lines, at, problems)
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{p}: {len(problems)} problems in the plan", problems)
    return _plan_file(p, hashlib.sha256(raw).hexdigest(), head, tuple(actions))


_q = yamlio.shown  # a value from the file in a message: quoted, cut short


def _check_header(head: dict[str, Any], at: Callable[..., str], problems: list[str]) -> None:
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


def _check_actions(items: list[Any], item_lines: dict[int, int], at: Callable[..., str], problems: list[str]
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


def _plan_file(p: Path, sha256: str, head: dict[str, Any], actions: tuple[PlanAction, ...]) -> PlanFile:
    """A checked plan: its header (see _check_header) and actions."""
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
            for pin, f in PINNED.items():
                if pin in item and f in values and _canonical_or_none(f, item[pin]) != values[f]:
                    problems.append(f"{at('actions', i, pin)}: {pin} {_q(item[pin])} differs from set.{f} "
                                    f"{_q(sets[f])}. Hint: edit both, or neither.")
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


# -------------------------------------------------------------------------------- recorded plans
# `reconcile plan` records the plan file it writes in the store (store.plan_file, plan_action): the sha256
# of its bytes and its actions, checked as load_plan checks them. apply reads a file byte-identical to a
# recorded one from those rows (its header is read and checked as ever); any other file (edited, older,
# from elsewhere) is read and checked in full.

PLAN_CHECKS = 2  # the version of load_plan's checks: bump it when they change (recorded plans are read in full)
_ITEM = re.compile("\n- ")  # an item of a top-level list (a literal: found fast)
_ORJSON_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS


def record_plan(store: Store, data: dict[str, Any], text: str) -> bool:
    """Record the plan file `text` (planfile.dump of `data`, which reads back as the same data) that
    `reconcile plan` wrote from `store`. False (nothing recorded) when load_plan would refuse it: apply
    reads such a file in full and says why."""
    head, items = data["plan"], data["actions"]
    lines = _item_lines(text)
    problems: list[str] = []
    _check_header(head, _nowhere, problems)
    if problems or len(lines) != len(items):
        return False
    actions = _check_actions(items, dict(zip(map(id, items), lines)), _nowhere, problems)
    if not problems:
        with store.connect() as conn:
            problems = target_problems(conn, head["run"], "", actions)
    columns = None if problems else _action_columns(actions)
    if columns is None:
        return False
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with store.begin() as conn:
        if _recorded_id(conn, sha256, head) is not None:
            return True
        plan_id = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(plan_file.c.id), 0))).scalar_one()) + 1
        conn.execute(sa.insert(plan_file).values(
            id=plan_id, sha256=sha256, run_id=head["run"], run_fingerprint=head["run_fingerprint"],
            checks=PLAN_CHECKS, written_at=_now(), actions=len(actions)))
        bulk_insert(conn, plan_action, columns.append_column(
            "plan_id", pa.repeat(pa.scalar(plan_id, pa.int32()), columns.num_rows)))
    wrote(f"the plan's record in the store {store_name(store)}")
    return True


def _nowhere(*_: Any) -> str:
    return ""


def _item_lines(text: str) -> list[int]:
    """The line of each action in a plan file as planfile.dump writes it: each item starts with "- " at
    the start of a line after the top-level `actions:` (nested lists are indented, scalars one line)."""
    start = text.find("\nactions:")
    if start < 0:
        return []
    out, line, pos = [], text.count("\n", 0, start) + 1, start
    for m in _ITEM.finditer(text, start):
        line += text.count("\n", pos, m.end() - 2)
        pos = m.end() - 2
        out.append(line)
    return out


def _action_columns(actions: list[PlanAction]) -> pa.Table | None:
    """The actions as plan_action's columns; None when a reason's parameters are not plain JSON."""
    sets: dict[tuple[tuple[str, Any], ...], str] = {}
    for a in actions:
        if a.set not in sets:
            sets[a.set] = _JSON.encode([[f, encode_value(v)] for f, v in a.set])
    try:
        args = [orjson.dumps(a.reason_args, option=_ORJSON_STRICT).decode() if a.reason_args else None
                for a in actions]
    except TypeError:  # orjson.JSONEncodeError: dates, big numbers, keys that are not text...
        return None
    return pa.table({
        "line": pa.array([a.line for a in actions], pa.int32()),
        "dossier_code": [a.dossier_code for a in actions], "action": [a.action for a in actions],
        "rule": [a.rule for a in actions], "reason": [a.reason for a in actions],
        "fingerprint": pa.array([a.fingerprint for a in actions], pa.string()),
        "confirmed": [a.confirmed for a in actions], "set_values": [sets[a.set] for a in actions],
        "reason_code": pa.array([a.reason_code for a in actions], pa.string()),
        "reason_args": pa.array(args, pa.string())})


def _recorded_id(conn: Connection, sha256: str, head: dict[str, Any]) -> int | None:
    return conn.execute(sa.select(sa.func.min(plan_file.c.id)).where(
        plan_file.c.sha256 == sha256, plan_file.c.run_id == head["run"],
        plan_file.c.run_fingerprint == head["run_fingerprint"], plan_file.c.checks == PLAN_CHECKS)).scalar()


def _recorded_plan(p: Path, store_url: str | None) -> tuple[PlanFile | None, Store | None]:
    """The plan file `p` as recorded, when it is byte-identical to a plan recorded in the store its header
    names (or `store_url`) for its run, with that store open; else no plan, and the store when it opened."""
    try:
        raw = p.read_bytes()
    except OSError:
        return None, None
    head = _recorded_header(raw)
    if head is None or (store_url is None and "***" in head["store"]):
        return None, None
    try:
        store = open_store(store_url or head["store"], create=False)
    except BadInput:
        return None, None
    try:
        sha256 = hashlib.sha256(raw).hexdigest()
        with store.connect() as conn:
            plan_id = _recorded_id(conn, sha256, head)
            if plan_id is None:
                return None, store
            cols = (plan_action.c.line, plan_action.c.dossier_code, plan_action.c.action, plan_action.c.rule,
                    plan_action.c.reason, plan_action.c.fingerprint, plan_action.c.confirmed,
                    plan_action.c.set_values, plan_action.c.reason_code, plan_action.c.reason_args)
            recorded = _arrow(conn, sa.select(*cols).where(plan_action.c.plan_id == plan_id)
                              .order_by(plan_action.c.line))
    except BaseException:
        store.engine.dispose()
        raise
    return _plan_file(p, sha256, head, _recorded_actions(recorded)), store


def _recorded_header(raw: bytes) -> dict[str, Any] | None:
    """The header of a plan file as planfile.dump writes it (the part before `actions:`), when it passes
    _check_header."""
    end = raw.find(b"\nactions:")
    try:
        read = planfile.load(raw[:end + 1].decode("utf-8")) if end > 0 else None
    except UnicodeDecodeError:
        return None
    head = read[0].get("plan") if read is not None and isinstance(read[0], dict) else None
    problems: list[str] = []
    if isinstance(head, dict):
        _check_header(head, _nowhere, problems)
    return head if isinstance(head, dict) and not problems else None


def _recorded_actions(t: pa.Table) -> tuple[PlanAction, ...]:
    """plan_action's columns as PlanActions (each distinct set and reason's parameters decoded once; the
    parameters' dicts are shared by the actions with the same)."""
    cols = {name: t.column(name).to_pylist() for name in t.column_names}
    sets = {text: tuple((f, decode_value(v)) for f, v in json.loads(text)) for text in set(cols["set_values"])}
    args = {text: orjson.loads(text) for text in set(cols["reason_args"]) if text is not None} | {None: {}}
    return tuple(map(PlanAction, cols["line"], cols["dossier_code"], cols["action"], cols["rule"], cols["reason"],
                     cols["fingerprint"], cols["confirmed"], map(sets.__getitem__, cols["set_values"]),
                     cols["reason_code"], map(args.__getitem__, cols["reason_args"])))


# ------------------------------------------------------------------------------- typed values


class _Absent:
    """The value of a cell whose row does not exist: before an INSERT, after a DELETE."""

    def __repr__(self) -> str:
        return "(no row)"


ABSENT = _Absent()
ABSENT_TEXT = '{"absent": true}'  # its encoding in the change log


def encode_value(v: Any) -> str | None:
    """A database value as JSON text that decodes to the same Python type (None stays SQL NULL)."""
    if type(v) is str:
        return _json_text(v)
    if v is None:
        return None
    if v is ABSENT:
        return ABSENT_TEXT
    if isinstance(v, datetime):
        return json.dumps({"datetime": v.isoformat()})
    if isinstance(v, date):
        return json.dumps({"date": v.isoformat()})
    if isinstance(v, Decimal):
        return json.dumps({"decimal": str(v)})
    if isinstance(v, (bytes, bytearray, memoryview)):
        return json.dumps({"hex": bytes(v).hex()})
    return _JSON.encode(v)


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    if text[:1] == '"' and "\\" not in text and '"' not in text[1:-1] and text[-1:] == '"' and len(text) > 1:
        return text[1:-1]  # a JSON text without escapes: itself between the quotes
    if text == ABSENT_TEXT:
        return ABSENT
    v = json.loads(text)
    if isinstance(v, dict):
        (tag, s), = v.items()
        return {"datetime": datetime.fromisoformat, "date": date.fromisoformat, "decimal": Decimal,
                "hex": bytes.fromhex}[tag](s)
    return v


# a batch's values repeat (the same accounts, statuses, dates); all immutable. Undo decodes each distinct
# text of a batch once (its row keys all differ) with `_decode`.
decode_value = lru_cache(maxsize=1 << 16)(_decode)


def _shown(v: Any) -> str:
    return "NULL" if v is None else repr(v.isoformat(" ") if isinstance(v, datetime) else
                                         v.isoformat() if isinstance(v, date) else v)


def _coerce(value: Any, column: sa.Column[Any]) -> Any:
    """A canonical value in the target column's own Python type (raises ValueError)."""
    if value is None:
        return None
    try:
        kind: type | None = column.type.python_type
    except NotImplementedError:
        kind = None
    if kind is bool:
        raise ValueError(f"column {column.name} is boolean")
    if kind is int:
        if isinstance(value, (date, datetime)):
            raise ValueError(f"a date in the whole-number column {column.name}")
        return int(str(value).strip())
    if kind in (float, Decimal):
        return kind(str(value).strip())
    if kind is datetime:
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        return datetime.fromisoformat(str(value))
    if kind is date:
        if isinstance(value, datetime):
            if value.time() != datetime.min.time():
                raise ValueError(f"a time of day in the date column {column.name}")
            return value.date()
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return value.isoformat() if isinstance(value, date) else str(value)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a == b and type(a) is type(b):
        return True
    return isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)) and a == b \
        and not isinstance(a, bool) and not isinstance(b, bool)


# ------------------------------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class Write:
    """One UPDATE of one row: compare-and-set on the written columns. Every before-value ABSENT: the
    INSERT of the row (a backfill); every after-value ABSENT: its compare-and-set DELETE (undo)."""

    dossier_code: str
    action: str
    rule: str | None
    table: sa.Table
    key: tuple[tuple[str, Any], ...]  # key column -> value
    columns: tuple[tuple[str, str, Any, Any], ...]  # column, field, before, after

    @property
    def kind(self) -> str:
        first = self.columns[0] if self.columns else (None, None, ABSENT, None)
        if first[2] is not ABSENT and first[3] is not ABSENT:  # the many UPDATEs: told by their first column
            return "update"
        if all(before is ABSENT for _, _, before, _ in self.columns):
            return "insert"
        return "delete" if all(after is ABSENT for _, _, _, after in self.columns) else "update"

    def statement(self) -> sa.Insert | sa.Update | sa.Delete:
        t, kind = self.table, self.kind
        if kind == "insert":
            return sa.insert(t).values(dict(self.key) | {c: after for c, _, _, after in self.columns})
        cond = [t.c[k] == v for k, v in self.key]
        cond += [t.c[c].is_(None) if before is None else t.c[c] == before for c, _, before, _ in self.columns]
        if kind == "delete":
            return sa.delete(t).where(*cond)
        return sa.update(t).where(*cond).values({c: after for c, _, _, after in self.columns})

    def row_key(self) -> str:
        # json.dumps({column: encode_value(value)}, ensure_ascii=False, sort_keys=True), without an encoder per call
        return "{" + ", ".join(f"{_json_text(k)}: {_json_text(e) if (e := encode_value(v)) is not None else 'null'}"
                               for k, v in sorted(self.key)) + "}"

    def shape(self) -> tuple[Any, ...]:
        """What the statement's text and bind types depend on: writes of one shape share one `template()`."""
        return (self.table, tuple((k, type(v)) for k, v in self.key),
                tuple((c, None if before is None else type(before), after is None)
                      for c, _, before, after in self.columns))

    def template(self, value: Callable[[str, sa.types.TypeEngine[Any]], Any] | None = None) -> sa.Update:
        """`statement()` with bound parameters instead of values (see `params()`), for executemany;
        bound with the types `statement()` gives its values. `value(name, type)` replaces the parameters."""
        t, eq = self.table, sa.sql.operators.eq
        value = value or (lambda name, type_: sa.bindparam(name, type_=type_))
        cond = [t.c[k] == value(f"k{i}", t.c[k].type.coerce_compared_value(eq, v))
                for i, (k, v) in enumerate(self.key)]
        cond += [t.c[c].is_(None) if before is None else
                 t.c[c] == value(f"b{i}", t.c[c].type.coerce_compared_value(eq, before))
                 for i, (c, _, before, _) in enumerate(self.columns)]
        return sa.update(t).where(*cond).values({c: sa.null() if after is None else value(f"a{i}", t.c[c].type)
                                                 for i, (c, _, _, after) in enumerate(self.columns)})

    def params(self) -> dict[str, Any]:
        out = {f"k{i}": v for i, (_, v) in enumerate(self.key)}
        for i, (_, _, before, after) in enumerate(self.columns):
            if before is not None:
                out[f"b{i}"] = before
            if after is not None:
                out[f"a{i}"] = after
        return out


class _Renderer:
    """`_render(w.statement())` for many writes at the cost of one compile per shape: the shape's
    statement is compiled once with markers for its values, each write's values are rendered as
    literals of the types `statement()` binds them with (tests check the text is the same)."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self.compiler = sa.select(sa.literal(1)).compile(dialect=dialect)
        self.shapes: dict[tuple[Any, ...], tuple[list[str], dict[str, sa.types.TypeEngine[Any]]]] = {}

    def __call__(self, w: Write) -> str:
        if w.kind != "update":  # backfills and their undo: few
            return _render(w.statement(), self.dialect)
        shape = w.shape()
        if shape not in self.shapes:
            types: dict[str, sa.types.TypeEngine[Any]] = {}

            def marker(name: str, type_: sa.types.TypeEngine[Any]) -> Any:
                types[name] = type_
                return sa.literal_column(f"\x00{name}\x00")

            self.shapes[shape] = (_render(w.template(marker), self.dialect).split("\x00"), types)
        parts, types = self.shapes[shape]
        params = w.params()
        out = list(parts)
        for i in range(1, len(out), 2):
            out[i] = self.compiler.render_literal_value(params[out[i]], types[out[i]])
        return "".join(out)


@dataclass(frozen=True, slots=True, eq=False)
class _Group:
    """Writes of one kind and shape (`Write.shape`) as rows of values: one statement runs them all
    (executemany) and the change log takes their cells column by column. A row is made a `Write`
    only to show its statement."""

    table: sa.Table
    key: tuple[str, ...]  # key columns
    columns: tuple[tuple[str, str], ...]  # written column, field
    rows: list[tuple[str, str, str | None, tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]] = field(
        default_factory=list)  # dossier code, action, rule, key values, before-values, after-values

    def add(self, code: str, action: str, rule: str | None, key: tuple[Any, ...], before: tuple[Any, ...],
            after: tuple[Any, ...]) -> Ref:
        self.rows.append((code, action, rule, key, before, after))
        return self, len(self.rows) - 1

    def write(self, i: int) -> Write:
        code, action, rule, key, before, after = self.rows[i]
        return Write(code, action, rule, self.table, tuple(zip(self.key, key)),
                     tuple((c, f, b, a) for (c, f), b, a in zip(self.columns, before, after)))

    def params(self) -> dict[str, list[Any]]:
        """`Write.params()` of every row, as columns (name -> values)."""
        _, _, _, keys, before, after = zip(*self.rows)
        of = {"k": keys, "b": before, "a": after}
        return {n: [v[int(n[1:])] for v in of[n[0]]] for n in self.write(0).params()}

    def row_keys(self) -> list[str]:
        """`Write.row_key()` of every row."""
        order = sorted(range(len(self.key)), key=self.key.__getitem__)
        names = [_json_text(self.key[j]) + ": " for j in order]
        return ["{" + ", ".join(n + _key_text(key[j]) for n, j in zip(names, order)) + "}"
                for _, _, _, key, _, _ in self.rows]


Ref = tuple[_Group, int]  # a write: its group and row
Planned = list[tuple["PlanAction", str, str, tuple[Ref, ...]]]  # per action: state, detail, its writes


def _key_text(v: Any) -> str:
    """A key value as `Write.row_key()` writes it: its encoding, as JSON text."""
    e = _json_text(v) if type(v) is str else encode_value(v)
    return "null" if e is None else _json_text(e)


def _group_writes(writes: list[Write]) -> list[Ref]:
    """Writes as rows of groups, one group per kind and shape, in the writes' order."""
    groups: dict[tuple[Any, ...], _Group] = {}
    refs = []
    for w in writes:
        shape = (w.kind, w.shape())
        g = groups.get(shape)
        if g is None:
            g = groups[shape] = _Group(w.table, tuple(k for k, _ in w.key), tuple((c, f) for c, f, _, _ in w.columns))
        refs.append(g.add(w.dossier_code, w.action, w.rule, tuple(v for _, v in w.key),
                          tuple(b for _, _, b, _ in w.columns), tuple(a for _, _, _, a in w.columns)))
    return refs


def _with_refs(planned: list[tuple[PlanAction, str, str, list[Write]]]) -> Planned:
    """Planned actions with their writes grouped (see `_group_writes`)."""
    refs = iter(_group_writes([w for *_, ws in planned for w in ws]))
    return [(a, state, detail, tuple(next(refs) for _ in ws)) for a, state, detail, ws in planned]


class Outcome(NamedTuple):
    """What apply did (or would do) with one action of the plan (a named tuple: one per action, made
    at a third of a frozen dataclass's cost)."""

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


class _Target:
    """Where the writes go: the vendor database through the mapping, or the store's snapshot."""

    describe: dict[str, Any]
    engine: Engine
    dialect: sa.Dialect

    def begin_read(self) -> Connection:
        raise NotImplementedError

    def begin_write(self) -> Connection:
        raise NotImplementedError

    @contextmanager
    def connection(self, write: bool) -> Iterator[Connection]:
        """One batch's connection: whatever it did not commit (a dry run, a failure) is rolled back, then
        it is closed."""
        conn = self.begin_write() if write else self.begin_read()
        try:
            yield conn
        finally:
            if conn.in_transaction():
                conn.rollback()
            conn.close()

    def plan_batch(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        raise NotImplementedError

    def plan_inserts(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        """The backfills' INSERTs, after re-reading the rows that hold their codes now."""
        raise NotImplementedError

    def table(self, name: str) -> sa.Table:
        raise NotImplementedError

    def needs(self, plan: PlanFile) -> dict[str, dict[str, tuple[str, ...]]]:
        """The writes the plan's confirmed actions make (table -> update/insert -> columns): see probe_writes."""
        return {}

    def written_tables(self) -> list[str]:
        """The tables apply may write."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def _lock(stmt: Any, conn: Connection, lock: bool) -> Any:
    return stmt.with_for_update() if _locks(conn, lock) else stmt


def _locks(conn: Connection, lock: bool) -> bool:
    """Whether a locking read takes FOR UPDATE (SQLite: the write transaction holds the database's lock)."""
    return lock and conn.dialect.name in ("postgresql", "mysql", "mariadb")


def _backfill_outcome(a: PlanAction, found: list[Any], table: sa.Table, key: tuple[tuple[str, Any], ...],
                      values: list[tuple[str, str, Any]]) -> tuple[PlanAction, str, str, list[Write]]:
    """A backfill given the rows holding its code now (`values`: column, field, value to insert): the
    INSERT when there is none; already applied when one holds exactly those values; else refused."""
    if not found:
        return a, "write", "", [Write(a.dossier_code, a.action, a.rule, table, key,
                                      tuple((c, f, ABSENT, v) for c, f, v in values))]
    if len(found) == 1 and all(_same(getattr(found[0], f), v) for _, f, v in values):
        return a, "already_applied", "", []
    return a, "stale", (f"exists now: {len(found)} row(s) in {table.name} with this code since the audit, not "
                        "holding the planned values; not overwritten"), []


class VendorTarget(_Target):
    """The vendor database of the mapping profile: reads and writes through the mapping."""

    def __init__(self, url: str, mapping: SourceMapping, known: StoreRows, run_id: int, recorded: dict[str, str]
                 ) -> None:
        self.url, self.mapping, self.known, self.run_id = url, mapping, known, run_id
        self.describe = {"profile": "mapping", "source": recorded["source"], "mapping": recorded.get("mapping")}
        if url.startswith("sqlite:///") and ":memory:" not in url and not Path(url[len("sqlite:///"):]).is_file():
            raise BadInput(f"system database {url[len('sqlite:///'):]}: no such file. Hint: run apply from the "
                           "folder the audit ran in, or pass --system URL.")
        self.engine = connect_engine(url, what="system database", read_only=True)  # reads; writes: _write_engine
        self._writer: Engine | None = None
        self.workbench: duckdb.DuckDBPyConnection | None = None
        self.dialect = self.engine.dialect
        self.roles = {r: tm for r, tm in (("dossier", mapping.dossier), ("task", mapping.task)) if tm is not None}
        with self.begin_read() as conn:
            self.selects = {r: _statement(conn, tm, mapping) for r, tm in self.roles.items()}
            self.tables = {r: sa.Table(tm.table, sa.MetaData(), autoload_with=conn)
                           for r, tm in self.roles.items() if tm.table}
        inverse: dict[str, list[str]] = {}
        for vendor, canonical in mapping.status_values.items():
            inverse.setdefault(canonical, []).append(vendor)
        self.status_inverse = inverse
        # each role's fields by their position in its rows, and `_sets` of the plan's sets
        self.positions = {r: {f: i for i, f in enumerate(stmt.selected_columns.keys())}
                          for r, stmt in self.selects.items()}
        self.set_plans: dict[tuple[tuple[str, Any], ...], tuple[bool, list[tuple[str, int, str, Any, str]]]] = {}
        self.reads: dict[tuple[str, bool], sa.Select[Any]] = {}  # each role's SELECT by an expanding IN list

    def needs(self, plan: PlanFile) -> dict[str, dict[str, tuple[str, ...]]]:
        shapes = {(a.action == "backfill", tuple(f for f, _ in a.set)) for a in plan.actions
                  if a.confirmed and (a.action in WRITING or a.action == "backfill")}
        out: dict[str, dict[str, set[str]]] = {}
        for backfill, fields in shapes:
            for f in fields:
                tm = self.roles["dossier" if backfill else ROLE_OF[f]]
                out.setdefault(tm.table, {}).setdefault("insert" if backfill else "update", set()).add(tm.columns[f])
        return {t: {kind: tuple(sorted(cols)) for kind, cols in kinds.items()} for t, kinds in out.items()}

    def written_tables(self) -> list[str]:
        return [self.tables[role].name for role in self.roles if role in self.tables]

    def check_fields(self, plan: PlanFile) -> None:
        """Every field the plan sets has a column in a mapped table, and a value that column takes (a
        backfill: its dossier role's, once confirmed)."""
        problems = []
        unfit: dict[tuple[str, str, type, Any], str | None] = {}  # a value's problem, None when it fits
        for a in plan.actions:
            if a.action not in WRITING and not (a.action == "backfill" and a.confirmed):
                continue
            for f, v in a.set:
                role = "dossier" if a.action == "backfill" else ROLE_OF[f]
                key = (f, role, type(v), v)
                if key not in unfit:  # plans repeat values (the same accounts, statuses, dates): check each once
                    unfit[key] = self._unfit(f, v, role)
                if unfit[key] is not None:
                    problems.append(f"{plan.path}:{a.line}: set.{f}: {unfit[key]}")
        if problems:
            raise BadInput(problems[0] if len(problems) == 1 else f"{plan.path}: {len(problems)} fields the target "
                           "cannot take", problems)

    def _unfit(self, f: str, v: Any, role: str) -> str | None:
        """Why the field `f` of `role` cannot be written with `v` (no column, no table, not its type), or None."""
        tm = self.roles.get(role)
        if tm is None or f not in tm.columns:
            return (f"the mapping {self.mapping.path} has no {role}.columns.{f}. Hint: map the column, or leave the "
                    "field out of the plan.")
        if not tm.table:
            return (f"{role} is read through a query in {self.mapping.path}; apply writes tables only. Hint: map "
                    f"{role}.table, or use --sql and adapt the script.")
        try:
            self.vendor_value(f, v, role)
        except ValueError as exc:
            return f"{exc}."
        return None

    def vendor_value(self, f: str, v: Any, role: str | None = None) -> tuple[str, Any]:
        """The column of field `f` (of `role`, default the role apply updates it in) and `v` in its type."""
        role = role or ROLE_OF[f]
        col = self.tables[role].c[self.roles[role].columns[f]]
        if f == "status":
            vendor = self.status_inverse.get(v, [])
            if len(vendor) != 1:
                why = "no vendor value" if not vendor else f"several vendor values ({', '.join(vendor)})"
                raise ValueError(f"status {_q(v)} has {why} in {self.mapping.path} status_values. Hint: "
                                 "status_values must name exactly one vendor value for it")
            v = vendor[0]
        try:
            return col.name, _coerce(v, col)
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(f"{_q(v)} does not fit {col.table.name}.{col.name} ({col.type}): {exc}") from None

    def begin_read(self) -> Connection:
        conn = self.engine.connect()
        begin_read_only(conn)
        return conn

    def begin_write(self) -> Connection:
        if self._writer is None:
            self._writer = _write_engine(self.url)
        try:
            conn = self._writer.connect()
            conn.begin()
        except sa.exc.DBAPIError as exc:
            if cannot_write(exc):  # SQLite: BEGIN IMMEDIATE on a read-only file
                raise Refused(f"{cannot_write_text(self, self.written_tables())}: nothing written.") from None
            raise BadInput(f"system database {mask_url(self.url)}: cannot start a write transaction: "
                           f"{first_line(exc)}. Hint: another program may hold a lock; try again.") from None
        return conn

    def table(self, name: str) -> sa.Table:
        for t in self.tables.values():
            if t.name == name:
                return t
        with self.begin_read() as conn:
            t = sa.Table(name, sa.MetaData(), autoload_with=conn)
        self.tables[f"_{name}"] = t
        return t

    def plan_batch(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        known = self.known  # the audit run's rows: read once (the run does not change)
        found = [known.get(a.dossier_code, ()) for a in actions]
        codes = sorted({r["code_raw"] for rows in found for r in rows if r["code_raw"] is not None})
        rows = {role: self._read(conn, role, codes, lock) for role in self.selects}
        rows.setdefault("task", _Rows([], ("dossier_code",)))
        fingerprints = self._fingerprints(rows["dossier"], rows["task"])
        groups: dict[tuple[Any, ...], _Group] = {}  # the batch's writes by role and shape (see Write.shape)
        out: Planned = []
        for a, mine in zip(actions, found):
            needs_task, sets = self._sets(a.set)
            state, detail, at = self._find(mine, needs_task, rows)
            if state:
                out.append((a, state, detail, ()))
                continue
            cells = []  # role, column, field, before, after of each value to change
            for role, i, colname, after, f in sets:
                before = rows[role].columns[i][at[role]]
                if before != after or not _same(before, after):
                    cells.append((role, colname, f, before, after))
            if not cells:
                out.append((a, "already_applied", "", ()))
                continue
            fp = fingerprints[at["dossier"]]
            if fp is None or fp.startswith("!"):
                out.append((a, "stale", (fp or "!")[1:] or "cannot recompute the fingerprint", ()))
            elif fp != a.fingerprint:
                out.append((a, "stale", "changed since the audit (fingerprint differs)", ()))
            else:
                out.append((a, "write", "", self._add_writes(groups, a, cells, rows, at)))
        return out

    def _find(self, mine: list[dict[str, Any]], needs_task: bool, rows: dict[str, _Rows]
              ) -> tuple[str, str, dict[str, Any]]:
        """Where an action's dossier (the audit run's rows `mine`) is among the batch's rows, by role;
        else the state and detail of its refusal."""
        if len(mine) != 1:
            return ("ambiguous", f"{len(mine)} system rows share this code (duplicate_code); fix by hand", {}) \
                if mine else ("missing", f"not among the system dossiers of audit run {self.run_id}", {})
        tm, raw = self.roles, mine[0]["code_raw"]
        code = str(raw)
        nd, nt = rows["dossier"].count(code), rows["task"].count(code)
        if not nd:
            return "missing", (f"no row in {tm['dossier'].table} with {tm['dossier'].columns['dossier_code']} = "
                               f"{raw!r} any more"), {}
        if nd > 1 or (needs_task and nt > 1):
            n, what = (nd, tm["dossier"].table) if nd > 1 else (nt, "task")
            return "ambiguous", f"{n} rows in {what} with code {raw!r}; fix by hand", {}
        if needs_task and not nt:
            return "missing", f"no current task row in {tm['task'].table} (apply does not insert rows)", {}
        return "", "", {"dossier": rows["dossier"].first[code], "task": rows["task"].first.get(code)}

    def _add_writes(self, groups: dict[tuple[Any, ...], _Group], a: PlanAction, cells: list[tuple[Any, ...]],
                    rows: dict[str, _Rows], at: dict[str, Any]) -> tuple[Ref, ...]:
        """An action's writes (one per role, in the order of its cells) added to the batch's groups."""
        refs = []
        for role in dict.fromkeys([cell[0] for cell in cells]):
            _, cols, fields, befores, afters = zip(*[cell for cell in cells if cell[0] == role])
            key = rows[role].codes_raw[at[role]]
            shape = (role, type(key), cols, fields, tuple(map(type, befores)), tuple(map(type, afters)))
            g = groups.get(shape) or groups.setdefault(shape, _Group(
                self.tables[role], (self.roles[role].columns["dossier_code"],), tuple(zip(cols, fields))))
            refs.append(g.add(a.dossier_code, a.action, a.rule, (key,), befores, afters))
        return tuple(refs)

    def _read(self, conn: Connection, role: str, codes: list[Any], lock: bool) -> _Rows:
        """The role's rows with these codes (locked when writing): one SELECT per `_in_chunk` codes."""
        stmt = self.reads.get((role, lock))
        if stmt is None:
            select = self.selects[role]
            key = select.selected_columns["dossier_code"].element
            stmt = self.reads[(role, lock)] = _lock(select.where(key.in_(sa.bindparam("codes", expanding=True))),
                                                    conn, lock)
        tm = self.roles[role]
        with _reading(tm, self.mapping) if tm.query else nullcontext():  # the mapping's own SQL failed: one line
            rows = [r for part in _chunks(codes, _in_chunk(conn.dialect))
                    for r in conn.execute(stmt, {"codes": part}).all()]
        return _Rows(rows, tuple(self.positions[role]))

    def _sets(self, sets: tuple[tuple[str, Any], ...]) -> tuple[bool, list[tuple[str, int, str, Any, str]]]:
        """Whether an action's `set` writes the task; per field: role, position in the role's rows, column,
        value in the column's type, field. Plans repeat sets (the same accounts, statuses, dates): each
        is worked out once."""
        found = self.set_plans.get(sets)
        if found is None:
            cols = [(ROLE_OF[f], self.positions[ROLE_OF[f]][f], *self.vendor_value(f, v), f) for f, v in sets]
            found = self.set_plans[sets] = (any(role == "task" for role, *_ in cols), cols)
        return found

    def plan_inserts(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        table, stmt = self.tables["dossier"], self.selects["dossier"]
        values = {a.line: [(*self.vendor_value(f, v, "dossier"), f) for f, v in a.set] for a in actions}
        codes = {a.line: next(v for c, v, f in values[a.line] if f == "dossier_code") for a in actions}
        key = stmt.selected_columns["dossier_code"].element
        found: dict[Any, list[Any]] = {}
        for part in _chunks(sorted(set(codes.values())), IN_CHUNK):
            for r in conn.execute(_lock(stmt.where(key.in_(part)), conn, lock)):
                found.setdefault(r.dossier_code, []).append(r)
        return _with_refs([_backfill_outcome(a, found.get(codes[a.line], []), table, ((key.name, codes[a.line]),),
                                             [(c, f, v) for c, v, f in values[a.line]]) for a in actions])

    def _fingerprints(self, dossiers: _Rows, tasks: _Rows) -> list[str | None]:
        """The fingerprint of each dossier row as the audit computes it (system.dossier_columns + workbench
        SQL); a row that cannot be read as the audit reads it gets '!' and the reason."""
        status = dossiers.columns[dossiers.fields.index("status")]
        result: list[str | None] = [None] * len(status)
        good = []
        for i, v in enumerate(status):
            raw = "" if v is None else str(v)
            if raw in self.mapping.status_values:
                good.append(i)
            else:
                result[i] = f"!status value {raw!r} has no canonical status in the mapping"
        if not good:
            return result
        every = len(good) == len(status)
        pick: Callable[[Any], Any] = (lambda col: col) if every else (lambda col: [col[i] for i in good])
        columns = {f: pick(col) for f, col in zip(dossiers.fields, dossiers.columns) if f != "status"}
        at = [tasks.first.get(code) for code in pick(dossiers.codes)]  # each row's current task
        task_columns = {f: [None if i is None else col[i] for i in at] for f, col in zip(tasks.fields, tasks.columns)}
        new = self.workbench is None
        if new:  # one scratch DuckDB for every batch (a new one costs 20-50 ms)
            self.workbench = scratch.connect()
        self.workbench.register("raw", dossier_columns(columns, pick(status), task_columns, self.mapping, 0))
        try:
            if new:  # and one view (parsing its SQL costs 10-20 ms a batch)
                self.workbench.execute("CREATE TEMP VIEW fingerprints AS "
                                       f"SELECT source_row, fingerprint FROM ({dossier_sql('raw')})")
            fps = self.workbench.execute("SELECT * FROM fingerprints").fetchall()  # 7 ms a batch less than .sql()
        finally:
            self.workbench.unregister("raw")
        for row_no, fp in fps:
            result[good[row_no]] = fp
        return result

    def close(self) -> None:
        self.engine.dispose()
        if self._writer is not None:
            self._writer.dispose()
        if self.workbench is not None:
            self.workbench.close()


class StoreTarget(_Target):
    """The csv profile: the store's own snapshot of the run (its dossier rows) is the system. Its
    fingerprint column is kept up to date by the writes (logged, so undo restores it)."""

    COLUMNS = {f: f for f in ROLE_OF}

    def __init__(self, store: Store, run_id: int) -> None:
        self.store, self.run_id, self.engine, self.dialect = store, run_id, store.engine, store.engine.dialect
        self.describe = {"profile": "csv", "source": f"store snapshot of audit run {run_id}"}

    def check_fields(self, plan: PlanFile) -> None:
        problems = []
        for a in plan.actions:
            for f, v in a.set:
                try:
                    _coerce(v, dossier.c[f])
                except ValueError as exc:
                    problems.append(f"{plan.path}:{a.line}: set.{f}: {_q(v)} does not fit the store's {f}: {exc}.")
        if problems:
            raise BadInput(problems[0] if len(problems) == 1 else f"{plan.path}: {len(problems)} values the store "
                           "cannot take", problems)

    def begin_read(self) -> Connection:
        conn = self.engine.connect()
        conn.begin()
        return conn

    begin_write = begin_read

    def table(self, name: str) -> sa.Table:
        assert name == dossier.name, name
        return dossier

    def written_tables(self) -> list[str]:
        return [dossier.name]

    def plan_batch(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        d = dossier
        cols = [d.c.source_row, d.c.dossier_code, d.c.fingerprint, d.c.status_raw, *[d.c[f] for f in ROLE_OF]]
        rows: dict[str, list[Any]] = {}
        for part in _chunks(sorted({a.dossier_code for a in actions}), IN_CHUNK):
            stmt = sa.select(*cols).where(d.c.run_id == self.run_id, d.c.dossier_code.in_(part))
            for r in conn.execute(_lock(stmt, conn, lock)):
                rows.setdefault(r.dossier_code, []).append(r)
        out = []
        for a in actions:
            found = rows.get(a.dossier_code, [])
            if not found:
                out.append((a, "missing", f"not among the system dossiers of audit run {self.run_id}", []))
                continue
            mine = [r for r in found if r.fingerprint == a.fingerprint]
            if not mine and len(found) == 1 and all(_same(getattr(found[0], f), _coerce(v, d.c[f])) for f, v in a.set):
                out.append((a, "already_applied", "", []))
                continue
            if not mine:
                out.append((a, "ambiguous", f"{len(found)} system rows share this code and none has the plan's "
                            "fingerprint", []) if len(found) > 1 else
                           (a, "stale", "changed since the audit (fingerprint differs)", []))
                continue
            row = mine[0]
            writes = [(c, f, b, after) for c, f, b, after in
                      [(f, f, getattr(row, f), _coerce(v, d.c[f])) for f, v in a.set] if not _same(b, after)]
            if not writes:
                out.append((a, "already_applied", "", []))
                continue
            if any(f == "status" for _, f, _, _ in writes):
                status = dict(a.set)["status"]
                if row.status_raw != status:
                    writes.append(("status_raw", "status_raw", row.status_raw, status))
            new_fp = hashlib.md5(json.dumps([row.fingerprint, [(f, encode_value(v)) for _, f, _, v in writes]])
                                 .encode()).hexdigest()
            writes.append(("fingerprint", "fingerprint", row.fingerprint, new_fp))
            out.append((a, "write", "", [Write(a.dossier_code, a.action, a.rule, d,
                                               (("run_id", self.run_id), ("source_row", row.source_row)),
                                               tuple(writes))]))
        return _with_refs(out)

    def plan_inserts(self, conn: Connection, actions: list[PlanAction], lock: bool) -> Planned:
        """A backfill adds a row to the run's snapshot (after its last source_row), with its code as the
        raw code, its status as the raw status and a fingerprint of its values."""
        d = dossier
        found: dict[str, list[Any]] = {}
        for part in _chunks(sorted({a.dossier_code for a in actions}), IN_CHUNK):
            for r in conn.execute(sa.select(d).where(d.c.run_id == self.run_id, d.c.dossier_code.in_(part))):
                found.setdefault(r.dossier_code, []).append(r)
        last = conn.execute(sa.select(sa.func.max(d.c.source_row)).where(d.c.run_id == self.run_id)).scalar() or 0
        out = []
        for a in actions:
            values = [(f, f, _coerce(v, d.c[f])) for f, v in a.set]
            new = dict(a.set)
            values += [("code_raw", "code_raw", new["dossier_code"]), ("status_raw", "status_raw", new["status"]),
                       ("fingerprint", "fingerprint", hashlib.md5(json.dumps(
                           ["backfill", [(f, encode_value(v)) for _, f, v in values]]).encode()).hexdigest())]
            outcome = _backfill_outcome(a, found.get(a.dossier_code, []), d,
                                        (("run_id", self.run_id), ("source_row", last + 1)), values)
            last += outcome[1] == "write"
            out.append(outcome)
        return _with_refs(out)


def _write_engine(url: str) -> Engine:
    """An engine for writing; on SQLite every transaction takes the write lock first (BEGIN IMMEDIATE),
    so the rows read at its start cannot change before it commits."""
    engine = connect_engine(url, what="system database")
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        engine.dispose()
    return engine


StoreRows = dict[str, list[dict[str, Any]]]  # dossier code -> the run's rows: code_raw, source_row, fingerprint


def _store_rows(conn: Connection, run_id: int, codes: list[str]) -> pa.Table:
    """The run's system rows of these dossiers (dossier_code, code_raw, source_row, fingerprint)."""
    d = dossier
    stmt = sa.select(d.c.dossier_code, d.c.code_raw, d.c.source_row, d.c.fingerprint).where(d.c.run_id == run_id)
    return _arrow(conn, stmt, d.c.dossier_code, codes)


def _known(rows: pa.Table) -> StoreRows:
    """_store_rows by dossier code, each row a dict."""
    found = [{"dossier_code": code, "code_raw": raw, "source_row": source_row, "fingerprint": fp}
             for code, raw, source_row, fp in zip(*(rows.column(i).to_pylist() for i in range(4)))]
    out = {row["dossier_code"]: [row] for row in found}
    if len(out) < len(found):  # codes held by several rows (duplicate_code)
        out = {}
        for row in found:
            out.setdefault(row["dossier_code"], []).append(row)
    return out


class _Rows:
    """A role's rows of a batch as columns (in its SELECT's order), and where each dossier code (as
    text) is: its first row, and how many rows have it."""

    def __init__(self, rows: list[Any], fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.columns = list(zip(*rows)) if rows else [()] * len(fields)
        self.codes_raw = self.columns[fields.index("dossier_code")]
        self.codes = [c if type(c) is str else str(c) for c in self.codes_raw]
        n = len(self.codes)
        self.first = dict(zip(reversed(self.codes), range(n - 1, -1, -1)))
        self.counts = Counter(self.codes) if len(self.first) < n else None

    def count(self, code: str) -> int:
        return self.counts[code] if self.counts is not None else int(code in self.first)


def _in_chunk(dialect: sa.Dialect) -> int:
    """Values per IN list: a whole batch's codes where the database takes that many bound values
    (SQLite 3.32 and later: 32,766; PostgreSQL and MySQL: 65,535), else IN_CHUNK."""
    if dialect.name == "sqlite":
        return IN_LARGE if getattr(dialect.dbapi, "sqlite_version_info", (0,)) >= (3, 32) else IN_CHUNK
    return IN_LARGE if dialect.name in ("postgresql", "mysql", "mariadb") else IN_CHUNK


def _arrow(conn: Connection, stmt: sa.Select, code: sa.ColumnElement[Any] | None = None,
           codes: list[str] | None = None) -> pa.Table:
    """A SELECT's rows as an Arrow table (only those whose `code` is one of `codes`, when given): on a
    DuckDB store one query read as Arrow (the codes a registered table), elsewhere rows (IN lists of
    IN_CHUNK codes) turned into columns."""
    if conn.dialect.name == "duckdb":
        raw = conn.connection.dbapi_connection
        if code is not None:
            raw.register("_plan_codes", pa.table({"code": pa.array(codes, pa.string())}))
            stmt = stmt.where(code.in_(sa.select(sa.column("code")).select_from(sa.table("_plan_codes"))))
        try:
            sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            raw.complete()  # the connection's last result (read through SQLAlchemy) is done with
            return raw.sql(sql).to_arrow_table()
        finally:
            if code is not None:
                raw.unregister("_plan_codes")
    if code is None:
        rows = conn.execute(stmt).all()
    else:
        rows = [r for part in _chunks(sorted(set(codes or ())), IN_CHUNK)
                for r in conn.execute(stmt.where(code.in_(part))).all()]
    columns = list(zip(*rows)) or [()] * len(stmt.selected_columns)
    return pa.table({c.name: pa.array(values, _ARROW_TYPES[c.type.python_type])
                     for c, values in zip(stmt.selected_columns, columns)})


_ARROW_TYPES = {int: pa.int64(), str: pa.string(), bool: pa.bool_()}


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


# ---------------------------------------------------------------------------------- plan checks


def _same_url(a: str, b: str) -> bool:
    def canon(u: str) -> str:
        u = normalize_url(u)
        for prefix in ("duckdb:///", "sqlite:///"):
            if u.startswith(prefix) and ":memory:" not in u:
                return prefix + str(Path(u[len(prefix):]).expanduser().resolve())
        return mask_url(u)
    return canon(a) == canon(b)


def _load_checked(path: str | Path, store_url: str | None) -> tuple[PlanFile, Store, StoreRows]:
    """The plan file, the store it was made for and the run's rows of its writing actions, all checked:
    a file byte-identical to a plan `reconcile plan` recorded in that store for the plan's run is read
    from the store (_recorded_plan), any other file in full (load_plan)."""
    plan, store = _recorded_plan(Path(path), store_url)
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
        if not _same_url(mask_url(store.url), plan.store):
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
        for key in ("profile", "source", "mapping"):
            if recorded.get(key) != plan.system.get(key):
                raise BadInput(f"{plan.path}: plan.system.{key} {_q(plan.system.get(key))} differs from audit run "
                               f"{plan.run}'s {_q(recorded.get(key))}. Hint: the header is written by `reconcile "
                               "plan`; plan again.")
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
            earlier = _arrow(conn, sa.select(change.c.dossier_code, change.c.before_value)
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
    rows = _arrow(conn, sa.select(d.c.dossier_code, d.c.fingerprint, d.c.workflow_key, d.c.workflow_version,
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


def _check_backfills(plan: PlanFile, store: Store) -> None:
    """Each backfill names a dossier the audit run found on the register only (missing_in_system)."""
    codes = sorted({a.dossier_code for a in plan.actions if a.action == "backfill"})
    found: set[str] = set()
    with store.connect() as conn:
        for part in _chunks(codes, IN_CHUNK):
            found.update(conn.execute(sa.select(reconciliation.c.dossier_code).where(
                reconciliation.c.run_id == plan.run, reconciliation.c["class"] == "missing_in_system",
                reconciliation.c.dossier_code.in_(part))).scalars())
    problems = [f"{plan.path}:{a.line}: dossier {a.dossier_code} is not missing_in_system in audit run {plan.run}. "
                "Hint: a backfill creates a dossier that is on the register only; check the code."
                for a in plan.actions if a.action == "backfill" and a.dossier_code not in found]
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{plan.path}: {len(problems)} backfills do not "
                       f"match audit run {plan.run}", problems)


def _open_target(plan: PlanFile, store: Store, known: StoreRows, system_url: str | None,
                 mapping_path: str | None) -> _Target:
    profile = plan.system.get("profile")
    if profile == "csv":
        return StoreTarget(store, plan.run)
    if profile != "mapping":
        raise Refused(f"{plan.path}: audit run {plan.run} read the system with the {profile} profile; the tool "
                      "never writes engine tables. Hint: `reconcile tickets` gives the vendor the changes.")
    source = plan.system["source"]
    url = system_url or source
    if system_url is None and "***" in source:
        raise BadInput(f"{plan.path}: the system URL {source} hides a password. Hint: pass --system URL.")
    if system_url is not None and not _same_url(mask_url(normalize_url(system_url)), source):
        raise BadInput(f"--system {mask_url(system_url)}: the plan was made from {source}. Hint: apply a plan to "
                       "the database it was audited from.")
    mapping = load_mapping(mapping_path or plan.system.get("mapping") or "")
    target = VendorTarget(url, mapping, known, plan.run, plan.system)
    try:
        target.check_fields(plan)
    except BaseException:
        target.close()
        raise
    return target


def _refuse_queries(target: VendorTarget) -> None:
    """apply --yes re-reads the dossier and task rows inside its write transaction, which cannot be
    read-only: a mapping's `query:`, promised to run read-only, is never run there."""
    for role, tm in target.roles.items():
        if tm.query:
            raise Refused(f"{target.mapping.path}: {role}.query: apply --yes would run it inside its write "
                          "transaction, where it cannot be read-only: nothing written. Hint: map "
                          f"{role}.table, or write the statements with --sql FILE for a DBA.")


# ------------------------------------------------------------------------------------ apply


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


class ApplyFailed(ReconcileError):
    """The target rejected a statement: that batch rolled back; earlier batches stay committed."""


def _comment(text: str) -> str:
    return "-- " + " ".join(str(text).split())  # no line break can end the comment


def _render(stmt: Any, dialect: sa.Dialect) -> str:
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).replace("\n", " ") + ";"


@fewer_collections()
def apply_plan(plan_path: str | Path, store_url: str | None = None, *, yes: bool = False,
               batch_size: int = DEFAULT_BATCH_SIZE, system_url: str | None = None,
               mapping_path: str | None = None, actor: str | None = None) -> ApplyResult:
    """Dry run (yes=False: read-only, returns the statements) or apply in batches (yes=True)."""
    if batch_size < 1:
        raise BadInput(f"--batch-size {batch_size}: expected 1 or more.")
    plan, store, known = _load_checked(plan_path, store_url)
    try:
        target = _open_target(plan, store, known, system_url, mapping_path)
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
            settled = tuple(_settle(store, target)) if yes else ()
            return _run(plan, store, target, batch_size, writable, settled, actor, ledger)
        finally:
            target.close()
    finally:
        store.engine.dispose()


def _run(plan: PlanFile, store: Store, target: _Target, batch_size: int, writable: bool, settled: tuple[str, ...],
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
    render = _Renderer(dialect)
    batches: list[int] = []
    by_line: dict[int, Outcome] = {}
    write_no = 0
    with stopping(ledger):
        for n, part in enumerate(_chunks(todo, batch_size), 1):
            fault("before-batch", n)
            with target.connection(write=yes) as conn:
                inserts = [a for a in part if a.action == "backfill"]
                try:
                    planned = target.plan_batch(conn, [a for a in part if a.action != "backfill"], lock=yes) \
                        + (target.plan_inserts(conn, inserts, lock=yes) if inserts else [])
                except sa.exc.DBAPIError as exc:  # the locked read (FOR UPDATE needs the right to write)
                    raise _target_failed(target, exc, f"batch {n} (plan lines {part[0].line}-{part[-1].line})",
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


def _execute(conn: Connection, writes: list[Write], what: str) -> None:
    """`_execute_refs` of writes (undo's)."""
    _execute_refs(conn, _group_writes(writes), what)


def _execute_refs(conn: Connection, refs: list[Ref], what: str) -> None:
    """Run the batch's compare-and-set UPDATEs: one statement per group (table, key columns, written
    columns and which before-values are NULL), executed for all its rows at once (executemany) where
    the driver reports the rows matched by an executemany, else row by row. Every UPDATE must match
    exactly one row: the batch's rows are locked since they were read, so each still matches its own
    row, and a total other than the number of UPDATEs means a row changed: the caller rolls back.
    A backfill's INSERT (or its undo's compare-and-set DELETE) runs row by row and must affect one row."""
    groups = list(dict.fromkeys(g for g, _ in refs))  # in the order of their first write
    kinds = {g: g.write(0).kind for g in groups}
    for w in [g.write(i) for g in groups if kinds[g] != "update" for i in range(len(g.rows))]:
        result = conn.execute(w.statement())
        if result.rowcount not in (1, -1 if w.kind == "insert" else 1):  # -1: a driver that does not count
            raise ApplyFailed(f"{what}: the {w.kind.upper()} of {w.dossier_code} in {w.table.name} affected "
                              f"{result.rowcount} rows instead of 1 (the row changed during the batch); the batch "
                              "was rolled back.")
    groups = [g for g in groups if kinds[g] == "update"]
    if not conn.dialect.supports_sane_multi_rowcount:
        for w in [g.write(i) for g in groups for i in range(len(g.rows))]:
            result = conn.execute(w.statement())
            if result.rowcount != 1:
                raise ApplyFailed(f"{what}: the UPDATE of {w.dossier_code} in {w.table.name} matched "
                                  f"{result.rowcount} rows instead of 1 (the row changed during the batch); the "
                                  "batch was rolled back.")
        return
    for g in groups:
        matched = _executemany_columns(conn, g.write(0).template(), g.params())
        if matched != len(g.rows):
            codes = ", ".join(r[0] for r in g.rows[:5]) + (", ..." if len(g.rows) > 5 else "")
            raise ApplyFailed(f"{what}: the {len(g.rows)} UPDATEs of {g.table.name} ({codes}) matched "
                              f"{matched} rows instead of {len(g.rows)} (a row changed during the batch); the "
                              "batch was rolled back.")


def _executemany_columns(conn: Connection, stmt: sa.Update, columns: dict[str, list[Any]]) -> int:
    """The rowcount of `stmt` executed for many rows without SQLAlchemy's work per row (5000 rows: 50 ->
    35 ms): the statement compiled once, its parameters as columns (name -> values), each column through
    its type's bind processor as SQLAlchemy sends it, one DBAPI executemany in the driver's paramstyle."""
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect)
    names = list(compiled.positiontup or compiled.binds)
    values = []
    for n in names:
        process = compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
        values.append(columns[n] if process is None else list(map(process, columns[n])))
    params = list(zip(*values)) if compiled.positiontup else [dict(zip(names, v)) for v in zip(*values)]
    return conn.exec_driver_sql(compiled.string, params).rowcount


def _write_batch(plan: PlanFile, store: Store, target: _Target, conn: Connection,
                 writes: list[tuple[PlanAction, tuple[Ref, ...]]], write_no: int, actor: str | None,
                 ledger: Ledger) -> int:
    refs = [r for _, rs in writes for r in rs]
    what = f"batch {write_no} (plan lines {writes[0][0].line}-{writes[-1][0].line})"
    try:
        _execute_refs(conn, refs, what)
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        raise _target_failed(target, exc, what, sorted({g.table.name for g, _ in refs})) from None
    fault("after-writes", write_no)
    meta = {"kind": "apply", "run_id": plan.run, "plan": plan.path, "plan_sha256": plan.sha256, "undo_of": None}
    return _log_refs_and_commit(store, target, conn, refs, meta, write_no, actor, ledger)


def _target_failed(target: _Target, exc: sa.exc.DBAPIError, what: str, tables: list[str]) -> ReconcileError:
    """A batch's statement the target refused, in one line without the SQL or its values (personal data)."""
    if cannot_write(exc):
        return Refused(f"{what}: {cannot_write_text(target, tables)}; this batch was rolled back, nothing of it "
                       "written.")
    why = "its disk is full" if disk_full(exc) else f"it rejected a statement: {first_line(exc)}"
    return ApplyFailed(f"{what}: the system database failed: {why}; this batch was rolled back.")


def cannot_write_text(target: _Target, tables: list[str]) -> str:
    """`the account ... cannot write TABLES`, naming the account of the target's URL."""
    user = target.engine.url.username
    who = f"the account {user!r}" if user else "this process"
    return (f"system database {target.describe['source']}: {who} cannot write {', '.join(tables)} (no privilege, "
            "or the database is read-only)")


def probe_writes(target: _Target, needs: dict[str, dict[str, tuple[str, ...]]]) -> None:
    """Refuse (exit 3, nothing written) when the account may not make the writes a run needs (table ->
    kind -> columns): each is tried as a statement that matches no row, in a transaction rolled back, so
    the database's own privilege check answers (roles and column grants included). The batches'
    statements are checked by the database again."""
    denied = []
    for name, kinds in sorted(needs.items()):
        t = target.table(name)
        for kind, cols in kinds.items():
            try:
                with target.connection(write=True) as conn:
                    conn.execute(_no_row(t, kind, cols))
            except sa.exc.DBAPIError as exc:
                if not cannot_write(exc):
                    raise ApplyFailed(f"system database {target.describe['source']}: cannot check the right to "
                                      f"write {name}: {first_line(exc)}. Nothing written.") from None
                denied.append(name)
                break
    if denied:
        raise Refused(f"{cannot_write_text(target, denied)}: nothing written. Hint: apply with an account that may "
                      "write them (UPDATE; INSERT for backfills), or --sql FILE writes the statements for a DBA.")


def _no_row(t: sa.Table, kind: str, cols: tuple[str, ...]) -> sa.Executable:
    """A write of `kind` (update, insert, delete) of these columns that matches no row."""
    if kind == "update":
        return sa.update(t).where(sa.false()).values({c: t.c[c] for c in cols})
    if kind == "insert":
        return sa.insert(t).from_select(list(cols), sa.select(*[t.c[c] for c in cols]).where(sa.false()))
    return sa.delete(t).where(sa.false())


def _log_refs_and_commit(store: Store, target: _Target, conn: Connection, refs: list[Ref], meta: dict[str, Any],
                         write_no: int, actor: str | None, ledger: Ledger, swapped: tuple[int, int] | None = None
                         ) -> int:
    """Record the batch and its change rows, commit the target, record the outcome (see module doc);
    the store is checked to be the one opened before the log and before the target's commit (`ledger`).
    `swapped` (an undo): its dossiers and changes; its change rows are those of batch meta["undo_of"]
    with before- and after-values swapped, copied in the store (`refs` is not read)."""
    same = isinstance(target, StoreTarget)
    ledger.check()  # before the store is touched: a store file deleted would be created again, empty
    log = conn if same else store.engine.connect()
    try:
        cells = None if swapped else _change_rows(refs)
        dossiers, changes = swapped or (len(set(cells.column("dossier_code").to_pylist())), cells.num_rows)
        for attempt in range(1, LOG_ATTEMPTS + 1):
            try:
                if not same:
                    log.begin()
                ledger.check(log)
                batch_id = int(log.execute(sa.select(sa.func.coalesce(sa.func.max(change_batch.c.id), 0)))
                               .scalar_one()) + 1
                if attempt == 1:
                    fault("batch-id", write_no)
                log.execute(sa.insert(change_batch).values(
                    id=batch_id, target=json.dumps(target.describe, ensure_ascii=False, sort_keys=True),
                    actor=actor or _actor(), started_at=_now(), dossiers=dossiers, changes=changes, **meta))
                if cells is None:
                    _copy_swapped(log, meta["undo_of"], batch_id)
                else:
                    bulk_insert(log, change, cells.append_column("batch_id",
                                                                 pa.array([batch_id] * changes, pa.int64())))
                if not same:
                    log.commit()
                else:
                    log.execute(sa.insert(batch_outcome).values(batch_id=batch_id, outcome="committed",
                                                                finished_at=_now()))
                break
            except sa.exc.IntegrityError as exc:
                # On a server store another apply or undo may log its batch between our max(id) and our
                # INSERT: the store's key refuses the second id. Only the log rolls back (the target's
                # transaction is open, uncommitted), so the batch is logged again under the next id.
                if same or attempt == LOG_ATTEMPTS:
                    raise store_failed(store, exc, "record the batch: another apply or undo kept taking its batch "
                                       "id (this batch was rolled back, nothing of it written)") from None
                log.rollback()
                ledger.log_rolled_back()
            except sa.exc.DBAPIError as exc:
                raise store_failed(store, exc, "record the batch (this batch was rolled back, nothing of it written)"
                                   ) from None
        if not same:
            ledger.logged(batch_id)
        fault("after-log", write_no)
        ledger.check()  # last, before the target commits
        ledger.committing = True
        try:
            conn.commit()
        except sa.exc.DBAPIError as exc:
            if same:
                raise store_failed(store, exc, "commit the batch (this batch was rolled back, nothing of it "
                                    "written)") from None
            raise ApplyFailed(f"batch {batch_id}: the system database failed to commit it: "
                              f"{'its disk is full' if disk_full(exc) else first_line(exc)}.") from None
        ledger.committed(batch_id, meta["undo_of"])
        fault("after-commit", write_no)
        if not same:
            try:
                _record_outcome(store, batch_id, "committed", log)
            except sa.exc.DBAPIError as exc:
                raise store_failed(store, exc, f"record that batch {batch_id} was committed (the next apply or "
                                    "undo records it, from the system's rows)") from None
    finally:
        if not same:
            log.close()
    return batch_id


def _record_outcome(store: Store, batch_id: int, outcome: str, conn: Connection | None = None) -> bool:
    """Record a batch's outcome in its own store transaction (on `conn`, else a new connection); False
    when it has one already: another apply or undo settled it from the target's rows meanwhile."""
    with (store.connect() if conn is None else nullcontext(conn)) as c:
        try:
            with c.begin():
                c.execute(sa.insert(batch_outcome).values(batch_id=batch_id, outcome=outcome, finished_at=_now()))
        except sa.exc.IntegrityError:
            return False
    return True


def _change_rows(refs: list[Ref]) -> pa.Table:
    """The change rows of a batch's writes (without batch_id): each write's columns in turn, in the
    writes' order (seq), built column by column from each group's rows."""
    starts: dict[_Group, list[int]] = {}  # per group: the seq before each row's first cell
    n = 0
    for g, i in refs:
        at = starts.get(g)
        if at is None:
            at = starts[g] = [0] * len(g.rows)
        at[i] = n
        n += len(g.columns)
    parts = []
    for g, at in starts.items():
        codes, actions, rules, _, befores, afters = (list(c) for c in zip(*g.rows))
        row_keys = pa.array(g.row_keys(), pa.string())
        for j, (c, f) in enumerate(g.columns):
            parts.append(pa.table({
                "seq": pa.array([s + j + 1 for s in at], pa.int64()), "dossier_code": pa.array(codes, pa.string()),
                "action": pa.array(actions, pa.string()), "rule": pa.array(rules, pa.string()),
                "table_name": pa.array([g.table.name] * len(at), pa.string()), "row_key": row_keys,
                "column_name": pa.array([c] * len(at), pa.string()), "field": pa.array([f] * len(at), pa.string()),
                "before_value": _encoded([b[j] for b in befores]), "after_value": _encoded([a[j] for a in afters])}))
    if not parts:
        return pa.table({"seq": pa.array([], pa.int64()), **{name: pa.array([], pa.string()) for name in CHANGE_COLUMNS}})
    cells = pa.concat_tables(parts)
    return cells if len(parts) == 1 else cells.sort_by("seq")


def _encoded(values: list[Any]) -> pa.Array:
    """`encode_value` of each value, as an Arrow column (text: in C)."""
    return pa.array([_json_text(v) if type(v) is str else encode_value(v) for v in values], pa.string())


def _copy_swapped(log: Connection, of: int, batch_id: int) -> None:
    """An undo's change rows: those of batch `of` (in its order), before- and after-values swapped, with
    one INSERT ... SELECT in the store."""
    c = change
    swap = {"before_value": c.c.after_value, "after_value": c.c.before_value}
    log.execute(sa.insert(c).from_select(["batch_id", "seq", *CHANGE_COLUMNS], sa.select(
        sa.literal(batch_id, sa.Integer), c.c.seq, *[swap.get(n, c.c[n]) for n in CHANGE_COLUMNS])
        .where(c.c.batch_id == of)))


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# ------------------------------------------------------------------------- interrupted batches


def _settle(store: Store, target: _Target) -> Iterator[str]:
    """Give each batch logged but left without an outcome (a run killed between the log and the
    target's commit, or between the commit and the outcome) its outcome, read from the target. The
    rows are read locked, as a batch locks them: a batch another apply is still writing is waited for,
    never recorded as rolled back while it commits."""
    if isinstance(target, StoreTarget):
        return
    described = json.dumps(target.describe, ensure_ascii=False, sort_keys=True)
    with store.connect() as conn:
        pending = [int(i) for i, t in conn.execute(
            sa.select(change_batch.c.id, change_batch.c.target)
            .where(~sa.exists().where(batch_outcome.c.batch_id == change_batch.c.id))
            .order_by(change_batch.c.id)) if t == described]
        logged = _logged(conn, pending)
    for batch_id in pending:
        with target.connection(write=True) as locked:
            current = _current(locked, target, logged[batch_id], lock=True)
            holds_after = all(map(_same, current, logged[batch_id].after))
            holds_before = all(map(_same, current, logged[batch_id].before))
            # neither (changed since) or both (cannot tell): left for a person; recorded meanwhile: by its own run
            outcome = "recovered" if holds_after else "rolled_back"
            recorded = holds_after != holds_before and _record_outcome(store, batch_id, outcome)
        if holds_after == holds_before:
            yield (f"batch {batch_id} was interrupted and its rows now hold neither its before- nor its after-values; "
                   "left without an outcome (check `reconcile history`).")
        elif recorded:
            wrote(f"the outcome of batch {batch_id} ({outcome}) to the store {store_name(store)}")
            yield (f"batch {batch_id} was interrupted after the target committed: recorded as committed."
                   if holds_after else f"batch {batch_id} was interrupted before the target committed: nothing of "
                   "it was written; recorded as rolled back.")


CHANGE_COLUMNS = ("dossier_code", "action", "rule", "table_name", "row_key", "column_name", "field", "before_value",
                  "after_value")


@dataclass(frozen=True, slots=True)
class _Logged:
    """A batch's change rows as columns, in their order (seq): the stored texts (CHANGE_COLUMNS), the
    values decoded, each row's key (its key columns, and its value: a tuple when several columns), and
    the rows' positions by table and key columns (each group is read and written with one statement)."""

    text: dict[str, list[Any]]
    before: list[Any]
    after: list[Any]
    key_columns: list[tuple[str, ...]]
    keys: list[Any]
    groups: dict[tuple[str, tuple[str, ...]], list[int]]

    def key(self, i: int) -> tuple[tuple[str, Any], ...]:
        """Row i's key as `Write.key`: (column, value) pairs."""
        names = self.key_columns[i]
        return tuple(zip(names, self.keys[i] if len(names) > 1 else (self.keys[i],)))


def _logged(conn: Connection, batch_ids: list[int]) -> dict[int, _Logged]:
    """These batches' change rows, read as columns with one statement (`_arrow`)."""
    c = change
    names = ("batch_id", *CHANGE_COLUMNS)
    data = _arrow(conn, sa.select(*[c.c[n] for n in names]).where(c.c.batch_id.in_(batch_ids))
                  .order_by(c.c.batch_id, c.c.seq))
    columns = [data.column(n).to_pylist() for n in names]
    at = columns[0]
    return {b: _decoded_rows(dict(zip(CHANGE_COLUMNS, [col[bisect_left(at, b):bisect_right(at, b)]
                                                       for col in columns[1:]])))
            for b in batch_ids}


def _decoded_rows(text: dict[str, list[Any]]) -> _Logged:
    """A batch's change rows (CHANGE_COLUMNS, in their order) with their values and keys decoded."""
    key_columns, keys = _decoded_keys(text["row_key"])
    tables = text["table_name"]
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    if len(set(tables)) == 1 and len(set(key_columns)) == 1:  # the common case: one table, one key
        groups[tables[0], key_columns[0]] = list(range(len(tables)))
    else:
        for i, g in enumerate(zip(tables, key_columns)):
            groups.setdefault(g, []).append(i)
    return _Logged(text, _decoded(text["before_value"]), _decoded(text["after_value"]), key_columns, keys, groups)


def _decoded(texts: list[str | None]) -> list[Any]:
    """decode_value of each text, worked out once per distinct text (a batch's values repeat)."""
    found = {t: _decode(t) for t in set(texts)}
    return list(map(found.__getitem__, texts))


def _decoded_keys(texts: list[str]) -> tuple[list[tuple[str, ...]], list[Any]]:
    """Each row key (JSON: key column -> encoded value) as its sorted key columns and its value (a tuple
    when several columns). Keys of one column, values without tags (text, numbers): two json.loads for all;
    texts without escapes (the common dossier code): cut out of the JSON."""
    plain = _plain_keys(texts)
    if plain is not None:
        return plain
    distinct = list(dict.fromkeys(texts))
    parsed = json.loads("[" + ",".join(distinct) + "]")
    if parsed and set(map(len, parsed)) == {1}:
        names, encoded = zip(*map(dict.popitem, parsed))
        values = json.loads("[" + ",".join(encoded) + "]")
        if len(set(names)) == 1 and dict not in set(map(type, values)):
            found = dict(zip(distinct, values))
            return [(names[0],)] * len(texts), list(map(found.__getitem__, texts))
        parsed = [{k: v} for k, v in zip(names, encoded)]
    out = {}
    for text, d in zip(distinct, parsed):
        cols = tuple(sorted(d))
        out[text] = (cols, _decode(d[cols[0]]) if len(cols) == 1 else tuple(_decode(d[n]) for n in cols))
    pairs = list(map(out.__getitem__, texts))
    return [k for k, _ in pairs], [v for _, v in pairs]


def _plain_keys(texts: list[str]) -> tuple[list[tuple[str, ...]], list[Any]] | None:
    """The keys when all are one column's texts without escapes or quotes, as `Write.row_key` writes them
    ({"COLUMN": "\\"text\\""}), else None."""
    name = next(iter(json.loads(texts[0])), None) if texts else None
    if not isinstance(name, str):
        return None
    head, tail = "{" + _json_text(name) + ': "\\"', '\\""}'
    if not all(t.startswith(head) and t.endswith(tail) for t in texts):
        return None
    values = [t[len(head):-len(tail)] for t in texts]
    joined = "".join(values)
    return None if "\\" in joined or '"' in joined else ([(name,)] * len(texts), values)


def _current(conn: Connection, target: _Target, logged: _Logged, lock: bool = False, only: list[int] | None = None
             ) -> list[Any]:
    """The value each logged cell (or those at positions `only`) holds now in the target (ABSENT: its
    row is gone), read per table and key columns."""
    out: list[Any] = [ABSENT] * len(logged.keys)
    columns = logged.text["column_name"]
    groups = logged.groups
    if only is not None:
        groups = {}
        for i in only:
            groups.setdefault((logged.text["table_name"][i], logged.key_columns[i]), []).append(i)
    for (tname, names), at in groups.items():
        cols = tuple(sorted({columns[i] for i in at}))
        found = _rows_by_key(conn, target.table(tname), names, cols, list(dict.fromkeys(logged.keys[i] for i in at)),
                             lock)
        pos = {c: len(names) + j for j, c in enumerate(cols)}
        for i in at:
            row = found.get(logged.keys[i])
            if row is not None:
                out[i] = row[pos[columns[i]]]
    return out if only is None else [out[i] for i in only]


def _rows_by_key(conn: Connection, t: sa.Table, names: tuple[str, ...], cols: tuple[str, ...], keys: list[Any],
                 lock: bool) -> dict[Any, Any]:
    """The rows (key columns, then `cols`) holding these keys now, by key: with one key column, one
    statement of `_in_chunk` keys run by the driver (`_select_in`), its values through their types'
    processors a column at a time; else IN lists of IN_CHUNK keys (`_keys_condition`)."""
    found: dict[Any, Any] = {}
    if len(names) > 1:
        for part in _chunks(keys, IN_CHUNK):
            stmt = sa.select(*[t.c[c] for c in names + cols]).where(
                _keys_condition(t, [tuple(zip(names, k)) for k in part]))
            found.update((tuple(row[:len(names)]), row) for row in conn.execute(_lock(stmt, conn, lock)).all())
        return found
    dialect = conn.dialect
    for part in _chunks(keys, _in_chunk(dialect)):
        compiled = _select_in(t, names + cols, len(part), dialect, _locks(conn, lock))
        process = compiled.binds["p0"].type.dialect_impl(dialect).bind_processor(dialect)
        values = part if process is None else list(map(process, part))
        rows = conn.exec_driver_sql(compiled.string, tuple(values) if compiled.positiontup else
                                    {f"p{i}": v for i, v in enumerate(values)}).all()
        columns = [list(col) for col in zip(*rows)]
        for j, c in enumerate(names + cols):
            process = t.c[c].type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None and columns:
                columns[j] = list(map(process, columns[j]))
        found.update(zip(columns[0], zip(*columns)) if columns else ())
    return found


@lru_cache(maxsize=8)  # a statement of thousands of parameters is large: the few sizes of one run
def _select_in(t: sa.Table, columns: tuple[str, ...], n: int, dialect: sa.Dialect, lock: bool) -> Any:
    """SELECT `columns` of the rows whose first column is one of n values (parameters p0...), compiled once."""
    stmt = sa.select(*[t.c[c] for c in columns]).where(
        t.c[columns[0]].in_([sa.bindparam(f"p{i}", type_=t.c[columns[0]].type) for i in range(n)]))
    return (stmt.with_for_update() if lock else stmt).compile(dialect=dialect)


def _keys_condition(t: sa.Table, keys: list[tuple[tuple[str, Any], ...]]) -> Any:
    """WHERE for the rows with these keys: one IN list when the keys differ in one column only (a
    dossier code; a store row's source_row within its run), else one AND per key."""
    names = [c for c, _ in keys[0]]
    if all([c for c, _ in kv] == names for kv in keys):
        varying = [i for i in range(len(names)) if len({kv[i][1] for kv in keys}) > 1]
        if len(varying) <= 1:
            i = varying[0] if varying else len(names) - 1
            return sa.and_(*[t.c[c] == v for j, (c, v) in enumerate(keys[0]) if j != i],
                           t.c[names[i]].in_([kv[i][1] for kv in keys]))
    return sa.or_(*[sa.and_(*[t.c[c] == v for c, v in kv]) for kv in keys])


# ------------------------------------------------------------------------------------ history


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
