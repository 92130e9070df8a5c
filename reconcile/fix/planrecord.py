"""Plans recorded in the store. `reconcile plan` records the plan file it writes (store.plan_file,
plan_action): the sha256 of its bytes and its actions, checked as load_plan checks them. apply reads a
file byte-identical to a recorded one from those rows (its header is read and checked as ever); any
other file (edited, older, from elsewhere) is read and checked in full (reconcile.fix.planread).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import re
from typing import Any

import orjson
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import BadInput, wrote
from reconcile.fix import planfile
from reconcile.fix.planread import check_actions, check_header, checked_plan, PlanAction, PlanFile
from reconcile.fix.rows import read_arrow
from reconcile.fix.targetcheck import target_problems
from reconcile.fix.values import decode_value, encode_value
from reconcile.store import bulk_insert, open_store, plan_action, plan_file, Store, store_name
from reconcile.util.stamps import now_text

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
    check_header(head, _nowhere, problems)
    if problems or len(lines) != len(items):
        return False
    actions = check_actions(items, dict(zip(map(id, items), lines)), _nowhere, problems)
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
            checks=PLAN_CHECKS, written_at=now_text(), actions=len(actions)))
        bulk_insert(conn, plan_action, columns.append_column(
            "plan_id", pa.repeat(pa.scalar(plan_id, pa.int32()), columns.num_rows)))
    wrote(f"the plan's record in the store {store_name(store)}")
    return True


def _nowhere(*_: Any) -> str:
    return ""


def _item_lines(text: str) -> list[int]:
    """The line of each action in a plan file as planfile.dump writes it: each item starts with "- " at
    the start of a line after the top-level `actions:` (nested lists are indented, scalars one line).
    Found in the text, so that recording a plan does not parse it a second time."""
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
            sets[a.set] = json.dumps([[f, encode_value(v)] for f, v in a.set], ensure_ascii=False)
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


def recorded_plan(p: Path, store_url: str | None) -> tuple[PlanFile | None, Store | None]:
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
            recorded = read_arrow(conn, sa.select(*cols).where(plan_action.c.plan_id == plan_id)
                                  .order_by(plan_action.c.line))
    except BaseException:
        store.engine.dispose()
        raise
    return checked_plan(p, sha256, head, _recorded_actions(recorded)), store


def _recorded_header(raw: bytes) -> dict[str, Any] | None:
    """The header of a plan file as planfile.dump writes it (the part before `actions:`), when it passes
    check_header."""
    end = raw.find(b"\nactions:")
    try:
        read = planfile.load(raw[:end + 1].decode("utf-8")) if end > 0 else None
    except UnicodeDecodeError:
        return None
    head = read[0].get("plan") if read is not None and isinstance(read[0], dict) else None
    problems: list[str] = []
    if isinstance(head, dict):
        check_header(head, _nowhere, problems)
    return head if isinstance(head, dict) and not problems else None


def _recorded_actions(t: pa.Table) -> tuple[PlanAction, ...]:
    """plan_action's columns as PlanActions: each distinct set and reason's parameters decoded once (a plan
    repeats them: the same accounts, versions, dates), the parameters' dicts shared by the actions with the same."""
    cols = {name: t.column(name).to_pylist() for name in t.column_names}
    sets = {text: tuple((f, decode_value(v)) for f, v in json.loads(text)) for text in set(cols["set_values"])}
    args = {text: orjson.loads(text) for text in set(cols["reason_args"]) if text is not None} | {None: {}}
    return tuple(map(PlanAction, cols["line"], cols["dossier_code"], cols["action"], cols["rule"], cols["reason"],
                     cols["fingerprint"], cols["confirmed"], [sets[text] for text in cols["set_values"]],
                     cols["reason_code"], [args[text] for text in cols["reason_args"]]))
