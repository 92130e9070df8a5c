"""Normalisation of dossier codes, text and dates; scalar functions and their Arrow twins.

The scalar functions define the rules; the Arrow versions apply the same rules to whole columns
(a million rows in well under a second) and are tested against the scalar ones.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# Canonical dossier code (TT 01/2018 art. 19) and the variants seen in practice.
CODE_RE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}-\d{6}-\d{4}$")
CODE_VARIANT_RE = re.compile(r"^[0-9A-Z]{1,3}(\.[0-9A-Z]{1,3}){1,4}-\d{6,8}-\d{3,7}$")

# Literal characters so that both Python's re and Arrow's RE2 read the same class.
_SPACE = "[\\s\u00a0\u200b\u200c\u200d\ufeff]"
_DASH = "[\u2010\u2011\u2012\u2013\u2014\u2212\uff0d]"
_EXCEL_EPOCH = date(1899, 12, 30)
_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:\s.*)?$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T\s].*)?$")
_SERIAL = re.compile(r"^\d{4,5}(?:\.\d+)?$")


def normalize_code(raw: str | None) -> str | None:
    """Dossier code: NFKC, no whitespace anywhere, one kind of dash, upper case."""
    if raw is None:
        return None
    s = unicodedata.normalize("NFKC", str(raw))
    s = re.sub(_DASH, "-", re.sub(_SPACE, "", s)).upper()
    return s or None


def looks_like_code(code: str | None) -> bool:
    return bool(code) and bool(CODE_RE.match(code) or CODE_VARIANT_RE.match(code))  # type: ignore[arg-type]


def normalize_text(raw: Any) -> str | None:
    """Display text: Unicode NFC, runs of whitespace collapsed, trimmed."""
    if raw is None:
        return None
    s = re.sub(r"\s+", " ", unicodedata.normalize("NFC", str(raw))).strip()
    return s or None


def compare_key(raw: Any) -> str | None:
    """Key for comparing names across sources: normalised text, case-folded."""
    s = normalize_text(raw)
    return s.casefold() if s else None


def fold(raw: str) -> str:
    """Header key: no diacritics (đ too), no case, only letters and digits."""
    s = unicodedata.normalize("NFD", raw.replace("đ", "d").replace("Đ", "D"))
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]", "", s.casefold())


def parse_date(raw: Any) -> date | None:
    """dd/mm/yyyy (also - and .), ISO, Excel serial numbers and date objects. Raises ValueError."""
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return _EXCEL_EPOCH + timedelta(days=int(raw))
    s = unicodedata.normalize("NFKC", str(raw)).strip()
    if not s:
        return None
    if m := _DMY.match(s):
        return date(int(m[3]), int(m[2]), int(m[1]))
    if m := _ISO.match(s):
        return date(int(m[1]), int(m[2]), int(m[3]))
    if _SERIAL.match(s):
        return _EXCEL_EPOCH + timedelta(days=int(float(s)))
    raise ValueError(f"{s!r} is not a date")


# ---------------------------------------------------------------- Arrow twins (whole columns)


def codes_array(raw: pa.Array) -> pa.Array:
    s = pc.utf8_normalize(raw.cast(pa.string()), "NFKC")
    s = pc.replace_substring_regex(s, _SPACE, "")
    s = pc.utf8_upper(pc.replace_substring_regex(s, _DASH, "-"))
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def looks_like_code_array(codes: pa.Array) -> pa.Array:
    strict = pc.match_substring_regex(codes, CODE_RE.pattern)
    loose = pc.match_substring_regex(codes, CODE_VARIANT_RE.pattern)
    return pc.fill_null(pc.or_(strict, loose), False)


def text_array(raw: pa.Array) -> pa.Array:
    s = pc.utf8_normalize(raw.cast(pa.string()), "NFC")
    s = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, r"\s+", " "))
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def dates_array(raw: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Parse a string column of dates. Returns (date32 values, mask of unparseable non-empty cells)."""
    s = pc.utf8_trim_whitespace(pc.utf8_normalize(raw.cast(pa.string()), "NFKC"))
    empty = pc.fill_null(pc.equal(s, ""), True)
    dmy = pc.extract_regex(s, r"^(?P<d>\d{1,2})[/.\-](?P<m>\d{1,2})[/.\-](?P<y>\d{4})(?:\s.*)?$")
    iso = pc.extract_regex(s, r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?:[T\s].*)?$")
    parts = [
        _ymd_to_date(pc.struct_field(dmy, "y"), pc.struct_field(dmy, "m"), pc.struct_field(dmy, "d")),
        _ymd_to_date(pc.struct_field(iso, "y"), pc.struct_field(iso, "m"), pc.struct_field(iso, "d")),
        _serial_to_date(s),
    ]
    out = pc.coalesce(*parts)
    bad = pc.and_(pc.invert(empty), pc.is_null(out))
    return out, pc.fill_null(bad, False)


def _ymd_to_date(y: pa.Array, m: pa.Array, d: pa.Array) -> pa.Array:
    # Padding then strptime validates the calendar (31/02 fails) in one vectorised call.
    text = pc.binary_join_element_wise(
        y, pc.utf8_lpad(m, 2, "0"), pc.utf8_lpad(d, 2, "0"), "-"
    )
    ts = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 31/02 over into March; a round trip rejects such dates.
    valid = pc.equal(pc.strftime(ts, format="%Y-%m-%d"), text)
    return pc.if_else(valid, ts.cast(pa.date32()), pa.scalar(None, pa.date32()))


def _serial_to_date(s: pa.Array) -> pa.Array:
    is_serial = pc.fill_null(pc.match_substring_regex(s, _SERIAL.pattern), False)
    whole = pc.if_else(is_serial, pc.utf8_replace_slice(s, 0, 0, ""), pa.scalar(None, pa.string()))
    days = pc.floor(whole.cast(pa.float64())).cast(pa.int32())
    base = pa.scalar(_EXCEL_EPOCH.toordinal() - date(1970, 1, 1).toordinal(), pa.int32())
    return pc.add(days, base).cast(pa.date32())
