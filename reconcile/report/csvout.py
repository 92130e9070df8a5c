"""CSV renderer of one audit run (findings, worklists, statistics, census), and the cell texts XLSX shares."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from reconcile.model import FindingKind
from reconcile.report.data import Action, Evidence, ReportData, Worklist
from reconcile.stats.model import Column, Note, StatsRow, StatsTable
from reconcile.util.csvtext import Cell, to_csv
from reconcile.util.i18n import catalog, day, number, t

Table = tuple[list[str], list[list[Cell]]]  # header, rows

WORKLIST_HEADER = ("wl.code", "wl.applicant", "wl.step", "wl.issue", "wl.action", "wl.evidence")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


# ------------------------------------------------------------------------- cell texts (CSV and XLSX)


def value_text(value: Any, lang: str) -> str:
    """A detail or parameter as short text: ISO dates as day(), lists joined, nothing as ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return day(value, lang) if _ISO_DAY.fullmatch(value) else value
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v, lang) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


# Detail keys whose values are codes with a translation (value.<code>).
_CODED = frozenset({"status", "system_status", "paper_outcome", "register_timeliness", "system_timeliness", "side",
                    "version_basis", "problem"})


def details_text(details: dict[str, Any], lang: str) -> str:
    """A finding's details in their stored order, labelled in the language: "Phiên bản: 2; Bước hiện tại: S05"."""
    return "; ".join(f"{_label('detail.' + k, lang, k)}: {_detail_value(k, v, lang)}"
                     for k, v in details.items() if v is not None and v != "")


def _detail_value(key: str, value: Any, lang: str) -> str:
    if key == "reason" and isinstance(value, str):
        return _label("reason." + re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_"), lang, value)
    if isinstance(value, bool):
        return t(f"value.{str(value).lower()}", lang)
    if key in _CODED and isinstance(value, str):
        return _label(f"value.{value}", lang, value)
    if key == "field" and isinstance(value, str):  # date_mismatch: which date
        return _label(f"detail.{value}", lang, value)
    if key == "fields" and isinstance(value, list):  # field_mismatch: [{field, register, system}]
        return ", ".join(f"{_label('detail.' + str(f.get('field')), lang, str(f.get('field')))} "
                         f"({_label('detail.register', lang, 'register')}: {value_text(f.get('register'), lang)} ≠ "
                         f"{_label('detail.system', lang, 'system')}: {value_text(f.get('system'), lang)})"
                         if isinstance(f, dict) else value_text(f, lang) for f in value)
    return value_text(value, lang)


def _label(key: str, lang: str, fallback: str) -> str:
    """The catalog's text for `key`, or `fallback` for what the catalog does not know (a new detail)."""
    entry = catalog().get(key)
    return entry[lang] if entry else fallback


def step_text(step: str | None, name: str | None) -> str:
    return " – ".join(x for x in (step, name) if x)


def issues_text(kinds: Sequence[str], lang: str) -> str:
    return "; ".join(t(f"kind.{k}", lang) for k in kinds)


def action_text(action: Action, lang: str) -> str:
    params = {k: value_text(v, lang) for k, v in action.params.items()}
    text = t(f"action.{action.action}", lang, **params)
    return text if action.confirmed else f"{text} {t('out.unconfirmed', lang)}"


def evidence_text(ev: Evidence, lang: str) -> str:
    """Where the clerk finds the dossier on paper; "" when it is not on paper."""
    if not ev.file:
        return ""
    if ev.row is None:
        return ev.file
    if ev.sheet:
        return t("wl.evidence_sheet_row", lang, file=ev.file, sheet=ev.sheet, row=ev.row)
    return t("wl.evidence_row", lang, file=ev.file, row=ev.row)


def unit_name(unit: str, lang: str) -> str:
    return unit or t("wl.no_unit", lang)


def row_label(row: StatsRow, lang: str) -> str:
    if row.kind == "total":
        return t("row.total", lang)
    if row.kind == "group":
        return t("row.group", lang, label=row.label)
    if row.kind == "unknown_field" and not row.label:
        return t("row.unknown_field", lang)
    return row.label


def note_text(note: Note, lang: str) -> str:
    """A table's note, its counts with the language's thousands separators."""
    params = {k: number(v, lang) if isinstance(v, int) and not isinstance(v, bool) else v
              for k, v in note.params.items()}
    return t(note.key, lang, **params)


def column_header(column: Column, lang: str) -> str:
    return f"({column.number}) {t(column.label, lang)}"


# ------------------------------------------------------------------------- tables (CSV and XLSX)


def findings_table(data: ReportData, lang: str) -> Table:
    """Every finding, one per row, in the report's order (FindingKind, then dossier code)."""
    header = [t(k, lang) for k in ("out.kind", "out.kind_code", "out.severity", "wl.code", "wl.unit", "col.field",
                                   "out.details", "out.file", "out.sheet", "out.row")]
    rows: list[list[Cell]] = []
    for section in data.findings:
        for it in section.items:
            rows.append([t(f"kind.{section.kind}", lang), section.kind, t(f"severity.{section.severity}", lang),
                         it.dossier_code or "", it.unit, it.field, details_text(it.details, lang),
                         it.evidence.file or "", it.evidence.sheet or "", it.evidence.row])
    return header, rows


def worklist_header(lang: str) -> list[str]:
    return [t(k, lang) for k in WORKLIST_HEADER]


def worklist_rows(worklist: Worklist, lang: str) -> list[list[Cell]]:
    return [[it.dossier_code, it.applicant or "", step_text(it.step, it.step_name), issues_text(it.issues, lang),
             action_text(it.action, lang), evidence_text(it.evidence, lang)] for it in worklist.items]


def census_table(data: ReportData, lang: str) -> Table:
    """One row per (procedure, version, step) with open dossiers; a column per reason found."""
    order = {k.value: i for i, k in enumerate(FindingKind)}
    reasons = sorted({r for line in data.census for r in line.by_reason}, key=lambda r: (order.get(r, len(order)), r))
    header = [t(k, lang) for k in ("out.procedure", "out.procedure_name", "out.version", "out.step", "out.open",
                                   "out.orphaned")] + [t(f"kind.{r}", lang) for r in reasons]
    rows: list[list[Cell]] = [[c.procedure, c.name, c.version, c.step or "", c.open, c.orphaned,
                               *(c.by_reason.get(r, 0) for r in reasons)] for c in data.census]
    return header, rows


def stats_rows(tables: Sequence[StatsTable], lang: str) -> Table:
    """Wide form: one row per table row, a column per counter, the view and convention in front (a
    filter on the view gives one table back)."""
    columns: dict[str, Column] = {}
    for table in tables:
        for c in table.columns:
            columns.setdefault(c.key, c)
    header = [t(k, lang) for k in ("out.view", "out.convention", "col.stt", "col.field")]
    header += [column_header(c, lang) for c in columns.values()]
    rows: list[list[Cell]] = []
    for table in tables:
        own = {c.key for c in table.columns}
        for r in table.rows:
            rows.append([t(f"view.{table.view}", lang), t(f"out.convention.{table.convention}", lang), r.stt,
                         row_label(r, lang), *(r.value(k) if k in own else None for k in columns)])
    return header, rows


def report_csv(data: ReportData, lang: str) -> dict[str, str]:
    """File name -> CSV text of one run: every finding, every worklist item, the three statistics
    tables, the census."""
    wl_header = [t("wl.unit", lang), *worklist_header(lang)]
    wl_rows = [[unit_name(wl.unit, lang), *row] for wl in data.worklists for row in worklist_rows(wl, lang)]
    return {
        "findings.csv": to_csv(*findings_table(data, lang)),
        "worklists.csv": to_csv(wl_header, wl_rows),
        "stats.csv": to_csv(*stats_rows([data.stats_before, data.stats_after, data.stats_register], lang)),
        "census.csv": to_csv(*census_table(data, lang)),
    }


def stats_csv(table: StatsTable, lang: str) -> str:
    """One statistics table (`stats --format csv`), in the form of report's stats.csv."""
    return to_csv(*stats_rows([table], lang))
