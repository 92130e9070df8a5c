"""Scalar normalisation rules and the working-day calendar, on the cases registers really contain."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pyarrow as pa
import pytest

from reconcile.util.calendar import add_working_days, is_working_day, working_days_between
from reconcile.util.normalize import fold, looks_like_code, normalize_code, parse_date, sql_date


@pytest.mark.parametrize("raw, expected", [
    (" 000.00.53.h48 – 220921-0099 ", "000.00.53.H48-220921-0099"),
    ("000.00.53.H48\u00a0-220921-0099", "000.00.53.H48-220921-0099"),
    ("", None),
    (None, None),
])
def test_codes_lose_spaces_case_and_odd_dashes(raw: str | None, expected: str | None) -> None:
    assert normalize_code(raw) == expected


def test_code_shapes_canonical_variant_and_not_a_code() -> None:
    assert looks_like_code("000.00.53.H48-220921-0099")
    assert looks_like_code("000.00.53.H48-20220921-0000099")  # 8-digit date, 7-digit sequence
    assert not looks_like_code("BS-2021-TAM-01")


@pytest.mark.parametrize("raw, expected", [
    ("05/01/2021", date(2021, 1, 5)),
    ("5/1/2021", date(2021, 1, 5)),
    ("05-01-2021", date(2021, 1, 5)),
    ("2021-01-05", date(2021, 1, 5)),
    ("2021-01-05 08:30:00", date(2021, 1, 5)),
    ("44201", date(2021, 1, 5)),  # an Excel serial typed as text
    (44201, date(2021, 1, 5)),
    (datetime(2021, 1, 5, 8, 30), date(2021, 1, 5)),
    ("", None),
])
def test_dates_in_every_form_registers_hold(raw: object, expected: date | None) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["31/02/2021", "2021-13-01", "ngày 5 tháng 1"])
def test_impossible_dates_are_refused_by_both_rules(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_date(raw)
    con = duckdb.connect()
    con.register("t", pa.table({"v": [raw]}))
    assert con.execute(f"SELECT {sql_date('v')} FROM t").fetchone() == (None,)


def test_headers_fold_diacritics_case_and_spacing() -> None:
    assert fold("Mã hồ sơ") == fold("MÃ HỒ  SƠ") == fold("Ma\u0303 ho\u0302\u0300 so\u031b") == "mahoso"
    assert fold("Địa chỉ, số điện thoại") == "diachisodienthoai"


def test_working_days_skip_weekends_and_lunar_new_year() -> None:
    # Tết 2021: 10–16 February were public holidays; 13–14 were a weekend anyway.
    assert not is_working_day(date(2021, 2, 12))
    assert add_working_days(date(2021, 2, 9), 1) == date(2021, 2, 17)
    assert working_days_between(date(2021, 2, 9), date(2021, 2, 17)) == 1
    assert working_days_between(date(2021, 2, 17), date(2021, 2, 9)) == -1
    assert add_working_days(date(2021, 4, 29), 2) == date(2021, 5, 5)  # 30/4, 1/5 and 3/5 (observed)
