"""Vietnamese mobile numbers as people write them, normalised (phonenumbers) to one E.164 form.

Accepted: `0912 345 678`, `0912.345.678`, `+84 912 345 678`, `84912345678`, `0084...`, a national number
whose leading 0 a spreadsheet dropped (`912345678`), and the 11-digit numbers retired in 2018
(`0162 345 6789` -> `0323456789`, see OLD_PREFIXES). What is not a Vietnamese mobile number is an
Unreachable with the reason, never dropped silently.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

# The 2018 change of mobile prefixes (Ministry of Information and Communications plan announced 29/05/2018;
# conversion from 15/09/2018, both forms dialled in parallel until 14/11/2018, finished 30/06/2019): an
# 11-digit number's 4-digit prefix became a 3-digit one, its last 7 digits unchanged. Old -> new, as dialled
# in the country (with the leading 0). 10-digit numbers (090, 091, 098 ...) did not change.
OLD_PREFIXES: dict[str, str] = {
    # MobiFone
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    # VinaPhone
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    # Viettel
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036", "0167": "037", "0168": "038",
    "0169": "039",
    # Vietnamobile
    "0186": "056", "0188": "058",
    # Gmobile (Gtel)
    "0199": "059",
}
# The same table on national significant numbers (no leading 0), as the parser below sees them.
_OLD_NSN = {old[1:]: new[1:] for old, new in OLD_PREFIXES.items()}
_SEPARATORS = re.compile(r"[\s.\-()]")
_MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
# Phone-like runs in free text (a register's "Địa chỉ, số điện thoại" cell): a digit, then digits with
# single separators, optionally after a +.
_RUN = re.compile(r"(?<![\w+])\+?\d(?:[ .\-]?\d){8,13}(?!\w)")


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str  # +84912345678
    national: str  # 0912345678
    converted_from: str | None = None  # the 11-digit national number it was written as, if one


@dataclass(frozen=True, slots=True)
class Unreachable:
    reason: str  # missing | invalid | not_mobile | not_vietnamese
    detail: str  # why, for a person (no digits of the number)


def normalise(raw: str | None) -> Phone | Unreachable:
    """One written phone number as a Phone, or why it cannot receive an SMS."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        return Unreachable("missing", "no phone number")
    compact = _SEPARATORS.sub("", text)
    if not re.fullmatch(r"\+?\d+", compact):
        return Unreachable("invalid", "not a phone number (letters or other signs)")
    digits = compact.lstrip("+")
    if compact.startswith("+") or digits.startswith("00"):
        digits = digits[2:] if digits.startswith("00") else digits
        if not digits.startswith("84"):
            return Unreachable("not_vietnamese", "a number outside Viet Nam (the gateway sends in the country)")
        nsn = digits[2:]
    elif digits.startswith("84") and len(digits) in (11, 12):  # +84 without its +: 84 + 9 or 84 + 10 (old) digits
        nsn = digits[2:]
    elif digits.startswith("0"):
        nsn = digits[1:]
    else:
        nsn = digits  # a spreadsheet dropped the leading 0
    converted = None
    if len(nsn) == 10 and nsn[:3] in _OLD_NSN:
        converted, nsn = "0" + nsn, _OLD_NSN[nsn[:3]] + nsn[3:]
    try:
        number = phonenumbers.parse("+84" + nsn)
    except phonenumbers.NumberParseException:
        return Unreachable("invalid", "not a phone number")
    if not phonenumbers.is_valid_number(number):
        if len(nsn) != 9:
            return Unreachable("invalid", f"{len(nsn) + 1} digits; a mobile number has 10 (0 and 9 digits)")
        return Unreachable("invalid", "no Vietnamese number starts with these digits")
    if phonenumbers.number_type(number) not in _MOBILE:
        return Unreachable("not_mobile", "a landline or service number: it cannot receive an SMS")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Phone(e164, "0" + nsn, converted)


def in_cell(text: str | None) -> Phone | Unreachable:
    """A phone column's cell: one number, else the first mobile number among several ("0912 345 678 /
    0987 654 321", "0912345678 (con trai)")."""
    found = normalise(text)
    if isinstance(found, Unreachable) and found.reason == "invalid":
        other = in_text(text)
        return other if isinstance(other, Phone) else found
    return found


def in_text(text: str | None) -> Phone | Unreachable:
    """The first mobile number written in free text (an address cell ending in a phone number); when
    there is none, why (missing, or the first run's reason)."""
    first: Unreachable | None = None
    for m in _RUN.finditer(unicodedata.normalize("NFKC", text or "")):
        found = normalise(m.group(0))
        if isinstance(found, Phone):
            return found
        first = first or found
    return first or Unreachable("missing", "no phone number")
