"""Masking of personal data in what leaves the office (vendor tickets) and in messages (a log).

- applicant names keep their initials: "Nguyễn Văn An" -> "N. V. A.";
- ID numbers (12-digit CCCD, 9-digit CMND) and phone numbers keep their last 3 digits:
  "0986542566" -> "*******566";
- addresses keep only their last part that names an administrative unit (xã, phường, thị trấn, huyện,
  quận, thị xã, thành phố, tỉnh; never the first part, and never a part with digits), the rest becomes
  "***": "thôn Long Yên, xã Bình Đông, huyện Bình Sơn, 0900844036" -> "***, huyện Bình Sơn"; an address
  with no such part (a house number and street only) is masked fully;
- free text (notes, reasons) keeps its words, but every run of 9 or more digits (spaces, dots and
  dashes between digits count as part of the run, so "0986 542 566" is one) keeps only its last 3;
  in a record, a note that repeats the record's own applicant name or an address part the address
  mask drops has them masked too ("nộp thay cho Nguyễn Văn An" -> "nộp thay cho N. V. A."): clerks
  write names and house numbers into notes. Other people's names in a note cannot be told from words.
Dossier codes are not personal data and are never passed through here.
"""

from __future__ import annotations

import re
import unicodedata

STAR = "*"
KEEP_DIGITS = 3
# A digit run, allowing single separators between digits ("0986 542 566", "0986.542.566", "+84 986...").
# Not glued to a letter, dot or dash before it, nor to a letter or digit after it (so the digit groups of a
# dossier code such as 000.00.53.H48-210616-0091 stay); plain runs of 9+ digits are masked wherever they are.
_DIGIT_RUN = re.compile(r"(?<![\w.\-+])\+?\d(?:[ .\-]?\d)*(?![\w])")
_PLAIN_RUN = re.compile(r"\d{9,}")
_ADMIN_UNITS = ("xã", "phường", "thị trấn", "huyện", "quận", "thị xã", "thành phố", "tp", "tp.", "tỉnh")


def name(value: str | None) -> str | None:
    """Initials, one per word: "Nguyễn Văn An" -> "N. V. A."."""
    if value is None:
        return None
    words = [w for w in re.split(r"[\s.,]+", unicodedata.normalize("NFC", str(value))) if w]
    initials = []
    for w in words:
        first = next((c for c in w if c.isalpha()), None)
        if first is not None:
            initials.append(unicodedata.normalize("NFC", first.upper()) + ".")
    return " ".join(initials) if initials else STAR * 3


def number(value: str | None) -> str | None:
    """An ID or phone number: every digit but the last 3 as '*', separators dropped."""
    if value is None:
        return None
    digits = [c for c in str(value) if c.isdigit()]
    if not digits:
        return STAR * 3 if str(value).strip() else str(value)
    keep = min(KEEP_DIGITS, len(digits) - 1) if len(digits) > 1 else 0
    return STAR * (len(digits) - keep) + "".join(digits[len(digits) - keep:])


phone = number
id_number = number


def address(value: str | None) -> str | None:
    """Only the last comma-separated part that names a commune, district or province (a phone number
    written after it is dropped); fully masked when there is none."""
    if value is None:
        return None
    parts = [unicodedata.normalize("NFC", p.strip()) for p in str(value).split(",") if p.strip()]
    if not parts:
        return str(value)
    for i in range(len(parts) - 1, 0, -1):  # never the first part: that is the house or hamlet
        part = parts[i]
        lowered = part.lower()
        if not any(c.isdigit() for c in part) and any(lowered.startswith(u + " ") for u in _ADMIN_UNITS):
            return f"{STAR * 3}, {part}"
    return STAR * 3


def text(value: str | None) -> str | None:
    """Free text: every number of 9 or more digits (a phone, an ID) keeps its last 3."""
    if value is None:
        return None

    def repl(m: re.Match[str]) -> str:
        run = m.group(0)
        return (number(run) or "") if sum(c.isdigit() for c in run) >= 9 else run

    return _PLAIN_RUN.sub(repl, _DIGIT_RUN.sub(repl, str(value)))


def quoted(value: str) -> str:
    """A cell quoted in a message (stderr is a log): shown when it reads as a mistyped code, else withheld,
    since a name or phone typed into the wrong column is personal data."""
    if any(c.isspace() for c in value.strip()) or text(value) != value:
        return f"a text of {len(value)} characters (not shown: it may hold personal data)"
    return repr(value)


# Which function masks which field, wherever tickets show it.
FIELDS = {"applicant": name, "phone": phone, "id_number": id_number, "address": address, "note": text}
FREE_TEXT = ("note",)


def record(values: dict[str, object], enabled: bool = True) -> dict[str, object]:
    """A copy of `values` with every personal field of FIELDS masked (unchanged when not enabled); free
    text loses the record's own name and address parts as well."""
    if not enabled:
        return dict(values)
    own = _own_values(values)
    return {k: (_free_text(v, own) if k in FREE_TEXT else FIELDS[k](v))  # type: ignore[operator]
            if k in FIELDS and isinstance(v, str) else v for k, v in values.items()}


def _own_values(values: dict[str, object]) -> list[tuple[re.Pattern[str], str]]:
    """The record's applicant name and the parts of its address that the address mask drops, each as a
    whole-word, case-insensitive pattern with what replaces it; longest first (a street before its name)."""
    found: list[tuple[str, str]] = []
    applicant, addr = values.get("applicant"), values.get("address")
    if isinstance(applicant, str):
        found.append((applicant, name(applicant) or STAR * 3))
    if isinstance(addr, str):
        kept = address(addr) or ""
        found += [(part, STAR * 3) for part in addr.split(",") if part.strip() not in kept]
    own = {unicodedata.normalize("NFC", v.strip()): r for v, r in found if sum(c.isalpha() for c in v) >= 3}
    return [(re.compile(rf"(?<!\w){re.escape(v)}(?!\w)", re.IGNORECASE), r)
            for v, r in sorted(own.items(), key=lambda item: -len(item[0]))]


def _free_text(value: str, own: list[tuple[re.Pattern[str], str]]) -> str | None:
    value = unicodedata.normalize("NFC", value)
    for pattern, replacement in own:
        value = pattern.sub(lambda _: replacement, value)
    return text(value)
