"""Hostile and damaged register files and published tables (XLSX, CSV), and audit dates: one line naming
the file, sheet, row or cell, exit 2, the store never created; what is read is read as documented."""

from __future__ import annotations

import json
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import openpyxl
import pytest

from helpers import invoke

from conftest import CASES
from reconcile.util.calendar import add_working_days
from reconcile.sources.register import load_register, load_register_mapping

BASIC = CASES / "golden" / "basic"
HEADER = ["STT", "Mã hồ sơ", "Tên TTHC", "Nhận hồ sơ", "Hẹn trả kết quả"]
CODE = "000.00.53.H48-210105-00{:02d}"


def audit_args(tmp_path: Path, register: Path | str, *extra: str, as_of: str = "2021-06-30") -> list[str]:
    return ["audit", "--register", str(register), "--system", str(BASIC / "system"), "--workflows",
            str(BASIC / "workflows"), "--as-of", as_of, "--store", str(tmp_path / "store.duckdb"), *extra]


def refused(tmp_path: Path, args: list[str]) -> str:
    """The one error line of a refused command; nothing written."""
    result = invoke(*args, expect=2)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "store.duckdb").exists(), "bad input must not create or touch the store"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def workbook(path: Path, rows: list[list[object]], edit: Callable[[openpyxl.Workbook], None] | None = None) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sổ"
    for row in rows:
        ws.append(row)
    if edit:
        edit(wb)
    wb.save(path)
    return path


def register_book(path: Path, edit: Callable[[openpyxl.Workbook], None] | None = None) -> Path:
    rows: list[list[object]] = [HEADER]
    rows += [[i, CODE.format(i), "Đăng ký đất đai", date(2021, 1, 5), date(2021, 1, 19)] for i in range(1, 4)]
    return workbook(path, rows, edit)


def rewrite_member(src: Path, dst: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            data = a.read(info.filename)
            b.writestr(info.filename, change(data) if info.filename == member else data)
    return dst


SHEET1 = "xl/worksheets/sheet1.xml"


def table_book(path: Path) -> Path:
    """A published table (check-report) as a workbook: STT, label and 12 numbers."""
    return workbook(path, [[1, "Lĩnh vực đất đai", 10, 2, 3, 5, 8, 6, 2, 1, 1, 0, 1, 0]])


# -------------------------------------------------------------------------------- zip bombs


def padded(src: Path, dst: Path, megabytes: int) -> Path:
    """The workbook with its sheet padded by blanks before </worksheet>: a few kB on disk, `megabytes` inflated."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            data = a.read(info.filename)
            if info.filename != SHEET1:
                b.writestr(info.filename, data)
                continue
            with b.open(SHEET1, "w") as w:
                w.write(data[:-len(b"</worksheet>")])
                for _ in range(megabytes):
                    w.write(b" " * (1 << 20))
                w.write(b"</worksheet>")
    return dst


def bomb_line(path: Path) -> str:
    info = zipfile.ZipFile(path).getinfo(SHEET1)
    return (f"error: {path.name}: member {SHEET1} inflates {info.file_size / info.compress_size:,.0f} times "
            f"({info.compress_size:,} bytes to {info.file_size / (1 << 20):,.0f} MB), over the limit of 100 (a zip "
            "bomb, or a sheet padded with blanks). Hint: open it in Excel or LibreOffice and save it again; if it "
            "is genuine, set RECONCILE_XLSX_MAX_RATIO higher.")


def test_zip_bomb_register_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    bomb = padded(register_book(tmp_path / "ok.xlsx"), tmp_path / "bomb.xlsx", 16)
    assert bomb.stat().st_size < 100_000
    assert refused(tmp_path, audit_args(tmp_path, bomb)) == bomb_line(bomb)


def test_zip_bomb_published_table_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    bomb = padded(table_book(tmp_path / "ok.xlsx"), tmp_path / "bomb.xlsx", 16)
    assert refused(tmp_path, ["check-report", str(bomb)]) == bomb_line(bomb)


def test_member_over_the_size_limit_names_member_and_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = register_book(tmp_path / "book.xlsx")
    monkeypatch.setenv("RECONCILE_XLSX_MAX_MB", "0.005")  # 5,243 bytes
    big = next(i for i in zipfile.ZipFile(book).infolist() if i.file_size > 0.005 * (1 << 20))
    assert refused(tmp_path, audit_args(tmp_path, book)) == (
        f"error: book.xlsx: member {big.filename} is 0 MB uncompressed, over the limit of 0.005 MB. Hint: a genuine "
        "workbook this large: set RECONCILE_XLSX_MAX_MB higher, or export CSV.")
    for value in ("lots", "nan", "0"):
        monkeypatch.setenv("RECONCILE_XLSX_MAX_MB", value)
        assert refused(tmp_path, audit_args(tmp_path, book)) == (
            f"error: RECONCILE_XLSX_MAX_MB={value!r}: expected a positive number (default 1024).")


def far_cell(data: bytes) -> bytes:
    """One cell moved to the sheet's last row and column: 17 billion cells from A1 for a reader."""
    return data.replace(b'<c r="B2"', b'<c r="XFD1048576"', 1)


def cells_without_r(data: bytes) -> bytes:
    """300 cells without a reference in row 1 and one in row 200,000: a reader places them 60 million apart."""
    start, end = data.index(b"<sheetData>") + len(b"<sheetData>"), data.index(b"</sheetData>")
    body = b'<row r="1">' + b'<c t="n"><v>1</v></c>' * 300 + b'</row><row r="200000"><c t="n"><v>2</v></c></row>'
    return data[:start] + body + data[end:]


@pytest.mark.parametrize("change, reach, cells", [(far_cell, "XFD1048576", "17,179,869,184"),
                                                  (cells_without_r, "KN200000", "60,000,000")])
def test_sheet_whose_cells_reach_too_far_is_refused_before_it_is_read(
        tmp_path: Path, change: Callable[[bytes], bytes], reach: str, cells: str) -> None:
    book = rewrite_member(register_book(tmp_path / "ok.xlsx"), tmp_path / "far.xlsx", SHEET1, change)
    line = (f'error: far.xlsx, sheet "Sổ": cells reach {reach} ({SHEET1}), {cells} cells from A1, over the limit of '
            "20,000,000. Hint: delete the stray cells far from the table (Ctrl+End shows the last one) and save it "
            "again, or set RECONCILE_XLSX_MAX_CELLS higher.")
    assert refused(tmp_path, audit_args(tmp_path, book)) == line
    assert refused(tmp_path, ["check-report", str(book)]) == line


# ------------------------------------------------------------- encrypted and damaged workbooks


def encrypted(src: Path, dst: Path) -> Path:
    from msoffcrypto.format.ooxml import OOXMLFile

    with src.open("rb") as plain, dst.open("wb") as out:
        OOXMLFile(plain).encrypt("S3cret", out)
    return dst


def test_password_protected_workbook_is_called_so(tmp_path: Path) -> None:
    reg = encrypted(register_book(tmp_path / "plain.xlsx"), tmp_path / "locked.xlsx")
    line = ("error: locked.xlsx: the workbook is password-protected. Hint: open it in Excel or LibreOffice and save "
            "a copy without a password.")
    assert refused(tmp_path, audit_args(tmp_path, reg)) == line
    table = encrypted(table_book(tmp_path / "table.xlsx"), tmp_path / "locked.xlsx")
    assert refused(tmp_path, ["check-report", str(table)]) == line


def test_legacy_xls_named_xlsx_is_named(tmp_path: Path) -> None:
    import olefile  # an OLE container without an encrypted package, as an .xls is

    fake = tmp_path / "old.xlsx"
    fake.write_bytes(olefile.MAGIC + bytes(504))
    assert refused(tmp_path, audit_args(tmp_path, fake)).startswith("error: old.xlsx: damaged workbook: ")
    html = tmp_path / "export.xlsx"
    html.write_text("<html><table><tr><td>STT</td></tr></table></html>", encoding="utf-8")
    assert refused(tmp_path, audit_args(tmp_path, html)) == (
        "error: export.xlsx: not a workbook (an .xlsx file is a zip archive; this one is not). Hint: if it is an "
        "HTML or text export, open it in Excel or LibreOffice and save it as .xlsx.")


@pytest.mark.parametrize("change", [
    lambda d: d[:d.index(b"</sheetData>") - 40],  # cut inside a cell: an unclosed tag
    lambda d: d.replace(b' t="inlineStr">', b' t="inlineStr"', 1),  # a byte overwritten inside a tag
], ids=["unclosed tag", "overwritten bytes"])
def test_damaged_sheet_names_file_and_sheet(tmp_path: Path, change: Callable[[bytes], bytes]) -> None:
    reg = rewrite_member(register_book(tmp_path / "ok.xlsx"), tmp_path / "damaged.xlsx", SHEET1, change)
    line = refused(tmp_path, audit_args(tmp_path, reg))
    assert line.startswith('error: damaged.xlsx, sheet "Sổ": cannot read the sheet: ')
    assert line.endswith(". Hint: the file is damaged: open it in Excel or LibreOffice and save it again, or export "
                         "CSV.")
    table = rewrite_member(table_book(tmp_path / "t.xlsx"), tmp_path / "damaged.xlsx", SHEET1, change)
    line = refused(tmp_path, ["check-report", str(table)])
    assert line.startswith('error: damaged.xlsx, sheet "Sổ": cannot read the sheet: ')


def test_damaged_zip_stream_of_a_sheet_names_the_sheet(tmp_path: Path) -> None:
    book = register_book(tmp_path / "book.xlsx")
    data = bytearray(book.read_bytes())
    info = zipfile.ZipFile(book).getinfo(SHEET1)
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 40
    data[at:at + 20] = b"\xaa" * 20  # bytes overwritten inside the compressed sheet
    book.write_bytes(bytes(data))
    assert refused(tmp_path, audit_args(tmp_path, book)).startswith(
        'error: book.xlsx, sheet "Sổ": cannot read the sheet: ')


def test_ods_register_is_refused_with_a_hint(tmp_path: Path) -> None:
    ods = tmp_path / "book.ods"
    ods.write_bytes(b"PK\x03\x04")
    assert refused(tmp_path, audit_args(tmp_path, ods)) == (
        f"error: {ods}: unsupported register format '.ods'. Expected .csv or .xlsx. Hint: save it as .xlsx in "
        "LibreOffice.")


# ------------------------------------------------------------------------------- CSV text


def basic_register_text() -> str:
    return (BASIC / "register-2021.csv").read_text(encoding="utf-8-sig")


@pytest.mark.parametrize("encoding, bom", [("utf-16", "with BOM"), ("utf-16-le", "without BOM"),
                                           ("utf-32", "with BOM")])
def test_utf16_and_utf32_csv_are_named(tmp_path: Path, encoding: str, bom: str) -> None:
    reg = tmp_path / "wide.csv"
    reg.write_bytes(basic_register_text().encode(encoding))
    name = encoding[:6].upper()
    line = (f"error: wide.csv: the file is {name} text{' (no BOM)' if bom == 'without BOM' else ''}, not UTF-8. "
            'Hint: open it in a spreadsheet and save as "CSV UTF-8".')
    assert refused(tmp_path, audit_args(tmp_path, reg)) == line
    table = tmp_path / "wide.csv"
    table.write_bytes("1,Lĩnh vực đất đai,10,2,3,5,8,6,2,1,1,0,1,0\n".encode(encoding))
    assert refused(tmp_path, ["check-report", str(table)]) == line


def test_utf16_system_export_is_named(tmp_path: Path) -> None:
    system = tmp_path / "system"
    system.mkdir()
    for f in (BASIC / "system").iterdir():
        (system / f.name).write_bytes(f.read_bytes())
    text = (system / "dossiers.csv").read_text(encoding="utf-8")
    (system / "dossiers.csv").write_bytes(text.encode("utf-16"))
    args = audit_args(tmp_path, BASIC / "register-2021.csv")
    args[args.index("--system") + 1] = str(system)
    assert refused(tmp_path, args) == (
        f'error: {system / "dossiers.csv"}: the file is UTF-16 text, not UTF-8. Hint: open it in a spreadsheet and save as '
        '"CSV UTF-8".')


def test_workbook_named_csv_is_named(tmp_path: Path) -> None:
    reg = tmp_path / "book.csv"
    reg.write_bytes(register_book(tmp_path / "book.xlsx").read_bytes())
    assert refused(tmp_path, audit_args(tmp_path, reg)) == (
        'error: book.csv: the file is a zip archive (an .xlsx workbook?), not CSV text. Hint: open it in a '
        'spreadsheet and save as "CSV UTF-8".')


def long_cell_line(file: str, row: int, column: int, word: str = "row") -> str:
    return (f"error: {file}, {word} {row}, column {column}: a cell longer than 32,767 characters, the most a "
            "spreadsheet cell holds. Hint: the file is damaged or not what it should be; export it again.")


@pytest.mark.parametrize("copies, megabytes", [(1, 10), (3, 10), (3, 20)],
                         ids=["near the top", "below the header scan", "longer than a parse block"])
def test_csv_cell_of_megabytes_names_row_and_column(tmp_path: Path, copies: int, megabytes: int) -> None:
    lines = basic_register_text().splitlines(keepends=True)
    body = lines + lines[1:] * (copies - 1)
    huge = lines[1].replace(",,,,", ',,,,"' + "x" * (megabytes << 20) + '"', 1)
    reg = tmp_path / "huge.csv"
    reg.write_text("".join(body[:3] + [huge] + body[3:] if copies == 1 else body + [huge]), encoding="utf-8")
    row = 4 if copies == 1 else len(body) + 1
    assert refused(tmp_path, audit_args(tmp_path, reg)) == long_cell_line("huge.csv", row, 13)


def test_published_table_cell_of_megabytes_names_line_and_column(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text('STT,Chỉ tiêu\n1,"' + "x" * (10 << 20) + '",10,2\n', encoding="utf-8")
    assert refused(tmp_path, ["check-report", str(table)]) == long_cell_line("t.csv", 2, 2, "line")


# ------------------------------------------------------------------ what the register's cells say


def test_same_official_header_twice_is_refused_with_both_columns(tmp_path: Path) -> None:
    reg = tmp_path / "twice.csv"
    reg.write_text(f"STT,Mã hồ sơ,Nhận hồ sơ,Hẹn trả kết quả,Ghi chú,Hẹn trả kết quả\n"
                   f"1,{CODE.format(1)},05/01/2021,,,19/01/2021\n", encoding="utf-8")
    assert refused(tmp_path, audit_args(tmp_path, reg)) == (
        "error: twice.csv, row 1: columns 4 and 6 are both 'Hẹn trả kết quả'. Hint: rename the one that is not, "
        "or map the columns with --register-mapping FILE.")
    book = workbook(tmp_path / "twice.xlsx", [HEADER + ["Ngày hẹn trả"], [1, CODE.format(1), "x", "05/01/2021",
                                                                          "", "19/01/2021"]])
    assert refused(tmp_path, audit_args(tmp_path, book)) == (
        "error: twice.xlsx, sheet \"Sổ\", row 1: columns E and F are both 'Hẹn trả kết quả'. Hint: rename the one "
        "that is not, or map the columns with --register-mapping FILE.")
    mapping = tmp_path / "m.yaml"
    mapping.write_text('columns: {due_at: "Ngày hẹn trả"}\n', encoding="utf-8")
    table = load_register([book], load_register_mapping(mapping)).table
    assert table.column("due_at").to_pylist() == ["19/01/2021"]


def test_two_digit_years_are_read_by_excels_pivot_and_counted(tmp_path: Path) -> None:
    reg = tmp_path / "short.csv"
    reg.write_text(f"STT,Mã hồ sơ,Tên TTHC,Nhận hồ sơ,Hẹn trả kết quả\n1,{CODE.format(1)},x,04/01/21,18/01/21\n"
                   f"2,{CODE.format(2)},x,04/01/2021,31/12/99\n", encoding="utf-8")
    result = invoke(*audit_args(tmp_path, reg, "--format", "json"), expect=1)
    assert ("warning: register dates with a two-digit year, read as 2000-2029 for 00-29 and 1930-1999 for 30-99 "
            "(as Excel does): 1 Nhận hồ sơ, 2 Hẹn trả kết quả. Hint: check them, or write the year in full."
            ) in result.stderr.splitlines()
    shown = json.loads(invoke("show", CODE.format(1), "--format", "json", "--store",
                              str(tmp_path / "store.duckdb"), expect=0).stdout)
    assert shown["register"][0]["received_at"] == "2021-01-04"


def test_merged_date_cell_applies_to_every_row_it_covers(tmp_path: Path) -> None:
    book = register_book(tmp_path / "merged.xlsx", lambda wb: wb.active.merge_cells("D2:D4"))
    result = invoke(*audit_args(tmp_path, book), expect=1)
    assert ('warning: merged.xlsx, sheet "Sổ": merged cells D2:D4: each value is read on every row it covers.'
            ) in result.stderr.splitlines()
    table = load_register([book]).table
    assert table.column("received_at").to_pylist() == ["2021-01-05"] * 3


def test_hidden_sheets_are_named_and_can_be_left_out(tmp_path: Path) -> None:
    def hide(wb: openpyxl.Workbook) -> None:
        for title, state in (("Nháp", "hidden"), ("Cũ", "veryHidden")):
            ws = wb.create_sheet(title)
            ws.append(HEADER)
            ws.append([1, CODE.format(90 + len(title)), "x", "05/01/2021", ""])
            ws.sheet_state = state

    book = register_book(tmp_path / "hidden.xlsx", hide)
    result = invoke(*audit_args(tmp_path, book), expect=1)
    assert ('warning: hidden.xlsx: hidden sheets read like the others: "Nháp" (hidden), "Cũ" (very hidden). Hint: '
            "to leave them out, set hidden_sheets: skip in a --register-mapping file.") in result.stderr.splitlines()
    assert load_register([book]).table.num_rows == 5
    mapping = tmp_path / "m.yaml"
    mapping.write_text("hidden_sheets: skip\n", encoding="utf-8")
    data = load_register([book], load_register_mapping(mapping))
    assert data.table.num_rows == 3
    assert data.warnings == ['hidden.xlsx: hidden sheets left out (hidden_sheets: skip): "Nháp" (hidden), "Cũ" '
                             "(very hidden)."]
    mapping.write_text("hidden_sheets: maybe\n", encoding="utf-8")
    (tmp_path / "store.duckdb").unlink()  # written by the first audit
    assert refused(tmp_path, audit_args(tmp_path, book, "--register-mapping", str(mapping))) == (
        f"error: {mapping}:1:16: hidden_sheets: 'maybe' is not one of: skip, read. Hint: skip (leave hidden sheets "
        "out) or read (read them, with a warning).")


def formula_without_value(wb: openpyxl.Workbook) -> None:
    wb.active["B3"] = '=CONCATENATE("000.00.53.H48-210105-", "0002")'  # openpyxl saves no value


def serial_zero(wb: openpyxl.Workbook) -> None:
    wb.active["E3"] = 0
    wb.active["E3"].number_format = "dd/mm/yyyy"


@pytest.mark.parametrize("edit, line", [
    (formula_without_value, 'sheet "Sổ", cell B3 (Mã hồ sơ): a formula without a saved value. Hint: open the file '
                            "in Excel or LibreOffice and save it, so that its formulas get values."),
    (serial_zero, "sheet \"Sổ\", row 3, Hẹn trả kết quả: '0 (no date)' is not a date. Expected dd/mm/yyyy, "
                  "YYYY-MM-DD or an Excel date."),
], ids=["formula without a value", "serial 0"])
def test_cell_that_shows_nothing_is_named_as_such(tmp_path: Path, edit: Callable[[openpyxl.Workbook], None],
                                                  line: str) -> None:
    book = register_book(tmp_path / "book.xlsx", edit)
    assert refused(tmp_path, audit_args(tmp_path, book)) == f"error: book.xlsx, {line}"


def test_empty_code_cell_is_said_to_have_no_code(tmp_path: Path) -> None:
    reg = tmp_path / "r.csv"
    reg.write_text(f"STT,Mã hồ sơ,Tên TTHC,Nhận hồ sơ\n1,{CODE.format(1)},x,05/01/2021\n2,,x,05/01/2021\n",
                   encoding="utf-8")
    result = invoke(*audit_args(tmp_path, reg), expect=1)
    assert "warning: r.csv, row 3: no dossier code (kept). Expected e.g. 000.00.53.H48-210105-0001." in (
        result.stderr.splitlines())


def test_entries_received_after_the_audit_date_are_warned(tmp_path: Path) -> None:
    reg = tmp_path / "r.csv"
    reg.write_text("STT,Mã hồ sơ,Tên TTHC,Nhận hồ sơ\n" + "".join(
        f"{i},{CODE.format(i)},x,{d}\n" for i, d in enumerate(
            ["05/01/2021", "01/07/2021", "05/07/2021", "05/01/2022", "05/01/2023"], start=1)), encoding="utf-8")
    result = invoke(*audit_args(tmp_path, reg), expect=1)
    assert ("warning: 4 register entries were received after the audit date 2021-06-30: r.csv, row 3; r.csv, "
            "row 4; r.csv, row 5, .... Hint: check those dates, or audit as of a later date."
            ) in result.stderr.splitlines()


# ------------------------------------------------------------------------------- audit dates


@pytest.mark.parametrize("as_of", ["1970-01-01", "9999-12-31", "31/12/1989"])
def test_audit_date_outside_the_calendar_is_refused_with_the_range(tmp_path: Path, as_of: str) -> None:
    shown = as_of if "-" in as_of else "1989-12-31"
    assert refused(tmp_path, audit_args(tmp_path, BASIC / "register-2021.csv", as_of=as_of)) == (
        f"error: --as-of: {shown} is outside the dates an audit can be as of, 1990-01-01..2100-12-31. Hint: give "
        "the date the register and the system were read (working days count Vietnam's holidays, known up to "
        "2100).")


@pytest.mark.parametrize("as_of", ["1990-01-01", "2100-12-31"])
def test_audit_dates_at_the_calendars_ends_work(tmp_path: Path, as_of: str) -> None:
    invoke(*audit_args(tmp_path, BASIC / "register-2021.csv", as_of=as_of), expect=1)
    store = str(tmp_path / "store.duckdb")
    invoke("plan", "--store", store, "--out", str(tmp_path / "plan.yaml"), expect=0)
    invoke("stats", "--store", store, expect=0)


def test_deadline_past_the_last_day_stops_there() -> None:
    assert add_working_days(date.max - timedelta(days=3), 20) == date.max


@pytest.mark.parametrize("option", [("--as-of", ""), ("--store", " "), ("--register", "")])
def test_empty_option_value_is_refused_not_replaced_by_the_project_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: tuple[str, str]) -> None:
    (tmp_path / "reconcile.yaml").write_text(
        f"as_of: 2021-06-30\nstore: {tmp_path / 'store.duckdb'}\nregister: {BASIC / 'register-2021.csv'}\n",
        encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = ["audit", "--system", str(BASIC / "system"), "--workflows", str(BASIC / "workflows"), *option]
    assert refused(tmp_path, args) == (
        f"error: {option[0]}: empty value. Hint: give a value, or leave {option[0]} out for its default.")


def test_empty_period_and_argument_are_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, ["stats", "--period", "", "", "--store", str(tmp_path / "store.duckdb")]) == (
        "error: --period: empty value. Hint: give a value, or leave --period out for its default.")
    assert refused(tmp_path, ["show", "", "--store", str(tmp_path / "store.duckdb")]) == (
        "error: CODE: empty value. Hint: give a value.")
