"""check-report on tables shaped as provinces and districts publish them (issue 15): each shape as CSV and
XLSX with one planted break that must be found, and variants (no header, "," or "." separators, rounded
figures) that must give no false alarm. The tables are made up for these tests."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import invoke
from reconcile.stats.checkreport import check_report
from reconcile.stats.published.numbers import percent_text
from reconcile.stats.published.vocabulary import describe

Grid = list[list[Any]]


def write(path: Path, header: Grid, rows: Grid) -> str:
    """CSV (comma, quoted where needed) or XLSX (typed cells, no merges) by the suffix."""
    if path.suffix == ".xlsx":
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = "Phụ lục"
        ws.append(["BÁO CÁO TÌNH HÌNH GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH"])
        ws.append([])
        for r in header + rows:
            ws.append(r)
        wb.save(path)
    else:
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["BÁO CÁO TÌNH HÌNH GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH"])
            w.writerow([])
            w.writerows([["" if v is None else v for v in r] for r in header + rows])
    return str(path)


def check(path: str, *args: str, expect: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(invoke("check-report", path, *args, "--format", "json", expect=expect).stdout)
    return doc


def refused(path: str) -> str:
    result = invoke("check-report", path, expect=2)
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


def triples(doc: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    return [(v["row"], v["identity"], v["left"], v["right"]) for v in doc["violations"]]


def dotted(n: Any) -> Any:
    return f"{n:,}".replace(",", ".") if isinstance(n, int) and n >= 1000 else n


def commas(n: Any) -> Any:
    return f"{n:,}" if isinstance(n, int) and n >= 1000 else n


def cells(rows: Grid, fmt: Callable[[Any], Any], skip: int = 2) -> Grid:
    return [r[:skip] + [fmt(v) for v in r[skip:]] for r in rows]


def edit(rows: Grid, label: str, col: int, value: Any) -> Grid:
    out = [list(r) for r in rows]
    for r in out:
        if r[1] == label:
            r[col] = value
    return out


# ---------------------------------------------------------------------------------- per-field table
# Two header rows with "Trong đó" groups; "kỳ trước" before "mới tiếp nhận"; a percentage column between
# the counts ("48,6%"); an extra "trả lại" column.

FIELD_HEADER: Grid = [
    ["STT", "Lĩnh vực", "Tổng số hồ sơ", "Trong đó", None, None, None, "Đã giải quyết", "Trong đó", None, None,
     "Đang giải quyết", "Trong đó", None, "Trả lại"],
    [None, None, None, "Kỳ trước chuyển sang", "Mới tiếp nhận", "Trực tuyến", "Tỷ lệ (%)", None, "Trước hạn",
     "Đúng hạn", "Trễ hạn", None, "Trong hạn", "Quá hạn", None],
]
# total, carried, new, online, % online, resolved, early, on time, late, in progress, within, overdue, returned
FIELD_ROWS: Grid = [
    [1, "Lĩnh vực đất đai", 6000, 1200, 4800, 2916, "48,6%", 5000, 1000, 3500, 500, 900, 700, 200, 100],
    [2, "Lĩnh vực hộ tịch", 3000, 30, 2970, 1500, "50%", 2950, 2000, 940, 10, 40, 40, "-", 10],
    [3, "Lĩnh vực xây dựng", 1200, 110, 1090, 300, "25,0%", 1100, 100, 900, 100, 90, 60, 30, 10],
    [4, "Lĩnh vực tư pháp", 59010, 0, 59010, 29505, "50,0%", 59000, 10000, 48990, 10, 10, 10, 0, 0],
    [None, "Tổng cộng", 69210, 1340, 67870, 34221, "49,4%", 68050, 13100, 54330, 620, 1040, 810, 230, 120],
]
FIELD_BREAK = edit(FIELD_ROWS, "Lĩnh vực hộ tịch", 9, 930)  # đúng hạn 940 printed as 930


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_per_field_table_is_read_by_meaning_and_its_break_found(tmp_path: Path, suffix: str) -> None:
    doc = check(write(tmp_path / f"t{suffix}", FIELD_HEADER, FIELD_BREAK), expect=1)
    assert (doc["layout"], doc["rows"]) == ("header", 5)
    assert [c["measure"] for c in doc["columns"]] == [
        "total", "carried_over", "new", "online", "%online", "resolved", "early", "on_time", "late", "in_progress",
        "within_time", "overdue", "returned"]
    assert triples(doc) == [
        ("2 Lĩnh vực hộ tịch", "đã giải quyết = trước hạn + đúng hạn + trễ hạn", 2950, 2940),
        ("Tổng cộng", "đúng hạn: Tổng cộng = (1) + … + (4)", 54330, 54320)]
    assert "mới tiếp nhận = trực tuyến + trực tiếp (+ bưu chính): the table has no 'trực tiếp' " \
           "column" in doc["not_checked"]


@pytest.mark.parametrize("fmt", [dotted, commas, lambda v: v])
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_per_field_table_adds_up_whatever_the_separator(tmp_path: Path, suffix: str, fmt: Callable[[Any], Any]) -> None:
    doc = check(write(tmp_path / f"t{suffix}", FIELD_HEADER, cells(FIELD_ROWS, fmt)), expect=0)
    assert doc["violations"] == []


def test_separators_that_disagree_are_refused_with_both_cells(tmp_path: Path) -> None:
    rows = cells(FIELD_ROWS, dotted)
    rows[3][2] = "59,010"
    assert refused(write(tmp_path / "t.csv", FIELD_HEADER, rows)) == (
        "error: t.csv: thousands separators disagree: '6.000' at line 5, column 3 uses \".\" but '59,010' at line 8, "
        "column 3 uses \",\". Expected one separator per file. Hint: write every count the same way (15.256 or "
        "15256).")


def test_per_field_table_without_header_is_refused_naming_its_percentages(tmp_path: Path) -> None:
    assert refused(write(tmp_path / "t.csv", [], FIELD_ROWS)) == (
        "error: t.csv, lines 3–7: no header, and 13 number columns (columns 3–15) (1 of them percentages: column 7) "
        "fit no preset: expected 11 (official Biểu 06) or 12 (extended: withdrawn and returned apart). Hint: keep "
        "the table's header rows above the numbers so its columns are read by meaning.")


def test_percentage_cell_that_does_not_match_gives_both_percentages(tmp_path: Path) -> None:
    rows = edit(FIELD_ROWS, "Lĩnh vực xây dựng", 6, "26,0%")
    doc = check(write(tmp_path / "t.csv", FIELD_HEADER, rows), expect=1)
    assert doc["violations"] == [{
        "row": "3 Lĩnh vực xây dựng",
        "identity": "tỷ lệ trực tuyến (%) = trực tuyến / tổng số (in tenths of a percent)",
        "left": 260, "right": 250, "difference": 10,
        "percent": {"printed": "26,0%", "computed": "25,0%", "difference": "+1,0"}}]


def test_merged_workbook_header_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    write(path, FIELD_HEADER, FIELD_BREAK)
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    for rng in ("A3:A4", "B3:B4", "C3:C4", "D3:G3", "H3:H4", "I3:K3", "L3:L4", "M3:N3", "O3:O4"):
        ws.merge_cells(rng)
    wb.save(path)
    assert len(check(str(path), expect=1)["violations"]) == 2


def test_unmerged_workbook_header_under_a_merged_title_spans_its_groups(tmp_path: Path) -> None:
    # "Trong hạn" under "Đã giải quyết" is on time; it can only be told from the group spanning it.
    header: Grid = [["STT", "Lĩnh vực", "Tiếp nhận", "Đã giải quyết", None, None, "Đang giải quyết"],
                    [None, None, None, "Tổng số", "Trong hạn", "Quá hạn", None]]
    path = tmp_path / "t.xlsx"
    write(path, header, [[1, "Lĩnh vực thử", 100, 90, 80, 10, 10]])
    wb = openpyxl.load_workbook(path)
    wb.active.merge_cells("A1:G1")  # the title merged, the header typed cell by cell
    wb.save(path)
    doc = check(str(path), expect=0)
    assert [c["measure"] for c in doc["columns"]] == ["total", "resolved", "on_time", "late", "in_progress"]


# ---------------------------------------------------------------------------------- per-level table
# "Toàn tỉnh" first, then Roman-numeral sections cấp tỉnh / huyện / xã with their units; "chưa đến hạn" and
# "đến hạn" columns; an on-time percentage with one decimal.

LEVEL_HEADER: Grid = [
    ["STT", "Đơn vị", "Tiếp nhận", "Đã giải quyết", None, None, None, "Đang giải quyết", None, None, None],
    [None, None, None, "Tổng số", "Đúng hạn", "Trễ hạn", "Tỷ lệ đúng hạn (%)", "Tổng số", "Chưa đến hạn", "Đến hạn",
     "Quá hạn"],
]
LEVEL_ROWS: Grid = [
    [None, "Toàn tỉnh", 25000, 24000, 23600, 400, "98,3", 1000, 800, 110, 90],
    ["I", "Cấp tỉnh", 5000, 4600, 4500, 100, "97,8", 400, 300, 50, 50],
    [1, "Sở Tư pháp", 3000, 2800, 2750, 50, "98,2", 200, 150, 25, 25],
    [2, "Sở Xây dựng", 2000, 1800, 1750, 50, "97,2", 200, 150, 25, 25],
    ["II", "Cấp huyện", 8000, 7600, 7400, 200, "97,4", 400, 300, 60, 40],
    [1, "Huyện An Lão", 5000, 4800, 4700, 100, "97,9", 200, 150, 30, 20],
    [2, "Huyện Ba Tơ", 3000, 2800, 2700, 100, "96,4", 200, 150, 30, 20],
    ["III", "Cấp xã", 12000, 11800, 11700, 100, "99,2", 200, 200, 0, 0],
]
LEVEL_BREAK = edit(LEVEL_ROWS, "Toàn tỉnh", 2, 24998)  # a −2 typo in the province's total


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_per_level_table_total_is_the_sum_of_the_levels(tmp_path: Path, suffix: str) -> None:
    doc = check(write(tmp_path / f"t{suffix}", LEVEL_HEADER, LEVEL_BREAK), expect=1)
    assert [c["measure"] for c in doc["columns"]] == [
        "total", "resolved", "on_time", "late", "%on_time", "in_progress", "within_time", "due_now", "overdue"]
    assert triples(doc) == [
        ("Toàn tỉnh", "tổng số = đã giải quyết + đang giải quyết", 24998, 25000),
        ("Toàn tỉnh", "tổng số: Toàn tỉnh = (I) + (II) + (III)", 24998, 25000)]
    assert "I Cấp tỉnh: the sum of (1), (2)" in doc["notes"]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_per_level_table_section_that_misses_its_units_is_found(tmp_path: Path, suffix: str) -> None:
    rows = edit(LEVEL_ROWS, "Huyện Ba Tơ", 10, 25)  # quá hạn 20 printed as 25
    doc = check(write(tmp_path / f"t{suffix}", LEVEL_HEADER, rows), expect=1)
    assert triples(doc) == [("II Cấp huyện", "quá hạn: II Cấp huyện = (1) + (2)", 40, 45),
                            ("2 Huyện Ba Tơ", "đang giải quyết = trong hạn + đến hạn + quá hạn", 200, 205)]


def on_time_rates(rows: Grid, over: int) -> Grid:
    """LEVEL_ROWS with "Tỷ lệ đúng hạn (%)" computed over column `over` (2: received, 3: resolved)."""
    return [r[:6] + [percent_text(Fraction(100 * r[4], r[over]), 1)] + r[7:] for r in rows]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize("over, denominator, note", [
    (3, "resolved", None),
    (2, "total", "column 7 'Đã giải quyết / Tỷ lệ đúng hạn (%)' is over 'tổng số', not 'đã giải quyết': 8 of 8 "
                 "rows hold over 'tổng số', 0 over 'đã giải quyết'"),
])
def test_on_time_rate_over_resolved_or_over_received_is_read_as_the_table_computes_it(
        tmp_path: Path, suffix: str, over: int, denominator: str, note: str | None) -> None:
    rows = on_time_rates(LEVEL_ROWS, over)
    assert over == 2 or [r[6] for r in rows] == [r[6] for r in LEVEL_ROWS]  # the published table's own rates
    doc = check(write(tmp_path / f"t{suffix}", LEVEL_HEADER, rows), expect=0)
    assert doc["violations"] == []
    assert [c.get("denominator") for c in doc["columns"] if c["measure"].startswith("%")] == [denominator]
    said = [n.replace("column G ", "column 7 ") for n in doc["notes"] if " is over " in n]
    assert said == ([note] if note else [])
    out = invoke("check-report", write(tmp_path / f"u{suffix}", LEVEL_HEADER, rows), expect=0).stdout
    assert (f"note: {note}" in out.replace("column G ", "column 7 ")) if note else " is over " not in out


@pytest.mark.parametrize("over, formula, printed, computed, difference", [
    (3, "đúng hạn / đã giải quyết", "97,0%", "97,2%", "-0,2"),
    (2, "đúng hạn / tổng số", "87,3%", "87,5%", "-0,2"),
])
def test_one_broken_on_time_rate_is_found_over_the_denominator_its_column_uses(
        tmp_path: Path, over: int, formula: str, printed: str, computed: str, difference: str) -> None:
    rows = edit(on_time_rates(LEVEL_ROWS, over), "Sở Xây dựng", 6, printed[:-1])
    doc = check(write(tmp_path / "t.csv", LEVEL_HEADER, rows), expect=1)
    assert [(v["row"], v["identity"], v["percent"]) for v in doc["violations"]] == [(
        "2 Sở Xây dựng", f"tỷ lệ đúng hạn (%) = {formula} (in tenths of a percent)",
        {"printed": printed, "computed": computed, "difference": difference})]


def test_per_level_table_with_unnumbered_levels_and_sub_rows(tmp_path: Path) -> None:
    rows = [["", "Toàn huyện", 300, 290, 280, 10, "96,6", 10, 10, 0, 0],
            ["", "Cấp huyện", 200, 195, 190, 5, "97,4", 5, 5, 0, 0],
            ["", "- Văn phòng HĐND và UBND", 120, 118, 115, 3, "97,5", 2, 2, 0, 0],
            ["", "- Phòng Tài nguyên và Môi trường", 80, 77, 75, 2, "97,4", 3, 3, 0, 0],
            ["", "Cấp xã", 100, 95, 90, 5, "94,7", 5, 5, 0, 0]]
    assert check(write(tmp_path / "ok.csv", LEVEL_HEADER, rows), expect=0)["violations"] == []
    rows[3][2] = 82
    rows[3][3] = 79
    rows[3][4] = 77
    rows[3][6] = "97,5"
    assert triples(check(write(tmp_path / "t.csv", LEVEL_HEADER, rows), expect=1)) == [
        ("Cấp huyện", "tổng số: Cấp huyện = - Văn phòng HĐND và UBND + - Phòng Tài nguyên và Môi trường", 200, 202),
        ("Cấp huyện", "đã giải quyết: Cấp huyện = - Văn phòng HĐND và UBND + - Phòng Tài nguyên và Môi trường",
         195, 197),
        ("Cấp huyện", "đúng hạn: Cấp huyện = - Văn phòng HĐND và UBND + - Phòng Tài nguyên và Môi trường", 190, 192)]


# ------------------------------------------------------------------------- per-service-level table
# Rows per service level, no STT; a "Số TTHC" column that is not a count of dossiers; channels with a postal
# column; rounded "ngàn" figures in a variant.

SERVICE_HEADER: Grid = [[None, "Mức độ", "Số TTHC", "Tiếp nhận", "Trực tuyến", "Trực tiếp", "Bưu chính",
                         "Tỷ lệ trực tuyến (%)"]]
SERVICE_ROWS: Grid = [
    [None, "Mức độ 2", 120, 4520, 0, 4400, 120, "0"],
    [None, "Mức độ 3", 300, 10070, 6000, 4000, 70, "59,6"],
    [None, "Mức độ 4", 80, 2500, 2500, 0, 0, "100"],
    [None, "Tổng cộng", 500, 17090, 8500, 8400, 190, "49,7"],
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_per_service_level_percentage_mismatch_gives_both_percentages(tmp_path: Path, suffix: str) -> None:
    rows = edit(SERVICE_ROWS, "Mức độ 4", 7, "99,96")
    doc = check(write(tmp_path / f"t{suffix}", SERVICE_HEADER, rows), expect=1)
    assert "column C 'Số TTHC' left out: it counts something the identities do not use (procedures, services, " \
           "units, digitised or paid dossiers, ratings)" in \
        [n.replace("column 3 ", "column C ") for n in doc["notes"]]
    assert doc["violations"] == [{
        "row": "Mức độ 4", "identity": "tỷ lệ trực tuyến (%) = trực tuyến / tổng số (in hundredths of a percent)",
        "left": 9996, "right": 10000, "difference": -4,
        "percent": {"printed": "99,96%", "computed": "100,00%", "difference": "-0,04"}}]
    out = invoke("check-report", write(tmp_path / f"u{suffix}", SERVICE_HEADER, rows), expect=1).stdout
    assert "99,96%" in out and "100,00%" in out and "-0,04" in out


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_rounded_figures_are_checked_within_their_rounding(tmp_path: Path, suffix: str) -> None:
    rounded = [r[:3] + [f"{r[3] / 1000:.2f}".replace(".", ",") + " ngàn"] + r[4:] for r in SERVICE_ROWS]
    doc = check(write(tmp_path / f"t{suffix}", SERVICE_HEADER, rounded), expect=0)
    assert rounded[0][3] == "4,52 ngàn" and doc["violations"] == []
    assert "4 rounded figures (\"ngàn\"/\"nghìn\") checked within their rounding" in doc["notes"]
    rounded[3][3] = "17,19 ngàn"  # 100 more than its rows: beyond any rounding
    assert triples(check(write(tmp_path / f"b{suffix}", SERVICE_HEADER, rounded), expect=1)) == [
        ("Tổng cộng", "tổng số = trực tuyến + trực tiếp + bưu chính", 17190, 17090),
        ("Tổng cộng", "tỷ lệ trực tuyến (%) = trực tuyến / tổng số (in tenths of a percent)", 497, 494),
        ("Tổng cộng − Mức độ 2 − Mức độ 3 − Mức độ 4", "tổng số = trực tuyến + trực tiếp + bưu chính", 100, 0)]


# ------------------------------------------------------------------------- per-procedure land table
# Eleven count columns, as many as Biểu 06, but other ones: "quá hạn" twice (the column before decides),
# "chờ bổ sung" and "trả lại" apart from resolved and in progress.

LAND_HEADER: Grid = [["STT", "Tên thủ tục", "Tổng số", "Kỳ trước chuyển sang", "Mới tiếp nhận", "Đã giải quyết",
                      "Đúng hạn", "Quá hạn", "Đang giải quyết", "Trong hạn", "Quá hạn", "Chờ bổ sung", "Trả lại"]]
LAND_ROWS: Grid = [
    [1, "Đăng ký đất đai lần đầu", 1000, 120, 880, 900, 850, 50, 80, 70, 10, 15, 5],
    [2, "Đăng ký biến động đất đai", 59010, 1010, 58000, 58000, 57000, 1000, 900, 800, 100, 60, 50],
    [3, "Cấp đổi giấy chứng nhận", 500, 40, 460, 450, 440, 10, 40, 40, 0, 5, 5],
    [4, "Chuyển mục đích sử dụng đất", 300, 30, 270, 280, 270, 10, 15, 10, 5, 3, 2],
    [None, "Tổng cộng", 60810, 1200, 59610, 59630, 58560, 1070, 1035, 920, 115, 83, 62],
]
LAND_BREAK = edit(LAND_ROWS, "Cấp đổi giấy chứng nhận", 3, 45)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_per_procedure_land_table_is_read_by_meaning(tmp_path: Path, suffix: str) -> None:
    doc = check(write(tmp_path / f"t{suffix}", LAND_HEADER, LAND_BREAK), expect=1)
    assert [c["measure"] for c in doc["columns"]] == [
        "total", "carried_over", "new", "resolved", "on_time", "late", "in_progress", "within_time", "overdue",
        "supplement", "returned"]
    assert triples(doc) == [
        ("3 Cấp đổi giấy chứng nhận", "tổng số = kỳ trước chuyển qua + mới tiếp nhận", 500, 505),
        ("Tổng cộng", "kỳ trước chuyển qua: Tổng cộng = (1) + … + (4)", 1200, 1205)]
    assert any(n.startswith("convention: rút, trả lại and chờ bổ sung") for n in doc["notes"])


@pytest.mark.parametrize("fmt", [dotted, commas])
def test_per_procedure_land_table_with_separators_adds_up(tmp_path: Path, fmt: Callable[[Any], Any]) -> None:
    assert check(write(tmp_path / "t.csv", LAND_HEADER, cells(LAND_ROWS, fmt)), expect=0)["violations"] == []


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_land_table_without_header_is_not_misread_as_bieu_06(tmp_path: Path, suffix: str) -> None:
    message = refused(write(tmp_path / f"t{suffix}", [], LAND_ROWS))
    assert "no header, and the 11 number columns do not read as the official layout" in message
    assert "Hint: keep the table's header rows so its columns are read by meaning, not by position." in message


def test_ambiguous_quá_hạn_without_a_group_or_neighbour_is_left_out_by_name(tmp_path: Path) -> None:
    header = [["STT", "Lĩnh vực", "Quá hạn", "Tổng số", "Đã giải quyết", "Đúng hạn", "Trễ hạn"]]
    doc = check(write(tmp_path / "t.csv", header, [[1, "Lĩnh vực thử", 5, 100, 90, 85, 5]]), expect=0)
    assert "column 3 'Quá hạn' left out: 'quá hạn' with no group saying resolved or in progress" in doc["notes"]


def test_tỷ_lệ_giải_quyết_is_the_resolved_share_not_the_column_before(tmp_path: Path) -> None:
    header = [["STT", "Lĩnh vực", "Tiếp nhận", "Đã giải quyết", "Đúng hạn", "Trễ hạn", "Tỷ lệ giải quyết (%)"]]
    rows: Grid = [[1, "Lĩnh vực A", 1000, 900, 850, 50, "90,0"], [2, "Lĩnh vực B", 500, 480, 470, 10, "96,0"]]
    doc = check(write(tmp_path / "ok.csv", header, rows), expect=0)
    assert doc["columns"][-1] == {"column": "7", "header": "Tỷ lệ giải quyết (%)", "measure": "%resolved",
                                  "denominator": "total"}
    rows[1][6] = "97,0"
    assert triples(check(write(tmp_path / "t.csv", header, rows), expect=1)) == [
        ("2 Lĩnh vực B", "tỷ lệ đã giải quyết (%) = đã giải quyết / tổng số (in tenths of a percent)", 970, 960)]


# --------------------------------------------------------------------------------------------- prose

PROSE = """\
Trong kỳ, toàn tỉnh tiếp nhận 69.210 HS, trong đó trực tuyến 34.221 HS, chiếm 49,4%.
Đã giải quyết 68.050 bộ; có 54.330 hồ sơ giải quyết đúng hạn.
Lĩnh vực đất đai: 4.500/5.000 hồ sơ được giải quyết trước hạn và đúng hạn (90%); đúng hạn 3.500 hồ sơ, đạt 58,3%.
Đang giải quyết 1.040 hồ sơ, trong đó 810 hồ sơ chưa đến hạn.
Lĩnh vực xây dựng: trễ hạn 100 hồ sơ, chiếm 9,2%.
"""


def check_prose(tmp_path: Path, header: Grid, rows: Grid, prose: str, expect: int) -> dict[str, Any]:
    text = tmp_path / "bao-cao.txt"
    text.write_text(prose, encoding="utf-8")
    return check(write(tmp_path / "t.csv", header, rows), "--text", str(text), expect=expect)


def test_prose_forms_are_read_and_their_denominators_named(tmp_path: Path) -> None:
    doc = check_prose(tmp_path, FIELD_HEADER, FIELD_ROWS, PROSE, expect=1)
    confirmed = doc["confirmed"]
    assert 'line 1: 69.210 hồ sơ = tổng số of "Tổng cộng"' in confirmed
    assert 'line 1: 34.221 hồ sơ = trực tuyến of "Tổng cộng"' in confirmed
    assert 'line 2: 68.050 hồ sơ = đã giải quyết of "Tổng cộng"' in confirmed
    assert 'line 2: 54.330 hồ sơ = đúng hạn of "Tổng cộng"' in confirmed  # the label after the number
    assert 'line 3: 4.500/5.000 hồ sơ = trước hạn + đúng hạn of "1 Lĩnh vực đất đai"' in confirmed
    assert ('line 3: 90% = 4.500/5.000 as written, the denominator being 5000 = đã giải quyết of '
            '"1 Lĩnh vực đất đai" (4.500/5.000 = 90,00%)') in confirmed
    assert 'line 3: 58,3% = đúng hạn / tổng số of "1 Lĩnh vực đất đai" (3500 / 6000 = 58,33%)' in confirmed
    assert 'line 4: 810 hồ sơ = trong hạn of "Tổng cộng"' in confirmed  # "chưa đến hạn" is within time
    assert triples(doc) == [("3 Lĩnh vực xây dựng",
                             "text line 5: 9,2% = trễ hạn / đã giải quyết (in tenths of a percent)", 92, 91)]


LEVEL_PROSE = """\
Cấp huyện đã giải quyết 7.600 hồ sơ, đúng hạn 7.400 hồ sơ, đạt 97,4%; đang giải quyết 400 hồ sơ, trong đó \
300 hồ sơ chưa đến hạn, 60 hồ sơ đến hạn.
Cấp xã tiếp nhận 12.000 hồ sơ, đúng hạn 11.700 hồ sơ, đạt 97,5%.
Cấp tỉnh đã giải quyết 4.600 hồ sơ, đúng hạn 4.500 hồ sơ, đạt 97,0%.
"""


def test_prose_chưa_đến_hạn_and_on_time_rates_over_resolved_or_received(tmp_path: Path) -> None:
    # The table has "Chưa đến hạn" and "Đến hạn" apart: the longer phrase decides, and "chưa đến hạn" after 300
    # labels 300, not 60. 97,4% is over resolved, 97,5% over received; 97,0% is neither (97,8% over resolved,
    # 90,0% over received).
    doc = check_prose(tmp_path, LEVEL_HEADER, LEVEL_ROWS, LEVEL_PROSE, expect=1)
    assert doc["confirmed"] == [
        'line 1: 7.600 hồ sơ = đã giải quyết of "II Cấp huyện"',
        'line 1: 7.400 hồ sơ = đúng hạn of "II Cấp huyện"',
        'line 1: 400 hồ sơ = đang giải quyết of "II Cấp huyện"',
        'line 1: 300 hồ sơ = trong hạn of "II Cấp huyện"',
        'line 1: 60 hồ sơ = đến hạn of "II Cấp huyện"',
        'line 1: 97,4% = đúng hạn / đã giải quyết of "II Cấp huyện" (7400 / 7600 = 97,37%)',
        'line 2: 12.000 hồ sơ = tổng số of "III Cấp xã"',
        'line 2: 11.700 hồ sơ = đúng hạn of "III Cấp xã"',
        'line 2: 97,5% = đúng hạn / tổng số of "III Cấp xã" (11700 / 12000 = 97,50%)',
        'line 3: 4.600 hồ sơ = đã giải quyết of "I Cấp tỉnh"',
        'line 3: 4.500 hồ sơ = đúng hạn of "I Cấp tỉnh"']
    assert [(v["row"], v["identity"], v["percent"]) for v in doc["violations"]] == [(
        "I Cấp tỉnh", "text line 3: 97,0% = đúng hạn / đã giải quyết (in tenths of a percent)",
        {"printed": "97,0%", "computed": "97,8%", "difference": "-0,8"})]


ROUNDED_PROSE = """\
Mức độ 2 tiếp nhận 4,52 ngàn hồ sơ; mức độ 3 tiếp nhận 10,1 nghìn hồ sơ, trực tuyến 6 ngàn hồ sơ, chiếm 59,6%.
Toàn tỉnh tiếp nhận 17,2 ngàn hồ sơ.
"""


def test_prose_counts_in_ngàn_or_nghìn_are_read_with_their_rounding(tmp_path: Path) -> None:
    # 4,52 ngàn is 4.515–4.525, 10,1 nghìn 10.050–10.150, 6 ngàn 5.500–6.500; 17,2 ngàn (17.150–17.250) is
    # not the total 17.090; the percentage is over the cell (6.000), not the rounded figure.
    doc = check_prose(tmp_path, SERVICE_HEADER, SERVICE_ROWS, ROUNDED_PROSE, expect=0)
    assert doc["confirmed"] == [
        'line 1: 4,52 ngàn hồ sơ = tổng số of "Mức độ 2" (4520, within its rounding)',
        'line 1: 10,1 nghìn hồ sơ = tổng số of "Mức độ 3" (10070, within its rounding)',
        'line 1: 6 ngàn hồ sơ = trực tuyến of "Mức độ 3" (6000, within its rounding)',
        'line 1: 59,6% = trực tuyến / tổng số of "Mức độ 3" (6000 / 10070 = 59,58%)']
    assert doc["unchecked"] == ["line 2: 17,2 ngàn hồ sơ (17150–17250): not in the table"]


# ------------------------------------------------------------------------------- never misread silently


def test_unquoted_comma_count_in_a_csv_is_refused_not_shifted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("STT,Tên thủ tục,Tổng số,Đã giải quyết,Đúng hạn,Trễ hạn,Đang giải quyết\n"
                    "1,Đăng ký đất đai lần đầu,100,90,85,5,10\n"
                    "2,Đăng ký biến động đất đai,59,010,59000,58000,1000,10\n", encoding="utf-8")
    assert refused(str(path)) == (
        "error: t.csv, line 3: numbers right of the table's last column 7: its cells are shifted ('59,010' written "
        "without quotes splits into two cells). Expected 5 number columns like the other rows. Hint: quote counts "
        "that hold a comma (\"59,010\") or write them without separators.")


@pytest.mark.parametrize("header, rows, cause", [
    ([], LEVEL_ROWS, "(1 of them percentages: column 7)"),
    ([], [r[:3] + [f"{r[3] / 1000:.2f}".replace(".", ",") + " ngàn"] + r[4:7] for r in SERVICE_ROWS],
     "(rounded figures in column 4)"),
])
def test_tables_without_header_are_refused_with_the_real_cause(tmp_path: Path, header: Grid, rows: Grid,
                                                               cause: str) -> None:
    message = refused(write(tmp_path / "t.csv", header, rows))
    assert cause in message and "fit no preset" in message


def test_biểu_06_by_position_still_reads_when_it_adds_up(tmp_path: Path) -> None:
    rows = [[1, "Lĩnh vực thử", 100, 10, 85, 5, 90, 20, 60, 10, 10, 6, 4],
            [2, "Lĩnh vực khác", 50, 5, 40, 5, 45, 5, 38, 2, 5, 5, 0]]
    doc = check(write(tmp_path / "t.csv", [], rows), expect=0)
    assert (doc["layout"], doc["layout_from"]) == ("official", "no header; 11 number columns")
    assert "read by position as the official layout: 10 of 10 identity checks hold" in doc["notes"]


SECTION_HEADER: Grid = [["STT", "Đơn vị", "Tiếp nhận", "Đã giải quyết", "Đang giải quyết"]]
SECTION_ROWS: Grid = [
    ["I", "CẤP TỈNH", None, None, None],
    [1, "Sở Tư pháp", 100, 90, 10],
    [2, "Sở Xây dựng", 50, 45, 5],
    [None, "Cộng", 150, 135, 15],
    ["II", "CẤP HUYỆN", None, None, None],
    [1, "Huyện An Lão", 70, 60, 10],
    [2, "Huyện Ba Tơ", 30, 30, 0],
    [None, "Cộng", 100, 90, 10],
    [None, "Tổng cộng", 250, 225, 25],
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_section_headings_with_their_own_cộng_rows(tmp_path: Path, suffix: str) -> None:
    doc = check(write(tmp_path / f"ok{suffix}", SECTION_HEADER, SECTION_ROWS), expect=0)
    assert doc["rows"] == 7 and "Tổng cộng: the sum of Cộng (I CẤP TỈNH), Cộng (II CẤP HUYỆN)" in doc["notes"]
    rows = [list(r) for r in SECTION_ROWS]
    rows[7][2] = 101  # the district section's "Cộng" one too many
    assert triples(check(write(tmp_path / f"t{suffix}", SECTION_HEADER, rows), expect=1)) == [
        ("Cộng", "tổng số = đã giải quyết + đang giải quyết", 101, 100),
        ("Cộng (II CẤP HUYỆN)", "tổng số: Cộng (II CẤP HUYỆN) = (1) + (2)", 101, 100),
        ("Tổng cộng", "tổng số: Tổng cộng = Cộng (I CẤP TỈNH) + Cộng (II CẤP HUYỆN)", 250, 251)]


def test_xlsx_percentage_stored_as_a_fraction_is_read_as_shown(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    write(path, SERVICE_HEADER, SERVICE_ROWS)
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    for r, shown in zip(range(4, 8), (0, 0.596, 1, 0.497)):  # the "Tỷ lệ" column typed as 0.596 shown as 59.6%
        ws.cell(r, 8).value = shown
        ws.cell(r, 8).number_format = "0.0%"
    wb.save(path)
    assert check(str(path), expect=0)["violations"] == []
    ws.cell(6, 8).value = 0.9996
    ws.cell(6, 8).number_format = "0.00%"
    wb.save(path)
    assert triples(check(str(path), expect=1)) == [
        ("Mức độ 4", "tỷ lệ trực tuyến (%) = trực tuyến / tổng số (in hundredths of a percent)", 9996, 10000)]


def test_docs_list_the_vocabulary_as_the_code_has_it() -> None:
    page = (Path(__file__).parent.parent / "docs" / "statistics.md").read_text(encoding="utf-8")
    assert [line for line in describe() if line not in page] == []


@pytest.mark.parametrize("command", [
    "check-report examples/published/theo-cap.csv --text examples/published/bao-cao-theo-cap.txt",
    "check-report examples/seed/phu-luc-binh-son-2021-h1.tsv --text examples/seed/bao-cao-binh-son-2021-h1.txt"])
def test_docs_check_report_examples_are_real_output(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every line but the table's frame (its width follows the terminal) as docs/statistics.md shows it.
    root = Path(__file__).parent.parent
    page = (root / "docs" / "statistics.md").read_text(encoding="utf-8")
    shown = page.split(f"$ reconcile {command}   # exit 1\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)
    out = invoke(*command.split(), expect=1).stdout

    def lines(text: str) -> list[str]:
        return [line for line in text.splitlines() if line[:1] not in "┏┃┡│└"]

    assert lines(out) == lines(shown)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_on_time_rate_over_early_and_on_time_columns(tmp_path: Path, suffix: str) -> None:
    header = [["STT", "Lĩnh vực", "Đã giải quyết", "Trước hạn", "Đúng hạn", "Trễ hạn", "Tỷ lệ trước hạn và đúng hạn (%)"]]
    rows: Grid = [[1, "Lĩnh vực A", 100, 20, 70, 10, "90,0"], [2, "Lĩnh vực B", 50, 10, 35, 5, "90,0"]]
    assert check(write(tmp_path / f"ok{suffix}", header, rows), expect=0)["violations"] == []
    rows[1][6] = "91,0"
    assert triples(check(write(tmp_path / f"t{suffix}", header, rows), expect=1)) == [(
        "2 Lĩnh vực B", "tỷ lệ đúng hạn (kể cả trước hạn) (%) = (trước hạn + đúng hạn) / đã giải quyết (in tenths of a "
        "percent)", 910, 900)]


# ------------------------------------------------------------------------------------- property

_small = st.integers(min_value=0, max_value=40000)


@st.composite
def field_rows(draw: st.DrawFn) -> Grid:
    """Per-field rows in FIELD_HEADER's columns that add up, and their "Tổng cộng" row."""
    rows: Grid = []
    for i in range(1, draw(st.integers(min_value=1, max_value=5)) + 1):
        early, on_time, late, within, overdue, returned = (draw(_small) for _ in range(6))
        resolved, progress = early + on_time + late, within + overdue
        total = resolved + progress + returned
        carried = draw(st.integers(min_value=0, max_value=total))
        online = draw(st.integers(min_value=0, max_value=total))
        rows.append([i, f"Lĩnh vực {i}", total, carried, total - carried, online, None, resolved, early, on_time, late,
                     progress, within, overdue, returned])
    rows.append([None, "Tổng cộng"] + [sum(r[c] for r in rows) if c != 6 else None for c in range(2, 15)])
    for r in rows:
        r[6] = percent_text(Fraction(100 * r[5], r[2]), 1) + "%" if r[2] else "-"
    return rows


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=field_rows(), sep=st.sampled_from([dotted, commas, lambda v: v]), data=st.data())
def test_tables_that_add_up_pass_and_one_changed_count_is_found(tmp_path: Path, rows: Grid,
                                                                sep: Callable[[Any], Any], data: st.DataObject) -> None:
    path = Path(write(tmp_path / "t.csv", FIELD_HEADER, cells(rows, sep)))
    assert check_report(path).violations == ()
    r = data.draw(st.integers(min_value=0, max_value=len(rows) - 2))
    c = data.draw(st.sampled_from([2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14]))
    rows[r][c] += data.draw(st.sampled_from([1, 2, 1000]))
    assert check_report(write(tmp_path / "b.csv", FIELD_HEADER, cells(rows, sep))).violations != ()


def test_last_column_with_many_dashes_is_still_part_of_the_table(tmp_path: Path) -> None:
    header = [["STT", "Lĩnh vực", "Đã giải quyết", "Đúng hạn", "Trễ hạn", "Tỷ lệ đúng hạn (%)"]]
    rows: Grid = [[1, "A", 0, 0, 0, "-"], [2, "B", 0, 0, 0, "-"], [3, "C", 0, 0, 0, "-"], [4, "D", 10, 9, 1, "90"],
                  [5, "E", 5, 4, 1, "81"]]
    assert triples(check(write(tmp_path / "t.csv", header, rows), expect=1)) == [
        ("5 E", "tỷ lệ đúng hạn (%) = đúng hạn / đã giải quyết (in percent)", 81, 80)]
