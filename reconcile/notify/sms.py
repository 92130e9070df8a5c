"""What an SMS costs: its encoding (GSM-7 or UCS-2) and segment count.

A message whose every character is in the GSM 03.38 alphabet travels as 7-bit text: 160 characters in one
SMS, 153 per part when it is split (each part carries a 7-character header). Any other character (ư, ơ, ạ,
ế ... every Vietnamese letter with a tone mark but a few) makes the whole message UCS-2: 70 UTF-16 units in
one SMS, 67 per part.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

# GSM 03.38 default alphabet (one septet each) and its extension table (an escape + one septet: two).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True, slots=True)
class Cost:
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def cost(text: str) -> Cost:
    """The encoding, length in its units and number of SMS segments of `text` (NFC, as it is sent)."""
    text = unicodedata.normalize("NFC", text)
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        return Cost("GSM-7", units, _segments(units, GSM_SINGLE, GSM_PART))
    units = len(text.encode("utf-16-le")) // 2
    return Cost("UCS-2", units, _segments(units, UCS2_SINGLE, UCS2_PART))


def _segments(units: int, single: int, part: int) -> int:
    return 1 if units <= single else math.ceil(units / part)

