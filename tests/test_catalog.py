"""Workflow catalog: loading, the step graph, and one exact message line per problem."""

from __future__ import annotations

import shutil
import textwrap
from datetime import date
from pathlib import Path

import pytest

from reconcile.workflow.catalog import FORMAT_HINT, Step, load_catalog, reachable
from reconcile.errors import BadInput

SAMPLE = Path(__file__).parent / "cases" / "catalog" / "sample"
LAND = "1.004227.000.00.00.H48"
BUSINESS = "2.000046.000.00.00.H48"

SIMPLE = """\
procedure: P1
name: Thủ tục một
version: 1
steps:
  - {id: A, name: Tiếp nhận, days: 1, next: [B]}
  - {id: B, name: Trả kết quả, days: 1, final: true}
"""


@pytest.fixture
def catalog_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty `workflows` folder; the working directory is its parent, so messages read
    `workflows/...` exactly as a user who typed `load_catalog("workflows")` would see them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workflows").mkdir()
    return tmp_path / "workflows"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def problems_of(directory: str = "workflows") -> list[str]:
    with pytest.raises(BadInput) as caught:
        load_catalog(directory)
    return caught.value.problems


# ---------------------------------------------------------------- valid catalogs


def test_sample_catalog_loads_every_version_sorted_by_procedure_and_version(
    catalog_dir: Path,
) -> None:
    shutil.copytree(SAMPLE, catalog_dir, dirs_exist_ok=True)
    catalog = load_catalog("workflows")

    assert [(v.procedure, v.version, v.path) for v in catalog.versions] == [
        (LAND, 1, "workflows/land/v1.yaml"),
        (LAND, 2, "workflows/land/v2.yaml"),
        (BUSINESS, 1, "workflows/business/v1.yaml"),
    ]
    assert catalog.warnings == ()
    land2 = catalog.get(LAND, 2)
    assert land2 is not None
    assert land2.name == "Đăng ký biến động quyền sử dụng đất"
    assert land2.field == "Lĩnh vực đất đai"
    assert [s.id for s in land2.steps] == ["S01", "S03", "S06", "S08", "S09"]
    assert land2.step("S03") == Step(
        "S03", "Thẩm định hồ sơ", "VPDK", 5.0, ("S06", "S08"), False, 12
    )
    assert land2.step("S09") == Step("S09", "Trả kết quả", "MOTCUA", 0.5, (), True, 27)
    assert land2.step("S99") is None
    assert land2.reachable_final() == {"S01", "S03", "S06", "S08", "S09"}


def test_lookups_by_procedure_version_and_name(catalog_dir: Path) -> None:
    shutil.copytree(SAMPLE, catalog_dir, dirs_exist_ok=True)
    catalog = load_catalog("workflows")

    assert [v.version for v in catalog.versions_of(LAND)] == [1, 2]
    assert catalog.latest(LAND) == catalog.get(LAND, 2)
    assert catalog.latest("no-such-procedure") is None
    assert catalog.get(LAND, 3) is None
    assert catalog.versions_of("no-such-procedure") == ()
    assert catalog.procedure_by_name() == {
        "đăng ký biến động quyền sử dụng đất": LAND,
        "đăng ký thành lập hộ kinh doanh": BUSINESS,
    }


def test_yaml_dates_and_quoted_string_dates_both_load(catalog_dir: Path) -> None:
    write(catalog_dir, {
        "a/v1.yaml": SIMPLE + "valid_from: 2021-05-10\n",
        "a/v2.yaml": SIMPLE.replace("version: 1", "version: 2") + 'valid_from: "2021-06-01"\n',
        "a/v3.yaml": SIMPLE.replace("version: 1", "version: 3"),
    })
    catalog = load_catalog("workflows")

    assert [v.valid_from for v in catalog.versions] == [date(2021, 5, 10), date(2021, 6, 1), None]


def test_file_order_and_nesting_do_not_change_the_result(catalog_dir: Path) -> None:
    write(catalog_dir, {
        "z/deep/er/v2.yaml": SIMPLE.replace("version: 1", "version: 2"),
        "z/v10.yaml": SIMPLE.replace("version: 1", "version: 10"),
        "b/v1.yaml": SIMPLE.replace("P1", "P0"),
        "a/v1.yaml": SIMPLE,
        "a/notes.yaml": "not: a version file\n",
        "a/v1.yml": "ignored: true\n",
    })
    catalog = load_catalog("workflows")

    assert [v.path for v in catalog.versions] == [
        "workflows/b/v1.yaml",
        "workflows/a/v1.yaml",
        "workflows/z/deep/er/v2.yaml",
        "workflows/z/v10.yaml",
    ]
    assert load_catalog("workflows") == catalog


def test_catalog_path_given_as_path_object_with_trailing_slash(catalog_dir: Path) -> None:
    write(catalog_dir, {"a/v1.yaml": SIMPLE})

    assert load_catalog(Path("workflows")).versions[0].path == "workflows/a/v1.yaml"
    assert load_catalog("workflows/").versions[0].path == "workflows/a/v1.yaml"


# ---------------------------------------------------------------- graph


def test_reachable_follows_edges_and_includes_the_start() -> None:
    edges = {"A": ["B"], "B": ["C", "A"], "C": [], "D": ["A"]}

    assert reachable(edges, ["A"]) == {"A", "B", "C"}
    assert reachable(edges, ["C", "X"]) == {"C", "X"}
    assert reachable(edges, []) == set()


def test_reachable_final_leaves_out_steps_that_cannot_finish(catalog_dir: Path) -> None:
    write(catalog_dir, {"a/v1.yaml": """\
        procedure: P1
        name: Thủ tục một
        version: 1
        steps:
          - {id: A, name: a, days: 1, next: [B, C]}
          - {id: B, name: b, days: 1, next: [D]}
          - {id: C, name: c, days: 1, next: [C]}
          - {id: D, name: d, days: 1, final: true}
        """})
    version = load_catalog("workflows").versions[0]

    assert version.reachable_final() == {"A", "B", "D"}


def test_steps_that_may_end_starts_and_side_paths_are_optional_keys(catalog_dir: Path) -> None:
    """may_end counts as a way to the end (S04: a rejection; R: a reminder's side path), start marks every
    entry and side_of makes a side path reachable from the step it waits beside: no warning here. Older
    files, without the keys, load as before (the other tests)."""
    write(catalog_dir, {"a/v1.yaml": """\
        procedure: P1
        name: Thủ tục một
        version: 1
        steps:
          - {id: A, name: a, days: 1, start: true, next: [S04]}
          - {id: B, name: b, days: 1, start: true, next: [S04]}
          - {id: S04, name: thẩm định, days: 1, next: [S05], may_end: true}
          - {id: R, name: nhắc việc, days: 0, side_of: S04, may_end: true}
          - {id: S05, name: c, days: 1, next: [S05]}
        """})
    catalog = load_catalog("workflows")
    version = catalog.versions[0]

    assert catalog.warnings == ()
    assert version.reachable_final() == {"A", "B", "S04", "R"}  # S05 loops for ever
    assert [(s.id, s.final, s.may_end, s.start, s.side_of) for s in version.steps] == [
        ("A", False, False, True, None), ("B", False, False, True, None), ("S04", False, True, False, None),
        ("R", False, True, False, "S04"), ("S05", False, False, False, None)]
    assert [s.id for s in version.starts()] == ["A", "B"]


def test_a_side_path_of_an_unknown_step_is_refused_with_its_position(catalog_dir: Path) -> None:
    write(catalog_dir, {"land/v1.yaml": SIMPLE + "  - {id: R, name: nhắc, days: 0, side_of: X, may_end: true}\n"})

    assert problems_of() == [
        "workflows/land/v1.yaml:7:43: step 'R' is a side path of 'X': no such step. Steps here: A, B, R."
    ]


# ---------------------------------------------------------------- warnings


def test_unreachable_and_no_way_out_steps_are_warnings_not_errors(catalog_dir: Path) -> None:
    write(catalog_dir, {"land/v1.yaml": """\
        procedure: P1
        name: Thủ tục một
        version: 1
        steps:
          - {id: S01, name: a, days: 1, next: [S02, S04]}
          - {id: S02, name: b, days: 1, next: [S09]}
          - {id: S03, name: c, days: 1, next: [S09]}
          - {id: S04, name: d, days: 1}
          - {id: S09, name: e, days: 1, final: true}
        """})
    catalog = load_catalog("workflows")

    assert catalog.warnings == (
        "workflows/land/v1.yaml:7:10: step 'S03' cannot be reached from the first step 'S01'.",
        "workflows/land/v1.yaml:8:10: step 'S04' is not final and has no next step; "
        "dossiers there cannot finish.",
    )
    assert len(catalog.versions) == 1


def test_procedure_renamed_between_versions_is_a_warning(catalog_dir: Path) -> None:
    write(catalog_dir, {
        "a/v1.yaml": SIMPLE + "field: Đất đai\n",
        "a/v2.yaml": SIMPLE.replace("version: 1", "version: 2").replace("một", "Một (mới)")
        + "field: Tài nguyên\n",
    })
    catalog = load_catalog("workflows")

    assert catalog.warnings == (
        "workflows/a/v2.yaml:2:7: procedure 'P1' is named 'Thủ tục Một (mới)' here "
        "but 'Thủ tục một' in workflows/a/v1.yaml.",
        "workflows/a/v2.yaml:7:8: procedure 'P1' has field 'Tài nguyên' here "
        "but 'Đất đai' in workflows/a/v1.yaml.",
    )
    # Both names find the procedure: paper registers keep using the old one.
    assert catalog.procedure_by_name() == {"thủ tục một": "P1", "thủ tục một (mới)": "P1"}


def test_name_shared_by_two_procedures_is_a_warning_and_not_matchable(catalog_dir: Path) -> None:
    write(catalog_dir, {
        "province/v1.yaml": SIMPLE,
        "district/v1.yaml": SIMPLE.replace("P1", "P2").replace("một", "MỘT"),
        "district/v2.yaml": SIMPLE.replace("P1", "P2").replace("version: 1", "version: 2"),
    })
    catalog = load_catalog("workflows")

    assert catalog.warnings == (
        "workflows/district/v1.yaml:2:7: name 'Thủ tục MỘT' is also used by procedure 'P1'; "
        "register rows with this name cannot be matched by name.",
    )
    assert catalog.procedure_by_name() == {}


# ---------------------------------------------------------------- errors: the folder


def test_missing_directory_is_reported_with_expected_pattern(catalog_dir: Path) -> None:
    assert problems_of("nowhere") == [
        "nowhere: no such directory. Expected workflow versions named v<N>.yaml below it "
        "(e.g. nowhere/land/v1.yaml)."
    ]


def test_file_given_as_catalog_is_reported(catalog_dir: Path) -> None:
    write(catalog_dir, {"v1.yaml": SIMPLE})

    assert problems_of("workflows/v1.yaml") == [
        "workflows/v1.yaml: not a directory. Expected workflow versions named v<N>.yaml below it "
        "(e.g. workflows/v1.yaml/land/v1.yaml)."
    ]


def test_directory_without_version_files_is_reported(catalog_dir: Path) -> None:
    write(catalog_dir, {"land/v1.yml": SIMPLE, "land/version1.yaml": SIMPLE})

    assert problems_of() == [
        "workflows: no workflow version files. Expected workflow versions named v<N>.yaml "
        "below it (e.g. workflows/land/v1.yaml)."
    ]


def test_file_not_in_utf8_is_reported(catalog_dir: Path) -> None:
    (catalog_dir / "v1.yaml").write_bytes("procedure: P1\nname: Thủ tục\n".encode("utf-16"))

    assert problems_of() == [
        "workflows/v1.yaml:1: not UTF-8 text (byte 0xff at offset 0). Hint: save the file as UTF-8."
    ]


# ---------------------------------------------------------------- errors: one file

HINT = ". Hint: check the indentation and quoting on this line and the one above."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "procedure: P1\nname: a\nversion: 1\nsteps:\n  - id: A\n    name: x: y\n",
            "workflows/land/v1.yaml:6:12: YAML syntax error: mapping values are not allowed in this context" + HINT,
            id="mapping-value",
        ),
        pytest.param(
            "procedure: P1\nsteps: [\n",
            "workflows/land/v1.yaml:3:1: YAML syntax error: did not find expected node content" + HINT,
            id="unclosed-flow",
        ),
        pytest.param(
            "procedure: P1\n---\nprocedure: P2\n",
            "workflows/land/v1.yaml:2:1: YAML syntax error: but found another document" + HINT,
            id="two-documents",
        ),
        pytest.param(
            'procedure: P1\nname: "a\x07"\n',
            "workflows/land/v1.yaml:2:9: YAML syntax error: control characters are not allowed "
            "(#x0007). Hint: remove the control character.",
            id="control-character",
        ),
        pytest.param(
            "# only a comment\n",
            "workflows/land/v1.yaml:1:1: empty file. "
            "Expected keys procedure, name, version, steps.",
            id="empty",
        ),
    ],
)
def test_unreadable_yaml_is_one_line_with_position(
    catalog_dir: Path, text: str, expected: str
) -> None:
    write(catalog_dir, {"land/v1.yaml": text})

    assert problems_of() == [expected]


STEPS_HINT = "Hint: a version lists its steps, e.g. - {id: S01, name: Tiếp nhận, days: 1, next: [S02]}."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "# procedure 42\n\nprocedure: P1\nname: a\nsteps: []\n",
            ["workflows/land/v1.yaml:3:1: 'version' is required. "
             "Keys here: procedure, name, steps. " + FORMAT_HINT,
             "workflows/land/v1.yaml:5:8: steps: [] should be non-empty. " + STEPS_HINT],
            id="required-and-empty-steps",
        ),
        pytest.param(
            SIMPLE.replace("days: 1, final", "days: abc, final"),
            ["workflows/land/v1.yaml:6:38: steps[1].days: 'abc' is not of type 'number'. " + FORMAT_HINT],
            id="days-type",
        ),
        pytest.param(
            SIMPLE.replace("days: 1, next", "days: -1, next"),
            ["workflows/land/v1.yaml:5:36: steps[0].days: -1 is less than the minimum of 0. " + FORMAT_HINT],
            id="days-negative",
        ),
        pytest.param(
            SIMPLE.replace("{id: B, name: Trả kết quả, ", "{id: B, "),
            ["workflows/land/v1.yaml:6:5: steps[1]: 'name' is required. "
             "Keys here: id, days, final. " + FORMAT_HINT],
            id="step-name-required",
        ),
        pytest.param(
            SIMPLE + "valid_from: 2021-02-31\n",
            ["workflows/land/v1.yaml:7:13: valid_from: '2021-02-31' is not a 'date'. " + FORMAT_HINT],
            id="impossible-date",
        ),
        pytest.param(
            SIMPLE.replace("version: 1", "version: '1'").replace("next: [B]", "next: B"),
            ["workflows/land/v1.yaml:3:10: version: '1' is not of type 'integer'. " + FORMAT_HINT,
             "workflows/land/v1.yaml:5:45: steps[0].next: 'B' is not of type 'array'. " + FORMAT_HINT],
            id="types-sorted-by-position",
        ),
        pytest.param(
            "procedure: P1\nname: a\nversion: 1\nsteps: {A: {}}\n",
            ["workflows/land/v1.yaml:4:8: steps: a mapping is not of type 'array'. " + STEPS_HINT],
            id="steps-mapping",
        ),
        pytest.param(
            SIMPLE.replace("final: true}", "final: true, may-end: true}"),
            ["workflows/land/v1.yaml:6:54: steps[1]: unknown key 'may-end'. Known: id, name, unit, days, next, final, "
             "may_end, start, side_of. " + FORMAT_HINT],
            id="step-key-misspelt",
        ),
        pytest.param(
            "- procedure: P1\n",
            ["workflows/land/v1.yaml:1:1: a list is not of type 'object'. " + FORMAT_HINT],
            id="top-level-list",
        ),
    ],
)
def test_structure_problems_point_at_the_node(
    catalog_dir: Path, text: str, expected: list[str]
) -> None:
    write(catalog_dir, {"land/v1.yaml": text})

    assert problems_of() == expected


def test_next_to_unknown_step_is_reported_with_line(catalog_dir: Path) -> None:
    write(catalog_dir, {"land/v3.yaml": """\
        procedure: "1.004227.000.00.00.H48"
        name: "Đăng ký biến động quyền sử dụng đất"
        version: 3
        steps:
        - {id: S01, name: a, days: 1, next: [S03]}
        - {id: S03, name: b, days: 1, next: [S06]}
        - {id: S06, name: c, days: 1, next: [S07]}
        - id: S07
          name: d
          days: 1
          next:
          - S08
          - S09
          - S10
        - {id: S08, name: e, days: 1, next: [S09]}
        - {id: S09, name: f, days: 1, final: true}
        """})

    assert problems_of() == [
        "workflows/land/v3.yaml:14:5: step 'S07' -> 'S10': no such step. "
        "Steps here: S01, S03, S06, S07, S08, S09."
    ]


def test_duplicate_step_id_points_at_the_second_and_names_the_first(catalog_dir: Path) -> None:
    again = "  - {id: A, name: again, days: 1, final: true}\n"
    write(catalog_dir, {"land/v1.yaml": SIMPLE + again})

    assert problems_of() == [
        "workflows/land/v1.yaml:7:10: duplicate step id 'A'; first defined at line 5. "
        "Step ids must be unique within a version."
    ]


def test_version_without_final_step_is_reported_at_steps_key(catalog_dir: Path) -> None:
    write(catalog_dir, {"land/v1.yaml": SIMPLE.replace(", final: true", "")})

    assert problems_of() == [
        "workflows/land/v1.yaml:4:1: no final step. "
        "Mark the step(s) that end the procedure with final: true."
    ]


def test_version_differing_from_file_name_is_reported(catalog_dir: Path) -> None:
    write(catalog_dir, {"land/v2.yaml": SIMPLE})

    assert problems_of() == [
        "workflows/land/v2.yaml:3:10: version 1 does not match the file name v2.yaml. "
        "Set version: 2 or rename the file."
    ]


def test_two_files_with_same_procedure_and_version_name_both(catalog_dir: Path) -> None:
    write(catalog_dir, {"a/v1.yaml": SIMPLE, "b/v1.yaml": SIMPLE})

    assert problems_of() == [
        "workflows/b/v1.yaml:1:12: procedure 'P1' version 1 is also defined in "
        "workflows/a/v1.yaml. Keep one file per version."
    ]


# ---------------------------------------------------------------- errors: many at once


def test_problems_in_several_files_are_all_reported_in_one_error(catalog_dir: Path) -> None:
    write(catalog_dir, {
        "a/v1.yaml": SIMPLE.replace("next: [B]", "next: [C]").replace(", final: true", ""),
        "a/v2.yaml": "procedure: P1\nname: [\n",
        "b/v1.yaml": SIMPLE.replace("version: 1", "version: 7"),
        "c/v1.yaml": SIMPLE,
        "d/v1.yaml": SIMPLE,
    })
    with pytest.raises(BadInput) as caught:
        load_catalog("workflows")

    assert str(caught.value) == "workflows: 6 problems in the workflow catalog."
    assert caught.value.problems == [
        "workflows/a/v1.yaml:4:1: no final step. "
        "Mark the step(s) that end the procedure with final: true.",
        "workflows/a/v1.yaml:5:46: step 'A' -> 'C': no such step. Steps here: A, B.",
        "workflows/a/v2.yaml:3:1: YAML syntax error: did not find expected node content" + HINT,
        "workflows/b/v1.yaml:3:10: version 7 does not match the file name v1.yaml. "
        "Set version: 1 or rename the file.",
        # a/v1.yaml has errors of its own, yet it still claims (P1, 1).
        "workflows/c/v1.yaml:1:12: procedure 'P1' version 1 is also defined in "
        "workflows/a/v1.yaml. Keep one file per version.",
        "workflows/d/v1.yaml:1:12: procedure 'P1' version 1 is also defined in "
        "workflows/a/v1.yaml. Keep one file per version.",
    ]
