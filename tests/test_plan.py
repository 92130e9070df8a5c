"""`reconcile plan` on the demo district: one action per stuck dossier, by the default choices."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml
from helpers import invoke

from reconcile.util import i18n

from reconcile.fix import reasons
from reconcile.audit.results import RunReport
from reconcile.demo.commands import demo


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunReport, dict]:
    out = tmp_path_factory.mktemp("plan") / "district"
    report = demo(out)
    store = str(out / "inputs" / "reconcile.duckdb")
    # The demo also applies its plan and audits twice more: plan the first audit run again.
    result = invoke("plan", "--store", store, "--run", "1", "--out", str(out / "plan.yaml"), expect=0)
    assert result.stdout == "" and "wrote" in result.stderr
    return out, report, yaml.safe_load((out / "plan.yaml").read_text(encoding="utf-8"))


def test_every_orphan_gets_one_action_and_clean_dossiers_none(district: tuple[Path, RunReport, dict]) -> None:
    out, report, plan = district
    census = json.loads((out / "census.json").read_text(encoding="utf-8"))
    actions = plan["actions"]
    codes = [a["dossier_code"] for a in actions]
    assert len(codes) == len(set(codes))
    by_kind: dict[str, set[str]] = {}
    for f in report.findings:
        by_kind.setdefault(f["kind"], set()).add(f["dossier_code"])
    orphan_kinds = ("unknown_version", "step_not_in_version", "dead_end_step", "unit_without_staff",
                    "assignee_inactive")
    orphans = set().union(*(by_kind.get(k, set()) for k in orphan_kinds))
    assert len(orphans) == census["total"]["orphaned"] == plan["plan"]["validation"]["orphans"]
    # Only orphans, dossiers resolved on paper, those on retired versions the rules migrate, and those
    # on the register only (a backfill, awaiting confirmation) are touched.
    assert set(codes) == (orphans | by_kind["resolved_not_closed"] | by_kind["superseded_version"]
                          | by_kind["missing_in_system"])
    backfill = {a["dossier_code"] for a in actions if a["action"] == "backfill"}
    assert backfill == by_kind["missing_in_system"] and not backfill & orphans
    assert all(a["confirmed"] is False and a["fingerprint"] is None for a in actions if a["action"] == "backfill")
    v = plan["plan"]["validation"]
    assert v["covered"] + v["escalated"] == v["orphans"] and v["problems"] == []
    assert v["backfills_awaiting_confirmation"] == len(backfill) > 0


def test_default_choices(district: tuple[Path, RunReport, dict]) -> None:
    out, report, plan = district
    kinds: dict[str, set[str]] = {}
    for f in report.findings:
        kinds.setdefault(f["kind"], set()).add(f["dossier_code"])
    by_action: dict[str, list[dict]] = {}
    for a in plan["actions"]:
        by_action.setdefault(a["action"], []).append(a)
    # Returned on paper -> close with the register's return date.
    con = duckdb.connect(str(out / "inputs" / "reconcile.duckdb"), read_only=True)
    paper = dict(con.execute("SELECT dossier_code, returned_at FROM register_entry WHERE run_id = 1 "
                             "AND returned_at IS NOT NULL").fetchall())
    fingerprints = dict(con.execute("SELECT dossier_code, fingerprint FROM dossier WHERE run_id = 1").fetchall())
    con.close()
    assert {a["dossier_code"] for a in by_action["close"]} == kinds["resolved_not_closed"]
    for a in by_action["close"]:
        assert a["set"]["status"] == "returned" and a["returned_at"] == paper[a["dossier_code"]].isoformat()
    # Inactive assignee with an active colleague -> reassign to an active account of the unit.
    reassigned = {a["dossier_code"] for a in by_action["reassign"]}
    assert reassigned == kinds["assignee_inactive"] - kinds["resolved_not_closed"]
    # Removed steps still open on paper: the demo's migration rules take them through the in-place
    # edit of v2, then to v3, with the unit's default account where the unit changes.
    # Dossiers on v2 steps that still exist (placed there by version inference) are superseded: the
    # v2 -> v3 rule migrates them too.
    migrated = {a["dossier_code"] for a in by_action["migrate"]}
    assert migrated == (kinds["step_not_in_version"] | kinds["superseded_version"]) - kinds["resolved_not_closed"]
    for a in by_action["migrate"]:
        assert a["confirmed"] is True and a["rule"] in {"v2-edit-2021-04-12,v2-to-v3", "v2-to-v3"}
        assert (a["version"], a["step"]) in {(3, "S03"), (3, "S06A")}
    assert plan["plan"]["validation"]["guesses_awaiting_confirmation"] == 0
    # No version, no staff, a dead end in the latest version: nothing to do but escalate.
    escalated = {a["dossier_code"] for a in by_action["escalate"]}
    assert kinds["unknown_version"] | kinds["unit_without_staff"] | kinds["dead_end_step"] <= escalated
    # Each action carries the fingerprint of the row it was computed from (a backfill: no row, null).
    assert all(a["fingerprint"] == fingerprints.get(a["dossier_code"]) for a in plan["actions"])
    assert plan["plan"]["run"] == report.run["id"] and plan["plan"]["system"]["profile"] == "mapping"
    assert len(plan["plan"]["deadline_impact"]) == len(by_action["migrate"])


def test_without_rules_the_version_diff_proposes_guesses(district: tuple[Path, RunReport, dict],
                                                         tmp_path: Path) -> None:
    out, _, with_rules = district
    store = str(out / "inputs" / "reconcile.duckdb")
    result = invoke("plan", "--store", store, "--run", "1", "--rules", str(tmp_path), expect=0)
    plan = yaml.safe_load(result.stdout)
    migrate = [a for a in plan["actions"] if a["action"] == "migrate"]
    assert migrate and all(a["confirmed"] is False and a["rule"] == "default:migrate" for a in migrate)
    assert plan["plan"]["validation"]["guesses_awaiting_confirmation"] == len(migrate)
    # The rules reach more dossiers than the diff's guesses (S02 pairs with nothing by itself).
    assert len(migrate) < sum(1 for a in with_rules["actions"] if a["action"] == "migrate")


def test_plan_without_a_store_is_a_clear_error(tmp_path: Path) -> None:
    result = invoke("plan", "--store", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "p.yaml"), expect=2)
    assert result.stderr.startswith(f"error: store {tmp_path / 'none.duckdb'}: no such file.")
    assert not (tmp_path / "p.yaml").exists()


# Each reason code with parameters, and the English sentence plan.py wrote for them before reason codes: the
# catalog's English must keep it word for word (plan files and English tickets quote it).
SENTENCES = [
    ("closed_on_paper", {"outcome": "returned", "file": "so.xlsx", "sheet": "Quý I", "row": 7, "status": "in_progress"},
     "returned on paper (so.xlsx, sheet Quý I, row 7), still in_progress in the system"),
    ("closed_on_paper", {"outcome": "withdrawn", "file": "so.csv", "sheet": None, "row": 7, "status": "received"},
     "withdrawn on paper (so.csv, row 7), still received in the system"),
    ("reassign_inactive_assignee", {"assignee": "a.old", "who": "a.new", "unit": "VPDKDD"},
     "assignee a.old is inactive; a.new is active in VPDKDD"),
    ("no_rule_or_default", {"findings": ["unknown_version", "unit_without_staff"]},
     "no rule or default fixes unknown_version, unit_without_staff"),
    ("no_migration_target", {"step": "S03A", "version": 3},
     "step S03A of v3: no rule and no step of a later version pairs with it"),
    ("target_invalid", {"procedure": "P", "version": 4, "step": "S09"},
     "target P v4 S09 does not exist or cannot reach a final step"),
    ("target_without_staff", {"version": 4, "step": "S09", "unit": "DODAC"},
     "target v4 S09: no active account in unit DODAC"),
    ("step_lost_by_rule", {"step": "S05", "version": 2, "to_version": 3, "to_step": "S06A", "to_name": "In GCN",
                           "rule": "r1,r2"},
     "step S05 of v2 no longer leads to the end; to v3 S06A (In GCN), by rule r1,r2"),
    ("step_lost_by_diff", {"step": "S05", "version": 2, "to_version": 3, "to_step": "S06A", "to_name": "In GCN",
                           "rule": "default:migrate"},
     "step S05 of v2 no longer leads to the end; to v3 S06A (In GCN), proposed by the version diff (a guess)"),
    ("superseded_by_rule", {"step": "S03", "version": 2, "to_version": 3, "to_step": "S03", "to_name": "Kiểm tra",
                            "rule": "v2-to-v3"},
     "v2 is superseded: the migration rules move step S03 on; to v3 S03 (Kiểm tra), by rule v2-to-v3"),
    ("missing_in_system", {"file": "so.xlsx", "sheet": "Quý I", "row": 9, "procedure": "1.004227.000.00.00.H48",
                           "status": "returned"},
     "on the register (so.xlsx, sheet Quý I, row 9), not in the system: create the record of "
     "1.004227.000.00.00.H48 as returned"),
    ("backfill_unknown_procedure", {"file": "so.csv", "sheet": None, "row": 9, "name": "Cấp phép X"},
     'on the register (so.csv, row 9), not in the system, but its procedure "Cấp phép X" matches no catalog '
     "procedure: cannot create the record"),
    ("backfill_ambiguous_procedure", {"file": "so.csv", "sheet": None, "row": 9, "name": "Cấp phép X",
                                      "matches": ["1.1", "1.2"]},
     'on the register (so.csv, row 9), not in the system, but its procedure "Cấp phép X" matches several '
     "catalog procedures (1.1, 1.2): cannot create the record"),
]


def test_every_reason_code_has_vi_and_en_and_the_english_is_unchanged() -> None:
    assert {code for code, _, _ in SENTENCES} == set(reasons.CODES)
    messages = {k: v for k, v in i18n.catalog().items() if k.startswith("plan.")}
    assert {f"plan.reason.{c}" for c in reasons.CODES} <= set(messages)
    assert [k for k, v in messages.items() if not (v.get("vi") and v.get("en")) or v["vi"] == v["en"]] == []
    for code, args, sentence in SENTENCES:
        assert reasons.render(code, args, "en") == sentence
        assert reasons.reason(code, **args) == {"reason": sentence, "reason_code": code, "reason_args": args}
        vi = reasons.render(code, args, "vi")  # says the same values; codes (status, kinds) as labels
        said = [v for k, v in args.items() if k not in reasons.LABELS and v is not None and (k, code) != (
            "rule", "step_lost_by_diff")]
        said = [", ".join(map(str, v)) if isinstance(v, list) else str(v) for v in said]  # lists as the message lists
        assert vi != sentence and [v for v in said if v not in vi] == []
    assert reasons.render(*SENTENCES[0][:2], "vi") == ("trên sổ giấy: đã trả kết quả (so.xlsx, trang Quý I, dòng 7); "
                                                       "trên hệ thống vẫn ở trạng thái đang xử lý")


def test_every_action_says_its_reason_by_code(district: tuple[Path, RunReport, dict], tmp_path: Path) -> None:
    out, _, plan = district
    for a in plan["actions"]:  # as read back from the plan file
        assert reasons.render(a["reason_code"], a["reason_args"], "en") == a["reason"]
    assert {a["reason_code"] for a in plan["actions"]} == {
        "closed_on_paper", "reassign_inactive_assignee", "no_rule_or_default", "no_migration_target",
        "step_lost_by_rule", "superseded_by_rule", "missing_in_system"}
    store = str(out / "inputs" / "reconcile.duckdb")
    guesses = yaml.safe_load(invoke("plan", "--store", store, "--run", "1", "--rules", str(tmp_path), expect=0).stdout)
    assert {a["reason_code"] for a in guesses["actions"] if a["action"] == "migrate"} == {"step_lost_by_diff"}
