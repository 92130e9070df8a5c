"""Numbers as published tables write them: counts, rounded "ngàn" figures, percentages, "not given"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Iterable

from reconcile.util.normalize import normalize_text


@dataclass(frozen=True, slots=True)
class Num:
    """A count; a rounded figure ("4,52 ngàn") at its face value with half its last unit as slack."""

    value: int
    slack: int = 0


@dataclass(frozen=True, slots=True)
class Pct:
    value: Fraction
    decimals: int  # as printed: 48,6 has 1


Cell = Num | Pct | None  # None: not given (a dash or an empty cell), never 0

DASHES = frozenset({"-", "–", "—", "x", "X", "…", "..."})
# Footnote marks after a number or a label: "1.234*", "1.234¹", "1.234 (a)".
_FOOTNOTE = re.compile(r"(?<=\S)(?:\s*[*†‡#]+|[⁰¹²³⁴⁵⁶⁷⁸⁹]+|\s*\((?:[a-z]|[0-9]{1,2})\))$")
_PLAIN = re.compile(r"[0-9]+")
_SPACED = re.compile(r"[0-9]{1,3}(?: [0-9]{3})+")
GROUPED = {".": re.compile(r"[0-9]{1,3}(?:\.[0-9]{3})+"), ",": re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")}
_PERCENT = re.compile(r"([0-9]{1,3}(?:[.,][0-9]+)?)\s?%")
_ROUNDED = re.compile(r"([0-9]+(?:[.,][0-9]+)?)\s*(ngàn|nghìn|ngan|nghin)\.?", re.IGNORECASE)
_DECIMAL = re.compile(r"[0-9]{1,3}(?:[.,][0-9]+)?")


def counts(cells: Iterable[Cell]) -> list[Num]:
    """The counts among cells (percentages and cells not given dropped)."""
    return [c for c in cells if isinstance(c, Num)]


def strip_footnote(s: str) -> str:
    """The text without its footnote marks, however many are stacked ("1.234*¹")."""
    while True:
        t = _FOOTNOTE.sub("", s).strip()
        if t == s:
            return s
        s = t


def text_of(v: Any) -> str:
    """A cell as text, normalised; a whole float (an XLSX 15256.0) without its ".0"."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return (normalize_text(v) or "") if v is not None else ""


def separator_of(s: str) -> str | None:
    """The thousands separator a count written like this shows ("15.256": ".", "59,010": ","), if any."""
    s = strip_footnote(s)
    return next((sep for sep, rx in GROUPED.items() if rx.fullmatch(s)), None)


def decide_separator(cells: Iterable[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(separator, refusal) from (text, place) of every count cell: "." or "," when only one is seen;
    both seen is ambiguous and refused, naming one cell of each."""
    seen: dict[str, str] = {}
    for text, place in cells:
        sep = separator_of(text)
        if sep and sep not in seen:
            seen[sep] = f"{text!r} at {place}"
    if len(seen) > 1:
        return None, (f"thousands separators disagree: {seen['.']} uses \".\" but {seen[',']} uses \",\". "
                      "Expected one separator per file. Hint: write every count the same way (15.256 or 15256).")
    return next(iter(seen), None), None


def parse_cell(v: Any, sep: str | None, percent: bool = False) -> Cell:
    """A cell as a count (percent=False) or a percentage. Raises ValueError naming why it is neither."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number")
    if isinstance(v, (int, float)):
        if percent:
            return Pct(Fraction(Decimal(repr(v))), _decimals(repr(v)))
        if isinstance(v, float) and not v.is_integer() or v < 0:
            raise ValueError(f"{v:g} is not a count")
        return Num(int(v))
    s = strip_footnote(text_of(v))
    if not s or s in DASHES:
        return None
    m = _PERCENT.fullmatch(s)
    if m or percent:
        digits = m[1] if m else s
        if not _DECIMAL.fullmatch(digits) or (sep == "," and "," in digits and not m):
            raise ValueError(f"{s!r} is not a percentage")
        return Pct(Fraction(Decimal(digits.replace(",", "."))), _decimals(digits))
    m = _ROUNDED.fullmatch(s)
    if m:  # "4,52 ngàn": thousands rounded to the digits printed
        d = m[1].replace(",", ".") if sep != "," else m[1].replace(",", "")
        if d.count(".") > 1:
            raise ValueError(f"{s!r} is not a rounded count")
        places = len(d.partition(".")[2])
        value = Decimal(d) * 1000
        return Num(int(value.to_integral_value(ROUND_HALF_UP)), int(Decimal(500) / Decimal(10) ** places))
    if _PLAIN.fullmatch(s) or _SPACED.fullmatch(s):
        return Num(int(s.replace(" ", "")))
    if sep and GROUPED[sep].fullmatch(s):
        return Num(int(s.replace(sep, "")))
    other = next((x for x in GROUPED if x != sep and GROUPED[x].fullmatch(s)), None)
    if other and sep:
        raise ValueError(f"{s!r} is not a count here: this file separates thousands with {sep!r}")
    if "," in s or "." in s:
        raise ValueError(f"{s!r} is not a count: a whole number has no decimals (\",\" is the decimal separator "
                         "in Vietnamese)")
    raise ValueError(f"{s!r} is not a count")


def looks_numeric(v: Any) -> bool:
    """Whether a cell holds a number of any form (for locating the table; dashes are not numbers)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    s = strip_footnote(text_of(v))
    return bool(s) and bool(_PLAIN.fullmatch(s) or _SPACED.fullmatch(s) or _PERCENT.fullmatch(s)
                            or _ROUNDED.fullmatch(s) or any(rx.fullmatch(s) for rx in GROUPED.values())
                            or _DECIMAL.fullmatch(s))


def is_blank(v: Any) -> bool:
    """Empty or a dash: not given."""
    s = strip_footnote(text_of(v))
    return not s or s in DASHES


def _decimals(digits: str) -> int:
    return len(digits.replace(",", ".").partition(".")[2])


def percent_text(x: Fraction, decimals: int) -> str:
    q = Decimal(1).scaleb(-decimals)
    return str((Decimal(x.numerator) / Decimal(x.denominator)).quantize(q, ROUND_HALF_UP)).replace(".", ",")


def in_units(x: Fraction, decimals: int) -> int:
    """x in units of its last printed digit (tenths for 48,6), rounded half up."""
    return int((Decimal(x.numerator) * 10 ** decimals / Decimal(x.denominator)).quantize(Decimal(1), ROUND_HALF_UP))


def parse_count(v: Any) -> int | None:
    """A whole count from one cell as the CLI reads it with "." separating thousands; None when not given.
    Raises ValueError."""
    c = parse_cell(v, ".")
    if isinstance(c, Pct) or (isinstance(c, Num) and c.slack):
        raise ValueError(f"{text_of(v)!r} is not a count")
    return c.value if c else None
