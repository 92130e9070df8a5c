"""A report's prose against its table: the counts it quotes and the percentages it computes from them."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Callable

from reconcile.stats.published.identities import Columns, Violation
from reconcile.stats.published.numbers import Num, in_units, parse_cell, percent_text
from reconcile.stats.published.rows import Row, kind
from reconcile.stats.published.vocabulary import AMBIGUOUS, PARENT, matches, words
from reconcile.util.normalize import normalize_text


@dataclass
class TextCheck:
    violations: list[Violation] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


# A count is a number followed by its unit: "hồ sơ", "HS" or "bộ (hồ sơ)" (dates and decree numbers have
# none); "a/b hồ sơ" is a of b; "4,52 ngàn hồ sơ" is 4,520 rounded to tens; a percentage is "78,4%" ("," is
# the decimal separator).
_NUMBER = r"[0-9]{1,3}(?:[.,][0-9]{3})+|[0-9]+"
_TOKEN = re.compile(rf"(?<![0-9.,/])(?:(?P<pct>[0-9]{{1,3}}(?:,[0-9]+)?)\s?%|(?:(?P<rounded>[0-9]+(?:,[0-9]+)?"
                    rf"\s*(?:ngàn|nghìn))|(?P<count>{_NUMBER})(?:\s*/\s*(?P<of>{_NUMBER}))?)"
                    rf"(?=\s+(?:hồ\s+sơ|HS|bộ)\b))", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.;!?])\s+")
_CLAUSE_END = re.compile(r"[,;:(]|[0-9]")
# A measure the table does not have, read as the one it has: "đúng hạn" in a table counting on time and early
# together, "trực tiếp" in one counting new dossiers.
_ALIAS = {"on_time": "on_time_early", "early": "on_time_early", "on_time_early": "on_time", "new": "in_person"}


@dataclass(frozen=True, slots=True)
class _Claim:
    text: str  # as written: "9.278", "4.561/5.650" or "4,52 ngàn"
    value: int
    slack: int  # "4,52 ngàn": 5 either side; 0 for a count written in full
    keys: tuple[str, ...]  # measures its words name
    matches: tuple[tuple[int, tuple[str, ...]], ...]  # (table row, measures summed)
    of: int | None = None  # "a/b hồ sơ": b


def _int(s: str) -> int:
    return int(re.sub(r"[.,]", "", s))


def check_text(text: str, cols: Columns, rows: list[Row]) -> TextCheck:
    """Counts confirmed when in the table; percentages checked when numerator and denominator are cells of
    one row (or the text gives both, "a/b hồ sơ (x%)"). Lines holding a tab are table rows and are skipped."""
    table: list[tuple[str, dict[str, int]]] = [
        (r.name, {k: c.value for k, c in r.values.items() if isinstance(c, Num) and k in cols.counts}) for r in rows]
    kinds = [kind(r.stt, r.label) for r in rows]
    grand = next((i for i, (k, _) in enumerate(kinds) if k == "grand"), None)
    if grand is not None:  # "the other fields" of a report: grand total minus one group
        g = table[grand][1]
        table += [(f"{rows[grand].name} − {rows[i].name}", {k: g[k] - v for k, v in table[i][1].items() if k in g})
                  for i, (k, _) in enumerate(kinds) if k == "group"]
    out = TextCheck()
    for n, line in enumerate(text.splitlines(), 1):
        if "\t" not in line:
            _check_paragraph(n, normalize_text(line) or "", cols, table, out)
    return out


def named(text: str, cols: Columns) -> tuple[str, ...]:
    """The table's measures the words name; "quá hạn" names both late and overdue."""
    keys: list[str] = []
    expand = {AMBIGUOUS: ("late", "overdue")}
    if "on_time_early" not in cols.counts and {"early", "on_time"} <= set(cols.counts):
        expand["on_time_early"] = ("early", "on_time")  # "trước hạn và đúng hạn": the two columns summed
    for m in matches(words(text)):
        for k in expand.get(m.key, (m.key,)):
            k = k if k in cols.counts else _ALIAS.get(k, k)
            if k in cols.counts and k not in keys:
                keys.append(k)
    return tuple(keys)


def _find(count: Num, keys: tuple[str, ...], cols: Columns,
          table: list[tuple[str, dict[str, int]]]) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """Where the table has the count (within its rounding): the columns it names, else any column."""
    def near(x: int | None) -> bool:
        return x is not None and abs(x - count.value) <= count.slack

    found: list[tuple[int, tuple[str, ...]]] = [
        (i, (k,)) for i, (_, v) in enumerate(table) for k in keys or cols.counts if near(v.get(k))]
    if not found and len(keys) > 1:  # "rút và trả lại là 650": the columns it names, summed
        found = [(i, keys) for i, (_, v) in enumerate(table) if all(k in v for k in keys)
                 and near(sum(v[k] for k in keys))]
    return tuple(found)


def _check_paragraph(n: int, line: str, cols: Columns, table: list[tuple[str, dict[str, int]]],
                     out: TextCheck) -> None:
    counts: list[_Claim] = []
    percents: list[tuple[str, _Claim | None]] = []
    for sentence in _SENTENCE.split(line):
        at, pending = 0, None
        for m in _TOKEN.finditer(sentence):
            if m["count"] or m["rounded"]:
                count = parse_cell(m["rounded"], None) if m["rounded"] else Num(_int(m["count"]))
                assert isinstance(count, Num)  # the pattern matched a count
                before = sentence[at:m.start()]
                if at:  # after a count, its own label may follow it: "300 hồ sơ chưa đến hạn, 60 hồ sơ đến hạn"
                    before = re.split(r"[,;]", before)[-1]
                keys = named(before, cols)
                if not keys:  # the label after the number: "4.561 hồ sơ giải quyết đúng hạn"
                    after = sentence[m.end():]
                    unit = re.match(r"\s+(?:hồ\s+sơ|HS|bộ(?:\s+hồ\s+sơ)?)", after, re.IGNORECASE)
                    rest = after[unit.end() if unit else 0:]
                    stop = _CLAUSE_END.search(rest)
                    keys = named(rest[:stop.start() if stop else len(rest)], cols)
                text = m["rounded"] or m["count"] + (f"/{m['of']}" if m["of"] else "")
                pending = _Claim(text, count.value, count.slack, keys, _find(count, keys, cols, table),
                                 _int(m["of"]) if m["of"] else None)
                counts.append(pending)
            else:
                percents.append((m["pct"], pending))
                pending = None
            at = m.end()
    # The row a paragraph speaks of: the one most of its counts come from.
    votes = Counter(i for c in counts for i in {i for i, _ in c.matches}).most_common(2)
    context = votes[0][0] if votes and (len(votes) == 1 or votes[0][1] > votes[1][1]) else None

    # The row most counts come from first, then rows the paragraph names ("Cấp xã trễ hạn 100 hồ sơ").
    said = " " + " ".join(words(line)) + " "
    named_rows = {i for i, (name, _) in enumerate(table)
                  if (said_as := " ".join(words(_label(name)))) and f" {said_as} " in said}

    def ranked(c: _Claim) -> list[tuple[int, tuple[str, ...]]]:
        return sorted(c.matches, key=lambda m: (m[0] != context, m[0] not in named_rows))

    def label(keys: tuple[str, ...]) -> str:
        return " + ".join(cols.label(k) for k in keys)

    for c in counts:
        if c.matches:
            i, keys = ranked(c)[0]
            cell = f" ({sum(table[i][1][k] for k in keys)}, within its rounding)" if c.slack else ""
            out.confirmed.append(f"line {n}: {c.text} hồ sơ = {label(keys)} of {_quoted(table[i][0])}{cell}")
        elif c.keys and _find(Num(c.value, c.slack), (), cols, table):
            out.unchecked.append(f"line {n}: {c.text} hồ sơ{_range(c)}: in the table, but not as {label(c.keys)}")
        else:
            out.unchecked.append(f"line {n}: {c.text} hồ sơ{_range(c)}: not in the table")
    for pct, claim in percents:
        _check_percent(n, pct, claim, cols, table, ranked, out)


def _check_percent(n: int, pct: str, claim: _Claim | None, cols: Columns, table: list[tuple[str, dict[str, int]]],
                   ranked: Callable[[_Claim], list[tuple[int, tuple[str, ...]]]], out: TextCheck) -> None:
    if claim is None:
        out.unchecked.append(f"line {n}: {pct}%: no count (\"N hồ sơ\") before it in the sentence")
        return
    printed = Fraction(Decimal(pct.replace(",", ".")))
    decimals = len(pct.partition(",")[2])
    half = Fraction(1, 2 * 10 ** decimals)  # half a unit of the last digit printed
    # (row, numerator's measures, its value, denominator's measure or None for the text's own "/b", ratio)
    candidates: list[tuple[int | None, tuple[str, ...], int, str | None, Fraction]] = []
    if claim.of:  # "4.561/5.650 hồ sơ (99,7%)": the text's own ratio, and b is named from the table
        candidates.append((None, claim.keys, claim.value, None, Fraction(100 * claim.value, claim.of)))
    for i, keys in ranked(claim):
        value = sum(table[i][1][k] for k in keys)  # the cell, not a rounded "4,52 ngàn"
        if "total" in keys:
            continue  # a share of the total has no denominator
        parents = {PARENT.get(k, "total") for k in keys}
        dens = [parents.pop()] if len(parents) == 1 else []
        if dens and dens[0] != "total":
            dens.append("total")  # on-time over received, as some reports compute it
        for den in dens:
            if table[i][1].get(den):
                candidates.append((i, keys, value, den, Fraction(100 * value, table[i][1][den])))
    if not candidates:
        out.unchecked.append(f"line {n}: {pct}%: its count {claim.text} is not in the table" if not claim.matches
                             else f"line {n}: {pct}%: {claim.text} is in a column without a denominator")
        return
    good = [x for x in candidates if abs(printed - x[4]) <= half]
    at, keys, value, parent, exact = (good or candidates)[0]
    if parent is None:  # the text's own denominator
        where = _of_named(claim.of or 0, table, cols)
        shown = f"{claim.text} as written" + (f", the denominator being {where}" if where else "")
        row_name = table[ranked(claim)[0][0]][0] if claim.matches else ""
    else:  # the formula names the denominator used: its parent (đã giải quyết) or the received (tổng số)
        shown = f"{' + '.join(cols.label(k) for k in keys)} / {cols.label(parent)}"
        row_name = table[at][0] if at is not None else ""
    if good:
        ratio = f"{value} / {table[at][1][parent]}" if parent and at is not None else claim.text
        out.confirmed.append(f"line {n}: {pct}% = {shown}" + (f" of {_quoted(row_name)}" if parent else "")
                             + f" ({ratio} = {percent_text(exact, 2)}%)")
    else:
        unit = {0: "in percent", 1: "in tenths of a percent", 2: "in hundredths of a percent"}.get(
            decimals, f"in units of 10^-{decimals} percent")
        out.violations.append(Violation(
            row_name or f"text line {n}", f"text line {n}: {pct}% = {shown} ({unit})", in_units(printed, decimals),
            in_units(exact, decimals), (percent_text(printed, decimals), percent_text(exact, decimals))))


def _of_named(value: int, table: list[tuple[str, dict[str, int]]], cols: Columns) -> str:
    """Which cell of the table a text's denominator is, if any: "đã giải quyết of Tổng"."""
    for name, v in table:
        for k in cols.counts:
            if v.get(k) == value:
                return f"{value} = {cols.label(k)} of {_quoted(name)}"
    return ""


def _range(c: _Claim) -> str:
    """What a rounded count may be: " (17150–17250)" for "17,2 ngàn"."""
    return f" ({c.value - c.slack}–{c.value + c.slack})" if c.slack else ""


def _label(name: str) -> str:
    """A row's label without its STT ("II Cấp huyện" → "Cấp huyện")."""
    head, _, rest = name.partition(" ")
    return rest if rest and re.fullmatch(r"[0-9IVX]+\.?", head) else name


def _quoted(name: str) -> str:
    return f'"{name}"'


