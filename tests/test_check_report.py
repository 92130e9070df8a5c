"""check-report: published statistics tables against their identities, sub-totals, remainders and prose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import openpyxl
import pytest

from conftest import CASES
from helpers import invoke
from reconcile.stats.checkreport import check_report, parse_count

ROOT = Path(__file__).parent.parent
SEED_TABLE = ROOT / "examples" / "seed" / "phu-luc-binh-son-2021-h1.tsv"
SEED_TEXT = ROOT / "examples" / "seed" / "bao-cao-binh-son-2021-h1.txt"
CR = CASES / "check_report"
SEED_VIOLATIONS = [
    {"row": "13 Lĩnh vực đất đai", "identity": "tổng số = đã giải quyết + đang giải quyết + rút + trả lại",
     "left": 13230, "right": 13184, "difference": 46},
    {"row": "Tổng lĩnh vực đất đai − (13)",
     "identity": "tổng số = đã giải quyết + đang giải quyết + rút + trả lại",
     "left": 1399, "right": 1445, "difference": -46},
]


def run_json(*args: str, expect: int) -> dict[str, Any]:
    result = invoke("check-report", *args, "--format", "json", expect=expect)
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def bad(*args: str) -> str:
    result = invoke("check-report", *args, expect=2)
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


def tsv(path: Path, rows: Sequence[Sequence[Any]]) -> str:
    path.write_text("".join("\t".join("" if v is None else str(v) for v in r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def triples(doc: dict[str, Any]) -> list[tuple[str, str, int, int, int]]:
    return [(v["row"], v["identity"], v["left"], v["right"], v["difference"]) for v in doc["violations"]]


# ------------------------------------------------------------------------------ the seed appendix


def test_seed_appendix_breaks_row_13_and_the_land_remainder() -> None:
    doc = run_json(str(SEED_TABLE), expect=1)
    assert doc["layout"] == "extended" and doc["rows"] == 8
    assert doc["violations"] == SEED_VIOLATIONS
    assert doc["layout_from"] == "no header; 12 number columns"
    assert "STT 1–7 not in the table, so each sub-total is checked through its remainder (the sub-total minus the " \
           "rows shown)" in doc["notes"]
    assert set(doc) >= {"layout", "rows", "violations"}


def test_seed_report_prose_is_consistent_with_the_appendix() -> None:
    doc = run_json(str(SEED_TABLE), "--text", str(SEED_TEXT), expect=1)
    assert doc["violations"] == SEED_VIOLATIONS  # the prose adds none
    confirmed = "\n".join(doc["confirmed"])
    for pct, ratio in (("78,4", "9278 / 11836 = 78,39"), ("21,6", "2558 / 11836 = 21,61"),
                       ("69,9", "1498 / 2143 = 69,90"), ("30,1", "645 / 2143 = 30,10")):
        assert f'line 37: {pct}% = ' in confirmed and f"of \"Tổng lĩnh vực đất đai\" ({ratio}%)" in confirmed
    assert 'line 37: 650 hồ sơ = rút + trả lại of "Tổng lĩnh vực đất đai"' in doc["confirmed"]
    assert 'line 33: 15.256 hồ sơ = tổng số of "Tổng"' in doc["confirmed"]
    assert 'line 35: 100% = đúng hạn / đã giải quyết of "Tổng − Tổng lĩnh vực đất đai" (627 / 627 = 100,00%)' \
        in doc["confirmed"]
    assert doc["unchecked"] == ["line 33: 6.281 hồ sơ: not in the table", "line 35: 129 hồ sơ: not in the table"]


def test_seed_report_file_serves_as_table_and_prose() -> None:
    doc = run_json(str(SEED_TEXT), "--text", str(SEED_TEXT), expect=1)
    assert doc["violations"] == SEED_VIOLATIONS
    assert "table: lines 63–70, numbers in columns 3–14" in doc["notes"]
    assert len(doc["confirmed"]) == 20


def test_terminal_table_shows_rows_identities_and_differences() -> None:
    out = invoke("check-report", str(SEED_TABLE), expect=1).stdout
    assert "layout extended (no header; 12 number columns), 8 rows" in out
    assert "13 Lĩnh vực đất đai" in out and "Tổng lĩnh vực đất đai − (13)" in out
    assert "+46" in out and "-46" in out
    assert out.rstrip().endswith("2 broken identities")


# --------------------------------------------------------------------------------- clean tables


def biểu_06_workbook(path: Path, data: list[list[Any]]) -> str:
    """The official form: a title, a three-row header of merged group cells, a numbering row."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Biểu 06"
    ws["A1"] = "TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH"
    ws.merge_cells("A1:M1")
    cells = {"A3": "STT", "B3": "Lĩnh vực giải quyết", "C3": "Số hồ sơ nhận giải quyết", "G3": "Kết quả giải quyết",
             "C4": "Tổng số", "D4": "Trong kỳ", "F4": "Từ kỳ trước", "G4": "Số hồ sơ đã giải quyết",
             "K4": "Số hồ sơ đang giải quyết", "D5": "Trực tuyến", "E5": "Trực tiếp, dịch vụ bưu chính",
             "G5": "Tổng số", "H5": "Trả trước hạn", "I5": "Trả đúng thời hạn", "J5": "Trả quá hạn", "K5": "Tổng số",
             "L5": "Trong hạn", "M5": "Quá hạn"}
    for ref, text in cells.items():
        ws[ref] = text
    for rng in ("A3:A5", "B3:B5", "C3:F3", "G3:M3", "C4:C5", "D4:E4", "F4:F5", "G4:J4", "K4:M4"):
        ws.merge_cells(rng)
    ws.append(["A", "B"] + [f"({i})" for i in range(1, 12)])
    for row in data:
        ws.append(row)
    wb.save(path)
    return str(path)


OFFICIAL_ROWS = [
    [1, "Lĩnh vực đất đai", 1200, 200, 900, 100, 1000, 300, 600, 100, 200, 150, 50],
    [2, "Lĩnh vực hộ tịch", 350, 50, 280, 20, 340, 40, 290, 10, 10, 10, 0],
    [3, "Lĩnh vực xây dựng", 15256, 1256, 13000, 1000, 14000, 2000, 11000, 1000, 1256, 1000, 256],
]


def with_total(rows: list[list[Any]], label: str = "Tổng cộng") -> list[list[Any]]:
    return [None, label] + [sum(r[i] for r in rows) for i in range(2, len(rows[0]))]  # type: ignore[list-item]


def test_clean_official_workbook_with_merged_header_passes(tmp_path: Path) -> None:
    book = biểu_06_workbook(tmp_path / "bieu06.xlsx", OFFICIAL_ROWS + [with_total(OFFICIAL_ROWS)])
    doc = run_json(book, expect=0)
    assert (doc["layout"], doc["rows"], doc["violations"]) == ("official", 4, [])
    assert doc["layout_from"] == "header rows 3–5 recognised"
    assert "STT runs 1–3 without gaps: sub-totals are checked against the sum of their rows" in doc["notes"]
    out = invoke("check-report", book, expect=0).stdout
    assert out.rstrip().endswith("all identities hold")


def test_merged_total_label_over_stt_and_label_is_the_grand_total(tmp_path: Path) -> None:
    total = with_total(OFFICIAL_ROWS)
    total[2] += 1  # tổng số one too many: the sum and two identities break
    book = biểu_06_workbook(tmp_path / "bieu06.xlsx", OFFICIAL_ROWS + [["Tổng cộng", None] + total[2:]])
    wb = openpyxl.load_workbook(book)
    wb["Biểu 06"].merge_cells("A10:B10")
    wb.save(book)
    assert triples(run_json(book, expect=1)) == [
        ("Tổng cộng", "tổng số = trực tuyến + trực tiếp/bưu chính + kỳ trước chuyển qua", 16807, 16806, 1),
        ("Tổng cộng", "tổng số = đã giải quyết + đang giải quyết", 16807, 16806, 1),
        ("Tổng cộng", "tổng số: Tổng cộng = (1) + (2) + (3)", 16807, 16806, 1),
    ]


def test_semicolon_csv_with_bom_thousands_dots_title_blank_lines_and_footer_passes() -> None:
    doc = run_json(str(CR / "official-semicolon.csv"), expect=0)
    assert (doc["layout"], doc["rows"], doc["violations"]) == ("official", 4, [])
    assert doc["layout_from"] == "header lines 2–3 recognised"
    assert doc["notes"][0] == "table: lines 5–9, numbers in columns 3–13"


def test_comma_csv_with_thousands_dots_and_extended_header_passes() -> None:
    doc = run_json(str(CR / "extended-thousands.csv"), expect=0)
    assert (doc["layout"], doc["rows"], doc["violations"]) == ("extended", 3, [])
    assert doc["layout_from"] == "header line 1 recognised"


# ------------------------------------------------------------------------------- planted breaks

OK_OFFICIAL = [100, 10, 85, 5, 90, 20, 60, 10, 10, 6, 4]
OK_EXTENDED = [100, 10, 5, 85, 80, 70, 10, 10, 6, 4, 3, 7]


def changed(base: list[int], **at: int) -> list[int]:
    out = list(base)
    for i, v in at.items():
        out[int(i[1:]) - 1] = v
    return out


@pytest.mark.parametrize("values, expected", [
    (OK_OFFICIAL, []),
    (changed(OK_OFFICIAL, c3=80), [("tổng số = trực tuyến + trực tiếp/bưu chính + kỳ trước chuyển qua", 100, 95)]),
    (changed(OK_OFFICIAL, c8=9), [("đã giải quyết = trước hạn + đúng hạn + trễ hạn", 90, 89)]),
    (changed(OK_OFFICIAL, c11=3), [("đang giải quyết = trong hạn + quá hạn", 10, 9)]),
    (changed(OK_OFFICIAL, c9=9, c10=5), [("tổng số = đã giải quyết + đang giải quyết", 100, 99)]),
    (changed(OK_OFFICIAL, c2=98, c3=0), [
        ("tổng số = trực tuyến + trực tiếp/bưu chính + kỳ trước chuyển qua", 100, 103),
        ("trực tuyến ≤ tổng số − kỳ trước chuyển qua", 98, 95)]),
])
def test_each_official_identity_is_checked(tmp_path: Path, values: list[int],
                                           expected: list[tuple[str, int, int]]) -> None:
    path = tsv(tmp_path / "t.tsv", [[1, "Lĩnh vực thử"] + values])
    doc = run_json(path, expect=1 if expected else 0)
    assert doc["layout"] == "official"
    assert triples(doc) == [("1 Lĩnh vực thử", i, a, b, a - b) for i, a, b in expected]


@pytest.mark.parametrize("values, expected", [
    (OK_EXTENDED, []),
    (changed(OK_EXTENDED, c4=84), [("tổng số = trực tuyến + kỳ trước chuyển qua + nhận trực tiếp", 100, 99)]),
    (changed(OK_EXTENDED, c7=12), [("đã giải quyết = đúng hạn + trễ hạn", 80, 82)]),
    (changed(OK_EXTENDED, c9=7), [("đang giải quyết = trong hạn + quá hạn", 10, 11)]),
    (changed(OK_EXTENDED, c12=6), [("tổng số = đã giải quyết + đang giải quyết + rút + trả lại", 100, 99)]),
])
def test_each_extended_identity_is_checked(tmp_path: Path, values: list[int],
                                           expected: list[tuple[str, int, int]]) -> None:
    doc = run_json(tsv(tmp_path / "t.tsv", [[1, "Lĩnh vực thử"] + values]), expect=1 if expected else 0)
    assert doc["layout"] == "extended"
    assert triples(doc) == [("1 Lĩnh vực thử", i, a, b, a - b) for i, a, b in expected]


EXT_ROWS = [
    [1, "Lĩnh vực hộ tịch", 350, 0, 20, 330, 340, 340, 0, 10, 10, 0, 0, 0],
    [2, "Lĩnh vực đất đai", 14629, 0, 1348, 13281, 11836, 9278, 2558, 2143, 1498, 645, 51, 599],
]


def test_sub_total_that_does_not_match_its_rows(tmp_path: Path) -> None:
    total = with_total(EXT_ROWS, "Tổng")
    total[2] += 10  # tổng số and nhận trực tiếp both 10 too many: the row's own identities still hold
    total[5] += 10
    total[12] += 10  # ...and rút, so that the last identity holds too
    doc = run_json(tsv(tmp_path / "t.tsv", EXT_ROWS + [total]), expect=1)
    assert triples(doc) == [
        ("Tổng", "tổng số: Tổng = (1) + (2)", 14989, 14979, 10),
        ("Tổng", "nhận trực tiếp: Tổng = (1) + (2)", 13621, 13611, 10),
        ("Tổng", "rút: Tổng = (1) + (2)", 61, 51, 10),
    ]


def test_group_sub_total_is_checked_against_the_rows_its_label_names(tmp_path: Path) -> None:
    rows = EXT_ROWS + [[3, "Lĩnh vực đất đai (cấp xã)", 10, 0, 0, 10, 10, 10, 0, 0, 0, 0, 0, 0]]
    group = with_total([EXT_ROWS[1]], "Tổng lĩnh vực đất đai")  # misses row 3
    doc = run_json(tsv(tmp_path / "t.tsv", rows + [group, with_total(rows, "Tổng")]), expect=1)
    assert {v[1].split(":")[0] for v in triples(doc)} == {"tổng số", "nhận trực tiếp", "đã giải quyết", "đúng hạn"}
    assert triples(doc)[0] == ("Tổng lĩnh vực đất đai", "tổng số: Tổng lĩnh vực đất đai = (2) + (3)", 14629, 14639,
                               -10)


def test_totals_above_or_below_their_rows_give_the_same_result(tmp_path: Path) -> None:
    total = with_total(EXT_ROWS, "Tổng cộng")
    total[9] -= 1  # đang giải quyết
    below = run_json(tsv(tmp_path / "below.tsv", EXT_ROWS + [total]), expect=1)
    above = run_json(tsv(tmp_path / "above.tsv", [total] + EXT_ROWS), expect=1)
    assert below["violations"] == above["violations"] != []
    assert [v["identity"] for v in below["violations"]] == [
        "đang giải quyết = trong hạn + quá hạn", "tổng số = đã giải quyết + đang giải quyết + rút + trả lại",
        "đang giải quyết: Tổng cộng = (1) + (2)"]


def test_negative_remainder_and_group_above_the_grand_total(tmp_path: Path) -> None:
    rows = [
        [5, "Lĩnh vực đất đai", 100, 0, 10, 90, 80, 70, 10, 8, 8, 0, 12, 0],
        [6, "Lĩnh vực hộ tịch", 30, 0, 2, 28, 30, 30, 0, 0, 0, 0, 0, 0],
        ["", "Tổng lĩnh vực đất đai", 150, 0, 15, 135, 130, 110, 20, 10, 9, 1, 10, 0],
        ["", "Tổng", 200, 0, 20, 180, 175, 160, 15, 12, 10, 2, 13, 0],
    ]
    doc = run_json(tsv(tmp_path / "t.tsv", rows), expect=1)
    assert triples(doc) == [
        ("Tổng lĩnh vực đất đai − (5)", "rút ≥ 0", -2, 0, -2),
        ("Tổng lĩnh vực đất đai", "trễ hạn: Tổng lĩnh vực đất đai ≤ Tổng", 20, 15, 5),
    ]
    assert "Tổng: its remainder is taken after Tổng lĩnh vực đất đai, (6)" in doc["notes"]


def test_remainder_breaking_an_identity_is_reported_under_the_grand_total(tmp_path: Path) -> None:
    rows = [[4, "Lĩnh vực hộ tịch", 30, 0, 2, 28, 30, 30, 0, 0, 0, 0, 0, 0],
            ["", "Tổng", 100, 0, 10, 90, 80, 75, 5, 0, 0, 0, 0, 0]]  # the rows not shown: 70 received, 50 resolved
    doc = run_json(tsv(tmp_path / "t.tsv", rows), expect=1)
    assert triples(doc) == [
        ("Tổng", "tổng số = đã giải quyết + đang giải quyết + rút + trả lại", 100, 80, 20),
        ("Tổng − (4)", "tổng số = đã giải quyết + đang giải quyết + rút + trả lại", 70, 50, 20),
    ]


# ------------------------------------------------------------------------------------ the prose


def test_wrong_percentage_in_the_prose_is_a_violation_in_tenths(tmp_path: Path) -> None:
    doc = run_json(str(CR / "extended-thousands.csv"), "--text", str(CR / "report-wrong-percent.txt"), expect=1)
    assert triples(doc) == [("2 Lĩnh vực đất đai",
                             "text line 1: 78,5% = đúng hạn / đã giải quyết (in tenths of a percent)", 785, 784, 1)]
    assert 'line 1: 21,6% = trễ hạn / đã giải quyết of "2 Lĩnh vực đất đai" (2558 / 11836 = 21,61%)' \
        in doc["confirmed"]
    assert doc["unchecked"] == ["line 2: 77 hồ sơ: not in the table", "line 2: 5%: its count 77 is not in the table",
                                'line 3: 98%: no count ("N hồ sơ") before it in the sentence']


@pytest.mark.parametrize("printed, ok", [("78,39", True), ("78,4", True), ("78", True), ("78,3", False),
                                          ("78,40", False), ("79", False)])
def test_percentage_holds_to_the_precision_it_is_printed_with(tmp_path: Path, printed: str, ok: bool) -> None:
    prose = tmp_path / "p.txt"
    prose.write_text(f"Lĩnh vực đất đai: đúng hạn là 9.278 hồ sơ chiếm {printed}%.\n", encoding="utf-8")
    doc = run_json(str(CR / "extended-thousands.csv"), "--text", str(prose), expect=0 if ok else 1)
    assert bool(doc["violations"]) is not ok


def test_prose_file_must_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "bao-cao.txt")
    assert bad(str(SEED_TABLE), "--text", missing) == f"error: {missing}: no such file."


# ------------------------------------------------------------------------------------ bad input


def test_unrecognised_header_names_what_was_found_and_expected(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("STT,Lĩnh vực," + ",".join(f"Cột {i}" for i in range(1, 13)) + "\n"
                    "1,Lĩnh vực đất đai," + ",".join(map(str, OK_EXTENDED)) + "\n", encoding="utf-8")
    found = " | ".join(f"Cột {i}" for i in range(1, 13))
    # Columns are read by meaning now: a header that names no measure is refused, never read by position.
    assert bad(str(path)) == (
        f"error: t.csv, line 1: header not recognised: no column names a measure; column 3 'Cột 1' is nearest to "
        f"'còn hạn'. Found: {found}. Expected header words such as tổng số, trực tuyến, kỳ trước, đã giải quyết, "
        "đúng hạn, trễ hạn, đang giải quyết, quá hạn (docs/statistics.md lists the vocabulary; case and accents do not "
        "matter). Hint: write the form's column labels, or delete the header rows to read the 11 or 12 columns of a "
        "preset by position.")


def test_non_numeric_cells_are_each_located(tmp_path: Path) -> None:
    rows = [[1, "Lĩnh vực thử"] + OK_EXTENDED, [2, "Lĩnh vực khác"] + changed(OK_EXTENDED, c3="12a", c5="4,5")]
    result = invoke("check-report", tsv(tmp_path / "t.tsv", rows), expect=2)
    assert result.stderr.splitlines() == [
        "error: t.tsv, line 2, column 5: '12a' is not a count (the column 'kỳ trước chuyển qua' of '2 Lĩnh vực "
        "khác'). Hint: counts are whole numbers (15.256 or 15256); \"-\" where none is given.",
        "error: t.tsv, line 2, column 7: '4,5' is not a count: a whole number has no decimals (\",\" is the decimal "
        "separator in Vietnamese) (the column 'đã giải quyết' of '2 Lĩnh vực khác'). Hint: counts are whole numbers "
        "(15.256 or 15256); \"-\" where none is given.",
    ]


def test_empty_or_dash_cell_is_not_given_never_zero(tmp_path: Path) -> None:
    # Issue 15: a dash or an empty cell is "not given". Before, an empty cell was refused and "-" read as 0.
    rows = [[1, "Lĩnh vực thử"] + changed(OK_EXTENDED, c5=""), [2, "Lĩnh vực khác"] + changed(OK_EXTENDED, c9="-")]
    doc = run_json(tsv(tmp_path / "t.tsv", rows), expect=0)
    assert "1 Lĩnh vực thử: đã giải quyết = đúng hạn + trễ hạn not checked (đã giải quyết not given)" \
        in doc["not_checked"]
    rows[1] = [2, "Lĩnh vực khác"] + changed(OK_EXTENDED, c9=11, c10="-")  # trong hạn 11 > đang giải quyết 10
    assert triples(run_json(tsv(tmp_path / "t.tsv", rows), expect=1)) == [(
        "2 Lĩnh vực khác", "đang giải quyết ≥ trong hạn (quá hạn not given)", 10, 11, -1)]


def test_comma_separator_is_read_when_the_file_says_so_and_refused_when_it_disagrees(tmp_path: Path) -> None:
    # Issue 15: the thousands separator is decided per file. One "15,256" and no "." grouping: 15256.
    rows = [list(r) for r in OFFICIAL_ROWS]
    rows[2][2] = "15,256"
    doc = run_json(biểu_06_workbook(tmp_path / "a.xlsx", rows), expect=0)
    assert 'numbers: "," separates thousands in this file (59,010 is 59010)' in doc["notes"]
    rows[0][2] = "1.200"  # both separators in one file: ambiguous, refused
    assert bad(biểu_06_workbook(tmp_path / "b.xlsx", rows)) == (
        "error: b.xlsx, sheet \"Biểu 06\": thousands separators disagree: '1.200' at cell C7 uses \".\" but "
        "'15,256' at cell C9 uses \",\". Expected one separator per file. Hint: write every count the same way "
        "(15.256 or 15256).")


def test_merged_cells_among_the_numbers_are_refused(tmp_path: Path) -> None:
    book = biểu_06_workbook(tmp_path / "b.xlsx", OFFICIAL_ROWS)
    wb = openpyxl.load_workbook(book)
    wb["Biểu 06"].merge_cells("L8:M8")
    wb.save(book)
    assert bad(book) == (
        'error: b.xlsx, sheet "Biểu 06", cells L8:M8: merged cells among the numbers. Expected one number per '
        "cell. Hint: unmerge them and write each column's number.")


def test_workbook_without_a_table_is_refused(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.title = "Ghi chú"
    wb.active.append(["Báo cáo 6 tháng đầu năm 2021"])
    wb.active.append(["Số liệu: xem phụ lục"])
    wb.save(tmp_path / "b.xlsx")
    assert bad(str(tmp_path / "b.xlsx")) == (
        "error: b.xlsx: no statistics table in any sheet ('Ghi chú'): no row holds two numbers or more. Expected rows "
        "of a label and its numbers. Hint: numbers pasted as one text cell or as a picture cannot be read: export the "
        "table as CSV or XLSX.")


def test_wrong_number_of_columns_is_refused(tmp_path: Path) -> None:
    path = tsv(tmp_path / "t.tsv", [[1, "Lĩnh vực thử"] + OK_EXTENDED[:10]] * 2)
    assert bad(path) == (
        "error: t.tsv, lines 1–2: no header, and 10 number columns (columns 3–12) fit no preset: expected 11 "
        "(official Biểu 06) or 12 (extended: withdrawn and returned apart). Hint: keep the table's header rows above "
        "the numbers so its columns are read by meaning.")
    assert bad(str(SEED_TABLE), "--layout", "official") == (
        "error: phu-luc-binh-son-2021-h1.tsv, lines 1–8: 12 number columns (columns 3–14); expected 11 for --layout "
        "official. Hint: --layout extended has 12; drop --layout to read the columns by their header.")


def test_numbered_row_without_numbers_is_refused_but_a_section_heading_is_skipped(tmp_path: Path) -> None:
    rows = [["I", "Cấp huyện"], [1, "Lĩnh vực thử"] + OK_EXTENDED, ["II", "Cấp xã"], [], [2, "Lĩnh vực khác"] + OK_EXTENDED]
    doc = run_json(tsv(tmp_path / "ok.tsv", rows), expect=0)
    assert "line 3 skipped: no numbers ('II Cấp xã')" in doc["notes"] and doc["rows"] == 2
    assert bad(tsv(tmp_path / "t.tsv", rows[1:2] + [[3, "Lĩnh vực trống"]] + rows[4:])) == (
        "error: t.tsv, line 2: row '3 Lĩnh vực trống' has no numbers. Expected 12 numbers, a dash where none is "
        "given. Hint: write the numbers the source gives, \"-\" where it gives none.")


def test_table_is_found_on_a_later_sheet_and_a_ratio_column_is_ignored(tmp_path: Path) -> None:
    book = biểu_06_workbook(tmp_path / "b.xlsx", [r + ["78,4"] for r in OFFICIAL_ROWS])
    wb = openpyxl.load_workbook(book)
    wb.create_sheet("Ghi chú", 0).append(["Số liệu: xem biểu 06"])
    wb.save(book)
    doc = run_json(book, expect=0)
    # A column without a header is named and left out (issue 15), not taken for the form's.
    assert doc["layout"] == "official"
    assert doc["notes"][:2] == ["table: rows 7–9, numbers in columns C–N", "column N '(empty)' left out: no header"]
    assert bad(book, "--sheet", "Ghi chú").startswith('error: b.xlsx, sheet "Ghi chú": no statistics table')
    assert bad(book, "--sheet", "Biểu 6") == "error: b.xlsx: sheet 'Biểu 6' not found. Sheets: 'Ghi chú', 'Biểu 06'."


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    assert bad(str(tmp_path / "x.csv")) == f"error: {tmp_path / 'x.csv'}: no such file."
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    assert bad(str(tmp_path / "x.pdf")) == (
        f"error: {tmp_path / 'x.pdf'}: unsupported table format '.pdf'. Expected .csv, .tsv, .txt or .xlsx. "
        "Hint: save a .xls or .ods workbook as .xlsx.")


# ---------------------------------------------------------------------------------------- units


@pytest.mark.parametrize("cell, value", [
    ("15.256", 15256), ("15256", 15256), (" 1 234 ", 1234), ("-", None), (None, None), ("", None), (12.0, 12), (7, 7),
    ("1.234*", 1234), ("1.234¹", 1234),
])
def test_parse_count_reads_vietnamese_counts(cell: Any, value: int | None) -> None:
    assert parse_count(cell) == value


@pytest.mark.parametrize("cell", ["15,256", "15.25", "1.2345", "12a", "-3", -3, 1.5, True])
def test_parse_count_refuses_what_is_not_a_count(cell: Any) -> None:
    with pytest.raises(ValueError):
        parse_count(cell)


def test_library_call_matches_the_cli() -> None:
    result = check_report(SEED_TABLE, text=SEED_TEXT)
    assert result.to_dict()["violations"] == SEED_VIOLATIONS
    assert [v.difference for v in result.violations] == [46, -46]
