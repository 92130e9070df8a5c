"""The demo district generator: determinism, the shape of every file, calibration, planted defects."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sqlite3
import unicodedata
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import holidays
import openpyxl
import pytest
import yaml

from reconcile.workflow.catalog import load_catalog
from reconcile.errors import BadInput
from reconcile.util.normalize import compare_key, fold, looks_like_code, normalize_code, parse_date
from reconcile.demo.district import CALIBRATION, CATALOG, SimulationResult, load_calibration
from reconcile.demo.simulate import simulate

PERIOD_FROM, AS_OF = date(2021, 1, 1), date(2021, 6, 30)
PAPER_ONLY = {"UBND xã Bình Tân Phú", "UBND xã Bình Hải"}
CLOSED = {6, 7, 8, 9}  # vendor codes: returned, withdrawn, stopped, rejected
VENDOR = ("submitted", "received", "in_progress", "supplement_requested", "awaiting_payment", "finished",
          "returned", "withdrawn", "stopped", "rejected")
LAND_MAIN = "1.004227.000.00.00.H48"
COLUMNS = ("total", "online", "carried_over", "in_person", "resolved", "on_time", "late", "in_progress",
           "within_time", "overdue", "withdrawn", "returned_unresolved")
KINDS = {"missing_in_system", "missing_in_register", "resolved_not_closed", "closed_not_resolved",
         "status_mismatch", "date_mismatch", "field_mismatch", "duplicate_code", "register_numbering_gap",
         "unknown_version", "step_not_in_version", "dead_end_step", "assignee_inactive", "unit_without_staff",
         "stalled", "superseded_version"}
VN_HOLIDAYS = holidays.country_holidays("VN", years=range(2019, 2022))


def working_days_since(start: date) -> int:
    """Weekdays after `start` up to the audit date that are not public holidays."""
    return sum(1 for n in range(1, (AS_OF - start).days + 1)
               if (d := date.fromordinal(start.toordinal() + n)).weekday() < 5 and d not in VN_HOLIDAYS)


@pytest.fixture(scope="session")
def district(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("district"))


@pytest.fixture(scope="session")
def csv_district(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("csv-district"), register_format="csv", system_format="csv")


@pytest.fixture(scope="session")
def truth(district: SimulationResult) -> dict[str, Any]:
    return json.loads(district.ground_truth.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def entries(district: SimulationResult) -> list[Entry]:
    return read_register(district.register_files[0])


@pytest.fixture(scope="session")
def hoso(district: SimulationResult) -> dict[str, dict[str, Any]]:
    return read_hoso(district.system)


# ------------------------------------------------------------------------------ readers


@dataclass(frozen=True)
class Entry:
    sheet: str
    stt: int
    code_raw: str
    code: str | None
    procedure: str
    applicant: str
    agency: str
    received: date | None
    due: date | None
    returned: date | None
    note: str
    received_raw: Any

    @property
    def outcome(self) -> str:
        note = fold(self.note or "")
        if "ruthoso" in note:
            return "withdrawn"
        if "tralai" in note:
            return "rejected"
        return "returned" if self.returned else "none"


def read_register(path: Path) -> list[Entry]:
    rows: list[tuple[str, tuple[Any, ...]]] = []
    if path.suffix == ".xlsx":
        wb = openpyxl.load_workbook(path, read_only=True)
        for ws in wb.worksheets:  # a row ends at its last non-empty cell: pad it
            rows += [(ws.title, r + (None,) * (13 - len(r))) for r in ws.iter_rows(min_row=6, values_only=True)
                     if r and r[0] is not None]
        wb.close()
    else:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            rows += [("", tuple(r)) for r in reader]
    return [Entry(sheet, int(r[0]), r[1], normalize_code(r[1]), r[2], r[4], r[6], parse_date(r[7] or None),
                  parse_date(r[8] or None), parse_date(r[10] or None), r[12] or "", r[7]) for sheet, r in rows]


def read_hoso(path: Path) -> dict[str, dict[str, Any]]:
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        dossiers = {r["MA_HOSO"]: dict(r) for r in con.execute("SELECT * FROM HS_HOSO")}
        for r in con.execute("SELECT * FROM HS_XULY_HIENTAI"):
            dossiers[r["MA_HOSO"]]["task"] = dict(r)
        for code, last in con.execute("SELECT MA_HOSO, max(THOIGIAN) FROM HS_NHATKY GROUP BY MA_HOSO"):
            dossiers[code]["last_event"] = last
        return dossiers
    finally:
        con.close()


def read_accounts(path: Path) -> dict[str, tuple[str, int]]:
    con = sqlite3.connect(path)
    try:
        return {a: (unit, active) for a, unit, active in con.execute("SELECT TAIKHOAN, MA_PHONGBAN, TRANGTHAI_HD "
                                                                      "FROM DM_CANBO")}
    finally:
        con.close()


def read_catalog(folder: Path) -> dict[tuple[str, int], dict[str, Any]]:
    return {(doc["procedure"], doc["version"]): doc
            for doc in (yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(folder.rglob("v*.yaml")))}


def read_migrations(folder: Path, catalog: dict[tuple[str, int], dict[str, Any]]
                    ) -> dict[tuple[str, int, str], tuple[str, int]]:
    """(procedure, version, step) -> the (procedure, version) the rules.yaml files move it on to, when that
    is a later version or another procedure. A plain reading: unconditional rules, in file order."""
    rules: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(folder.rglob("rules.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules += [(doc["procedure"], r) for r in doc["rules"] if "when" not in r]

    def step_ids(proc: str, version: int) -> set[str]:
        return {st["id"] for st in catalog[(proc, version)]["steps"]}

    def hop(proc: str, version: int, step: str) -> tuple[str, int, str] | None:
        for p, r in rules:
            if p != proc or r["from"] != version:
                continue
            to_proc = r.get("to_procedure", p)
            target = r["steps"].get(step)
            if isinstance(target, dict):
                target = target["to"]
            if target is None and r.get("same_ids") and step in step_ids(p, version) & step_ids(to_proc, r["to"]):
                target = step
            if target is not None:
                return to_proc, r["to"], target
        return None

    out = {}
    for proc, r in rules:
        for step in set(r["steps"]) | (step_ids(proc, r["from"]) if r.get("same_ids") else set()):
            at: tuple[str, int, str] | None = (proc, r["from"], step)
            end = at
            while at is not None:
                end, at = at, hop(*at)
            assert end is not None
            if end[0] != proc or end[1] > r["from"]:
                out[(proc, r["from"], step)] = (end[0], end[1])
    return out


def day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_byte_identical_files(district: SimulationResult, tmp_path: Path) -> None:
    again = simulate(tmp_path)

    first, second = digests(district.out), digests(again.out)
    assert len(first) > 20
    assert first == second


def test_different_seed_gives_different_data_and_same_seed_same_bytes(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"scale": 0.1, "register_format": "csv", "system_format": "csv"}
    a = simulate(tmp_path / "a", seed=7, **kwargs)
    b = simulate(tmp_path / "b", seed=7, **kwargs)
    c = simulate(tmp_path / "c", seed=8, **kwargs)

    assert digests(a.out) == digests(b.out)
    for name in ("system/dossiers.csv", "register/so-theo-doi-ho-so-2021.csv", "ground_truth.json"):
        assert (a.out / name).read_bytes() != (c.out / name).read_bytes()
    # The catalog and its rules are the committed workflows/ folder, copied as it is, whatever the seed.
    assert digests(a.workflows) == digests(c.workflows) == digests(CATALOG) and len(digests(CATALOG)) == 24


# ------------------------------------------------------------------------------ layout


def test_result_points_at_the_files_written(district: SimulationResult, truth: dict[str, Any],
                                            entries: list[Entry]) -> None:
    out = district.out
    assert district.register_files == (out / "register" / "so-theo-doi-ho-so-2021.xlsx",)
    assert district.system == out / "system" / "binh-son-igate.sqlite"
    assert district.mapping == out / "system" / "mapping.yaml"
    assert district.workflows == out / "workflows"
    assert district.config == out / "reconcile.yaml"
    assert district.ground_truth == out / "ground_truth.json"
    assert district.system_source == f"sqlite:///{district.system}"
    assert truth["counts"] == {"register_entries": district.register_entries,
                               "system_dossiers": district.system_dossiers}
    assert district.system_dossiers == 15256
    assert len(entries) == district.register_entries


def test_project_file_and_mapping_are_the_pinned_documents(district: SimulationResult) -> None:
    cal = load_calibration()
    project = yaml.safe_load(district.config.read_text(encoding="utf-8"))
    assert project == {"district": "huyện Bình Sơn, tỉnh Quảng Ngãi", "as_of": AS_OF, "period": {"from": PERIOD_FROM, "to": AS_OF},
                       "paper_only_units": ["UBND xã Bình Tân Phú", "UBND xã Bình Hải"], "date_tolerance_days": 0,
                       "register": ["register/so-theo-doi-ho-so-2021.xlsx"],
                       "system": "sqlite:///system/binh-son-igate.sqlite", "mapping": "system/mapping.yaml",
                       "workflows": "workflows", "store": "reconcile.duckdb",
                       "statistics": {"convention": "separate", "fields": [r["field"] for r in cal["rows"]],
                                      "groups": [{"label": "lĩnh vực đất đai", "fields": [
                                          "Lĩnh vực đăng ký biện pháp bảo đảm", "Lĩnh vực đất đai"]}]}}
    assert district.mapping is not None
    mapping = yaml.safe_load(district.mapping.read_text(encoding="utf-8"))
    assert mapping["profile"] == "mapping" and mapping["writable"] is True
    assert mapping["dossier"]["table"] == "HS_HOSO"
    assert mapping["dossier"]["status_values"] == dict(enumerate(VENDOR))
    assert mapping["task"]["columns"]["current_step"] == "MA_BUOC"
    assert mapping["account"]["active_values"] == [1]
    assert mapping["events"]["columns"]["action"] == "HANHDONG"


def test_sqlite_schema_is_exactly_the_vendor_shape(district: SimulationResult) -> None:
    con = sqlite3.connect(district.system)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        columns = {t: [(r[1], r[2]) for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}
        pk = [r[1] for r in con.execute("PRAGMA table_info(HS_HOSO)") if r[5]]
    finally:
        con.close()

    assert tables == ["DM_CANBO", "HS_HOSO", "HS_NHATKY", "HS_XULY_HIENTAI"]
    assert columns["HS_HOSO"] == [
        ("ID", "INTEGER"), ("MA_HOSO", "TEXT"), ("MA_TTHC", "TEXT"), ("CHU_HOSO", "TEXT"), ("SO_DIENTHOAI", "TEXT"),
        ("DIA_CHI", "TEXT"), ("DONVI_TIEPNHAN", "TEXT"), ("KENH_NOP", "INTEGER"), ("NGAY_TIEPNHAN", "TEXT"),
        ("NGAY_HENTRA", "TEXT"), ("NGAY_HENTRA_MOI", "TEXT"), ("NGAY_KETTHUC", "TEXT"), ("NGAY_TRAKQ", "TEXT"),
        ("TRANGTHAI", "INTEGER"), ("MA_QUYTRINH", "TEXT"), ("PHIENBAN", "INTEGER"),
    ]
    assert pk == ["ID"]
    assert columns["HS_XULY_HIENTAI"] == [("MA_HOSO", "TEXT"), ("MA_BUOC", "TEXT"), ("TAIKHOAN_XULY", "TEXT"),
                                          ("MA_PHONGBAN", "TEXT"), ("NGAY_NHAN", "TEXT"), ("HAN_XULY", "TEXT")]
    assert columns["DM_CANBO"] == [("TAIKHOAN", "TEXT"), ("HOTEN", "TEXT"), ("MA_PHONGBAN", "TEXT"),
                                   ("TRANGTHAI_HD", "INTEGER")]
    assert columns["HS_NHATKY"] == [("MA_HOSO", "TEXT"), ("STT", "INTEGER"), ("TU_BUOC", "TEXT"),
                                    ("DEN_BUOC", "TEXT"), ("TAIKHOAN", "TEXT"), ("THOIGIAN", "TEXT"),
                                    ("HANHDONG", "TEXT")]


def test_system_rows_are_well_formed(district: SimulationResult, hoso: dict[str, dict[str, Any]]) -> None:
    rows = list(hoso.values())

    assert len(rows) == district.system_dossiers  # codes are unique
    assert {r["KENH_NOP"] for r in rows} == {1}
    assert {r["TRANGTHAI"] for r in rows} <= set(range(10))
    assert all(r["MA_TTHC"] == r["MA_QUYTRINH"] for r in rows)
    assert all(looks_like_code(r["MA_HOSO"]) and normalize_code(r["MA_HOSO"]) == r["MA_HOSO"] for r in rows)
    for r in rows:
        received = day(r["NGAY_TIEPNHAN"])
        assert received is not None and received <= AS_OF
        assert r["MA_HOSO"].split("-")[1] == received.strftime("%y%m%d")
        for col in ("NGAY_TIEPNHAN", "NGAY_HENTRA", "NGAY_KETTHUC", "NGAY_TRAKQ"):
            assert r[col] is None or len(r[col]) == 19 and r[col][10] == " "
        for col in ("NGAY_KETTHUC", "NGAY_TRAKQ"):  # nothing closed before 2021, nothing after the as-of date
            assert r[col] is None or PERIOD_FROM <= day(r[col]) <= AS_OF  # type: ignore[operator]
        # A task exactly for the dossiers whose status is not closed.
        assert ("task" in r) == (r["TRANGTHAI"] not in CLOSED)


def test_open_dossiers_have_a_task_on_a_unit_account(district: SimulationResult, truth: dict[str, Any],
                                                     hoso: dict[str, dict[str, Any]]) -> None:
    accounts = read_accounts(district.system)
    catalog = read_catalog(district.workflows)
    planted = {(f["kind"], f["dossier_code"]) for f in truth["findings"]}
    assumed = {a["dossier_code"]: a["version"] for a in truth["version_assumed"]}
    per_unit = Counter(unit for unit, active in accounts.values() if active)

    for code, r in hoso.items():
        if r["TRANGTHAI"] in CLOSED:
            continue
        task = r["task"]
        if task["TAIKHOAN_XULY"] is None:  # unassigned only where nobody could take it
            assert ("unit_without_staff", code) in planted and per_unit[task["MA_PHONGBAN"]] == 0
        else:
            unit, active = accounts[task["TAIKHOAN_XULY"]]
            assert unit == task["MA_PHONGBAN"]
            assert per_unit[unit] >= 2  # a deactivated assignee always has active colleagues
            assert active == (0 if ("assignee_inactive", code) in planted else 1)
        assert (r["PHIENBAN"] is None) == (code in assumed)
        version = catalog.get((r["MA_QUYTRINH"], assumed.get(code, r["PHIENBAN"])))
        if version is None:
            assert ("unknown_version", code) in planted
            continue
        steps = {s["id"]: s for s in version["steps"]}
        if task["MA_BUOC"] not in steps:
            assert ("step_not_in_version", code) in planted
            continue
        assert steps[task["MA_BUOC"]]["unit"] == task["MA_PHONGBAN"]
        assert day(task["NGAY_NHAN"]) <= day(task["HAN_XULY"])  # type: ignore[operator]


def test_every_unit_of_the_catalog_but_the_planted_one_has_active_staff(
        district: SimulationResult, truth: dict[str, Any], hoso: dict[str, dict[str, Any]]) -> None:
    accounts = read_accounts(district.system)
    active = Counter(unit for unit, is_active in accounts.values() if is_active)
    inactive = Counter(unit for unit, is_active in accounts.values() if not is_active)
    units = {s["unit"] for doc in read_catalog(district.workflows).values() for s in doc["steps"]}
    unstaffed = {hoso[f["dossier_code"]]["task"]["MA_PHONGBAN"] for f in truth["findings"]
                 if f["kind"] == "unit_without_staff"}
    assert unstaffed == {"DODAC"} and active["DODAC"] == 0 and inactive["DODAC"] == 2  # all deactivated
    assert all(active[u] >= 2 for u in units - unstaffed)
    assert sum(inactive.values()) >= 5


def test_register_workbook_layout(district: SimulationResult, truth: dict[str, Any],
                                  entries: list[Entry]) -> None:
    wb = openpyxl.load_workbook(district.register_files[0], read_only=True)
    assert wb.sheetnames == ["Quý I", "Quý II"]
    for ws in wb.worksheets:
        head = [r + (None,) * (13 - len(r)) for r in ws.iter_rows(min_row=1, max_row=5, values_only=True)]
        assert head[0][0] == "SỔ THEO DÕI HỒ SƠ"
        assert head[1][0] == "Bộ phận tiếp nhận và trả kết quả huyện Bình Sơn - Năm 2021"
        assert list(head[3]) == ["STT", "Mã hồ sơ", "Tên TTHC", "Số lượng hồ sơ (bộ)", "Tên cá nhân, tổ chức",
                                 "Địa chỉ, số điện thoại", "Cơ quan chủ trì giải quyết", "Ngày, tháng, năm",
                                 None, None, None, "Ký nhận", "Ghi chú"]
        assert list(head[4]) == [None] * 7 + ["Nhận hồ sơ", "Hẹn trả kết quả", "Chuyển hồ sơ đến cơ quan giải quyết",
                                              "Trả kết quả", None, None]
    wb.close()
    with zipfile.ZipFile(district.register_files[0]) as archive:
        sheets = [archive.read(f"xl/worksheets/sheet{n}.xml").decode() for n in (1, 2)]
        core = archive.read("docProps/core.xml").decode()
        assert {i.date_time for i in archive.infolist()} == {(2021, 7, 1, 0, 0, 0)}
    for xml in sheets:
        merged = set(re.findall(r'<mergeCell ref="([A-Z0-9:]+)"', xml))
        assert {"A1:M1", "A2:M2", "H4:K4", "A4:A5", "G4:G5", "L4:L5", "M4:M5"} <= merged
    assert "2021-07-01T00:00:00Z</dcterms:created>" in core and "2021-07-01T00:00:00Z</dcterms:modified>" in core

    # Sheets split by received date; entries ordered by received date then code.
    assert all((e.sheet == "Quý I") == (e.received < date(2021, 4, 1)) for e in entries)  # type: ignore[operator]
    order = [(e.received, e.code) for e in entries]
    assert order == sorted(order)
    # Numbering is continuous from 1 but for the planted gaps.
    gaps = [(f["missing_from"], f["missing_to"]) for f in truth["findings"] if f["kind"] == "register_numbering_gap"]
    skipped = {n for lo, hi in gaps for n in range(lo, hi + 1)}
    stts = [e.stt for e in entries]
    assert stts == sorted(set(stts)) and stts[0] == 1
    assert set(range(1, stts[-1] + 1)) - set(stts) == skipped
    assert any(hi > lo for lo, hi in gaps)


def test_register_carries_harmless_noise(entries: list[Entry]) -> None:
    text_dates = sum(isinstance(e.received_raw, str) for e in entries)
    assert 0.25 < text_dates / len(entries) < 0.42  # about a third typed as text, the rest Excel dates
    raw_codes = [e.code_raw for e in entries]
    assert any(c != c.strip() for c in raw_codes)
    assert any(" - " in c and "h48" in c for c in raw_codes)
    names = [e.applicant for e in entries]
    assert any(unicodedata.normalize("NFC", n) != n for n in names)
    assert any("  " in n or n != n.strip() for n in names)
    assert any(n.isupper() for n in names)
    notes = {e.note for e in entries}
    assert {"Rút hồ sơ", "Trả lại hồ sơ không giải quyết", "Đã nộp lệ phí"} <= notes


# ------------------------------------------------------------------------------ calibration


def test_calibration_file_adds_up_to_the_published_totals() -> None:
    cal = load_calibration(CALIBRATION)
    rows = cal["rows"]
    assert [r["row"] for r in rows] == list(range(1, 14))
    assert [r["row"] for r in rows if r.get("synthetic")] == list(range(1, 8))
    for r in rows:
        assert r["total"] == r["resolved"] + r["in_progress"] + r["withdrawn"] + r["returned_unresolved"]
        assert r["total"] == r["online"] + r["carried_over"] + r["in_person"]
        assert r["resolved"] == r["on_time"] + r["late"]
        assert r["in_progress"] == r["within_time"] + r["overdue"]
    for name, selected in (("all", None), ("land", {7, 13})):
        sums = {c: sum(r[c] for r in rows if selected is None or r["row"] in selected) for c in COLUMNS}
        assert sums == {c: cal["totals"][name][c] for c in COLUMNS}
    row13 = rows[12]
    assert row13["published"] == {"resolved": 10391, "on_time": 7905}
    assert "46" in CALIBRATION.read_text(encoding="utf-8")


def system_view(dossiers: dict[str, dict[str, Any]], field_of: dict[str, str]) -> dict[str, Counter[str]]:
    """The 12 columns per field, by the classification rules of the system view."""
    view: dict[str, Counter[str]] = defaultdict(Counter)
    for r in dossiers.values():
        c = view[field_of[r["MA_QUYTRINH"]]]
        received, finished = day(r["NGAY_TIEPNHAN"]), day(r["NGAY_KETTHUC"])
        due = day(r["NGAY_HENTRA_MOI"] or r["NGAY_HENTRA"])
        assert received is not None and due is not None
        c["total"] += 1
        c["carried_over" if received < PERIOD_FROM else "in_person"] += 1
        status = r["TRANGTHAI"]
        if status in (5, 6):
            assert finished is not None and PERIOD_FROM <= finished <= AS_OF
            c["resolved"] += 1
            c["on_time" if finished <= due else "late"] += 1
        elif status in (0, 1, 2, 3, 4):
            c["in_progress"] += 1
            c["within_time" if due >= AS_OF else "overdue"] += 1
        elif status == 7:
            c["withdrawn"] += 1
        else:
            c["returned_unresolved"] += 1
    return view


def test_system_view_reproduces_the_calibration_table_per_field(district: SimulationResult,
                                                                hoso: dict[str, dict[str, Any]]) -> None:
    catalog = read_catalog(district.workflows)
    field_of = {proc: doc["field"] for (proc, _), doc in catalog.items()}
    view = system_view(hoso, field_of)

    for row in load_calibration()["rows"]:
        got = view.get(row["field"], Counter())
        assert {c: got[c] for c in COLUMNS} == {c: row[c] for c in COLUMNS}, row["field"]
    assert set(view) <= {r["field"] for r in load_calibration()["rows"]}


# ------------------------------------------------------------------------------ catalog


def test_catalog_files_are_well_formed(district: SimulationResult) -> None:
    files = sorted(district.workflows.rglob("v*.yaml"))
    assert files and all(p.parent.parent == district.workflows for p in files)
    fields = {r["field"] for r in load_calibration()["rows"]}
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert path.name == f"v{doc['version']}.yaml"
        assert {"procedure", "name", "field", "version", "valid_from", "steps"} <= set(doc)
        assert isinstance(doc["valid_from"], date) and doc["field"] in fields and doc["synthetic"] is True
        ids = [s["id"] for s in doc["steps"]]
        assert len(ids) == len(set(ids))
        assert any(s["final"] for s in doc["steps"])
        for s in doc["steps"]:
            assert set(s) == {"id", "name", "unit", "days", "next", "final"}
            assert set(s["next"]) <= set(ids)
            assert s["final"] or s["next"]
    catalog = load_catalog(district.workflows)  # the project's own loader and validator
    assert catalog.warnings == ()
    assert len({v.procedure for v in catalog.versions}) == len({p.parent for p in files})


def test_main_land_procedure_changes_between_versions(district: SimulationResult) -> None:
    catalog = read_catalog(district.workflows)
    versions = {n: catalog[(LAND_MAIN, n)] for n in (1, 2, 3)}
    assert (LAND_MAIN, 4) not in catalog
    assert [v["valid_from"] for v in versions.values()] == [date(2020, 7, 1), date(2021, 2, 22), date(2021, 5, 10)]
    steps = {n: {s["id"]: s for s in v["steps"]} for n, v in versions.items()}
    assert {"S02", "S05"} <= set(steps[1]) and not {"S02", "S05"} & set(steps[2])  # removed
    assert steps[1]["S06"]["name"] != steps[2]["S06"]["name"]  # renamed, same id
    assert "S06" not in steps[3] and "S06A" in steps[3]  # same job, new id
    assert steps[2]["S07"]["unit"] == "LANHDAO" and steps[3]["S07"]["unit"] == "VPDKDD"  # moved
    # v3's comments loop lost its exit: S03A and S03B lead only to each other (a dead end, valid BPMN).
    assert "S03A" in steps[3]["S03"]["next"]
    assert (steps[3]["S03A"]["next"], steps[3]["S03B"]["next"]) == (["S03B"], ["S03A"])
    for n in (1, 2, 3):  # the route's days (the comments loop is off it)
        assert sum(s["days"] for s in versions[n]["steps"] if s["id"] not in ("S03A", "S03B")) == 10
        assert versions[n]["steps"][0]["id"] == "S01" and versions[n]["steps"][-1]["final"] is True
        assert versions[n]["name"] == "Đăng ký biến động quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất"


# ------------------------------------------------------------------------------ ground truth


def reaching_final(steps: list[dict[str, Any]]) -> set[str]:
    """Ids of the steps from which a final step can be reached along `next` (final steps included)."""
    into: dict[str, list[str]] = defaultdict(list)
    for st in steps:
        for nxt in st["next"]:
            into[nxt].append(st["id"])
    seen = [st["id"] for st in steps if st["final"]]
    for sid in seen:
        seen += [s for s in into[sid] if s not in seen]
    return set(seen)


def infer_version(s: dict[str, Any], catalog: dict[tuple[str, int], dict[str, Any]]) -> tuple[int | None, str]:
    """A dossier with no pinned version: the latest version holding its step that was valid when it was
    received, else the earliest version holding the step."""
    received = day(s["NGAY_TIEPNHAN"])
    holding = sorted(n for (proc, n), doc in catalog.items() if proc == s["MA_QUYTRINH"]
                     and s["task"]["MA_BUOC"] in {st["id"] for st in doc["steps"]})
    dated = [n for n in holding if catalog[(s["MA_QUYTRINH"], n)]["valid_from"] <= received]
    if dated:
        return dated[-1], "step_and_date"
    return (holding[0], "step") if holding else (None, "none")


def audit_files(entries: list[Entry], dossiers: dict[str, dict[str, Any]], accounts: dict[str, tuple[str, int]],
                catalog: dict[tuple[str, int], dict[str, Any]],
                migrations: dict[tuple[str, int, str], tuple[str, int]] | None = None
                ) -> tuple[set[tuple[str, str]], dict[str, list[str]], list[tuple[int, int]]]:
    """A plain re-reading of the files by the rules the generator promises (independent of the audit)."""
    found: set[tuple[str, str]] = set()
    fields: dict[str, list[str]] = defaultdict(list)
    names = {proc: doc["name"] for (proc, _), doc in catalog.items()}
    staff = Counter(unit for unit, active in accounts.values() if active)
    agrees = {"returned": {6}, "withdrawn": {7}, "rejected": {8, 9}}
    by_code: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_code[e.code or ""].append(e)
    for code, group in by_code.items():
        if len(group) > 1:
            found.add(("duplicate_code", code))
        e = group[0]
        s = dossiers.get(code)
        if s is None:
            if e.agency not in PAPER_ONLY:
                found.add(("missing_in_system", code))
            continue
        is_open = s["TRANGTHAI"] not in CLOSED
        if e.outcome != "none" and is_open:
            found.add(("resolved_not_closed", code))
        elif e.outcome == "none" and not is_open:
            found.add(("closed_not_resolved", code))
        elif e.outcome != "none" and s["TRANGTHAI"] not in agrees[e.outcome]:
            found.add(("status_mismatch", code))
        system_due = day(s["NGAY_HENTRA_MOI"] or s["NGAY_HENTRA"])
        for name, paper, system in (("received_at", e.received, day(s["NGAY_TIEPNHAN"])),
                                    ("due_at", e.due, system_due), ("returned_at", e.returned, day(s["NGAY_TRAKQ"]))):
            if paper and system and paper != system:
                found.add(("date_mismatch", code))
                fields[f"date_mismatch {code}"].append(name)
        if compare_key(e.applicant) != compare_key(s["CHU_HOSO"]):
            found.add(("field_mismatch", code))
            fields[f"field_mismatch {code}"].append("applicant")
        if compare_key(e.procedure) != compare_key(names[s["MA_QUYTRINH"]]):
            found.add(("field_mismatch", code))
            fields[f"field_mismatch {code}"].append("procedure")
    for code, s in dossiers.items():
        if code not in by_code and day(s["NGAY_TIEPNHAN"]) >= PERIOD_FROM:  # type: ignore[operator]
            found.add(("missing_in_register", code))
        if s["TRANGTHAI"] in CLOSED:
            continue
        task = s["task"]
        pinned = s["PHIENBAN"] if s["PHIENBAN"] is not None else infer_version(s, catalog)[0]
        version = catalog.get((s["MA_QUYTRINH"], pinned))
        steps = {st["id"]: st for st in version["steps"]} if version else {}
        step = steps.get(task["MA_BUOC"])
        if version is None:
            found.add(("unknown_version", code))
        elif step is None:
            found.add(("step_not_in_version", code))
        else:
            if step["id"] not in reaching_final(version["steps"]):
                found.add(("dead_end_step", code))
            if not staff[step.get("unit") or task["MA_PHONGBAN"]]:
                found.add(("unit_without_staff", code))
        if task["TAIKHOAN_XULY"] is not None and not accounts.get(task["TAIKHOAN_XULY"], (None, 0))[1]:
            found.add(("assignee_inactive", code))
        if (s["MA_QUYTRINH"], pinned, task["MA_BUOC"]) in (migrations or {}):
            found.add(("superseded_version", code))
        # Stalled: no movement for more than max(2 x the step's days, 10) working days.
        moved = max(x[:10] for x in (task["NGAY_NHAN"], s.get("last_event")) if x)
        if working_days_since(date.fromisoformat(moved)) > max(math.ceil(2 * (step["days"] if step else 0)), 10):
            found.add(("stalled", code))
    stts = sorted(e.stt for e in entries)
    gaps = [(a + 1, b - 1) for a, b in zip([0] + stts, stts) if b - a > 1]
    return found, dict(fields), gaps


def test_every_planted_defect_is_in_the_files_and_nothing_else(
    district: SimulationResult, truth: dict[str, Any], entries: list[Entry], hoso: dict[str, dict[str, Any]],
) -> None:
    catalog = read_catalog(district.workflows)
    found, fields, gaps = audit_files(entries, hoso, read_accounts(district.system), catalog,
                                      read_migrations(district.workflows, catalog))

    planted = {(f["kind"], f["dossier_code"]) for f in truth["findings"] if f["dossier_code"]}
    assert found == planted
    assert fields == {f"{f['kind']} {f['dossier_code']}": f["fields"] for f in truth["findings"] if "fields" in f}
    book = district.register_files[0].name
    assert gaps == [(f["missing_from"], f["missing_to"]) for f in truth["findings"]
                    if f["kind"] == "register_numbering_gap"]
    assert all(f["book"] == book for f in truth["findings"] if f["kind"] == "register_numbering_gap")


def test_version_inference_rederived_from_the_files(district: SimulationResult, csv_district: SimulationResult,
                                                    truth: dict[str, Any], hoso: dict[str, dict[str, Any]]) -> None:
    """Open dossiers with no pinned version: exactly the listed ones, on a step their inferred version
    has; both bases of the inference occur."""
    catalog = read_catalog(district.workflows)
    unpinned = {code: s for code, s in hoso.items() if s["PHIENBAN"] is None}
    assert all(s["TRANGTHAI"] not in CLOSED for s in unpinned.values())
    derived = [{"dossier_code": code, "procedure": s["MA_QUYTRINH"], "version": infer_version(s, catalog)[0],
                "step": s["task"]["MA_BUOC"], "basis": infer_version(s, catalog)[1]}
               for code, s in sorted(unpinned.items())]
    assert derived == truth["version_assumed"]
    assert Counter(a["basis"] for a in derived) == {"step_and_date": 6, "step": 6}
    # The basis "step": received before every version that has the step.
    assert {(a["procedure"], a["version"], a["step"]) for a in derived if a["basis"] == "step"} == {
        (LAND_MAIN, 3, "S06A"), ("1.004199.000.00.00.H48", 2, "S02A")}
    with (csv_district.system / "dossiers.csv").open(encoding="utf-8", newline="") as fh:
        blank = {r["dossier_code"] for r in csv.DictReader(fh) if r["workflow_version"] == ""}
    assert blank == set(unpinned)


def test_ground_truth_counts_and_shape(district: SimulationResult, truth: dict[str, Any]) -> None:
    text = district.ground_truth.read_text(encoding="utf-8")
    assert text == json.dumps(truth, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert truth["seed"] == 2021 and truth["scale"] == 1.0
    assert truth["as_of"] == "2021-06-30" and truth["period"] == {"from": "2021-01-01", "to": "2021-06-30"}
    assert truth["calibration"] == "reconcile/data/binh_son_2021h1.yaml"
    summary = Counter(f["kind"] for f in truth["findings"])
    assert truth["summary"] == dict(summary)
    assert set(summary) == KINDS
    assert summary == {
        "missing_in_system": 12, "missing_in_register": 9, "resolved_not_closed": 60, "closed_not_resolved": 5,
        "status_mismatch": 4, "date_mismatch": 30, "field_mismatch": 18, "duplicate_code": 4,
        "register_numbering_gap": 3, "unknown_version": 7, "step_not_in_version": 80, "dead_end_step": 8,
        "assignee_inactive": 10, "unit_without_staff": 6, "stalled": 80, "superseded_version": 83,
    }
    assert len(truth["version_assumed"]) == 12
    assert all(set(a) == {"dossier_code", "procedure", "version", "step", "basis"} for a in truth["version_assumed"])
    # Placed by inference, they have no finding, except those placed on a retired version the rules migrate.
    assumed = {a["dossier_code"] for a in truth["version_assumed"]}
    assert {(f["kind"], f["dossier_code"]) for f in truth["findings"] if f["dossier_code"] in assumed} == {
        ("superseded_version", a["dossier_code"]) for a in truth["version_assumed"]
        if (a["procedure"], a["version"]) == (LAND_MAIN, 2)}
    keys = [(f["kind"], f["dossier_code"] or "") for f in truth["findings"] if f["dossier_code"]]
    assert keys == sorted(keys) and len(keys) == len(set(keys))


def test_orphans_are_the_seed_report_case(district: SimulationResult, truth: dict[str, Any],
                                          entries: list[Entry], hoso: dict[str, dict[str, Any]]) -> None:
    """Resolved on paper, pinned to v2, on a step v2 no longer has, in progress and overdue."""
    dossiers = hoso
    by_code = {e.code: e for e in entries}
    v2 = {s["id"] for s in read_catalog(district.workflows)[(LAND_MAIN, 2)]["steps"]}
    orphans = [f["dossier_code"] for f in truth["findings"] if f["kind"] == "resolved_not_closed"]
    step_findings = {f["dossier_code"] for f in truth["findings"] if f["kind"] == "step_not_in_version"}
    assert len(orphans) == 60 and set(orphans) <= step_findings
    for code in orphans:
        s = dossiers[code]
        assert (s["MA_QUYTRINH"], s["PHIENBAN"], s["TRANGTHAI"]) == (LAND_MAIN, 2, 2)
        assert s["task"]["MA_BUOC"] not in v2
        assert day(s["NGAY_HENTRA"]) < AS_OF  # type: ignore[operator]
        assert by_code[code].returned is not None and by_code[code].outcome == "returned"


def test_paper_only_rows_and_bad_codes(truth: dict[str, Any], entries: list[Entry],
                                      hoso: dict[str, dict[str, Any]]) -> None:
    dossiers = hoso
    paper_only = [e for e in entries if e.agency in PAPER_ONLY]
    assert sorted(e.code for e in paper_only) == truth["paper_only"]
    assert len(paper_only) == 32
    assert not {e.code for e in paper_only} & set(dossiers)
    assert truth["bad_codes"] == ["BS-2021-TAM-01", "BS-2021-TAM-02"]
    assert {e.code_raw for e in entries if not looks_like_code(e.code)} == set(truth["bad_codes"])
    missing = {f["dossier_code"] for f in truth["findings"] if f["kind"] == "missing_in_system"}
    assert missing and not missing & set(dossiers) and not missing & set(truth["paper_only"])


# ------------------------------------------------------------------------------ csv profile


def test_csv_variant_has_the_pinned_headers_and_the_same_dossiers(
    csv_district: SimulationResult, district: SimulationResult, hoso: dict[str, dict[str, Any]],
) -> None:
    folder = csv_district.system
    assert csv_district.mapping is None and folder == csv_district.out / "system"
    assert csv_district.system_source == str(folder)

    def rows(name: str) -> list[list[str]]:
        with (folder / name).open(encoding="utf-8", newline="") as fh:
            return list(csv.reader(fh))

    dossiers, accounts, events = rows("dossiers.csv"), rows("accounts.csv"), rows("events.csv")
    assert dossiers[0] == ["dossier_code", "procedure", "applicant", "status", "workflow_key", "workflow_version",
                           "current_step", "assignee", "unit", "received_at", "due_at", "finished_at",
                           "returned_at"]
    assert accounts[0] == ["account", "unit", "active"]
    assert events[0] == ["dossier_code", "seq", "from_step", "to_step", "account", "at"]
    assert {r[2] for r in accounts[1:]} == {"0", "1"}
    assert all(len(r[9]) == 10 and (r[11] == "" or len(r[11]) == 10) for r in dossiers[1:])

    sqlite_rows = hoso
    by_code = {r[0]: r for r in dossiers[1:]}
    assert set(by_code) == set(sqlite_rows)
    for code, s in sqlite_rows.items():
        r = by_code[code]
        assert r[3] == VENDOR[s["TRANGTHAI"]]
        assert r[9] == s["NGAY_TIEPNHAN"][:10] and r[10] == s["NGAY_HENTRA"][:10]
        assert (r[6], r[7], r[8]) == ((s["task"]["MA_BUOC"], s["task"]["TAIKHOAN_XULY"] or "",
                                       s["task"]["MA_PHONGBAN"]) if "task" in s else ("", "", ""))
        assert r[5] == ("" if s["PHIENBAN"] is None else str(s["PHIENBAN"]))

    register = csv_district.register_files[0]
    raw = register.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with register.open(encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["STT", "Mã hồ sơ", "Tên TTHC", "Số lượng hồ sơ (bộ)", "Tên cá nhân, tổ chức",
                      "Địa chỉ, số điện thoại", "Cơ quan chủ trì giải quyết", "Nhận hồ sơ", "Hẹn trả kết quả",
                      "Chuyển hồ sơ đến cơ quan giải quyết", "Trả kết quả", "Ký nhận", "Ghi chú"]
    csv_truth = json.loads(csv_district.ground_truth.read_text(encoding="utf-8"))
    xlsx_truth = json.loads(district.ground_truth.read_text(encoding="utf-8"))
    book = {"book": "so-theo-doi-ho-so-2021.csv"}
    assert csv_truth["findings"] == [{**f, **book} if "book" in f else f for f in xlsx_truth["findings"]]
    catalog = read_catalog(district.workflows)
    found, _, _ = audit_files(read_register(register), sqlite_rows, read_accounts(district.system), catalog,
                              read_migrations(district.workflows, catalog))
    assert found == {(f["kind"], f["dossier_code"]) for f in csv_truth["findings"] if f["dossier_code"]}


# ------------------------------------------------------------------------------ scale and options


def test_small_scale_plants_every_kind_and_reports_progress(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    result = simulate(tmp_path, scale=0.1, progress=lambda stage, done, total: calls.append((stage, done, total)))

    truth = json.loads(result.ground_truth.read_text(encoding="utf-8"))
    assert set(truth["summary"]) == KINDS and all(n >= 1 for n in truth["summary"].values())
    assert truth["scale"] == 0.1
    assert 1400 < result.system_dossiers < 1650
    assert len(read_hoso(result.system)) == result.system_dossiers
    assert len(read_register(result.register_files[0])) == result.register_entries
    stages = {c[0] for c in calls}
    assert {"dossiers", "register", "workflows"} <= stages
    assert ("dossiers", result.system_dossiers, result.system_dossiers) in calls


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"register_format": "ods"}, "register format 'ods': expected one of xlsx, csv."),
        ({"system_format": "mysql"}, "system format 'mysql': expected one of sqlite, csv."),
        ({"scale": 0}, "scale 0: expected a number above 0 (1 = the real district, at most 1000)."),
    ],
)
def test_bad_options_are_bad_input(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        simulate(tmp_path, **kwargs)
    assert str(caught.value) == message
    assert not any(tmp_path.iterdir())
