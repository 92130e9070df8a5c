"""Files the tool writes for people (plans, SQL scripts, version YAML): whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from reconcile.errors import BadInput


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it, then a rename: never half-written."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise BadInput(f"{target}: folder {folder} does not exist. Hint: create it first.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise BadInput(f"{target}: cannot write: {exc.strerror}. Hint: check the folder is writable.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BadInput(f"{target}: cannot write: {exc.strerror}. Hint: check the folder is writable.") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
