"""check-report: a published statistics table, its columns read by meaning, against its own identities."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, Sequence

from reconcile.errors import BadInput, collect
from reconcile.sources.text import check_cells, column_name, decode, sniff_delimiter
from reconcile.sources.workbook import open_workbook, unreadable
from reconcile.stats.published import vocabulary as vocab
from reconcile.stats.published.identities import Columns, Denominator, Violation, allowed, check_row, choose_denominators
from reconcile.stats.published.numbers import (Cell, Num, Pct, decide_separator, is_blank, looks_numeric, parse_cell,
                                         parse_count, strip_footnote, text_of)
from reconcile.stats.published.prose import check_text
from reconcile.stats.published.rows import STT, Row, check_rows, kind

__all__ = ["check_report", "parse_count", "CheckResult", "Violation", "PRESETS"]

# ------------------------------------------------------------------------------ presets (DOMAIN §6)


@dataclass(frozen=True, slots=True)
class Preset:
    """An official layout: its measures in the form's order, with the form's short labels."""

    name: str
    title: str
    columns: tuple[tuple[str, str], ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.columns)

    def as_columns(self) -> Columns:
        return Columns(self.keys, (), dict(self.columns))


OFFICIAL = Preset("official", "Biểu 06 of TT 01/2020 and its successor form, 11 columns", (
    ("total", "tổng số"), ("online", "trực tuyến"), ("in_person", "trực tiếp/bưu chính"),
    ("carried_over", "kỳ trước chuyển qua"), ("resolved", "đã giải quyết"), ("early", "trước hạn"),
    ("on_time", "đúng hạn"), ("late", "trễ hạn"), ("in_progress", "đang giải quyết"), ("within_time", "trong hạn"),
    ("overdue", "quá hạn")))
EXTENDED = Preset("extended", "12 columns, withdrawn and returned apart", (
    ("total", "tổng số"), ("online", "trực tuyến"), ("carried_over", "kỳ trước chuyển qua"),
    ("in_person", "nhận trực tiếp"), ("resolved", "đã giải quyết"), ("on_time_early", "đúng hạn"),
    ("late", "trễ hạn"), ("in_progress", "đang giải quyết"), ("within_time", "trong hạn"), ("overdue", "quá hạn"),
    ("withdrawn", "rút"), ("returned", "trả lại")))
PRESETS = {x.name: x for x in (OFFICIAL, EXTENDED)}
_EXPECTED = "11 (official Biểu 06) or 12 (extended: withdrawn and returned apart)"
_NO_TABLE_HINT = "Hint: numbers pasted as one text cell or as a picture cannot be read: export the table as CSV or XLSX."
_CONVENTION = ("convention: rút, trả lại and chờ bổ sung, where the table has them, are apart from đã giải quyết and "
               "đang giải quyết, so tổng số = đã giải quyết + đang giải quyết + each of them")

# ------------------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class CheckResult:
    file: str
    layout: str  # official, extended, or header (columns read by meaning)
    layout_from: str  # how the columns were decided
    rows: int
    violations: tuple[Violation, ...]
    notes: tuple[str, ...] = ()
    confirmed: tuple[str, ...] = ()  # prose numbers found in the table
    unchecked: tuple[str, ...] = ()  # prose numbers that could not be related to the table
    columns: tuple[dict[str, str], ...] = ()  # each number column: where, header, measure (or left out)
    not_checked: tuple[str, ...] = ()  # identities the table's measures or cells do not allow, and why

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "rows": self.rows, "violations": [v.to_dict() for v in self.violations],
                "file": self.file, "layout_from": self.layout_from, "notes": list(self.notes),
                "confirmed": list(self.confirmed), "unchecked": list(self.unchecked),
                "columns": list(self.columns), "not_checked": list(self.not_checked)}


def check_report(path: str | Path, layout: str = "auto", text: str | Path | None = None,
                 sheet: str | None = None) -> CheckResult:
    """Read the table, check every row, total and remainder; with `text`, the prose's numbers too."""
    if layout != "auto" and layout not in PRESETS:
        raise BadInput(f"--layout {layout}: unknown layout. Expected auto, official or extended.")
    p = Path(path)
    table = read_table(_read(p, sheet), layout)
    identities, skipped = allowed(table.columns)
    table.columns, taken = choose_denominators(table.columns, [r.values for r in table.rows])
    notes = _denominators_taken(table, taken)
    violations, row_notes, row_unchecked = check_rows(table.columns, identities, table.rows)
    notes += row_notes
    if {"withdrawn", "returned", "supplement"} & set(table.columns.counts):
        notes.append(_CONVENTION)
    confirmed: list[str] = []
    unchecked: list[str] = []
    if text is not None:
        found = check_text(_read_text_file(Path(text)), table.columns, table.rows)
        violations += found.violations
        confirmed, unchecked = found.confirmed, found.unchecked
        if not confirmed and not unchecked:
            notes.append(f"{text}: no counts (\"N hồ sơ\", \"N HS\", \"N bộ\") or percentages found in the text")
    return CheckResult(str(p), table.layout, table.layout_from, sum(bool(r.values) for r in table.rows),
                       tuple(violations),
                       tuple(table.notes + notes), tuple(confirmed), tuple(unchecked), tuple(table.described),
                       tuple(skipped + _summarise(row_unchecked)))


def _denominators_taken(table: Table, taken: list[Denominator]) -> list[str]:
    """Say which denominator a percentage column was computed over where it is not the vocabulary's, in the
    notes and in its JSON `columns` entry (`denominator`, on every percentage column that is checked)."""
    notes = []
    chosen = {d.key: d for d in taken}
    for c in table.described:
        measure = c["measure"]
        if not measure.startswith("%") or measure == "%total":
            continue
        key = measure[1:]
        if table.columns.denominator(key) not in table.columns.counts:
            continue  # not checked: `not_checked` says why
        c["denominator"] = table.columns.denominator(key)
        d = chosen.get(key)
        if d is not None:
            notes.append(f"column {c['column']} {c['header']!r} is over {vocab.MEASURES[d.over]!r}, not "
                         f"{vocab.MEASURES[d.usual]!r}: {d.held} of {d.checked} rows hold over "
                         f"{vocab.MEASURES[d.over]!r}, {d.usual_held} over {vocab.MEASURES[d.usual]!r}")
    return notes


def _summarise(lines: list[str]) -> list[str]:
    """Rows' unchecked identities, at most 5 named and the rest counted."""
    return lines[:5] + ([f"… and {len(lines) - 5} more rows' identities not checked (cells not given)"]
                        if len(lines) > 5 else [])


# ------------------------------------------------------------------------------------ reading


@dataclass(frozen=True, slots=True)
class Grid:
    """A sheet or text file as rows of raw cells, with its merged ranges and how to name a place."""

    name: str
    sheet: str | None  # None for text files (CSV, TSV, TXT)
    cells: list[list[Any]]
    merges: tuple[tuple[int, int, int, int], ...] = ()  # 0-based, inclusive (row1, col1, row2, col2)
    lines: tuple[int, ...] = ()  # text files: the file line each row starts on

    def at(self, r: int, c: int) -> Any:
        row = self.cells[r]
        return row[c] if 0 <= c < len(row) else None

    @property
    def place(self) -> str:
        return self.name if self.sheet is None else f'{self.name}, sheet "{self.sheet}"'

    def line(self, r: int) -> int:
        return self.lines[r] if self.lines else r + 1

    def cell(self, r: int, c: int) -> str:
        return f"line {self.line(r)}, column {c + 1}" if self.sheet is None else f"cell {column_name(c)}{r + 1}"

    def rows_ref(self, r1: int, r2: int) -> str:
        word = "line" if self.sheet is None else "row"
        a, b = self.line(r1), self.line(r2)
        return f"{word} {a}" if a == b else f"{word}s {a}–{b}"

    def col(self, c: int) -> str:
        return str(c + 1) if self.sheet is None else column_name(c)

    def cols_ref(self, c1: int, c2: int) -> str:
        return f"columns {self.col(c1)}–{self.col(c2)}"


def _check_file(p: Path) -> None:
    if not p.is_file():
        raise BadInput(f"{p}: no such file." if not p.exists() else f"{p}: not a file.")


def _read(p: Path, sheet: str | None) -> Grid:
    _check_file(p)
    suffix = p.suffix.lower()
    if p.stat().st_size == 0:
        raise BadInput(f"{p}: the file is empty. Expected a statistics table: STT, label and 11 (Biểu 06) or 12 "
                       "numbers a row.")
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(p, sheet)
    if suffix not in (".csv", ".tsv", ".txt"):
        raise BadInput(f"{p}: unsupported table format {suffix or '(none)'!r}. Expected .csv, .tsv, .txt or .xlsx. "
                       "Hint: save a .xls or .ods workbook as .xlsx.")
    if sheet is not None:
        raise BadInput(f"{p}: --sheet applies to workbooks (.xlsx) only. Hint: drop --sheet.")
    text = decode(p, p.read_bytes())
    lines = text.splitlines()
    delimiter = sniff_delimiter(lines[:30]) if suffix == ".csv" else "\t"
    if delimiter == "\t":  # TSV and text never quote: a stray '"' in prose must not swallow lines
        rows = [line.split("\t") for line in lines]
        for i, row in enumerate(rows):
            check_cells(row, p.name, i + 1, "line")
        return Grid(p.name, None, rows)
    rows = []
    starts: list[int] = []  # a quoted field may hold line breaks: each record's first line
    reader, prev = csv.reader(io.StringIO(text), delimiter=delimiter), 0
    for row in reader:
        check_cells(row, p.name, prev + 1, "line")
        rows.append(row)
        starts.append(prev + 1)
        prev = reader.line_num
    return Grid(p.name, None, rows, lines=tuple(starts))


def _shown(cell: Any) -> Any:
    """A cell's value; a number formatted as a percentage (0.486 shown as 48,6%) as the text it shows."""
    v = cell.value
    fmt = str(getattr(cell, "number_format", "") or "")
    if isinstance(v, (int, float)) and not isinstance(v, bool) and "%" in fmt:
        decimals = len(fmt.partition(".")[2].partition("%")[0]) if "." in fmt else 0
        return f"{Decimal(repr(v)) * 100:.{decimals}f}".replace(".", ",") + "%"
    return v


def _read_xlsx(p: Path, sheet: str | None) -> Grid:
    import openpyxl  # merged ranges need openpyxl; the tables are small

    open_workbook(p)
    try:
        wb = openpyxl.load_workbook(p, data_only=True)
    except Exception as exc:  # openpyxl reads every sheet here: name the one that fails, if one does
        raise unreadable(p, exc) from None
    if sheet is not None and sheet not in wb.sheetnames:
        raise BadInput(f"{p.name}: sheet {sheet!r} not found. Sheets: {', '.join(map(repr, wb.sheetnames))}.")
    for name in [sheet] if sheet is not None else wb.sheetnames:
        ws = wb[name]
        cells = [[_shown(c) for c in r] for r in ws.iter_rows(min_row=1, min_col=1, max_row=ws.max_row,
                                                               max_col=ws.max_column)]
        merges = tuple((m.min_row - 1, m.min_col - 1, m.max_row - 1, m.max_col - 1) for m in ws.merged_cells.ranges)
        grid = Grid(p.name, name, cells, merges)
        if sheet is not None or any(len(cols) >= 2 for cols in _number_rows(grid)):
            return grid
    raise BadInput(f"{p.name}: no statistics table in any sheet ({', '.join(map(repr, wb.sheetnames))}): no row "
                   f"holds two numbers or more. Expected rows of a label and its numbers. {_NO_TABLE_HINT}")


# -------------------------------------------------------------------------------------- table


@dataclass
class Table:
    """A table read: its layout, how it was decided, its measures, rows, notes and each column as described."""

    layout: str
    layout_from: str
    columns: Columns
    rows: list[Row]
    notes: list[str]
    described: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Block:
    """Where the numbers are: rows first..last, number columns start..end, the label in column label."""

    first: int
    last: int
    start: int
    end: int
    label: int | None


_NUMBERING = re.compile(r"\(?([0-9]+)\)?")


def _is_numbering(cells: Sequence[Any]) -> bool:
    """A column-numbering row: (1) (2) … or 1 2 …, consecutive."""
    found = [_NUMBERING.fullmatch(text_of(c)) for c in cells if text_of(c)]  # a column without a number: blank
    nums = [int(m[1]) for m in found if m]
    return len(found) > 2 and len(nums) == len(found) and all(b == a + 1 for a, b in zip(nums, nums[1:]))


def _number_rows(grid: Grid) -> list[list[int]]:
    """Per row, the columns holding a number of any written form."""
    return [[c for c, v in enumerate(row) if looks_numeric(v)] for row in grid.cells]


def _locate(grid: Grid) -> Block:
    """The table: rows with 2+ numbers; its right edge the column most of them end on; its left edge right
    of the label (the last column of text in most rows), else where most rows' numbers start."""
    numbers = _number_rows(grid)
    rows = [r for r, cols in enumerate(numbers) if len(cols) >= 2 and not _is_numbering(grid.cells[r])]
    if not rows:
        raise BadInput(f"{grid.place}: no statistics table: no row holds two numbers or more. Expected rows of a "
                       f"label and its numbers. {_NO_TABLE_HINT}")
    end = Counter(numbers[r][-1] for r in rows).most_common(1)[0][0]
    per_column = Counter(c for r in rows for c in numbers[r])
    while per_column[end + 1] >= max(2, len(rows) / 4):  # a last column with many dashes ("Tỷ lệ": "-")
        end += 1
    rows = [r for r in rows if sum(c <= end for c in numbers[r]) >= 2]
    texty = Counter(c for r in rows for c, v in enumerate(grid.cells[r][:end])
                    if not looks_numeric(v) and not is_blank(v))
    # The label: text in most rows, with at most one column of numbers (the STT) left of it, so that a
    # stray word among the numbers ("12a") is a bad cell, not the label.
    numeric = {c for c, n in Counter(c for r in rows for c in numbers[r]).items() if 2 * n > len(rows)}
    labels = [c for c, n in texty.items() if 2 * n > len(rows) and c < end and len([x for x in numeric if x < c]) <= 1]
    label = max(labels) if labels else None
    if label is not None:
        start = label + 1
    else:
        start = Counter(numbers[r][0] for r in rows).most_common(1)[0][0]
    rows = [r for r in rows if sum(start <= c <= end for c in numbers[r]) >= 1]
    return Block(rows[0], rows[-1], start, end, label)


Header = tuple[int, int, list[list[str]]]


def _header(grid: Grid, b: Block) -> tuple[Header | None, int]:
    """((first row, last row, the header cells above each number column, top to bottom) of the header block
    right above the data, if any; the data's first row, section headings right above it included). Merged
    cells name every column they span; in text files a group label spans the empty cells right of it above a
    row of labels."""
    fill: dict[tuple[int, int], Any] = {}
    for r1, c1, r2, c2 in grid.merges:
        if r1 < b.first:
            top_left = grid.at(r1, c1)
            fill |= {(r, c): top_left for r in range(r1, min(r2, b.first - 1) + 1) for c in range(c1, c2 + 1)}
    block: list[int] = []
    r = b.first - 1
    top = b.first  # the data's first row, section headings right above it included
    while r >= 0:
        row = [fill.get((r, c), grid.at(r, c)) for c in range(max(len(grid.cells[r]), b.end + 1))]
        if _is_numbering(row[b.start:b.end + 1]):
            r -= 1
            continue
        if len({text_of(v) for v in row} - {""}) < 2:
            break
        if not any(text_of(v) and not looks_numeric(v) for v in row[b.start:b.end + 1]):
            if block:
                break
            top, r = r, r - 1  # a section heading right above the data ("I | Cấp tỉnh"), not a header row
            continue
        block.insert(0, r)
        r -= 1
    if not block:
        return None, top
    cell = {(r, c): text_of(fill.get((r, c), grid.at(r, c))) for r in block for c in range(b.start, b.end + 1)}
    if not any(r1 <= block[-1] and r2 >= block[0] for r1, _, r2, _ in grid.merges):  # a header typed unmerged
        for i, r in enumerate(block[:-1]):
            for c in range(b.start + 1, b.end + 1):
                if not cell[r, c] and cell[r, c - 1] and any(cell[x, c] for x in block[i + 1:]):
                    cell[r, c] = cell[r, c - 1]
    paths = []
    for c in range(b.start, b.end + 1):
        pieces: list[str] = []
        for r in block:
            t = strip_footnote(cell[r, c])
            if t and (not pieces or pieces[-1] != t):
                pieces.append(t)
        paths.append(pieces)
    return ((block[0], block[-1], paths) if any(paths) else None), top


@dataclass(frozen=True, slots=True)
class Column:
    index: int
    measure: str | None  # None: left out
    percent: bool
    header: str  # as written, group / leaf


def _by_meaning(grid: Grid, b: Block, paths: list[list[str]]) -> tuple[list[Column], list[str]]:
    """Each number column's measure from its header cells; unknown and repeated columns left out, named."""
    out: list[Column] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    before: str | None = None
    for i, path in enumerate(paths):
        c = b.start + i
        measure, pct = vocab.resolve(path, before) if path else (None, False)
        header = " / ".join(path) or "(empty)"
        key = f"%{measure}" if pct else str(measure)
        if measure is None:
            leaf = path[-1] if path else ""
            meaning = vocab.cell_meaning(leaf) if leaf else None
            why = ("'quá hạn' with no group saying resolved or in progress" if meaning == vocab.AMBIGUOUS else
                   "it counts something the identities do not use (procedures, services, units, digitised or "
                   "paid dossiers, ratings)" if meaning == vocab.OTHER else
                   f"not in the vocabulary (nearest: {vocab.nearest(leaf)!r})" if leaf else "no header")
            notes.append(f"column {grid.col(c)} {header!r} left out: {why}")
        elif key in seen:
            notes.append(f"column {grid.col(c)} {header!r} left out: it reads as "
                         f"{'tỷ lệ ' if pct else ''}{vocab.MEASURES[measure]!r} like column {grid.col(seen[key])}")
            measure = None
        else:
            seen[key] = c
        out.append(Column(c, measure, pct, header))
        if measure and not pct:
            before = measure
    return out, notes


def read_table(grid: Grid, layout: str = "auto") -> Table:
    """Locate the numbers, read each column's meaning (header, else a preset by position), parse the rows."""
    b = _locate(grid)
    header, top = _header(grid, b)
    b = Block(top, b.last, b.start, b.end, b.label)
    width = b.end - b.start + 1
    notes = [f"table: {grid.rows_ref(b.first, b.last)}, numbers in {grid.cols_ref(b.start, b.end)}"]
    extra = sorted({c for r in range(b.first, b.last + 1) for c, v in enumerate(grid.cells[r])
                    if c > b.end and text_of(v)})
    if extra:  # a notes column right of the numbers
        cols = grid.cols_ref(extra[0], extra[-1]) if len(extra) > 1 else f"column {grid.col(extra[0])}"
        notes.append(f"{cols} right of the numbers ignored (not counts)")
    _no_shifted_rows(grid, b)
    if header is not None:
        columns, left_out = _by_meaning(grid, b, header[2])
        if not any(c.measure for c in columns):
            _refuse_header(grid, b, header, columns)
    else:
        columns, left_out = [], []
    preset = PRESETS.get(layout)
    if preset is not None or header is None:
        chosen = preset or next((x for x in PRESETS.values() if len(x.columns) == width), None)
        if chosen is None or len(chosen.columns) != width:
            _refuse_width(grid, b, layout, chosen)
        if header is not None and preset is not None:
            _same_as_preset(grid, header, columns, chosen)
        how = "given by --layout" if preset else f"no header; {width} number columns"
        if header is not None:
            how += f"; header {grid.rows_ref(header[0], header[1])} recognised"
        positional = [Column(b.start + i, k, False, n) for i, (k, n) in enumerate(chosen.columns)]
        table = _parse(grid, b, positional, chosen.as_columns(), (chosen.name, how), notes)
        if header is None and preset is None:
            _consistent(grid, b, table, chosen)
        return table
    counts = tuple(c.measure for c in columns if c.measure and not c.percent)
    percents = tuple(c.measure for c in columns if c.measure and c.percent)
    match = next((x for x in PRESETS.values() if x.keys == counts), None)  # the form's columns, whatever beside
    measures = Columns(counts, percents, dict(match.columns) if match else None)
    return _parse(grid, b, columns, measures, (match.name if match else "header",
                                               f"header {grid.rows_ref(header[0], header[1])} recognised"),
                  notes + left_out)


def _no_shifted_rows(grid: Grid, b: Block) -> None:
    """A row with numbers right of the table's last column has its cells shifted: most often a count written
    "59,010" without quotes in a comma-separated file, split into "59" and "010". Never read it shifted."""
    problems = []
    for r in range(b.first, b.last + 1):
        row = grid.cells[r]
        if not any(looks_numeric(v) for v in row[b.end + 1:]):
            continue
        texts = [text_of(v) for v in row]
        split = next((f"{a},{z}" for a, z in zip(texts[b.start:], texts[b.start + 1:])
                      if re.fullmatch(r"[0-9]{1,3}", a) and re.fullmatch(r"[0-9]{3}", z)), None)
        why = (f"'{split}' written without quotes splits into two cells" if split and grid.sheet is None
               else "a cell too many")
        problems.append(f"{grid.place}, {grid.rows_ref(r, r)}: numbers right of the table's last column "
                        f"{grid.col(b.end)}: its cells are shifted ({why}). Expected {b.end - b.start + 1} number "
                        "columns like the other rows. Hint: quote counts that hold a comma (\"59,010\") or write "
                        "them without separators.")
    collect(problems, f"{grid.place}: {len(problems)} rows with shifted cells")


def _refuse_header(grid: Grid, b: Block, header: Header, columns: list[Column]) -> NoReturn:
    leaf = header[2][0][-1] if header[2] and header[2][0] else ""
    found = " | ".join(c.header for c in columns)
    raise BadInput(
        f"{grid.place}, {grid.rows_ref(header[0], header[1])}: header not recognised: no column names a measure; "
        f"column {grid.col(b.start)} {leaf or '(empty)'!r} is nearest to {vocab.nearest(leaf)!r}. Found: {found}. "
        "Expected header words such as tổng số, trực tuyến, kỳ trước, đã giải quyết, đúng hạn, trễ hạn, đang giải "
        "quyết, quá hạn (docs/statistics.md lists the vocabulary; case and accents do not matter). Hint: write the "
        "form's column labels, or delete the header rows to read the 11 or 12 columns of a preset by position.")


def _refuse_width(grid: Grid, b: Block, layout: str, chosen: Preset | None) -> NoReturn:
    width = b.end - b.start + 1
    pct = [c for c in range(b.start, b.end + 1)  # "48,6%", or "48,6": one or two decimals cannot be thousands
           if any("%" in text_of(grid.at(r, c)) or re.fullmatch(r"[0-9]{1,3}[,.][0-9]{1,2}", text_of(grid.at(r, c)))
                  for r in range(b.first, b.last + 1))]
    rounded = [c for c in range(b.start, b.end + 1)
               if any(re.search(r"ng[aà]n|ngh[iì]n", text_of(grid.at(r, c))) for r in range(b.first, b.last + 1))]
    cause = ""
    if pct:
        cause = f" ({len(pct)} of them percentages: column{'s' if len(pct) > 1 else ''} " \
                f"{', '.join(grid.col(c) for c in pct)})"
    elif rounded:
        cause = f" (rounded figures in column{'s' if len(rounded) > 1 else ''} " \
                f"{', '.join(grid.col(c) for c in rounded)})"
    if layout in PRESETS and chosen:
        other = [x.name for x in PRESETS.values() if len(x.columns) == width]
        raise BadInput(f"{grid.place}, {grid.rows_ref(b.first, b.last)}: {width} number columns "
                       f"({grid.cols_ref(b.start, b.end)}){cause}; expected {len(chosen.columns)} for --layout "
                       f"{layout}. Hint: " + (f"--layout {other[0]} has {width}; " if other else "")
                       + "drop --layout to read the columns by their header.")
    raise BadInput(f"{grid.place}, {grid.rows_ref(b.first, b.last)}: no header, and {width} number columns "
                   f"({grid.cols_ref(b.start, b.end)}){cause} fit no preset: expected {_EXPECTED}. Hint: keep the "
                   "table's header rows above the numbers so its columns are read by meaning.")


def _same_as_preset(grid: Grid, header: Header, columns: list[Column], chosen: Preset) -> None:
    """A header read together with --layout must say what the preset has in each column it names."""
    for col, key in zip(columns, chosen.keys):
        if col.measure is not None and (col.measure != key or col.percent):
            raise BadInput(f"{grid.place}, {grid.rows_ref(header[0], header[1])}: column {grid.col(col.index)} "
                           f"{col.header!r} reads as {vocab.MEASURES[col.measure]!r}, but --layout {chosen.name} "
                           f"has {dict(chosen.columns)[key]!r} "
                           "there. Hint: drop --layout to read the columns by their header.")


def _consistent(grid: Grid, b: Block, table: Table, chosen: Preset) -> None:
    """A table read by position must fit the preset: more than half its identity checks hold."""
    identities, _ = allowed(table.columns)
    held = total = 0
    first: str | None = None
    for r in table.rows:
        broken, _ = check_row(table.columns, identities, r.name, r.values)
        total += len(identities)
        held += len(identities) - len(broken)
        if broken and first is None:
            v = broken[0]
            first = f"{v.row}: {v.identity}, {v.left} vs {v.right}"
    if total and 2 * held <= total:
        raise BadInput(f"{grid.place}, {grid.rows_ref(b.first, b.last)}: no header, and the {len(chosen.columns)} "
                       f"number columns do not read as the {chosen.name} layout ({chosen.title}): only {held} of "
                       f"{total} identity checks hold (first: {first}). Hint: keep the table's header rows so its "
                       "columns are read by meaning, not by position.")
    table.notes.append(f"read by position as the {chosen.name} layout: {held} of {total} identity checks hold")


def _parse(grid: Grid, b: Block, columns: list[Column], cols: Columns, layout: tuple[str, str],
           notes: list[str]) -> Table:
    """Every row's cells as numbers; every problem located and collected. `layout`: its name, how it was decided."""
    problems: list[str] = []
    merged: set[tuple[int, int]] = set()
    for r1, c1, r2, c2 in grid.merges:
        if r2 >= b.first and r1 <= b.last and c2 >= b.start and c1 <= b.end:
            merged |= {(r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)}
            problems.append(f"{grid.place}, cells {column_name(c1)}{r1 + 1}:{column_name(c2)}{r2 + 1}: merged cells "
                            "among the numbers. Expected one number per cell. Hint: unmerge them and write each "
                            "column's number.")
    used = [c for c in columns if c.measure]
    sep, clash = decide_separator((text_of(grid.at(r, c.index)), grid.cell(r, c.index))
                                  for r in range(b.first, b.last + 1) for c in used
                                  if not c.percent and isinstance(grid.at(r, c.index), str))
    if clash:
        raise BadInput(f"{grid.place}: {clash}")
    if sep == ",":
        notes.append("numbers: \",\" separates thousands in this file (59,010 is 59010)")
    rows: list[Row] = []
    rounded = 0
    for r in range(b.first, b.last + 1):
        if not any(text_of(v) for v in grid.cells[r]):
            continue  # empty rows are layout
        label_at = b.label if b.label is not None else b.start - 1
        stt = text_of(grid.at(r, label_at - 1)) if label_at >= 1 else ""
        label = strip_footnote(text_of(grid.at(r, label_at))) if label_at >= 0 else ""
        if not label and stt and not STT.fullmatch(stt):  # "Tổng cộng" merged over STT and label
            stt, label = "", stt
        name = f"{stt} {label}".strip() or "no label"
        if all(not text_of(grid.at(r, c.index)) for c in used):
            if not STT.fullmatch(stt):  # a section heading ("I. Cấp huyện") or a note
                notes.append(f"{grid.rows_ref(r, r)} skipped: no numbers ({name!r})")
                if kind(stt, label)[0] == "section":  # kept without values: its rows are its section's
                    rows.append(Row(stt, label, {}, grid.rows_ref(r, r)))
                continue
            problems.append(f"{grid.place}, {grid.rows_ref(r, r)}: row {name!r} has no numbers. Expected "
                            f"{len(used)} numbers, a dash where none is given. Hint: write the numbers the source "
                            "gives, \"-\" where it gives none.")
            continue
        values: dict[str, Cell] = {}
        for c in used:
            assert c.measure is not None
            key = f"%{c.measure}" if c.percent else c.measure
            if (r, c.index) in merged:
                values[key] = None
                continue
            what = cols.pct_label(c.measure) if c.percent else cols.label(c.measure)
            try:
                cell = parse_cell(grid.at(r, c.index), sep, c.percent)
            except ValueError as exc:
                hint = ("Hint: a percentage belongs in a column headed \"Tỷ lệ\" or \"%\"."
                        if "%" in text_of(grid.at(r, c.index)) else
                        "Hint: counts are whole numbers (15.256 or 15256); \"-\" where none is given.")
                problems.append(f"{grid.place}, {grid.cell(r, c.index)}: {exc} (the column {what!r} of {name!r}). "
                                f"{hint}")
                continue
            if isinstance(cell, Pct) and not c.percent:
                problems.append(f"{grid.place}, {grid.cell(r, c.index)}: {text_of(grid.at(r, c.index))!r} is a "
                                f"percentage in the count column {what!r} of {name!r}. Hint: a percentage belongs "
                                "in a column headed \"Tỷ lệ\" or \"%\".")
                continue
            rounded += isinstance(cell, Num) and cell.slack > 0
            values[key] = cell
        rows.append(Row(stt, label, values, grid.rows_ref(r, r)))
    collect(problems, f"{grid.place}: {len(problems)} problems in the table")
    if rounded:
        notes.append(f"{rounded} rounded figures (\"ngàn\"/\"nghìn\") checked within their rounding")
    described = [{"column": grid.col(c.index), "header": c.header,
                  "measure": (("%" if c.percent else "") + c.measure) if c.measure else "(left out)"}
                 for c in columns]
    return Table(layout[0], layout[1], cols, rows, notes, described)


def _read_text_file(p: Path) -> str:
    _check_file(p)
    return decode(p, p.read_bytes())
