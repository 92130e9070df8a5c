"""Deterministic demo district: Bình Sơn's one-stop shop, first half of 2021 (DESIGN §10).

`simulate(out)` writes the paper register book of 2021, a vendor-shaped system database (SQLite +
mapping, or the csv export profile), a copy of the workflow catalog it draws from (the repository's
`workflows/`), the project file and `ground_truth.json` (every planted defect, and the open dossiers
with no pinned version with the version the audit must infer for them). At scale 1 the system's view
of the period reproduces the calibration table `reconcile/data/binh_son_2021h1.yaml` exactly, per
field and column.

How it works, in two passes so that a million dossiers stream in bounded memory:
1. Plan: every dossier of the calibration table becomes one packed integer (received day, random
   tie-break, planted-defect serial, procedure, category, carried-over flag); planted dossiers are
   drawn from the same table cells, so they still count where the table says. The list is sorted:
   received day then tie-break gives each dossier its daily sequence number (its code).
2. Emit, day by day: each dossier's dates, status, current task and history are derived from its
   category and written at once (system rows, then that day's register rows sorted by code).
   Planted dossiers are built before the pass, because some of them (late data entry) appear in
   the register on an earlier day than in the system.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
import random
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from reconcile.errors import BadInput
from reconcile.util.calendar import is_working_day
from reconcile.util.files import fixed_zip
from reconcile.util.normalize import without_diacritics
from reconcile.workflow.catalog import Step, WorkflowVersion, catalog_from_docs, load_catalog

Progress = Callable[[str, int, int], None]

CALIBRATION = Path(__file__).parent.parent / "data" / "binh_son_2021h1.yaml"
CALIBRATION_REF = "reconcile/data/binh_son_2021h1.yaml"
# The demo catalog is the repository's top-level workflows/; reconcile/data/workflows links to it so that
# it ships as package data (a non-editable install) and a checkout reads the committed files themselves.
CATALOG = Path(__file__).parent.parent / "data" / "workflows"
DISTRICT = Path(__file__).parent.parent / "data" / "binh_son_district.yaml"  # what the catalog does not say
PERIOD_FROM = date(2021, 1, 1)
AS_OF = date(2021, 6, 30)
CARRIED_FROM = date(2020, 9, 1)  # carried-over dossiers were received from here to 31/12/2020
FIXED_TIME = datetime(2021, 7, 1, 0, 0, 0)  # every file timestamp, for byte-identical output
REGISTER_STEM = "so-theo-doi-ho-so-2021"
SQLITE_NAME = "binh-son-igate.sqlite"
AGENCY_CODE = "000.00.53.H48"  # UBND huyện Bình Sơn (DOMAIN §4)
PAPER_ONLY_UNITS = ("UBND xã Bình Tân Phú", "UBND xã Bình Hải")
PAPER_ONLY_CODES = {"UBND xã Bình Tân Phú": "000.21.53.H48", "UBND xã Bình Hải": "000.22.53.H48"}
REGISTER_FORMATS = ("xlsx", "csv")
SYSTEM_FORMATS = ("sqlite", "csv")
SYSTEM_SCHEMAS = ("vendor", "activiti")

# Vendor status codes (HS_HOSO.TRANGTHAI) -> canonical statuses; index = vendor code.
VENDOR_STATUSES = ("submitted", "received", "in_progress", "supplement_requested", "awaiting_payment",
                   "finished", "returned", "withdrawn", "stopped", "rejected")
RECEIVED, IN_PROGRESS, SUPPLEMENT, AWAITING_PAYMENT, FINISHED = 1, 2, 3, 4, 5
RETURNED, WITHDRAWN, STOPPED, REJECTED = 6, 7, 8, 9
CLOSED = frozenset({RETURNED, WITHDRAWN, STOPPED, REJECTED})

# Calibration categories: where each dossier lands in the 12-column table.
ON_TIME, LATE, WITHIN, OVERDUE, WITHDRAWN_CAT, UNRESOLVED = range(6)
CATEGORY_COLUMNS = ("on_time", "late", "within_time", "overdue", "withdrawn", "returned_unresolved")

NOTE_WITHDRAWN = "Rút hồ sơ"
NOTE_UNRESOLVED = "Trả lại hồ sơ không giải quyết"
# Notes that must not read as an outcome (no "rút", "trả lại", "từ chối", "không giải quyết").
HARMLESS_NOTES = ("Đã nộp lệ phí", "Liên thông với Chi cục Thuế", "Có giấy ủy quyền", "Hồ sơ photo công chứng")

REGISTER_HEADER = (
    "STT", "Mã hồ sơ", "Tên TTHC", "Số lượng hồ sơ (bộ)", "Tên cá nhân, tổ chức", "Địa chỉ, số điện thoại",
    "Cơ quan chủ trì giải quyết", "Nhận hồ sơ", "Hẹn trả kết quả", "Chuyển hồ sơ đến cơ quan giải quyết",
    "Trả kết quả", "Ký nhận", "Ghi chú",
)
CSV_DOSSIER_HEADER = ("dossier_code", "procedure", "applicant", "status", "workflow_key", "workflow_version",
                      "current_step", "assignee", "unit", "received_at", "due_at", "finished_at", "returned_at")
CSV_ACCOUNT_HEADER = ("account", "unit", "active")
CSV_EVENT_HEADER = ("dossier_code", "seq", "from_step", "to_step", "account", "at")

SQLITE_SCHEMA = """
CREATE TABLE HS_HOSO(ID INTEGER PRIMARY KEY, MA_HOSO TEXT, MA_TTHC TEXT, CHU_HOSO TEXT, SO_DIENTHOAI TEXT,
  DIA_CHI TEXT, DONVI_TIEPNHAN TEXT, KENH_NOP INTEGER, NGAY_TIEPNHAN TEXT, NGAY_HENTRA TEXT,
  NGAY_HENTRA_MOI TEXT, NGAY_KETTHUC TEXT, NGAY_TRAKQ TEXT, TRANGTHAI INTEGER, MA_QUYTRINH TEXT,
  PHIENBAN INTEGER);
CREATE TABLE HS_XULY_HIENTAI(MA_HOSO TEXT, MA_BUOC TEXT, TAIKHOAN_XULY TEXT, MA_PHONGBAN TEXT,
  NGAY_NHAN TEXT, HAN_XULY TEXT);
CREATE TABLE DM_CANBO(TAIKHOAN TEXT PRIMARY KEY, HOTEN TEXT, MA_PHONGBAN TEXT, TRANGTHAI_HD INTEGER);
CREATE TABLE HS_NHATKY(MA_HOSO TEXT, STT INTEGER, TU_BUOC TEXT, DEN_BUOC TEXT, TAIKHOAN TEXT,
  THOIGIAN TEXT, HANHDONG TEXT);
"""

MAPPING_YAML = """\
# Source mapping: which vendor tables/columns mean what (see README).
profile: mapping
writable: true
dossier:
  table: HS_HOSO
  columns: {dossier_code: MA_HOSO, procedure: MA_TTHC, applicant: CHU_HOSO, phone: SO_DIENTHOAI, address: DIA_CHI, agency: DONVI_TIEPNHAN, channel: KENH_NOP, received_at: NGAY_TIEPNHAN, due_at: NGAY_HENTRA, due_at_revised: NGAY_HENTRA_MOI, finished_at: NGAY_KETTHUC, returned_at: NGAY_TRAKQ, status: TRANGTHAI, workflow_key: MA_QUYTRINH, workflow_version: PHIENBAN}
  status_values: {0: submitted, 1: received, 2: in_progress, 3: supplement_requested, 4: awaiting_payment, 5: finished, 6: returned, 7: withdrawn, 8: stopped, 9: rejected}
task:
  table: HS_XULY_HIENTAI
  columns: {dossier_code: MA_HOSO, current_step: MA_BUOC, assignee: TAIKHOAN_XULY, unit: MA_PHONGBAN, step_entered_at: NGAY_NHAN, step_due_at: HAN_XULY}
account:
  table: DM_CANBO
  columns: {account: TAIKHOAN, name: HOTEN, unit: MA_PHONGBAN, active: TRANGTHAI_HD}
  active_values: [1]
events:
  table: HS_NHATKY
  columns: {dossier_code: MA_HOSO, seq: STT, from_step: TU_BUOC, to_step: DEN_BUOC, account: TAIKHOAN, at: THOIGIAN, action: HANHDONG}
"""

PROJECT_YAML = """\
# Demo project: Bình Sơn district one-stop shop, first half of 2021 (written by `reconcile simulate`).
# Paths are relative to this file: `reconcile audit` in this folder audits the district.
district: "huyện Bình Sơn, tỉnh Quảng Ngãi"
as_of: 2021-06-30
period: {from: 2021-01-01, to: 2021-06-30}
paper_only_units: ["UBND xã Bình Tân Phú", "UBND xã Bình Hải"]
date_tolerance_days: 0
"""


@dataclass(frozen=True, slots=True)
class SimulationResult:
    out: Path
    register_files: tuple[Path, ...]
    system: Path  # the sqlite file, or the csv folder
    mapping: Path | None
    workflows: Path
    config: Path
    ground_truth: Path
    register_entries: int
    system_dossiers: int
    system_url: str | None = None  # the engine database (--system-schema activiti)
    sidecars: Path | None = None  # its sidecar folder (working days per procedure version)

    @property
    def system_source(self) -> str:
        """What to pass as `--system`: a SQLAlchemy URL for the sqlite file, else the csv folder."""
        if self.system_url is not None:
            return self.system_url
        return f"sqlite:///{self.system}" if self.mapping is not None else str(self.system)


# =============================================================================== the catalog


@dataclass(frozen=True, slots=True)
class DemoStep:
    id: str
    name: str
    unit: str
    days: float
    next: tuple[str, ...]
    final: bool


@dataclass(frozen=True, slots=True)
class DemoVersion:
    number: int
    valid_from: date
    steps: tuple[DemoStep, ...]  # as the vendor system holds it now (what the catalog file says)
    deployed: tuple[DemoStep, ...] | None = None  # as first deployed, when edited in place since
    edited_on: date | None = None  # the day of that edit
    side: tuple[str, ...] = ()  # steps off the ordinary route: only planted dossiers sit there

    @property
    def route(self) -> tuple[DemoStep, ...]:
        """The steps an ordinary dossier walks (first to final, in order)."""
        return tuple(s for s in self.steps if s.id not in self.side)


@dataclass(frozen=True, slots=True)
class DemoProcedure:
    code: str  # MA_TTHC = MA_QUYTRINH = catalog `procedure`
    name: str
    field: str
    folder: str
    days: int  # time limit in working days
    agency: str
    weight: float  # share of its field's dossiers
    versions: tuple[DemoVersion, ...]

    @property
    def latest(self) -> DemoVersion:
        return self.versions[-1]


F_LAND = "Lĩnh vực đất đai"

LAND_MAIN = "1.004227.000.00.00.H48"
LAND_RENEW = "1.004199.000.00.00.H48"


def _steps(steps: Iterable[Step]) -> tuple[DemoStep, ...]:
    return tuple(DemoStep(s.id, s.name, s.unit or "", s.days, s.next, s.final) for s in steps)


def load_procedures(catalog: Path = CATALOG, district: Path = DISTRICT) -> tuple[DemoProcedure, ...]:
    """The demo district's procedures: versions and steps from the catalog folder (validated by the
    catalog loader), what the catalog does not say (agency, share, time limit, steps off the route,
    in-place edits) from the district file. BadInput: the two disagree, or the catalog warns."""
    loaded = load_catalog(catalog)
    if loaded.warnings:  # the demo's catalog loads cleanly: a warning here is an edit gone wrong
        raise BadInput(f"{loaded.warnings[0]} Hint: the demo district's catalog must load without warnings.")
    by_folder: dict[str, list[WorkflowVersion]] = {}
    for v in loaded.versions:
        by_folder.setdefault(Path(v.path).relative_to(catalog).parent.as_posix(), []).append(v)
    doc = yaml.safe_load(district.read_text(encoding="utf-8"))
    if unlisted := sorted(set(by_folder) - {p["folder"] for p in doc["procedures"]}):
        raise BadInput(f"{catalog / unlisted[0]}: a procedure the district file does not list. "
                       f"Hint: add it to {district} with its agency, share and time limit.")
    edits = {(e["folder"], e["version"]): e for e in doc.get("edited") or ()}
    return tuple(_procedure(p, by_folder.get(p["folder"], []), edits, catalog / p["folder"])
                 for p in doc["procedures"])


def _procedure(entry: dict[str, Any], versions: list[WorkflowVersion], edits: dict[tuple[str, int], Any],
               where: Path) -> DemoProcedure:
    """One procedure of the district file with its catalog versions (sorted by number)."""
    numbers = [v.version for v in versions]
    if not versions or numbers != list(range(1, len(versions) + 1)) or any(v.valid_from is None for v in versions):
        raise BadInput(f"{where}: expected versions v1.yaml, v2.yaml... with no gap, each with valid_from "
                       f"(found {', '.join(f'v{n}' for n in numbers) or 'none'}).")
    if len({v.procedure for v in versions}) != 1:
        raise BadInput(f"{where}: its versions name different procedure codes.")
    side = {int(k): tuple(ids) for k, ids in (entry.get("off_route") or {}).items()}
    out = []
    for v in versions:
        assert v.valid_from is not None  # checked above
        if unknown := [s for s in side.get(v.version, ()) if v.step(s) is None]:
            raise BadInput(f"{where}: off_route of v{v.version} names {unknown[0]}, not a step of v{v.version}. "
                           f"Hint: correct {DISTRICT.name} or the version file.")
        deployed, edited_on = _edit(v, edits.get((entry["folder"], v.version)))
        out.append(DemoVersion(v.version, v.valid_from, _steps(v.steps), deployed, edited_on, side.get(v.version, ())))
    latest = versions[-1]
    return DemoProcedure(latest.procedure, latest.name, latest.field or "", entry["folder"], int(entry["days"]),
                      entry["agency"], float(entry["share"]), tuple(out))


def _edit(v: WorkflowVersion, entry: dict[str, Any] | None) -> tuple[tuple[DemoStep, ...] | None, date | None]:
    """(steps as first deployed, day of the in-place edit) of a version the district file says was edited;
    the deployed steps are in the catalog's format and validated like a version file."""
    if entry is None:
        return None, None
    doc = {"procedure": v.procedure, "name": v.name, "version": v.version, "steps": entry["deployed"]}
    deployed = catalog_from_docs([(doc, f"{DISTRICT.name}: edited {entry['folder']} v{v.version}")])
    return _steps(deployed.versions[0].steps), entry["edited_on"]


# Staff per unit: (active accounts, deactivated accounts).
STAFF = {"MOTCUA": (5, 1), "VPDKDD": (8, 2), "THUE": (3, 1), "LANHDAO": (3, 1), "TNMT": (3, 1), "TUPHAP": (3, 0),
         "TCKH": (2, 0), "KTHT": (2, 0), "LDTBXH": (2, 1), "BHXH": (2, 0), "VHTT": (2, 0), "GDDT": (2, 0),
         "DODAC": (0, 2)}  # the survey team of the land office: every account deactivated

# Commune-level procedures written in the book by the two communes without the software.
PAPER_ONLY_PROCEDURES = (("Đăng ký khai sinh", 1), ("Đăng ký kết hôn", 1), ("Đăng ký khai tử", 1),
                         ("Cấp Giấy xác nhận tình trạng hôn nhân", 3),
                         ("Chứng thực bản sao từ bản chính giấy tờ, văn bản", 1))

# ================================================================================= names

_FAMILY = (("Nguyễn", 38), ("Trần", 11), ("Lê", 9), ("Phạm", 7), ("Huỳnh", 5), ("Võ", 5), ("Phan", 4),
           ("Trương", 3), ("Bùi", 2), ("Đặng", 2), ("Đỗ", 2), ("Ngô", 2), ("Hồ", 2), ("Dương", 1), ("Đinh", 1),
           ("Lương", 1), ("Đoàn", 1), ("Lâm", 1), ("Châu", 1), ("Tạ", 1))
FAMILY = tuple(name for name, weight in _FAMILY for _ in range(weight))
MIDDLE_M = ("Văn", "Văn", "Văn", "Đức", "Minh", "Quốc", "Hữu", "Công", "Thanh", "Ngọc", "Xuân", "Tấn", "Đình")
MIDDLE_F = ("Thị", "Thị", "Thị", "Thị Thu", "Thị Kim", "Ngọc", "Thanh", "Thị Mỹ", "Thị Ngọc", "Thu")
GIVEN_M = ("An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hùng", "Huy", "Khánh", "Long", "Minh", "Nam", "Phong",
           "Phúc", "Quang", "Sơn", "Tài", "Thắng", "Thành", "Trung", "Tuấn", "Việt", "Vinh", "Hoàng", "Lộc",
           "Tâm", "Tín", "Hiếu", "Kiên", "Nhân")
GIVEN_F = ("Anh", "Chi", "Dung", "Hà", "Hạnh", "Hằng", "Hoa", "Hương", "Lan", "Liên", "Linh", "Loan", "Mai",
           "My", "Nga", "Ngọc", "Nhung", "Oanh", "Phương", "Thảo", "Thủy", "Trang", "Trinh", "Tuyết", "Vân",
           "Xuân", "Yến", "Hiền", "Hồng", "Lệ")
COMMUNES = ("Bình An", "Bình Châu", "Bình Chánh", "Bình Chương", "Bình Dương", "Bình Đông", "Bình Hải",
            "Bình Hiệp", "Bình Hòa", "Bình Khương", "Bình Long", "Bình Minh", "Bình Mỹ", "Bình Nguyên",
            "Bình Phước", "Bình Tân Phú", "Bình Thanh", "Bình Thạnh", "Bình Thuận", "Bình Trị", "Bình Trung")
VILLAGES = ("An Điềm", "Phước Hòa", "Tân Hy", "Mỹ Long", "Trung An", "Long Yên", "Thạnh Đức", "Châu Me",
            "Phú Long", "Đông Yên", "Tây Phước", "An Thạnh", "Vĩnh Trà", "Hải Ninh", "Xuân Yên", "Bình Thới")
PHONE_PREFIXES = ("090", "091", "093", "094", "097", "098", "035", "036", "038", "077", "079", "083", "088")
CONSONANTS = "bcdghklmnpqrstvx"


def _addresses() -> tuple[str, ...]:
    out = [f"thôn {v}, xã {c}, huyện Bình Sơn" for c in COMMUNES for v in VILLAGES[:8]]
    out += [f"tổ dân phố {n}, thị trấn Châu Ổ, huyện Bình Sơn" for n in range(1, 9)]
    return tuple(out)


ADDRESSES = _addresses()
COMMUNE_ADDRESSES = {unit: tuple(f"thôn {v}, xã {unit.removeprefix('UBND xã ')}, huyện Bình Sơn"
                                 for v in VILLAGES[:6]) for unit in PAPER_ONLY_UNITS}


def _person(rng: random.Random) -> str:
    middle, given = (MIDDLE_M, GIVEN_M) if rng.random() < 0.55 else (MIDDLE_F, GIVEN_F)
    family, mid, name = rng.choice(FAMILY), rng.choice(middle), rng.choice(given)
    if mid.endswith(name):  # "Thị Ngọc Ngọc"
        name = given[(given.index(name) + 1) % len(given)]
    return f"{family} {mid} {name}"


def _phone(rng: random.Random) -> str:
    return f"{rng.choice(PHONE_PREFIXES)}{rng.randrange(10_000_000):07d}"


def _ascii(text: str) -> str:
    return "".join(ch for ch in without_diacritics(text) if ch.isascii() and ch.isalnum()).lower()


def _typo(name: str, rng: random.Random) -> str:
    """One letter of the given name replaced by a different consonant: a real difference, not noise."""
    words = name.split(" ")
    given = unicodedata.normalize("NFD", words[-1])
    spots = [i for i, ch in enumerate(given) if ch.lower() in CONSONANTS]
    if not spots:
        spots = [i for i, ch in enumerate(given) if ch.isascii() and ch.isalpha()]
    i = rng.choice(spots)
    old = given[i]
    new = rng.choice([c for c in CONSONANTS if c != old.lower()])
    new = new.upper() if old.isupper() else new
    words[-1] = unicodedata.normalize("NFC", given[:i] + new + given[i + 1:])
    return " ".join(words)


# ============================================================================== the calendar


class Days:
    """Working days as indices: arithmetic is list indexing, formatting is a table lookup."""

    def __init__(self) -> None:
        first, last = date(2020, 6, 1), date(2022, 3, 31)
        days = []
        d = first
        while d <= last:
            if is_working_day(d):
                days.append(d)
            d += timedelta(days=1)
        self.dates = days
        self.ordinals = [d.toordinal() for d in days]
        self.iso = [d.isoformat() for d in days]
        self.dmy = [d.strftime("%d/%m/%Y") for d in days]
        self.ymd6 = [d.strftime("%y%m%d") for d in days]
        self.as_of = self.index(AS_OF)
        self.first_2021 = self.at_or_after(PERIOD_FROM)
        self.first_carried = self.at_or_after(CARRIED_FROM)

    def index(self, d: date) -> int:
        i = bisect.bisect_left(self.ordinals, d.toordinal())
        if i >= len(self.ordinals) or self.ordinals[i] != d.toordinal():
            raise ValueError(f"{d} is not a working day")
        return i

    def at_or_after(self, d: date) -> int:
        return bisect.bisect_left(self.ordinals, d.toordinal())

    def at_or_before(self, d: date) -> int:
        return bisect.bisect_right(self.ordinals, d.toordinal()) - 1


TIMES = tuple(f"{h:02d}:{m:02d}:{s:02d}" for h in (7, 8, 9, 10, 13, 14, 15, 16) for m in range(0, 60, 3)
              for s in (0, 17, 41))
AFTERNOON = "15:00:00"  # received after 15:00 -> transferred the next working day (DOMAIN §2)
DUE_TIME = "17:00:00"


# ================================================================================ the plan

# Packed dossier key: day | tie-break | planted serial | procedure | category | carried.
_DAY_SHIFT, _TIE_SHIFT, _SERIAL_SHIFT = 50, 30, 10
_TIE_BITS = 20
_SERIAL_MASK = (1 << (_TIE_SHIFT - _SERIAL_SHIFT)) - 1


def _pack(day: int, tie: int, serial: int, proc: int, cat: int, carried: int) -> int:
    return (day << _DAY_SHIFT) | (tie << _TIE_SHIFT) | (serial << _SERIAL_SHIFT) | (proc << 4) | (cat << 1) | carried


@dataclass
class _Plant:
    """One planted dossier (or register-only row) and what it should produce."""

    kind: str
    serial: int = 0
    cat: int = ON_TIME
    variant: int = 0
    key: int = 0  # packed dossier key; 0 for register-only rows
    dossier: Dossier | None = None
    paper_day: int = 0  # the register day of its row (earlier than the system's for late data entry)


class Dossier:
    """One system dossier while it is written; dates are working-day indices (see `Days`)."""

    __slots__ = ("code", "proc", "cat", "carried", "recv", "recv_t", "due", "fin", "fin_t", "ret", "ret_t",
                 "status", "version", "pinned", "step", "unit", "assignee", "entered", "entered_t", "step_due",
                 "path", "applicant", "phone", "address")
    code: str
    proc: int  # index into the district's procedures (load_procedures)
    cat: int  # calibration category
    carried: int
    recv: int
    recv_t: str
    due: int
    fin: int | None
    fin_t: str
    ret: int | None
    ret_t: str
    status: int  # vendor code
    version: int
    pinned: bool  # False: the vendor system holds no version (PHIENBAN NULL); an engine still pins `version`
    step: str | None  # current task, for statuses that are not closed
    unit: str | None
    assignee: str | None
    entered: int
    entered_t: str
    step_due: int
    path: tuple[DemoStep, ...]  # steps walked so far, for the history
    applicant: str
    phone: str
    address: str

    def __init__(self) -> None:
        self.fin = self.ret = None
        self.fin_t = self.ret_t = ""
        self.step = self.unit = self.assignee = None
        self.pinned = True
        self.entered = self.step_due = 0
        self.entered_t = ""
        self.path = ()


# Base counts of planted defects at scale 1 (DESIGN §5 kinds; see ground_truth.json).
PLANT_COUNTS = {
    "orphan": 60,  # resolved on paper, open in the system on a step v2 no longer has
    "removed_step": 20,  # open on a removed step, open on paper too
    "unknown_version": 7,
    "assignee_inactive": 10,
    "closed_not_resolved": 5,
    "status_mismatch": 4,
    "late_entry": 25,  # date_mismatch: received (and so due) later in the system
    "returned_date": 5,  # date_mismatch: Trả kết quả differs
    "applicant_typo": 15,
    "procedure_name": 3,
    "duplicate": 4,
    "missing_in_register": 9,
    "dead_end_step": 8,  # open on the comments loop of the main procedure's v3 that lost its exit
    "unit_without_staff": 6,  # open on a step of the survey team, whose accounts are all deactivated
    "version_assumed": 12,  # open, no version pinned in the system: the audit infers it (no finding)
    "missing_in_system": 12,
    "paper_only": 30,
    "bad_code": 2,
    "gap": 3,
}


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def _split_carried(cells: list[int], carried: int) -> list[int]:
    """How many of a row's carried-over dossiers fall in each category (none 'within time')."""
    out = [0] * 6
    left = carried
    for cat, share in ((UNRESOLVED, 0.04), (WITHDRAWN_CAT, 0.01), (OVERDUE, 0.08), (LATE, 0.35)):
        n = min(cells[cat], round(carried * share), left)
        out[cat], left = n, left - n
    for cat in (ON_TIME, LATE, OVERDUE, WITHDRAWN_CAT, UNRESOLVED):
        n = min(cells[cat] - out[cat], left)
        out[cat], left = out[cat] + n, left - n
    if left:
        raise ValueError("carried-over count exceeds the row's closed and overdue dossiers")
    return out


def load_calibration(path: Path = CALIBRATION) -> dict[str, Any]:
    """The calibration table (rows 1-13 and published totals)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ============================================================================== the generator


class Generator:
    """The plan (packed keys), the planted dossiers and the per-dossier builder, for one seed and scale."""

    def __init__(self, seed: int, scale: float, progress: Progress | None, procs: tuple[DemoProcedure, ...]) -> None:
        self.seed, self.scale = seed, scale
        self.progress = progress or (lambda stage, done, total: None)
        self.days = Days()
        self.rng = random.Random(seed)
        self.calibration = load_calibration()
        self.rows = self.calibration["rows"]
        self.procs = procs
        self.proc_index = {p.code: i for i, p in enumerate(self.procs)}
        self.field_procs = [[i for i, p in enumerate(self.procs) if p.field == row["field"]] for row in self.rows]
        self.land_row = next(i for i, r in enumerate(self.rows) if r["field"] == F_LAND)
        self._version_starts = [[self.days.at_or_after(v.valid_from) for v in p.versions] for p in self.procs]
        self._accounts()

    # ------------------------------------------------------------------------------ staff

    def _accounts(self) -> None:
        # The district's staff, not the seed's: the committed rules' `assign` names these accounts.
        rng = random.Random("staff:2021")
        self.accounts: list[tuple[str, str, str, int]] = []
        self.active: dict[str, list[str]] = {}
        self.inactive: dict[str, list[str]] = {}
        seen: set[str] = set()
        for unit, (n_active, n_inactive) in STAFF.items():
            for k in range(n_active + n_inactive):
                name = _person(rng)
                base = f"{unit.lower()}.{_ascii(name)}"
                account, n = base, 1
                while account in seen:
                    n += 1
                    account = f"{base}{n}"
                seen.add(account)
                active = int(k < n_active)
                self.accounts.append((account, name, unit, active))
                (self.active if active else self.inactive).setdefault(unit, []).append(account)
        self.accounts.sort()

    # ------------------------------------------------------------------------------ windows

    def _window(self, pi: int, cat: int, carried: int) -> tuple[int, int]:
        """Received-day indices a dossier of this procedure and category can have (may be empty).

        Open dossiers are received on their procedure's latest version, so that only planted ones
        sit on retired versions (and carried-over open ones use single-version procedures)."""
        D, p = self.days, self.procs[pi]
        days = p.days
        if carried:
            lo, hi = D.first_carried, D.first_2021 - 1
        else:
            lo, hi = D.first_2021, D.as_of
        if cat == ON_TIME and carried:
            lo = max(lo, D.first_2021 - days)
        elif cat == LATE:
            hi = min(hi, D.as_of - days - 1)
        elif cat == WITHIN:
            if carried:
                return (1, 0)
            lo = max(lo, D.as_of - days)
        elif cat == OVERDUE:
            hi = min(hi, D.as_of - days - 1)
            if carried and len(p.versions) > 1:
                return (1, 0)
            lo = max(lo, self._version_starts[pi][-1])
        return lo, hi

    def _options(self, fi: int, cat: int, carried: int, procs: list[int] | None = None,
                 window: tuple[int, int] | None = None) -> tuple[list[tuple[int, int, int]], list[float]]:
        """(procedure, first day, last day) choices for a table cell, with cumulative weights."""
        options = []
        for pi in procs if procs is not None else self.field_procs[fi]:
            lo, hi = window if window is not None else self._window(pi, cat, carried)
            if lo <= hi:
                options.append((pi, lo, hi))
        if not options:
            raise ValueError(f"no procedure of row {self.rows[fi]['row']} can hold {CATEGORY_COLUMNS[cat]}")
        return options, list(_accumulate(self.procs[o[0]].weight for o in options))

    @staticmethod
    def _pick(rng: random.Random, options: list[tuple[int, int, int]], cum: list[float]) -> tuple[int, int]:
        """(procedure, received day) for one dossier."""
        if len(options) == 1:
            pi, lo, hi = options[0]
        else:
            k = bisect.bisect_right(cum, rng.random() * cum[-1])
            pi, lo, hi = options[min(k, len(options) - 1)]
        return pi, rng.randint(lo, hi)

    # ------------------------------------------------------------------------------ plan

    def plan(self) -> None:
        rng = self.rng
        cols = CATEGORY_COLUMNS
        # cells[fi][cat] = [carried, new]
        self.cells: list[list[list[int]]] = []
        for row in self.rows:
            counts = [round(row[c] * self.scale) for c in cols]
            carried = _split_carried(counts, round(row["carried_over"] * self.scale))
            self.cells.append([[carried[c], counts[c] - carried[c]] for c in range(6)])

        self.plants: list[_Plant] = []
        self._plan_plants(rng)

        keys: list[int] = []
        for fi, row_cells in enumerate(self.cells):
            for cat in range(6):
                for carried in (1, 0):
                    n = row_cells[cat][1 - carried]
                    if not n:
                        continue
                    options, cum = self._options(fi, cat, carried)
                    for _ in range(n):
                        pi, day = self._pick(rng, options, cum)
                        keys.append(_pack(day, rng.getrandbits(_TIE_BITS), 0, pi, cat, carried))
        for plant in self.plants:
            if plant.key:
                keys.append(plant.key)
        keys.sort()
        self.keys = keys
        self.progress("plan", len(keys), len(keys))

    def _take(self, fi: int, cat: int) -> bool:
        """Reserve one new (2021) dossier of a table cell for a planted defect."""
        cell = self.cells[fi][cat]
        if cell[1] <= 0:
            return False
        cell[1] -= 1
        return True

    def _plan_plants(self, rng: random.Random) -> None:
        D, land = self.days, self.land_row
        main, renew = self.proc_index[LAND_MAIN], self.proc_index[LAND_RENEW]
        n = {kind: _scaled(count, self.scale) for kind, count in PLANT_COUNTS.items()}
        # Orphans: received on v2 early enough to reach S05/S02 before v2 was edited in place.
        v2_window = (D.at_or_after(date(2021, 2, 22)), D.at_or_before(date(2021, 4, 2)))

        def add(kind: str, fi: int, cat: int, procs: list[int] | None = None,
                window: tuple[int, int] | None = None, variant: int = 0) -> None:
            if not self._take(fi, cat):
                return
            plant = _Plant(kind, serial=len(self.plants) + 1, cat=cat, variant=variant)
            pi, day = self._pick(rng, *self._options(fi, cat, 0, procs, window))
            plant.key = _pack(day, rng.getrandbits(_TIE_BITS), plant.serial, pi, cat, 0)
            self.plants.append(plant)

        def any_field(cat: int) -> int:
            weights = [max(0, c[cat][1]) for c in self.cells]
            return rng.choices(range(len(self.cells)), weights=weights)[0]

        for i in range(n["orphan"]):
            add("orphan", land, OVERDUE, [main], v2_window)
        for i in range(n["removed_step"]):
            add("removed_step", land, OVERDUE, [main], v2_window, variant=i % 3)
        for i in range(n["unknown_version"]):
            add("unknown_version", land, WITHIN, [main] if i % 7 < 5 else [renew])
        for i in range(n["assignee_inactive"]):
            add("assignee_inactive", land, WITHIN if i % 2 else OVERDUE)
        for i in range(n["closed_not_resolved"]):
            cat = (ON_TIME, WITHDRAWN_CAT, ON_TIME, UNRESOLVED, ON_TIME)[i % 5]
            add("closed_not_resolved", land, cat)
        for i in range(n["status_mismatch"]):
            add("status_mismatch", land, ON_TIME if i % 2 == 0 else UNRESOLVED, variant=i % 2)
        late_entry = (D.first_2021 + 5, D.as_of)
        for i in range(n["late_entry"]):
            fi = any_field(ON_TIME)
            add("late_entry", fi, ON_TIME, window=late_entry)
        for i in range(n["returned_date"]):
            flip = i % 5 < 3
            if flip:  # on time in the system, late on paper: due + 3 working days still in the period
                add("returned_date", land, ON_TIME, [main], (D.first_2021, D.as_of - 3 - 10), variant=1)
            else:
                add("returned_date", land, LATE, [main], (D.first_2021, D.as_of - 5 - 10), variant=0)
        for i in range(n["applicant_typo"]):
            add("applicant_typo", any_field(ON_TIME), ON_TIME)
        for i in range(n["procedure_name"]):
            add("procedure_name", land, ON_TIME, [main, renew])
        for i in range(n["duplicate"]):
            add("duplicate", any_field(ON_TIME), ON_TIME)
        for i in range(n["missing_in_register"]):
            add("missing_in_register", any_field(ON_TIME), ON_TIME)
        for i in range(n["dead_end_step"]):  # received on v3 (the default window of open dossiers)
            add("dead_end_step", land, WITHIN if i // 2 % 2 else OVERDUE, [main], variant=i % 2)
        for i in range(n["unit_without_staff"]):  # received on v2 of the renewal
            add("unit_without_staff", land, WITHIN if i % 2 else OVERDUE, [renew])
        # No pinned version. Variants: 0 main v3 step, received on v3 (inferred by step and date);
        # 1 main S03, received on v2 (by step and date: v2, not v3); 2 main S06A, received before v3,
        # the only version with it (by step); 3 renewal S02A, received before its v2 (by step).
        before_v3 = (D.first_2021, D.at_or_before(date(2021, 5, 7)))
        before_renew_v2 = (D.first_2021, D.at_or_before(date(2021, 3, 31)))
        assumed = ((main, WITHIN, None), (main, OVERDUE, v2_window), (main, OVERDUE, before_v3),
                   (renew, OVERDUE, before_renew_v2))
        for i in range(n["version_assumed"]):
            pi, cat, window = assumed[i % 4]
            add("version_assumed", land, cat, [pi], window, variant=i % 4)
        # Register-only rows (no system dossier, no table cell).
        for kind in ("missing_in_system", "paper_only", "bad_code"):
            for i in range(n[kind]):
                self.plants.append(_Plant(kind, serial=len(self.plants) + 1, variant=i))
        self.n_gaps = n["gap"]

    # ------------------------------------------------------------------------------ one dossier

    def _version_at(self, pi: int, day: int) -> int:
        starts = self._version_starts[pi]
        return self.procs[pi].versions[max(0, bisect.bisect_right(starts, day) - 1)].number

    @staticmethod
    def _status_of(version: DemoVersion, step: DemoStep, rng: random.Random) -> int:
        if step.id == version.steps[0].id:
            return RECEIVED
        if step.unit == "THUE":
            return AWAITING_PAYMENT
        return SUPPLEMENT if rng.random() < 0.08 else IN_PROGRESS

    def build(self, key: int, seq: int, rng: random.Random, force: int | None = None) -> Dossier:
        """A consistent dossier of the key's category; `force` pins a closed status."""
        D = self.days
        day = key >> _DAY_SHIFT
        pi = (key >> 4) & 63
        cat = (key >> 1) & 7
        carried = key & 1
        p = self.procs[pi]
        d = Dossier()
        d.code = f"{AGENCY_CODE}-{D.ymd6[day]}-{seq:0{self.seq_width}d}"
        d.proc, d.cat, d.carried = pi, cat, carried
        d.recv, d.recv_t = day, rng.choice(TIMES)
        d.due = due = day + p.days
        d.applicant = _person(rng)
        d.phone = _phone(rng)
        d.address = rng.choice(ADDRESSES)
        d.version = self._version_at(pi, day)
        as_of, first = D.as_of, D.first_2021
        if cat == ON_TIME or cat == LATE:
            if cat == ON_TIME:
                fin = rng.randint(max(day, first), min(due, as_of))
            else:
                fin = due + 1 + int(rng.expovariate(1 / 6))
                if fin < first:  # carried over, long overdue by New Year: finished in the first weeks
                    fin = first + int(rng.expovariate(1 / 8))
                fin = min(fin, as_of)
            d.fin, d.fin_t = fin, rng.choice(TIMES)
            latest = d.version == p.latest.number
            if force is None and latest and fin >= as_of - 2 and rng.random() < 0.5:
                d.status = FINISHED
                final = p.latest.route[-1]
                d.step, d.unit, d.entered, d.entered_t = final.id, final.unit, fin, d.fin_t
                d.step_due = fin + 1
                d.assignee = rng.choice(self.active[final.unit])
                d.path = p.latest.route
            else:
                d.status = RETURNED
                k = rng.choice((0, 0, 0, 1, 1, 2))
                ret = min(fin + k, as_of)
                if cat == ON_TIME:
                    ret = max(fin, min(ret, due))
                d.ret, d.ret_t = ret, rng.choice(TIMES)
        elif cat == WITHDRAWN_CAT:
            w = min(max(day + rng.randint(0, p.days), first), as_of)
            d.status, d.fin, d.ret = WITHDRAWN, w, w
            d.fin_t = d.ret_t = rng.choice(TIMES)
        elif cat == UNRESOLVED:
            if (force == REJECTED or (force is None and rng.random() < 0.3)) and not carried:
                d.status, d.fin, d.ret = REJECTED, day, day
            else:
                stop = min(max(day + rng.randint(1, p.days), first), as_of)
                d.status, d.fin, d.ret = STOPPED, stop, min(stop + rng.choice((0, 0, 1)), as_of)
            d.fin_t = d.ret_t = rng.choice(TIMES)
        else:  # WITHIN, OVERDUE: open on a step of its (latest) version
            version = p.versions[d.version - 1]
            steps = version.route
            first_ok = day >= as_of - 2
            candidates = steps[0 if first_ok else 1:-1]
            step = rng.choice(candidates)
            self._put_on_step(d, version, step, rng)
        return d

    def _put_on_step(self, d: Dossier, version: DemoVersion, step: DemoStep, rng: random.Random,
                     entered: int | None = None, inactive: bool = False, assigned: bool = True) -> None:
        D = self.days
        if entered is None:
            entered = d.recv if step is version.steps[0] else rng.randint(max(d.recv, D.as_of - 3), D.as_of)
        d.step, d.unit, d.entered = step.id, step.unit, entered
        d.step_due = entered + max(1, math.ceil(step.days))
        d.entered_t = d.recv_t if entered == d.recv else rng.choice(TIMES)
        pool = self.inactive if inactive else self.active
        d.assignee = rng.choice(pool[step.unit]) if assigned else None
        d.status = self._status_of(version, step, rng)
        if step.id in version.side:
            d.path = _walk(version.steps, step.id)
            return
        path = version.deployed or version.route
        ids = [s.id for s in path]
        d.path = path[: ids.index(step.id) + 1] if step.id in ids else path[:1] + (step,)

    # ------------------------------------------------------------------------------ planted

    def paper_row(self, d: Dossier) -> list[Any]:
        """The register row that agrees with a system dossier (dates as day indices)."""
        p = self.procs[d.proc]
        transfer = d.recv + 1 if d.recv_t >= AFTERNOON else d.recv
        note = ""
        ret = None
        if d.status in CLOSED:
            ret = d.ret
            if d.status == WITHDRAWN:
                note = NOTE_WITHDRAWN
            elif d.status in (STOPPED, REJECTED):
                note = NOTE_UNRESOLVED
        # [sort code, code, procedure, applicant, address+phone, agency, received, due, transfer, returned, note]
        return [d.code, d.code, p.name, d.applicant, f"{d.address}, {d.phone}", p.agency,
                d.recv, d.recv + p.days, transfer, ret, note]

    def build_plants(self) -> None:
        """Seq numbers for planted keys, then their dossiers and register rows (own random stream)."""
        D = self.days
        rng = random.Random(f"plants:{self.seed}")
        self.day_counts: dict[int, int] = {}
        seqs: dict[int, int] = {}
        mask = _SERIAL_MASK
        prev_day, seq = -1, 0
        for key in self.keys:
            day = key >> _DAY_SHIFT
            seq = seq + 1 if day == prev_day else 1
            prev_day = day
            self.day_counts[day] = seq
            serial = (key >> _SERIAL_SHIFT) & mask
            if serial:
                seqs[serial] = seq
        extra_per_day: dict[int, int] = {}
        self.extra_paper: dict[int, list[list[Any]]] = {}
        self.findings: list[dict[str, Any]] = []
        self.assumed: list[dict[str, Any]] = []  # open dossiers with no pinned version, as the audit infers it
        self.paper_only: list[str] = []
        self.bad_codes: list[str] = []
        self.commune_seq: dict[tuple[str, int], int] = {}
        register_only = [p for p in self.plants if p.kind in ("missing_in_system", "paper_only", "bad_code")]
        # Days of register-only rows first: their sequence numbers widen the code if needed.
        for plant in register_only:
            plant.paper_day = rng.randint(D.first_2021, D.as_of)
            if plant.kind == "missing_in_system":
                extra_per_day[plant.paper_day] = extra_per_day.get(plant.paper_day, 0) + 1
        busiest = max([self.day_counts.get(d, 0) + extra_per_day.get(d, 0) for d in range(len(D.dates))] + [1])
        self.seq_width = max(4, len(str(busiest)))

        main_v2 = self.procs[self.proc_index[LAND_MAIN]].versions[1]
        deployed = {s.id: s for s in main_v2.deployed or ()}
        if main_v2.edited_on is None:
            raise BadInput(f"{DISTRICT}: the main land procedure's v2 needs its in-place edit (edited:).")
        edited = D.at_or_before(main_v2.edited_on - timedelta(days=1))
        for plant in self.plants:
            kind = plant.kind
            if kind in ("missing_in_system", "paper_only", "bad_code"):
                self._register_only(plant, rng, extra_per_day)
                continue
            force = None
            if kind in ("closed_not_resolved", "status_mismatch", "late_entry", "returned_date"):
                force = STOPPED if plant.cat == UNRESOLVED else (RETURNED if plant.cat in (ON_TIME, LATE) else None)
            d = self.build(plant.key, seqs[plant.serial], rng, force)
            plant.dossier = d
            paper = self.paper_row(d)
            plant.paper_day = d.recv
            code = d.code
            if kind in ("orphan", "removed_step"):
                step = deployed["S02"] if kind == "removed_step" and plant.variant == 2 else deployed["S05"]
                lo = d.recv + (1 if step.id == "S02" else 2)
                entered = rng.randint(lo, max(lo, min(edited, lo + 12)))
                d.fin = d.ret = None
                d.version = 2
                self._put_on_step(d, main_v2, step, rng, entered=entered)
                d.status = IN_PROGRESS
                if kind == "orphan":
                    paper[9] = rng.randint(max(d.due - 2, entered + 1), D.as_of)
                    paper[10] = ""
                    self.findings.append({"kind": "resolved_not_closed", "dossier_code": code})
                else:
                    paper[9], paper[10] = None, ""
                self.findings.append({"kind": "step_not_in_version", "dossier_code": code})
                # On the step since before the April edit, not moved since: far beyond any threshold.
                self.findings.append({"kind": "stalled", "dossier_code": code})
                # The migration rules (workflows/.../rules.yaml) move v2's lost S02/S05 on to v3, in place then v2-to-v3.
                self.findings.append({"kind": "superseded_version", "dossier_code": code})
            elif kind == "unknown_version":
                p = self.procs[d.proc]
                d.version = p.latest.number + 1
                self._put_on_step(d, p.latest, rng.choice(p.latest.route[1:-1]), rng)
                self.findings.append({"kind": "unknown_version", "dossier_code": code})
            elif kind == "assignee_inactive":
                p = self.procs[d.proc]
                version = p.versions[d.version - 1]
                steps = [s for s in version.route[1:-1] if self.inactive.get(s.unit)]
                self._put_on_step(d, version, rng.choice(steps), rng, inactive=True)
                self.findings.append({"kind": "assignee_inactive", "dossier_code": code})
            elif kind == "closed_not_resolved":
                paper[9], paper[10] = None, ""
                self.findings.append({"kind": "closed_not_resolved", "dossier_code": code})
            elif kind == "status_mismatch":
                if d.status == RETURNED:
                    paper[10] = NOTE_WITHDRAWN  # paper withdrawn, system returned
                else:
                    paper[10] = ""  # paper returned, system stopped
                self.findings.append({"kind": "status_mismatch", "dossier_code": code})
            elif kind == "late_entry":
                k = rng.randint(1, 5)
                paper[6] = d.recv - k
                paper[7] = paper[6] + self.procs[d.proc].days
                paper[8] = paper[6]
                plant.paper_day = paper[6]
                self.findings.append({"kind": "date_mismatch", "dossier_code": code,
                                      "fields": ["received_at", "due_at"]})
            elif kind == "returned_date":
                if plant.variant == 1:  # system on time, paper late
                    paper[9] = d.due + rng.randint(1, 3)
                else:
                    paper[9] = d.ret + 1 if d.ret < D.as_of else d.ret - 1
                self.findings.append({"kind": "date_mismatch", "dossier_code": code, "fields": ["returned_at"]})
            elif kind == "applicant_typo":
                paper[3] = _typo(d.applicant, rng)
                self.findings.append({"kind": "field_mismatch", "dossier_code": code, "fields": ["applicant"]})
            elif kind == "procedure_name":
                others = [q for q in self.field_procs[self.land_row] if q != d.proc]
                paper[2] = self.procs[rng.choice(others)].name
                self.findings.append({"kind": "field_mismatch", "dossier_code": code, "fields": ["procedure"]})
            elif kind == "duplicate":
                paper.append("duplicate")
                self.findings.append({"kind": "duplicate_code", "dossier_code": code})
            elif kind in ("dead_end_step", "unit_without_staff"):
                # Moved onto the step in the last days: orphaned, not (yet) stalled. The survey
                # team's task sits in its queue, unassigned (no assignee, so no assignee_inactive).
                version = self.procs[d.proc].latest
                sid = ("S03A", "S03B")[plant.variant] if kind == "dead_end_step" else "S02B"
                step = next(s for s in version.steps if s.id == sid)
                d.version = version.number
                self._put_on_step(d, version, step, rng, assigned=kind == "dead_end_step")
                self.findings.append({"kind": kind, "dossier_code": code})
            elif kind == "version_assumed":
                p = self.procs[d.proc]  # variants: see _plan_plants
                version = p.versions[1] if plant.variant == 1 else p.latest
                sid = ("", "S03", "S06A", "S02A")[plant.variant] or rng.choice(version.route[1:-1]).id
                d.version, d.pinned = version.number, False
                self._put_on_step(d, version, next(s for s in version.steps if s.id == sid), rng)
                basis = "step_and_date" if plant.variant < 2 else "step"
                self.assumed.append({"dossier_code": code, "procedure": p.code, "version": version.number,
                                     "step": sid, "basis": basis})
                if p.code == LAND_MAIN and version.number == 2:  # rule v2-to-v3 moves S03 on to v3
                    self.findings.append({"kind": "superseded_version", "dossier_code": code})
            elif kind == "missing_in_register":
                self.findings.append({"kind": "missing_in_register", "dossier_code": code})
                continue
            self.extra_paper.setdefault(plant.paper_day, []).append(paper)

    def _register_only(self, plant: _Plant, rng: random.Random, extra_per_day: dict[int, int]) -> None:
        D = self.days
        day = plant.paper_day
        if plant.kind == "missing_in_system":
            weights = [_field_total(self.rows, p.field) * p.weight for p in self.procs]
            pi = rng.choices(range(len(self.procs)), weights=weights)[0]
            p = self.procs[pi]
            extra_per_day[day] -= 1
            seq = self.day_counts.get(day, 0) + extra_per_day[day] + 1
            code = f"{AGENCY_CODE}-{D.ymd6[day]}-{seq:0{self.seq_width}d}"
            name, days, agency, address = p.name, p.days, p.agency, rng.choice(ADDRESSES)
            self.findings.append({"kind": "missing_in_system", "dossier_code": code})
        else:
            agency = PAPER_ONLY_UNITS[plant.variant % 2]
            name, days = rng.choice(PAPER_ONLY_PROCEDURES)
            address = rng.choice(COMMUNE_ADDRESSES[agency])
            if plant.kind == "bad_code":
                code = f"BS-2021-TAM-{plant.variant + 1:02d}"
                self.bad_codes.append(code)
            else:
                k = (agency, day)
                self.commune_seq[k] = self.commune_seq.get(k, 0) + 1
                code = f"{PAPER_ONLY_CODES[agency]}-{D.ymd6[day]}-{self.commune_seq[k]:04d}"
            self.paper_only.append(code)
        due = day + days
        ret = rng.randint(day, min(due + 2, D.as_of)) if rng.random() < 0.7 and day < D.as_of else None
        paper = [code, code, name, _person(rng), f"{address}, {_phone(rng)}", agency, day, due, day, ret, ""]
        self.extra_paper.setdefault(day, []).append(paper)


def _walk(steps: tuple[DemoStep, ...], target: str) -> tuple[DemoStep, ...]:
    """The shortest walk from the first step to `target` along `next` (breadth first)."""
    by_id = {s.id: s for s in steps}
    came: dict[str, str | None] = {steps[0].id: None}
    queue = [steps[0].id]
    for sid in queue:
        if sid == target:
            break
        for nxt in by_id[sid].next:
            if nxt not in came:
                came[nxt] = sid
                queue.append(nxt)
    walk: list[DemoStep] = []
    at: str | None = target
    while at is not None:
        walk.append(by_id[at])
        at = came[at]
    return tuple(reversed(walk))


def _field_total(rows: list[dict[str, Any]], fld: str) -> int:
    return next((r["total"] for r in rows if r["field"] == fld), 0)


def _accumulate(values: Iterable[float]) -> Iterable[float]:
    total = 0.0
    for v in values:
        total += v
        yield total


# ============================================================================ emission


class Emitter:
    """Day by day: system rows, then that day's register rows sorted by code, with planted gaps."""

    def __init__(self, gen: Generator, system: SystemSink, register: RegisterSink, book: str) -> None:
        self.gen, self.system, self.register, self.book = gen, system, register, book
        self.rng = gen.rng
        self.stt = 0
        self.rows_written = 0
        self.dossiers = 0
        self._last: _RenderedRow | None = None
        units: dict[str, list[str]] = {}
        for account, _name, unit, _active in gen.accounts:
            units.setdefault(unit, []).append(account)
        self.unit_accounts = units

    def run(self) -> None:
        gen, D, rng = self.gen, self.gen.days, self.rng
        keys = gen.keys
        n = len(keys)
        by_serial = {p.serial: p for p in gen.plants}
        self._plan_gaps()
        q2 = D.at_or_after(date(2021, 4, 1))
        step = max(1000, n // 50)
        i = 0
        for day in range(D.first_carried, D.as_of + 1):
            rows: list[list[Any]] = []
            seq = 0
            while i < n and keys[i] >> _DAY_SHIFT == day:
                key = keys[i]
                i += 1
                seq += 1
                serial = (key >> _SERIAL_SHIFT) & _SERIAL_MASK
                if serial:
                    d = by_serial[serial].dossier
                    assert d is not None
                else:
                    d = gen.build(key, seq, rng)
                    if not d.carried:
                        rows.append(gen.paper_row(d))
                self.system.add(d, gen.procs[d.proc], self._events(d))
                self.dossiers += 1
                if self.dossiers % step == 0:
                    gen.progress("dossiers", self.dossiers, n)
            extra = gen.extra_paper.get(day)
            if extra:
                rows.extend(extra)
                rows.sort(key=_first)
            sheet = 0 if day < q2 else 1
            for row in rows:
                self._write(sheet, row)
                if len(row) > 11:  # a planted duplicate: the same row again, with its own number
                    self._write(sheet, row, again=True)
        gen.progress("dossiers", n, n)

    def _plan_gaps(self) -> None:
        gen = self.gen
        ordinary_new = sum(1 for k in gen.keys if not (k & 1) and not (k >> _SERIAL_SHIFT) & _SERIAL_MASK)
        extra = sum(len(v) + sum(len(r) > 11 for r in v) for v in gen.extra_paper.values())
        self.expected_rows = ordinary_new + extra
        room = range(10, max(11, self.expected_rows - 10))
        picks = sorted(self.rng.sample(room, min(gen.n_gaps, len(room))))
        self.gaps = {pos: (2 if k % 3 == 0 else 1) for k, pos in enumerate(picks)}

    def _write(self, sheet: int, row: list[Any], again: bool = False) -> None:
        gap = self.gaps.get(self.rows_written)
        if gap:
            self.gen.findings.append({"kind": "register_numbering_gap", "dossier_code": None, "book": self.book,
                                      "missing_from": self.stt + 1, "missing_to": self.stt + gap})
            self.stt += gap
        self.stt += 1
        self.rows_written += 1
        if not again or self._last is None:
            self._last = self._render(row)
        self.register.add(sheet, self.stt, self._last)

    def _render(self, row: list[Any]) -> _RenderedRow:
        """Harmless noise a clerk's typing adds: spacing, case, decomposed Unicode, text dates."""
        rng = self.rng
        code, applicant, note = row[1], row[3], row[10]
        r = rng.random()
        if not code[0].isdigit():  # a code that is no dossier code is listed as written: no noise
            pass
        elif r < 0.012:  # 000.00.53.h48 - 210105-0003
            head, seq = code.rsplit("-", 1)
            code = f"{head.lower().replace('-', ' - ', 1)}-{seq}"
        elif r < 0.025:
            code = f" {code}  "
        r = rng.random()
        if r < 0.03:
            applicant = unicodedata.normalize("NFD", applicant)
        elif r < 0.05:
            applicant = applicant.replace(" ", "  ", 1) + " "
        elif r < 0.06:
            applicant = applicant.upper()
        if not note and rng.random() < 0.03:
            note = rng.choice(HARMLESS_NOTES)
        text_dates = rng.random() < 1 / 3
        return _RenderedRow(code, row[2], applicant, row[4], row[5], (row[6], row[7], row[8], row[9]), note,
                            text_dates)

    def _events(self, d: Dossier) -> list[tuple[Any, ...]]:
        """History rows: every move of open dossiers, a 2 % sample of the others."""
        rng, D = self.rng, self.gen.days
        is_open = d.status not in CLOSED
        if not is_open and rng.random() >= 0.02:
            return []
        p = self.gen.procs[d.proc]
        accounts = self.unit_accounts
        iso = D.iso
        out: list[tuple[Any, ...]] = []

        def ev(frm: str | None, to: str | None, unit: str, day: int, time: str, action: str) -> None:
            out.append((d.code, len(out) + 1, frm, to, rng.choice(accounts[unit]), f"{iso[day]} {time}", action))

        if is_open:
            path = d.path
            end, end_t = d.entered, d.entered_t
        else:
            version = p.versions[min(d.version, len(p.versions)) - 1]
            steps = version.deployed or version.route
            if d.status == REJECTED:
                ev(None, steps[0].id, steps[0].unit, d.recv, d.recv_t, "Tiếp nhận hồ sơ")
                ev(steps[0].id, None, steps[0].unit, d.recv, d.recv_t, "Từ chối tiếp nhận")
                return out
            if d.status == RETURNED:
                path = steps
            else:
                path = steps[: rng.randint(2, max(2, len(steps) - 1))]
            end, end_t = d.fin, d.fin_t
        ev(None, path[0].id, path[0].unit, d.recv, d.recv_t, "Tiếp nhận hồ sơ")
        span = max(0, end - d.recv)
        hops = len(path) - 1
        for j in range(1, hops + 1):
            last = j == hops
            day = end if last else d.recv + span * j // hops
            ev(path[j - 1].id, path[j].id, path[j - 1].unit, day, end_t if last else rng.choice(TIMES),
               "Chuyển xử lý")
        if not is_open:
            action = {RETURNED: "Trả kết quả", WITHDRAWN: "Rút hồ sơ", STOPPED: "Dừng xử lý, trả lại hồ sơ"}
            at = d.ret if d.ret is not None else end
            ev(path[-1].id, None, path[-1].unit, at, d.ret_t or end_t, action[d.status])
        return out


def _first(row: list[Any]) -> str:
    return row[0]


@dataclass(frozen=True, slots=True)
class _RenderedRow:
    code: str
    procedure: str
    applicant: str
    address: str
    agency: str
    dates: tuple[int | None, int | None, int | None, int | None]  # received, due, transferred, returned
    note: str
    text_dates: bool


# ============================================================================ sinks


class SystemSink:
    def add(self, d: Dossier, p: DemoProcedure, events: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SqliteSystem(SystemSink):
    BATCH = 20_000

    def __init__(self, path: Path, days: Days, accounts: list[tuple[str, str, str, int]]) -> None:
        for leftover in (path, path.with_name(path.name + "-journal")):
            leftover.unlink(missing_ok=True)
        self.iso = days.iso
        self.con = sqlite3.connect(path)
        self.con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SQLITE_SCHEMA)
        self.con.executemany("INSERT INTO DM_CANBO VALUES (?, ?, ?, ?)", accounts)
        self.hoso: list[tuple[Any, ...]] = []
        self.tasks: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.n = 0

    def add(self, d: Dossier, p: DemoProcedure, events: list[tuple[Any, ...]]) -> None:
        iso = self.iso
        self.n += 1
        self.hoso.append((
            self.n, d.code, p.code, d.applicant, d.phone, d.address, p.agency, 1,
            f"{iso[d.recv]} {d.recv_t}", f"{iso[d.due]} {DUE_TIME}", None,
            None if d.fin is None else f"{iso[d.fin]} {d.fin_t}",
            None if d.ret is None else f"{iso[d.ret]} {d.ret_t}",
            d.status, p.code, d.version if d.pinned else None,
        ))
        if d.status not in CLOSED:
            self.tasks.append((d.code, d.step, d.assignee, d.unit, f"{iso[d.entered]} {d.entered_t}",
                               f"{iso[d.step_due]} {DUE_TIME}"))
        if events:
            self.events.extend(events)
        if len(self.hoso) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        con = self.con
        con.executemany("INSERT INTO HS_HOSO VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self.hoso)
        con.executemany("INSERT INTO HS_XULY_HIENTAI VALUES (?, ?, ?, ?, ?, ?)", self.tasks)
        con.executemany("INSERT INTO HS_NHATKY VALUES (?, ?, ?, ?, ?, ?, ?)", self.events)
        self.hoso, self.tasks, self.events = [], [], []

    def close(self) -> None:
        self._flush()
        self.con.commit()
        self.con.close()


class CsvSystem(SystemSink):
    def __init__(self, folder: Path, days: Days, accounts: list[tuple[str, str, str, int]]) -> None:
        self.iso = days.iso
        with (folder / "accounts.csv").open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_ACCOUNT_HEADER)
            w.writerows((a, unit, active) for a, _name, unit, active in accounts)
        self._dossier_fh = (folder / "dossiers.csv").open("w", encoding="utf-8", newline="")
        self._event_fh = (folder / "events.csv").open("w", encoding="utf-8", newline="")
        self.dossiers = csv.writer(self._dossier_fh)
        self.events = csv.writer(self._event_fh)
        self.dossiers.writerow(CSV_DOSSIER_HEADER)
        self.events.writerow(CSV_EVENT_HEADER)

    def add(self, d: Dossier, p: DemoProcedure, events: list[tuple[Any, ...]]) -> None:
        iso = self.iso
        is_open = d.status not in CLOSED
        self.dossiers.writerow((
            d.code, p.code, d.applicant, VENDOR_STATUSES[d.status], p.code, d.version if d.pinned else "",
            d.step if is_open else "", (d.assignee or "") if is_open else "", d.unit if is_open else "",
            iso[d.recv], iso[d.due], "" if d.fin is None else iso[d.fin], "" if d.ret is None else iso[d.ret],
        ))
        if events:
            self.events.writerows(e[:6] for e in events)

    def close(self) -> None:
        self._dossier_fh.close()
        self._event_fh.close()


class RegisterSink:
    def add(self, sheet: int, stt: int, row: _RenderedRow) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class CsvRegister(RegisterSink):
    def __init__(self, path: Path, days: Days) -> None:
        self.dmy = days.dmy
        self._fh = path.open("w", encoding="utf-8-sig", newline="")
        self.w = csv.writer(self._fh)
        self.w.writerow(REGISTER_HEADER)

    def add(self, sheet: int, stt: int, row: _RenderedRow) -> None:
        dmy = self.dmy
        self.w.writerow((stt, row.code, row.procedure, 1, row.applicant, row.address, row.agency,
                         *("" if x is None else dmy[x] for x in row.dates), "", row.note))

    def close(self) -> None:
        self._fh.close()


class XlsxRegister(RegisterSink):
    SHEETS = ("Quý I", "Quý II")
    WIDTHS = {"A": 7, "B": 28, "C": 48, "D": 10, "E": 24, "F": 44, "G": 36, "H": 12, "I": 12, "J": 14, "K": 12,
              "L": 10, "M": 26}

    def __init__(self, path: Path, days: Days) -> None:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Font

        self.path, self.days = path, days
        self.Cell = WriteOnlyCell
        self.wb = Workbook(write_only=True)
        self.wb.properties.creator = "reconcile simulate"
        self.wb.properties.created = FIXED_TIME
        self.wb.properties.modified = FIXED_TIME
        bold, center = Font(bold=True), Alignment(horizontal="center", vertical="center", wrap_text=True)
        self.sheets = []
        for title in self.SHEETS:
            ws = self.wb.create_sheet(title)
            for col, width in self.WIDTHS.items():
                ws.column_dimensions[col].width = width

            def styled(value: Any, font: Any = bold, ws: Any = ws) -> Any:
                c = WriteOnlyCell(ws, value=value)
                c.font, c.alignment = font, center
                return c

            ws.append([styled("SỔ THEO DÕI HỒ SƠ", Font(bold=True, size=14))])
            ws.append([styled("Bộ phận tiếp nhận và trả kết quả huyện Bình Sơn - Năm 2021", Font(italic=True))])
            ws.append([])
            head_a = list(REGISTER_HEADER[:7]) + ["Ngày, tháng, năm", None, None, None] + list(REGISTER_HEADER[11:])
            head_b = [None] * 7 + list(REGISTER_HEADER[7:11]) + [None, None]
            ws.append([styled(v) if v else None for v in head_a])
            ws.append([styled(v) if v else None for v in head_b])
            for ref in ["A1:M1", "A2:M2", "H4:K4"] + [f"{c}4:{c}5" for c in "ABCDEFGLM"]:
                ws.merged_cells.add(ref)
            self.sheets.append(ws)
        self.date_style = "DD/MM/YYYY"

    def add(self, sheet: int, stt: int, row: _RenderedRow) -> None:
        ws = self.sheets[sheet]
        D = self.days
        if row.text_dates:
            dates: list[Any] = [None if x is None else D.dmy[x] for x in row.dates]
        else:
            dates = []
            for x in row.dates:
                if x is None:
                    dates.append(None)
                else:
                    c = self.Cell(ws, value=D.dates[x])
                    c.number_format = self.date_style
                    dates.append(c)
        ws.append([stt, row.code, row.procedure, 1, row.applicant, row.address, row.agency, *dates, None,
                   row.note or None])

    def close(self) -> None:
        buf = io.BytesIO()
        self.wb.save(buf)
        self.path.write_bytes(fixed_zip(buf.getvalue(), FIXED_TIME))


def yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)
