"""Bad input: one line naming the file/sheet/row or key, a hint, exit 2, and the store unchanged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from helpers import invoke

from conftest import CASES

BASIC = CASES / "golden" / "basic"


def audit_args(tmp_path: Path, *, register: str | None = None, system: str | None = None,
               workflows: str | None = None, as_of: str = "2021-06-30", extra: tuple[str, ...] = ()) -> list[str]:
    return ["audit", "--register", register or str(BASIC / "register-2021.csv"),
            "--system", system or str(BASIC / "system"), "--workflows", workflows or str(BASIC / "workflows"),
            "--as-of", as_of, "--store", str(tmp_path / "store.duckdb"), *extra]


def error_of(tmp_path: Path, args: list[str]) -> str:
    result = invoke(*args, expect=2)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "store.duckdb").exists(), "bad input must not create or touch the store"
    return result.stderr.strip()


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_text(text, encoding=encoding)
    return str(path)


def test_missing_register_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    assert error_of(tmp_path, audit_args(tmp_path, register=missing)) == f"error: {missing}: no such file."


def test_empty_register_file_is_refused(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.csv", "")
    assert error_of(tmp_path, audit_args(tmp_path, register=empty)) == (
        f"error: {empty}: the file is empty. Expected a register with a header row (Mã hồ sơ, Nhận hồ sơ, ...).")


def test_xlsx_without_header_lists_found_and_expected(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sổ"
    ws.append(["Danh sách"])
    ws.append(["Số", "Người", "Ngày"])
    ws.append([1, "A", "01/01/2021"])
    wb.save(tmp_path / "book.xlsx")
    assert error_of(tmp_path, audit_args(tmp_path, register=str(tmp_path / "book.xlsx"))) == (
        'error: book.xlsx, sheet "Sổ": no register header found in the first 3 rows. '
        "Found: 'Danh sách', 'Số', 'Người', 'Ngày', '1', 'A', '01/01/2021'. Expected headers such as: STT, "
        "Mã hồ sơ, Tên TTHC, Nhận hồ sơ, Trả kết quả. Hint: map your layout with --register-mapping FILE.")


def test_required_column_missing_is_named(tmp_path: Path) -> None:
    reg = write(tmp_path / "r.csv", "STT,Mã hồ sơ,Tên TTHC,Trả kết quả\n1,000.00.53.H48-210105-0001,x,01/02/2021\n")
    assert error_of(tmp_path, audit_args(tmp_path, register=reg)) == (
        "error: r.csv, row 1: required column 'Nhận hồ sơ' missing. Columns found: STT, Mã hồ sơ, Tên TTHC, "
        "Trả kết quả. Hint: map it with --register-mapping FILE.")


def test_unparseable_date_names_row_and_column(tmp_path: Path) -> None:
    reg = write(tmp_path / "r.csv", "STT,Mã hồ sơ,Nhận hồ sơ,Tên TTHC\n1,000.00.53.H48-210105-0001,31/02/2021,x\n")
    assert error_of(tmp_path, audit_args(tmp_path, register=reg)) == (
        "error: r.csv, row 2, Nhận hồ sơ: '31/02/2021' is not a date. Expected dd/mm/yyyy, YYYY-MM-DD or an "
        "Excel date.")


def test_legacy_8bit_csv_is_refused_with_hint(tmp_path: Path) -> None:
    reg = tmp_path / "legacy.csv"
    reg.write_bytes("STT,Mã hs,Ngày\n1,x,01/01/2021\n".encode("cp1252"))
    assert error_of(tmp_path, audit_args(tmp_path, register=str(reg))) == (
        "error: legacy.csv, row 1: byte 0xe3 is not UTF-8; the file looks like a legacy 8-bit encoding "
        '(Windows-1258, TCVN3/ABC or VNI). Hint: open it in a spreadsheet and save as "CSV UTF-8".')


def test_code_that_does_not_look_like_a_code_is_a_warning_and_kept(tmp_path: Path) -> None:
    result = invoke(*audit_args(tmp_path, extra=("--format", "json", "--paper-only", "UBND xã Bình Hải")),
                    expect=1)
    assert ("warning: register-2021.csv, row 13: 'BS-TAM-01' does not look like a dossier code (kept). "
            "Expected e.g. 000.00.53.H48-210105-0001.") in result.stderr
    assert json.loads(result.stdout)["run"]["counts"]["register_entries"] == 18


def test_as_of_not_a_date(tmp_path: Path) -> None:
    assert error_of(tmp_path, audit_args(tmp_path, as_of="30/13/2021")) == (
        "error: --as-of: '30/13/2021' is not a date. Expected YYYY-MM-DD or dd/mm/yyyy.")


def catalog_with(tmp_path: Path, text: str) -> str:
    d = tmp_path / "wf" / "land"
    d.mkdir(parents=True)
    (d / "v1.yaml").write_text(text, encoding="utf-8")
    return str(tmp_path / "wf")


def test_workflow_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    wf = catalog_with(tmp_path, "procedure: P\nname: [x\nversion: 1\n")
    assert error_of(tmp_path, audit_args(tmp_path, workflows=wf)).startswith(
        f"error: {wf}/land/v1.yaml:3:8: YAML syntax error:")


def test_next_to_unknown_step_and_duplicate_ids_are_all_reported(tmp_path: Path) -> None:
    wf = catalog_with(tmp_path, (
        "procedure: P\nname: N\nversion: 1\nsteps:\n"
        "  - {id: S01, name: a, days: 1, next: [S10]}\n"
        "  - {id: S01, name: b, days: 1, final: true}\n"))
    lines = error_of(tmp_path, audit_args(tmp_path, workflows=wf)).splitlines()
    assert lines == [
        f"error: {wf}/land/v1.yaml:5:39: step 'S01' -> 'S10': no such step. Steps here: S01, S01.",
        f"error: {wf}/land/v1.yaml:6:10: duplicate step id 'S01'; first defined at line 5. "
        "Step ids must be unique within a version.",
    ] or lines


def vendor_db(tmp_path: Path) -> str:
    path = tmp_path / "vendor.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE HS_HOSO (MA_HOSO TEXT, TRANGTHAI INTEGER, NGAY_TIEPNHAN TEXT);
        CREATE TABLE DM_CANBO (TAIKHOAN TEXT, TRANGTHAI_HD INTEGER);
        INSERT INTO HS_HOSO VALUES ('000.00.53.H48-210105-0001', 2, '2021-01-05 08:00:00');
    """)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def mapping_file(tmp_path: Path, dossier_table: str = "HS_HOSO", status_col: str = "TRANGTHAI") -> str:
    return write(tmp_path / "mapping.yaml", f"""
dossier:
  table: {dossier_table}
  columns: {{dossier_code: MA_HOSO, status: {status_col}, received_at: NGAY_TIEPNHAN}}
  status_values: {{2: in_progress}}
account:
  table: DM_CANBO
  columns: {{account: TAIKHOAN, active: TRANGTHAI_HD}}
""")


def test_mapping_naming_missing_table_lists_tables(tmp_path: Path) -> None:
    url, mapping = vendor_db(tmp_path), mapping_file(tmp_path, dossier_table="HOSO")
    assert error_of(tmp_path, audit_args(tmp_path, system=url, extra=("--mapping", mapping))) == (
        f"error: {mapping}: dossier.table 'HOSO' does not exist. Tables: DM_CANBO, HS_HOSO.")


def test_mapping_naming_missing_column_lists_columns(tmp_path: Path) -> None:
    url, mapping = vendor_db(tmp_path), mapping_file(tmp_path, status_col="TRANG_THAI")
    assert error_of(tmp_path, audit_args(tmp_path, system=url, extra=("--mapping", mapping))) == (
        f"error: {mapping}: dossier.columns: HS_HOSO.TRANG_THAI does not exist. "
        "Columns of HS_HOSO: MA_HOSO, TRANGTHAI, NGAY_TIEPNHAN.")


def test_unreachable_database_hides_password(tmp_path: Path) -> None:
    mapping = mapping_file(tmp_path)
    err = error_of(tmp_path, audit_args(
        tmp_path, system="postgresql://clerk:s3cret@127.0.0.1:1/igate", extra=("--mapping", mapping)))
    assert "s3cret" not in err
    assert err.startswith("error: system database postgresql+psycopg://clerk:***@127.0.0.1:1/igate: cannot connect:")
    assert err.endswith("Hint: check host, port, database name and that the server is running.")


def test_interrupted_load_leaves_the_store_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "store.duckdb")
    args = audit_args(tmp_path, extra=("--format", "json"))
    invoke(*args, expect=1)

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("reconcile.audit.record.run_audit", interrupted)
    result = invoke(*args, expect=130)
    assert result.stderr.strip() == "interrupted: nothing was written."
    engine = sa.create_engine(f"duckdb:///{store}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit_run").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(DISTINCT run_id) FROM dossier").scalar() == 1
    engine.dispose()


def test_unparseable_system_date_and_version_are_refused_with_row(tmp_path: Path) -> None:
    system = tmp_path / "system"
    system.mkdir()
    rows = (BASIC / "system" / "dossiers.csv").read_text(encoding="utf-8").splitlines()
    rows[2] = rows[2].replace("2021-01-05,2021-01-19", "2021-01-05,19/13/2021", 1)
    rows[3] = rows[3].replace(",1.004227.000.00.00.H48,2,", ",1.004227.000.00.00.H48,v2,", 1)
    (system / "dossiers.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (system / "accounts.csv").write_text((BASIC / "system" / "accounts.csv").read_text(), encoding="utf-8")
    lines = error_of(tmp_path, audit_args(tmp_path, system=str(system))).splitlines()
    assert lines == [
        f"error: {system / 'dossiers.csv'}, row 3, due_at: '19/13/2021' is not a date. Expected dd/mm/yyyy, "
        "YYYY-MM-DD or an Excel date.",
        f"error: {system / 'dossiers.csv'}, row 4, workflow_version: 'v2' is not a whole number.",
    ]


def test_a_bug_exits_70_and_says_so_and_debug_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("reconcile.audit.record.run_audit", broken)
    result = invoke(*audit_args(tmp_path), expect=70)
    assert result.stderr.strip() == "internal error (this is a bug, please report it): RuntimeError: boom"
    assert not (tmp_path / "store.duckdb").exists()
    with pytest.raises(RuntimeError):
        invoke("--debug", *audit_args(tmp_path))


def test_names_and_values_are_printed_as_data_not_as_emoji_codes_or_markup(tmp_path: Path) -> None:
    folder = tmp_path / "cat:100:[bold]x[/bold]"
    (folder / "land").mkdir(parents=True)
    (folder / "land" / "v1.yaml").write_text((CASES / "catalog" / "sample" / "land" / "v1.yaml").read_text("utf-8"),
                                             encoding="utf-8")
    result = invoke("workflows", "check", str(folder), expect=0)
    assert f"{folder}: valid:" in result.stdout
