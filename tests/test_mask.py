"""Masking of personal data (reconcile.util.mask): examples and a property test."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.util import mask


def test_names_keep_initials() -> None:
    assert mask.name("Nguyễn Văn An") == "N. V. A."
    assert mask.name("  Đặng  Thị Ngọc Lệ ") == "Đ. T. N. L."
    assert mask.name(None) is None


def test_numbers_keep_last_three_digits() -> None:
    assert mask.phone("0986542566") == "*******566"
    assert mask.phone("0986 542 566") == "*******566"
    assert mask.id_number("079201001234") == "*********234"  # CCCD
    assert mask.id_number("212345678") == "******678"  # CMND


def test_addresses_keep_the_administrative_part() -> None:
    assert mask.address("thôn Long Yên, xã Bình Đông, huyện Bình Sơn") == "***, huyện Bình Sơn"
    assert mask.address("thôn Phước Hòa, xã Bình Trị, huyện Bình Sơn, 0932964220") == "***, huyện Bình Sơn"
    assert mask.address("tổ dân phố 8, thị trấn Châu Ổ") == "***, thị trấn Châu Ổ"
    assert mask.address("12 Lê Lợi") == "***"
    assert mask.address("xã Bình Đông") == "***"


def test_free_text_masks_long_numbers_but_not_dossier_codes() -> None:
    text = "gọi 0986 542 566, CCCD 079201001234, hồ sơ 000.00.53.H48-210616-0091 ngày 2021-06-30"
    assert mask.text(text) == ("gọi *******566, CCCD *********234, hồ sơ 000.00.53.H48-210616-0091 "
                               "ngày 2021-06-30")


def test_record_masks_personal_fields_only_when_enabled() -> None:
    row = {"applicant": "Phan Văn Tâm", "phone": "0912870802", "unit": "VPDKDD"}
    assert mask.record(row) == {"applicant": "P. V. T.", "phone": "*******802", "unit": "VPDKDD"}
    assert mask.record(row, enabled=False) == row


def test_a_note_loses_the_records_own_name_and_address_parts() -> None:
    row = {"applicant": "Hoàng Thị Mai", "address": "số 17 ngõ Bí Ẩn, thôn An Điềm, xã Bình Hòa, huyện Bình Sơn",
           "note": "Ủy quyền: HOÀNG THỊ MAI (số 17 ngõ Bí Ẩn), ĐT 0912 345 678; huyện Bình Sơn trả tại xã"}
    assert mask.record(row)["note"] == "Ủy quyền: H. T. M. (***), ĐT *******678; huyện Bình Sơn trả tại xã"
    assert mask.record({"applicant": "Mai", "note": "Maison, Mai đến nhận"})["note"] == "Maison, M. đến nhận"
    assert mask.record({"note": "Hoàng Thị Mai"})["note"] == "Hoàng Thị Mai"  # no record of the name: kept


WORD = st.text(alphabet=st.sampled_from("aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"
                                        "AĂÂBCDĐEÊGHIKLMNOÔƠPQRSTUƯVXY"), min_size=2, max_size=8)
NAME = st.lists(WORD, min_size=2, max_size=5).map(" ".join)
NUMBER = st.text(alphabet="0123456789", min_size=9, max_size=14)
SEP_NUMBER = st.lists(st.text(alphabet="0123456789", min_size=1, max_size=4), min_size=3, max_size=5).map(" ".join)
FILLER = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(name=NAME, numbers=st.lists(st.one_of(NUMBER, SEP_NUMBER), max_size=3), filler=st.lists(FILLER, max_size=4))
def test_no_long_digit_run_and_no_full_name_survives(name: str, numbers: list[str], filler: list[str]) -> None:
    masked_name = mask.name(name)
    assert masked_name is not None and name not in masked_name
    free = " ".join(filler + numbers + [f"{name}, {numbers[0] if numbers else ''}"])
    for out in (mask.text(free), mask.phone(free), mask.address(f"{name}, {free}"), masked_name):
        assert out is not None
        assert not re.search(r"\d{9,}", out), out
    assert name not in (mask.address(f"{name}, xã Bình Đông") or "")
    for n in numbers:
        if sum(c.isdigit() for c in n) >= 9:
            assert re.sub(r"\D", "", n) not in re.sub(r"[^\d*]", "", mask.text(f"x {n} y") or "")
