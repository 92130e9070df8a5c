"""Normalisation of dossier codes, text and dates; scalar functions and their Arrow twins.

The scalar functions define the rules; the Arrow versions apply the same rules to whole columns
(a million rows in well under a second) and are tested against the scalar ones.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any


# Canonical dossier code (TT 01/2018 art. 19) and the variants seen in practice.
CODE_RE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}-\d{6}-\d{4}$")
CODE_VARIANT_RE = re.compile(r"^[0-9A-Z]{1,3}(\.[0-9A-Z]{1,3}){1,4}-\d{6,8}-\d{3,7}$")

# Literal characters so that Python's re and DuckDB's RE2 read the same class.
_SPACE = "[ \t\n\r\f\v\u00a0\u200b\u200c\u200d\ufeff]"
_DASH = "[\u2010\u2011\u2012\u2013\u2014\u2212\uff0d]"
_EXCEL_EPOCH = date(1899, 12, 30)
_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?:\s.*)?$")
# A two-digit year is read as Excel reads one typed in a cell: 00-29 are 2000-2029, 30-99 1930-1999.
TWO_DIGIT_YEAR_PIVOT = 30
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T\s].*)?$")
_SERIAL = re.compile(r"^\d{4,5}(?:\.\d+)?$")


def normalize_code(raw: str | None) -> str | None:
    """Dossier code: NFC, no whitespace anywhere, one kind of dash, upper case."""
    if raw is None:
        return None
    # NFC last: removing a space can bring a combining mark next to a letter it composes with.
    s = re.sub(_DASH, "-", re.sub(_SPACE, "", str(raw))).upper()
    return unicodedata.normalize("NFC", s) or None


def looks_like_code(code: str | None) -> bool:
    return bool(code) and bool(CODE_RE.match(code) or CODE_VARIANT_RE.match(code))  # type: ignore[arg-type]


def normalize_text(raw: Any) -> str | None:
    """Display text: Unicode NFC, runs of whitespace collapsed, trimmed."""
    if raw is None:
        return None
    s = unicodedata.normalize("NFC", re.sub(_SPACE + "+", " ", str(raw)).strip(" "))
    return s or None


def compare_key(raw: Any) -> str | None:
    """Key for comparing names across sources: normalised text, case-folded."""
    s = normalize_text(raw)
    return s.lower() if s else None


def without_diacritics(text: str) -> str:
    """Vietnamese without tone marks and vowel hooks: "Đăng ký đất đai" -> "Dang ky dat dai"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def fold(raw: str) -> str:
    """Header key: no diacritics (đ too), no case, only letters and digits."""
    return re.sub(r"[^0-9a-z]", "", without_diacritics(raw).casefold())


def parse_date(raw: Any) -> date | None:
    """dd/mm/yyyy (also - and ., and dd/mm/yy by Excel's pivot), ISO, Excel serial numbers and date objects.
    Raises ValueError."""
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return _EXCEL_EPOCH + timedelta(days=int(raw))
    s = unicodedata.normalize("NFC", str(raw)).strip()
    if not s:
        return None
    if m := _DMY.match(s):
        year = int(m[3]) if len(m[3]) == 4 else int(m[3]) + (2000 if int(m[3]) < TWO_DIGIT_YEAR_PIVOT else 1900)
        return date(year, int(m[2]), int(m[1]))
    if m := _ISO.match(s):
        return date(int(m[1]), int(m[2]), int(m[3]))
    if _SERIAL.match(s):
        return _EXCEL_EPOCH + timedelta(days=int(float(s)))
    raise ValueError(f"{s!r} is not a date")


# ------------------------------------------------ DuckDB SQL twins (whole columns, in the workbench)
# The loaders normalise whole columns inside an in-memory DuckDB ("the workbench"): multi-threaded,
# a million rows in a fraction of a second. Each function takes a column expression and returns a
# DuckDB SQL expression applying the same rule as its scalar twin above (tests check they agree).


# Characters that NFC leaves alone and that never compose with a neighbour: ASCII, Latin-1, Latin
# Extended-A/B, IPA, spacing modifiers and the precomposed Vietnamese letters (checked in the tests).
_NFC_STABLE = "\\x{0}-\\x{2FF}\\x{1E00}-\\x{1EFF}"


def sql_code(col: str) -> str:
    # Fast path: a clean code (ASCII capitals, digits, dots, hyphens) is its own normal form.
    slow = f"nfc_normalize(upper(regexp_replace(regexp_replace({col}, '{_SPACE}', '', 'g'), '{_DASH}', '-', 'g')))"
    return f"nullif(CASE WHEN regexp_full_match({col}, '[0-9A-Z.-]+') THEN {col} ELSE {slow} END, '')"


def sql_looks_like_code(col: str) -> str:
    return (f"coalesce(CASE WHEN regexp_full_match({col}, '{CODE_RE.pattern[1:-1]}') THEN true "
            f"ELSE regexp_full_match({col}, '{CODE_VARIANT_RE.pattern[1:-1]}') END, false)")


def sql_text(col: str) -> str:
    # Fast path: no odd whitespace, no double/leading/trailing space, only NFC-stable characters.
    needs_work = f"regexp_matches({col}, '[^{_NFC_STABLE}]|[\t\n\r\f\v\u00a0]|  |^ | $')"
    slow = f"nfc_normalize(trim(regexp_replace({col}, '{_SPACE}+', ' ', 'g')))"
    return f"nullif(CASE WHEN {needs_work} THEN {slow} ELSE {col} END, '')"


def sql_compare_key(col: str) -> str:
    return f"lower({sql_text(col)})"


def sql_fold(col: str) -> str:
    """Diacritics, đ and case removed, words kept: for keyword tests on notes."""
    return f"lower(strip_accents(replace(replace(nfc_normalize({col}), 'đ', 'd'), 'Đ', 'D')))"


def sql_date(col: str) -> str:
    # The common exact forms first (ISO by the hyphen at position 5, else dd/mm/yyyy by the '/' five
    # from the end), each tried only where it can match: a failing parse costs more than the check.
    # The other forms only for values still without a date, each by its shape, as strptime's %Y also
    # takes "21" for the year 21: inside a CASE, so that DuckDB does not hoist their shared
    # `trim(nfc_normalize(...))` out as a common subexpression computed for every row (2x the cost).
    s = f"trim(nfc_normalize({col}))"
    first = f"split_part(replace({s}, 'T', ' '), ' ', 1)"
    dmy = "['%d/%m/%Y', '%d-%m-%Y', '%d.%m.%Y']"
    century = f"CASE WHEN right({first}, 2) < '{TWO_DIGIT_YEAR_PIVOT}' THEN '20' ELSE '19' END"
    return (
        f"coalesce(CASE WHEN substr({col}, 5, 1) = '-' THEN TRY_CAST({col} AS DATE) "
        f"WHEN substr({col}, -5, 1) = '/' AND substr({col}, -3, 1) <> '/' THEN try_strptime({col}, '%d/%m/%Y')::DATE "
        f"END, CASE WHEN {col} IS NOT NULL THEN CASE "
        f"WHEN regexp_full_match({first}, '{SQL_DMY}[0-9]{{2}}') "
        f"THEN try_strptime(left({first}, -2) || {century} || right({first}, 2), {dmy})::DATE "
        f"WHEN regexp_full_match({first}, '{SQL_DMY}[0-9]{{4}}') THEN try_strptime({first}, {dmy})::DATE "
        f"WHEN regexp_full_match({first}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') THEN try_strptime({first}, '%Y-%m-%d')::DATE "
        f"WHEN regexp_full_match({s}, '[0-9]{{4,5}}([.][0-9]+)?') "
        f"THEN DATE '1899-12-30' + CAST(floor(CAST({s} AS DOUBLE)) AS INTEGER) END END)"
    )


SQL_DMY = "[0-9]{1,2}[/.-][0-9]{1,2}[/.-]"  # the day and month of dd/mm/yyyy, d.m.yy ...
