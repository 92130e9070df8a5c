"""Source loaders on real databases: the mapping profile on SQLite, PostgreSQL and MariaDB gives the
same findings as the csv profile, reads are read-only, and register layouts load the same."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from helpers import invoke

from conftest import CASES
from reconcile.sources.register import RegisterMapping, load_register, load_register_mapping
from reconcile.util.db import begin_read_only
from reconcile.sources.workbench import register_sql
from reconcile.util.scratch import select_arrow

BASIC = CASES / "golden" / "basic"
VENDOR_STATUS = {"submitted": 0, "received": 1, "in_progress": 2, "supplement_requested": 3,
                 "awaiting_payment": 4, "finished": 5, "returned": 6, "withdrawn": 7, "stopped": 8, "rejected": 9}
MAPPING = f"""
writable: false
dossier:
  table: HS_HOSO
  columns: {{dossier_code: MA_HOSO, procedure: MA_TTHC, applicant: CHU_HOSO, received_at: NGAY_TIEPNHAN,
            due_at: NGAY_HENTRA, finished_at: NGAY_KETTHUC, returned_at: NGAY_TRAKQ, status: TRANGTHAI,
            workflow_key: MA_QUYTRINH, workflow_version: PHIENBAN}}
  status_values: {json.dumps({v: k for k, v in VENDOR_STATUS.items()})}
task:
  table: HS_XULY_HIENTAI
  columns: {{dossier_code: MA_HOSO, current_step: MA_BUOC, assignee: TAIKHOAN_XULY, unit: MA_PHONGBAN}}
account:
  table: DM_CANBO
  columns: {{account: TAIKHOAN, unit: MA_PHONGBAN, active: TRANGTHAI_HD}}
  active_values: [1]
events:
  table: HS_NHATKY
  columns: {{dossier_code: MA_HOSO, seq: STT, from_step: TU_BUOC, to_step: DEN_BUOC, account: TAIKHOAN, at: THOIGIAN}}
"""


def vendor_database(url: str) -> None:
    """The basic scenario's system side in a vendor-shaped schema (Vietnamese names, numeric statuses)."""
    md = sa.MetaData()
    s = sa.String(120)
    hoso = sa.Table("HS_HOSO", md, *[sa.Column(c, s) for c in (
        "MA_HOSO", "MA_TTHC", "CHU_HOSO", "NGAY_TIEPNHAN", "NGAY_HENTRA", "NGAY_KETTHUC", "NGAY_TRAKQ",
        "MA_QUYTRINH")], sa.Column("TRANGTHAI", sa.Integer), sa.Column("PHIENBAN", sa.Integer))
    task = sa.Table("HS_XULY_HIENTAI", md, *[sa.Column(c, s) for c in ("MA_HOSO", "MA_BUOC", "TAIKHOAN_XULY",
                                                                       "MA_PHONGBAN")])
    acc = sa.Table("DM_CANBO", md, sa.Column("TAIKHOAN", s), sa.Column("MA_PHONGBAN", s),
                   sa.Column("TRANGTHAI_HD", sa.Integer))
    ev = sa.Table("HS_NHATKY", md, sa.Column("MA_HOSO", s), sa.Column("STT", sa.Integer),
                  *[sa.Column(c, s) for c in ("TU_BUOC", "DEN_BUOC", "TAIKHOAN")], sa.Column("THOIGIAN", sa.Date))
    rows = list(csv.DictReader((BASIC / "system" / "dossiers.csv").open(encoding="utf-8")))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        md.create_all(conn)
        conn.execute(hoso.insert(), [{
            "MA_HOSO": r["dossier_code"], "MA_TTHC": r["procedure"], "CHU_HOSO": r["applicant"],
            "NGAY_TIEPNHAN": r["received_at"] + " 08:30:00", "NGAY_HENTRA": r["due_at"] or None,
            "NGAY_KETTHUC": r["finished_at"] or None, "NGAY_TRAKQ": r["returned_at"] or None,
            "MA_QUYTRINH": r["workflow_key"], "TRANGTHAI": VENDOR_STATUS[r["status"]],
            "PHIENBAN": int(r["workflow_version"]) if r["workflow_version"] else None} for r in rows])
        conn.execute(task.insert(), [{"MA_HOSO": r["dossier_code"], "MA_BUOC": r["current_step"],
                                      "TAIKHOAN_XULY": r["assignee"], "MA_PHONGBAN": r["unit"]}
                                     for r in rows if r["current_step"]])
        conn.execute(acc.insert(), [{"TAIKHOAN": r["account"], "MA_PHONGBAN": r["unit"],
                                     "TRANGTHAI_HD": int(r["active"])}
                                    for r in csv.DictReader((BASIC / "system" / "accounts.csv").open())])
        conn.execute(ev.insert(), [{"MA_HOSO": r["dossier_code"], "STT": int(r["seq"]), "TU_BUOC": r["from_step"],
                                    "DEN_BUOC": r["to_step"], "TAIKHOAN": r["account"], "THOIGIAN": date.fromisoformat(r["at"])}
                                   for r in csv.DictReader((BASIC / "system" / "events.csv").open())])
    engine.dispose()


def audit_json(tmp_path: Path, system: str, *extra: str) -> dict:
    result = invoke("audit", "--register", str(BASIC / "register-2021.csv"), "--system", system,
                    "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30",
                    "--paper-only", "UBND xã Bình Hải", "--store", str(tmp_path / "store.duckdb"),
                    "--format", "json", *extra, expect=1)
    return json.loads(result.stdout)


def essentials(report: dict) -> list[tuple]:
    return [(f["kind"], f["dossier_code"], json.dumps(f["details"], sort_keys=True, ensure_ascii=False))
            for f in report["findings"]]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def vendor_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vendor.sqlite'}"
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")


def test_mapping_profile_on_any_database_equals_csv_profile(tmp_path: Path, vendor_url: str) -> None:
    vendor_database(vendor_url)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    via_csv = audit_json(tmp_path / "a", str(BASIC / "system"))
    via_db = audit_json(tmp_path / "b", vendor_url, "--mapping", str(mapping))
    assert essentials(via_db) == essentials(via_csv)
    assert via_db["run"]["inputs"]["system"]["profile"] == "mapping"


def test_vendor_reads_are_read_only(vendor_url: str) -> None:
    vendor_database(vendor_url)
    engine = sa.create_engine(vendor_url)
    with engine.connect() as conn:
        begin_read_only(conn)
        assert conn.exec_driver_sql('SELECT count(*) FROM "HS_HOSO"' if engine.dialect.name != "mysql"
                                    else "SELECT count(*) FROM HS_HOSO").scalar() == 16
        with pytest.raises(sa.exc.DBAPIError):
            conn.exec_driver_sql("DELETE FROM HS_HOSO" if engine.dialect.name == "mysql" else 'DELETE FROM "HS_HOSO"')
    with engine.connect() as conn:  # and nothing was deleted
        conn.rollback()
    engine.dispose()


def staged(paths: list[Path]):
    return select_arrow(register_sql("r") + " ORDER BY entry_id", {"r": load_register(paths).table})


def test_register_as_two_sheet_xlsx_with_title_rows_and_merged_header_equals_csv(tmp_path: Path) -> None:
    rows = list(csv.reader((BASIC / "register-2021.csv").open(encoding="utf-8-sig")))
    header, body = rows[0], rows[1:]
    wb = openpyxl.Workbook()
    for title, part in (("Quý I", body[:6]), ("Quý II", body[6:])):
        ws = wb.create_sheet(title)
        ws.append(["SỔ THEO DÕI HỒ SƠ"])
        ws.append(["Năm 2021"])
        ws.append([])
        ws.append(header[:7] + ["Ngày, tháng, năm", None, None, None] + header[11:])
        ws.append([None] * 7 + header[7:11])
        ws.merge_cells(start_row=4, start_column=8, end_row=4, end_column=11)
        for r in part:
            ws.append(r)
    del wb["Sheet"]
    wb.save(tmp_path / "so.xlsx")
    from_csv = staged([BASIC / "register-2021.csv"])
    from_xlsx = staged([tmp_path / "so.xlsx"])
    keep = ["dossier_code", "stt", "applicant", "received_at", "due_at", "returned_at", "outcome", "agency"]
    assert from_xlsx.select(keep).to_pylist() == from_csv.select(keep).to_pylist()
    assert from_xlsx.column("sheet").to_pylist()[:1] == ["Quý I"]
    assert from_xlsx.column("row_no").to_pylist()[:2] == [6, 7]


def test_register_mapping_names_other_headers(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text(
        "Ghi sổ\nSố biên nhận;Ngày nhận;Ngày trả;Người nộp\n 000.00.53.h48-210105-0001 ;5/1/2021;;Lê A\n",
        encoding="utf-8")
    (tmp_path / "m.yaml").write_text(
        "columns: {dossier_code: Số biên nhận, received_at: Ngày nhận, returned_at: Ngày trả, applicant: Người nộp}\n"
        "period: {from: 2021-01-01, to: 2021-06-30}\n", encoding="utf-8")
    mapping = load_register_mapping(tmp_path / "m.yaml")
    data = load_register([tmp_path / "other.csv"], mapping)
    rows = select_arrow(register_sql("r"), {"r": data.table}).to_pylist()
    assert [(r["dossier_code"], str(r["received_at"]), r["row_no"]) for r in rows] == [
        ("000.00.53.H48-210105-0001", "2021-01-05", 3)]
    assert data.periods == {"other.csv": mapping.period}


def test_register_mapping_with_unknown_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("columns: {code: Số}\n", encoding="utf-8")
    with pytest.raises(Exception) as err:
        load_register_mapping(tmp_path / "m.yaml")
    assert str(err.value) == (f"{tmp_path / 'm.yaml'}:1:11: columns: unknown key 'code'. Known: stt, "
                              "dossier_code, procedure, quantity, applicant, address, agency, received_at, due_at, "
                              'transferred_at, returned_at, signed, note. Hint: see "Paper register" in docs/file-formats.md '
                              "(--register-mapping).")


def test_default_mapping_is_empty() -> None:
    assert RegisterMapping().columns == {}


def test_blank_lines_and_quoted_newlines_keep_spreadsheet_row_numbers(tmp_path: Path) -> None:
    """Rows are numbered as a spreadsheet shows the file: a quoted multi-line cell is one row."""
    reg = tmp_path / "r.csv"
    reg.write_text("STT,Mã hồ sơ,Nhận hồ sơ,Ghi chú\n"
                   "1,000.00.53.H48-210105-0001,05/01/2021,\n"
                   "\n"
                   '2,000.00.53.H48-210105-0002,05/01/2021,"hai\ndòng"\n'
                   "3,000.00.53.H48-210105-0003,05/01/2021,\n", encoding="utf-8")
    rows = staged([reg]).to_pylist()
    assert [(r["stt"], r["row_no"]) for r in rows] == [(1, 2), (2, 4), (3, 5)]
    assert rows[1]["note"] == "hai dòng"


def test_fast_path_row_numbers_follow_the_file(tmp_path: Path) -> None:
    reg = tmp_path / "r.csv"
    lines = ["Sổ theo dõi", "", "STT,Mã hồ sơ,Nhận hồ sơ"] + [
        f"{i},000.00.53.H48-210105-{i:04d},05/01/2021" for i in range(1, 2001)]
    reg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = staged([reg]).to_pylist()
    assert [(r["stt"], r["row_no"]) for r in rows[:2]] == [(1, 4), (2, 5)]
    assert (rows[-1]["stt"], rows[-1]["row_no"]) == (2000, 2003)


def test_csv_read_in_pieces_numbers_rows_across_pieces_and_falls_back_mid_file(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of a few hundred bytes: Arrow parses the first pieces, the csv module takes over at the
    piece holding a quoted newline, and every row keeps its file row number."""
    import reconcile.sources.csvio as csvio

    reg = tmp_path / "r.csv"
    lines = ["STT,Mã hồ sơ,Nhận hồ sơ,Ghi chú"] + [
        f"{i},000.00.53.H48-210105-{i:04d},05/01/2021," + ('"hai\ndòng"' if i == 150 else "") for i in range(1, 201)]
    reg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    whole = [(r["stt"], r["row_no"], r["note"]) for r in staged([reg]).to_pylist()]
    monkeypatch.setattr(csvio, "CHUNK_BYTES", 300)
    pieces = [(r["stt"], r["row_no"], r["note"]) for r in staged([reg]).to_pylist()]
    assert pieces == whole
    assert [(s, n) for s, n, _ in pieces[148:152]] == [(149, 150), (150, 151), (151, 152), (152, 153)]
    assert pieces[149][2] == "hai dòng" and len(pieces) == 200


def test_system_csv_in_pieces_equals_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconcile.sources.csvio as csvio
    from reconcile.sources.system import load_csv_profile

    def dossiers() -> list[dict]:
        return load_csv_profile(BASIC / "system").dossiers.to_pylist()

    whole = dossiers()
    monkeypatch.setattr(csvio, "CHUNK_BYTES", 200)
    assert dossiers() == whole and len(whole) > 5


def test_mapping_query_instead_of_table_and_unmapped_status(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vendor.sqlite'}"
    vendor_database(url)
    mapping = MAPPING.replace("  table: HS_HOSO\n", "  query: SELECT * FROM HS_HOSO WHERE TRANGTHAI IS NOT NULL\n", 1)
    (tmp_path / "m.yaml").write_text(mapping, encoding="utf-8")
    via_query = audit_json(tmp_path / "a", url, "--mapping", str(tmp_path / "m.yaml"))
    via_csv = audit_json(tmp_path / "b", str(BASIC / "system"))
    assert essentials(via_query) == essentials(via_csv)

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE HS_HOSO SET TRANGTHAI = 42 WHERE MA_HOSO LIKE '%0001'")
    engine.dispose()
    result = invoke("audit", "--register", str(BASIC / "register-2021.csv"), "--system", url,
                    "--mapping", str(tmp_path / "m.yaml"), "--workflows", str(BASIC / "workflows"),
                    "--as-of", "2021-06-30", "--store", str(tmp_path / "c.duckdb"), expect=2)
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'm.yaml'}: dossier.status_values: dossier.query.TRANGTHAI holds value(s) '42' "
        "with no canonical status. Hint: add them under status_values.")


def test_bad_input_in_a_later_piece_is_reported_as_is_and_stores_nothing(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A DuckDB store takes all pieces in one streamed INSERT: an error found while DuckDB reads a
    later piece is still the one-line BadInput, and the store keeps no part of the run. (The bad byte
    lies beyond the sample read to locate the header.)"""
    import reconcile.sources.csvio as csvio

    monkeypatch.setattr(csvio, "CHUNK_BYTES", 64 << 10)
    head = "STT,Mã hồ sơ,Nhận hồ sơ,Ghi chú\n".encode()
    rows = [f"{i},000.00.53.H48-210105-{i:04d},05/01/2021,".encode() + (b"\xe3" if i == 7000 else b"")
            for i in range(1, 8001)]
    reg = tmp_path / "reg.csv"
    reg.write_bytes(head + b"\n".join(rows) + b"\n")
    store = tmp_path / "s.duckdb"
    invoke("audit", "--register", str(BASIC / "register-2021.csv"), "--system", str(BASIC / "system"),
           "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30", "--store", str(store))
    result = invoke("audit", "--register", str(reg), "--system", str(BASIC / "system"),
                    "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30", "--store", str(store), expect=2)
    assert result.stderr.strip() == (
        "error: reg.csv, row 7001: byte 0xe3 is not UTF-8; the file looks like a legacy 8-bit encoding "
        "(Windows-1258, TCVN3/ABC or VNI). Hint: open it in a spreadsheet and save as \"CSV UTF-8\".")
    engine = sa.create_engine(f"duckdb:///{store}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), max(id) FROM audit_run").one() == (1, 1)
        assert conn.exec_driver_sql("SELECT count(DISTINCT run_id) FROM register_entry").scalar() == 1
    engine.dispose()


def test_streamed_store_rows_equal_the_workbench_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The streamed INSERT (repeating texts normalised on the Arrow side, pieces of mixed dictionary
    encoding) stores exactly the rows the workbench SELECT gives over the whole table."""
    import reconcile.sources.csvio as csvio

    reg = tmp_path / "reg.csv"
    lines = ["STT,Mã hồ sơ,Tên TTHC,Cơ quan chủ trì giải quyết,Nhận hồ sơ,Ghi chú"] + [
        f"{i},000.00.53.H48-210105-{i:04d},{'  Đăng ký   đất ' if i % 2 else 'Cấp phép'},"
        f"{'UBND  xã' if i % 3 else ''},05/01/2021," + ('"hai\ndòng"' if i == 150 else "") for i in range(1, 201)]
    reg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(csvio, "CHUNK_BYTES", 300)
    expected = staged([reg]).to_pylist()
    store = tmp_path / "s.duckdb"
    invoke("audit", "--register", str(reg), "--system", str(BASIC / "system"), "--workflows",
           str(BASIC / "workflows"), "--as-of", "2021-06-30", "--store", str(store), expect=1)
    engine = sa.create_engine(f"duckdb:///{store}")
    with engine.connect() as conn:
        stored = [dict(r._mapping) for r in conn.exec_driver_sql(
            "SELECT * EXCLUDE (run_id) FROM register_entry ORDER BY entry_id")]
    engine.dispose()
    assert stored == expected and len(stored) == 200
    assert {r["procedure"] for r in stored} == {"Đăng ký đất", "Cấp phép"}
    assert {r["agency"] for r in stored} == {"UBND xã", None}


def test_indexes_on_server_stores_only_and_dropped_from_older_duckdb_stores(store_url: str, tmp_path: Path) -> None:
    """DuckDB's ART indexes cost a 1M-row audit seconds at commit and give nothing a column scan
    does not: a DuckDB store has none (an older one loses them when opened); servers keep theirs."""
    from reconcile.store import SCHEMA_VERSION, open_store

    store = open_store(store_url)
    if store.dialect == "duckdb":
        with store.begin() as conn:
            conn.exec_driver_sql("CREATE INDEX ix_dossier_code ON dossier (run_id, dossier_code)")
            conn.exec_driver_sql("UPDATE store_meta SET value = '5' WHERE key = 'schema_version'")
        store.engine.dispose()
        store = open_store(store_url)
        with store.begin() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM duckdb_indexes()").scalar() == 0
            assert conn.exec_driver_sql("SELECT value FROM store_meta").scalar() == str(SCHEMA_VERSION)
    else:
        with store.begin() as conn:
            names = {ix["name"] for t in ("register_entry", "dossier", "finding", "reconciliation", "wf_state",
                                          "work_day") for ix in sa.inspect(conn).get_indexes(t)}
        assert {"ix_register_entry_code", "ix_dossier_code", "ix_finding_code", "ix_reconciliation_code",
                "ix_wf_state_row", "ix_work_day"} <= names
    store.engine.dispose()


def test_closed_dossiers_have_no_fingerprint_and_older_stores_allow_none(store_url: str) -> None:
    """Plans act on open dossiers only, so the audit fingerprints those alone (schema 7); an older
    store, whose fingerprint column is NOT NULL, allows none once it is opened."""
    from reconcile.model import OPEN_STATUSES
    from reconcile.store import dossier, meta_table, open_store

    store = open_store(store_url)
    with store.begin() as conn:
        if store.dialect == "mysql":
            conn.exec_driver_sql("ALTER TABLE dossier MODIFY fingerprint VARCHAR(32) NOT NULL")
        else:
            conn.exec_driver_sql("ALTER TABLE dossier ALTER COLUMN fingerprint SET NOT NULL")
        conn.execute(sa.update(meta_table).where(meta_table.c.key == "schema_version").values(value="6"))
    store.engine.dispose()
    invoke("audit", "--register", str(BASIC / "register-2021.csv"), "--system", str(BASIC / "system"),
           "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30", "--store", store_url, expect=1)
    store = open_store(store_url, create=False)
    with store.connect() as conn:
        rows = conn.execute(sa.select(dossier.c.status, dossier.c.fingerprint)).all()
    store.engine.dispose()
    open_ = {s.value for s in OPEN_STATUSES}
    assert {len(fp or "") for status, fp in rows if status in open_} == {32}
    assert {fp for status, fp in rows if status not in open_} == {None}
    assert len({status in open_ for status, _ in rows}) == 2  # both kinds present


def test_a_store_of_schema_8_gets_the_version_problem_column(store_url: str) -> None:
    """Schema 9 added dossier.version_problem (why the system's workflow version cannot be read): an
    older store gets the column when opened, and its earlier runs read as before."""
    from reconcile.store import SCHEMA_VERSION, dossier, meta_table, open_store

    args = ("audit", "--register", str(BASIC / "register-2021.csv"), "--system", str(BASIC / "system"),
            "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30", "--store", store_url, "--format", "json")
    first = json.loads(invoke(*args, expect=1).stdout)
    store = open_store(store_url)
    with store.begin() as conn:  # the store as schema 8 left it
        conn.exec_driver_sql("ALTER TABLE dossier DROP COLUMN version_problem")
        conn.execute(sa.update(meta_table).where(meta_table.c.key == "schema_version").values(value="8"))
    store.engine.dispose()
    second = json.loads(invoke(*args, expect=1).stdout)
    assert second["findings"] == first["findings"]
    store = open_store(store_url, create=False)
    with store.connect() as conn:
        problems = conn.execute(sa.select(dossier.c.run_id, dossier.c.version_problem).distinct()).all()
        version = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
    store.engine.dispose()
    assert sorted(problems) == [(1, None), (2, None)] and version == str(SCHEMA_VERSION)


def test_a_system_without_staff_is_said_once_and_not_checked_for_staff(tmp_path: Path) -> None:
    """An empty staff directory cannot say who is active: assignee_inactive and unit_without_staff are not
    checked (every assigned dossier would be one), said once; --staff gives the directory back."""
    system = tmp_path / "system"
    system.mkdir()
    for name in ("dossiers.csv", "events.csv"):
        (system / name).write_bytes((BASIC / "system" / name).read_bytes())
    (system / "accounts.csv").write_text("account,unit,active\n", encoding="utf-8")
    args = ["audit", "--register", str(BASIC / "register-2021.csv"), "--system", str(system), "--workflows",
            str(BASIC / "workflows"), "--as-of", "2021-06-30", "--format", "json"]
    full = json.loads(invoke(*args[:4], str(BASIC / "system"), *args[5:], "--store", str(tmp_path / "a.duckdb"),
                             expect=1).stdout)
    staff_kinds = {"assignee_inactive", "unit_without_staff"}
    assert {f["kind"] for f in full["findings"]} & staff_kinds
    result = invoke(*args, "--store", str(tmp_path / "b.duckdb"), expect=1)
    empty = json.loads(result.stdout)
    assert empty["findings"] == [f for f in full["findings"] if f["kind"] not in staff_kinds]
    assert [line for line in result.stderr.splitlines() if "staff" in line] == [
        f"warning: {system / 'accounts.csv'}: no staff accounts, so assignee_inactive and unit_without_staff are not "
        "checked. Hint: --staff FILE gives the staff directory (an accounts.csv file: account, unit, active; or a "
        "YAML file with a mapping's account: block, read from the --system database)."]
    given = invoke(*args, "--store", str(tmp_path / "c.duckdb"), "--staff", str(BASIC / "system" / "accounts.csv"),
                   expect=1)
    assert json.loads(given.stdout)["findings"] == full["findings"]
    assert "staff" not in given.stderr
