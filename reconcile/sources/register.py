"""Paper register loader: CSV/XLSX books to one Arrow table of raw cells with their locations."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from jsonschema import Draft202012Validator

from reconcile.errors import BadInput, collect
from reconcile.sources.csvio import line_chunks, line_offset
from reconcile.sources.text import MAX_CELL_CHARS, check_cells, column_name, decode, long_cell, sniff_delimiter
from reconcile.sources.workbook import open_workbook, password_protected, read_sheet
from reconcile.util import yamlio
from reconcile.util.normalize import fold

# Canonical register fields and the headers that name them (DOMAIN §5), compared after `fold`.
HEADERS: dict[str, tuple[str, ...]] = {
    "stt": ("STT", "Số thứ tự", "Số TT"),
    "dossier_code": ("Mã hồ sơ", "Mã HS", "Số hồ sơ", "Mã số hồ sơ"),
    "procedure": ("Tên TTHC", "Tên thủ tục hành chính", "Thủ tục hành chính", "Tên thủ tục"),
    "quantity": ("Số lượng hồ sơ (bộ)", "Số lượng hồ sơ", "Số lượng"),
    "applicant": ("Tên cá nhân, tổ chức", "Tên tổ chức, cá nhân", "Người nộp", "Họ tên người nộp"),
    "address": ("Địa chỉ, số điện thoại", "Địa chỉ", "Địa chỉ, điện thoại"),
    "agency": ("Cơ quan chủ trì giải quyết", "Cơ quan giải quyết", "Đơn vị giải quyết"),
    "received_at": ("Nhận hồ sơ", "Ngày nhận hồ sơ", "Ngày nhận"),
    "due_at": ("Hẹn trả kết quả", "Ngày hẹn trả kết quả", "Ngày hẹn trả"),
    "transferred_at": ("Chuyển hồ sơ đến cơ quan giải quyết", "Chuyển hồ sơ", "Ngày chuyển"),
    "returned_at": ("Trả kết quả", "Ngày trả kết quả", "Ngày trả"),
    "signed": ("Ký nhận",),
    "note": ("Ghi chú",),
}
FIELDS = tuple(HEADERS)
REQUIRED = ("dossier_code", "received_at")
HEADER_SCAN_ROWS = 30
MAX_LISTED = 10  # cells or ranges named in one message


@dataclass(frozen=True, slots=True)
class RegisterMapping:
    """What `--register-mapping FILE` may say about a layout the defaults do not recognise."""

    columns: dict[str, str] = field(default_factory=dict)  # canonical field -> header as written
    header_row: int | None = None  # 1-based
    sheets: tuple[str, ...] = ()
    period: tuple[date, date] | None = None
    book: str | None = None
    hidden_sheets: str | None = None  # "skip" or "read"; None reads them with a warning


BATCH_ROWS = 100_000  # rows per Arrow batch: bounded memory (a DuckDB store takes all batches in one INSERT)


@dataclass
class RegisterData:
    """Opened register books: headers located and checked; rows are read batch by batch."""

    files: list[str]
    warnings: list[str]
    periods: dict[str, tuple[date, date]]  # book -> declared period (others are derived later)
    _parts: list[tuple[str, Callable[[], Iterator[pa.Table]]]] = field(default_factory=list)  # (book, batches)
    _ready: pa.Table | None = None  # rows given whole, book and entry_id included (tests, simulations)

    @classmethod
    def from_table(cls, table: pa.Table) -> "RegisterData":
        return cls([], [], {}, _ready=table)

    def batches(self) -> Iterator[pa.Table]:
        """String columns FIELDS + source_file, sheet, row_no, book, entry_id (1.. across all books)."""
        if self._ready is not None:
            yield self._ready
            return
        next_id = 1
        for book, batches in self._parts:
            for t in batches():
                n = t.num_rows
                t = t.append_column("book", _repeat(book, n))
                yield t.append_column("entry_id", pa.array(range(next_id, next_id + n), pa.int32()))
                next_id += n

    @property
    def table(self) -> pa.Table:
        """Every row at once (tests and small registers)."""
        parts = list(self.batches())
        return pa.concat_tables(parts) if parts else _rows_to_table([], 1, {}, "", None).append_column(
            "book", pa.array([], pa.string())).append_column("entry_id", pa.array([], pa.int32()))


_DATE = {"type": "string", "format": "date", "hint": "write the date as YYYY-MM-DD"}
# The shape of a register mapping, every key and type (file:line:col for each problem).
REGISTER_MAPPING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "columns": {"type": "object", "additionalProperties": False,
                    "properties": {f: {"type": "string", "minLength": 1} for f in FIELDS}},
        "header_row": {"type": "integer", "minimum": 1, "maximum": 1_048_576},  # Excel's last row
        "sheets": {"type": "array", "items": {"type": ["string", "integer"]},
                   "hint": 'a list of sheet names: ["Sổ 2021"]'},
        "period": {"type": "object", "additionalProperties": False, "required": ["from", "to"],
                   "properties": {"from": _DATE, "to": _DATE}},
        "book": {"type": "string", "minLength": 1},
        "hidden_sheets": {"enum": ["skip", "read"], "hint": "skip (leave hidden sheets out) or read (read them, "
                                                            "with a warning)"},
    },
}
_REGISTER_MAPPING = Draft202012Validator(REGISTER_MAPPING_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
REGISTER_MAPPING_HINT = 'Hint: see "Paper register" in docs/file-formats.md (--register-mapping).'


def load_register_mapping(path: str | Path) -> RegisterMapping:
    """A register mapping file, its every key and type checked (file:line:col, exit 2)."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: no such file.")
    node, data = yamlio.load(p)
    if not isinstance(data, dict):
        raise BadInput(f"{p}:1:1: expected a mapping with 'columns'. {REGISTER_MAPPING_HINT}")
    problems = yamlio.schema_problems(str(p), node, _REGISTER_MAPPING, data, REGISTER_MAPPING_HINT)
    period = data.get("period")
    if not problems and period is not None and period["from"] > period["to"]:
        problems.append(f"{yamlio.at(str(p), yamlio.value_node(node, 'period'))}: period: from {period['from']} is "
                        f"after to {period['to']}. Hint: swap the dates.")
    collect(problems, f"{p}: {len(problems)} problems in the register mapping")
    return RegisterMapping(
        columns=dict(data.get("columns") or {}),
        header_row=data.get("header_row"),
        sheets=tuple(str(s) for s in data.get("sheets") or ()),
        period=(date.fromisoformat(period["from"]), date.fromisoformat(period["to"])) if period else None,
        book=data.get("book"),
        hidden_sheets=data.get("hidden_sheets"),
    )


def load_register(paths: Iterable[str | Path], mapping: RegisterMapping | None = None) -> RegisterData:
    """Open every book (CSV, or every sheet of an XLSX): locate and check headers now, read rows later."""
    mapping = mapping or RegisterMapping()
    data = RegisterData([], [], {})
    for path in paths:
        p = Path(path)
        _check_file(p)
        data.files.append(str(p))
        book = mapping.book or p.name
        if mapping.period:
            data.periods[book] = mapping.period
        if p.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            batches, warnings = _read_workbook(p, mapping)
        elif p.suffix.lower() in (".csv", ".txt", ".tsv"):
            batches, warnings = _open_csv(p, mapping)
        else:
            hint = "save it as .xlsx in LibreOffice" if p.suffix.lower() == ".ods" else "export it as CSV or .xlsx"
            raise BadInput(f"{p}: unsupported register format {p.suffix or '(none)'!r}. Expected .csv or .xlsx. "
                           f"Hint: {hint}.")
        data.warnings += warnings
        data._parts.append((book, batches))
    if not data.files:
        raise BadInput("no register file given. Hint: --register FILE (CSV or XLSX), repeatable.")
    return data


def _repeat(value: str | None, n: int) -> pa.Array:
    """One value n times (C speed; a Python list of n references costs 0.3 s per million)."""
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _check_file(p: Path) -> None:
    if not p.exists():
        raise BadInput(f"{p}: no such file.")
    if not p.is_file():
        raise BadInput(f"{p}: not a file.")
    if p.stat().st_size == 0:
        raise BadInput(f"{p}: the file is empty. Expected a register with a header row (Mã hồ sơ, Nhận hồ sơ, ...).")


# ------------------------------------------------------------------------- header location


def _alias_index(mapping: RegisterMapping) -> dict[str, str]:
    """Folded header -> field; a field the mapping names is found by that header only (so that a
    mapping can pick one of two columns that both carry an official header)."""
    index = {fold(alias): name for name, aliases in HEADERS.items() for alias in aliases
             if name not in mapping.columns}
    index.update({fold(header): name for name, header in mapping.columns.items()})
    return index


@dataclass(frozen=True, slots=True)
class _Header:
    row: int  # 0-based index of the (first) header row
    data_start: int  # 0-based index of the first data row
    columns: dict[str, int]  # canonical field -> column index
    twice: tuple[tuple[str, int, int], ...] = ()  # (field, first column, second column): named twice


def _locate_header(rows: list[list[str]], mapping: RegisterMapping, where: str, sheet: bool = False) -> _Header:
    index = _alias_index(mapping)
    candidates = range(len(rows)) if mapping.header_row is None else [mapping.header_row - 1]
    best: _Header | None = None
    for r in candidates:
        if r >= len(rows):
            continue
        below = rows[r + 1] if r + 1 < len(rows) else []
        cols: dict[str, int] = {}
        twice: list[tuple[str, int, int]] = []
        used_below = False
        for c, cell in enumerate(rows[r]):
            # A merged group label ("Ngày, tháng, năm") names its columns in the row below.
            for text, is_below in ((below[c] if c < len(below) else "", True), (cell, False)):
                name = index.get(fold(text)) if text else None
                if name and name in cols:
                    twice.append((name, cols[name], c))
                    break
                if name:
                    cols[name] = c
                    used_below |= is_below
                    break
        if best is None or len(cols) > len(best.columns):
            best = _Header(r, r + (2 if used_below else 1), cols, tuple(twice))
    if best is None or "dossier_code" not in best.columns or len(best.columns) < 3:
        found = [c for row in rows[:HEADER_SCAN_ROWS] for c in row if c][:12]
        expected = ", ".join(HEADERS[f][0] for f in ("stt", "dossier_code", "procedure", "received_at", "returned_at"))
        raise BadInput(
            f"{where}: no register header found in the first {len(rows)} rows. "
            f"Found: {', '.join(repr(f) for f in found) or 'nothing'}. Expected headers such as: {expected}. "
            "Hint: map your layout with --register-mapping FILE."
        )
    if best.twice:  # keeping the first would silently drop the other column's values
        name, a, b = best.twice[0]
        col = column_name if sheet else (lambda c: str(c + 1))  # as the user's program shows columns
        raise BadInput(f"{where}, row {best.row + 1}: columns {col(a)} and {col(b)} are both "
                       f"{HEADERS[name][0]!r}. Hint: rename the one that is not, or map the columns with "
                       "--register-mapping FILE.")
    missing = [f for f in REQUIRED if f not in best.columns]
    if missing:
        names = ", ".join(f"{HEADERS[m][0]!r}" for m in missing)
        raise BadInput(f"{where}, row {best.row + 1}: required column {names} missing. "
                       f"Columns found: {', '.join(HEADERS[f][0] for f in best.columns)}. "
                       "Hint: map it with --register-mapping FILE.")
    return best


# ------------------------------------------------------------------------------------ XLSX


def _cell_text(v: Any) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, time):  # a date-formatted serial below 1 (0 is Excel's "no date"): no day at all
        return "0 (no date)" if v == time(0) else f"{v:%H:%M} (a time of day, no date)"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_workbook(p: Path, mapping: RegisterMapping) -> tuple[Callable[[], Iterator[pa.Table]], list[str]]:
    from python_calamine import CalamineWorkbook, PasswordError

    scans = open_workbook(p)
    try:
        wb = CalamineWorkbook.from_path(str(p))
    except PasswordError:
        raise password_protected(p) from None
    except Exception as exc:
        raise BadInput(f"{p}: cannot read as a workbook: {str(exc).splitlines()[0]}. "
                       "Hint: open it in Excel or LibreOffice and save it as .xlsx, or export CSV.") from None
    names, warnings = _sheets_to_read(p, wb, mapping)
    parts: list[tuple[list[list[str]], _Header, str]] = []
    errors: list[BadInput] = []
    problems: list[str] = []
    for name in names:
        sheet = read_sheet(p, name, lambda: wb.get_sheet_by_name(name))
        rows = read_sheet(p, name, lambda: [[_cell_text(v) for v in row]
                                            for row in sheet.to_python(skip_empty_area=False)])
        where = f'{p.name}, sheet "{name}"'
        if not any(any(r) for r in rows):
            continue
        try:
            header = _locate_header(rows[:HEADER_SCAN_ROWS], mapping, where, sheet=True)
        except BadInput as exc:
            errors.append(exc)
            continue
        scan = scans.get(name)
        problems += _formulas_without_value(where, scan.no_value if scan else (), header)
        warnings += _fill_merged(where, rows, sheet.merged_cell_ranges or [], header)
        parts.append((rows, header, name))
    collect(problems, f"{p.name}: formulas without a saved value")
    if not parts:
        if errors:
            raise errors[0]
        raise BadInput(f"{p}: no data in any sheet.")
    warnings += [f"{e} (sheet skipped)" for e in errors]

    def batches() -> Iterator[pa.Table]:
        for rows, header, sheet in parts:
            for start in range(header.data_start, len(rows), BATCH_ROWS):
                yield _rows_to_table(rows[start:start + BATCH_ROWS], start + 1, header.columns, p.name, sheet)

    return batches, warnings


def _sheets_to_read(p: Path, wb: Any, mapping: RegisterMapping) -> tuple[list[str], list[str]]:
    """The sheets named in the mapping, else every sheet; hidden ones (a clerk's scratch copy, an old
    year) are named in a warning, and left out with `hidden_sheets: skip`."""
    from python_calamine import SheetVisibleEnum

    names = list(wb.sheet_names)
    if mapping.sheets:
        absent = [s for s in mapping.sheets if s not in names]
        if absent:
            raise BadInput(f"{p}: sheet {absent[0]!r} not found. Sheets: {', '.join(names)}.")
        return list(mapping.sheets), []
    hidden = {m.name: "very hidden" if m.visible == SheetVisibleEnum.VeryHidden else "hidden"
              for m in wb.sheets_metadata if m.visible != SheetVisibleEnum.Visible}
    if not hidden:
        return names, []
    listed = ", ".join(f'"{n}" ({how})' for n, how in hidden.items())
    if mapping.hidden_sheets == "skip":
        return [n for n in names if n not in hidden], [f"{p.name}: hidden sheets left out (hidden_sheets: skip): "
                                                       f"{listed}."]
    if mapping.hidden_sheets == "read":
        return names, [f"{p.name}: hidden sheets read (hidden_sheets: read): {listed}."]
    return names, [f"{p.name}: hidden sheets read like the others: {listed}. Hint: to leave them out, "
                   "set hidden_sheets: skip in a --register-mapping file."]


def _formulas_without_value(where: str, cells: Iterable[tuple[int, int]], header: _Header) -> list[str]:
    """The read cells (header row on) holding a formula that was never calculated: calamine reads them
    as empty, which would make a dossier without a code or a date."""
    field_of = {c: f for f, c in header.columns.items()}
    found = sorted((r, c) for r, c in cells if r >= header.row and c in field_of)
    problems = [f"{where}, cell {column_name(c)}{r + 1} ({HEADERS[field_of[c]][0]}): a formula without a saved "
                "value. Hint: open the file in Excel or LibreOffice and save it, so that its formulas get values."
                for r, c in found[:MAX_LISTED]]
    if len(found) > MAX_LISTED:
        problems.append(f"{where}: ... and {len(found) - MAX_LISTED} more formulas without a saved value.")
    return problems


def _fill_merged(where: str, rows: list[list[str]], merged: list[tuple[tuple[int, int], tuple[int, int]]],
                 header: _Header) -> list[str]:
    """A value merged over several data rows (one date written for a day's dossiers) belongs to every
    row it covers: it is copied down its column, and the ranges are named in a warning."""
    read = set(header.columns.values())
    filled = []
    for (r1, c1), (r2, c2) in sorted(merged):
        if r2 <= r1 or r1 < header.data_start or c1 not in read or r1 >= len(rows):
            continue
        for r in range(r1 + 1, min(r2, len(rows) - 1) + 1):
            if c1 < len(rows[r]):
                rows[r][c1] = rows[r1][c1]
        filled.append(f"{column_name(c1)}{r1 + 1}:{column_name(c2)}{r2 + 1}")
    if not filled:
        return []
    more = f" and {len(filled) - MAX_LISTED} more" if len(filled) > MAX_LISTED else ""
    return [f"{where}: merged cells {', '.join(filled[:MAX_LISTED])}{more}: each value is read on every row "
            "it covers."]


def _rows_to_table(rows: list[list[str]], first_row_no: int, columns: dict[str, int], file: str,
                   sheet: str | None) -> pa.Table:
    """Rows of cells (the first at file row `first_row_no`) to the raw table; blank rows are skipped."""
    cols: dict[str, list[str | None]] = {f: [] for f in FIELDS}
    row_no: list[int] = []
    for i, row in enumerate(rows):
        if not any(c.strip() for c in row):
            continue
        row_no.append(first_row_no + i)
        for f in FIELDS:
            c = columns.get(f)
            value = row[c] if c is not None and c < len(row) and row[c] != "" else None
            if value is not None and len(value) > MAX_CELL_CHARS:
                where = file if sheet is None else f'{file}, sheet "{sheet}"'
                raise long_cell(where, f"row {first_row_no + i}", str(c + 1) if sheet is None else column_name(c))
            cols[f].append(value)
    n = len(row_no)
    arrays = {f: pa.array(v, pa.string()) for f, v in cols.items()}
    arrays["source_file"] = _repeat(file, n)
    arrays["sheet"] = _repeat(sheet, n)
    arrays["row_no"] = pa.array(row_no, pa.int32())
    return pa.table(arrays)


# ------------------------------------------------------------------------------------- CSV


def _open_csv(p: Path, mapping: RegisterMapping) -> tuple[Callable[[], Iterator[pa.Table]], list[str]]:
    with p.open("rb") as fh:
        sample = fh.read(256 * 1024)
    head = decode(p, sample, partial=True)
    head_lines = head.splitlines()[:HEADER_SCAN_ROWS]
    delimiter = "\t" if p.suffix.lower() == ".tsv" else sniff_delimiter(head_lines)
    head_rows = list(csv.reader(head_lines, delimiter=delimiter))
    for i, row in enumerate(head_rows):
        check_cells(row, p.name, i + 1)
    header = _locate_header(head_rows, mapping, p.name)
    width = max(len(r) for r in head_rows)
    return (lambda: _csv_batches(p, header, delimiter, width)), []


def _csv_batches(p: Path, header: _Header, delimiter: str, width: int) -> Iterator[pa.Table]:
    """Fast path: Arrow's parser, piece by piece, while every record is one line. Blank lines are kept
    as (short) rows so that the parse fails rather than renumbers; a piece's rows are then file rows
    exactly. From the first piece Arrow cannot parse on, the csv module reads and says exactly where."""
    names = [f"c{i}" for i in range(width)]
    read = pacsv.ReadOptions(column_names=names, block_size=16 << 20)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False, ignore_empty_lines=False)
    convert = pacsv.ConvertOptions(column_types=_csv_types(names, header), strings_can_be_null=True, null_values=[""])
    row = header.data_start + 1  # file row of the next record
    for at, data in line_chunks(p, line_offset(p, header.data_start)):
        try:
            raw = pacsv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid:  # ragged rows, blank lines, quoted newlines or bad bytes
            yield from _csv_module_batches(p, at, row, header, delimiter)
            return
        yield _arrow_table(raw, header, row, p.name)
        row += raw.num_rows


def _csv_module_batches(p: Path, at: int, row: int, header: _Header, delimiter: str) -> Iterator[pa.Table]:
    """The file from byte `at` (file row `row`) through the csv module, numbering rows as a spreadsheet does."""
    with p.open("rb") as fh:
        fh.seek(at)
        text = decode(p, fh.read(), first_row=row, start=at == 0)
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    for start in range(0, len(rows), BATCH_ROWS):
        yield _rows_to_table(rows[start:start + BATCH_ROWS], row + start, header.columns, p.name, None)


# Columns that repeat a few distinct values on every row are read dictionary-encoded: the register's
# procedure names alone would otherwise take about 100 MB per million rows.
REPEATING = ("procedure", "agency", "signed", "quantity")


def _csv_types(names: list[str], header: _Header) -> dict[str, pa.DataType]:
    repeating = {f"c{header.columns[f]}" for f in REPEATING if f in header.columns}
    return {n: pa.dictionary(pa.int32(), pa.string()) if n in repeating else pa.string() for n in names}


def _arrow_table(raw: pa.Table, header: _Header, first_row_no: int, file: str) -> pa.Table:
    n = raw.num_rows
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {}
    for f in FIELDS:
        c = header.columns.get(f)
        arrays[f] = raw.column(f"c{c}") if c is not None and c < raw.num_columns else pa.nulls(n, pa.string())
    arrays["source_file"] = _repeat(file, n)
    arrays["sheet"] = pa.nulls(n, pa.string())
    arrays["row_no"] = pa.array(range(first_row_no, first_row_no + n), pa.int32())
    table = pa.table(arrays)
    _check_lengths(table, header, first_row_no, file)
    # Rows whose every cell is empty are layout, not entries.
    any_value = None
    for f in FIELDS:
        v = pc.is_valid(table.column(f))
        any_value = v if any_value is None else pc.or_(any_value, v)
    return table if pc.all(any_value).as_py() else table.filter(any_value)


def _check_lengths(table: pa.Table, header: _Header, first_row_no: int, file: str) -> None:
    """Refuses a cell longer than MAX_CELL_CHARS, as the csv module's path does (one vectorised pass a column)."""
    for f, c in header.columns.items():
        col = table.column(f)
        if pa.types.is_dictionary(col.type):  # only the distinct values need measuring
            if not any(len(chunk.dictionary) and pc.max(pc.utf8_length(chunk.dictionary)).as_py() > MAX_CELL_CHARS
                       for chunk in col.chunks):
                continue
            col = col.cast(pa.string())
        too_long = pc.greater(pc.utf8_length(col), MAX_CELL_CHARS)
        if pc.any(too_long).as_py():
            i = pc.index(too_long, True).as_py()
            raise long_cell(file, f"row {first_row_no + i}", str(c + 1))
