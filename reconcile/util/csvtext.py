"""CSV text as spreadsheets read it: a byte order mark, "\\n" line ends, formulas defused."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

# Every CSV text starts with a byte order mark: Excel on Windows reads UTF-8 without one as the ANSI code
# page and garbles Vietnamese. Write the text as UTF-8 (not utf-8-sig, which would add a second one).
BOM = "\ufeff"
Cell = str | int | None
# Spreadsheets run a text cell starting with one of these as a formula (CSV injection): quote it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_csv(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """BOM + comma-separated text, "\\n" line ends; integers plain (no thousands separators)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_START) else v
                    for v in row])
    return BOM + buf.getvalue()
