"""Migration rules: the YAML format, validation against the catalog (one line per problem with
file:line:col and a hint, exit 2), `rules check`, chains resolved on concrete dossiers, the demo's rules."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from reconcile.workflow.catalog import load_catalog
from reconcile.workflow.rules import Facts, RuleSet, load_rules
from reconcile.demo.district import LAND_MAIN, SimulationResult
from reconcile.demo.simulate import simulate
from tests.conftest import CASES
from tests.helpers import invoke

CATALOG = CASES / "rules" / "workflows"
LAND = "1.004227.000.00.00.H48"
COMMUNE = "1.012345.000.00.00.H48"
HEAD = f'procedure: "{LAND}"\nrules:\n'


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(CATALOG, load_catalog(CATALOG))


def test_rules_check_lists_hops_mappings_and_guesses() -> None:
    result = invoke("rules", "check", str(CATALOG), expect=0)
    land, edit = f"{CATALOG}/land/rules.yaml", f"{CATALOG}/land/edit-2021.rules.yaml"
    assert result.stdout.splitlines() == [
        f"{LAND}: 5 rules, 17 step mappings, guesses awaiting confirmation: 1",
        f"  v2 -> v2 (v2-edited) at {edit}:4:5",
        f"  v1 -> v2 (v1-to-v2) at {land}:5:5",
        f"  v2 -> v3 (v2-returned-to-v3 when paper returned) at {land}:10:5",
        f"  v2 -> v3 (v2-to-v3) at {land}:16:5",
        f"  v3 -> {COMMUNE} v1 (reform-2025 when unit VPDKDD, received before 2025-07-01) at {land}:22:5",
        "  guess, not confirmed: v2-returned-to-v3: S06 -> S09",
        f"{CATALOG}: valid: 5 rules in 2 files, 1 procedures",
    ]
    # The catalog's own warnings still go to stderr.
    assert "step 'S10' is not final and has no next step" in result.stderr


def test_catalog_folder_from_option_and_project_file(tmp_path: Path) -> None:
    invoke("rules", "check", "--workflows", str(CATALOG), expect=0)
    config = tmp_path / "reconcile.yaml"
    config.write_text(f"workflows: {CATALOG.resolve()}\n", encoding="utf-8")
    assert "valid: 5 rules in 2 files" in invoke("rules", "check", "--config", str(config), expect=0).stdout
    result = invoke("rules", "check", "--config", str(tmp_path / "none.yaml"), expect=2)
    assert result.stderr == f"error: {tmp_path / 'none.yaml'}: no such file.\n"


def test_the_model_read_from_the_files(rules: RuleSet) -> None:
    by_id = {r.id: r for r in rules.rules}
    assert [r.id for r in rules.rules] == ["v2-edited", "v1-to-v2", "v2-returned-to-v3", "v2-to-v3", "reform-2025"]
    many = by_id["v1-to-v2"]
    assert [(m.source, m.target) for m in many.steps] == [("S02", "S03"), ("S05", "S06"), ("S05B", "S06")]
    assert many.same_ids and many.claims(rules.catalog) == {"S01", "S02", "S03", "S05", "S05B", "S06", "S09"}
    reform = by_id["reform-2025"]
    assert (reform.to_procedure, reform.to_version) == (COMMUNE, 1)
    assert reform.when.received_before == date(2025, 7, 1) and reform.when.units == {"VPDKDD"}
    assert all(m.guess and m.confirmed_by == "Trần Thị Bích" and not m.pending for m in reform.steps)
    assert reform.assign["UBND_XA"] == "ubndxa.default" and reform.assign["THUE"] == "thue.default"
    assert by_id["v2-to-v3"].assign["VPDKDD"] == "vpdkdd.v3"
    assert [m.pending for m in by_id["v2-returned-to-v3"].steps] == [True]


def test_chain_one_to_one_and_same_ids(rules: RuleSet) -> None:
    r = rules.resolve(LAND, 1, "S02")
    assert (r.procedure, r.version, r.step, r.rules) == (LAND, 3, "S03", ("v1-to-v2", "v2-to-v3"))
    assert [(h.version, h.step, h.to_version, h.to_step) for h in r.hops] == [(1, "S02", 2, "S03"),
                                                                             (2, "S03", 3, "S03")]
    # The last rule's own table wins over the file's.
    assert (r.unit, r.assignee, r.needs_confirmation) == ("VPDKDD", "vpdkdd.v3", False)


def test_many_to_one_then_the_first_matching_condition(rules: RuleSet) -> None:
    returned = rules.resolve(LAND, 1, "S05B", Facts(paper_outcome="returned"))
    assert (returned.version, returned.step, returned.rules) == (3, "S09", ("v1-to-v2", "v2-returned-to-v3"))
    assert returned.needs_confirmation  # S06 -> S09 is a guess nobody confirmed
    assert (returned.unit, returned.assignee) == ("MOTCUA", "motcua.lan")
    open_on_paper = rules.resolve(LAND, 1, "S05", Facts(paper_outcome="not_returned", received_at=date(2025, 8, 1)))
    assert (open_on_paper.version, open_on_paper.step, open_on_paper.rules) == (3, "S06A", ("v1-to-v2", "v2-to-v3"))
    assert not open_on_paper.needs_confirmation


def test_received_date_cut_off_and_unit_move_to_the_new_procedure(rules: RuleSet) -> None:
    before = Facts(unit="VPDKDD", received_at=date(2025, 6, 30))
    r = rules.resolve(LAND, 2, "S06", before)
    assert (r.procedure, r.version, r.step) == (COMMUNE, 1, "X02")
    assert r.rules == ("v2-to-v3", "reform-2025") and not r.needs_confirmation  # confirmed guess
    assert (r.unit, r.assignee) == ("UBND_XA", "ubndxa.default")
    on_the_day = rules.resolve(LAND, 2, "S06", Facts(unit="VPDKDD", received_at=date(2025, 7, 1)))
    assert (on_the_day.procedure, on_the_day.step) == (LAND, "S06A")
    other_unit = rules.resolve(LAND, 3, "S08", Facts(unit="THUE", received_at=date(2025, 6, 30)))
    assert not other_unit.moved and (other_unit.version, other_unit.step) == (3, "S08")
    unknown_date = rules.resolve(LAND, 3, "S06A", Facts(unit="VPDKDD"))  # a condition on an unknown fact fails
    assert not unknown_date.moved and unknown_date.assignee is None


def test_in_place_edit_rule_repairs_a_lost_step_then_the_chain_goes_on(rules: RuleSet) -> None:
    r = rules.resolve(LAND, 2, "S05B")
    assert (r.version, r.step, r.rules) == (3, "S06A", ("v2-edited", "v2-to-v3"))
    nothing = rules.resolve(COMMUNE, 1, "X02")
    assert (nothing.procedure, nothing.version, nothing.step, nothing.hops) == (COMMUNE, 1, "X02", ())
    assert (nothing.unit, nothing.assignee) == ("UBND_XA", None)


# ---------------------------------------------------------------- every problem, through the CLI

R = "  - {id: a, from: 1, to: 2, steps: {S02: S03}}\n"
STEPS1 = "S01, S02, S03, S05, S05B, S06, S09"
STEPS2 = "S01, S03, S06, S08, S09, S10"
PROCS = f"{LAND}, {COMMUNE}"
FORMAT = "Hint: see the migration rules format (procedure, assign, rules: id, from, to, steps, when) in docs/file-formats.md."

BAD = [
    ("unknown procedure", 'procedure: "9.999999"\nrules:\n' + R,
     [f"1:12: unknown procedure '9.999999'. Hint: procedures in the catalog: {PROCS}."]),
    ("unknown from version", HEAD + "  - {id: a, from: 7, to: 2, steps: {S02: S03}}\n",
     [f"3:19: rule 'a': procedure '{LAND}' has no version 7. Hint: versions in the catalog: 1, 2, 3."]),
    ("unknown to version", HEAD + "  - {id: a, from: 1, to: 9, steps: {S02: S03}}\n",
     [f"3:26: rule 'a': procedure '{LAND}' has no version 9. Hint: versions in the catalog: 1, 2, 3."]),
    ("unknown to_procedure", HEAD + '  - {id: a, from: 1, to: 1, to_procedure: "9.9", steps: {S02: S03}}\n',
     [f"3:43: rule 'a': unknown procedure '9.9'. Hint: procedures in the catalog: {PROCS}."]),
    ("source step not in the from-version", HEAD + "  - {id: a, from: 1, to: 2, steps: {S04: S03}}\n",
     [f"3:37: rule 'a': step 'S04' is not in version 1 of '{LAND}'. Hint: steps there: {STEPS1}."]),
    ("target step not in the to-version", HEAD + "  - {id: a, from: 1, to: 2, steps: {S02: S02}}\n",
     [f"3:42: rule 'a': target step 'S02' is not in version 2 of '{LAND}'. Hint: steps there: {STEPS2}."]),
    ("target cannot reach a final step", HEAD + "  - {id: a, from: 1, to: 2, steps: {S02: S10}}\n",
     [f"3:42: rule 'a': target step 'S10' cannot reach a final step of version 2 of '{LAND}': a dossier sent "
      "there can never finish. Hint: map it to a step on a path to a final step."]),
    ("chain with a cycle", HEAD + "  - {id: up, from: 2, to: 3, steps: {S06: S06A}}\n"
     "  - {id: down, from: 3, to: 2, steps: {S06A: S06}}\n",
     ["4:29: rule 'down' closes a cycle of versions v2 -> v3 -> v2 (rules 'up' (W:3:5), 'down' (W:4:5)). "
      "Hint: a chain must end; remove or redirect one of these rules."]),
    ("same step, same conditions", HEAD + "  - {id: a, from: 2, to: 3, same_ids: true, steps: {}}\n"
     "  - {id: b, from: 2, to: 3, steps: {S03: S03}}\n",
     [f"4:37: rule 'b' claims procedure '{LAND}' version 2 step(s) S03; rule 'a' at W:3:5 claims it too, under "
      "the same conditions (always). Hint: keep the step in one rule, or make the conditions exclusive."]),
    ("same step, overlapping conditions", HEAD +
     "  - {id: old, from: 2, to: 3, when: {received_before: 2021-06-01}, steps: {S06: S06A}}\n"
     "  - {id: paper, from: 2, to: 3, when: {paper_outcome: returned}, steps: {S06: S09}}\n",
     [f"4:74: rule 'paper' claims procedure '{LAND}' version 2 step(s) S06; rule 'old' at W:3:5 claims it too "
      "and the conditions overlap (received before 2021-06-01 / paper returned). Hint: make them exclusive "
      "(e.g. received_before / received_from the same date), or make the earlier one narrower."]),
    ("same step, fallback before the exception", HEAD + "  - {id: all, from: 2, to: 3, steps: {S06: S06A}}\n"
     "  - {id: paper, from: 2, to: 3, when: {paper_outcome: returned}, steps: {S06: S09}}\n",
     [f"4:74: rule 'paper' claims procedure '{LAND}' version 2 step(s) S06; rule 'all' at W:3:5 claims it first "
      "for always, which covers this rule's paper returned, so this rule never applies there. Hint: put the "
      "narrower rule first, or drop the step from one rule."]),
    ("in-place rule on a live step", HEAD + "  - {id: a, from: 2, to: 2, steps: {S03: S06}}\n",
     ["3:37: rule 'a': step 'S03' is still in version 2; a rule from a version to itself maps only steps the "
      "version lost. Hint: map it in a rule to another version, or remove it."]),
    ("YAML syntax", HEAD + "  - id: a\n    from: 1\n   to: 2\n",
     ["5:4: YAML syntax error: did not find expected '-' indicator. Hint: check the "
      "indentation and quoting on this line and the one above."]),
    ("schema: type and unknown key", HEAD + "  - {id: a, from: one, to: 2, steps: {S02: S03}, wen: {unit: X}}\n",
     [f"3:19: rules[0].from: 'one' is not of type 'integer'. {FORMAT}",
      f"3:50: rules[0]: unknown key 'wen'. Known: id, from, to, to_procedure, steps, same_ids, when, assign, guess, "
      f"confirmed_by, note. {FORMAT}"]),
    ("schema: required key", HEAD + "  - {id: a, from: 1, steps: {S02: S03}}\n",
     [f"3:5: rules[0]: 'to' is required. Keys here: id, from, steps. {FORMAT}"]),
    ("schema: bad date", HEAD + "  - {id: a, from: 1, to: 2, when: {received_before: 2025-13-01}, steps: {S02: S03}}\n",
     [f"3:53: rules[0].when.received_before: '2025-13-01' is not a 'date'. {FORMAT}"]),
    ("step mapped twice in one rule", HEAD + "  - id: a\n    from: 1\n    to: 2\n    steps: {S05: S06, S05: S03}\n",
     ["6:23: duplicate key 'S05' (first at 6:13). Hint: keep one; YAML would silently keep only the last."]),
    ("empty date range", HEAD +
     "  - {id: a, from: 1, to: 2, when: {received_from: 2025-07-01, received_before: 2025-01-01}, steps: {S02: S03}}\n",
     ["3:51: rule 'a': received_from 2025-07-01 is not before received_before 2025-01-01: no dossier can match. "
      "Hint: swap the dates, or drop one."]),
    ("unknown paper outcome", HEAD + "  - {id: a, from: 1, to: 2, when: {paper_outcome: lost}, steps: {S02: S03}}\n",
     ["3:51: rule 'a': paper_outcome 'lost' is not known. Hint: one or a list of returned, not_returned, missing."]),
    ("unknown unit in assign", f'procedure: "{LAND}"\nassign: {{VPDK: vpdk.a}}\nrules:\n' + R,
     [f"2:10: unit 'VPDK' is not the unit of any step of procedure '{LAND}'. Hint: units there: LANHDAO, MOTCUA, "
      "THUE, VPDKDD."]),
    ("confirmed without guess", HEAD + "  - {id: a, from: 1, to: 2, steps: {S02: {to: S03, confirmed_by: An}}}\n",
     ["3:66: rule 'a': confirmed_by on a mapping that is not a guess. Hint: add guess: true, or remove "
      "confirmed_by."]),
    ("duplicate rule id", HEAD + R + "  - {id: a, from: 2, to: 3, steps: {S03: S03}}\n",
     ["4:10: rule id 'a' is also used at W:3:5. Hint: rule ids must be unique within a procedure (plans cite them)."]),
    ("empty file", "", ["1:1: empty file. Hint: expected keys procedure, rules (and optionally assign)."]),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_each_problem_is_one_line_with_location_and_hint(tmp_path: Path, text: str, expected: list[str]) -> None:
    shutil.copytree(CATALOG, tmp_path / "wf", ignore=shutil.ignore_patterns("*rules*"))
    path = tmp_path / "wf" / "land" / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    result = invoke("rules", "check", str(tmp_path / "wf"), expect=2)
    lines = [f"error: {path}:{line}".replace("W:", f"{path}:") for line in expected]
    assert result.stderr.splitlines()[-len(lines):] == lines
    assert result.stdout == ""


def test_problems_of_several_files_are_all_listed(tmp_path: Path) -> None:
    shutil.copytree(CATALOG, tmp_path / "wf")
    (tmp_path / "wf" / "commune" / "rules.yaml").write_text(
        f'procedure: "{COMMUNE}"\nrules:\n  - {{id: a, from: 1, to: 2, steps: {{X01: X02}}}}\n', encoding="utf-8")
    (tmp_path / "wf" / "land" / "edit-2021.rules.yaml").write_text(
        HEAD + "  - {id: a, from: 2, to: 2, steps: {S02: S99}}\n", encoding="utf-8")
    result = invoke("rules", "check", str(tmp_path / "wf"), expect=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {tmp_path}/wf/commune/rules.yaml:3:26: rule 'a': procedure '{COMMUNE}' has no version 2. "
        "Hint: versions in the catalog: 1.",
        f"error: {tmp_path}/wf/land/edit-2021.rules.yaml:3:42: rule 'a': target step 'S99' is not in version 2 of "
        f"'{LAND}'. Hint: steps there: {STEPS2}.",
    ]


def test_rules_without_a_catalog_or_a_catalog_without_rules(tmp_path: Path) -> None:
    (tmp_path / "land").mkdir()
    shutil.copy(CATALOG / "land" / "rules.yaml", tmp_path / "land" / "rules.yaml")
    result = invoke("rules", "check", str(tmp_path), expect=2)
    assert result.stderr == (
        f"error: {tmp_path}/land/rules.yaml: no workflow catalog to check these rules against (no v<N>.yaml or "
        f"v<N>.bpmn below {tmp_path}). Hint: put the rules next to the version files, or pass the catalog folder "
        "with --workflows DIR.\n")
    shutil.copytree(CATALOG, tmp_path / "bare", ignore=shutil.ignore_patterns("*rules*"))
    result = invoke("rules", "check", str(tmp_path / "bare"), expect=2)
    assert result.stderr == (f"error: {tmp_path}/bare: no migration rules files (rules*.yaml or *.rules.yaml). "
                             "Hint: write rules.yaml next to a procedure's v<N>.yaml files.\n")
    result = invoke("rules", "check", expect=2)
    assert result.stderr == ("error: rules check: missing the catalog folder. Hint: pass DIR or --workflows DIR, "
                             "or set workflows: in reconcile.yaml.\n")


def test_a_catalog_without_rules_loads_as_an_empty_set() -> None:
    catalog = load_catalog(CASES / "golden" / "basic" / "workflows")
    empty = load_rules(CASES / "golden" / "basic" / "workflows", catalog)
    assert empty.rules == () and not empty.resolve(LAND, 2, "S03").moved


# ---------------------------------------------------------------- the demo district


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("rules-district"))


def test_demo_rules_check_passes(district: SimulationResult) -> None:
    path = district.workflows / "dat-dai-dang-ky-bien-dong" / "rules.yaml"
    result = invoke("rules", "check", "--config", str(district.config), expect=0)
    assert result.stdout.splitlines() == [
        f"{LAND_MAIN}: 3 rules, 18 step mappings, guesses awaiting confirmation: 0",
        f"  v1 -> v2 (v1-to-v2) at {path}:6:5",
        f"  v2 -> v2 (v2-edit-2021-04-12) at {path}:11:5",
        f"  v2 -> v3 (v2-to-v3) at {path}:15:5",
        f"{district.workflows}: valid: 3 rules in 1 files, 1 procedures",
    ]
    assert result.stderr == ""


def test_demo_rules_take_every_removed_step_dossier_to_the_latest_version(district: SimulationResult) -> None:
    truth = json.loads(district.ground_truth.read_text(encoding="utf-8"))
    planted = {f["dossier_code"] for f in truth["findings"] if f["kind"] == "step_not_in_version"}
    catalog = load_catalog(district.workflows)
    rules = load_rules(district.workflows, catalog)
    with sqlite3.connect(district.system) as db:
        rows = db.execute(
            "SELECT h.MA_HOSO, h.MA_TTHC, h.PHIENBAN, t.MA_BUOC, t.MA_PHONGBAN, h.NGAY_TIEPNHAN FROM HS_HOSO h "
            "JOIN HS_XULY_HIENTAI t ON t.MA_HOSO = h.MA_HOSO").fetchall()
        accounts = dict(db.execute("SELECT TAIKHOAN, TRANGTHAI_HD FROM DM_CANBO").fetchall())
    dossiers = {r[0]: r[1:] for r in rows if r[0] in planted}
    assert len(dossiers) == len(planted) == 80
    latest = catalog.latest(LAND_MAIN)
    assert latest is not None and latest.version == 3
    seen = set()
    for code, (procedure, version, step, unit, received) in dossiers.items():
        pinned = catalog.get(procedure, version)
        assert (procedure, version) == (LAND_MAIN, 2) and pinned is not None and pinned.step(step) is None
        r = rules.resolve(procedure, version, step, Facts(unit=unit, received_at=date.fromisoformat(received[:10])))
        assert (r.procedure, r.version) == (LAND_MAIN, 3) and r.step in latest.reachable_final()
        assert r.rules == ("v2-edit-2021-04-12", "v2-to-v3") and not r.needs_confirmation
        assert r.assignee is not None and accounts[r.assignee] == 1  # an active account of the step's unit
        assert r.assignee.startswith(r.unit.lower() + ".")  # type: ignore[union-attr]
        seen.add((step, r.step))
    assert seen == {("S02", "S03"), ("S05", "S06A")}
