"""Paper register loader: CSV/XLSX books to one Arrow table of raw cells with their locations."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from jsonschema import Draft202012Validator

from reconcile import errors, yamlio
from reconcile.errors import BadInput
from reconcile.normalize import fold
from reconcile.sources.csvio import line_chunks, line_offset

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


@dataclass(frozen=True, slots=True)
class RegisterMapping:
    """What `--register-mapping FILE` may say about a layout the defaults do not recognise."""

    columns: dict[str, str] = field(default_factory=dict)  # canonical field -> header as written
    header_row: int | None = None  # 1-based
    sheets: tuple[str, ...] = ()
    period: tuple[date, date] | None = None
    book: str | None = None


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
    },
}
_REGISTER_MAPPING = Draft202012Validator(REGISTER_MAPPING_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
REGISTER_MAPPING_HINT = 'Hint: see "Paper register" in README (--register-mapping).'


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
    errors.collect(problems, f"{p}: {len(problems)} problems in the register mapping")
    return RegisterMapping(
        columns=dict(data.get("columns") or {}),
        header_row=data.get("header_row"),
        sheets=tuple(str(s) for s in data.get("sheets") or ()),
        period=(date.fromisoformat(period["from"]), date.fromisoformat(period["to"])) if period else None,
        book=data.get("book"),
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
        if p.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):
            batches, warnings = _read_workbook(p, mapping)
        elif p.suffix.lower() in (".csv", ".txt", ".tsv"):
            batches, warnings = _open_csv(p, mapping)
        else:
            raise BadInput(f"{p}: unsupported register format {p.suffix or '(none)'!r}. Expected .csv or .xlsx.")
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
    index = {fold(alias): name for name, aliases in HEADERS.items() for alias in aliases}
    index.update({fold(header): name for name, header in mapping.columns.items()})
    return index


@dataclass(frozen=True, slots=True)
class _Header:
    row: int  # 0-based index of the (first) header row
    data_start: int  # 0-based index of the first data row
    columns: dict[str, int]  # canonical field -> column index


def _locate_header(rows: list[list[str]], mapping: RegisterMapping, where: str) -> _Header:
    index = _alias_index(mapping)
    candidates = range(len(rows)) if mapping.header_row is None else [mapping.header_row - 1]
    best: _Header | None = None
    for r in candidates:
        if r >= len(rows):
            continue
        below = rows[r + 1] if r + 1 < len(rows) else []
        cols: dict[str, int] = {}
        used_below = False
        for c, cell in enumerate(rows[r]):
            # A merged group label ("Ngày, tháng, năm") names its columns in the row below.
            for text, is_below in ((below[c] if c < len(below) else "", True), (cell, False)):
                name = index.get(fold(text)) if text else None
                if name and name not in cols:
                    cols[name] = c
                    used_below |= is_below
                    break
        if best is None or len(cols) > len(best.columns):
            best = _Header(r, r + (2 if used_below else 1), cols)
    if best is None or "dossier_code" not in best.columns or len(best.columns) < 3:
        found = [c for row in rows[:HEADER_SCAN_ROWS] for c in row if c][:12]
        expected = ", ".join(HEADERS[f][0] for f in ("stt", "dossier_code", "procedure", "received_at", "returned_at"))
        raise BadInput(
            f"{where}: no register header found in the first {len(rows)} rows. "
            f"Found: {', '.join(repr(f) for f in found) or 'nothing'}. Expected headers such as: {expected}. "
            "Hint: map your layout with --register-mapping FILE."
        )
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
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_workbook(p: Path, mapping: RegisterMapping) -> tuple[pa.Table, list[str]]:
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(p))
    except Exception as exc:
        raise BadInput(f"{p}: cannot read as a workbook: {str(exc).splitlines()[0]}. "
                       "Hint: save it as .xlsx, or export CSV.") from None
    names = list(wb.sheet_names)
    if mapping.sheets:
        absent = [s for s in mapping.sheets if s not in names]
        if absent:
            raise BadInput(f"{p}: sheet {absent[0]!r} not found. Sheets: {', '.join(names)}.")
        names = list(mapping.sheets)
    parts: list[tuple[list[list[str]], _Header, str]] = []
    warnings: list[str] = []
    errors: list[BadInput] = []
    for name in names:
        rows = [[_cell_text(v) for v in row] for row in wb.get_sheet_by_name(name).to_python(skip_empty_area=False)]
        where = f'{p.name}, sheet "{name}"'
        if not any(any(r) for r in rows):
            continue
        try:
            header = _locate_header(rows[:HEADER_SCAN_ROWS], mapping, where)
        except BadInput as exc:
            errors.append(exc)
            continue
        parts.append((rows, header, name))
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
            cols[f].append(row[c] if c is not None and c < len(row) and row[c] != "" else None)
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
    head = _decode(p, sample, partial=True)
    head_lines = head.splitlines()[:HEADER_SCAN_ROWS]
    delimiter = "\t" if p.suffix.lower() == ".tsv" else _sniff_delimiter(head_lines)
    head_rows = list(csv.reader(head_lines, delimiter=delimiter))
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
        text = _decode(p, fh.read(), first_row=row, bom=at == 0)
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
    # Rows whose every cell is empty are layout, not entries.
    any_value = None
    for f in FIELDS:
        v = pc.is_valid(table.column(f))
        any_value = v if any_value is None else pc.or_(any_value, v)
    return table if pc.all(any_value).as_py() else table.filter(any_value)


def _decode(p: Path, data: bytes, partial: bool = False, first_row: int = 1, bom: bool = True) -> str:
    """UTF-8 text (BOM dropped); a legacy 8-bit file is refused with the row of its first bad byte."""
    if bom and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if partial and exc.start >= len(data) - 3:  # a character cut at the end of the sample
            return data[: exc.start].decode("utf-8")
        line = data[: exc.start].count(b"\n") + first_row
        raise BadInput(
            f"{p.name}, row {line}: byte 0x{data[exc.start]:02x} is not UTF-8; the file looks like a legacy "
            "8-bit encoding (Windows-1258, TCVN3/ABC or VNI). Hint: open it in a spreadsheet and save as "
            "\"CSV UTF-8\"."
        ) from None


def _sniff_delimiter(lines: list[str]) -> str:
    sample = "\n".join(lines)
    counts = {d: sample.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


