"""XLSX renderer: statistics in the Biểu 06 form (merged header), findings, census, a worklist sheet per unit."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from reconcile.report.csvout import (
    Cell, census_table, findings_table, note_text, row_label, unit_name, worklist_header, worklist_rows,
)
from reconcile.report.data import ReportData
from reconcile.stats.model import StatsTable
from reconcile.util.files import fixed_zip, write_atomically
from reconcile.util.i18n import day, t

# Where each counter sits under the header's groups (message keys, top down). Both layouts use the same
# tree, only the order differs; a counter not named here goes under "other".
_GROUP_PATH: dict[str, tuple[str, ...]] = {
    "total": ("group.received",),
    **dict.fromkeys(("online", "in_person", "carried_over"), ("group.received", "group.of_which")),
    **dict.fromkeys(("resolved", "early", "on_time", "on_time_early", "late"), ("group.results", "group.resolved")),
    **dict.fromkeys(("in_progress", "within_time", "overdue"), ("group.results", "group.in_progress")),
}
_OTHER = ("group.other",)
_STATS_TOP = 5  # first header row: title, period, layout, blank above it
_NUMBER = "#,##0"  # Excel shows the reader's own separators: 15.256 in Vietnamese, 15,256 in English
_RATE = "0.0%"
_LINE = 15.0  # points per text line, for row heights (Excel does not fit the height of merged cells)
_SHEET_BAD = str.maketrans({c: "_" for c in "[]:*?/\\"})

_thin = Side(style="thin")
_BOX = Border(left=_thin, right=_thin, top=_thin, bottom=_thin)
_HEAD_FILL = PatternFill("solid", fgColor="E7E6E6")
_BOLD = Font(bold=True)
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_WRAP = Alignment(vertical="top", wrap_text=True)
_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)


# ------------------------------------------------------------------------------------ public


def write_stats_xlsx(tables: Sequence[StatsTable], lang: str, path: str | Path, rate: bool = True) -> None:
    """One sheet per table (`stats --format xlsx`); file times are the first table's as-of date."""
    if not tables:
        raise ValueError("write_stats_xlsx: no table")
    wb, used = _workbook(), set[str]()
    for table in tables:
        _stats_sheet(wb.create_sheet(_sheet_name(t(f"out.sheet.{table.view}", lang), used)), table, lang, rate)
    _save(wb, path, datetime.fromisoformat(tables[0].as_of[:10]))


def write_report_xlsx(data: ReportData, lang: str, path: str | Path) -> None:
    """The statistics (system, after the plan, paper), every finding, the census, then one worklist
    sheet per unit; file times are the run's own start."""
    wb, used = _workbook(), set[str]()
    for table in (data.stats_before, data.stats_after, data.stats_register):
        _stats_sheet(wb.create_sheet(_sheet_name(t(f"out.sheet.{table.view}", lang), used)), table, lang, True)
    header, rows = findings_table(data, lang)
    _table_sheet(wb.create_sheet(_sheet_name(t("out.sheet.findings", lang), used)), header, rows,
                 [30, 18, 10, 26, 14, 22, 50, 28, 8, 7], lang)
    header, rows = census_table(data, lang)
    _table_sheet(wb.create_sheet(_sheet_name(t("out.sheet.census", lang), used)), header, rows,
                 [24, 40, 9, 9, 10, 12] + [14] * (len(header) - 6), lang, numbers=range(4, len(header)))
    for wl in data.worklists:
        name = unit_name(wl.unit, lang)
        _table_sheet(wb.create_sheet(_sheet_name(name, used)), worklist_header(lang), worklist_rows(wl, lang),
                     [26, 24, 28, 40, 36, 36], lang, title=name)
    _save(wb, path, _utc(data.run["started_at"]))


# ------------------------------------------------------------------------------------ sheets


def _stats_sheet(ws: Worksheet, table: StatsTable, lang: str, rate: bool) -> None:
    # (group path, label, number) per column: STT and field first, then the table's columns, then the rate
    heads: list[tuple[tuple[str, ...], str, str]] = [((), t("col.stt", lang), ""), ((), t("col.field", lang), "")]
    heads += [(_GROUP_PATH.get(c.key, _OTHER), t(c.label, lang), f"({c.number})") for c in table.columns]
    if rate:
        number = {c.key: c.number for c in table.columns}
        parts = [number[k] for k in ("early", "on_time", "on_time_early") if k in number]
        heads.append(((), t("col.on_time_rate", lang), f"({'+'.join(parts)})/({number['resolved']})"))
    widths = [6.0, 30.0] + [11.0] * len(table.columns) + ([10.0] if rate else [])
    _widths(ws, widths)
    n = len(heads)

    for r, (text, font) in enumerate((
            (t("stats.title", lang, view=t(f"view.{table.view}", lang)), Font(bold=True, size=13)),
            (t("stats.period", lang, **{"from": day(table.period_from, lang), "to": day(table.period_to, lang),
                                         "as_of": day(table.as_of, lang), "run": table.run_id}), Font(italic=True)),
            (t(f"layout.{table.layout}", lang), Font(italic=True))), 1):
        _put(ws, r, 1, text, font=font, align=_CENTER)
        ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=n)

    last = _header(ws, heads, widths, lang)
    ws.freeze_panes = ws.cell(last + 1, 3)
    ws.print_title_rows = f"{_STATS_TOP}:{last}"

    r = last
    for row in table.rows:
        r += 1
        font = _BOLD if row.kind in ("total", "group") else None
        _put(ws, r, 1, row.stt, font=font, align=_CENTER, border=_BOX)
        _put(ws, r, 2, row_label(row, lang), font=font, align=_LEFT, border=_BOX)
        for i, c in enumerate(table.columns, 3):
            _put(ws, r, i, row.value(c.key), font=font, border=_BOX, number_format=_NUMBER)
        if rate:
            part, whole = row.on_time
            _put(ws, r, n, part / whole if whole else "–", font=font, border=_BOX, number_format=_RATE,
                 align=None if whole else _CENTER)
        ws.row_dimensions[r].height = _LINE * _lines(row_label(row, lang), widths[1])

    r += 1
    for note in table.notes:
        r += 1
        text = note_text(note, lang)
        _put(ws, r, 1, text, align=_WRAP)
        ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=n)
        ws.row_dimensions[r].height = _LINE * _lines(text, sum(widths))
    _print_setup(ws, lang, ws.title)


def _header(ws: Worksheet, heads: list[tuple[tuple[str, ...], str, str]], widths: list[float], lang: str) -> int:
    """The Biểu 06 header from each column's group path: a group over the run of adjacent columns that
    share it, a leaf merged down to the last header row, then the numbering row. Returns its row."""
    depth = 1 + max(len(path) for path, _, _ in heads)
    bottom = _STATS_TOP + depth - 1
    lines = [1] * depth  # text lines each header row needs

    def cell(row: int, first: int, last: int, text: str, down_to: int) -> None:
        _put(ws, row, first, text, font=_BOLD, align=_CENTER, border=_BOX, fill=_HEAD_FILL)
        if (first, row) != (last, down_to):
            ws.merge_cells(start_row=row, start_column=first, end_row=down_to, end_column=last)
        if row == down_to:
            level = row - _STATS_TOP
            lines[level] = max(lines[level], _lines(text, sum(widths[first - 1:last])))

    for level in range(depth - 1):
        i = 0
        while i < len(heads):
            key = heads[i][0][:level + 1]
            j = i
            while len(key) > level and j + 1 < len(heads) and heads[j + 1][0][:level + 1] == key:
                j += 1
            if len(key) > level:
                cell(_STATS_TOP + level, i + 1, j + 1, t(key[level], lang), _STATS_TOP + level)
            i = j + 1
    for i, (path, label, number) in enumerate(heads, 1):
        cell(_STATS_TOP + len(path), i, i, label, bottom)
        _put(ws, bottom + 1, i, number, font=Font(italic=True), align=_CENTER, border=_BOX)
    for level, k in enumerate(lines):
        ws.row_dimensions[_STATS_TOP + level].height = _LINE * k
    return bottom + 1


def _table_sheet(ws: Worksheet, header: list[str], rows: list[list[Cell]], widths: Sequence[float], lang: str,
                 numbers: range | None = None, title: str | None = None) -> None:
    """A plain list: header in row 1 (frozen, filtered, repeated on every printed page), then the rows."""
    _widths(ws, widths)
    for i, text in enumerate(header, 1):
        _put(ws, 1, i, text, font=_BOLD, align=_CENTER, border=_BOX, fill=_HEAD_FILL)
    ws.row_dimensions[1].height = _LINE * max(_lines(h, w) for h, w in zip(header, widths))
    for r, row in enumerate(rows, 2):
        for i, value in enumerate(row, 1):
            _put(ws, r, i, value, align=_WRAP, border=_BOX,
                 number_format=_NUMBER if numbers is not None and i - 1 in numbers else None)
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{len(rows) + 1}"
    ws.print_title_rows = "1:1"
    _print_setup(ws, lang, title or ws.title)


# ------------------------------------------------------------------------------------ cells, files


def _workbook() -> Workbook:
    wb = Workbook()
    wb.remove(wb.active)
    wb.properties.creator = "dossier-reconcile"
    return wb


def _put(ws: Worksheet, row: int, col: int, value: Any, *, font: Font | None = None, align: Alignment | None = None,
         border: Border | None = None, fill: PatternFill | None = None, number_format: str | None = None) -> None:
    c = ws.cell(row, col)
    if isinstance(value, str):
        c.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        c.data_type = "s"  # user data starting with "=" stays text, never a formula
    else:
        c.value = value
    if font is not None:
        c.font = font
    if align is not None:
        c.alignment = align
    if border is not None:
        c.border = border
    if fill is not None:
        c.fill = fill
    if number_format is not None and isinstance(value, int | float):
        c.number_format = number_format


def _widths(ws: Worksheet, widths: Sequence[float]) -> None:
    for i, w in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(i)].width = w


def _lines(text: str, width: float) -> int:
    """Lines `text` wraps to in a cell `width` characters wide (an estimate: a bit of slack per line)."""
    return max(1, math.ceil(len(text) / max(width - 2, 1)))


def _print_setup(ws: Worksheet, lang: str, title: str) -> None:
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape"
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as it takes
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.print_options.horizontalCentered = True
    ws.oddHeader.center.text = title.replace("&", "&&")
    ws.oddFooter.center.text = t("out.page", lang)


def _sheet_name(name: str, used: set[str]) -> str:
    """A valid sheet name for `name`, unique (case-insensitively, as Excel compares) among `used`, which
    it joins: at most 31 characters, none of []:*?/\\, no apostrophe at either end, " (2)" on collision."""
    base = name.translate(_SHEET_BAD).strip().strip("'") or "_"
    candidate, n = base[:31].rstrip().rstrip("'"), 1
    while candidate.casefold() in used or candidate.casefold() == "history":  # Excel reserves "History"
        n += 1
        suffix = f" ({n})"
        candidate = base[:31 - len(suffix)].rstrip().rstrip("'") + suffix
    used.add(candidate.casefold())
    return candidate


def _utc(stamp: str) -> datetime:
    """An ISO timestamp as naive UTC (what the xlsx core properties hold)."""
    moment = datetime.fromisoformat(stamp)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _save(wb: Workbook, path: str | Path, when: datetime) -> None:
    wb.properties.created = wb.properties.modified = when
    buf = io.BytesIO()
    wb.save(buf)
    write_atomically(path, fixed_zip(buf.getvalue(), when))
