"""Hostile YAML in every file a person writes or edits: alias bombs, non-finite and out-of-range numbers,
booleans written as text, wrong shapes, repeated keys, over-large files, and a reviewer's plan edits that
name steps, versions or accounts the audit run does not know. Each is one line with file:line:col (or
the plan's line), exit 2, and nothing written."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from conftest import CASES
from helpers import invoke
from reconcile.fix import planrecord
from reconcile.fix import planfile
from reconcile.workflow.catalog import FORMAT_HINT
from reconcile.fix.commands import plan as make_plan
from reconcile.store import open_store

BASIC = CASES / "golden" / "basic"
BPMN = CASES / "bpmn"
ALIAS = ("error: {path}:1:4: YAML anchor &a is used by an alias (*a): anchors and aliases are not read here. "
         "Hint: write the value out in full where the alias is.")
# "Billion laughs": 9 lists of 9 references to the list above: 9^9 (387 million) strings once expanded.
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
MAPPING = """\
writable: false
dossier:
  table: HS_HOSO
  columns: {dossier_code: MA_HOSO, status: TRANGTHAI, received_at: NGAY_TIEPNHAN}
  status_values: {2: in_progress}
account:
  table: DM_CANBO
  columns: {account: TAIKHOAN, active: TRANGTHAI_HD}
"""


def digest(url: str) -> str:
    """Every table's rows of a database, hashed (the order of rows does not count)."""
    h = hashlib.sha256()
    if url.startswith("duckdb:///"):
        conn = duckdb.connect(url[len("duckdb:///"):], read_only=True)
        tables = {name: conn.sql(f'SELECT * FROM "{name}"').fetchall() for (name,) in conn.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        conn.close()
    else:
        engine = sa.create_engine(url)
        with engine.connect() as c:
            md = sa.MetaData()
            md.reflect(c)
            tables = {name: c.execute(sa.select(t)).all() for name, t in md.tables.items()}
        engine.dispose()
    for name in sorted(tables):
        h.update(name.encode())
        for row in sorted(repr(tuple(r)) for r in tables[name]):
            h.update(row.encode())
    return h.hexdigest()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def audit_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["audit", "--register", str(BASIC / "register-2021.csv"), "--system", str(BASIC / "system"),
            "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30", "--store", str(tmp_path / "s.duckdb"),
            *extra]


def refused(tmp_path: Path, *args: str) -> str:
    """Exit 2, no traceback, no store: the error lines."""
    result = invoke(*args, expect=2)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.duckdb").exists(), "bad input must not create or touch the store"
    return result.stderr.strip()

# ------------------------------------------------------------------------------ alias bombs


def _bomb_case(name: str, tmp: Path) -> tuple[list[str], Path]:
    """The command reading a bomb with the reader `name`, and the file holding the bomb (used where that
    reader walks or prints the value)."""
    store = ["--store", str(tmp / "s.duckdb")]
    if name == "catalog":
        path = write(tmp / "wf" / "land" / "v1.yaml", BOMB + "procedure: P\nname: *i\nversion: 1\nsteps: *i\n")
        return ["workflows", "check", str(tmp / "wf")], path
    if name == "rules":
        shutil.copytree(BASIC / "workflows", tmp / "wf")
        path = write(tmp / "wf" / "land" / "rules.yaml", BOMB + "procedure: '1.004227.000.00.00.H48'\nrules: *i\n")
        return ["rules", "check", str(tmp / "wf")], path
    side = BOMB + "steps: *i\n"
    if name == "bpmn-sidecar":
        write(tmp / "wf" / "land" / "v1.bpmn", (BPMN / "land-v1.bpmn").read_text(encoding="utf-8"))
        return ["workflows", "check", str(tmp / "wf")], write(tmp / "wf" / "land" / "v1.bpmn.yaml", side)
    if name == "import-bpmn-sidecar":
        return (["workflows", "import-bpmn", str(BPMN / "land-v1.bpmn"), "--sidecar", str(tmp / "side.yaml")],
                write(tmp / "side.yaml", side))
    if name == "activiti-sidecars":
        return (["audit", "--register", str(BASIC / "register-2021.csv"), "--system", f"sqlite:///{tmp / 'e.sqlite'}",
                 "--profile", "activiti", "--sidecars", str(tmp / "sc"), "--as-of", "2021-06-30", *store],
                write(tmp / "sc" / "P.yaml", side))
    if name == "project":
        path = write(tmp / "reconcile.yaml", BOMB + "paper_only_units: *i\n")
        return [*audit_args(tmp), "--config", str(path)], path
    if name == "mapping":
        path = write(tmp / "m.yaml", BOMB + MAPPING.replace("TRANGTHAI_HD}\n", "TRANGTHAI_HD}\n  active_values: *i\n"))
        return (["audit", "--register", str(BASIC / "register-2021.csv"), "--system", f"sqlite:///{tmp / 'v.sqlite'}",
                 "--mapping", str(path), "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30", *store],
                path)
    if name == "register-mapping":
        path = write(tmp / "rm.yaml", BOMB + "sheets: *i\n")
        return audit_args(tmp, "--register-mapping", str(path)), path
    plan = "plan: {format: 1, store: x, run: 1, run_fingerprint: x}\nactions: *i\n"
    if name == "plan":
        return ["apply", str(write(tmp / "plan.yaml", BOMB + plan)), *store], tmp / "plan.yaml"
    # The commands that show a plan's effect read it with apply's reader, after opening an audited store
    # (DuckDB reserves more address space than the limit allows): 9^6 strings, without a limit.
    path = write(tmp / "plan.yaml", BOMB.split("g:")[0] + plan.replace("*i", "*f"))
    invoke(*audit_args(tmp)[:-1], str(tmp / "audited.duckdb"), expect=1)
    at = ["--store", str(tmp / "audited.duckdb"), "--plan", str(path)]
    commands = {"stats-plan": ["stats", "--view", "after-plan"], "report-plan": ["report", "--out", str(tmp / "r")],
                "tickets-plan": ["tickets", "--out", str(tmp / "t")]}
    return [*commands[name], *at], path


READERS = ["catalog", "rules", "bpmn-sidecar", "import-bpmn-sidecar", "activiti-sidecars", "project", "mapping",
           "register-mapping", "plan", "stats-plan", "report-plan", "tickets-plan"]


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # an expanded bomb fails here, not the machine


@pytest.mark.parametrize("reader", READERS)
def test_alias_bomb_is_refused_by_every_yaml_reader(reader: str, tmp_path: Path) -> None:
    args, path = _bomb_case(reader, tmp_path)
    # A process of its own with 2 GiB of address space: an expanded bomb fails there (or times out).
    result = subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, timeout=120,
                            preexec_fn=None if reader.endswith("-plan") else _limited, cwd=tmp_path,
                            env={**os.environ, "NO_COLOR": "1"})
    assert (result.returncode, result.stderr.strip()) == (2, ALIAS.format(path=path))
    assert not (tmp_path / "s.duckdb").exists()

# ------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize(("days", "col", "what"), [
    (".nan", 60, "'.nan' is not a finite number. Hint: write a number such as 5 or 0.5."),
    ("-.inf", 60, "'-.inf' is not a finite number. Hint: write a number such as 5 or 0.5."),
    ("1.0e+999", 60, "'1.0e+999' is not a finite number. Hint: write a number such as 5 or 0.5."),
    ("5000", 60, f"steps[0].days: 5000 is greater than the maximum of 1000. {FORMAT_HINT}"),
])
def test_step_days_that_are_not_a_real_count_are_refused_by_the_catalog_check(tmp_path: Path, days: str, col: int,
                                                                               what: str) -> None:
    wf = tmp_path / "wf"
    shutil.copytree(BASIC / "workflows", wf)
    v1 = wf / "land" / "v1.yaml"
    text = v1.read_text(encoding="utf-8")
    assert "days: 0.5," in text
    v1.write_text(text.replace("days: 0.5,", f"days: {days},", 1), encoding="utf-8")
    line = next(i for i, t in enumerate(v1.read_text(encoding="utf-8").splitlines(), 1) if f"days: {days}," in t)
    where = f"{v1}:{line}:{col}"
    assert refused(tmp_path, "workflows", "check", str(wf)) == f"error: {where}: {what}"
    assert refused(tmp_path, *audit_args(tmp_path)[:5], "--workflows", str(wf), "--as-of", "2021-06-30",
                   "--store", str(tmp_path / "s.duckdb")) == f"error: {where}: {what}"


def test_a_version_number_the_store_cannot_hold_is_refused_by_the_catalog_check(tmp_path: Path) -> None:
    big = 10**20
    text = (BASIC / "workflows" / "land" / "v1.yaml").read_text(encoding="utf-8")
    v = write(tmp_path / "wf" / "land" / f"v{big}.yaml", text.replace("version: 1", f"version: {big}"))
    line = next(i for i, t in enumerate(v.read_text(encoding="utf-8").splitlines(), 1) if t.startswith("version:"))
    assert refused(tmp_path, "workflows", "check", str(tmp_path / "wf")) == (
        f"error: {v}:{line}:10: version: {big} is greater than the maximum of 2147483647. {FORMAT_HINT}")


def test_sidecar_days_must_be_finite(tmp_path: Path) -> None:
    side = write(tmp_path / "side.yaml", "steps:\n  S01: {days: .inf}\n")
    assert refused(tmp_path, "workflows", "import-bpmn", str(BPMN / "land-v1.bpmn"), "--sidecar", str(side)) == (
        f"error: {side}:2:15: '.inf' is not a finite number. Hint: write a number such as 5 or 0.5.")

# ------------------------------------------------------------------------------ reading


def test_nesting_deeper_than_the_parser_takes_is_refused(tmp_path: Path) -> None:
    v1 = write(tmp_path / "wf" / "land" / "v1.yaml", "steps: " + "[" * 5000 + "]" * 5000 + "\n")
    err = refused(tmp_path, "workflows", "check", str(tmp_path / "wf"))
    assert err.startswith(f"error: {v1}:1:") and "nesting depth" in err and "Traceback" not in err


def test_a_file_larger_than_a_settings_file_can_be_is_refused(tmp_path: Path) -> None:
    mapping = write(tmp_path / "m.yaml", MAPPING + "# " + "x" * (1 << 20) + "\n")
    args = ["audit", "--register", str(BASIC / "register-2021.csv"), "--system", f"sqlite:///{tmp_path / 'v.sqlite'}",
            "--mapping", str(mapping), "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30",
            "--store", str(tmp_path / "s.duckdb")]
    assert refused(tmp_path, *args) == (f"error: {mapping}: larger than 1 MiB; this kind of file is a few kB. Hint: "
                                        "check that it is the right file.")


# ------------------------------------------------------------------------------ plan files


@pytest.fixture(scope="module")
def basic_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The basic case audited (csv profile: apply writes the store's snapshot) and its plan file."""
    work = tmp_path_factory.mktemp("basic")
    store = str(work / "store.duckdb")
    invoke(*audit_args(work)[:-1], store, expect=1)
    invoke("plan", "--store", store, "--out", str(work / "plan.yaml"), expect=0)
    return work, (work / "plan.yaml").read_text(encoding="utf-8")


def edited(work: Path, tmp_path: Path, plan: str, old: str, new: str) -> Path:
    assert old in plan
    store = tmp_path / "store.duckdb"
    shutil.copy(work / "store.duckdb", store)
    return write(tmp_path / "plan.yaml", plan.replace(old, new, 1).replace(str(work / "store.duckdb"), str(store)))


def apply_refused(plan: Path, expected: int = 2) -> str:
    """apply --yes refused with `expected`, the store (the csv profile's system too) unchanged."""
    store = str(plan.parent / "store.duckdb")
    before = digest(f"duckdb:///{store}")
    result = invoke("apply", str(plan), "--store", store, "--yes", expect=expected)
    assert "Traceback" not in result.stderr
    assert digest(f"duckdb:///{store}") == before
    return result.stderr.strip()


REASSIGN = '  assignee: vpdk.an\n  set: {"assignee": "vpdk.an"}'


def line_of(plan: Path, code: str) -> int:
    return next(i for i, line in enumerate(plan.read_text(encoding="utf-8").splitlines(), 1)
                if line == f"- dossier_code: {code}")


def test_a_key_given_twice_in_a_plan_action_is_refused_with_its_line(basic_store: tuple[Path, str],
                                                                     tmp_path: Path) -> None:
    work, plan = basic_store
    path = edited(work, tmp_path, plan, REASSIGN, REASSIGN + "\n  confirmed: false")
    line = next(i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if text == "  confirmed: false" and i > line_of(path, "000.00.53.H48-210105-0012"))
    first = line - 4
    assert apply_refused(path) == (f"error: {path}:{line}:3: duplicate key 'confirmed' (first at {first}:3). Hint: "
                                   "keep one; YAML would silently keep only the last.")


def test_a_control_character_in_a_plan_file_is_one_line(basic_store: tuple[Path, str], tmp_path: Path) -> None:
    work, plan = basic_store
    path = edited(work, tmp_path, plan, "reason: assignee vpdk.cu", "reason: assignee\x07 vpdk.cu")
    line = next(i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "\x07" in text)
    assert apply_refused(path) == (f"error: {path}:{line}:19: YAML syntax error: control characters are not allowed "
                                   "(#x0007). Hint: remove the control character.")


def test_a_huge_value_in_a_plan_file_is_quoted_short(basic_store: tuple[Path, str], tmp_path: Path) -> None:
    work, plan = basic_store
    huge = "x" * 1_000_000
    path = edited(work, tmp_path, plan, "  action: reassign", f"  action: {huge}")
    line = line_of(path, "000.00.53.H48-210105-0012") + 1
    assert apply_refused(path) == (f"error: {path}:{line}: action '{'x' * 59}… (1,000,002 characters): expected one "
                                   "of migrate, reassign, close, backfill, escalate.")


def test_a_plan_file_with_dates_yaml_cannot_construct_is_one_line(basic_store: tuple[Path, str],
                                                                  tmp_path: Path) -> None:
    work, plan = basic_store
    old = 'set: {"status": "returned", "returned_at": "2021-01-20", "finished_at": "2021-01-20"}'
    path = edited(work, tmp_path, plan, old, old.replace('"2021-01-20"', "2021-02-30", 1) + "  # edited")
    line = next(i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "# edited" in text)
    assert apply_refused(path) == (f"error: {path}:{line}: set.returned_at: '2021-02-30' is not a date. Expected "
                                   "YYYY-MM-DD (or an ISO date and time).")


# ------------------------------------------------------------------------------ mappings

MAPPING_HINT = 'Hint: see "System: mapping profile" in docs/file-formats.md.'


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("writable: false", 'writable: "false"', "1:11: writable: 'false' is not of type 'boolean'. Hint: write true or "
                                             "false, without quotes; only true lets apply write."),
    ("writable: false", "writable: 1", "1:11: writable: 1 is not of type 'boolean'. Hint: write true or false, "
                                       "without quotes; only true lets apply write."),
    ("{2: in_progress}", "banana", "5:18: dossier.status_values: 'banana' is not of type 'object'. Hint: vendor "
                                   "value: canonical status, e.g. {0: submitted, 1: received}."),
    ("{2: in_progress}", "{2: busy}", "5:22: dossier.status_values.2: 'busy' is not one of: submitted, received, "
                                      "rejected, in_progress, supplement_requested, awaiting_payment, withdrawn, "
                                      "stopped, finished, returned. " + MAPPING_HINT),
    ("TRANGTHAI_HD}\n", "TRANGTHAI_HD}\n  active_values: 1\n", "9:18: account.active_values: 1 is not of type "
                                                               "'array'. Hint: the values that mean active, as a "
                                                               "list: [1]."),
    ("{dossier_code: MA_HOSO, status: TRANGTHAI, received_at: NGAY_TIEPNHAN}", "[MA_HOSO, TRANGTHAI]",
     f"4:12: dossier.columns: a list is not of type 'object'. {MAPPING_HINT}"),
    ("table: HS_HOSO", "table: 5", f"3:10: dossier.table: 5 is not of type 'string'. {MAPPING_HINT}"),
    ("columns: {account: TAIKHOAN", "columns: {account: [TAIKHOAN]",
     f"8:22: account.columns.account: a list is not of type 'string'. {MAPPING_HINT}"),
    ("received_at: NGAY_TIEPNHAN", "received: NGAY_TIEPNHAN",
     "4:55: dossier.columns: unknown key 'received'. Known: dossier_code, procedure, field, applicant, phone, "
     "address, agency, channel, received_at, due_at, due_at_revised, finished_at, returned_at, status, workflow_key, "
     f"workflow_version. {MAPPING_HINT}"),
    ("writable: false\n", "writable: false\nwritable: true\n",
     "2:1: duplicate key 'writable' (first at 1:1). Hint: keep one; YAML would silently keep only the last."),
])
def test_source_mapping_of_the_wrong_shape_is_one_line_with_its_position(tmp_path: Path, old: str, new: str,
                                                                          expected: str) -> None:
    assert old in MAPPING
    mapping = write(tmp_path / "m.yaml", MAPPING.replace(old, new, 1))
    args = ["audit", "--register", str(BASIC / "register-2021.csv"), "--system", f"sqlite:///{tmp_path / 'v.sqlite'}",
            "--mapping", str(mapping), "--workflows", str(BASIC / "workflows"), "--as-of", "2021-06-30",
            "--store", str(tmp_path / "s.duckdb")]
    assert refused(tmp_path, *args) == f"error: {mapping}:{expected}"


REGISTER_HINT = 'Hint: see "Paper register" in docs/file-formats.md (--register-mapping).'


@pytest.mark.parametrize(("text", "expected"), [
    ('sheets: "Sổ 2021"\n', "1:9: sheets: 'Sổ 2021' is not of type 'array'. Hint: a list of sheet names: "
                            '["Sổ 2021"].'),
    ('header_row: "4"\n', f"1:13: header_row: '4' is not of type 'integer'. {REGISTER_HINT}"),
    ("header_row: 0\n", f"1:13: header_row: 0 is less than the minimum of 1. {REGISTER_HINT}"),
    ("period: {from: 2021-02-30, to: 2021-12-31}\n", "1:16: period.from: '2021-02-30' is not a 'date'. Hint: write "
                                                     "the date as YYYY-MM-DD."),
    ("period: {from: 2021-12-31, to: 2021-01-01}\n", "1:9: period: from 2021-12-31 is after to 2021-01-01. Hint: "
                                                     "swap the dates."),
    ("columns: [a, b]\n", f"1:10: columns: a list is not of type 'object'. {REGISTER_HINT}"),
])
def test_register_mapping_of_the_wrong_shape_is_one_line_with_its_position(tmp_path: Path, text: str,
                                                                            expected: str) -> None:
    rm = write(tmp_path / "rm.yaml", text)
    assert refused(tmp_path, *audit_args(tmp_path, "--register-mapping", str(rm))) == f"error: {rm}:{expected}"


# ------------------------------------------------------------------------------ project file

PROJECT_HINT = 'Hint: see "Project file" in docs/file-formats.md.'


@pytest.mark.parametrize(("text", "expected"), [
    ("as_of: [1]\n", "1:8: as_of: a list is not of type 'string'. Hint: a date, YYYY-MM-DD."),
    ("as_of: 2021-02-30\n", "1:8: as_of: '2021-02-30' is not a date. Expected YYYY-MM-DD or dd/mm/yyyy."),
    ("paper_only_units: {a: 1}\n", "1:19: paper_only_units: a mapping is not of type 'string', 'array'. Hint: a list "
                                   "of unit names."),
    ("stalled: banana\n", f"1:10: stalled: 'banana' is not of type 'object'. {PROJECT_HINT}"),
    ("stalled: {factor: .inf}\n", "1:19: '.inf' is not a finite number. Hint: write a number such as 5 or 0.5."),
    ("stalled: {factor: 1000}\n", f"1:19: stalled.factor: 1000 is greater than the maximum of 100.0. {PROJECT_HINT}"),
    ("date_tolerance_days: .nan\n", "1:22: '.nan' is not a finite number. Hint: write a number such as 5 or 0.5."),
    ("date_tolerance_days: '3'\n", f"1:22: date_tolerance_days: '3' is not of type 'integer'. {PROJECT_HINT}"),
    ("store: 5\n", "1:8: store: 5 is not of type 'string'. Hint: a path (relative to this file) or a URL, as text."),
    ("as-of: 2021-06-30\n", "1:1: unknown key 'as-of'. Known: as_of, register, system, mapping, workflows, sidecars, "
                            "register_mapping, store, staff, profile, tenant, schema, paper_only_units, "
                            f"date_tolerance_days, stalled, period, statistics, district. {PROJECT_HINT}"),
    ("as_of: 2021-06-30\nas_of: 2021-06-01\n", "2:1: duplicate key 'as_of' (first at 1:1). Hint: keep one; YAML "
                                               "would silently keep only the last."),
    ("statistics: {fields: banana}\n", f"1:22: statistics.fields: 'banana' is not of type 'array'. {PROJECT_HINT}"),
])
def test_project_file_of_the_wrong_shape_is_one_line_with_its_position(tmp_path: Path, text: str,
                                                                         expected: str) -> None:
    config = write(tmp_path / "reconcile.yaml", text)
    assert refused(tmp_path, *audit_args(tmp_path), "--config", str(config)) == f"error: {config}:{expected}"


# ------------------------------------------------------------------------------ plan edits against the run

ESCALATE = ("- dossier_code: 000.00.53.H48-210106-0014\n  action: escalate", "- dossier_code: "
            "000.00.53.H48-210106-0014\n  action: migrate")
DEAD_END_SET = "fingerprint: c1d13e459a8fa6e6a49841bb9ea48f03\n  set: {}"


@pytest.mark.parametrize(("who", "why"), [
    ("nobody", "set.assignee 'nobody' is not an account in audit run 1's staff directory"),
    ("vpdk.cu", "set.assignee 'vpdk.cu' is inactive in audit run 1's staff directory"),
    ("tckh.ha", "set.assignee tckh.ha belongs to unit TCKH, not to the dossier's unit VPDK"),
])
def test_reassign_edited_to_an_account_the_run_does_not_allow_is_refused(basic_store: tuple[Path, str],
                                                                         tmp_path: Path, who: str, why: str) -> None:
    work, plan = basic_store
    path = edited(work, tmp_path, plan, REASSIGN, REASSIGN.replace("vpdk.an", who))
    line = line_of(path, "000.00.53.H48-210105-0012")
    assert apply_refused(path) == (f"error: {path}:{line}: dossier 000.00.53.H48-210105-0012: {why}. Hint: active "
                                   "accounts of VPDK: vpdk.an.")


LAND = "1.004227.000.00.00.H48"


@pytest.mark.parametrize(("target", "why"), [
    ('{"workflow_version": 2, "current_step": "S99"}',
     f"step 'S99' is not a step of version 2 of {LAND}. Hint: steps there: S01, S03, S06, S08, S10, S11, S09."),
    ('{"workflow_version": 9, "current_step": "S03"}',
     f"version 9 of procedure {LAND} is not in audit run 1's catalog. Hint: versions there: 1, 2."),
    ('{"workflow_version": 2, "current_step": "S10"}',
     f"step S10 of version 2 of {LAND} cannot reach a final step. Hint: choose a step from which the procedure can "
     "finish: S01, S03, S06, S08, S11, S09."),
    ('{"workflow_key": "9.999", "workflow_version": 1, "current_step": "S01"}',
     "version 1 of procedure 9.999 is not in audit run 1's catalog. Hint: the catalog has no version of it; escalate "
     "the dossier instead."),
])
def test_migrate_edited_to_a_step_the_run_catalog_lacks_is_refused(basic_store: tuple[Path, str], tmp_path: Path,
                                                                   target: str, why: str) -> None:
    work, plan = basic_store
    path = edited(work, tmp_path, plan.replace(*ESCALATE), DEAD_END_SET, DEAD_END_SET.replace("{}", target))
    line = line_of(path, "000.00.53.H48-210106-0014")
    assert apply_refused(path) == f"error: {path}:{line}: dossier 000.00.53.H48-210106-0014: {why}"


@pytest.mark.parametrize("command", [("stats", "--view", "after-plan"), ("report", "--format", "json"), ("tickets",)])
def test_stats_report_and_tickets_refuse_a_plan_apply_would_refuse(basic_store: tuple[Path, str], tmp_path: Path,
                                                                   command: tuple[str, ...]) -> None:
    work, plan = basic_store
    path = edited(work, tmp_path, plan, REASSIGN, REASSIGN.replace("vpdk.an", "nobody"))
    line = line_of(path, "000.00.53.H48-210105-0012")
    store = tmp_path / "store.duckdb"
    before = digest(f"duckdb:///{store}")
    result = invoke(*command, "--plan", str(path), "--store", str(store), "--out", str(tmp_path / "out"), expect=2)
    assert result.stderr == (f"error: {path}:{line}: dossier 000.00.53.H48-210105-0012: set.assignee 'nobody' is not "
                             "an account in audit run 1's staff directory. Hint: active accounts of VPDK: vpdk.an.\n")
    assert digest(f"duckdb:///{store}") == before and not (tmp_path / "out").exists()


def test_migrate_edited_to_a_step_the_run_catalog_has_is_applied(basic_store: tuple[Path, str],
                                                                 tmp_path: Path) -> None:
    work, plan = basic_store
    target = '{"workflow_version": 2, "current_step": "S08"}'
    path = edited(work, tmp_path, plan.replace(*ESCALATE), DEAD_END_SET, DEAD_END_SET.replace("{}", target))
    result = invoke("apply", str(path), "--store", str(tmp_path / "store.duckdb"), "--yes", expect=0)
    assert "3 written" in result.stderr


def test_a_plan_whose_targets_the_run_does_not_know_is_not_recorded(basic_store: tuple[Path, str],
                                                                    tmp_path: Path) -> None:
    work, _ = basic_store
    shutil.copy(work / "store.duckdb", tmp_path / "store.duckdb")
    store_url = str(tmp_path / "store.duckdb")
    data = make_plan(store_url).to_dict()
    reassign = next(a for a in data["actions"] if a["action"] == "reassign")
    reassign["assignee"] = reassign["set"]["assignee"] = "nobody"
    text = planfile.dump(data)
    store = open_store(store_url, create=False)
    try:
        assert planrecord.record_plan(store, data, text) is False
    finally:
        store.engine.dispose()
    path = write(tmp_path / "plan.yaml", text)
    assert "'nobody' is not an account in audit run 1's staff directory" in apply_refused(path)
