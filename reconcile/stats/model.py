"""Typed statistics tables (DOMAIN §6): what `stats` computes and every renderer draws."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Counters of one table row. total = online + in_person + carried_over;
# total = resolved + in_progress + withdrawn + returned_unresolved + unclassified (convention "separate";
# the other conventions leave withdrawn/returned at 0); resolved = early + on_time + late;
# in_progress = within_time + overdue; stuck <= in_progress (an "of which" column).
COUNTS = ("total", "online", "in_person", "carried_over", "resolved", "early", "on_time", "late",
          "in_progress", "within_time", "overdue", "withdrawn", "returned_unresolved", "unclassified", "stuck")
LAYOUTS = ("official", "extended")
VIEWS = ("system", "register", "after-plan")
CONVENTIONS = ("separate", "on-time", "excluded")


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # a COUNTS key, or "on_time_early" (early + on_time, the extended layout's column)
    label: str  # message key (reconcile/data/messages.yaml)
    number: str  # as printed in the header's numbering row: "1", "2", ...


# The layouts' columns, in order. The official Biểu 06 has 11; the seed's extended appendix 12.
# Columns past the layout's own (withdrawn/returned under the official layout with the "separate"
# convention, cannot be classified, stuck) are appended by `columns_for`.
OFFICIAL = (("total", "col.total"), ("online", "col.online"), ("in_person", "col.in_person"),
            ("carried_over", "col.carried_over"), ("resolved", "col.resolved"), ("early", "col.early"),
            ("on_time", "col.on_time"), ("late", "col.late"), ("in_progress", "col.in_progress"),
            ("within_time", "col.within_time"), ("overdue", "col.overdue"))
EXTENDED = (("total", "col.total"), ("online", "col.online"), ("carried_over", "col.carried_over"),
            ("in_person", "col.in_person_new"), ("resolved", "col.resolved"), ("on_time_early", "col.on_time_early"),
            ("late", "col.late"), ("in_progress", "col.in_progress"), ("within_time", "col.within_time"),
            ("overdue", "col.overdue"), ("withdrawn", "col.withdrawn"), ("returned_unresolved", "col.returned_unresolved"))


def columns_for(layout: str, convention: str) -> tuple[Column, ...]:
    base = list(OFFICIAL if layout == "official" else EXTENDED)
    if layout == "official" and convention == "separate":
        base += [("withdrawn", "col.withdrawn"), ("returned_unresolved", "col.returned_unresolved")]
    base += [("unclassified", "col.unclassified"), ("stuck", "col.stuck")]
    return tuple(Column(k, label, str(i)) for i, (k, label) in enumerate(base, 1))


@dataclass(frozen=True, slots=True)
class Note:
    key: str  # message key
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatsRow:
    stt: int | None  # field rows are numbered 1..n; totals have none
    kind: str  # field | unknown_field | total | group
    label: str  # the field's name; a group's label; "" for the grand total (renderers print row.total)
    values: dict[str, int]  # every COUNTS key, plus on_time_early

    def value(self, key: str) -> int:
        return self.values[key]

    @property
    def on_time(self) -> tuple[int, int]:
        """(resolved early or on time, resolved): the on-time rate's parts."""
        return self.values["early"] + self.values["on_time"], self.values["resolved"]


@dataclass(frozen=True, slots=True)
class StatsTable:
    run_id: int
    as_of: str  # ISO dates
    period_from: str
    period_to: str
    view: str  # VIEWS
    layout: str  # LAYOUTS
    convention: str  # CONVENTIONS
    columns: tuple[Column, ...]
    rows: tuple[StatsRow, ...]  # field rows (numbered), then the grand total, then group sub-totals
    notes: tuple[Note, ...]  # printed under the table, the convention first

    @property
    def total(self) -> StatsRow:
        return next(r for r in self.rows if r.kind == "total")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id, "as_of": self.as_of, "period": {"from": self.period_from, "to": self.period_to},
            "view": self.view, "layout": self.layout, "convention": self.convention,
            "columns": [{"key": c.key, "label": c.label, "number": c.number} for c in self.columns],
            "rows": [{"stt": r.stt, "kind": r.kind, "label": r.label,
                      "values": {c.key: r.values[c.key] for c in self.columns},
                      "on_time_rate": _rate(*r.on_time)} for r in self.rows],
            "notes": [{"key": n.key, "params": n.params} for n in self.notes],
        }


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None
