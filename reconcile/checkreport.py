"""check-report: a published statistics table (Biểu 06 or the seed's 12 columns) against its own identities."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Collection, Sequence

from reconcile import stats_model
from reconcile.errors import BadInput, collect
from reconcile.normalize import fold, normalize_text
from reconcile.sources.text import check_cells, column_name, decode, sniff_delimiter
from reconcile.sources.workbook import open_workbook, unreadable

# ------------------------------------------------------------------------- layouts (DOMAIN §6)


@dataclass(frozen=True, slots=True)
class Identity:
    """left = Σ plus − Σ minus (left ≤ that when at_most)."""

    left: str
    plus: tuple[str, ...]
    minus: tuple[str, ...] = ()
    at_most: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (key, Vietnamese name) in the form's order
    identities: tuple[Identity, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.columns)

    def label(self, key: str) -> str:
        return dict(self.columns)[key]

    def formula(self, i: Identity) -> str:
        right = " + ".join(self.label(k) for k in i.plus) + "".join(f" − {self.label(k)}" for k in i.minus)
        return f"{self.label(i.left)} {'≤' if i.at_most else '='} {right}"


# Short column names for formulas, by the message key of stats_model's layouts (one column order).
_SHORT = {"col.total": "tổng số", "col.online": "trực tuyến", "col.in_person": "trực tiếp/bưu chính",
          "col.in_person_new": "nhận trực tiếp", "col.carried_over": "kỳ trước chuyển qua",
          "col.resolved": "đã giải quyết", "col.early": "trước hạn", "col.on_time": "đúng hạn",
          "col.on_time_early": "đúng hạn", "col.late": "trễ hạn", "col.in_progress": "đang giải quyết",
          "col.within_time": "trong hạn", "col.overdue": "quá hạn", "col.withdrawn": "rút",
          "col.returned_unresolved": "trả lại"}
OFFICIAL = Layout("official", "Biểu 06, 11 columns", tuple((k, _SHORT[m]) for k, m in stats_model.OFFICIAL), (
    Identity("total", ("online", "in_person", "carried_over")),
    Identity("resolved", ("early", "on_time", "late")),
    Identity("in_progress", ("within_time", "overdue")),
    Identity("total", ("resolved", "in_progress")),
    Identity("online", ("total",), ("carried_over",), at_most=True),
))
EXTENDED = Layout("extended", "12 columns, withdrawn and returned apart",
                  tuple((k, _SHORT[m]) for k, m in stats_model.EXTENDED), (
    Identity("total", ("online", "carried_over", "in_person")),
    Identity("resolved", ("on_time_early", "late")),
    Identity("in_progress", ("within_time", "overdue")),
    Identity("total", ("resolved", "in_progress", "withdrawn", "returned_unresolved")),
))
LAYOUTS = {x.name: x for x in (OFFICIAL, EXTENDED)}
_EXPECTED = "11 (official Biểu 06) or 12 (extended: withdrawn and returned apart)"
_NO_TABLE_HINT = "Hint: numbers pasted as one text cell or as a picture cannot be read: export the table as CSV or XLSX."

# Header words per column, compared after `fold`, one cell at a time. Columns are matched in the
# form's order, so these only need to tell a column from its neighbours.
HEADER_WORDS: dict[str, tuple[str, ...]] = {
    "total": ("tong", "nhangiaiquyet", "tiepnhan"),
    "online": ("tructuyen", "quamang"),
    "in_person": ("tructiep", "buuchinh", "tiepnhanmoi", "moitiepnhan", "nhanmoi"),
    "carried_over": ("kytruoc", "chuyensang", "chuyenqua"),
    "resolved": ("dagiaiquyet", "daxuly"),
    "early": ("truochan",),
    "on_time": ("dunghan", "dungthoihan"),
    "on_time_early": ("dunghan", "dungthoihan", "truochan"),
    "late": ("trehan", "quahan", "chamtre"),
    "in_progress": ("danggiaiquyet", "chuagiaiquyet", "dangxuly"),
    "within_time": ("tronghan", "chuadenhan"),
    "overdue": ("quahan",),
    "withdrawn": ("rut",),
    "returned_unresolved": ("tralai", "khonggiaiquyet", "tuchoi"),
}
# Words that name a column in prose, compared word by word after `fold`.
TEXT_WORDS: dict[str, tuple[str, ...]] = {
    "total": ("tong so", "nhan giai quyet"),
    "online": ("truc tuyen", "qua mang"),
    "in_person": ("truc tiep", "tiep nhan moi", "buu chinh"),
    "carried_over": ("ky truoc",),
    "resolved": ("da giai quyet",),
    "early": ("truoc han",),
    "on_time": ("dung han",),
    "on_time_early": ("dung han",),
    "late": ("tre han", "qua han"),
    "in_progress": ("dang giai quyet",),
    "within_time": ("trong han",),
    "overdue": ("qua han",),
    "withdrawn": ("rut",),
    "returned_unresolved": ("tra lai",),
}
# The denominator of a column's percentage in prose ("đúng hạn ... chiếm 78,4%" is of the resolved);
# columns not listed are shares of the total.
PARENT = {"early": "resolved", "on_time": "resolved", "on_time_early": "resolved", "late": "resolved",
          "within_time": "in_progress", "overdue": "in_progress", "total": None}

# ------------------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class Violation:
    row: str  # STT and label as printed, or a remainder such as "Tổng lĩnh vực đất đai − (13)"
    identity: str
    left: int
    right: int

    @property
    def difference(self) -> int:
        return self.left - self.right

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "identity": self.identity, "left": self.left, "right": self.right,
                "difference": self.difference}


@dataclass(frozen=True, slots=True)
class CheckResult:
    file: str
    layout: str
    layout_from: str  # how the layout was decided
    rows: int
    violations: tuple[Violation, ...]
    notes: tuple[str, ...] = ()
    confirmed: tuple[str, ...] = ()  # prose numbers found in the table
    unchecked: tuple[str, ...] = ()  # prose numbers that could not be related to the table

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "rows": self.rows, "violations": [v.to_dict() for v in self.violations],
                "file": self.file, "layout_from": self.layout_from, "notes": list(self.notes),
                "confirmed": list(self.confirmed), "unchecked": list(self.unchecked)}


def check_report(path: str | Path, layout: str = "auto", text: str | Path | None = None,
                 sheet: str | None = None) -> CheckResult:
    """Read the table, check every row, sub-total and remainder; with `text`, the prose's numbers too."""
    if layout != "auto" and layout not in LAYOUTS:
        raise BadInput(f"--layout {layout}: unknown layout. Expected auto, official or extended.")
    p = Path(path)
    table = read_table(_read(p, sheet), layout)
    violations, notes = check_rows(table.layout, table.rows)
    confirmed: list[str] = []
    unchecked: list[str] = []
    if text is not None:
        found = check_text(_read_text_file(Path(text)), table.layout, table.rows)
        violations += found.violations
        confirmed, unchecked = found.confirmed, found.unchecked
        if not confirmed and not unchecked:
            notes.append(f"{text}: no counts (\"N hồ sơ\") or percentages found in the text")
    return CheckResult(str(p), table.layout.name, table.layout_from, len(table.rows), tuple(violations),
                       tuple(table.notes + notes), tuple(confirmed), tuple(unchecked))


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
        cells = [list(r) for r in ws.iter_rows(min_row=1, min_col=1, max_row=ws.max_row, max_col=ws.max_column,
                                               values_only=True)]
        merges = tuple((m.min_row - 1, m.min_col - 1, m.max_row - 1, m.max_col - 1) for m in ws.merged_cells.ranges)
        grid = Grid(p.name, name, cells, merges)
        if sheet is not None or any(len(cols) >= 2 for cols in _number_rows(grid)):
            return grid
    raise BadInput(f"{p.name}: no statistics table in any sheet ({', '.join(map(repr, wb.sheetnames))}): no row "
                   f"ends in numbers. Expected rows of STT, label and {_EXPECTED} numbers. {_NO_TABLE_HINT}")


# ------------------------------------------------------------------------------------ numbers

_PLAIN = re.compile(r"[0-9]+")
_GROUPED = re.compile(r"[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]{1,3}(?: [0-9]{3})+")
_DASHES = {"-", "–", "—"}  # "none" in published tables


def parse_count(v: Any) -> int | None:
    """A whole count from a cell: 15256, 15.256, 15 256, "-" (none); None when empty. Raises ValueError."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a count")
    if isinstance(v, int) and v >= 0:
        return v
    if isinstance(v, float) and v.is_integer() and v >= 0:
        return int(v)
    if isinstance(v, (int, float)):
        raise ValueError(f"{v:g} is not a count")
    s = normalize_text(v) or ""
    if not s:
        return None
    if s in _DASHES:
        return 0
    if _PLAIN.fullmatch(s) or _GROUPED.fullmatch(s):
        return int(re.sub(r"[^0-9]", "", s))
    raise ValueError(f"{s!r} is not a count" + (' ("," is the decimal separator in Vietnamese)' if "," in s else ""))


def _try_count(v: Any) -> int | None:
    try:
        return parse_count(v)
    except ValueError:
        return None


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return (normalize_text(v) or "") if v is not None else ""


_NUMBERING = re.compile(r"\(?([0-9]+)\)?")


def _is_numbering(cells: Sequence[Any]) -> bool:
    """A column-numbering row: (1) (2) … or 1 2 …, consecutive."""
    found = [_NUMBERING.fullmatch(_text(c)) for c in cells]
    nums = [int(m[1]) for m in found if m]
    return len(found) > 2 and len(nums) == len(found) and all(b == a + 1 for a, b in zip(nums, nums[1:]))


def _number_rows(grid: Grid) -> list[list[int]]:
    """Per row, the columns holding a count."""
    return [[c for c, v in enumerate(row) if _try_count(v) is not None] for row in grid.cells]


# -------------------------------------------------------------------------------------- table


@dataclass(frozen=True, slots=True)
class Row:
    stt: str
    label: str
    values: tuple[int, ...]
    where: str  # "line 14" / 'row 14' for notes

    @property
    def name(self) -> str:
        return f"{self.stt} {self.label}".strip() or self.where

    @property
    def ref(self) -> str:
        return f"({self.stt})" if self.stt else self.name


@dataclass(frozen=True, slots=True)
class Table:
    layout: Layout
    layout_from: str
    rows: list[Row]
    notes: list[str]


def read_table(grid: Grid, layout: str = "auto") -> Table:
    """Locate the numbers, recognise the layout (header, else column count), parse the rows."""
    first, last, start, end = _locate(grid)
    chosen, how = _layout(grid, layout, _header(grid, first, start, end), first, last, start, end)
    notes = [f"table: {grid.rows_ref(first, last)}, numbers in {grid.cols_ref(start, end)}"]
    extra = sorted({c for r in range(first, last + 1) for c, v in enumerate(grid.cells[r]) if c > end and _text(v)})
    if extra:  # a ratio or notes column: not part of either layout
        cols = grid.cols_ref(extra[0], extra[-1]) if len(extra) > 1 else f"column {grid.col(extra[0])}"
        notes.append(f"{cols} right of the numbers ignored (not counts)")
    problems: list[str] = []
    merged: set[tuple[int, int]] = set()
    for r1, c1, r2, c2 in grid.merges:
        if r2 >= first and r1 <= last and c2 >= start and c1 <= end:
            merged |= {(r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)}
            problems.append(f"{grid.place}, cells {column_name(c1)}{r1 + 1}:{column_name(c2)}{r2 + 1}: merged cells among "
                            "the numbers. Expected one number per cell. Hint: unmerge them and write each column's "
                            "number.")
    rows: list[Row] = []
    for r in range(first, last + 1):
        if not any(_text(v) for v in grid.cells[r]):
            continue  # empty rows are layout
        stt, label = (_text(grid.at(r, start - 2)) if start >= 2 else ""), _text(grid.at(r, start - 1))
        if not label and stt and not _STT.fullmatch(stt):  # "Tổng cộng" merged over STT and label
            stt, label = "", stt
        name = f"{stt} {label}".strip() or "no label"
        if all(_try_count(grid.at(r, c)) is None for c in range(start, end + 1)):
            if not _STT.fullmatch(stt):  # a section heading ("I. Cấp huyện") or a note
                notes.append(f"{grid.rows_ref(r, r)} skipped: no numbers ({name!r})")
                continue
            problems.append(f"{grid.place}, {grid.rows_ref(r, r)}: row {name!r} has no numbers. Expected "
                            f"{end - start + 1} numbers, 0 when none. Hint: write 0 where nothing was counted.")
            continue
        values: list[int] = []
        for key, c in zip(chosen.keys, range(start, end + 1)):
            n = 0
            if (r, c) not in merged:
                column = f"the column {chosen.label(key)!r} of {name!r}"
                try:
                    parsed = parse_count(grid.at(r, c))
                except ValueError:
                    shown = _text(grid.at(r, c))
                    why = (' is not a whole number: "," is the decimal separator in Vietnamese' if "," in shown
                           else " is not a count")
                    problems.append(f"{grid.place}, {grid.cell(r, c)}: {shown!r} in {column}{why}. Expected a whole "
                                    "number such as 15.256 or 15256. Hint: counts have no decimals; \".\" separates "
                                    "thousands.")
                else:
                    if parsed is None:
                        problems.append(f"{grid.place}, {grid.cell(r, c)}: empty cell in {column}. Expected a "
                                        "number, 0 when none. Hint: write 0 where nothing was counted.")
                    n = parsed or 0
            values.append(n)
        rows.append(Row(stt, label, tuple(values), grid.rows_ref(r, r)))
    collect(problems, f"{grid.place}: {len(problems)} problems in the table")
    return Table(chosen, how, rows, notes)


_STT = re.compile(r"[0-9]+\.?")


def _locate(grid: Grid) -> tuple[int, int, int, int]:
    """(first row, last row, first column, last column) of the numbers: the right edge most rows end
    on, as wide as the longest run of counts ending there; rows with 2+ counts in it bound the table."""
    numbers = _number_rows(grid)
    ends = Counter(cols[-1] for cols in numbers if len(cols) >= 2)
    if ends:
        end = ends.most_common(1)[0][0]
        runs = []
        for r, cols in enumerate(numbers):
            n, have = 0, set(cols)
            while end - n in have:
                n += 1
            if n and not _is_numbering(grid.cells[r][end - n + 1:end + 1]):
                runs.append(n)
        start = end - max(runs, default=0) + 1
        data = [r for r, cols in enumerate(numbers) if sum(start <= c <= end for c in cols) >= 2
                and not _is_numbering(grid.cells[r][start:end + 1])]
        if data:
            return data[0], data[-1], start, end
    raise BadInput(f"{grid.place}: no statistics table: no row ends in numbers. Expected rows of STT, label and "
                   f"{_EXPECTED} numbers. {_NO_TABLE_HINT}")


def _header(grid: Grid, first: int, start: int, end: int) -> tuple[int, int, list[str]] | None:
    """(first row, last row, text per number column) of the header block right above the data, if any."""
    fill: dict[tuple[int, int], Any] = {}
    for r1, c1, r2, c2 in grid.merges:  # a merged group label names every column it spans
        if r1 < first:
            top_left = grid.at(r1, c1)
            fill |= {(r, c): top_left for r in range(r1, min(r2, first - 1) + 1) for c in range(c1, c2 + 1)}
    block: list[int] = []
    r = first - 1
    while r >= 0:
        row = [fill.get((r, c), grid.at(r, c)) for c in range(max(len(grid.cells[r]), end + 1))]
        if _is_numbering(row[start:end + 1]):
            r -= 1
            continue
        if len({_text(v) for v in row} - {""}) < 2:
            break
        block.insert(0, r)
        r -= 1
    if not block:
        return None
    texts = []
    for c in range(start, end + 1):
        pieces: list[str] = []
        for r in block:
            t = _text(fill.get((r, c), grid.at(r, c)))
            if t and (not pieces or pieces[-1] != t):
                pieces.append(t)
        texts.append(" / ".join(pieces))
    return (block[0], block[-1], texts) if any(texts) else None


def _layout(grid: Grid, wanted: str, header: tuple[int, int, list[str]] | None, first: int, last: int,
            start: int, end: int) -> tuple[Layout, str]:
    """The layout asked for, or the one as wide as the numbers; a header must name its columns in order."""
    width = end - start + 1
    chosen = LAYOUTS.get(wanted) or next((x for x in LAYOUTS.values() if len(x.columns) == width), None)
    found = f" Found: {' | '.join(t or '(empty)' for t in header[2])}." if header else ""
    if chosen is None or len(chosen.columns) != width:
        expected = f"{len(chosen.columns)} for --layout {wanted}" if chosen else _EXPECTED
        raise BadInput(f"{grid.place}, {grid.rows_ref(first, last)}: found {width} number columns "
                       f"({grid.cols_ref(start, end)}); expected {expected}.{found} Hint: remove extra columns "
                       "(percentages, notes) or add the missing ones.")
    given = "given by --layout" if wanted != "auto" else ""
    if header is None:
        return chosen, given or f"no header; {width} number columns"
    h1, h2, texts = header
    wrong = [i for i, key in enumerate(chosen.keys)
             if not any(w in fold(t) for w in HEADER_WORDS[key] for t in texts[i].split(" / "))]
    if wrong:
        i = wrong[0]
        raise BadInput(
            f"{grid.place}, {grid.rows_ref(h1, h2)}: header not recognised: column {grid.col(start + i)} "
            f"{texts[i] or '(empty)'!r} is not {chosen.label(chosen.keys[i])!r}"
            + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "") + f".{found} Expected the {chosen.name} "
            f"layout ({chosen.title}): {' | '.join(n for _, n in chosen.columns)}. Hint: keep the form's column "
            "order and labels (case and accents do not matter), or delete the header rows to check by column count.")
    return chosen, (given + "; " if given else "") + f"header {grid.rows_ref(h1, h2)} recognised"


# ------------------------------------------------------------------------------------- checks


def _kind(label: str) -> tuple[str, str]:
    """("grand", "") for Tổng / Tổng cộng / Cộng, ("group", key) for Tổng lĩnh vực X, else ("detail", "")."""
    words = label.split()
    head = fold(words[0]) if words else ""
    if head == "cong" and len(words) == 1:
        return "grand", ""
    if head != "tong":
        return "detail", ""
    rest = words[1:]
    while rest and fold(rest[0]) in ("cong", "so"):
        rest = rest[1:]
    key = fold(" ".join(rest)).removeprefix("linhvuc")
    return ("group", key) if key else ("grand", "")


def _add(rows: Sequence[Sequence[int]], width: int) -> tuple[int, ...]:
    return tuple(sum(r[i] for r in rows) for i in range(width))


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


def _identities(layout: Layout, name: str, values: Sequence[int]) -> list[Violation]:
    v = dict(zip(layout.keys, values))
    out = []
    for i in layout.identities:
        left, right = v[i.left], sum(v[k] for k in i.plus) - sum(v[k] for k in i.minus)
        if (left > right) if i.at_most else (left != right):
            out.append(Violation(name, layout.formula(i), left, right))
    return out


def _remainder(layout: Layout, name: str, values: Sequence[int], skip: Collection[str] = ()) -> list[Violation]:
    """What a sub-total leaves for its rows not shown: no column below 0, every identity holding."""
    out = [Violation(name, f"{label} ≥ 0", n, 0) for (key, label), n in zip(layout.columns, values)
           if n < 0 and key not in skip]
    return out + _identities(layout, name, values)


def check_rows(layout: Layout, rows: list[Row]) -> tuple[list[Violation], list[str]]:
    """Every row's identities; sub-totals against their rows (all shown) or their remainders (rows missing)."""
    width = len(layout.columns)
    kinds = [_kind(r.label) for r in rows]
    details = [r for r, (k, _) in zip(rows, kinds) if k == "detail"]
    grands = [r for r, (k, _) in zip(rows, kinds) if k == "grand"]
    groups = [(r, key, [d for d in details if key in fold(d.label)]) for r, (k, key) in zip(rows, kinds)
              if k == "group"]
    complete, notes = _completeness(details)
    out: dict[int, list[Violation]] = {id(r): _identities(layout, r.name, r.values) for r in rows}
    for g, key, members in groups:
        if not members:
            notes.append(f"{g.name}: no row's label contains {' '.join(g.label.split()[1:])!r}: only its own "
                         "identities are checked")
        elif complete:
            out[id(g)] += _against(layout, g, members)
        else:
            notes.append(f"{g.name}: its rows by label: {', '.join(m.ref for m in members)}")
            out[id(g)] += _remainder(layout, f"{g.name} − {' − '.join(_refs(members))}",
                                     _minus(g.values, _add([m.values for m in members], width)))
    if grands:
        grand = grands[0]
        for other in grands[1:]:
            out[id(other)] += [Violation(other.name, f"{label}: {other.name} = {grand.name}", a, b)
                               for label, a, b in zip([n for _, n in layout.columns], other.values, grand.values)
                               if a != b]
        if complete:
            out[id(grand)] += _against(layout, grand, details)
        else:
            exceeded: set[str] = set()
            for g, _, _ in groups:
                for (key, label), a, b in zip(layout.columns, g.values, grand.values):
                    if a > b:
                        exceeded.add(key)
                        out[id(g)].append(Violation(g.name, f"{label}: {g.name} ≤ {grand.name}", a, b))
            grouped = [d for d in details if any(d in m for _, _, m in groups)]
            overlap = any(sum(d in m for _, _, m in groups) > 1 for d in details)
            parts = details if overlap else [g for g, _, _ in groups] + [d for d in details if d not in grouped]
            if overlap:
                notes.append(f"{grand.name}: some rows fall under two group sub-totals: its remainder is taken "
                             "over the rows alone")
            if parts:
                names = [g.name for g in parts if g not in details] + _refs([d for d in parts if d in details])
                notes.append(f"{grand.name}: its remainder is taken after {', '.join(names)}")
                out[id(grand)] += _remainder(layout, f"{grand.name} − {' − '.join(names)}",
                                             _minus(grand.values, _add([p.values for p in parts], width)), exceeded)
    return [v for r in rows for v in out[id(r)]], notes


def _minus(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    return tuple(x - y for x, y in zip(a, b))


def _against(layout: Layout, total: Row, parts: list[Row]) -> list[Violation]:
    sums = _add([p.values for p in parts], len(layout.columns))
    formula = " + ".join(_refs(parts))
    return [Violation(total.name, f"{label}: {total.name} = {formula}", a, b)
            for (_, label), a, b in zip(layout.columns, total.values, sums) if a != b]


def _completeness(details: list[Row]) -> tuple[bool, list[str]]:
    """Whether every row of the table is shown: its STT run 1..n without gaps or repeats."""
    if not details:
        return False, []
    nums = [int(d.stt.rstrip(".")) if _STT.fullmatch(d.stt) else None for d in details]
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


# -------------------------------------------------------------------------------------- prose


@dataclass(frozen=True, slots=True)
class TextCheck:
    violations: list[Violation]
    confirmed: list[str]
    unchecked: list[str]


def _read_text_file(p: Path) -> str:
    _check_file(p)
    return decode(p, p.read_bytes())


# A count is a number followed by "hồ sơ" (the table's unit: dates and decree numbers are not);
# a percentage is "78,4%" ("," is the decimal separator).
_TOKEN = re.compile(r"(?<![0-9.,])(?:(?P<pct>[0-9]{1,3}(?:,[0-9]+)?)\s?%|"
                    r"(?P<count>[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+)(?=\s+hồ\s+sơ\b))", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.;!?])\s+")


@dataclass(frozen=True, slots=True)
class _Claim:
    text: str  # as written: "9.278" or "78,4"
    value: int
    keys: tuple[str, ...]  # columns its words name
    matches: tuple[tuple[int, tuple[str, ...]], ...]  # (table row, columns summed)


def check_text(text: str, layout: Layout, rows: list[Row]) -> TextCheck:
    """Counts ("9.278 hồ sơ") confirmed when in the table; percentages checked when numerator and
    denominator are cells of one row. Lines holding a tab are table rows and are skipped."""
    table = [(r.name, dict(zip(layout.keys, r.values))) for r in rows]
    kinds = [_kind(r.label) for r in rows]
    grand = next((r for r, (k, _) in zip(rows, kinds) if k == "grand"), None)
    if grand is not None:  # "the other fields" of a report: grand total minus one group
        table += [(f"{grand.name} − {r.name}", {k: grand_v - v for k, grand_v, v in
                                                 zip(layout.keys, grand.values, r.values)})
                  for r, (k, _) in zip(rows, kinds) if k == "group"]
    out = TextCheck([], [], [])
    for n, line in enumerate(text.splitlines(), 1):
        if "\t" not in line:
            _check_paragraph(n, normalize_text(line) or "", layout, table, out)
    return out


def _named(words: str, layout: Layout) -> tuple[str, ...]:
    padded = " " + " ".join(filter(None, (fold(w) for w in words.split()))) + " "
    return tuple(k for k in layout.keys if any(f" {w} " in padded for w in TEXT_WORDS[k]))


def _find(value: int, keys: tuple[str, ...], layout: Layout,
          table: list[tuple[str, dict[str, int]]]) -> tuple[tuple[int, tuple[str, ...]], ...]:
    found: list[tuple[int, tuple[str, ...]]] = [
        (i, (k,)) for i, (_, v) in enumerate(table) for k in keys or layout.keys if v[k] == value]
    if not found and len(keys) > 1:  # "rút và trả lại là 650": the columns it names, summed
        found = [(i, keys) for i, (_, v) in enumerate(table) if sum(v[k] for k in keys) == value]
    return tuple(found)


def _check_paragraph(n: int, line: str, layout: Layout, table: list[tuple[str, dict[str, int]]],
                     out: TextCheck) -> None:
    counts: list[_Claim] = []
    percents: list[tuple[str, _Claim | None]] = []
    for sentence in _SENTENCE.split(line):
        at, pending = 0, None
        for m in _TOKEN.finditer(sentence):
            if m["count"]:
                value = int(m["count"].replace(".", ""))
                keys = _named(sentence[at:m.start()], layout)
                pending = _Claim(m["count"], value, keys, _find(value, keys, layout, table))
                counts.append(pending)
            else:
                percents.append((m["pct"], pending))
                pending = None
            at = m.end()
    # The row a paragraph speaks of: the one most of its counts come from.
    votes = Counter(i for c in counts for i in {i for i, _ in c.matches}).most_common(2)
    context = votes[0][0] if votes and (len(votes) == 1 or votes[0][1] > votes[1][1]) else None

    def ranked(c: _Claim) -> list[tuple[int, tuple[str, ...]]]:
        return sorted(c.matches, key=lambda m: m[0] != context)

    def cols(keys: tuple[str, ...]) -> str:
        return " + ".join(layout.label(k) for k in keys)

    for c in counts:
        if c.matches:
            i, keys = ranked(c)[0]
            out.confirmed.append(f"line {n}: {c.text} hồ sơ = {cols(keys)} of {_quoted(table[i][0])}")
        elif c.keys and _find(c.value, (), layout, table):
            out.unchecked.append(f"line {n}: {c.text} hồ sơ: in the table, but not as {cols(c.keys)}")
        else:
            out.unchecked.append(f"line {n}: {c.text} hồ sơ: not in the table")
    for pct, claim in percents:
        if claim is None:
            out.unchecked.append(f"line {n}: {pct}%: no count (\"N hồ sơ\") before it in the sentence")
            continue
        printed = Fraction(Decimal(pct.replace(",", ".")))
        half = Fraction(1, 2 * 10 ** len(pct.partition(",")[2]))  # half a unit of the last digit printed
        candidates = []
        for i, keys in ranked(claim):
            parents = {PARENT.get(k, "total") for k in keys}
            parent = parents.pop() if len(parents) == 1 else None
            if parent in layout.keys and table[i][1][parent]:
                candidates.append((i, keys, parent, Fraction(100 * claim.value, table[i][1][parent])))
        if not candidates:
            out.unchecked.append(f"line {n}: {pct}%: its count {claim.text} is not in the table" if not claim.matches
                                 else f"line {n}: {pct}%: {claim.text} is in a column without a denominator")
            continue
        good = [x for x in candidates if abs(printed - x[3]) <= half]
        i, keys, parent, exact = (good or candidates)[0]
        shown = f"{cols(keys)} / {layout.label(parent)}"
        if good:
            out.confirmed.append(f"line {n}: {pct}% = {shown} of {_quoted(table[i][0])} ({claim.value} / "
                                 f"{table[i][1][parent]} = {_pct(exact)}%)")
        else:
            out.violations.append(Violation(
                table[i][0], f"text line {n}: {pct}% = {shown} (in tenths of a percent)",
                _tenths(printed), _tenths(exact)))


def _quoted(name: str) -> str:
    return f'"{name}"'


def _tenths(x: Fraction) -> int:
    return int((Decimal(x.numerator) * 10 / Decimal(x.denominator)).quantize(Decimal(1), ROUND_HALF_UP))


def _pct(x: Fraction) -> str:
    return str((Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)).replace(
        ".", ",")
