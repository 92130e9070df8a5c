"""Vendor tickets on the demo district: one per (procedure, version, cause), every escalated dossier in
exactly one, Markdown/CSV/JSON in agreement, personal data masked unless --unmask, bad --out refused."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from helpers import invoke

from reconcile.demo.commands import demo
from reconcile.fix import reasons
from reconcile.fix.commands import plan
from reconcile.util import i18n
from reconcile.fix.apply import apply_plan
from reconcile.fix.plan import Plan
from reconcile.util.csvtext import BOM
from reconcile.store import dossier, open_store, register_entry
from reconcile.fix.tickets import build_tickets, render_files, tickets
from reconcile.fix.undo import undo


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo district, with its last apply undone so the vendor database holds the audited state
    again (the dry run then has statements to show)."""
    out = tmp_path_factory.mktemp("tickets") / "demo"
    demo(out)
    store = str(out / "inputs" / "reconcile.duckdb")
    fixes = json.loads((out / "fixes.json").read_text(encoding="utf-8"))
    for batch in reversed(fixes["apply_again"]["batches"]):
        undo(batch, store, yes=True, actor="test")
    read_only = out / "mapping-read-only.yaml"
    read_only.write_text((out / "inputs" / "system" / "mapping.yaml").read_text(encoding="utf-8")
                         .replace("writable: true", "writable: false"), encoding="utf-8")
    written = out / "tickets"
    tickets(store, written)
    return {"out": out, "store": store, "plan": plan(store), "tickets": written,
            "read_only": str(read_only)}


def personal(store: str, codes: set[str] | None = None) -> dict[str, set[str]]:
    """Applicant names, phones and addresses of the latest run, from the system and the register."""
    s = open_store(store, create=False)
    found: dict[str, set[str]] = {"applicant": set(), "phone": set(), "address": set()}
    try:
        with s.connect() as conn:
            run = s.latest_run_id(conn)
            for table, cols in ((dossier, ("applicant", "phone", "address")), (register_entry, ("applicant", "address"))):
                stmt = sa.select(table.c.dossier_code, *[table.c[c] for c in cols]).where(table.c.run_id == run)
                for row in conn.execute(stmt).mappings():
                    if codes is None or row["dossier_code"] in codes:
                        for c in cols:
                            if row[c]:
                                found[c].add(row[c])
    finally:
        s.engine.dispose()
    return found


def read_all(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()))


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "tickets.json").read_text(encoding="utf-8"))


def test_one_ticket_per_group(district: dict[str, Any]) -> None:
    doc = load(district["tickets"])
    keys = [(t["procedure"], t["version"], t["cause"]) for t in doc["items"]]
    assert len(keys) == len(set(keys))
    for t in doc["items"]:
        for d in t["dossiers"]:
            assert (d["system"]["workflow_key"], d["system"]["workflow_version"]) == (t["procedure"], t["version"])
            assert t["cause"] in d["findings"]
    by_cause = {(t["procedure"], t["version"], t["cause"]): len(t["dossiers"]) for t in doc["items"]}
    assert by_cause == {("1.004199.000.00.00.H48", 2, "unit_without_staff"): 6,
                        ("1.004199.000.00.00.H48", 3, "unknown_version"): 2,
                        ("1.004227.000.00.00.H48", 3, "dead_end_step"): 8,
                        ("1.004227.000.00.00.H48", 4, "unknown_version"): 5}
    requests = {t["cause"]: t["request"] for t in doc["items"]}
    assert "Deploy the missing version 4 of 1.004227.000.00.00.H48" in \
        next(t["request"] for t in doc["items"] if t["version"] == 4)
    assert "Add an outgoing flow to step S03B" in requests["dead_end_step"]
    assert "Activate or add an account in unit DODAC" in requests["unit_without_staff"]
    # The demo's source is writable: the office applies the planned fixes, no ticket for them.
    assert doc["tickets"]["system"]["writable"] is True
    assert all(not t["sql"] for t in doc["items"])


def test_every_escalated_dossier_is_in_exactly_one_ticket(district: dict[str, Any]) -> None:
    plan: Plan = district["plan"]
    escalated = sorted(a.dossier_code for a in plan.actions if a.action == "escalate")
    ticketed = sorted(d["dossier_code"] for t in load(district["tickets"])["items"] for d in t["dossiers"])
    assert escalated and ticketed == escalated


def test_markdown_csv_and_json_agree(district: dict[str, Any]) -> None:
    folder = district["tickets"]
    doc = load(folder)
    pairs = {(t["id"], d["dossier_code"]) for t in doc["items"] for d in t["dossiers"]}
    rows = list(csv.DictReader(io.StringIO((folder / "tickets.csv").read_text(encoding="utf-8").removeprefix(BOM))))
    assert len(rows) == len(pairs) and {(r["ticket"], r["dossier_code"]) for r in rows} == pairs
    index = (folder / "index.md").read_text(encoding="utf-8")
    files = {p.name for p in folder.iterdir()}
    assert files == {"index.md", "tickets.csv", "tickets.json", *(t["file"] for t in doc["items"])}
    for t in doc["items"]:
        assert f"]({t['file']})" in index
        text = (folder / t["file"]).read_text(encoding="utf-8")
        assert text.startswith(f"# {t['id']}: {t['title']}\n") and t["request"] in text
        for d in t["dossiers"]:
            row = next(r for r in rows if r["ticket"] == t["id"] and r["dossier_code"] == d["dossier_code"])
            assert row["cause"] == t["cause"] and row["action"] == d["action"]
            assert row["system_applicant"] == d["system"]["applicant"] and row["system_phone"] == d["system"]["phone"]
            assert f"| {d['dossier_code']} |" in text and d["system"]["applicant"] in text
            reg = d["register"][0]
            assert row["register_file"] == reg["file"] and row["register_row"] == str(reg["row"])
            assert f"{reg['file']}, {reg['sheet']}, row {reg['row']}" in text


def test_no_personal_data_unmasked_and_unmask_shows_it(district: dict[str, Any], tmp_path: Path) -> None:
    text = read_all(district["tickets"])
    everyone = personal(district["store"])
    leaks = [v for values in everyone.values() for v in values if v in text]
    assert leaks == []
    codes = {d["dossier_code"] for t in load(district["tickets"])["items"] for d in t["dossiers"]}
    mine = personal(district["store"], codes)
    assert all(mine.values())
    out = tmp_path / "internal"
    result = invoke("tickets", "--store", district["store"], "--out", str(out), "--unmask", expect=0)
    assert "NOT MASKED" in result.stdout
    shown = read_all(out)
    assert all(v in shown for values in mine.values() for v in values)
    assert load(out)["tickets"]["masked"] is False


def test_deterministic_and_replaces_an_earlier_bundle(district: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "t"
    invoke("tickets", "--store", district["store"], "--out", str(out), expect=0)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    invoke("tickets", "--store", district["store"], "--out", str(out), expect=0)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no temporary folder left behind


def test_bad_out_is_one_line_exit_2_and_nothing_written(district: dict[str, Any], tmp_path: Path) -> None:
    a_file = tmp_path / "tickets"
    a_file.write_text("not a folder", encoding="utf-8")
    result = invoke("tickets", "--store", district["store"], "--out", str(a_file), expect=2)
    assert result.stderr.count("\n") == 1 and "is a file, not a folder" in result.stderr and "Hint" in result.stderr
    assert "Traceback" not in result.stderr
    assert a_file.read_text(encoding="utf-8") == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tickets"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine", encoding="utf-8")
    result = invoke("tickets", "--store", district["store"], "--out", str(other), expect=2)
    assert result.stderr.count("\n") == 1 and sorted(p.name for p in other.iterdir()) == ["keep.txt"]


def test_a_source_that_is_not_writable_gets_the_planned_fixes_with_their_sql(district: dict[str, Any]) -> None:
    plan: Plan = district["plan"]
    bundle = build_tickets(district["store"], mapping_path=district["read_only"])
    assert bundle.system["writable"] is False and bundle.masked
    fixes = sorted(a.dossier_code for a in plan.actions if a.action in ("migrate", "reassign", "close") and a.confirmed)
    planned = sorted(d.dossier_code for t in bundle.tickets if t.cause.startswith("planned_") for d in t.dossiers)
    assert fixes and planned == fixes
    escalated = sorted(a.dossier_code for a in plan.actions if a.action == "escalate")
    assert sorted(d.dossier_code for t in bundle.tickets if not t.cause.startswith("planned_")
                  for d in t.dossiers) == escalated
    # The statements are those of apply's dry run, dossier by dossier.
    plan_file = district["out"] / "plan-check.yaml"
    plan_file.write_text(yaml.safe_dump(plan.to_dict(), allow_unicode=True, sort_keys=False, width=120),
                         encoding="utf-8")
    dry = apply_plan(plan_file, district["store"], yes=False, mapping_path=district["read_only"])
    expected = {o.dossier_code: o.statements for o in dry.outcomes if o.state == "would_write"}
    got = {d.dossier_code: d.sql for t in bundle.tickets for d in t.dossiers if d.sql}
    assert got == expected and len(got) == len(fixes)
    for t in bundle.tickets:
        if t.cause.startswith("planned_"):
            assert t.sql.startswith("BEGIN;\n") and t.sql.endswith("COMMIT;\n")
            assert all(s in t.sql for d in t.dossiers for s in d.sql)
    files = render_files(bundle)
    text = "\n".join(files.values())
    assert [v for values in personal(district["store"]).values() for v in values if v in text] == []


# English sentences of every cause's paragraphs (today's texts: `--lang en` keeps them).
ENGLISH = ("which the catalog export does not hold", "Deploy the missing version", "which version",
           "no migration rule or later version", "Restore the step(s)", "from which no path leads",
           "Add an outgoing flow", "Then the dossiers can move on", "which has no active account",
           "Activate or add an account", "with no active colleague", "The plan fixes", "Run the SQL below",
           "Set the planned values", "Look into these dossiers", "What is wrong", "What we ask",
           "Evidence per dossier", "not on the register", "personal data", "Vendor tickets", "dry run:",
           "planned values:",
           # the plan's reasons (plan.reason.*)
           "on paper (", "in the system", "is inactive;", "no rule or default fixes", "pairs with it",
           "no longer leads to the end", "is superseded", "by rule")


def test_lang_vi_bundle_is_vietnamese_and_still_masked(district: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "vi"
    invoke("tickets", "--store", district["store"], "--out", str(out), "--lang", "vi",
           "--mapping", district["read_only"], expect=0)
    doc = load(out)
    assert doc["tickets"]["lang"] == "vi"
    # JSON keeps the machine keys and codes of the English bundle.
    en = build_tickets(district["store"], mapping_path=district["read_only"])
    assert [(t["id"], t["file"], t["cause"], [d["dossier_code"] for d in t["dossiers"]]) for t in doc["items"]] \
        == [(t.id, t.file, t.cause, [d.dossier_code for d in t.dossiers]) for t in en.tickets]
    assert {t["cause"] for t in doc["items"]} >= {"unit_without_staff", "unknown_version", "dead_end_step",
                                                    "planned_migrate", "planned_reassign", "planned_close"}
    titles = {t["cause"]: t["title"] for t in doc["items"]}
    assert titles["unit_without_staff"] == ("1.004199.000.00.00.H48 phiên bản 2: đơn vị DODAC không có tài khoản "
                                            "nào đang hoạt động (6 hồ sơ)")
    requests = {t["cause"]: t["request"] for t in doc["items"]}
    assert requests["dead_end_step"].startswith("Đề nghị bổ sung luồng chuyển tiếp cho bước S03A")
    assert requests["unit_without_staff"] == ("Đề nghị kích hoạt hoặc bổ sung tài khoản cho đơn vị DODAC và giao "
                                              "các hồ sơ này cho tài khoản đó.")
    index = (out / "index.md").read_text(encoding="utf-8")
    assert index.startswith("# Phiếu yêu cầu gửi nhà cung cấp: lần đối soát ")
    assert "số liệu tại ngày 30/06/2021" in index and "| Phiếu | Thủ tục | Phiên bản | Nguyên nhân |" in index
    ticket = next(t for t in doc["items"] if t["cause"] == "dead_end_step")
    text = (out / ticket["file"]).read_text(encoding="utf-8")
    assert text.startswith(f"# {ticket['id']}: {ticket['title']}\n")
    assert "## Mô tả vấn đề" in text and "## Đề nghị" in text and "## Danh sách hồ sơ" in text
    assert "| 000.00.53.H48-210525-0116 | đang xử lý | S03B |" in text and "| 25/05/2021 | 08/06/2021 |" in text
    assert "Quý II, dòng 3872" in text and "Nguyên nhân: Bước không đi tiếp được (`dead_end_step`)" in text
    header = (out / "tickets.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith(BOM + "Phiếu,Mã thủ tục,Phiên bản,Nguyên nhân,Mã hồ sơ,")
    everything = read_all(out)
    assert [s for s in ENGLISH if s in everything] == []
    assert [k for k, v in i18n.catalog().items() if k.startswith("tk.") and not (v.get("vi") and v.get("en"))] == []
    assert [v for values in personal(district["store"]).values() for v in values if v in everything] == []


def test_lang_en_is_byte_identical_to_the_default(district: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "en"
    invoke("tickets", "--store", district["store"], "--out", str(out), "--lang", "en", expect=0)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == \
        {p.name: p.read_bytes() for p in district["tickets"].iterdir()}
    assert "lang" not in load(out)["tickets"]


def bundle_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_plan_file_unedited_gives_the_runs_bundle_and_an_edit_shows(district: dict[str, Any], tmp_path: Path) -> None:
    plan: Plan = district["plan"]
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(plan.to_yaml(), encoding="utf-8")
    for mapping in ((), ("--mapping", district["read_only"])):  # escalations only; with the planned fixes' SQL
        built, from_file = tmp_path / "built", tmp_path / "from-file"
        invoke("tickets", "--store", district["store"], "--out", str(built), *mapping, expect=0)
        invoke("tickets", "--store", district["store"], "--out", str(from_file), "--plan", str(plan_file), *mapping,
               expect=0)
        assert bundle_bytes(from_file) == bundle_bytes(built)
    # The reviewer drops one escalation: that dossier is in no ticket any more, the others stay.
    doc = yaml.safe_load(plan_file.read_text(encoding="utf-8"))
    dropped = next(a["dossier_code"] for a in doc["actions"] if a["action"] == "escalate")
    doc["actions"] = [a for a in doc["actions"] if a["dossier_code"] != dropped]
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out = tmp_path / "edited"
    invoke("tickets", "--store", district["store"], "--out", str(out), "--plan", str(edited), expect=0)
    ticketed = sorted(d["dossier_code"] for t in load(out)["items"] for d in t["dossiers"])
    escalated = sorted(a.dossier_code for a in plan.actions if a.action == "escalate")
    assert dropped not in read_all(out) and ticketed == [c for c in escalated if c != dropped]


def test_plan_file_of_another_run_is_one_line_exit_2(district: dict[str, Any], tmp_path: Path) -> None:
    # The demo's plan file was made for its first audit; the store's latest run is a later audit.
    plan_file = district["out"] / "inputs" / "plan.yaml"
    latest = district["plan"].header["run"]
    first = yaml.safe_load(plan_file.read_text(encoding="utf-8"))["plan"]["run"]
    assert first != latest
    out = tmp_path / "t"
    result = invoke("tickets", "--store", district["store"], "--out", str(out), "--plan", str(plan_file), expect=2)
    assert result.stderr == (f"error: {plan_file}: the plan was made for audit run {first}, not run {latest}. "
                             f"Hint: pass --run {first}, or make a plan for run {latest} with `reconcile plan`.\n")
    assert not out.exists()


def test_lang_vi_shows_the_plans_reasons_in_vietnamese_from_their_codes(district: dict[str, Any]) -> None:
    en = build_tickets(district["store"], mapping_path=district["read_only"])
    vi = build_tickets(district["store"], mapping_path=district["read_only"], lang="vi")
    said = {a.dossier_code: a.reason for a in district["plan"].actions}
    shown = [(e, v) for te, tv in zip(en.tickets, vi.tickets) for e, v in zip(te.dossiers, tv.dossiers)]
    assert shown and all(e.dossier_code == v.dossier_code for e, v in shown)
    # English: the plan's sentence, unchanged; Vietnamese: the code's message with the same parameters.
    assert all(e.reason == said[e.dossier_code] for e, _ in shown)
    assert all(v.reason == reasons.render(v.reason_code, v.reason_args, "vi") != e.reason for e, v in shown)
    assert {v.reason_code for _, v in shown} == {"closed_on_paper", "reassign_inactive_assignee", "no_rule_or_default",
                                                 "no_migration_target", "step_lost_by_rule", "superseded_by_rule"}
    files = "\n".join(render_files(vi).values())
    assert [e.reason for e, _ in shown if e.reason in files] == []
    assert "trên sổ giấy: đã trả kết quả (so-theo-doi-ho-so-2021.xlsx, trang Quý I, dòng " in files
    assert "; trên hệ thống vẫn ở trạng thái đang xử lý" in files
    assert "không có quy tắc hay cách xử lý mặc định nào khắc phục được: Đơn vị không còn cán bộ xử lý" in files
    doc = json.loads(render_files(vi)["tickets.json"])
    assert [(d["reason_code"], d["reason_args"]) for t in doc["items"] for d in t["dossiers"]] == \
        [(e.reason_code, e.reason_args) for e, _ in shown]


def test_a_plan_file_without_reason_codes_or_with_an_edited_reason_is_quoted_in_english(
        district: dict[str, Any], tmp_path: Path) -> None:
    plan: Plan = district["plan"]
    doc = yaml.safe_load(plan.to_yaml())
    for a in doc["actions"]:  # as plans were written before reason codes
        del a["reason_code"], a["reason_args"]
    escalation = next(a for a in plan.actions if a.action == "escalate")
    edited = next(a for a in doc["actions"] if a["dossier_code"] == escalation.dossier_code)
    edited |= {"reason": "checked by hand: the vendor must look", "reason_code": escalation.reason_code,
               "reason_args": escalation.reason_args}
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out = tmp_path / "vi"
    invoke("tickets", "--store", district["store"], "--out", str(out), "--plan", str(old), "--lang", "vi",
           "--mapping", district["read_only"], expect=0)
    said = {a["dossier_code"]: a["reason"] for a in doc["actions"]}
    got = {d["dossier_code"]: d["reason"] for t in load(out)["items"] for d in t["dossiers"]}
    assert got and got == {code: said[code] for code in got}
    assert got[escalation.dossier_code] == "checked by hand: the vendor must look"
    built = build_tickets(district["store"], mapping_path=district["read_only"], lang="vi")
    assert [t["cause"] for t in load(out)["items"]] == [t.cause for t in built.tickets]


def test_tickets_csv_starts_with_one_byte_order_mark(district: dict[str, Any]) -> None:
    raw = (district["tickets"] / "tickets.csv").read_bytes()
    assert raw.startswith(BOM.encode() + b"ticket,procedure,") and raw.count(BOM.encode()) == 1
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))  # how Excel reads it
    dossiers = sum(len(t["dossiers"]) for t in load(district["tickets"])["items"])
    assert rows[0][0] == "ticket" and len(rows) == 1 + dossiers


def test_a_reason_a_spreadsheet_would_run_as_a_formula_is_quoted_in_tickets_csv(
        district: dict[str, Any], tmp_path: Path) -> None:
    doc = yaml.safe_load(district["plan"].to_yaml())
    edited = next(a for a in doc["actions"] if a["action"] == "escalate")
    edited["reason"] = '=HYPERLINK("http://example.invalid","open")'
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out = tmp_path / "t"
    invoke("tickets", "--store", district["store"], "--out", str(out), "--plan", str(plan_file), expect=0)
    rows = list(csv.DictReader(io.StringIO((out / "tickets.csv").read_text(encoding="utf-8-sig"))))
    row = next(r for r in rows if r["dossier_code"] == edited["dossier_code"])
    assert row["reason"] == "'" + edited["reason"]
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
