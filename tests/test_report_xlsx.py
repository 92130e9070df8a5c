"""XLSX and CSV renderers of reports and statistics: the Biểu 06 header, worklists per unit, byte-stable files."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from reconcile.util.i18n import t
from reconcile.report.csvout import report_csv, stats_csv
from reconcile.report.xlsxout import write_report_xlsx, write_stats_xlsx
from reconcile.report.data import Action, Evidence, ReportData, WorkItem, Worklist
from reconcile.stats.model import Note
from report_sample import sample_report, stats_table

WL_VI = ["Mã hồ sơ", "Người nộp", "Bước hiện tại", "Vấn đề", "Đề xuất xử lý", "Căn cứ"]
WL_EN = ["Dossier code", "Applicant", "Current step", "Issue", "Proposed action", "Evidence"]
# Header rows 5-7, numbering row 8, data from row 9 (rows 1-3: title, period, layout).
OFFICIAL_MERGES = {
    "A5:A7", "B5:B7",  # STT, Lĩnh vực
    "C5:F5", "C6:C7", "D6:F6",  # received: total, of which (online, in person, carried over)
    "G5:M5", "G6:J6", "K6:M6",  # results: resolved (total, early, on time, late), in progress (total, within, overdue)
    "N5:Q5", "N6:N7", "O6:O7", "P6:P7", "Q6:Q7",  # other: withdrawn, returned, unclassified, stuck
    "R5:R7",  # on-time rate
}


def header_merges(ws: Worksheet) -> set[str]:
    return {str(m) for m in ws.merged_cells.ranges if 5 <= m.min_row <= 8}


def values(ws: Worksheet, row: int) -> list[Any]:
    return [c.value for c in ws[row]]


def load(path: Path) -> openpyxl.Workbook:
    return openpyxl.load_workbook(path)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.encode("utf-8").decode("utf-8-sig"))))


# ------------------------------------------------------------------------------ statistics sheets


def test_official_layout_header_has_the_bieu_06_merged_groups(tmp_path: Path) -> None:
    write_stats_xlsx([stats_table()], "vi", tmp_path / "s.xlsx")
    ws = load(tmp_path / "s.xlsx").active

    assert header_merges(ws) == OFFICIAL_MERGES
    top = {ref: ws[ref].value for ref in ("A5", "B5", "C5", "C6", "D6", "G5", "G6", "K6", "N5", "R5")}
    assert top == {"A5": "STT", "B5": "Lĩnh vực", "C5": "Số hồ sơ nhận giải quyết",
                   "C6": "Tổng số hồ sơ nhận giải quyết", "D6": "Trong đó", "G5": "Kết quả giải quyết",
                   "G6": "Số hồ sơ đã giải quyết", "K6": "Số hồ sơ đang giải quyết", "N5": "Khác",
                   "R5": "Tỷ lệ đúng hạn"}
    assert values(ws, 7)[3:13] == ["Trực tuyến", "Trực tiếp và dịch vụ bưu chính", "Kỳ trước chuyển qua",
                                   "Tổng số đã giải quyết", "Trước hạn", "Đúng hạn", "Trễ hạn",
                                   "Tổng số đang giải quyết", "Trong hạn", "Quá hạn"]
    assert values(ws, 8) == [None, None, *(f"({i})" for i in range(1, 16)), "(6+7)/(5)"]
    assert ws.print_title_rows == "$5:$8"
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth == 1


def test_extended_layout_header_groups_its_twelve_columns(tmp_path: Path) -> None:
    write_stats_xlsx([stats_table(layout="extended")], "en", tmp_path / "s.xlsx")
    ws = load(tmp_path / "s.xlsx").active

    assert header_merges(ws) == {"A5:A7", "B5:B7", "C5:F5", "C6:C7", "D6:F6", "G5:L5", "G6:I6", "J6:L6",
                                 "M5:P5", "M6:M7", "N6:N7", "O6:O7", "P6:P7", "Q5:Q7"}
    assert [ws[r].value for r in ("C5", "D6", "G5", "G6", "J6", "M5")] == [
        "Dossiers received", "Of which", "Results", "Resolved", "In progress", "Other"]
    assert values(ws, 7)[3:6] == ["Online", "Carried over", "Newly received (in person)"]
    assert values(ws, 8)[2:] == [*(f"({i})" for i in range(1, 15)), "(6)/(5)"]


def test_stats_rows_hold_the_sample_counts_as_formatted_numbers(tmp_path: Path) -> None:
    table = stats_table()
    write_stats_xlsx([table], "vi", tmp_path / "s.xlsx")
    ws = load(tmp_path / "s.xlsx").active

    for r, row in enumerate(table.rows, 9):
        assert values(ws, r)[2:17] == [row.values[c.key] for c in table.columns]
        assert all(c.number_format == "#,##0" for c in ws[r][2:17])
        assert ws.cell(r, 2).font.b == (row.kind in ("total", "group"))
    assert [values(ws, r)[:2] for r in range(9, 14)] == [
        [1, "Lĩnh vực đất đai"], [2, "Lĩnh vực hộ tịch"], [3, "Lĩnh vực văn hóa cơ sở"], [None, "Tổng"],
        [None, "Tổng lĩnh vực đất đai"]]
    assert ws["C12"].value == 13447 and ws["R12"].value == pytest.approx(8167 / 10653)
    assert ws["R12"].number_format == "0.0%"


def test_notes_are_printed_under_the_table(tmp_path: Path) -> None:
    table = stats_table()
    write_stats_xlsx([table], "en", tmp_path / "s.xlsx")
    ws = load(tmp_path / "s.xlsx").active

    first = 9 + len(table.rows) + 1
    notes = [ws.cell(r, 1).value for r in range(first, ws.max_row + 1)]
    assert notes == [t(n.key, "en", **n.params) for n in table.notes]
    assert notes[0].startswith("Convention: withdrawn") and "(80 dossiers)" in notes[3]
    assert f"A{first}:R{first}" in {str(m) for m in ws.merged_cells.ranges}
    assert ws["A1"].value == "Dossier resolution statistics (system view)"
    assert ws["A2"].value == "Period 2021-01-01 to 2021-06-30; data as of 2021-06-30 (audit run 1)."


def test_note_counts_get_the_languages_thousands_separators(tmp_path: Path) -> None:
    table = replace(stats_table(), notes=(Note("note.unclassified", {"n": 12345}),))
    write_stats_xlsx([table], "vi", tmp_path / "s.xlsx")

    assert load(tmp_path / "s.xlsx").active.cell(9 + len(table.rows) + 1, 1).value == (
        "Không phân loại được: 12.345 hồ sơ thiếu ngày hẹn trả hoặc ngày kết thúc xử lý.")


def test_rate_column_can_be_left_out(tmp_path: Path) -> None:
    write_stats_xlsx([stats_table(), stats_table("register")], "vi", tmp_path / "s.xlsx", rate=False)
    wb = load(tmp_path / "s.xlsx")

    assert wb.sheetnames == ["Thống kê - hệ thống", "Thống kê - sổ giấy"]
    assert all(ws.max_column == 17 for ws in wb.worksheets)
    assert header_merges(wb.active) == OFFICIAL_MERGES - {"R5:R7"}


# ------------------------------------------------------------------------------ the report workbook


def test_report_workbook_has_statistics_findings_census_and_a_worklist_per_unit(tmp_path: Path) -> None:
    data = sample_report()
    write_report_xlsx(data, "vi", tmp_path / "r.xlsx")
    wb = load(tmp_path / "r.xlsx")

    assert wb.sheetnames == ["Thống kê - hệ thống", "Thống kê - sau kế hoạch", "Thống kê - sổ giấy",
                             "Danh sách vấn đề", "Hồ sơ đang mở theo bước", "DODAC", "VPDK"]
    assert wb["Thống kê - sau kế hoạch"]["A1"].value == "Tình hình giải quyết hồ sơ (sau khi áp dụng kế hoạch xử lý)"
    assert header_merges(wb["Thống kê - sổ giấy"]) == OFFICIAL_MERGES
    findings = wb["Danh sách vấn đề"]
    assert findings.max_row == 1 + sum(len(s.items) for s in data.findings) == 9
    assert values(findings, 9) == ["Sổ bị nhảy số thứ tự", "register_numbering_gap", "Cảnh báo", None, None, None,
                                   "Sổ: so-theo-doi-ho-so-2021.xlsx; from: 17; to: 18",
                                   "so-theo-doi-ho-so-2021.xlsx", "Q1", 19]
    vpdk = wb["VPDK"]
    assert values(vpdk, 1) == WL_VI
    assert [values(vpdk, r)[0] for r in range(2, vpdk.max_row + 1)] == [it.dossier_code for it in data.worklists[1].items]
    assert values(vpdk, 2) == ["000.00.53.H48-210201-0001", "Trần Thị Bình", None,
                               "Đã trả kết quả trên giấy, chưa kết thúc trên hệ thống",
                               "Kết thúc hồ sơ, ngày trả kết quả 02/03/2021",
                               "so-theo-doi-ho-so-2021.xlsx, trang Q1, dòng 101"]
    assert values(vpdk, 3)[2:5] == ["S05 – Thẩm định hồ sơ",
                                    "Bước hiện tại không còn trong quy trình; Hồ sơ đứng yên quá lâu",
                                    "Chuyển sang bước S06 (phiên bản 3)"]
    assert vpdk.freeze_panes == "A2" and vpdk.auto_filter.ref == "A1:F5" and vpdk.print_title_rows == "$1:$1"


def test_worklists_in_english(tmp_path: Path) -> None:
    write_report_xlsx(sample_report(), "en", tmp_path / "r.xlsx")
    wb = load(tmp_path / "r.xlsx")

    assert wb.sheetnames[:5] == ["Statistics - system", "Statistics - after plan", "Statistics - paper",
                                 "Findings", "Open dossiers by step"]
    assert values(wb["DODAC"], 1) == WL_EN
    assert values(wb["VPDK"], 2)[3:] == ["Returned on paper, still open in the system", "Close, returned on 2021-03-02",
                                         "so-theo-doi-ho-so-2021.xlsx, sheet Q1, row 101"]


def _with_worklists(data: ReportData, units: list[str]) -> ReportData:
    item = data.worklists[1].items[0]
    return replace(data, worklists=[Worklist(u, [replace(item, dossier_code=f"code-{i}")]) for i, u in enumerate(units)])


def test_unit_names_colliding_after_truncation_get_unique_valid_sheet_names(tmp_path: Path) -> None:
    long = "Văn phòng đăng ký đất đai chi nhánh huyện Bình Sơn"
    units = ["", f"{long} [A]", f"{long} [B]", "Phòng TN/MT: tổ 1*?", "vpdk", "VPDK", "Danh sách vấn đề"]
    write_report_xlsx(_with_worklists(sample_report(), units), "vi", tmp_path / "r.xlsx")
    wb = load(tmp_path / "r.xlsx")

    names = wb.sheetnames[5:]
    assert len(names) == len(units)
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\") for n in names)
    assert len({n.casefold() for n in wb.sheetnames}) == len(wb.sheetnames)
    assert names[0] == t("wl.no_unit", "vi")
    assert names[1] == long[:31] and names[2] == long[:27].rstrip() + " (2)"
    assert names[3:] == ["Phòng TN_MT_ tổ 1__", "vpdk", "VPDK (2)", "Danh sách vấn đề (2)"]
    # the sheet is told apart by its rows and its printed page header, which keeps the whole name
    assert [wb[n]["A2"].value for n in names] == [f"code-{i}" for i in range(len(units))]
    assert wb[names[2]].oddHeader.center.text == f"{long} [B]"


def test_text_that_looks_like_a_formula_stays_text(tmp_path: Path) -> None:
    data = sample_report()
    item = replace(data.worklists[0].items[0], applicant='=HYPERLINK("http://x","y")')
    data = replace(data, worklists=[Worklist("DODAC", [item])])
    write_report_xlsx(data, "vi", tmp_path / "r.xlsx")
    cell = load(tmp_path / "r.xlsx")["DODAC"]["B2"]

    assert cell.value == '=HYPERLINK("http://x","y")' and cell.data_type == "s"
    assert read_csv(report_csv(data, "vi")["worklists.csv"])[0]["Người nộp"] == '\'=HYPERLINK("http://x","y")'


def test_same_run_gives_byte_identical_workbooks_stamped_with_the_run_start(tmp_path: Path) -> None:
    data = sample_report()
    write_report_xlsx(data, "vi", tmp_path / "a.xlsx")
    write_report_xlsx(sample_report(), "vi", tmp_path / "b.xlsx")

    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.xlsx") as z:
        core = z.read("docProps/core.xml").decode()
        assert {i.date_time for i in z.infolist()} == {(2021, 7, 1, 8, 0, 0)}
    assert core.count(">2021-07-01T08:00:00Z</dcterms:") == 2  # created and modified: no wall clock


def test_stats_workbook_is_stamped_with_its_as_of_date(tmp_path: Path) -> None:
    write_stats_xlsx([stats_table()], "vi", tmp_path / "a.xlsx")
    write_stats_xlsx([stats_table()], "vi", tmp_path / "b.xlsx")

    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.xlsx") as z:
        assert {i.date_time for i in z.infolist()} == {(2021, 6, 30, 0, 0, 0)}
        assert ">2021-06-30T00:00:00Z</dcterms:modified>" in z.read("docProps/core.xml").decode()


# ------------------------------------------------------------------------------ CSV


def test_report_csv_files_are_utf8_with_a_bom_and_list_every_finding() -> None:
    data = sample_report()
    files = report_csv(data, "vi")

    assert list(files) == ["findings.csv", "worklists.csv", "stats.csv", "census.csv"]
    for text in files.values():
        assert text.startswith("\ufeff") and not text.startswith("\ufeff\ufeff")
        assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    rows = read_csv(files["findings.csv"])
    assert [(r["Mã loại"], r["Mã hồ sơ"]) for r in rows] == [
        (s.kind, it.dossier_code or "") for s in data.findings for it in s.items]
    assert rows[0]["Loại vấn đề"] == "Đã trả kết quả trên giấy, chưa kết thúc trên hệ thống"
    assert (rows[0]["Tệp sổ"], rows[0]["Trang"], rows[0]["Dòng"]) == ("so-theo-doi-ho-so-2021.xlsx", "Q1", "101")


def test_worklists_csv_has_every_item_with_its_unit_and_evidence() -> None:
    data = sample_report()
    rows = read_csv(report_csv(data, "en")["worklists.csv"])

    assert list(rows[0]) == ["Unit", *WL_EN]
    assert [(r["Unit"], r["Dossier code"]) for r in rows] == [
        (wl.unit, it.dossier_code) for wl in data.worklists for it in wl.items]
    assert rows[1]["Evidence"] == "so-theo-doi-ho-so-2021.xlsx, sheet Q1, row 101"
    assert rows[1]["Proposed action"] == "Close, returned on 2021-03-02"


def test_stats_csv_numbers_are_plain_integers_with_a_view_column() -> None:
    data = sample_report()
    rows = read_csv(report_csv(data, "vi")["stats.csv"])

    assert len(rows) == 3 * len(data.stats_before.rows)
    assert [r["Bảng số liệu"] for r in rows[::5]] == [
        "theo dữ liệu hệ thống", "sau khi áp dụng kế hoạch xử lý", "theo sổ theo dõi hồ sơ giấy"]
    total = rows[3]
    assert (total["Lĩnh vực"], total["STT"]) == ("Tổng", "")
    assert total["(1) Tổng số hồ sơ nhận giải quyết"] == "13447"  # not 13.447
    assert rows[8]["(7) Đúng hạn"] == "3107"
    one = read_csv(stats_csv(data.stats_before, "en"))
    assert list(one[0])[:5] == ["View", "Convention", "No.", "Field", "(1) Total received"]
    assert one[3]["(15) Of which stuck in the system"] == "80"


def test_census_csv_has_a_column_per_reason_in_finding_order() -> None:
    rows = read_csv(report_csv(sample_report(), "en")["census.csv"])

    assert list(rows[0])[6:] == ["Workflow version not in the catalog", "Current step no longer in its version",
                                 "Stalled"]
    assert [(r["Version"], r["Open"], r["Stalled"]) for r in rows] == [("2", "40", "40"), ("3", "120", "0"),
                                                                         ("", "7", "0")]


def test_dates_follow_the_language() -> None:
    data = sample_report()
    it = data.worklists[1].items[0]
    item = WorkItem(it.dossier_code, None, None, None, ["stalled"], Action("close", {"date": "2021-12-31"}, None, False),
                    Evidence("so.xlsx", None, 7))
    data = replace(data, worklists=[Worklist("", [item])])

    vi, en = (read_csv(report_csv(data, lang)["worklists.csv"])[0] for lang in ("vi", "en"))
    assert (vi["Đơn vị"], vi["Đề xuất xử lý"], vi["Căn cứ"]) == (
        "(Chưa xác định đơn vị)", "Kết thúc hồ sơ, ngày trả kết quả 31/12/2021 (chưa xác nhận)", "so.xlsx, dòng 7")
    assert (en["Proposed action"], en["Evidence"]) == ("Close, returned on 2021-12-31 (unconfirmed)", "so.xlsx, row 7")
