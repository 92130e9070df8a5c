"""Fault injection for the fault tests: stop this process at a named point of an audit, apply or undo."""

from __future__ import annotations

import os
import signal

# "<point>:<n>" sends SIGKILL when the process reaches `point` for batch (or audit stage, or written
# item) n; "<point>:<n>:INT" sends SIGINT instead (Ctrl-C: Python raises KeyboardInterrupt right
# there), ":STOP" SIGSTOP (the process waits, its locks held, until the test sends SIGCONT).
FAULT_ENV = "RECONCILE_FAULT"
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "STOP": signal.SIGSTOP}


def fault(point: str, n: int) -> None:
    """Signal this process if RECONCILE_FAULT names this point and n; otherwise nothing (one lookup)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, rest = spec.partition(":")
    number, _, sig = rest.partition(":")
    if name == point and number == str(n):
        os.kill(os.getpid(), SIGNALS[sig or "KILL"])
