"""The bad-input corpus: every case spoils one input of a small audited district and runs one command.

Each must exit with its code and exactly its message on stderr (no traceback, no "internal error"),
print no payload, and leave every file of the folder as it was (the DuckDB store and the vendor's
SQLite database by their bytes) and create none. Adding a case is one `case(...)` entry below; see
tests/corpus.py for the spoilers. A case for a problem not fixed yet is `xfail=` the problem
(strict: it fails the run once the fix lands, to be flipped, and its message should then be exact); "…"
in a message stands for any text within a line where the wording is the database's own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corpus import (Case, Spoil, build_district, case, command, edit, edit_line, remove, run_case, sql, workbook,
                    write, xlsx_cell, xlsx_sheet_xml)

R_XLSX = "register/so-theo-doi-ho-so-2021.xlsx"
R_CSV = "csv/register/so-theo-doi-ho-so-2021.csv"
CSV_CFG = "--config csv/reconcile.yaml"  # the same district with a CSV register and a csv export
DOSSIERS = "csv/system/dossiers.csv"
MAPPING = "system/mapping.yaml"
VENDOR = "system/binh-son-igate.sqlite"
EDU = "workflows/giao-duc-mam-non/v1.yaml"  # a four-step procedure: S01 -> S02 -> S03 -> S04 (final)
EDU_DIR = "workflows/giao-duc-mam-non"
RULES = "workflows/dat-dai-dang-ky-bien-dong/rules.yaml"
PROJECT = "reconcile.yaml"
PLAN = "plan.yaml"
TABLE = "published/phu-luc-binh-son-2021-h1.tsv"
BPMN = Path(__file__).parent / "cases" / "bpmn"
CODE = "000.00.53.H48-210105-0001"
REASSIGN_FP = "fingerprint: 12f4e82fc4b32ca35dc56dc409f8134a"  # the plan's one reassign (line 91)
DATE_HINT = "Expected dd/mm/yyyy, YYYY-MM-DD or an Excel date."
LEGACY = ("byte 0x{:02x} is not UTF-8; the file looks like a legacy 8-bit encoding (Windows-1258, TCVN3/ABC or VNI). "
          'Hint: open it in a spreadsheet and save as "CSV UTF-8".')
STATUSES = ("submitted, received, rejected, in_progress, supplement_requested, awaiting_payment, withdrawn, stopped, "
            "finished, returned")
HEADER_FOUND = ("'STT', 'Mã', 'Tên TTHC', 'Số lượng hồ sơ (bộ)', 'Tên cá nhân, tổ chức', 'Địa chỉ, số điện thoại', "
                "'Cơ quan chủ trì giải quyết', 'Nhận hồ sơ', 'Hẹn trả kết quả', 'Chuyển hồ sơ đến cơ quan giải quyết', "
                "'Trả kết quả', 'Ký nhận'")
NO_HEADER_HINT = ("Expected headers such as: STT, Mã hồ sơ, Tên TTHC, Nhận hồ sơ, Trả kết quả. "
                  "Hint: map your layout with --register-mapping FILE.")
LAND_V3_STEPS = "S01, S03, S03A, S03B, S04, S06A, S07, S08, S09"
NUMBER_HINT = 'Hint: counts are whole numbers (15.256 or 15256); "-" where none is given.'
XXE = ('<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
       '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p" name="&x;">'
       '<startEvent id="s"/></process></definitions>\n')
LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
          + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in zip("abcefg", "bcefgh"))
          + ']>\n<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p" name="&h;">'
          '<startEvent id="s"/></process></definitions>\n')
PYTHON_TAG = "!!python/object/apply:os.system ['touch pwned']"
PICK_HINT = "Hint: pick one with --process ID (in a catalog folder: process: ID in the sidecar v<N>.bpmn.yaml)."


def alias_bomb(key: str, levels: int = 6) -> str:
    """A few hundred bytes of YAML that expand to 10**levels nodes: `key` holds the last alias."""
    lines = ["b0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{key}: *b{levels - 1}\n"


def bpmn(name: str, dest: str) -> Spoil:
    return write(dest, (BPMN / name).read_bytes())


def one_row_book(rel: str, received: object = "05/01/2021") -> Spoil:
    return workbook(rel, {"Sổ": [["STT", "Mã hồ sơ", "Nhận hồ sơ"], [1, CODE, received]]})


# A sheet padded with whitespace: 100 kB zipped, 100 MB unzipped.
PADDED = xlsx_sheet_xml("r.xlsx", lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + b" " * 100_000_000, 1))
CUT_SHORT = xlsx_sheet_xml("r.xlsx", lambda xml: xml[:-40])  # an unclosed tag


CASES: list[Case] = [
    # ---------------------------------------------------------------- register (CSV and XLSX)
    case("register-missing", "audit --register nope.xlsx", "error: nope.xlsx: no such file."),
    case("register-folder", "audit --register register", "error: register: not a file."),
    case("register-empty-file", "audit", f"error: {R_XLSX}: the file is empty. Expected a register with a header "
         "row (Mã hồ sơ, Nhận hồ sơ, ...).", write(R_XLSX, b"")),
    case("register-unsupported-format", "audit --register r.pdf",
         "error: r.pdf: unsupported register format '.pdf'. Expected .csv or .xlsx. Hint: export it as CSV or .xlsx.",
         write("r.pdf", b"%PDF-1.4")),
    case("register-xlsx-not-a-zip", "audit --register r.xlsx", "error: r.xlsx: not a workbook (an .xlsx file is a "
         "zip archive; this one is not). Hint: if it is an HTML or text export, open it in Excel or LibreOffice and "
         "save it as .xlsx.", write("r.xlsx", b"not a zip")),
    case("register-xlsx-no-header", "audit --register r.xlsx",
         "error: r.xlsx, sheet \"Sổ\": no register header found in the first 3 rows. Found: 'Danh sách', 'Số', "
         f"'Người', '1', 'A'. {NO_HEADER_HINT}",
         workbook("r.xlsx", {"Sổ": [["Danh sách"], ["Số", "Người"], [1, "A"]]})),
    case("register-xlsx-empty-sheets", "audit --register r.xlsx", "error: r.xlsx: no data in any sheet.",
         workbook("r.xlsx", {"Sổ": [], "Sổ 2": []})),
    case("register-xlsx-bad-date", "audit",
         f"error: so-theo-doi-ho-so-2021.xlsx, sheet \"Quý I\", row 8, Nhận hồ sơ: '31/02/2021' is not a date. "
         f"{DATE_HINT}", xlsx_cell(R_XLSX, "Quý I", "H8", "31/02/2021")),
    case("register-csv-bad-date", f"audit {CSV_CFG}", "error: so-theo-doi-ho-so-2021.csv, row 2, Nhận hồ sơ: "
         f"'31/02/2021' is not a date. {DATE_HINT}", edit(R_CSV, "05/01/2021", "31/02/2021")),
    case("register-csv-required-column-missing", f"audit {CSV_CFG}",
         "error: so-theo-doi-ho-so-2021.csv, row 1: required column 'Nhận hồ sơ' missing. Columns found: STT, Mã hồ "
         "sơ, Tên TTHC, Số lượng hồ sơ (bộ), Tên cá nhân, tổ chức, Địa chỉ, số điện thoại, Cơ quan chủ trì giải quyết, "
         "Hẹn trả kết quả, Chuyển hồ sơ đến cơ quan giải quyết, Trả kết quả, Ký nhận, Ghi chú. Hint: map it with "
         "--register-mapping FILE.", edit(R_CSV, "Nhận hồ sơ,", "Nhận hs,")),
    case("register-csv-no-code-column", f"audit {CSV_CFG}", "error: so-theo-doi-ho-so-2021.csv: no register header "
         f"found in the first 30 rows. Found: {HEADER_FOUND}. {NO_HEADER_HINT}", edit(R_CSV, "Mã hồ sơ,", "Mã,")),
    case("register-csv-legacy-encoding", "audit --register r.csv", "error: r.csv, row 1: " + LEGACY.format(0xe3),
         write("r.csv", "STT,Mã hs,Ngày\n1,x,01/01/2021\n".encode("cp1252"))),
    case("register-csv-utf16", "audit --register r.csv", "error: r.csv: the file is UTF-16 text, not UTF-8. "
         'Hint: open it in a spreadsheet and save as "CSV UTF-8".',
         write("r.csv", "STT,Mã hồ sơ,Nhận hồ sơ\n1,000.00.53.H48-210105-0001,05/01/2021\n".encode("utf-16"))),
    case("register-csv-no-received-dates", "audit --register r.csv", "error: r.csv: no entry has a received date, "
         "so the period the book covers is unknown. Hint: declare period: {from, to} in --register-mapping.",
         write("r.csv", "STT,Mã hồ sơ,Nhận hồ sơ,Tên TTHC\n1,000.00.53.H48-210105-0001,,x\n")),
    case("register-csv-three-digit-year", "audit --register r.csv", "error: r.csv, row 2, Nhận hồ sơ: '05/01/021' "
         f"is not a date. {DATE_HINT}",
         write("r.csv", "STT,Mã hồ sơ,Nhận hồ sơ,Tên TTHC\n1,000.00.53.H48-210105-0001,05/01/021,x\n")),
    case("register-xlsx-serial-zero", "audit --register r.xlsx", "error: r.xlsx, sheet \"Sổ\", row 2, Nhận hồ sơ: "
         f"'0 (no date)' is not a date. {DATE_HINT}", one_row_book("r.xlsx", 0),
         xlsx_cell("r.xlsx", "Sổ", "C2", 0, "dd/mm/yyyy"), absent=("00:00:00",)),
    case("register-xlsx-damaged-sheet", "audit --register r.xlsx", "error: r.xlsx, sheet \"Sổ\": cannot read the "
         "sheet: syntax error: tag not closed: `>` not found before end of input. Hint: the file is damaged: open it "
         "in Excel or LibreOffice and save it again, or export CSV.", one_row_book("r.xlsx"), CUT_SHORT),
    case("register-csv-huge-cell", "audit --register r.csv", "error: r.csv, row 2, column 3: a cell longer "
         "than 32,767 characters, the most a spreadsheet cell holds. Hint: the file is damaged or not what it should "
         "be; export it again.", write("r.csv", f"STT,Mã hồ sơ,Nhận hồ sơ\n1,{CODE},{'x' * 10_000_000}\n")),
    case("register-xlsx-zip-bomb", "audit --register r.xlsx",
         "error: r.xlsx: member xl/worksheets/sheet1.xml inflates 1,024 times (97,702 bytes to 95 MB), over the "
         "limit of 100 (a zip bomb, or a sheet padded with blanks). Hint: open it in Excel or LibreOffice and save it "
         "again; if it is genuine, set RECONCILE_XLSX_MAX_RATIO higher.",
         one_row_book("r.xlsx"), PADDED, isolated=True),
    # ----------------------------------------------------------------------- register mapping
    case("register-mapping-missing", f"audit {CSV_CFG} --register-mapping nope.yaml", "error: nope.yaml: no such file."),
    case("register-mapping-unknown-field", f"audit {CSV_CFG} --register-mapping m.yaml",
         "error: m.yaml:1:11: columns: unknown key 'bogus'. Known: stt, dossier_code, procedure, quantity, "
         "applicant, address, agency, received_at, due_at, transferred_at, returned_at, signed, note. Hint: see "
         "\"Paper register\" in docs/file-formats.md (--register-mapping).",
         write("m.yaml", "columns: {bogus: X}\n")),
    case("register-mapping-yaml-syntax", f"audit {CSV_CFG} --register-mapping m.yaml",
         "error: m.yaml:2:1: YAML syntax error: did not find expected ',' or ']'. Hint: check the indentation and "
         "quoting on this line and the one above.",
         write("m.yaml", "columns: [x\n")),
    case("register-mapping-not-a-mapping", f"audit {CSV_CFG} --register-mapping m.yaml",
         "error: m.yaml:1:1: expected a mapping with 'columns'. Hint: see \"Paper register\" in docs/file-formats.md "
         "(--register-mapping).",
         write("m.yaml", "- a\n")),
    case("register-mapping-not-utf8", f"audit {CSV_CFG} --register-mapping m.yaml",
         "error: m.yaml:1: not UTF-8 text (byte 0xe3 at offset 24). Hint: save the file as UTF-8.",
         write("m.yaml", b"columns: {dossier_code: \xe3}\n")),
    case("register-mapping-unknown-sheet", "audit --register-mapping m.yaml", f"error: {R_XLSX}: sheet 'Quý III' not "
         "found. Sheets: Quý I, Quý II.", write("m.yaml", "sheets: [Quý III]\n")),
    case("register-mapping-period-not-a-date", f"audit {CSV_CFG} --register-mapping m.yaml",
         "error: m.yaml:1:16: period.from: '2021-13-01' is not a 'date'. Hint: write the date as YYYY-MM-DD.",
         write("m.yaml", "period: {from: 2021-13-01, to: 2021-12-31}\n")),
    case("register-mapping-header-row-not-a-number", f"audit {CSV_CFG} --register-mapping m.yaml",
         "error: m.yaml:1:13: header_row: 'banana' is not of type 'integer'. Hint: see \"Paper register\" in "
         "docs/file-formats.md (--register-mapping).", write("m.yaml", "header_row: banana\n")),
    case("register-mapping-sheets-not-a-list", "audit --register-mapping m.yaml", "error: m.yaml:1:9: sheets: "
         "'Quý I' is not of type 'array'. Hint: a list of sheet names: [\"Sổ 2021\"].",
         write("m.yaml", "sheets: Quý I\n")),
    # -------------------------------------------------------------------- system: csv export
    case("system-csv-unknown-status", f"audit {CSV_CFG}", f"error: {DOSSIERS}, row 8: status 'ongoing' is not a "
         f"canonical status. Expected one of: {STATUSES}.", edit(DOSSIERS, ",in_progress,", ",ongoing,")),
    case("system-csv-bad-active-flag", f"audit {CSV_CFG}", "error: csv/system/accounts.csv, row 2: active 'yes' is "
         "not 1 or 0.", edit("csv/system/accounts.csv", ",1\n", ",yes\n")),
    case("system-csv-accounts-missing", f"audit {CSV_CFG}", "error: csv/system/accounts.csv: no such file. Hint: the "
         "csv profile needs dossiers.csv and accounts.csv.", remove("csv/system/accounts.csv")),
    case("system-csv-empty", f"audit {CSV_CFG}", f"error: {DOSSIERS}: the file is empty. Expected a header: "
         "dossier_code, procedure, applicant, status, workflow_key, workflow_version, current_step, assignee, unit, "
         "received_at, due_at, finished_at, returned_at.", write(DOSSIERS, "")),
    case("system-csv-bad-date", f"audit {CSV_CFG}", f"error: {DOSSIERS}, row 2, received_at: '2020-09-31' is not a "
         f"date. {DATE_HINT}", edit(DOSSIERS, ",2020-09-01,", ",2020-09-31,")),
    case("system-csv-bad-version", f"audit {CSV_CFG}", f"error: {DOSSIERS}, row 2, workflow_version: 'v1' is not a "
         "whole number.", edit(DOSSIERS, ",1.004227.000.00.00.H48,1,", ",1.004227.000.00.00.H48,v1,")),
    case("system-csv-not-utf8", f"audit {CSV_CFG}", f"error: {DOSSIERS}, row 2: {LEGACY.format(0xea)}",
         edit(DOSSIERS, "Nguyễn Văn Sơn", "Lê"),
         lambda d: (d / DOSSIERS).write_bytes((d / DOSSIERS).read_bytes().replace("Lê".encode(), "Lê".encode("cp1252")))),
    case("system-csv-a-file-not-a-folder", f"audit {CSV_CFG} --system {DOSSIERS}", f"error: {DOSSIERS}: not a "
         "directory. Hint: --system DIR (csv export) or --system URL --mapping FILE."),
    # ------------------------------------------------------------- system: vendor database + mapping
    case("mapping-missing-table", "audit", f"error: {MAPPING}: dossier.table 'HOSO' does not exist. Tables: DM_CANBO, "
         "HS_HOSO, HS_NHATKY, HS_XULY_HIENTAI.", edit(MAPPING, "table: HS_HOSO", "table: HOSO")),
    case("mapping-missing-column", "audit", f"error: {MAPPING}: dossier.columns: HS_HOSO.MA_TT does not exist. "
         "Columns of HS_HOSO: ID, MA_HOSO, MA_TTHC, CHU_HOSO, SO_DIENTHOAI, DIA_CHI, DONVI_TIEPNHAN, KENH_NOP, "
         "NGAY_TIEPNHAN, NGAY_HENTRA, NGAY_HENTRA_MOI, NGAY_KETTHUC, NGAY_TRAKQ, TRANGTHAI, MA_QUYTRINH, PHIENBAN.",
         edit(MAPPING, "MA_TTHC", "MA_TT")),
    case("mapping-sql-in-identifier", "audit", f"error: {MAPPING}: account.columns: DM_CANBO.TAIKHOAN\"; DROP TABLE "
         "HS_HOSO; --\" does not exist. Columns of DM_CANBO: TAIKHOAN, HOTEN, MA_PHONGBAN, TRANGTHAI_HD.",
         edit(MAPPING, "TAIKHOAN, name", 'TAIKHOAN"; DROP TABLE HS_HOSO; --", name')),
    case("mapping-unknown-canonical-status", "audit", f"error: {MAPPING}:7:22: dossier.status_values.0: 'filed' is "
         f"not one of: submitted, received, rejected, in_progress, supplement_requested, awaiting_payment, "
         f"withdrawn, stopped, finished, returned. Hint: see \"System: mapping profile\" in docs/file-formats.md.",
         edit(MAPPING, "0: submitted", "0: filed")),
    case("mapping-status-values-missing", "audit", f"error: {MAPPING}:5:3: dossier: 'status_values' is required. "
         f"Keys here: table, columns, statuses. Hint: see \"System: mapping profile\" in docs/file-formats.md.\n"
         f"error: {MAPPING}:7:3: dossier: unknown key 'statuses'. Known: table, query, status_values, columns. "
         f"Hint: see \"System: mapping profile\" in docs/file-formats.md.", edit(MAPPING, "status_values: {", "statuses: {")),
    case("mapping-not-a-mapping", "audit", f"error: {MAPPING}:1:1: expected a mapping with keys dossier, task, "
         f"account, events. Hint: see \"System: mapping profile\" in docs/file-formats.md.", write(MAPPING, "- a\n")),
    case("mapping-yaml-syntax", "audit", f"error: {MAPPING}:2:1: YAML syntax error: did not find expected node "
         f"content. Hint: check the indentation and quoting on this line and the one above.",
         write(MAPPING, "dossier: [\n")),
    case("mapping-missing-file", "audit", f"error: {MAPPING}: no such file. Hint: --mapping FILE describes the vendor "
         "schema (see docs/file-formats.md).", remove(MAPPING)),
    case("mapping-query-fails", "audit", f"error: {MAPPING}: account.query failed: no such table: nowhere. Hint: a "
         "query: is one SELECT statement, and it runs read-only.",
         edit(MAPPING, "table: DM_CANBO", "query: SELECT * FROM nowhere")),
    case("mapping-query-lacks-column", "audit", f"error: {MAPPING}: account.query has no column 'HOTEN'. Columns: "
         "TAIKHOAN, MA_PHONGBAN.",
         edit(MAPPING, "table: DM_CANBO", 'query: "SELECT TAIKHOAN, MA_PHONGBAN FROM DM_CANBO"')),
    case("mapping-query-second-statement", "audit", f"error: {MAPPING}: account.query failed: near \";\": syntax error. "
         "Hint: a query: is one SELECT statement, and it runs read-only.",
         edit(MAPPING, "table: DM_CANBO", 'query: "SELECT * FROM DM_CANBO; DELETE FROM HS_HOSO"')),
    case("mapping-status-values-wrong-type", "audit", f"error: {MAPPING}:7:18: dossier.status_values: 'banana' is "
         f"not of type 'object'. Hint: vendor value: canonical status, e.g. {{0: submitted, 1: received}}.",
         edit_line(MAPPING, "status_values:", "status_values: banana")),
    case("mapping-active-values-not-a-list", "audit", f"error: {MAPPING}:14:18: account.active_values: 1 is not of "
         f"type 'array'. Hint: the values that mean active, as a list: [1].",
         edit(MAPPING, "active_values: [1]", "active_values: 1")),
    case("mapping-columns-a-list", "audit", f"error: {MAPPING}:13:12: account.columns: a list is not of type "
         f"'object'. Hint: see \"System: mapping profile\" in docs/file-formats.md.",
         edit_line(MAPPING, "columns: {account:", "columns: [TAIKHOAN, HOTEN]")),
    case("mapping-writable-quoted", f"apply {PLAN} --yes", f"error: {MAPPING}:3:11: writable: 'false' is not of "
         f"type 'boolean'. Hint: write true or false, without quotes; only true lets apply write.",
         edit(MAPPING, "writable: true", 'writable: "false"')),
    case("vendor-unknown-status-value", "audit", f"error: {MAPPING}: dossier.status_values: HS_HOSO.TRANGTHAI holds "
         "value(s) '42' with no canonical status. Hint: add them under status_values.",
         sql(VENDOR, "UPDATE HS_HOSO SET TRANGTHAI = 42 WHERE rowid = 3")),
    case("vendor-bad-date", "audit", f"error: HS_HOSO, row 3, received_at: 'hôm qua' is not a date. {DATE_HINT}",
         sql(VENDOR, "UPDATE HS_HOSO SET NGAY_TIEPNHAN = 'hôm qua' WHERE rowid = 3")),
    case("vendor-bad-version", "audit", "error: HS_HOSO, row 3, workflow_version: 'v2' is not a whole number.",
         sql(VENDOR, "UPDATE HS_HOSO SET PHIENBAN = 'v2' WHERE rowid = 3")),
    case("vendor-table-dropped", "audit", f"error: {MAPPING}: events.table 'HS_NHATKY' does not exist. Tables: "
         "DM_CANBO, HS_HOSO, HS_XULY_HIENTAI.", sql(VENDOR, "DROP TABLE HS_NHATKY")),
    case("profile-activiti-needs-a-url", "audit --profile activiti --system csv/system", "error: --system csv/system: "
         "the activiti profile reads the engine's database. Hint: --system URL, e.g. postgresql://user@host/activiti or "
         "sqlite:///activiti.db."),
    case("profile-sidecars-without-activiti", "audit --sidecars x", "error: --sidecars is for --profile activiti "
         "(working days of the engine's process versions)."),
    case("profile-csv-given-a-url", "audit --profile csv", "error: --profile csv reads an export folder, not the URL "
         "sqlite:///system/binh-son-igate.sqlite."),
    case("profile-activiti-on-a-vendor-database", "audit --profile activiti", "error: "
         "sqlite:///system/binh-son-igate.sqlite: table ACT_RE_PROCDEF does not exist; the activiti profile needs it. "
         "Tables: DM_CANBO, HS_HOSO, HS_NHATKY, HS_XULY_HIENTAI. Hint: point --system at the engine's database (the "
         "Activiti 5/6/7, Flowable 6 or Camunda 7 schema).", edit(PROJECT, "mapping: system/mapping.yaml\n", "")),
    # ----------------------------------------------------------------------------- URLs
    case("url-unknown-scheme", "audit --system notaurl://x", "error: system database URL 'notaurl://x': Can't load "
         "plugin: sqlalchemy.dialects:notaurl. Hint: e.g. postgresql://user@host/db, mysql://user@host/db or a file "
         "path."),
    case("url-unreachable-hides-password", "audit --system postgresql://clerk:S3cret@127.0.0.1:1/igate",
         "error: system database postgresql+psycopg://clerk:***@127.0.0.1:1/igate: cannot connect: connection failed: "
         "connection to server at \"127.0.0.1\", port 1 failed: Connection refused. Hint: check host, port, database "
         "name and that the server is running.", absent=("S3cret",)),
    case("url-unparsed-hides-password", "audit --system postgresql://clerk:S3cret@host:port/x",
         "error: system database URL 'postgresql+psycopg://clerk:***@host:port/x': port 'port' is not a number. Hint: "
         "e.g. postgresql://user@host/db, mysql://user@host/db or a file path.", absent=("S3cret",)),
    case("url-sqlite-file-missing", "audit --system sqlite:///system/nope.sqlite",
         "error: system database system/nope.sqlite: no such file. Hint: check the path (sqlite:///relative/path from "
         "the current folder, sqlite:////absolute/path)."),
    case("url-bad-charset", "audit --system mysql+pymysql://root@127.0.0.1:3306/test?charset=bogus",
         "error: system database URL 'mysql+pymysql://root@127.0.0.1:3306/test?charset=bogus': charset 'bogus' is "
         "not a MySQL/MariaDB character set. Hint: ?charset=utf8mb4, or leave it out."),
    case("url-path-where-a-url-is-needed", f"audit --system {VENDOR}", f"error: --system {VENDOR}: a file path where "
         f"--mapping needs a database URL. Hint: a SQLite file is --system sqlite:///{VENDOR}."),
    case("store-unreachable-hides-password", "census --store postgresql://u:S3cret@127.0.0.1:1/db",
         "error: store postgresql+psycopg://u:***@127.0.0.1:1/db: cannot connect: connection failed: connection to "
         "server at \"127.0.0.1\", port 1 failed: Connection refused. Hint: check host, port, database name and that "
         "the server is running.", absent=("S3cret",)),
    case("store-missing-file", "history --store nope.duckdb", "error: store nope.duckdb: no such file. Hint: run "
         "`reconcile audit` first, or pass --store."),
    case("store-is-a-vendor-sqlite", f"census --store {VENDOR}",
         f"error: store {VENDOR}: a SQLite database, not a DuckDB "
         f"store. Hint: a vendor database is --system sqlite:///{VENDOR}; the store is a local DuckDB file (default "
         "reconcile.duckdb) or a postgresql:// or mysql:// URL.", absent=("download", "extension")),
    case("store-remote-scheme", "audit --store md:x", "error: store md:x: a remote or extension database (md:), "
         "not a local file. Hint: the store is a local DuckDB file (default reconcile.duckdb) or a postgresql:// or "
         "mysql:// URL; a local name with a colon: ./NAME.", absent=("download",)),
    # -------------------------------------------------------------------------- catalog
    case("catalog-next-to-unknown-step", "workflows check workflows", f"error: {EDU}:11:76: step 'S02' -> 'S13': no "
         "such step. Steps here: S01, S02, S03, S04.", edit(EDU, "next: [S03]", "next: [S13]")),
    case("catalog-duplicate-step-id", "workflows check workflows",
         f"error: {EDU}:11:76: step 'S02' -> 'S03': no such step. Steps here: S01, S02, S04.\n"
         f"error: {EDU}:12:10: duplicate step id 'S02'; first defined at line 11. Step ids must be unique within a "
         "version.", edit(EDU, "id: S03,", "id: S02,")),
    case("catalog-no-final-step", "workflows check workflows", f"error: {EDU}:9:1: no final step. Mark the step(s) "
         "that end the procedure with final: true.", edit(EDU, "final: true", "final: false")),
    case("catalog-version-not-file-name", "workflows check workflows", f"error: {EDU}:6:10: version 2 does not match "
         "the file name v1.yaml. Set version: 1 or rename the file.", edit(EDU, "version: 1", "version: 2")),
    case("catalog-days-not-a-number", "workflows check workflows", f"error: {EDU}:11:65: steps[1].days: 'lots' is "
         f"not of type 'number'. Hint: see \"Workflow catalog\" in docs/file-formats.md (procedure, name, version, steps: id, "
         f"name, unit, days, next).", edit(EDU, "days: 17", "days: lots")),
    case("catalog-days-negative", "workflows check workflows", f"error: {EDU}:11:65: steps[1].days: -3 is less "
         f"than the minimum of 0. Hint: see \"Workflow catalog\" in docs/file-formats.md (procedure, name, version, steps: id, "
         f"name, unit, days, next).", edit(EDU, "days: 17", "days: -3")),
    case("catalog-days-nan", "workflows check workflows", f"error: {EDU}:11:65: '.nan' is not a finite number. "
         f"Hint: write a number such as 5 or 0.5.",
         edit(EDU, "days: 17", "days: .nan")),
    case("catalog-days-infinite", "workflows check workflows", f"error: {EDU}:11:65: '.inf' is not a finite "
         f"number. Hint: write a number such as 5 or 0.5.",
         edit(EDU, "days: 17", "days: .inf")),
    case("catalog-procedure-missing", "workflows check workflows", f"error: {EDU}:3:1: 'procedure' is required. "
         f"Keys here: name, field, version, valid_from, synthetic, steps. Hint: see \"Workflow catalog\" in docs/file-formats.md "
         f"(procedure, name, version, steps: id, name, unit, days, next).",
         edit(EDU, 'procedure: "1.004439.000.00.00.H48"  # the code the system stores on each dossier (its workflow '
              'key); the same in every version\n', "")),
    case("catalog-step-name-missing", "workflows check workflows", f"error: {EDU}:11:5: steps[1]: 'name' is "
         f"required. Keys here: id, nam, unit, days, next, final. Hint: see \"Workflow catalog\" in docs/file-formats.md "
         f"(procedure, name, version, steps: id, name, unit, days, next).\n"
         f"error: {EDU}:11:15: steps[1]: unknown key 'nam'. Known: id, name, unit, days, next, final, may_end, "
         f"start, side_of. Hint: see \"Workflow catalog\" in docs/file-formats.md (procedure, name, version, steps: id, name, "
         f"unit, days, next).", edit(EDU, 'name: "Thẩm định', 'nam: "Thẩm định')),
    case("catalog-valid-from-not-a-date", "workflows check workflows", f"error: {EDU}:7:13: valid_from: "
         f"'2020-02-30' is not a 'date'. Hint: see \"Workflow catalog\" in docs/file-formats.md (procedure, name, version, "
         f"steps: id, name, unit, days, next).", edit(EDU, "valid_from: 2020-01-01", "valid_from: 2020-02-30")),
    case("catalog-python-tag", "workflows check workflows", f"error: {EDU_DIR}/v2.yaml:1:1: unsupported YAML tag "
         f"!!python/object/apply:os.system. Hint: these files hold plain data (text, numbers, lists and mappings): "
         f"remove the tag.",
         write(f"{EDU_DIR}/v2.yaml", PYTHON_TAG + "\n")),
    case("catalog-not-utf8", "workflows check workflows", f"error: {EDU_DIR}/v2.yaml:1: not UTF-8 text (byte 0xe3 "
         f"at offset 6). Hint: save the file as UTF-8.", write(f"{EDU_DIR}/v2.yaml", b"name: \xe3\n")),
    case("catalog-empty-file", "workflows check workflows", f"error: {EDU_DIR}/v2.yaml:1:1: empty file. Expected keys "
         "procedure, name, version, steps.", write(f"{EDU_DIR}/v2.yaml", "")),
    case("catalog-missing-folder", "workflows check nope", "error: nope: no such directory. Expected workflow "
         "versions named v<N>.yaml below it (e.g. nope/land/v1.yaml)."),
    case("catalog-error-stops-the-audit", "audit", f"error: {EDU}:11:76: step 'S02' -> 'S13': no such step. Steps "
         "here: S01, S02, S03, S04.", edit(EDU, "next: [S03]", "next: [S13]")),
    case("catalog-duplicate-key", "workflows check workflows", f"error: {EDU}:4:1: duplicate key 'procedure' "
         f"(first at 3:1). Hint: keep one; YAML would silently keep only the last.",
         edit(EDU, "procedure:", "procedure: \"9.9\"\nprocedure:")),
    case("catalog-alias-bomb", "workflows check workflows", f"error: {EDU_DIR}/v2.yaml:4:5: YAML anchor &b0 is "
         f"used by an alias (*b0): anchors and aliases are not read here. Hint: write the value out in full where "
         f"the alias is.",
         write(f"{EDU_DIR}/v2.yaml", 'procedure: "9.9"\nname: N\nversion: 2\n' + alias_bomb("steps")),
         isolated=True),
    # ------------------------------------------------------------------------------ BPMN
    case("bpmn-flow-to-missing-element", "workflows check workflows", f"error: {EDU_DIR}/v2.bpmn:7: sequence flow "
         "'f2' target 'B_deleted': no such element in process 'p'. Hint: reconnect the flow in the modeller.",
         bpmn("flow-to-missing.bpmn", f"{EDU_DIR}/v2.bpmn")),
    case("bpmn-malformed", "workflows check workflows", f"error: {EDU_DIR}/v2.bpmn:6:13: malformed XML: Opening and "
         "ending tag mismatch: userTask line 5 and process. Hint: open the file in a BPMN modeller and export it again.",
         bpmn("malformed.bpmn", f"{EDU_DIR}/v2.bpmn")),
    case("bpmn-no-process", "workflows check workflows", f"error: {EDU_DIR}/v2.bpmn:2: no BPMN <process> element (root "
         "<definitions>). Hint: export a BPMN 2.0 process diagram, not a collaboration-only or DMN file.",
         bpmn("no-process.bpmn", f"{EDU_DIR}/v2.bpmn")),
    case("bpmn-two-processes", "workflows check workflows", f"error: {EDU_DIR}/v2.bpmn:10: 2 processes, none marked "
         "isExecutable=\"true\" and 2 hold tasks: 'Đăng ký hộ kinh doanh' (hokinhdoanh), 'Thay đổi hộ kinh doanh' "
         f"(hokinhdoanh_thaydoi). {PICK_HINT}", bpmn("two-processes.bpmn", f"{EDU_DIR}/v2.bpmn")),
    case("bpmn-link-without-catch", "workflows check workflows", f"error: {EDU_DIR}/v2.bpmn:8: link throw event "
         "'toPage2' (link 'trang2'): no link catch event of that name in process 'hotich'. Hint: give the catch event's "
         "link the same name in the modeller.", bpmn("link-events.bpmn", f"{EDU_DIR}/v2.bpmn"),
         edit(f"{EDU_DIR}/v2.bpmn", '<bpmn:linkEventDefinition name="trang2"/>\n    </bpmn:intermediateCatchEvent>',
              '<bpmn:linkEventDefinition name="trang 2"/>\n    </bpmn:intermediateCatchEvent>')),
    case("bpmn-no-task", "workflows check workflows", f"error: {EDU_DIR}/v2.bpmn:3: process 'p' has no task: a "
         "catalog version needs at least one step. Hint: export the process that holds the procedure's tasks.",
         bpmn("dangling-task.bpmn", f"{EDU_DIR}/v2.bpmn"), edit(f"{EDU_DIR}/v2.bpmn", '<userTask id="A" name="Tiếp '
         'nhận"/>', '<manualTask id="A" isForCompensation="true"/>'), edit(f"{EDU_DIR}/v2.bpmn", '<userTask id="B" '
         'name="Thẩm định"/>', '<intermediateCatchEvent id="B"/>')),
    case("bpmn-external-entity", "workflows check workflows", f"error: {EDU_DIR}/v2.bpmn:3:91: malformed XML: "
         "Attribute references external entity 'x'. Hint: open the file in a BPMN modeller and export it again.",
         write(f"{EDU_DIR}/v2.bpmn", XXE)),
    case("bpmn-entity-bomb", "workflows check workflows", f"error: {EDU_DIR}/v2.bpmn:3:…: malformed XML: Maximum "
         "entity amplification factor exceeded, see xmlCtxtSetMaxAmplification. Hint: open the file in a BPMN "
         "modeller and export it again.", write(f"{EDU_DIR}/v2.bpmn", LAUGHS)),
    case("bpmn-import-external-entity", "workflows import-bpmn x.bpmn --out out.yaml", "error: x.bpmn:3:91: malformed "
         "XML: Attribute references external entity 'x'. Hint: open the file in a BPMN modeller and export it again.",
         write("x.bpmn", XXE)),
    case("bpmn-import-unknown-process", "workflows import-bpmn x.bpmn --out out.yaml --process nope",
         "error: x.bpmn:3: no process 'nope'; the processes here: 'Đăng ký hộ kinh doanh' (hokinhdoanh), 'Thay đổi hộ "
         f"kinh doanh' (hokinhdoanh_thaydoi). {PICK_HINT}",
         bpmn("two-processes.bpmn", "x.bpmn")),
    case("bpmn-import-out-folder-missing", "workflows import-bpmn x.bpmn --out nodir/out.yaml", "error: nodir/out.yaml: "
         "folder nodir does not exist. Hint: create it first.", bpmn("land-v1.bpmn", "x.bpmn")),
    case("bpmn-import-missing", "workflows import-bpmn nope.bpmn", "error: nope.bpmn: cannot read: No such file or "
         "directory. Hint: give the path of a .bpmn file."),
    case("bpmn-sidecar-wrong-type", "workflows import-bpmn x.bpmn --sidecar s.yaml", "error: s.yaml:1:8: steps: 5 "
         "is not of type 'object'. Hint: a sidecar holds procedure, name, field, version, valid_from, process and steps: "
         "{TASK_ID: {days, unit, name}}.", bpmn("land-v1.bpmn", "x.bpmn"), write("s.yaml", "steps: 5\n")),
    # ------------------------------------------------------------------------ migration rules
    case("rules-target-step-unknown", "rules check", f"error: {RULES}:18:18: rule 'v2-to-v3': target step 'S99' is "
         f"not in version 3 of '1.004227.000.00.00.H48'. Hint: steps there: {LAND_V3_STEPS}.",
         edit(RULES, "{S06: S06A}", "{S06: S99}")),
    case("rules-unknown-version", "rules check", f"error: {RULES}:7:11: rule 'v1-to-v2': procedure "
         "'1.004227.000.00.00.H48' has no version 7. Hint: versions in the catalog: 1, 2, 3.",
         edit(RULES, "from: 1", "from: 7")),
    case("rules-duplicate-id", "rules check", f"error: {RULES}:15:9: rule id 'v1-to-v2' is also used at {RULES}:6:5. "
         "Hint: rule ids must be unique within a procedure (plans cite them).",
         edit(RULES, "id: v2-to-v3", "id: v1-to-v2")),
    case("rules-yaml-syntax", "rules check", f"error: {RULES}:7:3: YAML syntax error: did not find expected node "
         f"content. Hint: check the indentation and quoting on this line and the one above.",
         edit(RULES, "rules:", "rules: [\n")),
    case("rules-wrong-type", "rules check", f"error: {RULES}:10:15: rules[0].same_ids: 'maybe' is not of type "
         "'boolean'. Hint: see the migration rules format (procedure, assign, rules: id, from, to, steps, when) in docs/file-formats.md.",
         edit(RULES, "same_ids: true", "same_ids: maybe")),
    case("rules-unknown-unit", "rules check", f"error: {RULES}:4:10: unit 'NOUNIT' is not the unit of any step of "
         "procedure '1.004227.000.00.00.H48'. Hint: units there: LANHDAO, MOTCUA, THUE, VPDKDD.",
         edit(RULES, "LANHDAO: lanhdao", "NOUNIT: lanhdao")),
    case("rules-target-dead-end", "rules check", f"error: {RULES}:18:18: rule 'v2-to-v3': target step 'S03B' cannot "
         "reach a final step of version 3 of '1.004227.000.00.00.H48': a dossier sent there can never finish. Hint: map "
         "it to a step on a path to a final step.", edit(RULES, "steps: {S06: S06A}", "steps: {S06: S03B}")),
    case("rules-confirmed-without-guess", "rules check", f"error: {RULES}:11:19: rule 'v1-to-v2': confirmed_by on a "
         "rule that is not a guess. Hint: add guess: true, or remove confirmed_by.",
         edit(RULES, "    same_ids: true\n  - id: v2-edit", "    same_ids: true\n    confirmed_by: Ai\n  - id: v2-edit")),
    case("rules-alias-bomb", "rules check", f"error: {EDU_DIR}/rules.yaml:2:5: YAML anchor &b0 is used by an alias "
         f"(*b0): anchors and aliases are not read here. Hint: write the value out in full where the alias is.",
         write(f"{EDU_DIR}/rules.yaml", 'procedure: "1.004439.000.00.00.H48"\n' + alias_bomb("rules")),
         isolated=True),
    # ---------------------------------------------------------------------------- project file
    case("project-not-a-mapping", "audit", f"error: {PROJECT}:1:1: expected a mapping of settings (store, as_of, "
         f"paper_only_units, ...). Hint: see \"Project file\" in docs/file-formats.md.", write(PROJECT, "- just\n- a list\n")),
    case("project-yaml-syntax", "audit", f"error: {PROJECT}:2:1: YAML syntax error: did not find expected node "
         f"content. Hint: check the indentation and quoting on this line and the one above.",
         write(PROJECT, "as_of: [\n")),
    case("project-missing-config", "audit --config nope.yaml", "error: nope.yaml: no such file."),
    case("project-as-of-not-a-date", "audit", f"error: {PROJECT}:4:8: as_of: 'someday' is not a date. Expected "
         f"YYYY-MM-DD or dd/mm/yyyy.", edit(PROJECT, "as_of: 2021-06-30", "as_of: someday")),
    case("project-period-incomplete", "audit", f"error: {PROJECT}:5:9: period: 'to' is required. Keys here: from. "
         f"Hint: see \"Project file\" in docs/file-formats.md.",
         edit(PROJECT, "period: {from: 2021-01-01, to: 2021-06-30}", "period: {from: 2021-01-01}")),
    case("project-stalled-wrong-type", "audit", f"error: {PROJECT}:3:19: stalled.factor: 'fast' is not of type "
         f"'number'. Hint: see \"Project file\" in docs/file-formats.md.",
         edit(PROJECT, "district:", "stalled: {factor: fast}\ndistrict:")),
    case("project-unknown-convention", "stats", f"error: {PROJECT}:9:15: statistics.convention: 'sideways' is not "
         f"one of: separate, on-time, excluded. Hint: see \"Project file\" in docs/file-formats.md.",
         edit(PROJECT, "convention: separate", "convention: sideways")),
    case("project-no-register", "audit", f"error: {PROJECT}:12:11: register: [] should be non-empty. Hint: a "
         f"register file, or a list of them.",
         edit(PROJECT, "register: [register/so-theo-doi-ho-so-2021.xlsx]", "register: []")),
    case("project-unknown-profile", "audit", f"error: {PROJECT}:3:10: profile: 'engine' is not one of: mapping, "
         f"csv, activiti. Hint: see \"Project file\" in docs/file-formats.md.",
         edit(PROJECT, "district:", "profile: engine\ndistrict:")),
    case("project-date-out-of-range", "audit", f"error: {PROJECT}:4:8: as_of: '2021-13-45' is not a date. Expected "
         f"YYYY-MM-DD or dd/mm/yyyy.",
         edit(PROJECT, "as_of: 2021-06-30", "as_of: 2021-13-45")),
    case("project-tolerance-not-a-number", "audit", f"error: {PROJECT}:7:22: date_tolerance_days: 'lots' is not of "
         f"type 'integer'. Hint: see \"Project file\" in docs/file-formats.md.",
         edit(PROJECT, "date_tolerance_days: 0", "date_tolerance_days: lots")),
    case("project-not-utf8", "audit", f"error: {PROJECT}:1: not UTF-8 text (byte 0xe3 at offset 7). Hint: save the "
         f"file as UTF-8.", write(PROJECT, b"as_of: \xe3\n")),
    case("project-store-not-text", "audit", f"error: {PROJECT}:16:8: store: a mapping is not of type 'string'. "
         f"Hint: a path (relative to this file) or a URL, as text.", edit(PROJECT, "store: reconcile.duckdb",
         "store: {a: 1}")),
    case("project-alias-bomb", "audit", f"error: {PROJECT}:4:5: YAML anchor &b0 is used by an alias (*b0): anchors "
         f"and aliases are not read here. Hint: write the value out in full where the alias is.",
         edit(PROJECT, "as_of: 2021-06-30",
         alias_bomb("as_of").strip()), isolated=True),
    # ------------------------------------------------------------------------------ dates
    case("as-of-impossible-date", "audit --as-of 2021-02-30", "error: --as-of: '2021-02-30' is not a date. Expected "
         "YYYY-MM-DD or dd/mm/yyyy."),
    case("as-of-with-time", "audit --as-of 2021-06-30T10:00", "error: --as-of: '2021-06-30T10:00' is not a date. "
         "Expected YYYY-MM-DD or dd/mm/yyyy."),
    case("as-of-empty", "audit --as-of ''", "error: --as-of: empty value. Hint: give a value, or leave --as-of "
         "out for its default."),
    case("as-of-before-the-data", "audit --as-of 1970-01-01", "error: --as-of: 1970-01-01 is outside the dates an "
         "audit can be as of, 1990-01-01..2100-12-31. Hint: give the date the register and the system were read "
         "(working days count Vietnam's holidays, known up to 2100)."),
    case("as-of-end-of-calendar", "audit --as-of 9999-12-31", "error: --as-of: 9999-12-31 is outside the dates an "
         "audit can be as of, 1990-01-01..2100-12-31. Hint: give the date the register and the system were read "
         "(working days count Vietnam's holidays, known up to 2100)."),
    case("period-reversed", "stats --period 2021-07-01 2021-01-01", "error: --period 2021-07-01 2021-01-01: the period "
         "ends before it starts."),
    case("period-after-the-audit", "stats --period 2021-01-01 2021-12-31", "error: --period 2021-01-01 2021-12-31: "
         "ends after the audit date 2021-06-30; the data says nothing about later days. Hint: end the period on or "
         "before the audit date, or audit later."),
    case("period-not-a-date", "stats --period 2021-01-01 someday", "error: --period: 'someday' is not a date. "
         "Expected YYYY-MM-DD or dd/mm/yyyy."),
    # --------------------------------------------------------------------------- plan file
    case("plan-unknown-action", f"apply {PLAN} --yes", "error: plan.yaml:85: action 'delete': expected one of migrate, "
         "reassign, close, backfill, escalate.", edit(PLAN, "action: reassign", "action: delete")),
    case("plan-other-format", f"apply {PLAN} --yes", "error: plan.yaml:2: plan.format 2: this tool reads format 1. "
         "Hint: write the plan again with this version's `reconcile plan`.", edit(PLAN, "  format: 1", "  format: 2")),
    case("plan-unknown-run", f"apply {PLAN} --yes", "error: plan.yaml: plan made for audit run 7, which "
         "duckdb:///reconcile.duckdb does not hold. Hint: plan again from this store's latest run.",
         edit(PLAN, "run: 1", "run: 7")),
    case("plan-field-apply-does-not-write", f"apply {PLAN} --yes", "error: plan.yaml:93: set.password: not a field "
         "apply writes. Writable: status, workflow_key, workflow_version, due_at_revised, finished_at, returned_at, "
         "current_step, assignee, unit, step_entered_at, step_due_at.",
         edit(PLAN, 'set: {"assignee": "thue.vothithuthuy"}', 'set: {"assignee": "thue.vothithuthuy", "password": "x"}')),
    case("plan-short-fingerprint", f"apply {PLAN} --yes", "error: plan.yaml:91: fingerprint '12f4': expected the "
         "32-hex-digit fingerprint of the dossier row the action was computed from. Hint: plan it again.",
         edit(PLAN, REASSIGN_FP, "fingerprint: 12f4")),
    case("plan-confirmed-not-a-bool", f"apply {PLAN} --yes", "error: plan.yaml:36: confirmed 'yes please': expected "
         "true or false.", edit(PLAN, "  confirmed: true", "  confirmed: yes please")),
    case("plan-pinned-copy-differs", f"apply {PLAN} --yes", "error: plan.yaml:92: assignee 'thue.someoneelse' differs "
         "from set.assignee 'thue.vothithuthuy'. Hint: edit both, or neither.",
         edit(PLAN, "  assignee: thue.vothithuthuy", "  assignee: thue.someoneelse")),
    case("plan-yaml-syntax", f"apply {PLAN} --yes", f"error: {PLAN}:20:1: YAML syntax error: did not find expected "
         f"node content. Hint: check the indentation and quoting on this line and the one above.",
         edit(PLAN, "actions:", "actions: [\n")),
    case("plan-not-a-plan", f"apply {PLAN} --yes", "error: plan.yaml:1: expected a plan file with 'plan:' (header) "
         "and 'actions:' (list). Hint: `reconcile plan --out plan.yaml` writes one.", write(PLAN, "- 1\n")),
    case("plan-not-utf8", f"apply {PLAN} --yes", "error: plan.yaml: not UTF-8. Hint: save the plan as UTF-8.",
         write(PLAN, b"plan: \xe3\n")),
    case("plan-python-tag", f"apply {PLAN} --yes", f"error: {PLAN}:93:8: unsupported YAML tag "
         f"!!python/object/apply:os.system. Hint: these files hold plain data (text, numbers, lists and mappings): "
         f"remove the tag.", edit(PLAN, 'set: {"assignee": "thue.vothithuthuy"}', "set: " + PYTHON_TAG)),
    case("plan-missing", "apply nope.yaml --yes", "error: nope.yaml: no such file. Hint: `reconcile plan --out "
         "nope.yaml` writes one."),
    case("plan-version-not-a-number", f"apply {PLAN} --yes", "error: plan.yaml:60: set.workflow_version: 'three' is "
         "not a version number.", edit(PLAN, '"workflow_version": 3, "current_step": "S06A"}',
                                       '"workflow_version": "three", "current_step": "S06A"}'),
         edit(PLAN, "  version: 3", '  version: "three"')),
    case("plan-migrate-to-unknown-step", f"apply {PLAN} --yes", f"error: {PLAN}:50: dossier "
         f"000.00.53.H48-210331-0001: step 'S99' is not a step of version 3 of 1.004227.000.00.00.H48. Hint: steps "
         f"there: S01, S03, S03A, S03B, S04, S06A, S07, S08, S09.",
         edit(PLAN, "  step: S06A", "  step: S99"), edit(PLAN, '"current_step": "S06A"}', '"current_step": "S99"}')),
    case("plan-reassign-to-unknown-account", f"apply {PLAN} --yes", f"error: {PLAN}:84: dossier "
         f"000.00.53.H48-210607-0001: set.assignee 'nobody.here' is not an account in audit run 1's staff "
         f"directory. Hint: active accounts of THUE: thue.dangminhloc, thue.nguyenngocnam, thue.vothithuthuy.",
         edit(PLAN, 'set: {"assignee": "thue.vothithuthuy"}', 'set: {"assignee": "nobody.here"}'),
         edit(PLAN, "  assignee: thue.vothithuthuy", "  assignee: nobody.here")),
    case("plan-alias-bomb", f"apply {PLAN} --yes", f"error: {PLAN}:18:5: YAML anchor &b0 is used by an alias "
         f"(*b0): anchors and aliases are not read here. Hint: write the value out in full where the alias is.",
         edit(PLAN, "actions:", alias_bomb("bomb").strip() + "\nactions:"),
         isolated=True),
    case("plan-rules-folder-missing", "plan --rules nowhere", "error: --rules nowhere: no such directory. Hint: give "
         "the workflow catalog folder (the one holding <procedure>/v<N>.yaml and rules.yaml files)."),
    case("plan-out-folder-missing", "plan --out nodir/p.yaml", "error: nodir/p.yaml: folder nodir does not exist. "
         "Hint: create it first."),
    case("plan-command-unknown-run", "plan --run 5", "error: run 5: no such audit run in duckdb:///reconcile.duckdb. Hint: "
         "`reconcile history`."),
    case("plan-other-run-fingerprint", f"apply {PLAN} --yes", "error: plan.yaml: plan made for a run 1 with fingerprint "
         "abcdefabcdefabcd, but this store's run 1 has 2e85539624f75978. Hint: plan again.",
         edit(PLAN, "run_fingerprint: 2e85539624f75978", "run_fingerprint: abcdefabcdefabcd")),
    case("plan-other-mapping", f"apply {PLAN} --yes", "error: plan.yaml: plan.system.mapping 'other.yaml' differs from "
         "audit run 1's 'system/mapping.yaml'. Hint: the header is written by `reconcile plan`; plan again.",
         edit(PLAN, '"mapping": "system/mapping.yaml"}', '"mapping": "other.yaml"}')),
    case("plan-dossier-twice", f"apply {PLAN} --yes", "error: plan.yaml:30: dossier 000.00.53.H48-210105-0003 already "
         "has an action at line 19. Hint: one action per dossier.",
         edit(PLAN, "- dossier_code: 000.00.53.H48-210330-0001", "- dossier_code: 000.00.53.H48-210105-0003")),
    case("plan-backfill-with-fingerprint", f"apply {PLAN} --yes", "error: plan.yaml:26: fingerprint "
         "'4283bdb57f1c77cb9b1795a2b41c2405': a backfill creates a row that does not exist yet, so its fingerprint is "
         "null. Hint: plan it again.",
         edit(PLAN, "  fingerprint: null", "  fingerprint: 4283bdb57f1c77cb9b1795a2b41c2405")),
    case("plan-impossible-date", f"apply {PLAN} --yes", "error: plan.yaml:39: set.returned_at: '2021-06-31' is not a "
         "date. Expected YYYY-MM-DD (or an ISO date and time).",
         edit(PLAN, '"status": "returned", "returned_at": "2021-06-03"', '"status": "returned", "returned_at": "2021-06-31"'),
         edit(PLAN, 'returned_at: "2021-06-03"', 'returned_at: "2021-06-31"')),
    case("plan-unknown-status", f"apply {PLAN} --yes", f"error: plan.yaml:39: set.status: 'lost' is not a canonical "
         f"status. Expected one of: {STATUSES}.",
         edit(PLAN, '"status": "returned", "returned_at": "2021-06-03"', '"status": "lost", "returned_at": "2021-06-03"')),
    case("plan-reason-code-not-text", f"apply {PLAN} --yes", "error: plan.yaml:54: reason_code: expected a reason code. "
         "Hint: leave it as `reconcile plan` wrote it.",
         edit(PLAN, "  reason_code: step_lost_by_rule", "  reason_code: [1]")),
    case("plan-for-an-earlier-run", "tickets --out t --plan plan.yaml", "error: plan.yaml: the plan was made for audit "
         "run 1, not run 2. Hint: pass --run 1, or make a plan for run 2 with `reconcile plan`.",
         command("audit", codes=(1,))),
    # ----------------------------------------------------------------------- apply and undo
    case("apply-not-writable", f"apply {PLAN} --yes", f"error: {MAPPING}: the mapping does not declare `writable: "
         "true`: nothing written. Hint: --sql FILE writes the statements for a DBA or the vendor.",
         edit(MAPPING, "writable: true", "writable: false"), code=3),
    case("apply-without-yes", f"apply {PLAN}", "plan plan.yaml: 3 would write, 1 unconfirmed, 3 escalate\nskipped 1 "
         "unconfirmed guesses: set confirmed: true in the plan to apply them.\nerror: dry run: nothing written. Hint: "
         "add --yes to write (stdin is not a terminal, so apply cannot ask), or --dry-run to only show the statements.",
         code=3, stdout=True),
    case("apply-yes-and-dry-run", f"apply {PLAN} --yes --dry-run", "error: apply: --yes writes; --dry-run and --sql "
         "only show. Hint: pick one."),
    case("apply-batch-size-zero", f"apply {PLAN} --batch-size 0", "Usage: reconcile apply [OPTIONS] PLAN\nTry "
         "'reconcile apply --help' for help.\n\nError: Invalid value for '--batch-size': 0 is not in the range x>=1."),
    case("apply-other-store", f"apply {PLAN} --yes --store other.duckdb", "error: store other.duckdb: no such file. "
         "Hint: run `reconcile audit` first, or pass --store."),
    case("apply-other-system", f"apply {PLAN} --yes --system sqlite:///other.sqlite", "error: --system "
         "sqlite:///other.sqlite: the plan was made from sqlite:///system/binh-son-igate.sqlite. Hint: apply a plan to "
         "the database it was audited from."),
    case("apply-sql-folder-missing", f"apply {PLAN} --sql nodir/fix.sql", "error: nodir/fix.sql: folder nodir does "
         "not exist. Hint: create it first."),
    case("apply-sql-is-a-folder", f"apply {PLAN} --sql workflows", "error: workflows: cannot write: Is a directory. "
         "Hint: check the folder is writable."),
    case("undo-batch-not-a-number", "undo x --yes", "Usage: reconcile undo [OPTIONS] BATCH...\nTry 'reconcile undo "
         "--help' for help.\n\nError: Invalid value for 'BATCH...': 'x' is not a valid integer."),
    case("undo-unknown-batch", "undo 1 --yes", "error: batch 1: no such batch in duckdb:///reconcile.duckdb. Hint: "
         "`reconcile history`."),
    case("undo-twice", "undo 1 --yes", "error: batch 1 was already undone by batch 2.",
         command(f"apply {PLAN} --yes"), command("undo 1 --yes"), code=3),
    case("undo-moved-row", "undo 1 --yes", "error: undo of batch 1 refused, nothing written: 000.00.53.H48-210607-0001: "
         "HS_XULY_HIENTAI.TAIKHOAN_XULY holds 'someone', batch 1 wrote 'thue.vothithuthuy'",
         command(f"apply {PLAN} --yes"),
         sql(VENDOR, "UPDATE HS_XULY_HIENTAI SET TAIKHOAN_XULY = 'someone' WHERE TAIKHOAN_XULY = 'thue.vothithuthuy'"),
         code=3),
    # ------------------------------------------------------- reading the store: show, stats, report, tickets
    case("run-unknown", "census --run 9", "error: run 9: no such audit run in duckdb:///reconcile.duckdb. Hint: "
         "`reconcile history`."),
    case("show-unknown-dossier", "show nope", "error: show: dossier NOPE is neither on the register nor in the system "
         "of run 1."),
    case("show-code-with-sql", "show \"x'; DROP TABLE dossier; --\"", "error: show: dossier X';DROPTABLEDOSSIER;-- "
         "is neither on the register nor in the system of run 1."),
    case("show-empty-code", "show ''", "error: CODE: empty value. Hint: give a value."),
    case("report-out-is-a-file", f"report --out {PROJECT}", f"error: --out {PROJECT}: cannot create the folder: File "
         "exists. Hint: pick a writable folder."),
    case("report-plan-missing", "report --out out --plan nope.yaml", "error: nope.yaml: no such file. Hint: "
         "`reconcile plan --out nope.yaml` writes one."),
    case("stats-xlsx-without-out", "stats --format xlsx", "error: stats --format xlsx: needs --out FILE.xlsx (a "
         "workbook does not go to a terminal)."),
    case("stats-out-folder-missing", "stats --out nodir/x.csv --format csv", "error: nodir/x.csv: folder nodir does "
         "not exist. Hint: create it first."),
    case("tickets-out-holds-other-files", "tickets --out workflows", "error: --out workflows: the folder holds other "
         "files (no tickets.json of an earlier bundle). Hint: pass a new or empty folder; an earlier tickets folder is "
         "replaced whole."),
    case("tickets-out-is-a-file", f"tickets --out {PROJECT}", f"error: --out {PROJECT}: is a file, not a folder. "
         "Hint: pass a folder (created if missing), e.g. --out tickets/."),
    case("report-unknown-format", "report --out out --format pdf", "Usage: reconcile report [OPTIONS]\nTry 'reconcile "
         "report --help' for help.\n\nError: Invalid value for '--format': 'pdf' is not one of 'html', 'md', 'xlsx', "
         "'json', 'csv', 'all'."),
    case("tickets-plan-missing", "tickets --out t --plan nope.yaml", "error: nope.yaml: no such file. Hint: "
         "`reconcile plan --out nope.yaml` writes one."),
    # ------------------------------------------------------------------------- published tables
    # Issue 15: the separator is decided per file (one "15,256" alone is 15256); both in one file is refused.
    case("table-separators-disagree", f"check-report {TABLE}", "error: phu-luc-binh-son-2021-h1.tsv: thousands "
         "separators disagree: '14.629' at line 8, column 3 uses \".\" but '15,256' at line 7, column 3 uses \",\". "
         "Expected one separator per file. Hint: write every count the same way (15.256 or 15256).",
         edit(TABLE, "15256", "15,256"), edit(TABLE, "14629", "14.629")),
    case("table-text-in-a-number-cell", f"check-report {TABLE}", "error: phu-luc-binh-son-2021-h1.tsv, line 7, "
         f"column 3: 'mười' is not a count (the column 'tổng số' of 'Tổng'). {NUMBER_HINT}",
         edit(TABLE, "\t15256\t", "\tmười\t")),
    case("table-negative-count", f"check-report {TABLE}", "error: phu-luc-binh-son-2021-h1.tsv, line 7, column 3: "
         f"'-15256' is not a count (the column 'tổng số' of 'Tổng'). {NUMBER_HINT}", edit(TABLE, "15256", "-15256")),
    # An empty cell is "not given" now (issue 15); a numbered row with no number at all is still refused.
    case("table-row-without-numbers", f"check-report {TABLE}", "error: phu-luc-binh-son-2021-h1.tsv, line 3: row "
         "'10 Lĩnh vực bảo vệ môi trường' has no numbers. Expected 12 numbers, a dash where none is given. Hint: "
         "write the numbers the source gives, \"-\" where it gives none.",
         edit_line(TABLE, "10\tLĩnh vực bảo vệ môi trường", "10\tLĩnh vực bảo vệ môi trường")),
    case("table-missing", "check-report nope.tsv", "error: nope.tsv: no such file."),
    case("table-empty-file", "check-report x.tsv", "error: x.tsv: the file is empty. Expected a statistics table: STT, "
         "label and 11 (Biểu 06) or 12 numbers a row.", write("x.tsv", "")),
    case("table-no-numbers", "check-report x.tsv", "error: x.tsv: no statistics table: no row holds two numbers or "
         "more. Expected rows of a label and its numbers. Hint: numbers pasted as one text cell or as a picture cannot "
         "be read: export the table as CSV or XLSX.",
         write("x.tsv", "hello\nworld\n")),
    case("table-unsupported-format", "check-report x.pdf", "error: x.pdf: unsupported table format '.pdf'. Expected "
         ".csv, .tsv, .txt or .xlsx. Hint: save a .xls or .ods workbook as .xlsx.", write("x.pdf", "%PDF")),
    case("table-xlsx-not-a-zip", "check-report x.xlsx", "error: x.xlsx: damaged workbook: File is not a zip file. "
         "Hint: open it in Excel or LibreOffice and save it again.", write("x.xlsx", b"PK\x03\x04garbage")),
    case("table-wrong-layout", f"check-report {TABLE} --layout official", "error: phu-luc-binh-son-2021-h1.tsv, lines "
         "1–8: 12 number columns (columns 3–14); expected 11 for --layout official. Hint: --layout extended has 12; "
         "drop --layout to read the columns by their header."),
    case("table-unknown-sheet", "check-report x.xlsx --sheet Nope", "error: x.xlsx: sheet 'Nope' not found. Sheets: "
         "'Biểu'.", workbook("x.xlsx", {"Biểu": [["STT", "Lĩnh vực"], [1, "a"]]})),
    case("table-xlsx-zip-bomb", "check-report r.xlsx",
         "error: r.xlsx: member xl/worksheets/sheet1.xml inflates 1,024 times (97,702 bytes to 95 MB), over the "
         "limit of 100 (a zip bomb, or a sheet padded with blanks). Hint: open it in Excel or LibreOffice and save it "
         "again; if it is genuine, set RECONCILE_XLSX_MAX_RATIO higher.", one_row_book("r.xlsx"), PADDED,
         isolated=True, absent=("no statistics table",)),
    case("table-text-missing", f"check-report {TABLE} --text nope.txt", "error: nope.txt: no such file."),
]


@pytest.fixture(scope="session")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_district(tmp_path_factory.mktemp("corpus") / "district")


def _param(c: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c, id=c.id, marks=marks)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


@pytest.mark.parametrize("c", [_param(c) for c in CASES])
def test_bad_input(c: Case, district: Path, tmp_path: Path) -> None:
    try:
        run_case(c, district, tmp_path / "district")
    finally:  # 7 MB a case: pytest keeps the temporary folders of the last runs
        shutil.rmtree(tmp_path / "district", ignore_errors=True)
