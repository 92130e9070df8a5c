"""`reconcile notify` on the small simulated district: phones planted in every form the office writes them
(old 11-digit numbers, +84/84 forms, a lost leading 0, invalid, landline, missing, only on paper), audited,
planned and applied for real; then the gateway CSV, what is listed apart, opt-out, dry run, no notice twice,
masking, and template errors. Number normalisation and segment counts as properties."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import phonenumbers
import pytest
import sqlalchemy as sa
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from helpers import invoke, store_rows
from reconcile.audit.commands import audit
from reconcile.audit.inputs import AuditInputs
from reconcile.demo.simulate import simulate
from reconcile.fix.apply import apply_plan
from reconcile.fix.commands import plan, write_plan
from reconcile.notify.notices import SKIPPED_COLUMNS, SMS_COLUMNS
from reconcile.notify.phones import OLD_PREFIXES, Phone, Unreachable, in_cell, in_text, normalise
from reconcile.notify.sms import cost
from reconcile.store import SCHEMA_VERSION, meta_table, notice, open_store
from reconcile.util.normalize import without_diacritics

PAPER_ONLY = ("UBND xã Bình Tân Phú", "UBND xã Bình Hải")


# ------------------------------------------------------------------------------ phone numbers

def test_the_written_forms_of_one_number_give_one_e164() -> None:
    forms = ["0912345678", "0912 345 678", "0912.345.678", "091-234-5678", "(091) 234 5678", "+84 912 345 678",
             "+84912345678", "84912345678", "0084 912 345 678", "912345678", "０９１２３４５６７８"]
    assert {normalise(f) for f in forms} == {Phone("+84912345678", "0912345678")}


@pytest.mark.parametrize("old, new", [("01623456789", "0323456789"), ("0169 999 3339", "0399993339"),
                                      ("0120.111.2222", "0701112222"), ("0128 7878 888", "0787878888"),
                                      ("0129 8222 888", "0828222888"), ("0127 000 1111", "0810001111"),
                                      ("+84 186 123 4567", "0561234567"), ("841881234567", "0581234567"),
                                      ("0199 595 9999", "0595959999")])
def test_an_old_11_digit_number_becomes_its_10_digit_number(old: str, new: str) -> None:
    found = normalise(old)
    assert isinstance(found, Phone) and found.national == new and found.e164 == "+84" + new[1:]
    assert found.converted_from == "0" + "".join(c for c in old if c.isdigit()).removeprefix("84").lstrip("0")


def test_the_old_prefix_table_is_the_2018_plan_and_every_new_prefix_is_a_mobile_range() -> None:
    assert len(OLD_PREFIXES) == 21 and all(len(o) == 4 and o.startswith("01") for o in OLD_PREFIXES)
    assert len(set(OLD_PREFIXES.values())) == 21  # no two old prefixes share a new one
    for old, new in OLD_PREFIXES.items():
        n = phonenumbers.parse(new + "1234567", "VN")
        assert phonenumbers.is_valid_number(n), new
        assert phonenumbers.number_type(n) == phonenumbers.PhoneNumberType.MOBILE, new


@pytest.mark.parametrize("raw, reason", [
    (None, "missing"), ("", "missing"), ("   ", "missing"), ("0905 123", "invalid"), ("09051234567", "invalid"),
    ("không có", "invalid"), ("0112345678", "invalid"), ("0255 3822 123", "not_mobile"),
    ("1900 1234 56", "not_mobile"), ("+1 202 555 0123", "not_vietnamese"), ("0033 1 23 45 67 89", "not_vietnamese"),
])
def test_what_cannot_receive_an_sms_says_why(raw: str | None, reason: str) -> None:
    found = normalise(raw)
    assert isinstance(found, Unreachable) and found.reason == reason


MOBILE = st.sampled_from(["32", "33", "34", "35", "36", "37", "38", "39", "56", "58", "59", "70", "76", "77", "78",
                          "79", "81", "82", "83", "84", "85", "86", "88", "89", "90", "91", "93", "94", "96", "97",
                          "98"])


@settings(deadline=None)  # no timing in a unit test
@given(MOBILE, st.integers(0, 9_999_999), st.sampled_from(["", " ", ".", "-"]),
       st.sampled_from(["0", "+84", "84", "0084", "+84 ", ""]))
def test_normalising_is_independent_of_the_form_and_idempotent(prefix: str, rest: int, sep: str, lead: str) -> None:
    subscriber = f"{rest:07d}"
    national = f"0{prefix}{subscriber}"
    written = f"{lead}{prefix}{sep}{subscriber[:3]}{sep}{subscriber[3:]}"
    assume(isinstance(normalise(national), Phone))  # not every range of a prefix is allocated (0890000000)
    found = normalise(written)
    assert found == Phone("+84" + national[1:], national)
    assert normalise(found.national) == normalise(found.e164) == found


@settings(deadline=None)
@given(st.sampled_from(sorted(OLD_PREFIXES)), st.integers(0, 9_999_999), st.sampled_from(["", " ", "."]))
def test_every_old_number_maps_by_the_table_keeping_its_last_7_digits(old: str, rest: int, sep: str) -> None:
    assume(isinstance(normalise(OLD_PREFIXES[old] + f"{rest:07d}"), Phone))
    found = normalise(f"{old}{sep}{rest:07d}")
    assert isinstance(found, Phone)
    assert found.national == OLD_PREFIXES[old] + f"{rest:07d}" and found.converted_from == f"{old}{rest:07d}"


def test_the_phone_in_a_register_address_cell_is_found() -> None:
    assert in_text("thôn Long Yên, xã Bình Đông, huyện Bình Sơn, 0900.844.036") == Phone("+84900844036",
                                                                                        "0900844036")
    assert in_text("số 12, thôn 3, xã Bình Hòa, 01662 345 678") == Phone("+84362345678", "0362345678",
                                                                          "01662345678")
    assert in_text("thôn Long Yên, xã Bình Đông") == Unreachable("missing", "no phone number")
    assert isinstance(in_text("thôn 5, xã Bình Hòa, 0255 3822 123"), Unreachable)


def test_a_phone_cell_with_several_numbers_or_words_gives_its_first_mobile() -> None:
    first = Phone("+84912345678", "0912345678")
    assert in_cell("0912 345 678 / 0987 654 321") == first
    assert in_cell("0255 3822 123 - 0912.345.678") == first
    assert in_cell("0912345678 (con trai)") == first
    assert in_cell("0912 345") == Unreachable("invalid", "7 digits; a mobile number has 10 (0 and 9 digits)")


# ------------------------------------------------------------------------------ segments

@pytest.mark.parametrize("text, encoding, segments", [
    ("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("a" * 306, "GSM-7", 2), ("a" * 307, "GSM-7", 3),
    ("€" * 80, "GSM-7", 1), ("€" * 81, "GSM-7", 2),  # an extension character costs two septets
    ("à é è ù ì ò" * 10, "GSM-7", 1),  # the few accented letters GSM-7 has
    ("ư" * 70, "UCS-2", 1), ("ư" * 71, "UCS-2", 2), ("ư" * 134, "UCS-2", 2), ("ư" * 135, "UCS-2", 3),
    ("a" * 159 + "ạ", "UCS-2", 3),  # one Vietnamese letter makes the whole message UCS-2
])
def test_segments_follow_gsm7_and_ucs2_limits(text: str, encoding: str, segments: int) -> None:
    assert (cost(text).encoding, cost(text).segments) == (encoding, segments)


def test_decomposed_vietnamese_is_counted_as_sent_and_stripped_to_gsm7() -> None:
    import unicodedata

    text = unicodedata.normalize("NFD", "Hồ sơ đã trả kết quả")
    assert cost(text).units == len("Hồ sơ đã trả kết quả")
    plain = without_diacritics("Hồ sơ Đăng ký biến động quyền sử dụng đất")
    assert plain == "Ho so Dang ky bien dong quyen su dung dat" and cost(plain).encoding == "GSM-7"


# ------------------------------------------------------------------------------ the district

# The phone each planted dossier gets, by its index among the system's codes: (system phone, register phone).
def planted(i: int) -> tuple[str | None, str | None]:
    sub = f"{i:07d}"
    return [(f"0162{sub}", None), (f"+84 91{sub[0]} {sub[1:4]} {sub[4:]}", None), (f"84 98{sub}", None),
            (f"97{sub}", None), ("0905 12", ""), (f"0255 38{sub[2:]}", ""), (None, f"0977.{sub[1:4]}.{sub[4:]}"),
            (None, "")][i % 8]


def expected(i: int) -> tuple[str, str, str | None]:
    """(E.164 or skip reason, source, converted_from) of the planted dossier i."""
    sub = f"{i:07d}"
    return [(f"+8432{sub}", "system", f"0162{sub}"), (f"+8491{sub}", "system", None),
            (f"+8498{sub}", "system", None), (f"+8497{sub}", "system", None), ("invalid", "system", None),
            ("not_mobile", "system", None), (f"+84977{sub[1:]}", "register", None), ("missing", "register", None),
            ][i % 8]


# The forms the dossiers a plan closes or moves get first: sent after conversion, invalid, from the register,
# a landline, then the others.
FIRST_FORMS = (0, 4, 6, 5, 1, 7, 2, 3)


def _plant(folder: Path, first: list[str]) -> dict[str, int]:
    """Every system dossier gets planted(i)'s phones: the vendor's column and the register's address cell
    (None: left out; "": the cell keeps its address without a phone); the codes `first` get FIRST_FORMS, so
    that they cover every form. Returns each code's index."""
    con = sqlite3.connect(folder / "system" / "binh-son-igate.sqlite")
    rest = [c for c, in con.execute("SELECT DISTINCT MA_HOSO FROM HS_HOSO WHERE MA_HOSO IS NOT NULL ORDER BY 1")]
    index = {c: FIRST_FORMS[k % 8] + 8 * (k // 8) for k, c in enumerate(first)}
    free = (i for i in range(len(rest) + 8 * len(first)) if i not in set(index.values()))
    index.update({c: next(free) for c in rest if c not in index})
    with con:
        con.executemany("UPDATE HS_HOSO SET SO_DIENTHOAI = ? WHERE MA_HOSO = ?",
                        [(planted(i)[0], c) for c, i in index.items()])
    con.close()
    path = folder / "register" / "so-theo-doi-ho-so-2021.xlsx"
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        header = next(r for r in ws.iter_rows(max_row=6) if any(c.value == "Mã hồ sơ" for c in r))
        col = {c.value: c.column for c in header if isinstance(c.value, str)}
        for row in range(header[0].row + 1, ws.max_row + 1):
            i = index.get(ws.cell(row, col["Mã hồ sơ"]).value)
            cell = ws.cell(row, col["Địa chỉ, số điện thoại"])
            if i is None or not isinstance(cell.value, str):
                continue
            address = cell.value.rsplit(",", 1)[0]  # the simulation writes "address, phone"
            paper = planted(i)[1]
            cell.value = f"{address}, {paper}" if paper else address
    wb.save(path)
    return index


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """The small district with planted phones, audited, planned and applied: (folder, each code's index)."""
    folder = tmp_path_factory.mktemp("notify") / "district"
    simulate(folder, scale=0.05)
    inputs = AuditInputs(register=(str(folder / "register" / "so-theo-doi-ho-so-2021.xlsx"),),
                         system=f"sqlite:///{folder / 'system' / 'binh-son-igate.sqlite'}",
                         workflows=str(folder / "workflows"), as_of=date(2021, 6, 30),
                         mapping=str(folder / "system" / "mapping.yaml"), paper_only_units=PAPER_ONLY)
    scratch = str(folder / "scratch.duckdb")  # which dossiers the plan closes or moves (phones do not matter)
    audit(inputs, scratch)
    told = sorted({a.dossier_code for a in plan(scratch).actions if a.action in ("close", "migrate")})
    assert len(told) >= 4
    codes = _plant(folder, told)
    shutil.copytree(folder, folder.parent / "planted", ignore=shutil.ignore_patterns("*.duckdb*"))
    store = str(folder / "store.duckdb")
    audit(inputs, store)
    write_plan(plan(store), folder / "plan.yaml", store)
    assert apply_plan(folder / "plan.yaml", store, yes=True).batches == (1,)
    return folder, codes


@pytest.fixture
def work(applied: tuple[Path, dict[str, int]], tmp_path: Path) -> tuple[Path, str, dict[str, int]]:
    """A private copy of the applied store (notify writes to it): (folder for outputs, store, codes)."""
    folder, codes = applied
    shutil.copy(folder / "store.duckdb", tmp_path / "store.duckdb")
    shutil.copy(folder / "plan.yaml", tmp_path / "plan.yaml")
    return tmp_path, str(tmp_path / "store.duckdb"), codes


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _notices(store: str) -> list[Any]:
    return store_rows(store, sa.select(notice).order_by(notice.c.batch_id, notice.c.seq))


def _told(store: str) -> dict[str, str]:
    """Code -> kind of what the applied batch closed or moved on, read from the change log independently."""
    rows = store_rows(store, sa.text("SELECT DISTINCT dossier_code, action FROM change WHERE batch_id = 1 AND "
                                     "action IN ('close', 'migrate')"))
    return {code: {"close": "closed", "migrate": "moved"}[action] for code, action in rows}


def test_notify_lists_each_closed_or_moved_dossier_once_per_phone_and_the_rest_apart(
        work: tuple[Path, str, dict[str, int]]) -> None:
    folder, store, index = work
    told = _told(store)
    assert {"closed", "moved"} <= set(told.values())
    result = invoke("notify", "--store", store, "--out", str(folder / "out"), expect=0)
    sms, skipped = _rows(folder / "out" / "sms-1.csv"), _rows(folder / "out" / "skipped-1.csv")
    assert list(sms[0]) == list(SMS_COLUMNS) if sms else True
    assert (folder / "out" / "skipped-1.csv").read_text(encoding="utf-8").splitlines()[0] == ",".join(SKIPPED_COLUMNS)
    want_sent = {c: expected(index[c]) for c in told if expected(index[c])[0].startswith("+")}
    want_apart = {c: expected(index[c])[:2] for c in told if not expected(index[c])[0].startswith("+")}
    assert want_sent and want_apart, "the plan's dossiers must cover sent and unreachable phones"
    assert {r["dossier_code"]: (r["phone"], r["phone_source"], r["converted_from"] or None) for r in sms} == want_sent
    assert len(sms) == len({(r["phone"], r["dossier_code"]) for r in sms})
    assert {r["dossier_code"]: (r["reason"], r["phone_source"]) for r in skipped} == want_apart
    for r in sms:
        assert r["phone_national"] == "0" + r["phone"][3:] and r["kind"] == told[r["dossier_code"]]
        assert r["dossier_code"] in r["message"]
        c = cost(r["message"])
        assert (int(r["segments"]), r["encoding"], int(r["characters"])) == (c.segments, c.encoding, c.units)
        assert r["encoding"] == "UCS-2"  # the default templates keep the diacritics
        if r["kind"] == "closed":
            assert r["state"] == "returned" and "đã trả kết quả ngày " in r["message"]
    for r in skipped:  # the unreachable number is shown masked: only the gateway CSV holds numbers in clear
        assert r["phone"] in ("", "*****12") or set(r["phone"][:-3]) == {"*"}
    # the summary counts what the files hold, and recorded exactly the listed notices
    lines = result.stdout.splitlines()
    assert lines[0] == f"notices of apply batch 1 (audit run 1): {len(told)} dossiers"
    assert f"messages: {len(sms)} to {len({r['phone'] for r in sms})} phones, " \
           f"{sum(int(r['segments']) for r in sms)} SMS segments (UCS-2 {len(sms)}; with diacritics)" in result.stdout
    assert lines[-1] == (f"wrote {folder / 'out' / 'sms-1.csv'} ({len(sms)} messages) and "
                         f"{folder / 'out' / 'skipped-1.csv'} ({len(skipped)} not sent); recorded as notice batch 1")
    recorded = _notices(store)
    assert [(n.dossier_code, n.kind, n.segments) for n in recorded] == [
        (r["dossier_code"], r["kind"], int(r["segments"])) for r in sms]
    # phone numbers never on stdout, stderr or in the store's notice rows in clear
    everything = result.stdout + result.stderr + json.dumps([list(map(str, n)) for n in recorded])
    assert not [r["phone"] for r in sms if r["phone"][3:] in everything or r["phone_national"] in everything]


def test_a_second_run_lists_nothing_twice(work: tuple[Path, str, dict[str, int]]) -> None:
    folder, store, _ = work
    invoke("notify", "--store", store, "--out", str(folder / "out"), expect=0)
    first = _rows(folder / "out" / "sms-1.csv")
    again = invoke("notify", "--store", store, "--out", str(folder / "out"), expect=0).stdout
    apart = _rows(folder / "out" / "skipped-1.csv")
    assert f"already notified {len(first)}" in again and "messages: 0 to 0 phones" in again
    # the numbers still unusable are listed apart again (they still need fixing); nothing is sent twice
    assert _rows(folder / "out" / "sms-2.csv") == []
    again_apart = _rows(folder / "out" / "skipped-2.csv")
    assert [r for r in again_apart if r["reason"] != "already_notified"] == apart
    assert sorted((r["dossier_code"], r["phone"]) for r in again_apart if r["reason"] == "already_notified") == \
        sorted((r["dossier_code"], "*******" + r["phone_national"][-3:]) for r in first)
    assert len(_notices(store)) == len(first)


def test_a_dry_run_writes_and_records_nothing(work: tuple[Path, str, dict[str, int]]) -> None:
    folder, store, _ = work
    result = invoke("notify", "--store", store, "--out", str(folder / "out"), "--dry-run", expect=0)
    assert "dry run: nothing written or recorded. First messages (phones masked):" in result.stdout
    assert not (folder / "out").exists() and _notices(store) == []
    shown = [line for line in result.stdout.splitlines() if line.startswith("  *")]
    assert shown and all(line.split()[0].startswith("*******") for line in shown)
    real = invoke("notify", "--store", store, "--out", str(folder / "out"), expect=0)
    assert "recorded as notice batch 1" in real.stdout  # the dry run took nothing away


def test_opted_out_numbers_in_any_form_are_listed_apart(work: tuple[Path, str, dict[str, int]]) -> None:
    folder, store, _ = work
    shutil.copy(store, folder / "scratch.duckdb")  # everyone's messages, from a copy of the store
    invoke("notify", "--store", str(folder / "scratch.duckdb"), "--out", str(folder / "all"), expect=0)
    everyone = _rows(folder / "all" / "sms-1.csv")
    # two numbers of the list, written as people write them: an old one in its 11-digit form, one with +84
    old = next(r for r in everyone if r["converted_from"])
    other = next(r for r in everyone if not r["converted_from"])
    opt = folder / "opt-out.txt"
    opt.write_text(f"# asked at the counter\n{old['converted_from'][:4]} {old['converted_from'][4:]}\n\n"
                   f"+84 {other['phone'][3:]}  # by phone\n", encoding="utf-8")
    result = invoke("notify", "--store", store, "--out", str(folder / "out"), "--opt-out", str(opt), expect=0)
    sms, skipped = _rows(folder / "out" / "sms-1.csv"), _rows(folder / "out" / "skipped-1.csv")
    apart = {old["dossier_code"], other["dossier_code"]}
    assert {r["dossier_code"] for r in sms} == {r["dossier_code"] for r in everyone} - apart
    assert {r["dossier_code"] for r in skipped if r["reason"] == "opted_out"} == apart
    assert "opted out 2" in result.stdout


def test_overdue_dossiers_without_diacritics_are_single_gsm7_messages(work: tuple[Path, str, dict[str, int]]) -> None:
    folder, store, index = work
    s = open_store(store, create=False)
    with s.connect() as conn:  # independently: open and waiting on the office, past the due date at the audit date
        want = {c for c, in conn.execute(sa.text(
            "SELECT DISTINCT dossier_code FROM dossier WHERE run_id = 1 AND status IN ('submitted', 'received', "
            "'in_progress') AND coalesce(due_at_revised, due_at) < DATE '2021-06-30'"))}
    s.engine.dispose()
    invoke("notify", "--store", store, "--overdue", "--no-diacritics", "--out", str(folder / "out"), expect=0)
    sms, skipped = _rows(folder / "out" / "sms-1.csv"), _rows(folder / "out" / "skipped-1.csv")
    assert want and {r["dossier_code"] for r in sms} | {r["dossier_code"] for r in skipped} == want
    assert {r["dossier_code"] for r in sms} == {c for c in want if expected(index[c])[0].startswith("+")}
    assert all(r["kind"] == "overdue" and r["encoding"] == "GSM-7" and r["message"].isascii() for r in sms)
    assert all("da qua han hen tra " in r["message"] for r in sms)


def test_an_undone_batch_is_not_notified(work: tuple[Path, str, dict[str, int]]) -> None:
    from reconcile.fix.undo import undo

    folder, store, _ = work
    undo(1, store, yes=True)
    result = invoke("notify", "--store", store, "--out", str(folder / "out"), expect=0)
    assert result.stdout.splitlines()[0] == "notices of apply batches: no committed apply batch in force: 0 dossiers"
    bad = invoke("notify", "--store", store, "--batch", "1", "--batch", "2", "--out", str(folder / "out"), expect=2)
    assert bad.stderr.splitlines() == [
        "error: --batch 1: undone since. Hint: `reconcile history` lists the batches; notices are for committed "
        "apply batches not undone.",
        "error: --batch 2: an undo batch. Hint: `reconcile history` lists the batches; notices are for committed "
        "apply batches not undone."]
    assert not (folder / "out").exists()


def test_template_errors_exit_2_with_file_line_and_nothing_written(work: tuple[Path, str, dict[str, int]]) -> None:
    folder, store, _ = work
    bad = folder / "templates.yaml"
    bad.write_text('office: "Bộ phận Một cửa"\nmessages:\n  closed:\n    text: "Hồ sơ {code} của {applicant}"\n'
                   '  moved: {text: "Hồ sơ {code} {unit:>10}"}\n  overdue:\n    text: "Hồ sơ {code"\n'
                   "diacritics: yes please\n", encoding="utf-8")
    result = invoke("notify", "--store", store, "--templates", str(bad), "--out", str(folder / "out"), expect=2)
    known = "{code}, {procedure}, {state}, {date}, {due}, {step}, {unit}, {agency}, {office}"
    assert result.stderr.splitlines() == [
        f"error: {bad}:8:13: diacritics: 'yes please' is not of type 'boolean'. Hint: true or false (a YAML boolean)."]
    bad.write_text(bad.read_text(encoding="utf-8").replace("yes please", "false"), encoding="utf-8")
    result = invoke("notify", "--store", store, "--templates", str(bad), "--out", str(folder / "out"), expect=2)
    assert result.stderr.splitlines() == [
        f"error: {bad}:4:11: messages.closed.text: unknown placeholder {{applicant}}. Hint: placeholders are {known}.",
        f"error: {bad}:5:17: messages.moved.text: {{unit}} takes no format or conversion. Hint: write {{unit}}.",
        f"error: {bad}:7:11: messages.overdue.text: expected '}}' before end of string. Hint: write a brace as {{{{ "
        f"or }}}}; placeholders are {known}."]
    opt = folder / "opt-out.txt"
    opt.write_text("0912 345 678\nchị Lan 0905\n", encoding="utf-8")
    result = invoke("notify", "--store", store, "--opt-out", str(opt), "--out", str(folder / "out"), expect=2)
    assert result.stderr.splitlines() == [
        f"error: {opt}:2: not a phone number (letters or other signs) (*905). Hint: one phone number per line, e.g. "
        "0912 345 678 or +84912345678; # starts a comment."]
    assert not (folder / "out").exists() and _notices(store) == []


def test_a_templates_file_of_the_office_replaces_the_default(work: tuple[Path, str, dict[str, int]]) -> None:
    folder, store, _ = work
    mine = folder / "templates.yaml"
    mine.write_text("diacritics: false\noffice: Bộ phận Một cửa huyện Bình Sơn\nmessages:\n"
                    '  closed: {text: "HS {code}: {state} {date}. {office}"}\n'
                    '  moved: {text: "HS {code}: {state}, {step} ({unit})", plain: "HS {code} dang giai quyet"}\n'
                    '  overdue: {text: "HS {code} qua han {due}"}\nstates: {returned: "đã trả kết quả"}\n',
                    encoding="utf-8")
    invoke("notify", "--store", store, "--templates", str(mine), "--out", str(folder / "out"), expect=0)
    sms = _rows(folder / "out" / "sms-1.csv")
    closed = [r for r in sms if r["kind"] == "closed"]
    moved = [r for r in sms if r["kind"] == "moved"]
    assert closed and moved
    assert all(r["message"].startswith(f"HS {r['dossier_code']}: da tra ket qua ")
               and r["message"].endswith(". Bo phan Mot cua huyen Binh Son") for r in closed)
    assert all(r["message"] == f"HS {r['dossier_code']} dang giai quyet" and r["segments"] == "1" for r in moved)


def test_a_store_of_schema_11_gets_the_notice_table(work: tuple[Path, str, dict[str, int]]) -> None:
    _, store, _ = work
    s = open_store(store, create=False)
    with s.begin() as conn:
        notice.drop(conn)
        conn.execute(sa.update(meta_table).where(meta_table.c.key == "schema_version").values(value="11"))
    s.engine.dispose()
    assert _notices(store) == []  # opening upgrades it: the table is there, empty
    s = open_store(store, create=False)
    with s.connect() as conn:
        assert conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar() \
            == str(SCHEMA_VERSION) == "13"
    s.engine.dispose()


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_notify_on_a_server_store_lists_once(applied: tuple[Path, dict[str, int]], tmp_path: Path, engine: str,
                                             request: pytest.FixtureRequest) -> None:
    store = request.getfixturevalue("pg_url" if engine == "postgresql" else "mariadb_url")
    folder = tmp_path / "district"
    shutil.copytree(applied[0].parent / "planted", folder)
    audit(AuditInputs(register=(str(folder / "register" / "so-theo-doi-ho-so-2021.xlsx"),),
                      system=f"sqlite:///{folder / 'system' / 'binh-son-igate.sqlite'}",
                      workflows=str(folder / "workflows"), as_of=date(2021, 6, 30),
                      mapping=str(folder / "system" / "mapping.yaml"), paper_only_units=PAPER_ONLY), store)
    write_plan(plan(store), folder / "plan.yaml", store)
    apply_plan(folder / "plan.yaml", store, yes=True)
    invoke("notify", "--store", store, "--out", str(tmp_path / "out"), expect=0)
    duck = tmp_path / "duck.duckdb"
    shutil.copy(applied[0] / "store.duckdb", duck)
    invoke("notify", "--store", str(duck), "--out", str(tmp_path / "duck"), expect=0)
    assert (tmp_path / "out" / "sms-1.csv").read_bytes() == (tmp_path / "duck" / "sms-1.csv").read_bytes()
    again = invoke("notify", "--store", store, "--out", str(tmp_path / "out"), expect=0).stdout
    assert "messages: 0 to 0 phones" in again
    assert [n.batch_id for n in _notices(store)] == [1] * len(_rows(tmp_path / "out" / "sms-1.csv"))


def test_without_the_recorded_plan_the_applied_plan_file_gives_the_values(work: tuple[Path, str, dict[str, int]]
                                                                         ) -> None:
    from reconcile.store import change_batch, plan_action, plan_file

    folder, store, _ = work
    shutil.copy(store, folder / "recorded.duckdb")
    invoke("notify", "--store", str(folder / "recorded.duckdb"), "--out", str(folder / "recorded"), expect=0)
    plan_path = folder / "plan.yaml"
    s = open_store(store, create=False)
    with s.begin() as conn:  # as if the plan had been written by hand: only the file tells the values
        conn.execute(sa.delete(plan_action))
        conn.execute(sa.delete(plan_file))
        conn.execute(sa.update(change_batch).values(plan=str(plan_path)))
    s.engine.dispose()
    text = plan_path.read_text(encoding="utf-8")
    plan_path.write_text(text + "# reviewed again\n", encoding="utf-8")
    bad = invoke("notify", "--store", store, "--out", str(folder / "out"), expect=2)
    assert bad.stderr.splitlines() == [
        f"error: batch 1: its plan file {plan_path} is gone or changed since apply, and the store has no record of "
        "it. Hint: put the applied plan file back at that path."]
    assert not (folder / "out").exists()
    plan_path.write_text(text, encoding="utf-8")
    invoke("notify", "--store", store, "--out", str(folder / "out"), expect=0)
    assert (folder / "out" / "sms-1.csv").read_bytes() == (folder / "recorded" / "sms-1.csv").read_bytes()
    assert (folder / "out" / "skipped-1.csv").read_bytes() == (folder / "recorded" / "skipped-1.csv").read_bytes()


def test_notices_listed_by_another_run_meanwhile_are_refused_whole(work: tuple[Path, str, dict[str, int]]) -> None:
    from reconcile.errors import Refused
    from reconcile.notify import notices as nt

    folder, store, _ = work
    read = nt.notify(store, nt.NotifyRequest(out=str(folder / "mine"), dry_run=True))  # read, then ...
    invoke("notify", "--store", store, "--out", str(folder / "theirs"), expect=0)  # ... another run lists them
    with pytest.raises(Refused, match=r"^\d+ of these notices were listed by another notify run meanwhile"):
        nt._write_and_record(open_store(store, create=False), read, nt.NotifyRequest(out=str(folder / "mine")))
    assert list((folder / "mine").iterdir()) == [] and {n.batch_id for n in _notices(store)} == {1}
