"""Files the tool writes for people (plans, SQL scripts, version YAML, workbooks): whole or not at all."""

from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

from reconcile.errors import BadInput, wrote


def write_atomically(path: str | Path, text: str | bytes) -> None:
    """Write `text` (UTF-8) or bytes to `path` through a temporary file beside it, then a rename:
    never half-written."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise BadInput(f"{target}: folder {folder} does not exist. Hint: create it first.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise BadInput(f"{target}: cannot write: {exc.strerror}. Hint: check the folder is writable.") from None
    try:
        with (os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8")) as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide reports from colleagues
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BadInput(f"{target}: cannot write: {exc.strerror}. Hint: check the folder is writable.") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    wrote(str(target))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_CORE_TIMES = re.compile(rb"<dcterms:(created|modified)([^>]*)>[^<]*</dcterms:(?:created|modified)>")


def fixed_zip(data: bytes, when: datetime) -> bytes:
    """The same archive (an .xlsx) with every timestamp set to `when` (naive UTC): the zip entries' and
    docProps/core.xml's created/modified, which openpyxl sets to the wall clock on save. Equal content
    then gives equal bytes."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = _CORE_TIMES.sub(rb"<dcterms:\1\2>" + stamp + rb"</dcterms:\1>", content)
            fixed = zipfile.ZipInfo(info.filename, date_time=when.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            dst.writestr(fixed, content)
    return out.getvalue()
