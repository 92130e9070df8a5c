"""Record reviewers' decisions in the plan file itself, as a person editing it would, without losing any.

A decision edits one action's lines and nothing else: confirm writes `confirmed: true`; reject writes
`confirmed: false` and `rejected: true` (so a tool that does not know `rejected` skips it too); both add
`reviewed_by: NAME` and `reviewed_at: TIME` (UTC) after the `confirmed:` line. apply reads such a file
as any reviewed plan: it is no longer byte-identical to the recorded one, so it is read and checked in
full (the fingerprints and the header are untouched, so the checks pass as before).

Concurrency: every write is a read-modify-write under an exclusive lock on `PLAN.lock` (flock), re-reading
the file inside the lock and replacing it atomically (temporary file + rename), so two reviewers (two
browsers on one server, or two servers on one file) never lose each other's decisions. Each decision
carries the state its reviewer saw: when the file now says otherwise (someone decided in between), the
decision is not applied and comes back as a conflict. Every applied decision is also appended to
`PLAN.decisions.jsonl` (code, decision, reviewer, time): the history, where the plan keeps the last one.

The edit works on the layout `reconcile plan` writes (reconcile.planfile); a file reformatted by hand
(other indentation, comments after values, CRLF) is refused with a hint, never rewritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from reconcile.fix import planfile
from reconcile.errors import BadInput
from reconcile.util.files import write_atomically

STATES = ("pending", "confirmed", "rejected")
DECISIONS = {"confirm": "confirmed", "reject": "rejected"}  # what a reviewer does -> the state it gives
MAX_NAME = 80
DECIDABLE = ("migrate", "reassign", "close", "backfill")  # escalations go to tickets: nothing to decide
_OWN_KEYS = ("rejected", "reviewed_by", "reviewed_at")  # the lines a decision rewrites (besides confirmed)
_KEY_LINE = re.compile(r"  ([A-Za-z_][A-Za-z0-9_]*):(?: (.*))?")


@dataclass(frozen=True, slots=True)
class Decision:
    dossier_code: str
    decision: str  # confirm | reject
    seen: str  # the state the reviewer saw: pending | confirmed | rejected


@dataclass(frozen=True, slots=True)
class Outcome:
    dossier_code: str
    result: str  # recorded | unchanged | conflict | unknown | not_decidable
    state: str | None  # the action's state after the call (None: no such action)
    reviewed_by: str | None = None
    reviewed_at: str | None = None


def check_reviewer(name: str | None) -> str:
    """The reviewer's name, one line of text (required: every decision says who made it)."""
    text = " ".join((name or "").split())
    if not text:
        raise BadInput("reviewer: a name is required. Hint: type your name before confirming or rejecting.")
    if len(text) > MAX_NAME:
        raise BadInput(f"reviewer: a name of {len(text)} characters; at most {MAX_NAME}.")
    return text


def state_of(item: dict[str, object]) -> str:
    """pending | confirmed | rejected, as apply reads the action (`confirmed` defaults to true)."""
    if item.get("rejected") is True:
        return "rejected"
    return "confirmed" if item.get("confirmed", True) is True else "pending"


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_path(plan: Path) -> Path:
    return plan.with_name(plan.name + ".lock")


def journal_path(plan: Path) -> Path:
    return plan.with_name(plan.name + ".decisions.jsonl")


@contextmanager
def locked(plan: Path) -> Iterator[None]:
    """The plan's exclusive lock (a sidecar file, so the plan itself can be replaced while it is held)."""
    try:
        fd = os.open(lock_path(plan), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise BadInput(f"{lock_path(plan)}: cannot create the review lock: {exc.strerror}. Hint: the plan's "
                       "folder must be writable to record decisions.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass(frozen=True, slots=True)
class Recorded:
    outcomes: list[Outcome]
    before: tuple[int, int, int]  # the plan file's signature as read inside the lock
    after: tuple[int, int, int]  # ...and as written (the same when nothing was recorded)


def signature(plan: Path) -> tuple[int, int, int]:
    """What tells one version of the plan file from the next: inode (a replace makes a new one), size, mtime."""
    st = plan.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def decide(plan: Path, decisions: list[Decision], reviewer: str, at: str | None = None) -> list[Outcome]:
    """Record `decisions` by `reviewer` in the plan file (one locked read-modify-write for all of them)."""
    return record(plan, decisions, reviewer, at).outcomes


def record(plan: Path, decisions: list[Decision], reviewer: str, at: str | None = None) -> Recorded:
    """`decide`, also saying which version of the file it read and which it wrote (a server that had read
    the version before knows it has read every decision in the one after)."""
    reviewer = check_reviewer(reviewer)
    at = at or now_utc()
    for d in decisions:
        if d.decision not in DECISIONS or d.seen not in STATES:
            raise BadInput(f"decision {d.decision!r} (seen {d.seen!r}) for {d.dossier_code}: expected confirm or "
                           "reject, seen pending, confirmed or rejected.")
    with locked(plan):
        before = signature(plan)
        text = _read(plan)  # bytes: a 60 MB plan is searched and written without decoding it all
        out: list[Outcome] = []
        edits: list[tuple[int, int, str]] = []
        done: set[str] = set()
        for d in decisions:
            span = find_item(text, d.dossier_code, plan)
            if span is None or d.dossier_code in done:
                out.append(Outcome(d.dossier_code, "unknown" if span is None else "unchanged", None))
                continue
            start, end = span
            block = text[start:end].decode("utf-8")
            item = _parse_item(block, plan)
            state = state_of(item)
            if item.get("action") not in DECIDABLE:
                out.append(Outcome(d.dossier_code, "not_decidable", state))
            elif state != d.seen:  # someone decided in between: theirs stands, this one is shown the conflict
                out.append(Outcome(d.dossier_code, "conflict", state, _text(item.get("reviewed_by")),
                                   _text(item.get("reviewed_at"))))
            else:
                new = _edited(block, DECISIONS[d.decision], reviewer, at, plan)
                edits.append((start, end, new.encode("utf-8")))
                done.add(d.dossier_code)
                out.append(Outcome(d.dossier_code, "recorded", DECISIONS[d.decision], reviewer, at))
        if edits:
            pieces, pos = [], 0
            for start, end, new_bytes in sorted(edits):
                pieces += [text[pos:start], new_bytes]
                pos = end
            pieces.append(text[pos:])
            write_atomically(plan, b"".join(pieces))
            with journal_path(plan).open("a", encoding="utf-8") as journal:
                for d, o in zip(decisions, out):
                    if o.result == "recorded":
                        journal.write(json.dumps({"dossier_code": d.dossier_code, "decision": d.decision,
                                                  "reviewed_by": reviewer, "reviewed_at": at},
                                                 ensure_ascii=False) + "\n")
        return Recorded(out, before, signature(plan))


def _read(plan: Path) -> bytes:
    try:
        text = plan.read_bytes()
    except OSError as exc:
        raise BadInput(f"{plan}: cannot read: {exc.strerror}.") from None
    if b"\r" in text:
        raise _reformatted(plan, "CRLF line ends")
    return text


def _reformatted(plan: Path, why: str) -> BadInput:
    return BadInput(f"{plan}: not in the layout `reconcile plan` writes ({why}), so decisions cannot be recorded "
                    "in it line by line. Hint: review the file `reconcile plan --out` wrote, or edit this one by hand.")


_NEXT = re.compile(rb"\n(?:- |[^ \n#])")  # the next item, or a top-level key after the list


def find_item(text: bytes, code: str, plan: Path) -> tuple[int, int] | None:
    """The action's block in the text: from its "- dossier_code:" line (written as `reconcile plan` writes
    the code) to the next item or top-level key; None when no action has that code."""
    head = text.find(b"\nactions:\n")
    if head < 0:
        raise _reformatted(plan, "no top-level `actions:` list")
    line = ("\n- " + planfile.dump({"dossier_code": code})).encode("utf-8")
    at = text.find(line, head)
    if at < 0:
        return None
    start = at + 1
    m = _NEXT.search(text, start + len(line) - 2)
    return start, (m.start() + 1 if m else len(text))


def _parse_item(block: str, plan: Path) -> dict[str, object]:
    read = planfile.load("actions:\n" + block)
    if read is None or not isinstance(read[0].get("actions"), list) or len(read[0]["actions"]) != 1:
        raise _reformatted(plan, f"the action at {block.splitlines()[0][:60]!r}")
    item = read[0]["actions"][0]
    if not isinstance(item, dict):
        raise _reformatted(plan, "an action that is not a mapping")
    return item


def _edited(block: str, state: str, reviewer: str, at: str, plan: Path) -> str:
    """The action's block with the decision: its own lines (confirmed, rejected, reviewed_*) replaced."""
    ours = [f"  {line}" for line in planfile.dump({
        "confirmed": state == "confirmed", **({"rejected": True} if state == "rejected" else {}),
        "reviewed_by": reviewer, "reviewed_at": at}).splitlines()]
    lines = block.split("\n")
    kept: list[str] = []
    placed = False
    for line in lines:
        m = _KEY_LINE.fullmatch(line)
        key = m.group(1) if m else None
        if key == "confirmed":
            kept += ours
            placed = True
        elif key not in _OWN_KEYS:
            kept.append(line)
    if not placed:  # no `confirmed:` line (it defaults to true): after the item's first lines
        kept[1:1] = ours
    new = "\n".join(kept)
    before, after = _parse_item(block, plan), _parse_item(new, plan)
    for k in ("confirmed", *_OWN_KEYS):
        before.pop(k, None)
        after.pop(k, None)
    if before != after:  # the edit touched something else: never write such a file
        raise _reformatted(plan, f"the action at {lines[0][:60]!r}")
    return new


def _text(v: object) -> str | None:
    return v if isinstance(v, str) else None
