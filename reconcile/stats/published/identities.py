"""Which identities a table's measures allow, and each row checked against them (rounding and "not given" kept)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Mapping, Sequence

from reconcile.stats.published.numbers import Cell, Num, Pct, counts, in_units, percent_text
from reconcile.stats.published.vocabulary import MEASURES, PARENT


@dataclass(frozen=True, slots=True)
class Identity:
    """left = Σ parts (left ≤ Σ parts − Σ minus when at_most)."""

    left: str
    parts: tuple[str, ...]
    minus: tuple[str, ...] = ()
    at_most: bool = False


@dataclass(frozen=True, slots=True)
class Violation:
    row: str  # STT and label as printed, or a remainder such as "Tổng lĩnh vực đất đai − (13)"
    identity: str
    left: int
    right: int
    percent: tuple[str, str] | None = None  # a percentage: (printed, computed) as written, "99,96" and "100,00"

    @property
    def difference(self) -> int:
        return self.left - self.right

    def shown(self) -> tuple[str, str, str]:
        if self.percent is None:
            return str(self.left), str(self.right), f"{self.difference:+d}"
        decimals = len(self.percent[0].partition(",")[2])
        diff = percent_text(Fraction(self.difference, 10 ** decimals), decimals)
        return f"{self.percent[0]}%", f"{self.percent[1]}%", ("+" if self.difference >= 0 else "") + diff

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "identity": self.identity, "left": self.left, "right": self.right,
                               "difference": self.difference}
        if self.percent is not None:
            left, right, diff = self.shown()
            out["percent"] = {"printed": left, "computed": right, "difference": diff}
        return out


@dataclass(frozen=True, slots=True)
class Columns:
    """The measures a table gives, in its column order, with the label each prints under."""

    counts: tuple[str, ...]
    percents: tuple[str, ...] = ()  # measures with a percentage column
    labels: Mapping[str, str] | None = None  # a preset's labels; else the vocabulary's
    over: Mapping[str, str] | None = None  # a percentage's denominator where the table's is not the vocabulary's

    def denominator(self, key: str) -> str:
        return (self.over or {}).get(key) or PARENT.get(key, "total")

    def label(self, key: str) -> str:
        return (self.labels or {}).get(key) or MEASURES[key]

    def pct_label(self, key: str) -> str:
        return f"tỷ lệ {self.label(key)} (%)"

    def order(self, keys: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(keys, key=self.counts.index))

    def formula(self, i: Identity) -> str:
        right = " + ".join(self.label(k) for k in i.parts) + "".join(f" − {self.label(k)}" for k in i.minus)
        return f"{self.label(i.left)} {'≤' if i.at_most else '='} {right}"


def allowed(cols: Columns) -> tuple[list[Identity], list[str]]:
    """Every identity the measures present allow, and why each other one cannot be checked."""
    have = set(cols.counts)
    out: list[Identity] = []
    skipped: list[str] = []

    def need(name: str, keys: Sequence[str]) -> bool:
        missing = [k for k in keys if k not in have]
        if missing:
            skipped.append(f"{name}: the table has no {' and no '.join(repr(MEASURES[k]) for k in missing)}"
                           " column")
        return not missing

    channels = cols.order([k for k in ("online", "in_person", "postal") if k in have])
    if "new" in have:
        if need("tổng số = kỳ trước + mới tiếp nhận", ("total", "carried_over")):
            out.append(Identity("total", cols.order(["carried_over", "new"])))
        if need("mới tiếp nhận = trực tuyến + trực tiếp (+ bưu chính)", ("online", "in_person")):
            out.append(Identity("new", channels))
    elif need("tổng số = trực tuyến + trực tiếp (+ bưu chính) (+ kỳ trước)", ("total", "online", "in_person")):
        out.append(Identity("total", cols.order(list(channels) + (["carried_over"] if "carried_over" in have else []))))
    if "early" in have and "on_time" in have:
        split: list[str] = ["early", "on_time", "late"]
    else:
        split = ["on_time_early" if "on_time_early" in have else "on_time", "late"]
    if need(f"đã giải quyết = {' + '.join(MEASURES[k] for k in split)}", ["resolved"] + split):
        out.append(Identity("resolved", cols.order(split)))
    progress = ["within_time"] + (["due_now"] if "due_now" in have else []) + ["overdue"]
    if need("đang giải quyết = trong hạn (+ đến hạn) + quá hạn", ["in_progress"] + progress):
        out.append(Identity("in_progress", cols.order(progress)))
    apart: list[str] = [k for k in ("withdrawn", "returned", "supplement") if k in have]
    if need("tổng số = đã giải quyết + đang giải quyết (+ rút + trả lại + chờ bổ sung)",
            ("total", "resolved", "in_progress")):
        out.append(Identity("total", cols.order(["resolved", "in_progress"] + apart)))
    if {"online", "total", "carried_over"} <= have and "new" not in have:
        out.append(Identity("online", ("total",), ("carried_over",), at_most=True))
    for key in cols.percents:
        parent = PARENT.get(key, "total")
        if key == "total":
            skipped.append(f"{cols.pct_label(key)}: a share of the total has no denominator")
        elif key == "on_time_early" and {"early", "on_time"} <= have and parent in have:
            pass  # "tỷ lệ trước hạn và đúng hạn" over the two columns
        elif key not in have or parent not in have:
            missing = [k for k in (key, parent) if k not in have]
            skipped.append(f"{cols.pct_label(key)}: the table has no "
                           f"{' and no '.join(repr(MEASURES[k]) for k in missing)} column")
    return out, skipped


def check_row(cols: Columns, identities: Sequence[Identity], name: str,
              values: Mapping[str, Cell]) -> tuple[list[Violation], list[str]]:
    """A row's broken identities. A part not given turns "=" into "≥ the parts given"; a left side not
    given leaves the identity unchecked on that row (returned as a reason)."""
    out: list[Violation] = []
    unchecked: list[str] = []
    for i in identities:
        left = values.get(i.left)
        if not isinstance(left, Num):
            unchecked.append(f"{name}: {cols.formula(i)} not checked ({cols.label(i.left)} not given)")
            continue
        given = [k for k in i.parts if isinstance(values.get(k), Num)]
        plus, minus = counts(values.get(k) for k in i.parts), counts(values.get(k) for k in i.minus)
        if len(minus) < len(i.minus):
            continue  # "trực tuyến ≤ tổng số − kỳ trước" bounds nothing without kỳ trước
        right = sum(c.value for c in plus) - sum(c.value for c in minus)
        slack = left.slack + sum(c.slack for c in plus + minus)
        if i.at_most:
            if left.value > right + slack:
                out.append(Violation(name, cols.formula(i), left.value, right))
        elif len(given) == len(i.parts):
            if abs(left.value - right) > slack:
                out.append(Violation(name, cols.formula(i), left.value, right))
        elif left.value + slack < right:  # parts not given are ≥ 0: the left is at least the parts given
            absent = ", ".join(cols.label(k) for k in i.parts if k not in given)
            out.append(Violation(name, f"{cols.label(i.left)} ≥ {' + '.join(cols.label(k) for k in given) or '0'} "
                                       f"({absent} not given)", left.value, right))
    for key in cols.percents:
        found = check_percent(cols, name, key, values)
        if found is not None:
            out.append(found)
    return out, unchecked


def ratios(key: str, parent: str, values: Mapping[str, Cell]) -> list[tuple[str, Fraction, Fraction]]:
    """(how, lowest, highest) of 100 × key / parent as the cells allow (rounded figures give a range);
    "đúng hạn" also as (trước hạn + đúng hạn) when the table has both."""
    den = values.get(parent)
    nums = [(MEASURES[key], [key])]
    if key == "on_time_early" and "on_time_early" not in values:
        nums = [(f"({MEASURES['early']} + {MEASURES['on_time']})", ["early", "on_time"])]
    if key == "on_time" and isinstance(values.get("early"), Num):
        nums.append((f"({MEASURES['early']} + {MEASURES['on_time']})", ["early", "on_time"]))
    out: list[tuple[str, Fraction, Fraction]] = []
    if not isinstance(den, Num):
        return out
    for how, keys in nums:
        parts = counts(values.get(k) for k in keys)
        if len(parts) < len(keys):
            continue
        n = sum(p.value for p in parts)
        s = sum(p.slack for p in parts)
        lo_den, hi_den = den.value + den.slack, max(den.value - den.slack, 0)
        if hi_den == 0:
            continue
        out.append((f"{how} / {MEASURES[parent]}", Fraction(100 * max(n - s, 0), lo_den),
                    Fraction(100 * (n + s), hi_den)))
    return out


def check_percent(cols: Columns, name: str, key: str, values: Mapping[str, Cell]) -> Violation | None:
    """A percentage cell against its ratio, to the precision it is printed with."""
    p = values.get(f"%{key}")
    found = ratios(key, cols.denominator(key), values)
    if not isinstance(p, Pct) or not found or _holds(p, found):
        return None
    how, lo, hi = found[0]
    exact = (lo + hi) / 2
    unit = {0: "in percent", 1: "in tenths of a percent", 2: "in hundredths of a percent"}.get(
        p.decimals, f"in units of 10^-{p.decimals} percent")
    return Violation(name, f"{cols.pct_label(key)} = {how} ({unit})", in_units(p.value, p.decimals),
                     in_units(exact, p.decimals), (percent_text(p.value, p.decimals), percent_text(exact, p.decimals)))


def _holds(p: Pct, found: Sequence[tuple[str, Fraction, Fraction]]) -> bool:
    """Whether a printed percentage is one of the ratios, to half a unit of its last digit."""
    half = Fraction(1, 2 * 10 ** p.decimals)
    return any(lo - half <= p.value <= hi + half for _, lo, hi in found)


def denominators(key: str) -> tuple[str, ...]:
    """A percentage's denominators: the vocabulary's, then the other one provinces use (a share of those
    resolved or in progress is sometimes computed over all received)."""
    parent = PARENT.get(key, "total")
    return (parent, "total") if parent != "total" else (parent,)


@dataclass(frozen=True, slots=True)
class Denominator:
    """The denominator a table's percentage column was computed over, read from its cells."""

    key: str  # the measure of the percentage
    over: str  # the denominator taken
    usual: str  # the vocabulary's
    held: int  # rows whose cell holds over `over`
    usual_held: int  # … over the vocabulary's
    checked: int  # rows with a cell and a ratio to check it against


def choose_denominators(cols: Columns, rows: Sequence[Mapping[str, Cell]]) -> tuple[Columns, list[Denominator]]:
    """Each percentage column over the vocabulary's denominator, unless the other one holds on more of its rows:
    a whole column computed over received is the table's convention, not one error a row. A cell that holds
    over neither stays a violation (against the denominator the column uses)."""
    over: dict[str, str] = {}
    taken: list[Denominator] = []
    for key in cols.percents:
        usual = PARENT.get(key, "total")
        if usual not in cols.counts:
            continue  # not checked at all (allowed() says why)
        held: dict[str, int] = {}
        checked = 0
        for values in rows:
            p = values.get(f"%{key}")
            if not isinstance(p, Pct):
                continue
            found = {d: ratios(key, d, values) for d in denominators(key) if d in cols.counts}
            checked += any(found.values())
            for d, ratio in found.items():
                held[d] = held.get(d, 0) + (bool(ratio) and _holds(p, ratio))
        best = max(held, key=lambda d: (held[d], d == usual), default=usual)
        if best != usual and held[best] > held.get(usual, 0):
            over[key] = best
            taken.append(Denominator(key, best, usual, held[best], held.get(usual, 0), checked))
    return (replace(cols, over=over) if over else cols), taken
