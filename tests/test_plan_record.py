"""Plans recorded by `reconcile plan`: apply reads a file byte-identical to a recorded plan from the store
(header checked as ever), and any other file (edited, recorded for another run or store) in full."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import invoke
from reconcile.fix import apply as ap
from reconcile.fix import checks
from reconcile.fix import planread
from reconcile.fix import planrecord
from reconcile.errors import BadInput
from reconcile.fix import undo as un
from reconcile.fix import commands as fix_commands
from reconcile.audit.inputs import AuditInputs
from reconcile.audit.commands import audit
from reconcile.demo.simulate import simulate
from reconcile.util import yamlio
from reconcile.store import SCHEMA_VERSION, meta_table, open_store, plan_action, plan_file


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("district")
    simulate(out, scale=0.05)
    return out


def planned(district: Path, tmp: Path, store_url: str) -> Path:
    """A private copy of the district audited into `store_url`, and its plan written by `reconcile plan`."""
    work = tmp / "d"
    shutil.copytree(district, work)
    audit(AuditInputs(register=tuple(str(p) for p in (work / "register").iterdir()),
                      system=f"sqlite:///{work / 'system' / 'binh-son-igate.sqlite'}",
                      workflows=str(work / "workflows"), as_of=date(2021, 6, 30),
                      mapping=str(work / "system" / "mapping.yaml")), store_url)
    plan = tmp / "plan.yaml"
    invoke("plan", "--out", str(plan), "--store", store_url, expect=0)
    return plan


def full_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The plan files apply reads in full (load_plan) from now on."""
    calls: list[Path] = []
    real = planread.load_plan
    monkeypatch.setattr(checks, "load_plan", lambda path: calls.append(Path(path)) or real(path))
    return calls


def recorded(plan: Path, store_url: str) -> planread.PlanFile | None:
    found, store = planrecord.recorded_plan(plan, store_url)
    if store is not None:
        store.engine.dispose()
    return found


def outcomes(result: ap.ApplyResult) -> list[dict[str, Any]]:
    return [o.to_dict() | {"batch": None} for o in result.outcomes]


def test_a_recorded_plan_is_read_from_the_store_and_applies_as_read_in_full(
        district: Path, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = planned(district, tmp_path, store_url)
    text = plan.read_text(encoding="utf-8")
    assert text == fix_commands.plan(store_url).to_yaml()  # the file's text is the plan's as ever
    edited = tmp_path / "edited.yaml"
    edited.write_text(text + "# reviewed: nothing changed\n", encoding="utf-8")  # same actions, same lines

    full = planread.load_plan(plan)
    fast = recorded(plan, store_url)
    assert fast == full and len(full.actions) > 10
    assert [a.reason_args for a in fast.actions] == [a.reason_args for a in full.actions]
    assert {a.action for a in full.actions} >= {"reassign", "close", "migrate", "escalate", "backfill"}
    assert recorded(edited, store_url) is None

    reads = full_reads(monkeypatch)
    dry, dry_edited = ap.apply_plan(plan, store_url), ap.apply_plan(edited, store_url)
    assert reads == [edited]
    assert outcomes(dry) == outcomes(dry_edited)
    assert dry.script.split("\n", 1)[1] == dry_edited.script.split("\n", 1)[1]  # but the first line: file, sha256

    applied = ap.apply_plan(plan, store_url, yes=True)
    assert applied.counts()["written"] == dry.counts()["would_write"] > 0
    list(un.undo_batches(sorted(applied.batches, reverse=True), store_url, yes=True))
    again = ap.apply_plan(edited, store_url, yes=True)
    assert outcomes(again) == outcomes(applied) and again.counts() == applied.counts()
    assert reads == [edited, edited]


def test_an_edited_recorded_plan_is_checked_in_full_with_file_and_line(
        district: Path, tmp_path: Path, store_url: str) -> None:
    plan = planned(district, tmp_path, store_url)
    lines = plan.read_text(encoding="utf-8").splitlines()
    writing = [n for n, s in enumerate(lines)  # writing actions; 0-based: the item starts one line above
                if s in ("  action: reassign", "  action: close", "  action: migrate")]
    fingerprint = next(n for n in range(writing[0], len(lines)) if lines[n].startswith("  fingerprint: "))
    first = lines[writing[0] - 1]
    bad = tmp_path / "bad.yaml"

    edit = list(lines)
    edit[fingerprint] = "  fingerprint: zz"
    bad.write_text("\n".join(edit) + "\n", encoding="utf-8")
    err = invoke("apply", str(bad), "--store", store_url, expect=2).stderr
    assert f"{bad}:{fingerprint + 1}: fingerprint 'zz': expected the 32-hex-digit" in err

    edit = list(lines)  # a fingerprint of another row, a dossier the run does not hold: both, by line
    edit[fingerprint] = "  fingerprint: " + "f" * 32
    edit[writing[1] - 1] = "- dossier_code: 000.00.00.H00-000000-9999999"
    bad.write_text("\n".join(edit) + "\n", encoding="utf-8")
    err = invoke("apply", str(bad), "--store", store_url, expect=2).stderr
    code = first.split(": ", 1)[1]
    assert err.count("error: ") == 2
    assert err.index(f"{bad}:{writing[0]}: dossier {code}: fingerprint {'f' * 32} is not the one audit run 1 "
                     "stored") < err.index(f"{bad}:{writing[1]}: dossier 000.00.00.H00-000000-9999999 is not a "
                                           "system dossier of audit run 1")


def test_a_plan_recorded_for_another_run_or_store_is_not_trusted(district: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store_url = str(tmp_path / "store.duckdb")
    plan = planned(district, tmp_path, store_url)
    other = str(tmp_path / "other.duckdb")
    shutil.copy(store_url, other)  # the copy holds the record too, but is not the plan's store
    reads = full_reads(monkeypatch)
    assert "plan made for the store" in invoke("apply", str(plan), "--store", other, expect=2).stderr

    result = fix_commands.plan(store_url)
    text = result.to_yaml()
    plan.write_text(text, encoding="utf-8")  # written without recording: not recorded for run 1
    store = open_store(store_url, create=False)
    with store.begin() as conn:
        conn.execute(sa.delete(plan_action))  # the CLI's own record of it, gone
        conn.execute(sa.delete(plan_file))
    data = result.to_dict()
    # the same text recorded for another run: run 2 is not in this store (its catalog and staff directory
    # hold none of the plan's targets: not recorded); run 1 with another fingerprint is recorded
    assert not planrecord.record_plan(store, data | {"plan": data["plan"] | {"run": 2}}, text)
    assert planrecord.record_plan(store, data | {"plan": data["plan"] | {"run_fingerprint": "0" * 16}}, text)
    store.engine.dispose()
    assert recorded(plan, store_url) is None
    invoke("apply", str(plan), "--store", store_url, "--dry-run", expect=0)
    assert reads[-1] == plan

    # actions apply would refuse are not recorded (apply reads such a file in full and says why)
    data["actions"][0] = data["actions"][0] | {"set": {"workflow_key": "x"}}
    store = open_store(store_url, create=False)
    assert not planrecord.record_plan(store, data, text)
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(plan_file)).scalar() == 1
    store.engine.dispose()


def test_a_store_of_schema_7_gets_the_plan_tables(district: Path, tmp_path: Path, store_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    plan = planned(district, tmp_path, store_url)
    store = open_store(store_url, create=False)
    with store.begin() as conn:  # the store as schema 7 left it
        plan_action.drop(conn)
        plan_file.drop(conn)
        conn.execute(sa.update(meta_table).where(meta_table.c.key == "schema_version").values(value="7"))
    store.engine.dispose()
    assert recorded(plan, store_url) is None  # opening upgrades it: the tables are there, empty
    reads = full_reads(monkeypatch)
    invoke("apply", str(plan), "--store", store_url, "--dry-run", expect=0)
    assert reads == [plan]

    out = invoke("plan", "--store", store_url, expect=0).stdout  # to stdout: recorded as well
    plan.write_text(out, encoding="utf-8")
    invoke("apply", str(plan), "--store", store_url, "--dry-run", expect=0)
    assert reads == [plan]
    store = open_store(store_url, create=False)
    with store.connect() as conn:
        version = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
        plans = conn.execute(sa.select(plan_file.c.id, plan_file.c.run_id, plan_file.c.actions)).all()
    store.engine.dispose()
    assert version == str(SCHEMA_VERSION) == "13"
    assert [(i, run) for i, run, _ in plans] == [(1, 1)] and plans[0][2] == len(planread.load_plan(plan).actions)


def test_a_set_checked_once_still_finds_each_actions_own_problems(tmp_path: Path) -> None:
    header = ('plan:\n  format: 1\n  store: duckdb:///s.duckdb\n  run: 1\n  run_fingerprint: ab\n'
              '  system: {"profile": "mapping", "source": "sqlite:///v.sqlite"}\nactions:\n')
    item = "- dossier_code: D{n}\n  action: {kind}\n  rule: r\n  reason: why\n  fingerprint: {fp}\n{rest}\n"
    rows = [("reassign", '  assignee: a.b\n  set: {"assignee": "a.b"}')] * 2 + [
        ("reassign", '  assignee: x.y\n  set: {"assignee": "a.b"}'),  # the same set, its own pinned copy
        ("migrate", '  set: {"workflow_version": 1, "current_step": "S1"}'),
        ("migrate", '  set: {"workflow_version": true, "current_step": "S1"}')]  # equal to 1, not a version
    plan = tmp_path / "plan.yaml"
    plan.write_text(header + "".join(item.format(n=n, kind=kind, fp=f"{n:032x}".replace("0", "a"), rest=rest)
                                     for n, (kind, rest) in enumerate(rows)), encoding="utf-8")
    lines = plan.read_text(encoding="utf-8").splitlines()
    pinned, last = lines.index("  assignee: x.y") + 1, len(lines)
    with pytest.raises(BadInput) as raised:
        planread.load_plan(plan)
    assert raised.value.problems == [
        f"{plan}:{pinned}: assignee 'x.y' differs from set.assignee 'a.b'. Hint: edit both, or neither.",
        f"{plan}:{last}: set.workflow_version: True is not a version number."]


def test_a_store_that_refuses_the_record_still_gets_its_plan_file(district: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("read-only"))

    monkeypatch.setattr(planrecord, "bulk_insert", refuse)
    store_url = str(tmp_path / "store.duckdb")
    plan = planned(district, tmp_path, store_url)  # exit 0: the file is written
    assert plan.read_text(encoding="utf-8") == fix_commands.plan(store_url).to_yaml()
    assert recorded(plan, store_url) is None  # nothing recorded (the header row rolled back too)


def test_an_edited_header_lists_each_system_field_that_differs_from_the_run(
        district: Path, tmp_path: Path, store_url: str) -> None:
    plan = planned(district, tmp_path, store_url)
    text = plan.read_text(encoding="utf-8")
    head = next(line for line in text.splitlines() if line.startswith("  system: "))
    system = json.loads(head.split(": ", 1)[1])
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace(head, "  system: " + json.dumps(
        system | {"source": "sqlite:///other.sqlite", "mapping": "other.yaml"})), encoding="utf-8")
    err = invoke("apply", str(edited), "--store", store_url, expect=2).stderr
    hint = "Hint: the header is written by `reconcile plan`; plan again."
    assert err.splitlines() == [
        f"error: {edited}: plan.system.source 'sqlite:///other.sqlite' differs from audit run 1's "
        f"{yamlio.shown(system['source'])}. {hint}",
        f"error: {edited}: plan.system.mapping 'other.yaml' differs from audit run 1's "
        f"{yamlio.shown(system['mapping'])}. {hint}"]


def test_each_pinned_copy_an_edit_left_behind_is_listed(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text('plan:\n  format: 1\n  store: duckdb:///s.duckdb\n  run: 1\n  run_fingerprint: ab\n'
                    '  system: {"profile": "mapping", "source": "sqlite:///v.sqlite"}\nactions:\n'
                    f'- dossier_code: D1\n  action: migrate\n  rule: r\n  reason: why\n  fingerprint: {"a" * 32}\n'
                    '  version: 2\n  step: S9\n  set: {"workflow_version": 1, "current_step": "S1"}\n', encoding="utf-8")
    lines = plan.read_text(encoding="utf-8").splitlines()
    version, step = lines.index("  version: 2") + 1, lines.index("  step: S9") + 1
    with pytest.raises(BadInput) as raised:
        planread.load_plan(plan)
    assert raised.value.problems == [
        f"{plan}:{version}: version 2 differs from set.workflow_version 1. Hint: edit both, or neither.",
        f"{plan}:{step}: step 'S9' differs from set.current_step 'S1'. Hint: edit both, or neither."]
