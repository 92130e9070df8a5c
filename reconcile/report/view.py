"""The HTML and Markdown reports' shared view of one run: formatted tables, key numbers, one Jinja2 environment."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from reconcile.model import FindingKind
from reconcile.report.csvout import (
    census_table, details_text, evidence_text, note_text, row_label, unit_name, worklist_header, worklist_rows,
)
from reconcile.report.data import FindingSection, RateChange, ReportData, Worklist
from reconcile.stats.model import StatsRow, StatsTable
from reconcile.util.i18n import day, number, percent, t

ACTIONS = ("migrate", "reassign", "close", "backfill", "escalate", "none")
KINDS = tuple(k.value for k in FindingKind)


@dataclass(frozen=True, slots=True)
class Row:
    cells: list[str]
    kind: str = ""  # a StatsRow kind (total, group...) for styling; "" otherwise


@dataclass(frozen=True, slots=True)
class Table:
    head: list[str]
    rows: list[Row]
    align: str  # one letter a column: l(eft) or r(ight)
    numbers: list[str] | None = None  # the column numbering row of a statistics table


@dataclass(frozen=True, slots=True)
class Block:
    """A titled part: lines of text, a table, notes under it, and "… and N more"."""

    title: str
    lines: list[str]
    table: Table | None
    notes: list[str]
    more: str | None = None
    sub: Table | None = None  # a second, smaller table (counts by unit)


@dataclass(frozen=True, slots=True)
class View:
    title: str
    meta: list[tuple[str, str]]
    books: list[str]
    paper_only: list[str]
    cards: list[tuple[str, str, str]]  # label, value, sub-line
    by_kind: Table
    plan: Table
    stats: list[Block]
    census: Table
    findings: list[Block]
    worklists: list[Block]
    rates: Table
    age: Table
    footer: str


def ordered(counts: dict[str, int], order: Sequence[str]) -> list[tuple[str, int]]:
    """Items in `order`, unknown keys after it by name: never dict order."""
    rank = {k: i for i, k in enumerate(order)}
    return sorted(counts.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def points(before: tuple[int, int], after: tuple[int, int], lang: str) -> str:
    """after − before of two on-time rates, in points, from the rates as printed (one decimal): "+0,1"."""
    if not before[1] or not after[1]:
        return "–"
    delta = round(round(100 * after[0] / after[1], 1) - round(100 * before[0] / before[1], 1), 1)
    return ("+" if delta > 0 else "−" if delta < 0 else "±") + number(abs(delta), lang, 1)


def moment(stamp: str, lang: str) -> str:
    """The run's start as date, time and UTC offset: "01/07/2021 08:00 UTC+00:00"."""
    at = datetime.fromisoformat(stamp)
    offset = at.strftime("%z")
    return f"{day(at.date(), lang)} {at:%H:%M}" + (f" UTC{offset[:3]}:{offset[3:]}" if offset else "")


def rate_label(rate: RateChange, lang: str) -> str:
    return row_label(StatsRow(None, rate.kind, rate.label, {}), lang)


def age_label(low: int, high: int | None, lang: str) -> str:
    return t("report.age_open", lang, low=low) if high is None else t("report.age_range", lang, low=low, high=high)


def _cells(values: Sequence[Any], lang: str) -> list[str]:
    return ["" if v is None else number(v, lang) if isinstance(v, int) else str(v) for v in values]


def _more(total: int, shown: int, lang: str) -> str | None:
    return t("report.more", lang, n=number(total - shown, lang)) if total > shown else None


def stats_block(table: StatsTable, lang: str, before: StatsTable | None = None) -> Block:
    """One statistics table with its numbering row and notes; with `before`, a column of the on-time
    rate's change per row."""
    head = [t("col.stt", lang), t("col.field", lang), *(t(c.label, lang) for c in table.columns),
            t("col.on_time_rate", lang)]
    numbers = ["", "", *(f"({c.number})" for c in table.columns), ""]
    rates = {(r.kind, r.label): r.on_time for r in before.rows} if before else {}
    if before:
        head.append(t("report.rate_change", lang))
        numbers.append("")
    rows = []
    for r in table.rows:
        cells = ["" if r.stt is None else str(r.stt), row_label(r, lang),
                 *(number(r.values[c.key], lang) for c in table.columns), percent(*r.on_time, lang)]
        if before:
            cells.append(points(rates.get((r.kind, r.label), (0, 0)), r.on_time, lang))
        rows.append(Row(cells, r.kind))
    period = {"from": day(table.period_from, lang), "to": day(table.period_to, lang),
              "as_of": day(table.as_of, lang), "run": table.run_id}
    return Block(t("stats.title", lang, view=t(f"view.{table.view}", lang)),
                 [t("stats.period", lang, **period), t(f"layout.{table.layout}", lang)],
                 Table(head, rows, "ll" + "r" * (len(head) - 2), numbers), [note_text(n, lang) for n in table.notes])


def finding_block(section: FindingSection, limit: int, lang: str) -> Block:
    shown = section.items[:limit]
    by_unit = Table([t("wl.unit", lang), t("report.findings", lang)],
                    [Row([unit_name(u, lang), number(n, lang)]) for u, n in section.by_unit], "lr")
    items = Table([t(k, lang) for k in ("wl.code", "wl.unit", "col.field", "report.details", "wl.evidence")],
                  [Row([i.dossier_code or "", unit_name(i.unit, lang), i.field, details_text(i.details, lang),
                        evidence_text(i.evidence, lang)]) for i in shown], "lllll")
    count = t("report.finding_count", lang, n=number(section.count, lang))
    line = f"{t(f'severity.{section.severity}', lang)} · {count}"
    return Block(t(f"kind.{section.kind}", lang), [line], items if shown else None, [],
                 _more(section.count, len(shown), lang), by_unit)


def worklist_block(worklist: Worklist, limit: int, lang: str) -> Block:
    shown = Worklist(worklist.unit, worklist.items[:limit])
    actions: dict[str, int] = {}
    for it in worklist.items:
        actions[it.action.action] = actions.get(it.action.action, 0) + 1
    line = " · ".join([t("report.count", lang, n=number(len(worklist.items), lang)),
                       *(f"{t(f'report.action.{a}', lang)}: {number(n, lang)}" for a, n in ordered(actions, ACTIONS))])
    table = Table(worklist_header(lang), [Row(r) for r in worklist_rows(shown, lang)], "llllll")
    return Block(unit_name(worklist.unit, lang), [line], table if shown.items else None, [],
                 _more(len(worklist.items), len(shown.items), lang))


def build_view(data: ReportData, lang: str) -> View:
    """Every text of the report, formatted in `lang`; the renderers only lay it out."""
    s, run = data.summary, data.run
    tr = partial(t, lang=lang)
    before, after = s.on_time_before, s.on_time_after
    meta = [(tr("report.district"), data.district or tr("report.no_district")),
            (tr("report.period"), tr("report.period_value", **{"from": day(data.stats_before.period_from, lang),
                                                                 "to": day(data.stats_before.period_to, lang)})),
            (tr("report.run"), str(run["id"])), (tr("report.as_of"), day(run["as_of"], lang)),
            (tr("report.started_at"), moment(run["started_at"], lang)),
            (tr("report.tool"), str(run.get("tool_version", ""))),
            (tr("report.fingerprint"), str(run.get("fingerprint", "")))]
    books = [tr("report.book", book=p["book"], low=day(p["period_from"], lang), high=day(p["period_to"], lang),
                n=number(p["entries"], lang)) for p in sorted(run.get("periods", []), key=lambda p: p["book"])]
    paper_only = [tr("report.unit_count", unit=u, n=number(n, lang))
                  for u, n in sorted(run.get("paper_only_units", {}).items())]
    cards = [(tr("report.register_entries"), number(s.register_entries, lang), ""),
             (tr("report.system_dossiers"), number(s.system_dossiers, lang), ""),
             (tr("report.open_dossiers"), number(s.open_dossiers, lang), ""),
             (tr("report.orphaned"), number(s.orphaned, lang), ""),
             (tr("report.findings"), number(s.findings, lang), ""),
             (tr("report.plan_actions"), number(sum(s.plan_actions.values()), lang),
              tr("report.unconfirmed", n=number(s.plan_unconfirmed, lang)) if s.plan_unconfirmed else ""),
             (tr("report.on_time"), f"{percent(*before, lang)} → {percent(*after, lang)}",
              tr("report.points", n=points(before, after, lang)) if before[1] and after[1] else "")]
    severity = {f.kind: f.severity for f in data.findings}
    by_kind = Table([tr("report.kind"), tr("report.severity"), tr("report.findings")],
                    [Row([tr(f"kind.{k}"), tr(f"severity.{severity[k]}") if k in severity else "", number(n, lang)])
                     for k, n in ordered(s.by_kind, KINDS)], "llr")
    plan = Table([tr("report.action"), tr("report.dossiers")],
                 [Row([tr(f"report.action.{a}"), number(n, lang)]) for a, n in ordered(s.plan_actions, ACTIONS)], "lr")
    census_head, census_rows = census_table(data, lang)
    # The procedure's code and name once per procedure (a sorted list: the rows below belong to it).
    shown = [["", "", *r[2:]] if i and r[:2] == census_rows[i - 1][:2] else r for i, r in enumerate(census_rows)]
    census = Table(census_head, [Row(_cells(r, lang)) for r in shown], "llll" + "r" * (len(census_head) - 4))
    rates = Table([tr("col.field"), tr("report.before"), tr("report.after"), tr("report.rate_change")],
                  [Row([rate_label(r, lang), percent(*r.before, lang), percent(*r.after, lang),
                        points(r.before, r.after, lang)], r.kind) for r in data.rates], "lrrr")
    age = Table([tr("report.age"), tr("report.dossiers")],
                [Row([age_label(lo, hi, lang), number(n, lang)]) for lo, hi, n in data.stuck_age], "lr")
    return View(
        tr("report.title"), meta, books, paper_only, cards, by_kind, plan,
        [stats_block(data.stats_before, lang), stats_block(data.stats_after, lang, data.stats_before),
         stats_block(data.stats_register, lang)],
        census, [finding_block(f, data.limit, lang) for f in data.findings],
        [worklist_block(w, data.limit, lang) for w in data.worklists], rates, age,
        tr("report.footer", version=run.get("tool_version", ""), run=run["id"]))


@cache
def environment(autoescape: bool) -> Environment:
    """Templates in reconcile/templates; HTML autoescaped, Markdown escaped by its `md` filter."""
    env = Environment(loader=PackageLoader("reconcile.report", "templates"), autoescape=autoescape,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["md"] = md_escape
    return env


def render(template: str, lang: str, **context: Any) -> str:
    """Render a template with `t` bound to `lang` (templates' own headings come from the catalog too)."""
    tr: Callable[..., str] = partial(t, lang=lang)
    return environment(template.endswith(".html")).get_template(template).render(t=tr, lang=lang, **context)


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#"})


def md_escape(text: Any) -> str:
    """Text safe in a Markdown table cell or paragraph: punctuation Markdown reads is backslashed,
    line breaks become spaces."""
    return " ".join(str(text).split("\n")).translate(_MD_SPECIAL)
