"""apply / undo / history on the demo district: SQLite, PostgreSQL and MariaDB vendor databases, the
csv profile's store snapshot, stale rows, reruns, SIGKILL mid-run, and undo(apply(plan)) as a property."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from click.testing import CliRunner
from helpers import invoke, store_rows
from reconcile.fix import apply as ap
from reconcile.fix import batches
from reconcile.fix import changelog
from reconcile.fix import history
from reconcile.fix import settle
from reconcile.fix import targets
from reconcile.fix import values
from reconcile.fix import writes
from reconcile.fix import undo as un
from reconcile import cli
from reconcile.audit.inputs import AuditInputs
from reconcile.audit.commands import audit
from reconcile.faults import FAULT_ENV
from reconcile.demo.simulate import simulate
from reconcile.sources.system import load_mapping
from reconcile.store import audit_run, change, change_batch, dossier, mask_url, open_store

PAPER_ONLY = ("UBND xã Bình Tân Phú", "UBND xã Bình Hải")
VENDOR_TABLES = ("HS_HOSO", "HS_XULY_HIENTAI", "DM_CANBO", "HS_NHATKY")


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("district")
    simulate(out, scale=0.05)
    return out


@pytest.fixture(scope="module")
def csv_district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("csv-district")
    simulate(out, scale=0.05, register_format="csv", system_format="csv")
    return out


def audited(district: Path, tmp: Path, system_url: str | None = None) -> tuple[str, str, Path]:
    """A private copy of the district audited into a fresh store: (system URL, store path, mapping)."""
    work = tmp / "d"
    shutil.copytree(district, work)
    url = system_url or f"sqlite:///{work / 'system' / 'binh-son-igate.sqlite'}"
    mapping = work / "system" / "mapping.yaml"
    store = str(tmp / "store.duckdb")
    audit(AuditInputs(register=tuple(str(p) for p in (work / "register").iterdir()), system=url,
                      workflows=str(work / "workflows"), as_of=date(2021, 6, 30), mapping=str(mapping),
                      paper_only_units=PAPER_ONLY), store)
    return url, store, mapping


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        md = sa.MetaData()
        md.reflect(conn)
        out = {name: sorted(conn.execute(sa.select(t)).all(), key=repr) for name, t in md.tables.items()}
    engine.dispose()
    return out


def make_plan(store_url: str, path: Path, reassign: int = 3, close: int = 3, **extra: Any) -> list[dict[str, Any]]:
    """A plan written by hand: reassign a few open dossiers to another active account of their unit,
    close a few with a return date; plus an escalation and an unconfirmed guess that apply skips."""
    store = open_store(store_url, create=False)
    with store.connect() as conn:
        run = conn.execute(sa.select(audit_run).where(audit_run.c.id == 1)).mappings().one()
        d = dossier
        once = sa.select(d.c.dossier_code).where(d.c.run_id == 1).group_by(d.c.dossier_code) \
            .having(sa.func.count() == 1)
        rows = conn.execute(sa.select(d).where(d.c.run_id == 1, d.c.current_step.is_not(None),
                                               d.c.assignee.is_not(None), d.c.status == "in_progress",
                                               d.c.dossier_code.in_(once))
                            .order_by(d.c.dossier_code)).mappings().all()
        accounts = conn.execute(sa.text("SELECT account, unit FROM account WHERE run_id = 1 AND active "
                                        "ORDER BY account")).all()
    store.engine.dispose()
    actions: list[dict[str, Any]] = []
    for r in rows[:reassign]:
        other = next(a for a, u in accounts if u == r["unit"] and a != r["assignee"])
        actions.append({"dossier_code": r["dossier_code"], "action": "reassign", "rule": "default:reassign",
                        "reason": "hand-made", "fingerprint": r["fingerprint"], "confirmed": True,
                        "assignee": other, "set": {"assignee": other}})
    for k, r in enumerate(rows[reassign:reassign + close]):
        day = f"2021-06-{10 + k:02d}"
        actions.append({"dossier_code": r["dossier_code"], "action": "close", "rule": "default:close",
                        "reason": "returned on paper\nDROP TABLE x;", "fingerprint": r["fingerprint"],
                        "confirmed": True, "returned_at": day,
                        "set": {"status": "returned", "returned_at": day, "finished_at": day}})
    spare = rows[reassign + close:reassign + close + 2]
    if len(spare) == 2:
        actions.append({"dossier_code": spare[0]["dossier_code"], "action": "escalate", "rule": "default:escalate",
                        "reason": "no rule", "fingerprint": spare[0]["fingerprint"], "confirmed": True, "set": {}})
        actions.append({"dossier_code": spare[1]["dossier_code"], "action": "migrate", "rule": "guess",
                        "reason": "same name", "fingerprint": spare[1]["fingerprint"], "confirmed": False,
                        "version": 3, "step": "S02", "set": {"workflow_version": 3, "current_step": "S02"}})
    system = {k: v for k, v in json.loads(run["inputs"])["system"].items() if k in ("profile", "source", "mapping")}
    header = {"format": 1, "store": mask_url(store.url), "run": 1, "run_fingerprint": run["fingerprint"],
              "system": system, **extra}
    path.write_text(yaml.safe_dump({"plan": header, "actions": actions}, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return actions


def copy_vendor(sqlite_url: str, url: str) -> None:
    """The demo's vendor tables copied into another database (text columns as VARCHAR for MariaDB)."""
    src, dst = sa.create_engine(sqlite_url), sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(src)
    out = sa.MetaData()
    with src.connect() as s, dst.begin() as d:
        for name in VENDOR_TABLES:
            t = md.tables[name]
            cols = [sa.Column(c.name, sa.Integer if isinstance(c.type, sa.Integer) else sa.String(255))
                    for c in t.columns]
            new = sa.Table(name, out, *cols)
            new.create(d)
            rows = [dict(r._mapping) for r in s.execute(sa.select(t))]
            if rows:
                d.execute(new.insert(), rows)
    src.dispose()
    dst.dispose()


# ------------------------------------------------------------------------------------ tests


def test_fingerprint_recomputed_from_the_target_equals_the_audit(district: Path, tmp_path: Path) -> None:
    url, store_url, mapping = audited(district, tmp_path)
    store = open_store(store_url, create=False)
    with store.connect() as conn:
        stored = {r.code_raw: r.fingerprint for r in conn.execute(sa.select(dossier).where(dossier.c.run_id == 1))}
    target = targets.VendorTarget(url, load_mapping(mapping), store, 1, {"source": url})
    with target.begin_read() as conn:
        drows, tasks = (targets.BatchRows(conn.execute(target.selects[role]).all(), tuple(target.positions[role]))
                        for role in ("dossier", "task"))
    fps = target._fingerprints(drows, tasks)
    target.close()
    store.engine.dispose()
    # The audit fingerprints open dossiers only (what plans act on); apply recomputes every row's.
    fingerprinted = {code: fp for code, fp in stored.items() if fp is not None}
    assert len(fps) == len(drows.codes) == len(stored) > 500 and 100 < len(fingerprinted) < len(stored)
    assert {code: fp for code, fp in zip(drows.codes_raw, fps) if code in fingerprinted} == fingerprinted
    assert all(len(fp) == 32 for fp in fps)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql", "mariadb"])
def test_apply_then_undo_restores_the_vendor_database(district: Path, tmp_path: Path, engine: str,
                                                      request: pytest.FixtureRequest) -> None:
    sqlite_url = f"sqlite:///{district / 'system' / 'binh-son-igate.sqlite'}"
    system_url = None
    if engine != "sqlite":
        system_url = request.getfixturevalue("pg_url" if engine == "postgresql" else "mariadb_url")
        copy_vendor(sqlite_url, system_url)
    url, store, _ = audited(district, tmp_path, system_url)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan)
    original = snapshot(url)

    # dry run (non-interactive: exit 3) and --sql change nothing
    result = invoke("apply", str(plan), "--store", store, expect=3)
    assert "nothing written" in result.stderr and "UPDATE" in result.stdout
    assert all(line.startswith(("--", "UPDATE", "BEGIN", "START", "COMMIT")) for line in result.stdout.splitlines())
    invoke("apply", str(plan), "--store", store, "--sql", str(tmp_path / "fix.sql"), expect=0)
    script = (tmp_path / "fix.sql").read_text(encoding="utf-8")
    assert sum(line.startswith("UPDATE") for line in script.splitlines()) == 6  # 3 reassign (task table) + 3 close (dossier table); none for the others
    assert snapshot(url) == original

    result = invoke("apply", str(plan), "--store", store, "--yes", "--batch-size", "2", expect=0)
    assert "undo: reconcile undo 3 2 1" in result.stdout
    applied = snapshot(url)
    assert applied != original
    changed = history.history(store)
    assert [(b["id"], b["kind"], b["outcome"]) for b in changed] == [(1, "apply", "committed"), (2, "apply", "committed"),
                                                                      (3, "apply", "committed")]
    assert sum(b["dossiers"] for b in changed) == 6

    # applying again changes nothing and logs nothing
    result = invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    assert "6 already applied" in result.stderr and "unconfirmed" in result.stderr
    assert snapshot(url) == applied and len(history.history(store)) == 3

    invoke("undo", "1", "2", "3", "--store", store, "--yes", expect=0)
    assert snapshot(url) == original
    assert [b["undo_of"] for b in history.history(store)][3:] == [3, 2, 1]
    invoke("undo", "2", "--store", store, "--yes", expect=3)  # already undone
    hist = invoke("history", "--store", store, expect=0).stdout
    assert "undone by" in hist and "undo of 3" in hist


def test_a_dossier_changed_since_the_audit_is_refused_and_untouched(district: Path, tmp_path: Path) -> None:
    url, store, _ = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    actions = make_plan(store, plan)
    stale = actions[3]["dossier_code"]  # a close
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # someone edits the applicant's name in the vendor system
        conn.execute(sa.text("UPDATE HS_HOSO SET CHU_HOSO = CHU_HOSO || ' (sửa)' WHERE MA_HOSO = :c"), {"c": stale})
    before = snapshot(url)
    result = invoke("apply", str(plan), "--store", store, "--yes", expect=3)
    assert f"refused: {stale}" in result.stderr and "changed since the audit" in result.stderr
    after = snapshot(url)
    row = lambda snap: [r for r in snap["HS_HOSO"] if r[1] == stale]  # noqa: E731
    assert row(after) == row(before)
    assert after["HS_XULY_HIENTAI"] != before["HS_XULY_HIENTAI"]  # the others were written
    engine.dispose()


def test_undo_refuses_the_whole_batch_when_a_row_moved_on(district: Path, tmp_path: Path) -> None:
    url, store, _ = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    actions = make_plan(store, plan)
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE HS_XULY_HIENTAI SET TAIKHOAN_XULY = 'someone.else' WHERE MA_HOSO = :c"),
                     {"c": actions[0]["dossier_code"]})
    engine.dispose()
    before = snapshot(url)
    result = invoke("undo", "1", "--store", store, "--yes", expect=3)
    assert actions[0]["dossier_code"] in result.stderr and "'someone.else'" in result.stderr
    assert snapshot(url) == before
    assert [b["kind"] for b in history.history(store)] == ["apply"]


def test_undo_lists_every_moved_value_shows_the_logged_statements_and_logs_the_batch_swapped(
        district: Path, tmp_path: Path) -> None:
    """Undo --yes checks its rows by their compare-and-set UPDATEs: values moved in both tables are each
    listed (nothing written). Once they are back, the dry run shows one statement per logged row, as
    rendered from the log; the undo's change rows are the batch's, in its order, before and after swapped."""
    url, store, _ = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    actions = make_plan(store, plan)
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    opened = open_store(store, create=False)
    with opened.connect() as conn:
        logged = [dict(r) for r in conn.execute(sa.select(change).where(change.c.batch_id == 1)
                                                .order_by(change.c.seq)).mappings()]
    opened.engine.dispose()
    reassigned, closed = actions[0]["dossier_code"], actions[3]["dossier_code"]
    engine = sa.create_engine(url)
    moves = [("UPDATE HS_XULY_HIENTAI SET TAIKHOAN_XULY = 'someone.else' WHERE MA_HOSO = :c", reassigned),
             ("UPDATE HS_HOSO SET TRANGTHAI = 99, NGAY_TRAKQ = NULL WHERE MA_HOSO = :c", closed)]
    with engine.begin() as conn:
        for sql, code in moves:
            conn.execute(sa.text(sql), {"c": code})
    before = snapshot(url)
    result = invoke("undo", "1", "--store", store, "--yes", expect=3)
    moved = [r for r in logged if r["dossier_code"] == reassigned or (r["dossier_code"] == closed and r["column_name"]
                                                                        in ("TRANGTHAI", "NGAY_TRAKQ"))]
    shown = [line for line in result.stderr.splitlines() if "refused, nothing written: " in line]
    assert [line.split("written: ", 1)[1].split(" holds ")[0] for line in shown] == [
        f"{r['dossier_code']}: {r['table_name']}.{r['column_name']}" for r in moved]
    assert "holds 'someone.else'" in result.stderr and "holds 99" in result.stderr and "holds NULL" in result.stderr
    assert snapshot(url) == before and [b["kind"] for b in history.history(store)] == ["apply"]

    with engine.begin() as conn:  # the values as the batch wrote them
        for r in moved:
            conn.execute(sa.text(f"UPDATE {r['table_name']} SET {r['column_name']} = :v WHERE MA_HOSO = :c"),
                         {"v": values.decode_value(r["after_value"]), "c": r["dossier_code"]})
    md = sa.MetaData()
    md.reflect(engine)
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in logged:
        rows.setdefault((r["table_name"], r["row_key"]), []).append(r)
    expected = [writes.render_sql(writes.Write(
        rs[0]["dossier_code"], rs[0]["action"], rs[0]["rule"], md.tables[table],
        tuple((k, values.decode_value(v)) for k, v in sorted(json.loads(key).items())),
        tuple((r["column_name"], r["field"], values.decode_value(r["after_value"]), values.decode_value(r["before_value"]))
              for r in rs)).statement(), engine.dialect) for (table, key), rs in rows.items()]
    engine.dispose()
    shown_dry = un.undo(1, store)
    assert list(shown_dry.statements) == expected and shown_dry.rows == len(rows) == 6
    assert shown_dry.changes == len(logged) and [b["kind"] for b in history.history(store)] == ["apply"]

    done = un.undo(1, store, yes=True)
    assert done.undo_batch == 2 and done.rows == 6
    opened = open_store(store, create=False)
    with opened.connect() as conn:
        undone = [dict(r) for r in conn.execute(sa.select(change).where(change.c.batch_id == 2)
                                                .order_by(change.c.seq)).mappings()]
        counts = conn.execute(sa.select(change_batch.c.id, change_batch.c.dossiers, change_batch.c.changes)
                              .order_by(change_batch.c.id)).all()
    opened.engine.dispose()
    assert undone == [r | {"batch_id": 2, "before_value": r["after_value"], "after_value": r["before_value"]}
                      for r in logged]
    assert [tuple(c) for c in counts] == [(1, 6, len(logged)), (2, 6, len(logged))]


def test_apply_and_undo_ask_on_a_terminal_and_refuse_elsewhere(district: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url, store, _ = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan)
    original = snapshot(url)
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)
    answered = CliRunner().invoke(cli.main, ["apply", str(plan), "--store", store], input="y\n")
    assert answered.exit_code == 0 and "Write these changes?" in answered.stderr
    applied = snapshot(url)
    assert applied != original and [b["kind"] for b in history.history(store)] == ["apply"]
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: False)  # a script: show, write nothing, exit 3
    result = invoke("undo", "1", "--store", store, expect=3)
    assert "UPDATE" in result.stdout and result.stderr == (
        "error: dry run: nothing written. Hint: add --yes to restore the values (stdin is not a terminal, so undo "
        "cannot ask), or --dry-run to only show the statements.\n")
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)
    answered = CliRunner().invoke(cli.main, ["undo", "1", "--store", store], input="n\n")
    assert answered.exit_code == 3 and "Restore these values?" in answered.stderr
    assert "UPDATE" in answered.stdout and "error: nothing written." in answered.stderr
    assert snapshot(url) == applied and [b["kind"] for b in history.history(store)] == ["apply"]
    answered = CliRunner().invoke(cli.main, ["undo", "1", "--store", store], input="y\n")
    assert answered.exit_code == 0 and "batch 1 undone by batch 2" in answered.stdout
    assert snapshot(url) == original and [b["kind"] for b in history.history(store)] == ["apply", "undo"]


def test_bad_plans_are_refused_with_file_and_line(district: Path, tmp_path: Path) -> None:
    url, store, mapping = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan)
    text = plan.read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("action: reassign", "action: [reassign", 1), encoding="utf-8")
    assert f"{bad}:" in invoke("apply", str(bad), "--store", store, expect=2).stderr
    bad.write_text(text.replace("action: reassign", "action: move", 1), encoding="utf-8")
    err = invoke("apply", str(bad), "--store", store, expect=2).stderr
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "action: reassign" in s)
    assert f"{bad}:{line}: action 'move'" in err
    bad.write_text(text.replace("status: returned", "status: done", 1), encoding="utf-8")
    assert "is not a canonical status" in invoke("apply", str(bad), "--store", store, expect=2).stderr
    data = yaml.safe_load(text)
    data["plan"]["run_fingerprint"] = "0" * 16
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert "fingerprint" in invoke("apply", str(bad), "--store", store, expect=2).stderr
    data = yaml.safe_load(text)
    data["plan"]["run"] = 7
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert "audit run 7" in invoke("apply", str(bad), "--store", store, expect=2).stderr
    other = str(tmp_path / "other.duckdb")
    shutil.copy(store, other)
    assert "plan made for the store" in invoke("apply", str(plan), "--store", other, expect=2).stderr
    data = yaml.safe_load(text)
    data["actions"][0]["fingerprint"] = "f" * 32
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert "is not the one audit run 1 stored" in invoke("apply", str(bad), "--store", store, expect=2).stderr
    data = yaml.safe_load(text)
    data["actions"][0]["assignee"] = "x.y"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert "differs from set.assignee" in invoke("apply", str(bad), "--store", store, expect=2).stderr
    data = yaml.safe_load(text)
    data["actions"][0] |= {"reason_code": "x", "reason_args": "not a mapping"}
    bad.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    err = invoke("apply", str(bad), "--store", store, expect=2).stderr
    line = next(i for i, s in enumerate(bad.read_text(encoding="utf-8").splitlines(), 1) if "reason_args" in s)
    assert err == (f"error: {bad}:{line}: reason_args: expected a mapping. Hint: leave it as `reconcile plan` "
                   "wrote it.\n")

    original = snapshot(url)
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("writable: true", "writable: false"),
                       encoding="utf-8")
    err = invoke("apply", str(plan), "--store", store, "--yes", expect=3).stderr
    assert "writable: true" in err and "--sql" in err
    invoke("apply", str(plan), "--store", store, "--dry-run", expect=0)
    assert snapshot(url) == original and history.history(store) == []


@pytest.mark.parametrize("flag", ['"false"', '"no"', "'true'", "1", "yes please"])
def test_a_writable_flag_that_is_not_a_yaml_boolean_never_lets_apply_write(district: Path, tmp_path: Path,
                                                                           flag: str) -> None:
    url, store, mapping = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan)
    text = mapping.read_text(encoding="utf-8")
    assert "writable: true\n" in text
    mapping.write_text(text.replace("writable: true\n", f"writable: {flag}\n"), encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s == "writable: true")
    original = snapshot(url)
    err = invoke("apply", str(plan), "--store", store, "--yes", expect=2).stderr
    shown = repr(yaml.safe_load(f"x: {flag}")["x"])
    assert err == (f"error: {mapping}:{line}:11: writable: {shown} is not of type 'boolean'. Hint: write true or false, "
                   "without quotes; only true lets apply write.\n")
    assert snapshot(url) == original and history.history(store) == []


def test_undo_obeys_a_mapping_that_no_longer_says_writable(district: Path, tmp_path: Path) -> None:
    url, store, mapping = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan)
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    applied = snapshot(url)
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(text.replace("writable: true\n", "writable: false\n"), encoding="utf-8")
    err = invoke("undo", "1", "--store", store, "--yes", expect=3).stderr
    assert err == (f"error: {mapping}: the mapping does not declare `writable: true` (any more): nothing written. "
                   "Hint: set it back to true to undo batch 1, or `reconcile undo 1 --dry-run` for the statements.\n")
    assert snapshot(url) == applied and [b["kind"] for b in history.history(store)] == ["apply"]
    assert "UPDATE" in invoke("undo", "1", "--store", store, "--dry-run", expect=0).stdout
    mapping.write_text(text, encoding="utf-8")
    invoke("undo", "1", "--store", store, "--yes", expect=0)
    assert snapshot(url) != applied


def _kill_run(plan: Path, store: str, fault: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, FAULT_ENV: fault}
    return subprocess.run([sys.executable, "-m", "reconcile", "apply", str(plan), "--store", store, "--yes",
                           "--batch-size", "1"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("fault, outcome", [("after-commit:3", "recovered"), ("after-log:3", "rolled_back")])
def test_sigkill_mid_apply_leaves_whole_batches_and_a_rerun_finishes(district: Path, tmp_path: Path, fault: str,
                                                                     outcome: str) -> None:
    url, store, _ = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan)
    original = snapshot(url)
    killed = _kill_run(plan, store, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    hist = history.history(store)
    assert [(b["id"], b["outcome"]) for b in hist] == [(1, "committed"), (2, "committed"), (3, "pending")]
    # whole batches only: the target holds batches 1-2 (and 3 when its commit happened) and nothing more
    expected_written = 3 if outcome == "recovered" else 2
    dry = ap.apply_plan(plan, store)
    assert dry.counts()["already_applied"] == expected_written
    assert dry.counts()["would_write"] == 6 - expected_written

    result = invoke("apply", str(plan), "--store", store, "--yes", "--batch-size", "1", expect=0)
    assert "interrupted" in result.stderr
    hist = history.history(store)
    assert hist[2]["outcome"] == outcome
    assert [b["outcome"] for b in hist[3:]] == ["committed"] * (6 - expected_written)
    assert ap.apply_plan(plan, store).counts()["already_applied"] == 6
    ids = [str(b["id"]) for b in hist if b["outcome"] in ("committed", "recovered")]
    invoke("undo", *ids, "--store", store, "--yes", expect=0)
    assert snapshot(url) == original


def store_dossiers(store: str) -> list[Any]:
    """Every run's dossier rows of a store (the csv profile's snapshot), in order."""
    return store_rows(store, sa.select(dossier).order_by(dossier.c.run_id, dossier.c.source_row))


def test_csv_profile_writes_the_store_snapshot(csv_district: Path, tmp_path: Path) -> None:
    work = tmp_path / "d"
    shutil.copytree(csv_district, work)
    store = str(tmp_path / "store.duckdb")
    audit(AuditInputs(register=tuple(str(p) for p in (work / "register").iterdir()), system=str(work / "system"),
                      workflows=str(work / "workflows"), as_of=date(2021, 6, 30), paper_only_units=PAPER_ONLY), store)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan)

    def rows() -> list[Any]:
        return store_dossiers(store)

    original = rows()
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    applied = rows()
    changed = [(a, b) for a, b in zip(original, applied) if a != b]
    assert len(changed) == 6
    assert any(b.status == "returned" and b.status_raw == "returned" and b.fingerprint != a.fingerprint
               for a, b in changed)
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    assert rows() == applied and len(history.history(store)) == 1
    invoke("undo", "1", "--store", store, "--yes", expect=0)
    assert rows() == original


@pytest.fixture(scope="module")
def shared(district: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("property")
    url, store, _ = audited(district, tmp)
    plan = tmp / "full.yaml"
    actions = make_plan(store, plan, reassign=8, close=8)
    return url, store, plan, actions


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_undo_of_apply_restores_every_touched_row(shared: tuple[str, str, Path, list[dict[str, Any]]],
                                                   data: st.DataObject) -> None:
    url, store, full, actions = shared
    chosen = data.draw(st.lists(st.sampled_from(actions), unique_by=lambda a: a["dossier_code"], min_size=1))
    batch = data.draw(st.integers(1, 5))
    doc = yaml.safe_load(full.read_text(encoding="utf-8"))
    doc["actions"] = chosen
    plan = full.with_name("subset.yaml")
    plan.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    original = snapshot(url)
    result = ap.apply_plan(plan, store, yes=True, batch_size=batch)
    writing = [a for a in chosen if a["action"] != "escalate" and a.get("confirmed", True)]
    assert result.counts().get("written", 0) == len(writing)
    assert len(result.batches) == -(-len(writing) // batch)
    for b in reversed(result.batches):
        un.undo(b, store, yes=True)
    assert snapshot(url) == original


# ----------------------------------------------------------- batched writes, rendering, show CODE


def _cas_table() -> sa.Table:
    return sa.Table("T", sa.MetaData(), sa.Column("code", sa.String(40)), sa.Column("who", sa.String(40)),
                    sa.Column("n", sa.Integer), sa.Column("day", sa.Date), sa.Column("at", sa.DateTime))


def _writes(t: sa.Table) -> list[writes.Write]:
    from datetime import datetime

    return [
        writes.Write("A", "reassign", "r", t, (("code", "A"),), (("who", "assignee", "old", "new"),)),
        writes.Write("B", "reassign", "r", t, (("code", "B"),), (("who", "assignee", None, "O'Brien; DROP"),)),
        writes.Write("C", "close", None, t, (("code", "C"),),
                 (("day", "returned_at", None, date(2021, 6, 1)), ("at", "finished_at", datetime(2021, 5, 1, 8, 30),
                                                                   None), ("n", "status", 2, 6))),
        writes.Write("D", "close", None, t, (("code", "D"),), (("n", "status", 3, 6),)),
    ]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql", "duckdb"])
def test_rendered_statements_are_the_compiled_ones(dialect: str) -> None:
    """The renderer compiles one statement per shape and renders values into it: the same text."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    import duckdb_engine

    d = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect(), "mysql": mysql.pymysql.dialect(),
         "duckdb": duckdb_engine.Dialect()}[dialect]
    render = writes.Renderer(d)
    for w in _writes(_cas_table()) * 2:
        assert render(w) == writes.render_sql(w.statement(), d)


@pytest.mark.parametrize("fallback", [False, True])
def test_batched_compare_and_set_refuses_a_batch_when_a_row_moved(fallback: bool) -> None:
    """executemany per shape (or row by row where the driver cannot count): every UPDATE matches one row."""
    from datetime import datetime

    t = _cas_table()
    engine = sa.create_engine("sqlite://")
    if fallback:
        engine.dialect.supports_sane_multi_rowcount = False
    blank = {"who": None, "day": None, "at": None}
    rows = [blank | r for r in ({"code": "A", "who": "old", "n": 1}, {"code": "B", "n": 1},
                                {"code": "C", "n": 2, "at": datetime(2021, 5, 1, 8, 30)}, {"code": "D", "n": 3})]
    with engine.begin() as conn:
        t.create(conn)
        conn.execute(t.insert(), rows)
    with engine.connect() as conn:
        with conn.begin():
            batches.execute_writes(conn, _writes(t), "batch 1")
        got = {r.code: (r.who, r.n, r.day, r.at) for r in conn.execute(sa.select(t))}
    assert got == {"A": ("new", 1, None, None), "B": ("O'Brien; DROP", 1, None, None),
                   "C": (None, 6, date(2021, 6, 1), None), "D": (None, 6, None, None)}
    with engine.connect() as conn:  # back to the original, then one row moves: the whole batch is refused
        with conn.begin():
            conn.execute(t.delete())
            conn.execute(t.insert(), [r | {"who": "someone else"} if r["code"] == "A" else r for r in rows])
        conn.begin()
        with pytest.raises(batches.ApplyFailed, match="instead of"):
            batches.execute_writes(conn, _writes(t), "batch 1")
        conn.rollback()
        assert {r.code: r.n for r in conn.execute(sa.select(t))} == {"A": 1, "B": 1, "C": 2, "D": 3}
    engine.dispose()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql", "mariadb"])
def test_undo_writes_alike_rows_in_one_executemany_and_the_others_one_by_one(tmp_path: Path, engine: str,
                                                                              request: pytest.FixtureRequest) -> None:
    """Undo reads a batch's change rows as columns (a DuckDB store, or the server the target is on).
    Rows of a table that write the same columns with values of one type go back with one executemany
    built from those columns (dates through their bind processor); a table whose rows compare with NULL
    goes through `_execute`. Every row is restored, and the values read back by key are the logged ones."""
    from datetime import datetime

    url = f"sqlite:///{tmp_path / 'target.sqlite'}" if engine == "sqlite" else \
        request.getfixturevalue("pg_url" if engine == "postgresql" else "mariadb_url")

    t, u = _cas_table(), sa.Table("U", sa.MetaData(), sa.Column("code", sa.String(40)), sa.Column("who", sa.String(40)))
    alike = [writes.Write(f"E{i}", "close", "r", t, (("code", f"E{i}"),),
                      (("who", "assignee", f"old{i}", f"new{i}"), ("day", "returned_at", None, date(2021, 6, i)),
                       ("at", "finished_at", datetime(2021, 5, i, 8), datetime(2021, 6, i, 9))))
              for i in range(1, 5)]
    others = [writes.Write("F1", "reassign", "r", u, (("code", "F1"),), (("who", "assignee", "old", None),)),
              writes.Write("F2", "reassign", "r", u, (("code", "F2"),), (("who", "assignee", None, "new"),))]
    target = sa.create_engine(url)
    with target.begin() as conn:
        t.create(conn)
        u.create(conn)
        conn.execute(t.insert(), [{"code": w.key[0][1], "n": 1, **{c: after for c, _, _, after in w.columns}}
                                  for w in alike])
        conn.execute(u.insert(), [{"code": "F1", "who": None}, {"code": "F2", "who": "new"}])
    store = open_store(str(tmp_path / "store.duckdb") if engine == "sqlite" else url)
    with store.begin() as conn:
        conn.execute(change.insert(), [
            {"batch_id": 1, "seq": seq, "dossier_code": w.dossier_code, "action": w.action, "rule": w.rule,
             "table_name": w.table.name, "row_key": w.row_key(), "column_name": c, "field": f,
             "before_value": values.encode_value(b), "after_value": values.encode_value(a)}
            for seq, (w, (c, f, b, a)) in enumerate(((w, col) for w in alike + others for col in w.columns), 1)])
    with store.connect() as conn:
        logged = changelog.read_logged(conn, [1])[1]
    store.engine.dispose()

    class Target(targets.Target):
        dialect = target.dialect

        def table(self, name: str) -> sa.Table:
            return {"T": t, "U": u}[name]

    with target.connect() as conn:
        assert settle.current_values(conn, Target(), logged) == logged.after
        bulk = un._bulk(conn, logged)
        assert bulk == {("T", ("code",)): 3}
        un._write_back(conn, logged, {"T": t, "U": u}, bulk, logged.groups["U", ("code",)], "undo of batch 1")
        conn.commit()
        assert settle.current_values(conn, Target(), logged) == logged.before
        assert sorted(conn.execute(sa.select(t.c.code, t.c.who, t.c.day, t.c.at))) == [
            (f"E{i}", f"old{i}", None, datetime(2021, 5, i, 8)) for i in range(1, 5)]
    target.dispose()


def test_logged_row_keys_decode_to_the_keys_written() -> None:
    """Undo decodes a batch's row keys: the keys `Write.row_key` encoded, with quotes, backslashes, accents,
    numbers and several key columns."""
    t = _cas_table()
    for keys in ([(("code", "A-1"),), (("code", "Nguyễn"),)], [(("code", 'a"b'),), (("code", "a\\b"),)],
                 [(("n", 5),), (("n", 7),)], [(("code", "x"), ("n", 2)), (("code", "y"), ("n", 3))],
                 [(("code", "x"),), (("n", 3),)]):
        texts = [writes.Write("c", "reassign", "r", t, k, ()).row_key() for k in keys]
        names, values = changelog.decoded_keys(texts)
        assert [tuple(zip(n, v if len(n) > 1 else (v,))) for n, v in zip(names, values)] == keys


def test_logged_rows_are_read_back_with_one_in_list_or_one_condition_per_key() -> None:
    """Undo and settling read a batch's rows by their logged keys: an IN list when the keys differ in one
    column, one AND per key otherwise; the same rows either way."""
    t = sa.Table("K", sa.MetaData(), sa.Column("run", sa.Integer), sa.Column("row", sa.Integer),
                 sa.Column("v", sa.String(8)))
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        t.create(conn)
        conn.execute(t.insert(), [{"run": r, "row": n, "v": f"{r}.{n}"} for r in (1, 2) for n in range(4)])
        for keys, sql, want in [
                ([(("run", 1), ("row", 0)), (("run", 1), ("row", 2))], " IN ", {"1.0", "1.2"}),
                ([(("run", 2), ("row", 3))], " IN ", {"2.3"}),
                ([(("run", 1), ("row", 1)), (("run", 2), ("row", 1))], " IN ", {"1.1", "2.1"}),
                ([(("run", 1), ("row", 0)), (("run", 2), ("row", 3))], " OR ", {"1.0", "2.3"})]:
            cond = settle.keys_condition(t, keys)
            assert sql in str(cond.compile(engine))
            assert set(conn.execute(sa.select(t.c.v).where(cond)).scalars()) == want
    engine.dispose()


def test_show_lists_the_changes_of_a_dossier(district: Path, tmp_path: Path) -> None:
    url, store, _ = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    actions = make_plan(store, plan, reassign=1, close=1)
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    invoke("undo", "1", "--store", store, "--yes", expect=0)
    reassigned, closed = actions[0], actions[1]

    view = json.loads(invoke("show", reassigned["dossier_code"], "--store", store, "--format", "json",
                             expect=0).stdout)
    changes = view["changes"]
    assert [(c["batch"], c["kind"], c["outcome"], c["column"], c["field"]) for c in changes] == [
        (1, "apply", "committed", "TAIKHOAN_XULY", "assignee"), (2, "undo", "committed", "TAIKHOAN_XULY", "assignee")]
    assert changes[0]["table"] == "HS_XULY_HIENTAI" and changes[0]["after"] == reassigned["assignee"]
    assert changes[1]["before"] == changes[0]["after"] and changes[1]["after"] == changes[0]["before"]
    assert changes[1]["undo_of"] == 1 and all(c["at"] and c["action"] == "reassign" for c in changes)

    view = json.loads(invoke("show", closed["dossier_code"], "--store", store, "--format", "json",
                             expect=0).stdout)
    applied = {c["field"]: c for c in view["changes"] if c["kind"] == "apply"}
    assert applied["returned_at"]["after"].startswith(closed["returned_at"])
    assert {c["table"] for c in applied.values()} == {"HS_HOSO"}

    table = invoke("show", closed["dossier_code"], "--store", store, expect=0).stdout
    assert "Changes" in table and "NGAY_TRAKQ" in table and "undo of 1" in table
    untouched = json.loads(invoke("show", actions[2]["dossier_code"], "--store", store, "--format", "json",
                                  expect=0).stdout)
    assert untouched["changes"] == []


def test_grouped_writes_log_and_bind_what_each_write_says() -> None:
    """A batch's writes in groups (one per shape): their change rows are the writes' cells in the writes'
    order, and each group binds every row's `Write.params()`; interleaved shapes and tables included."""
    from datetime import datetime

    t, other = _cas_table(), sa.Table("U", sa.MetaData(), sa.Column("code", sa.Integer), sa.Column("who", sa.String(9)))
    made = _writes(t) + [
        writes.Write("E", "reassign", "r", other, (("code", 7),), (("who", "assignee", "a\"b", "c\\d"),)),
        writes.Write("F", "reassign", "r", t, (("code", "F"),), (("who", "assignee", "x", "y"),)),
        writes.Write("G", "close", None, t, (("code", "G"),), (("day", "returned_at", date(2021, 1, 2), None),
                                                            ("at", "finished_at", None, datetime(2021, 5, 1, 8)))),
        writes.Write("H", "backfill", "b", t, (("code", "H"),), (("who", "assignee", values.ABSENT, "z"),))]
    refs = writes.group_writes(made)
    assert len({id(g) for g, _ in refs}) == 7 and [g.write(i) for g, i in refs] == made
    cells = changelog.change_rows(refs).to_pylist()
    expected = [(w.dossier_code, w.action, w.rule, w.table.name, w.row_key(), c, f, values.encode_value(b),
                 values.encode_value(a)) for w in made for c, f, b, a in w.columns]
    assert [c["seq"] for c in cells] == list(range(1, len(expected) + 1))
    assert [(c["dossier_code"], c["action"], c["rule"], c["table_name"], c["row_key"], c["column_name"], c["field"],
             c["before_value"], c["after_value"]) for c in cells] == expected
    for g in {id(g): g for g, _ in refs}.values():
        assert g.params() == {n: [g.write(i).params()[n] for i in range(len(g.rows))] for n in g.write(0).params()}


def test_fields_the_target_cannot_take_are_listed_once_per_action(district: Path, tmp_path: Path) -> None:
    url, store, mapping = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    actions = make_plan(store, plan)
    closes = [a for a in actions if a["action"] == "close"]
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(text.replace("returned_at: NGAY_TRAKQ", "returned_at: PHIENBAN")
                       .replace("finished_at: NGAY_KETTHUC, ", ""), encoding="utf-8")
    err = invoke("apply", str(plan), "--store", store, "--mapping", str(mapping), expect=2).stderr
    lines = {a["dossier_code"]: next(i for i, s in enumerate(plan.read_text(encoding="utf-8").splitlines(), 1)
                                     if a["dossier_code"] in s) for a in closes}
    for a in closes:
        assert (f"{plan}:{lines[a['dossier_code']]}: set.finished_at: the mapping {mapping} has no "
                "dossier.columns.finished_at. Hint: map the column, or leave the field out of the plan.") in err
        assert (f"{plan}:{lines[a['dossier_code']]}: set.returned_at: {date.fromisoformat(a['returned_at'])!r} does not fit "
                "HS_HOSO.PHIENBAN (INTEGER): a date in the whole-number column PHIENBAN.") in err
    assert err.count(": set.") == 2 * len(closes)


def test_a_migration_to_another_procedure_writes_its_workflow_key_and_undo_restores_it(
        district: Path, tmp_path: Path) -> None:
    """Migration rules may move dossiers to another procedure (`to_procedure`, the 2025 land reform):
    the plan's migrate then sets workflow_key too, and apply writes it with the version and step."""
    url, store, _ = audited(district, tmp_path)
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan, reassign=1, close=0)
    doc = yaml.safe_load(plan.read_text(encoding="utf-8"))
    moved = doc["actions"][0]
    del moved["assignee"]
    moved |= {"action": "migrate", "rule": "reform-2025", "version": 1, "step": "S02",
              "set": {"workflow_key": "1.003003.000.00.00.H48", "workflow_version": 1, "current_step": "S02"}}
    doc["actions"] = [moved]
    plan.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    original = snapshot(url)

    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        code = moved["dossier_code"]
        assert conn.execute(sa.text("SELECT MA_QUYTRINH, PHIENBAN FROM HS_HOSO WHERE MA_HOSO = :c"), {"c": code}
                            ).one() == ("1.003003.000.00.00.H48", 1)
        assert conn.execute(sa.text("SELECT MA_BUOC FROM HS_XULY_HIENTAI WHERE MA_HOSO = :c"), {"c": code}
                            ).scalar_one() == "S02"
    engine.dispose()
    invoke("undo", "1", "--store", store, "--yes", expect=0)
    assert snapshot(url) == original
