"""Where a reconcile command spends its time in the store: run it in this process with every SQL
statement timed (driver call to result), then print the slowest statements on stderr.

    python benchmarks/statement_times.py [--top 15] -- audit --store postgresql://... ...

The statements are shown by their first words and the tables they name, one line each.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

TIMES: dict[str, list[float]] = defaultdict(list)


def _label(statement: str) -> str:
    """The statement's verb and the store tables it names, in order of first appearance."""
    words = re.findall(r'"?([a-z_]+)"?', statement.lower())
    verb = " ".join(words[:2]) if words[:1] == ["insert"] else words[0] if words else "?"
    tables = [w for w in dict.fromkeys(words) if w in _TABLES]
    return f"{verb} [{', '.join(tables)}]"


_TABLES: set[str] = set()
# A file to append the SQL of the slow statements to (slower than STATEMENT_TIMES_MIN seconds, default 1).
DUMP = os.environ.get("STATEMENT_TIMES_SQL")
SLOW = float(os.environ.get("STATEMENT_TIMES_MIN", "1.0"))


def install() -> None:
    from reconcile.store import metadata

    _TABLES.update(metadata.tables)

    @sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info.setdefault("_t0", []).append(time.perf_counter())

    @sa.event.listens_for(sa.engine.Engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        elapsed = time.perf_counter() - conn.info["_t0"].pop()
        TIMES[_label(statement)].append(elapsed)
        if DUMP and elapsed > SLOW:  # the slow statements' SQL, for EXPLAIN ANALYZE
            with open(DUMP, "a") as fh:
                fh.write(f"-- {elapsed:.2f} s {_label(statement)}\n{statement}\n-- {parameters!r}\n\n")


def report(top: int) -> None:
    rows = sorted(((sum(t), len(t), label) for label, t in TIMES.items()), reverse=True)
    total = sum(r[0] for r in rows)
    print(f"statements: {sum(r[1] for r in rows)}, {total:.1f} s in the store", file=sys.stderr)
    for seconds, n, label in rows[:top]:
        print(f"{seconds:8.2f} s {n:6d}x  {label}", file=sys.stderr)


def main() -> None:
    args = sys.argv[1:]
    top = 15
    if args[:1] == ["--top"]:
        top, args = int(args[1]), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    install()
    from reconcile.cli import main as cli

    start = time.perf_counter()
    try:
        cli(args, standalone_mode=False)
    finally:
        print(f"wall: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        report(top)


if __name__ == "__main__":
    main()
