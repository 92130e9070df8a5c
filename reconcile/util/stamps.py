"""Who and when, as the change log, the notice batches and the audit runs record them."""

from __future__ import annotations

import getpass
from datetime import datetime, timezone


def actor_name() -> str:
    """The operating-system user running this command (apply, undo, notify), as the records name them."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


def now_text() -> str:
    """Now in UTC, to the second, ISO 8601 (the form every stored timestamp of this tool has)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
