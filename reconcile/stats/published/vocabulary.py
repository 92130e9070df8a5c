"""The words published tables use: header phrases to measures, total-row labels, prose labels."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from reconcile.util.normalize import fold

# Measures, in the order identities print them, with the short label formulas use.
MEASURES: dict[str, str] = {
    "total": "tổng số", "carried_over": "kỳ trước chuyển qua", "new": "mới tiếp nhận", "online": "trực tuyến",
    "in_person": "trực tiếp", "postal": "bưu chính", "resolved": "đã giải quyết", "early": "trước hạn",
    "on_time": "đúng hạn", "on_time_early": "đúng hạn (kể cả trước hạn)", "late": "trễ hạn",
    "in_progress": "đang giải quyết", "within_time": "trong hạn", "due_now": "đến hạn", "overdue": "quá hạn",
    "withdrawn": "rút", "returned": "trả lại", "supplement": "chờ bổ sung",
}
RECEIVED = ("total", "carried_over", "new", "online", "in_person", "postal")
RESOLVED = ("resolved", "early", "on_time", "on_time_early", "late")
IN_PROGRESS = ("in_progress", "within_time", "due_now", "overdue")
# The denominator of a measure's percentage: shares of the resolved, of those in progress, else of the total.
PARENT: dict[str, str] = {k: "resolved" for k in RESOLVED[1:]} | {k: "in_progress" for k in IN_PROGRESS[1:]}

# Markers with no measure of their own.
GENERIC = "(count)"  # "Tổng số", "Số lượng": the count of the group above it (the total at the top)
AMBIGUOUS = "(quá hạn)"  # late when resolved, overdue when in progress: the group (or the column before) decides
NEUTRAL = "(group)"  # "Trong đó", "Kết quả giải quyết": a group that names no measure
OTHER = "(not dossiers)"  # "Số TTHC", "Số thủ tục": counts something else, left out

# Header and prose phrases, matched word by word after `fold` (case and accents do not matter);
# where several match one cell, the longest wins ("chưa đến hạn" over "đến hạn").
PHRASES: dict[str, tuple[str, ...]] = {
    "total": ("nhận giải quyết", "tiếp nhận", "đã tiếp nhận", "tổng số hồ sơ", "tổng hồ sơ", "nhận xử lý"),
    "carried_over": ("kỳ trước", "từ kỳ trước", "kỳ trước chuyển sang", "kỳ trước chuyển qua", "chuyển kỳ",
                     "tồn kỳ trước", "năm trước chuyển sang", "chuyển tiếp", "tồn trước"),
    "new": ("mới tiếp nhận", "tiếp nhận mới", "nhận mới", "trong kỳ", "mới", "phát sinh"),
    "online": ("trực tuyến", "qua mạng", "dịch vụ công trực tuyến", "trực tuyến mức độ 3, 4"),
    "in_person": ("trực tiếp", "tại bộ phận một cửa", "trực tiếp dịch vụ bưu chính", "trực tiếp và bưu chính",
                  "trực tiếp bưu chính", "tiếp nhận mới trực tiếp", "mới tiếp nhận trực tiếp"),
    "postal": ("bưu chính", "dịch vụ bưu chính", "bưu điện", "qua bưu điện", "bưu chính công ích"),
    "resolved": ("đã giải quyết", "đã xử lý", "giải quyết xong", "đã trả kết quả", "đã có kết quả",
                 "hồ sơ đã giải quyết", "số hồ sơ đã giải quyết", "đã giải quyết xong", "hồ sơ giải quyết",
                 "tỷ lệ giải quyết"),
    "early": ("trước hạn", "trả trước hạn", "sớm hạn", "giải quyết trước hạn"),
    "on_time": ("đúng hạn", "đúng thời hạn", "trả đúng hạn", "trả đúng thời hạn", "đúng hẹn", "giải quyết đúng hạn"),
    "on_time_early": ("đúng hạn kể cả trước hạn", "trước hạn và đúng hạn", "đúng hạn và trước hạn",
                      "trước và đúng hạn", "đúng và trước hạn", "trước hạn đúng hạn", "đúng hạn trước hạn"),
    "late": ("trễ hạn", "trả quá hạn", "trễ hẹn", "chậm", "trả trễ hạn", "giải quyết quá hạn", "giải quyết trễ hạn",
             "chậm trễ"),
    "in_progress": ("đang giải quyết", "chưa giải quyết", "đang xử lý", "chưa có kết quả", "đang thụ lý",
                    "chưa giải quyết xong", "đang giải quyết chuyển kỳ sau"),
    "within_time": ("trong hạn", "chưa đến hạn", "còn hạn", "chưa quá hạn", "trong thời hạn"),
    "due_now": ("đến hạn",),
    "withdrawn": ("rút", "rút hồ sơ", "công dân rút", "xin rút"),
    "returned": ("trả lại", "không giải quyết", "từ chối", "trả lại không giải quyết", "không đủ điều kiện"),
    "supplement": ("bổ sung", "chờ bổ sung", "yêu cầu bổ sung", "bổ sung hồ sơ", "tạm dừng"),
    AMBIGUOUS: ("quá hạn",),
    GENERIC: ("tổng số", "tổng", "số lượng", "số hồ sơ", "cộng", "tổng cộng", "hồ sơ"),
    OTHER: ("tthc", "thủ tục", "thủ tục hành chính", "số thủ tục", "dịch vụ công", "số đơn vị", "đơn vị", "số hóa",
            "thanh toán", "thanh toán trực tuyến", "hài lòng", "đánh giá", "lệ phí", "phí"),
    NEUTRAL: ("trong đó", "kết quả giải quyết", "chia ra", "bao gồm", "hình thức tiếp nhận", "kết quả",
              "tình hình giải quyết", "số liệu", "hình thức nhận"),
}
PERCENT_WORDS = ("tỷ lệ", "tỉ lệ", "phần trăm")
# Labels of rows that total the whole table (after `fold`, the label's first words), and of level groups.
GRAND_LABELS = ("tổng", "tổng cộng", "tổng số", "cộng", "toàn tỉnh", "toàn huyện", "toàn thành phố", "toàn thị xã",
                "toàn quận", "tổng cộng toàn tỉnh", "tổng toàn tỉnh", "tổng toàn huyện", "cộng toàn tỉnh")
LEVEL_LABELS = ("cấp tỉnh", "cấp huyện", "cấp xã")


def words(text: str) -> tuple[str, ...]:
    """`fold` word by word: punctuation splits words, "%" is a word."""
    return tuple(w for w in (fold(x) if x != "%" else "%" for x in re.split(r"[\s,;:/()\[\].\-–—+]+|(%)", text)
                             if x) if w)


_TABLE = sorted(((words(p), key) for key, ps in PHRASES.items() for p in ps), key=lambda x: -len(x[0]))


@dataclass(frozen=True, slots=True)
class Match:
    key: str  # a MEASURES key, GENERIC, AMBIGUOUS, NEUTRAL or OTHER
    start: int  # word index
    length: int


def matches(ws: tuple[str, ...]) -> list[Match]:
    """Every phrase found in the words, longest first, none overlapping one already taken."""
    taken: set[int] = set()
    out: list[Match] = []
    for phrase, key in _TABLE:
        n = len(phrase)
        for i in range(len(ws) - n + 1):
            if ws[i:i + n] == phrase and not taken & set(range(i, i + n)):
                taken |= set(range(i, i + n))
                out.append(Match(key, i, n))
    return sorted(out, key=lambda m: m.start)


def is_percent(text: str) -> bool:
    """Whether a header cell names a percentage ("Tỷ lệ …", "%")."""
    ws = words(text)
    return "%" in ws or any(_sub(ws, words(p)) for p in PERCENT_WORDS)


def _sub(ws: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    return any(ws[i:i + len(phrase)] == phrase for i in range(len(ws) - len(phrase) + 1))


def cell_meaning(text: str) -> str | None:
    """What one header cell says: a measure, GENERIC, AMBIGUOUS, NEUTRAL, OTHER, or None (not in the vocabulary).
    Several measures in one cell: the most specific (the one latest in the cell, "Tổng số đã giải quyết")."""
    found = [m.key for m in matches(words(text))]
    specific = [k for k in found if k in MEASURES or k == AMBIGUOUS]
    if "on_time" in specific and "early" in specific:
        return "on_time_early"
    if specific:
        return specific[-1]
    for marker in (OTHER, GENERIC, NEUTRAL):
        if marker in found:
            return marker
    return None


def nearest(text: str) -> str:
    """The vocabulary's phrase closest to an unknown header cell, for the refusal's hint."""
    ws = words(text)
    phrases = {" ".join(words(p)): p for ps in PHRASES.values() for p in ps}
    shared = max((len(set(ws) & set(k.split())) for k in phrases), default=0)
    pool = [k for k in phrases if len(set(ws) & set(k.split())) == shared]  # most words in common first
    best = difflib.get_close_matches(" ".join(ws), pool, n=1, cutoff=0.0)
    return phrases[best[0]] if best else "tổng số"


def family(key: str | None) -> str | None:
    """The group a measure belongs to (received, resolved or in progress), by the measure heading it."""
    if key in RECEIVED:
        return "total"
    if key in RESOLVED:
        return "resolved"
    if key in IN_PROGRESS:
        return "in_progress"
    return None


def resolve(path: list[str], before: str | None) -> tuple[str | None, bool]:
    """(measure, is a percentage) of a column from its header cells top to bottom; `before` is the measure
    of the nearest count column to its left (the "Trong đó" groups refer to it). None: not understood."""
    pct = any(is_percent(t) for t in path)
    meanings = [cell_meaning(t) for t in path]
    context: str | None = None  # the innermost group's measure
    for m in meanings[:-1]:
        if m is not None and m in MEASURES:
            context = m
    leaf = meanings[-1] if meanings else None  # the cell right above the numbers; a group never stands in for it
    if leaf == OTHER:
        return None, False
    if leaf == NEUTRAL:
        leaf = None
    if leaf is None and not pct:
        return None, False
    if leaf is None:  # "Tỷ lệ (%)": the percentage of the group's measure, else of the column before
        return context or before, True
    group = family(context) or family(before)
    if leaf == GENERIC:
        return context or ("total" if not pct else before), pct
    if leaf == AMBIGUOUS:
        return {"resolved": "late", "in_progress": "overdue"}.get(group or ""), pct
    if leaf == "on_time" and family(context) == "in_progress":
        return "within_time", pct  # "đúng hạn" of those in progress: not yet due
    if leaf == "within_time" and family(context) == "resolved":
        return "on_time", pct  # "trong hạn" of those resolved: on time
    if leaf == "late" and family(context) == "in_progress":
        return "overdue", pct
    return leaf, pct


_MARKERS = {AMBIGUOUS: "(its group decides)", GENERIC: "(count of its group)", NEUTRAL: "(group naming nothing)",
            OTHER: "(not a count of dossiers: left out)"}


def describe() -> list[str]:
    """The vocabulary as docs/statistics.md's table rows (a test keeps the page in step)."""
    return [f"| {_MARKERS.get(k, k)} | {MEASURES.get(k, '')} | {', '.join(ps)} |" for k, ps in PHRASES.items()]
