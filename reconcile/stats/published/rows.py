"""Rows of a published table: which are totals (by their labels), what each sums, and the checks of those sums."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

from reconcile.stats.published.identities import Columns, Identity, Violation, check_row
from reconcile.stats.published.numbers import Cell, Num, counts
from reconcile.stats.published.vocabulary import GRAND_LABELS, LEVEL_LABELS, words
from reconcile.util.normalize import fold


@dataclass(frozen=True, slots=True)
class Row:
    stt: str
    label: str
    values: Mapping[str, Cell]  # measure → cell; "%measure" for its percentage
    where: str  # "line 14" / "row 14"

    @property
    def name(self) -> str:
        return f"{self.stt} {self.label}".strip() or self.where

    @property
    def ref(self) -> str:
        return f"({self.stt})" if self.stt else self.name


STT = re.compile(r"[0-9]+\.?")
_ROMAN = re.compile(r"(?=[IVX])X{0,3}(?:IX|IV|V?I{0,3})\.?")
_SUB = re.compile(r"[0-9]+\.[0-9]+\.?|[a-zđ][).]?|[-+*•–]")
_GRAND = {words(x) for x in GRAND_LABELS}
_LEVELS = [words(x) for x in LEVEL_LABELS]


def kind(stt: str, label: str) -> tuple[str, str]:
    """("grand", ""), ("group", key) for "Tổng lĩnh vực X", ("section", "") for a Roman-numeral or level row
    (cấp tỉnh / huyện / xã), ("sub", "") for 1.1 / a) / - rows, else ("detail", "")."""
    ws = words(label)
    if ws in _GRAND or (ws[:1] == ("cong",) and len(ws) == 1):
        return "grand", ""
    rest = ws
    if rest[:1] in (("tong",), ("cong",)):  # "Tổng (cộng|số) lĩnh vực X"; "Sở Tư pháp" is no total
        rest = rest[1:]
        while rest and rest[0] in ("cong", "so"):
            rest = rest[1:]
    if _ROMAN.fullmatch(stt):
        return "section", ""
    if _SUB.fullmatch(stt) or (not stt and label[:1] in "-+•"):
        return "sub", ""
    if any(ws[i:i + 2] == lv for lv in _LEVELS for i in range(min(len(ws), 4))):
        return "section", ""
    if rest != ws and rest:
        return "group", "".join(rest).removeprefix("linhvuc")
    return "detail", ""


def _sum(rows: Sequence[Row], key: str) -> Cell:
    cells = counts(r.values.get(key) for r in rows)
    if len(cells) < len(rows):
        return None
    return Num(sum(c.value for c in cells), sum(c.slack for c in cells))


def _refs(rows: Sequence[Row]) -> list[str]:
    """Row references, a run of 4+ consecutive STT as first, …, last."""
    out: list[str] = []
    i = 0
    while i < len(rows):
        j = i
        while (j + 1 < len(rows) and rows[j].stt.isdigit() and rows[j + 1].stt.isdigit()
               and int(rows[j + 1].stt) == int(rows[j].stt) + 1):
            j += 1
        out += [rows[i].ref, "…", rows[j].ref] if j - i >= 3 else [r.ref for r in rows[i:j + 1]]
        i = j + 1
    return out


def against(cols: Columns, total: Row, parts: Sequence[Row]) -> list[Violation]:
    """Each count of a total against the sum of its parts; a part not given makes it "≥ the parts given"."""
    formula = " + ".join(_refs(parts))
    out = []
    for key in cols.counts:
        t = total.values.get(key)
        if not isinstance(t, Num):
            continue
        given = counts(p.values.get(key) for p in parts)
        s = sum(c.value for c in given)
        slack = t.slack + sum(c.slack for c in given)
        if len(given) == len(parts) and abs(t.value - s) > slack:
            out.append(Violation(total.name, f"{cols.label(key)}: {total.name} = {formula}", t.value, s))
        elif len(given) < len(parts) and t.value + slack < s:
            out.append(Violation(total.name, f"{cols.label(key)}: {total.name} ≥ {formula} (parts given)", t.value, s))
    return out


def remainder(cols: Columns, identities: Sequence[Identity], name: str, whole: Row, parts: Sequence[Row],
              skip: set[str] | frozenset[str] = frozenset()) -> list[Violation]:
    """What a sub-total leaves for its rows not shown: no column below 0, every identity holding."""
    values: dict[str, Cell] = {}
    for key in cols.counts:
        w, s = whole.values.get(key), _sum(parts, key)
        values[key] = Num(w.value - s.value, w.slack + s.slack) if isinstance(w, Num) and isinstance(s, Num) else None
    out = [Violation(name, f"{cols.label(k)} ≥ 0", v.value, 0) for k, v in values.items()
           if isinstance(v, Num) and v.value + v.slack < 0 and k not in skip]
    found, _ = check_row(Columns(cols.counts, (), cols.labels), identities, name, values)
    return out + found


def completeness(details: Sequence[Row]) -> tuple[bool, list[str]]:
    """Whether every row of the table is shown: its STT run 1..n without gaps or repeats."""
    if not details:
        return False, []
    nums = [int(d.stt.rstrip(".")) if STT.fullmatch(d.stt) else None for d in details]
    known = sorted(n for n in nums if n is not None)
    if None not in nums and known == list(range(1, len(known) + 1)):
        return True, [f"STT runs 1–{len(known)} without gaps: sub-totals are checked against the sum of their rows"]
    then = "so each sub-total is checked through its remainder (the sub-total minus the rows shown)"
    if not known:
        return False, [f"the rows have no STT: whether rows are missing cannot be told, {then}"]
    missing = sorted(set(range(1, known[-1] + 1)) - set(known))
    repeated = sorted(n for n, k in Counter(known).items() if k > 1)
    parts = []
    if missing:
        parts.append(f"STT {_span(missing)} not in the table")
    if repeated:
        parts.append(f"STT {', '.join(map(str, repeated))} repeated")
    if None in nums:
        parts.append("some rows have no STT")
    return False, [f"{'; '.join(parts)}, {then}"]


def _span(nums: list[int]) -> str:
    if nums == list(range(nums[0], nums[-1] + 1)) and len(nums) > 1:
        return f"{nums[0]}–{nums[-1]}"
    return ", ".join(map(str, nums))


def check_rows(cols: Columns, identities: Sequence[Identity],
               rows: list[Row]) -> tuple[list[Violation], list[str], list[str]]:
    """(violations, notes, rows' unchecked identities): every row's identities, then the totals."""
    out: dict[int, list[Violation]] = {}
    unchecked: list[str] = []
    for r in rows:
        out[id(r)], why = check_row(cols, identities, r.name, r.values) if r.values else ([], [])
        unchecked += why  # a heading ("I. Cấp huyện") has no values and nothing to check
    kinds = [kind(r.stt, r.label) for r in rows]
    if any(k in ("section", "sub") for k, _ in kinds):
        notes = _check_tree(cols, rows, kinds, out)
    else:
        notes = _check_flat(cols, identities, rows, kinds, out)
    return [v for r in rows for v in out[id(r)]], notes, unchecked


def _check_tree(cols: Columns, rows: list[Row], kinds: list[tuple[str, str]],
                out: dict[int, list[Violation]]) -> list[str]:
    """Sections (I, II / cấp tỉnh, huyện, xã) sum their rows, a unit its sub-rows, the grand total the sections."""
    grands: list[Row] = []
    top: list[Row] = []  # what the grand total adds up
    children: dict[int, list[Row]] = {}
    section: Row | None = None
    item: Row | None = None
    alias: dict[int, Row] = {}  # a section's "Cộng" row, named after its section

    def has_numbers(r: Row | None) -> bool:
        return r is not None and any(isinstance(r.values.get(k), Num) for k in cols.counts)

    for r, (k, _) in zip(rows, kinds):
        if k == "grand":
            if r.label.strip().casefold() == "cộng" and section is not None and not has_numbers(section):
                named = Row(r.stt, f"{r.label} ({section.name})", r.values, r.where)  # which "Cộng" it is
                alias[id(r)] = named
                top.append(named)  # the number-less section's own total
                children[id(named)] = children.pop(id(section), [])
                section = item = None
                continue
            grands.append(r)
            section = item = None
        elif k == "group":  # "Tổng lĩnh vực X" beside sections: only its own identities
            continue
        elif k == "section":
            section, item = r, None
            top.append(r)
            children[id(r)] = []
        elif k == "sub" and item is not None:
            children.setdefault(id(item), []).append(r)
        elif k == "sub" and section is not None:  # "- Phòng X" right under "Cấp huyện"
            children[id(section)].append(r)
        else:
            item = r
            if section is not None:
                children[id(section)].append(r)
            else:
                top.append(r)
    notes = []
    tops: list[Row] = []
    for r in top:
        parts = children.get(id(r), [])
        if has_numbers(r):
            tops.append(r)
        else:  # a heading: the grand total adds its rows
            tops += parts
    for r in rows:
        named = alias.get(id(r), r)
        parts = children.get(id(named), [])
        if parts and has_numbers(r):
            out[id(r)] += against(cols, named, parts)
            notes.append(f"{named.name}: the sum of {', '.join(_refs(parts))}")
    for g in grands:
        if tops:
            out[id(g)] += against(cols, g, tops)
            notes.append(f"{g.name}: the sum of {', '.join(x.name for x in tops)}")
    return notes


def _check_flat(cols: Columns, identities: Sequence[Identity], rows: list[Row], kinds: list[tuple[str, str]],
                out: dict[int, list[Violation]]) -> list[str]:
    """Fields and their totals: "Tổng lĩnh vực X" sums the rows naming X, the grand total all of them; when
    rows are missing, each total's remainder must be possible."""
    details = [r for r, (k, _) in zip(rows, kinds) if k == "detail"]
    grands = [r for r, (k, _) in zip(rows, kinds) if k == "grand"]
    groups = [(r, key, [d for d in details if key in fold(d.label)]) for r, (k, key) in zip(rows, kinds)
              if k == "group"]
    complete, notes = completeness(details)
    for g, key, members in groups:
        if not members:
            notes.append(f"{g.name}: no row's label contains {' '.join(g.label.split()[1:])!r}: only its own "
                         "identities are checked")
        elif complete:
            out[id(g)] += against(cols, g, members)
        else:
            notes.append(f"{g.name}: its rows by label: {', '.join(m.ref for m in members)}")
            out[id(g)] += remainder(cols, identities, f"{g.name} − {' − '.join(_refs(members))}", g, members)
    if not grands:
        return notes
    grand = grands[0]
    for other in grands[1:]:
        for key in cols.counts:
            a, b = other.values.get(key), grand.values.get(key)
            if isinstance(a, Num) and isinstance(b, Num) and abs(a.value - b.value) > a.slack + b.slack:
                out[id(other)].append(Violation(other.name, f"{cols.label(key)}: {other.name} = {grand.name}",
                                                a.value, b.value))
    if complete:
        out[id(grand)] += against(cols, grand, details)
        return notes
    exceeded: set[str] = set()
    for g, _, _ in groups:
        for key in cols.counts:
            a, b = g.values.get(key), grand.values.get(key)
            if isinstance(a, Num) and isinstance(b, Num) and a.value - a.slack > b.value + b.slack:
                exceeded.add(key)
                out[id(g)].append(Violation(g.name, f"{cols.label(key)}: {g.name} ≤ {grand.name}", a.value, b.value))
    grouped = [d for d in details if any(d in m for _, _, m in groups)]
    overlap = any(sum(d in m for _, _, m in groups) > 1 for d in details)
    parts = details if overlap else [g for g, _, _ in groups] + [d for d in details if d not in grouped]
    if overlap:
        notes.append(f"{grand.name}: some rows fall under two group sub-totals: its remainder is taken "
                     "over the rows alone")
    if parts:
        names = [g.name for g in parts if g not in details] + _refs([d for d in parts if d in details])
        notes.append(f"{grand.name}: its remainder is taken after {', '.join(names)}")
        out[id(grand)] += remainder(cols, identities, f"{grand.name} − {' − '.join(names)}", grand, parts, exceeded)
    return notes
