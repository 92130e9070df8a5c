"""The committed `workflows/` folder is the demo district's catalog and rules: it loads cleanly, the
simulator draws from it (an edit there is what the simulated system holds, a folder the simulator
cannot place is refused), and it ships with the package."""

from __future__ import annotations

import csv
import glob
import shutil
import tomllib
from collections import Counter
from pathlib import Path

import pytest
import yaml

from helpers import invoke
from reconcile.workflow.catalog import load_catalog
from reconcile.errors import BadInput
from reconcile.workflow.rules import load_rules
from reconcile.demo.district import CATALOG, DISTRICT, load_procedures
from reconcile.demo.simulate import simulate

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
SMALL = {"scale": 0.2, "register_format": "csv", "system_format": "csv"}
BUILDING = "xay-dung-giay-phep-nha-o"  # a one-version procedure: receive S01, appraise S02, sign S03, return S04
FIRST_CERTIFICATE = "dat-dai-cap-gcn-lan-dau"  # one version; dossiers still open on S02 (10 of its 30 days)


def copy_catalog(tmp_path: Path) -> Path:
    return Path(shutil.copytree(WORKFLOWS, tmp_path / "workflows"))


def test_committed_catalog_and_rules_load_without_warnings() -> None:
    catalog = load_catalog(WORKFLOWS)
    assert catalog.warnings == ()
    assert (len({v.procedure for v in catalog.versions}), len(catalog.versions)) == (20, 23)
    rules = load_rules(WORKFLOWS, catalog)
    assert [r.id for r in rules.rules] == ["v1-to-v2", "v2-edit-2021-04-12", "v2-to-v3"]
    checked = invoke("workflows", "check", str(WORKFLOWS), expect=0)
    assert checked.stdout.endswith("20 procedures, 23 versions, 113 steps, 0 warnings\n")
    assert invoke("rules", "check", str(WORKFLOWS), expect=0).stderr == ""


def test_the_simulator_reads_the_top_level_folder_which_ships_as_package_data() -> None:
    assert CATALOG.resolve() == WORKFLOWS  # reconcile/data/workflows links to it
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["reconcile"]
    # setuptools expands package-data patterns with glob.glob(recursive=True), which follows the link.
    shipped = {Path(p).resolve() for pattern in patterns
               for p in glob.glob(str(REPO / "reconcile" / pattern), recursive=True)}
    files = {p for p in WORKFLOWS.rglob("*") if p.is_file() and p.suffix in (".yaml", ".bpmn")}
    assert files and files <= shipped
    # Every procedure of the catalog is one the simulator draws dossiers for, in the district file's order.
    listed = [p["folder"] for p in yaml.safe_load(DISTRICT.read_text(encoding="utf-8"))["procedures"]]
    assert [p.folder for p in load_procedures()] == listed
    assert {p.parent.name for p in WORKFLOWS.rglob("v*.yaml")} == {p.folder for p in load_procedures()}


@pytest.mark.parametrize("seed", [2021, 7])
def test_the_rules_default_accounts_are_active_staff_of_their_unit_whatever_the_seed(tmp_path: Path,
                                                                                     seed: int) -> None:
    district = simulate(tmp_path / "d", seed=seed, **SMALL)
    with (district.system / "accounts.csv").open(encoding="utf-8", newline="") as f:
        active = {(r["account"], r["unit"]) for r in csv.DictReader(f) if r["active"] == "1"}
    rules = load_rules(district.workflows, load_catalog(district.workflows))
    assign = {(account, unit) for r in rules.rules for unit, account in r.assign.items()}
    assert assign and assign <= active


def test_a_step_renamed_in_the_catalog_is_the_step_the_simulated_system_holds(tmp_path: Path) -> None:
    edited = copy_catalog(tmp_path)
    v1 = edited / FIRST_CERTIFICATE / "v1.yaml"
    text = v1.read_text(encoding="utf-8")
    assert text.count("{id: S02,") == 1 and text.count("next: [S02]") == 1
    v1.write_text(text.replace("{id: S02,", "{id: S02X,").replace("next: [S02]", "next: [S02X]"), encoding="utf-8")

    district = simulate(tmp_path / "d", catalog=edited, **SMALL)

    assert (district.workflows / FIRST_CERTIFICATE / "v1.yaml").read_bytes() == v1.read_bytes()
    with (district.system / "dossiers.csv").open(encoding="utf-8", newline="") as f:
        current = Counter(r["current_step"] for r in csv.DictReader(f) if r["procedure"] == "1.003003.000.00.00.H48")
    with (district.system / "events.csv").open(encoding="utf-8", newline="") as f:
        moved = {r["to_step"] for r in csv.DictReader(f)}
    assert current["S02X"] > 0 and current["S02"] == 0
    assert "S02X" in moved


def test_a_procedure_folder_the_district_file_does_not_list_is_refused_before_writing(tmp_path: Path) -> None:
    edited = copy_catalog(tmp_path)
    extra = edited / "dat-dai-moi" / "v1.yaml"
    extra.parent.mkdir()
    extra.write_text((edited / BUILDING / "v1.yaml").read_text(encoding="utf-8").replace(
        '"1.009994.000.00.00.H48"', '"9.999999.000.00.00.H48"').replace("Cấp giấy phép", "Cấp mới giấy phép"),
        encoding="utf-8")
    with pytest.raises(BadInput) as e:
        simulate(tmp_path / "d", catalog=edited, **SMALL)
    assert str(e.value) == (f"{edited / 'dat-dai-moi'}: a procedure the district file does not list. "
                            f"Hint: add it to {DISTRICT} with its agency, share and time limit.")
    assert not (tmp_path / "d").exists()


def test_a_catalog_edit_that_leaves_a_step_unreachable_is_refused(tmp_path: Path) -> None:
    edited = copy_catalog(tmp_path)
    v1 = edited / BUILDING / "v1.yaml"
    v1.write_text(v1.read_text(encoding="utf-8").replace("next: [S03]", "next: [S04]"), encoding="utf-8")
    with pytest.raises(BadInput, match=r"v1\.yaml:\d+:\d+: step 'S03' cannot be reached from the first step "
                                       r"'S01'\. Hint: the demo district's catalog must load without warnings\."):
        simulate(tmp_path / "d", catalog=edited, **SMALL)
    assert not (tmp_path / "d").exists()


def test_a_district_file_naming_a_step_the_catalog_lacks_is_refused(tmp_path: Path) -> None:
    district = tmp_path / DISTRICT.name
    text = DISTRICT.read_text(encoding="utf-8")
    assert text.count("off_route: {3: [S03A, S03B]}") == 1
    district.write_text(text.replace("off_route: {3: [S03A, S03B]}", "off_route: {3: [S03A, S03C]}"),
                        encoding="utf-8")
    with pytest.raises(BadInput) as e:
        load_procedures(CATALOG, district)
    assert str(e.value) == (f"{CATALOG / 'dat-dai-dang-ky-bien-dong'}: off_route of v3 names S03C, not a step of "
                            f"v3. Hint: correct {DISTRICT.name} or the version file.")
