"""Privacy: plant a password and personal data in the inputs, run a whole flow, scan everything it wrote.

The vendor database is on PostgreSQL (the store a DuckDB file), or on MariaDB through an account of
the test's own (the store on PostgreSQL), reached with a password in the project file's URL. Every
register row and every vendor dossier carries one planted applicant, phone number and address, and the
register's notes an ID number (with the name, the phone number written in groups and the street again).
After audit, census, show, plan, apply, undo, history, stats, report, tickets, notify, check-report and
workflows diff, every stdout and stderr, every file written and every text value of every table of the
store are searched for each planted value:
- the password: nowhere;
- the personal data: never on stderr, never in the vendor tickets; elsewhere only in the places the
  safety page names (the store's snapshot of both sides, the office's reports and worklists, the plan
  file's evidence and what `show` prints).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import openpyxl
import pytest
import sqlalchemy as sa

from corpus import cli

PASSWORD = "Pl@nted/Pw0rd"  # written percent-encoded in URLs: both forms are searched
SECRETS = (PASSWORD, quote(PASSWORD, safe=""))
NAME = "Hoàng Thị Bí Mật"
PHONE = "0912345678"
ID_NUMBER = "079204001234"
STREET = "số 17 ngõ Bí Ẩn"
HAMLET = "thôn Ẩn Danh"
ADDRESS = f"{STREET}, {HAMLET}, xã Bình Hòa, huyện Bình Sơn"
PERSONAL = {"name": NAME, "phone": PHONE, "id number": ID_NUMBER, "street": STREET, "hamlet": HAMLET}

# Where personal data is kept on purpose: the store keeps each run's snapshot of both sides (and the
# change log, the recorded plan); the office's reports and worklists are not masked; the plan file
# carries each action's evidence for its reviewer; `show` and `audit --format json` print the evidence; the
# SMS gateway's CSV of `notify` holds the phone numbers it sends to.
ALLOWED = {
    "notices/sms-1.csv", "notices-overdue/sms-2.csv",
    "store", "plan.yaml", "stdout of show CODE", "stdout of audit --format json",
    "out/report.json", "out/report.vi.html", "out/report.en.html", "out/report.vi.md", "out/report.en.md",
    "out/report.vi.xlsx", "out/report.en.xlsx", "out/report.vi.findings.csv", "out/report.en.findings.csv",
    "out/report.vi.worklists.csv", "out/report.en.worklists.csv",
}


def _plant_register(path: Path) -> None:
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        header = next(r for r in ws.iter_rows(max_row=6) if any(c.value == "Mã hồ sơ" for c in r))
        col = {c.value: c.column for c in header if isinstance(c.value, str)}
        for row in range(header[0].row + 1, ws.max_row + 1):
            if not ws.cell(row, col["Mã hồ sơ"]).value:
                continue
            ws.cell(row, col["Tên cá nhân, tổ chức"]).value = NAME
            ws.cell(row, col["Địa chỉ, số điện thoại"]).value = f"{ADDRESS}, {PHONE}"
            if not ws.cell(row, col["Ghi chú"]).value:  # notes saying "Rút hồ sơ" keep their meaning
                ws.cell(row, col["Ghi chú"]).value = f"người nộp {NAME}, ĐT 0912 345 678, CCCD {ID_NUMBER}, {STREET}"
    wb.save(path)


def _vendor_copy(sqlite_path: Path, url: str) -> None:
    """The vendor's tables, planted, copied from the simulated SQLite file into the test's database."""
    con = sqlite3.connect(sqlite_path)
    con.execute("UPDATE HS_HOSO SET CHU_HOSO = ?, SO_DIENTHOAI = ?, DIA_CHI = ?", (NAME, PHONE, ADDRESS))
    con.commit()
    con.close()
    source = sa.create_engine(f"sqlite:///{sqlite_path}")
    meta = sa.MetaData()
    meta.reflect(source)
    for column in (c for table in meta.sorted_tables for c in table.columns):
        if isinstance(column.type, sa.Text):  # MariaDB keys need a length
            column.type = sa.String(255)
    target = sa.create_engine(url)
    meta.create_all(target)
    with source.connect() as read, target.begin() as write:
        for table in meta.sorted_tables:
            rows = [dict(r) for r in read.execute(table.select()).mappings()]
            if rows:
                write.execute(table.insert(), rows)
    source.dispose()
    target.dispose()


def _texts(path: Path) -> str:
    """A written file as the text a reader sees: workbooks cell by cell (their XML escapes non-ASCII
    characters), JSON decoded (escapes too), anything else by its bytes."""
    if path.suffix == ".xlsx":
        wb = openpyxl.load_workbook(path, read_only=True)
        return "\n".join([ws.title for ws in wb.worksheets] + [
            str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None])
    text = path.read_bytes().decode("utf-8", "replace")
    return json.dumps(json.loads(text), ensure_ascii=False) if path.suffix == ".json" else text


def _store_text(url: str) -> str:
    """Every row of every table of the store, as text."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return "\n".join(json.dumps([list(r) for r in conn.execute(sa.text(f'SELECT * FROM "{t}"'))],
                                         default=str, ensure_ascii=False)
                              for t in sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def mariadb_user(mariadb_url: str) -> Iterator[str]:
    """The test's MariaDB database through an account of its own that has a password."""
    url = sa.engine.make_url(mariadb_url)
    user = f"u_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(mariadb_url)
    hosts = ("%%", "localhost")  # '%' doubled: the driver formats the statement
    with admin.begin() as conn:
        for host in hosts:
            conn.exec_driver_sql(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}'")
            conn.exec_driver_sql(f"GRANT ALL ON `{url.database}`.* TO '{user}'@'{host}'")
    yield url.set(username=user, password=PASSWORD).render_as_string(hide_password=False)
    with admin.begin() as conn:
        for host in hosts:
            conn.exec_driver_sql(f"DROP USER '{user}'@'{host}'")
    admin.dispose()


@pytest.fixture(params=["vendor-postgresql", "vendor-mariadb-store-postgresql"])
def servers(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(the vendor database's URL, the store's URL or None for the DuckDB file), each with the password."""
    pg = sa.engine.make_url(request.getfixturevalue("pg_url")).set(password=PASSWORD)
    if request.param == "vendor-postgresql":
        return pg.render_as_string(hide_password=False), None
    return request.getfixturevalue("mariadb_user"), pg.render_as_string(hide_password=False)


def test_planted_password_and_personal_data_only_where_the_readme_says(tmp_path: Path,
                                                                       servers: tuple[str, str | None]) -> None:
    system, store = servers
    folder = tmp_path / "district"
    assert cli(tmp_path, ["simulate", "--out", str(folder), "--scale", "0.01"]).exit_code == 0
    _plant_register(folder / "register" / "so-theo-doi-ho-so-2021.xlsx")
    _vendor_copy(folder / "system" / "binh-son-igate.sqlite", system)
    (folder / "system" / "binh-son-igate.sqlite").unlink()
    project = folder / "reconcile.yaml"
    project.write_text(project.read_text(encoding="utf-8").replace(
        "system: sqlite:///system/binh-son-igate.sqlite", f"system: {json.dumps(system)}"), encoding="utf-8")
    shutil.copytree(Path(__file__).parents[1] / "examples" / "seed", folder / "published")
    inputs = {p for p in folder.rglob("*") if p.is_file()}

    flow = [
        ("audit", 1), ("audit --format json", 1), ("census", 1), ("plan --out plan.yaml", 0),
        (f"apply plan.yaml --dry-run --system {system}", 0), (f"apply plan.yaml --yes --system {system}", 0),
        ("history", 0), (f"undo 1 --yes --system {system}", 0), (f"apply plan.yaml --yes --system {system}", 0),
        ("stats", 0), ("stats --view register", 0), ("report --format all --lang vi --lang en --out out", 0),
        (f"tickets --out tickets --system {system}", 0), (f"tickets --out tickets-vi --lang vi --system {system}", 0),
        ("notify --out notices", 0), ("notify --overdue --no-diacritics --out notices-overdue", 0),
        ("notify --overdue --dry-run", 0),
        ("check-report published/phu-luc-binh-son-2021-h1.tsv", 1),
        ("workflows diff 1.004227.000.00.00.H48 2 3", 0),
    ]
    outputs: dict[str, str] = {}
    shown = ""

    def run(argv: str, code: int) -> str:
        """Run it (on the server store, when there is one), keep its stdout and stderr; its stdout."""
        words = argv.split() + (["--store", store] if store and not argv.startswith("check-report") else [])
        result = cli(folder, words)
        assert result.exit_code == code, f"{argv}: {result.stderr}"
        label = argv.replace(system, "URL").replace(shown, "CODE") if shown else argv.replace(system, "URL")
        outputs[f"stdout of {label}"], outputs[f"stderr of {label}"] = result.stdout, result.stderr
        return result.stdout

    for argv, code in flow:
        run(argv, code)
    # A source the tool may not write: the confirmed fixes (and the reviewer's confirmed backfill) become
    # tickets too, with the SQL of apply's dry run.
    mapping = folder / "system" / "mapping.yaml"
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("writable: true", "writable: false"), "utf-8")
    plan = (folder / "plan.yaml").read_text(encoding="utf-8")
    (folder / "reviewed.yaml").write_text(plan.replace("confirmed: false", "confirmed: true"), encoding="utf-8")
    inputs |= {folder / "reviewed.yaml"}
    run(f"tickets --out tickets-planned --plan reviewed.yaml --system {system}", 0)
    run(f"tickets --out tickets-planned-vi --lang vi --plan reviewed.yaml --system {system}", 0)
    shown = json.loads(run("audit --format json", 1))["findings"][0]["dossier_code"]
    run(f"show {shown}", 0)

    written = {str(p.relative_to(folder)): _texts(p) for p in sorted(folder.rglob("*"))
               if p.is_file() and p not in inputs and p.suffix != ".duckdb"}
    places = {**outputs, **written, "store": _store_text(store or f"duckdb:///{folder / 'reconcile.duckdb'}")}
    assert any(k.startswith("tickets/T") for k in places) and any(k.startswith("tickets-vi/T") for k in places)
    assert any("planned_backfill" in k for k in places) and any("planned_close" in k for k in places)

    assert quote(PASSWORD, safe="") in system
    assert [p for p, text in places.items() if any(secret in text for secret in SECRETS)] == []
    found = {kind: sorted(p for p, text in places.items() if value in text) for kind, value in PERSONAL.items()}
    assert {k: [p for p in v if p.startswith(("tickets", "stderr"))] for k, v in found.items()} == {
        k: [] for k in PERSONAL}, "vendor tickets and stderr hold personal data"
    assert {k: [p for p in v if p not in ALLOWED] for k, v in found.items()} == {k: [] for k in PERSONAL}
    assert all(found[k] for k in ("name", "phone", "street")), "the planted values must reach the outputs"
    assert {"notices/sms-1.csv", "notices-overdue/sms-2.csv"} <= set(found["phone"]), "notify sends to the number"
    tickets = "\n".join(text for p, text in places.items() if p.startswith("tickets"))
    assert "H. T. B. M." in tickets and "*********234" in tickets, "the tickets show the planted values masked"


def test_a_name_and_phone_typed_into_the_code_column_stay_off_stderr(tmp_path: Path) -> None:
    basic = Path(__file__).parent / "cases" / "golden" / "basic"
    register = tmp_path / "register.csv"
    register.write_text((basic / "register-2021.csv").read_text(encoding="utf-8").replace(
        "000.00.53.H48-210105-0001", f"{NAME} {PHONE}", 1), encoding="utf-8")
    result = cli(tmp_path, ["audit", "--register", str(register), "--system", str(basic / "system"), "--workflows",
                            str(basic / "workflows"), "--as-of", "2021-06-30", "--store", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 1 and "register.csv, row 2: " in result.stderr, result.stderr
    assert NAME not in result.stderr and PHONE not in result.stderr
    assert (f"register.csv, row 2: a text of {len(NAME) + 1 + len(PHONE)} characters (not shown: it may hold personal "
            "data) does not look like a dossier code (kept).") in result.stderr
