"""Faults: a real `reconcile audit`, `apply --yes` and `undo --yes` killed (SIGKILL) or interrupted (SIGINT)
at every stage; the store deleted, moved or replaced under apply; concurrent applies; read-only PostgreSQL
and MariaDB accounts; a full disk under the store; and what Ctrl-C says it wrote.

Each fault is checked the same way: whole runs (no rows of an unfinished audit run), whole batches (each
batch's rows all after-values or all before-values in the vendor database), a complete change log (every
value that differs from the original is the after-value of a logged batch whose rows hold it), `history`
consistent, and a rerun that completes (apply finishes the plan, undo restores the original exactly)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from helpers import invoke
from test_apply import PAPER_ONLY, copy_vendor, make_plan
from reconcile.fix import apply as ap
from reconcile.fix import batches
from reconcile.fix import changelog
from reconcile.fix import history
from reconcile.fix import values
from reconcile.audit.inputs import AuditInputs
from reconcile.audit.commands import audit
from reconcile.faults import FAULT_ENV
from reconcile.demo.simulate import simulate
from reconcile.store import (
    audit_run, batch_outcome, change_batch, mask_url, metadata, normalize_url, open_store, plan_file,
)

WRITTEN_TABLES = {"HS_HOSO", "HS_XULY_HIENTAI"}  # what make_plan's actions write


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("district")
    simulate(out, scale=0.05)
    return out


def audit_into(work: Path, url: str, store: str) -> None:
    audit(AuditInputs(register=tuple(str(p) for p in (work / "register").iterdir()), system=url,
                      workflows=str(work / "workflows"), as_of=date(2021, 6, 30),
                      mapping=str(work / "system" / "mapping.yaml"), paper_only_units=PAPER_ONLY), store)


def planned_into(district: Path, tmp: Path, store: str) -> tuple[str, Path, dict[tuple[str, str, str], tuple[Any, ...]]]:
    """A private copy of the district (tmp/d) audited into `store` and planned (6 writing actions, one dossier
    each): its system URL, the plan, and the system's values as they were."""
    work = tmp / "d"
    shutil.copytree(district, work)
    url = f"sqlite:///{work / 'system' / 'binh-son-igate.sqlite'}"
    audit_into(work, url, store)
    plan = tmp / "plan.yaml"
    make_plan(store, plan)
    return url, plan, cells(url)


def cli(*args: str, fault: str | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    """`reconcile ARGS` as its own process (RECONCILE_FAULT=fault)."""
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV} | ({FAULT_ENV: fault} if fault else {})
    return subprocess.Popen([sys.executable, "-m", "reconcile", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(*args: str, fault: str | None = None, cwd: Path | None = None) -> tuple[int, str]:
    """The exit code (a signal: minus its number) and stderr of `reconcile ARGS`."""
    proc = cli(*args, fault=fault, cwd=cwd)
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    return proc.returncode, err


# ------------------------------------------------------------------------- the consistency checks


def cells(url: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """Every value of the written tables, by (table, dossier code, column): the values of the rows with the code."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine, only=sorted(WRITTEN_TABLES))
    out: dict[tuple[str, str, str], list[Any]] = {}
    with engine.connect() as conn:
        for name, t in md.tables.items():
            for row in conn.execute(sa.select(t)).mappings():
                for column, value in row.items():
                    out.setdefault((name, row["MA_HOSO"], column), []).append(value)
    engine.dispose()
    return {k: tuple(sorted(v, key=repr)) for k, v in out.items()}


def logged_batches(store: str) -> dict[int, dict[str, Any]]:
    """Every batch: kind, outcome (None: pending), and its change rows decoded."""
    opened = open_store(store, create=False)
    with opened.connect() as conn:
        rows = conn.execute(sa.select(change_batch.c.id, change_batch.c.kind, batch_outcome.c.outcome)
                            .outerjoin(batch_outcome, batch_outcome.c.batch_id == change_batch.c.id)
                            .order_by(change_batch.c.id)).all()
        logged = changelog.read_logged(conn, [r.id for r in rows])
    opened.engine.dispose()
    return {r.id: {"kind": r.kind, "outcome": r.outcome, "log": logged[r.id]} for r in rows}


def check_consistent(url: str, store: str, original: dict[tuple[str, str, str], tuple[Any, ...]]) -> dict[int, bool]:
    """Whole batches and a complete change log (see the module doc): a batch left pending holds all its
    after-values or all its before-values; every value holds the after-value of the last batch that wrote
    it (committed, recovered, or pending holding its after-values), or the original. Returns which batches
    count as written."""
    now = cells(url)
    written: dict[int, bool] = {}
    expected: dict[tuple[str, str, str], Any] = {}
    for batch_id, b in logged_batches(store).items():
        log = b["log"]
        keys = [(t, log.key(i)[0][1], c) for i, (t, c) in enumerate(zip(log.text["table_name"],
                                                                           log.text["column_name"]))]
        if b["outcome"] is None:  # killed before its outcome: the next run settles it from these values
            current = [now[k][0] for k in keys]
            after, before = all(map(values.same_value, current, log.after)), all(map(values.same_value, current, log.before))
            assert after or before, f"batch {batch_id} is not whole: {list(zip(keys, current, log.before, log.after))}"
            written[batch_id] = after and not before
        else:
            written[batch_id] = b["outcome"] in ("committed", "recovered")
        if written[batch_id]:
            expected.update(zip(keys, log.after))
    changed = {k for k in original.keys() | now.keys() if original.get(k) != now.get(k)}
    assert changed <= expected.keys(), f"values changed without a logged batch: {sorted(changed - expected.keys())}"
    wrong = {k: (now[k][0], v) for k, v in expected.items() if not values.same_value(now[k][0], v)}
    assert not wrong, f"values that are not their last batch's after-values: {wrong}"
    return written


def committed_applies(store: str) -> list[int]:
    """The apply batches committed and not undone, newest first (what `reconcile undo` takes)."""
    rows = history.history(store)
    return [r["id"] for r in reversed(rows) if r["kind"] == "apply" and r["outcome"] in ("committed", "recovered")
            and r["undone_by"] is None]


def finish_and_undo(url: str, store: str, plan: Path, original: dict[tuple[str, str, str], tuple[Any, ...]]
                    ) -> None:
    """The rerun completes the plan; undoing every applied batch restores the original exactly."""
    invoke("apply", str(plan), "--store", store, "--yes", "--batch-size", "1", expect=0)
    assert not any(r["outcome"] == "pending" for r in history.history(store))
    check_consistent(url, store, original)
    counts = ap.apply_plan(plan, store).counts()
    assert counts["already_applied"] == 6 and "would_write" not in counts
    invoke("undo", *map(str, committed_applies(store)), "--store", store, "--yes", expect=0)
    assert cells(url) == original
    check_consistent(url, store, original)


# ------------------------------------------------------------------------------------ audit


@pytest.fixture(scope="module")
def audited_once(district: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The district audited once (run 1): its folder and a copy of the store."""
    tmp = tmp_path_factory.mktemp("audited")
    work = tmp / "d"
    shutil.copytree(district, work)
    store = tmp / "store.duckdb"
    audit_into(work, f"sqlite:///{work / 'system' / 'binh-son-igate.sqlite'}", str(store))
    return work, store


def runs_in(store: Path) -> tuple[list[int], set[int]]:
    """The store's audit runs, and the run ids found in any table that has them."""
    opened = open_store(str(store), create=False)
    with opened.connect() as conn:
        runs = list(conn.execute(sa.select(audit_run.c.id).order_by(audit_run.c.id)).scalars())
        found = {r for t in metadata.sorted_tables if "run_id" in t.c
                 for r in conn.execute(sa.select(t.c.run_id).distinct()).scalars()}
    opened.engine.dispose()
    return runs, found


@pytest.mark.parametrize("point, sig, first", [
    ("audit-register", "KILL", False), ("audit-system", "INT", False), ("audit-commit", "KILL", False),
    ("audit-committed", "INT", False), ("audit-system", "INT", True), ("audit-commit", "KILL", True)])
def test_audit_killed_or_interrupted_leaves_whole_runs_and_a_rerun_completes(
        audited_once: tuple[Path, Path], tmp_path: Path, point: str, sig: str, first: bool) -> None:
    work, once = audited_once
    store = tmp_path / "store.duckdb"
    if not first:
        shutil.copy(once, store)
    code, err = run("audit", "--store", str(store), fault=f"{point}:1:{sig}", cwd=work)
    committed = point == "audit-committed"
    if sig == "KILL":
        assert code == -signal.SIGKILL
    else:
        assert code == 130
        assert err == ("interrupted: wrote audit run 2 to the store " + str(store) + " before stopping; nothing else "
                       "was written.\n" if committed else "interrupted: nothing was written.\n")
    if first and sig == "INT":  # the store a failed first run created is removed
        assert not store.exists()
    else:  # killed: the store holds the runs committed before, and no row of the killed one
        runs, found = runs_in(store)
        assert runs == ([] if first else [1]) + ([2] if committed else []) and found <= set(runs)
    audit_into(work, f"sqlite:///{work / 'system' / 'binh-son-igate.sqlite'}", str(store))  # the rerun
    runs, found = runs_in(store)
    assert runs == list(range(1, len(runs) + 1)) and found == set(runs)
    opened = open_store(str(store), create=False)
    with opened.connect() as conn:  # the rerun finds what the first run found
        counts = dict(conn.execute(sa.text("SELECT run_id, count(*) FROM finding GROUP BY run_id")).all())
    opened.engine.dispose()
    assert sorted(counts) == runs and len(set(counts.values())) == 1


# ------------------------------------------------------------------------------------ apply, undo


@pytest.fixture(scope="module")
def planned(district: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The district audited and planned (6 writing actions), its system database and store saved as they were."""
    tmp = tmp_path_factory.mktemp("planned")
    store = tmp / "store.duckdb"
    url, plan, original = planned_into(district, tmp, str(store))
    system = tmp / "d" / "system" / "binh-son-igate.sqlite"
    shutil.copy(system, tmp / "system.saved")
    shutil.copy(store, tmp / "store.saved")
    yield {"tmp": tmp, "system": system, "url": url, "store": str(store), "plan": plan, "original": original}


@pytest.fixture
def fresh(planned: dict[str, Any]) -> dict[str, Any]:
    """The planned district as it was before any apply (the same paths: the plan names them)."""
    tmp = planned["tmp"]
    for name in ("store.duckdb.wal", "store-moved.duckdb", "store-moved.duckdb.wal"):
        (tmp / name).unlink(missing_ok=True)
    shutil.copy(tmp / "system.saved", planned["system"])
    shutil.copy(tmp / "store.saved", planned["store"])
    return planned


def stopped_text(done: list[int], store: str, pending: int | None = None, undid: list[int] | None = None) -> str:
    """What apply/undo says when stopped (Ledger.note): the batches committed (undo: the batches they undid),
    and a batch logged but rolled back."""
    def batches(ids: list[int]) -> str:
        return f"batch {ids[0]}" if len(ids) == 1 else f"batches {', '.join(map(str, ids))}"

    parts = []
    if done and undid:
        parts.append(f"{batches(undid)} {'was' if len(done) == 1 else 'were'} undone (by {batches(done)})")
    elif done:
        parts.append(f"{batches(done)} {'was' if len(done) == 1 else 'were'} committed (undo: `reconcile undo "
                     f"{' '.join(map(str, reversed(done)))} --store {store}`)")
    if pending is not None:
        parts.append(f"batch {pending} was rolled back (`reconcile history` shows it pending until the next apply or "
                     "undo records that)")
    return "; ".join(parts)


def stopped_by_ctrl_c(kind: str, done: list[int], store: str, again: str, pending: int | None = None,
                      undid: list[int] | None = None) -> str:
    return (f"interrupted: {kind} stopped: {stopped_text(done, store, pending, undid)}; the rest "
            f"was not written. Hint: `{again} --store {store}` finishes the {kind}.")


@pytest.mark.parametrize("fault, written, pending, in_flight", [
    ("after-writes:3", 2, False, None), ("after-log:3", 2, True, None),
    ("after-commit:3", 3, True, None), ("after-writes:3:INT", 2, False, None), ("after-log:3:INT", 2, True, 3),
    ("after-commit:3:INT", 3, True, None)])
def test_apply_killed_or_interrupted_leaves_whole_batches_a_complete_log_and_a_rerun_finishes(
        fresh: dict[str, Any], fault: str, written: int, pending: bool, in_flight: int | None) -> None:
    """Batch 3 of 6 (one action each) at every stage: the batches before it are committed, batch 3 too once
    its target commit returned, and a logged batch 3 is left pending for the next run to settle."""
    url, store, plan = fresh["url"], fresh["store"], fresh["plan"]
    code, err = run("apply", str(plan), "--store", store, "--yes", "--batch-size", "1", fault=fault)
    if fault.endswith(":INT"):
        assert code == 130
        assert err.splitlines()[-1] == stopped_by_ctrl_c("apply", list(range(1, written + 1)), store,
                                                         f"reconcile apply {plan} --yes", in_flight)
    else:
        assert code == -signal.SIGKILL
    assert [(r["id"], r["outcome"]) for r in history.history(store)] == [(1, "committed"), (2, "committed")] + (
        [(3, "pending")] if pending else [])
    holds = check_consistent(url, store, fresh["original"])
    assert sum(holds.values()) == written
    assert ap.apply_plan(plan, store).counts()["already_applied"] == written
    finish_and_undo(url, store, plan, fresh["original"])


@pytest.mark.parametrize("fault, undone", [("after-log:2", 1), ("after-commit:2", 2), ("after-writes:2:INT", 1),
                                           ("after-commit:1:INT", 1)])
def test_undo_killed_or_interrupted_leaves_whole_batches_and_a_rerun_restores_the_original(
        fresh: dict[str, Any], fault: str, undone: int) -> None:
    url, store, plan = fresh["url"], fresh["store"], fresh["plan"]
    invoke("apply", str(plan), "--store", store, "--yes", "--batch-size", "2", expect=0)  # batches 1-3
    code, err = run("undo", "3", "2", "1", "--store", store, "--yes", fault=fault)
    if fault.endswith(":INT"):
        assert code == 130
        undo_ids = list(range(4, 4 + undone))
        assert err.splitlines()[-1] == stopped_by_ctrl_c(
            "undo", undo_ids, store, f"reconcile undo {' '.join(map(str, range(3 - undone, 0, -1)))} --yes",
            undid=list(range(3, 3 - undone, -1)))
    else:
        assert code == -signal.SIGKILL
    holds = check_consistent(url, store, fresh["original"])
    assert [b for b, held in holds.items() if held and b > 3] == list(range(4, 4 + undone))
    invoke("undo", "1", "--store", store, "--yes", expect=0)  # settles the undo left pending, if any
    left = [str(r["id"]) for r in reversed(history.history(store)) if r["kind"] == "apply" and r["undone_by"] is None]
    if left:
        invoke("undo", *left, "--store", store, "--yes", expect=0)
    assert cells(url) == fresh["original"]
    check_consistent(url, store, fresh["original"])


def after_error(kind: str, done: list[int], store: str, again: str, pending: int | None = None,
                undid: list[int] | None = None) -> str:
    """What an error that stops apply/undo after some batches ends with: those batches, and the hint."""
    text = stopped_text(done, store, pending, undid)
    return f"{text[0].upper()}{text[1:]}. Hint: `{again} --store {store}` finishes the {kind}."


def act_at(monkeypatch: pytest.MonkeyPatch, when: str, action: Callable[[], None]) -> None:
    """Run `action` when apply or undo reaches the fault point `when` ("<point>:<n>"): a person, or another
    program, acting while it runs."""
    def hook(point: str, n: int) -> None:
        if f"{point}:{n}" == when:
            action()

    monkeypatch.setattr(ap, "fault", hook)
    monkeypatch.setattr(batches, "fault", hook)
    monkeypatch.setattr("reconcile.fix.undo.fault", hook)


def changed_dossiers(url: str, original: dict[tuple[str, str, str], tuple[Any, ...]]) -> set[str]:
    now = cells(url)
    return {code for (_, code, _) in {k for k in original.keys() | now.keys() if original.get(k) != now.get(k)}}


# ----------------------------------------------------------------- the store deleted, moved, replaced


@pytest.mark.parametrize("how, when, done, pending", [
    ("delete", "after-commit:2", [1, 2], None), ("move", "after-log:3", [1, 2], 3),
    ("replace", "before-batch:2", [1], None), ("delete", "after-commit:6", [1, 2, 3, 4, 5, 6], None)])
def test_a_store_deleted_moved_or_replaced_under_apply_stops_it_before_the_next_target_commit(
        fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch, how: str, when: str, done: list[int],
        pending: int | None) -> None:
    """Before each target commit the store must be the file apply opened: otherwise the batch rolls back
    (exit 3), the message names the batches committed, and nothing more reaches the system. A store
    deleted after the last batch is said too: its log went with it."""
    url, store, plan = fresh["url"], fresh["store"], fresh["plan"]
    moved = fresh["tmp"] / "store-moved.duckdb"

    def act() -> None:
        if how == "delete":
            os.unlink(store)
            return
        os.replace(store, moved)
        if how == "replace":  # a backup of the store put back in its place
            shutil.copy(fresh["tmp"] / "store.saved", store)

    act_at(monkeypatch, when, act)
    err = invoke("apply", str(plan), "--store", store, "--yes", "--batch-size", "1", expect=3).stderr
    gone = "replaced by another file" if how == "replace" else "deleted or moved away"
    again = f"reconcile apply {plan} --yes"
    if len(done) == 6:  # after the last batch
        assert err == (f"error: store {store} was {gone} while apply ran: the change log of its batches went with it "
                       f"(put that store back before going on): {stopped_text(done, store)}.\n")
    else:
        assert err == (f"error: store {store} was {gone} while apply ran: this batch was rolled back, nothing of it "
                       "written; the change log of the batches before it is in that store: put it back before going "
                       f"on. {after_error('apply', done, store, again, pending)}\n")
    assert len(changed_dossiers(url, fresh["original"])) == len(done)  # one dossier a batch
    assert Path(store).exists() == (how == "replace")  # a deleted store is not created again, empty
    if how != "delete":
        monkeypatch.undo()
        os.replace(moved, store)
        finish_and_undo(url, store, plan, fresh["original"])


def test_a_store_moved_under_undo_stops_it_before_the_next_target_commit(
        fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    url, store, plan = fresh["url"], fresh["store"], fresh["plan"]
    invoke("apply", str(plan), "--store", store, "--yes", "--batch-size", "2", expect=0)  # batches 1-3
    applied = cells(url)
    moved = fresh["tmp"] / "store-moved.duckdb"
    act_at(monkeypatch, "after-log:2", lambda: os.replace(store, moved))
    err = invoke("undo", "3", "2", "1", "--store", store, "--yes", expect=3).stderr
    assert err.splitlines()[-1] == (
        f"error: store {store} was deleted or moved away while undo ran: this batch was rolled back, nothing of it "
        "written; the change log of the batches before it is in that store: put it back before going on. "
        + after_error("undo", [4], store, "reconcile undo 2 1 --yes", 5, undid=[3]))
    assert len(changed_dossiers(url, applied)) == 2  # batch 3's two dossiers restored, no more
    os.replace(moved, store)
    monkeypatch.undo()
    invoke("undo", "2", "1", "--store", store, "--yes", expect=0)
    assert cells(url) == fresh["original"]
    check_consistent(url, store, fresh["original"])


def test_a_server_store_dropped_and_created_again_under_apply_stops_it(
        district: Path, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server store has no file to watch: the store_id recorded in it is read in each batch's log
    transaction, so a store created again at the same URL is not taken for the one apply opened."""
    url, plan, original = planned_into(district, tmp_path, pg_url)

    def again() -> None:
        engine = sa.create_engine(pg_url)
        metadata.drop_all(engine)
        engine.dispose()
        open_store(pg_url).engine.dispose()

    act_at(monkeypatch, "before-batch:2", again)
    err = invoke("apply", str(plan), "--store", pg_url, "--yes", "--batch-size", "1", expect=3).stderr
    name = mask_url(normalize_url(pg_url))
    assert err == (f"error: store {name} is not the store apply opened any more (another store_id: dropped and "
                   "created again?): this batch was rolled back, nothing of it written; the change log of the batches "
                   f"before it is in that store: put it back before going on. "
                   f"{after_error('apply', [1], name, f'reconcile apply {plan} --yes')}\n")
    assert len(changed_dossiers(url, original)) == 1


# ------------------------------------------------------------------------------ concurrent applies


@contextmanager
def stopped(*args: str, fault: str) -> Iterator[subprocess.Popen[str]]:
    """`reconcile ARGS` run until it stops itself (RECONCILE_FAULT=fault, ...:STOP), its locks held; killed
    when the test leaves it stopped."""
    proc = cli(*args, fault=fault)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), status
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def written_once(store: str) -> None:
    """No dossier written by two apply batches."""
    codes = [c for b in logged_batches(store).values() if b["kind"] == "apply" and b["outcome"] != "rolled_back"
             for c in set(b["log"].text["dossier_code"])]
    assert len(codes) == len(set(codes)) == 6


def test_a_second_apply_while_one_runs_is_refused_and_no_dossier_is_written_twice(fresh: dict[str, Any]) -> None:
    """The embedded store is one process's at a time: the second apply is refused in one line (exit 3,
    nothing written), and the first one finishes."""
    url, store, plan = fresh["url"], fresh["store"], fresh["plan"]
    args = ("apply", str(plan), "--store", store, "--yes", "--batch-size", "1")
    with stopped(*args, fault="after-log:2:STOP") as first:
        code, err = run(*args)
        assert code == 3 and len(err.splitlines()) == 1 and err.startswith("error: "), err
        os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    assert [r["outcome"] for r in history.history(store)] == ["committed"] * 6
    written_once(store)
    check_consistent(url, store, fresh["original"])
    finish_and_undo(url, store, plan, fresh["original"])


# Backends waiting for one that holds locks on a table of this schema (other tests share the server).
BLOCKED_HERE = """SELECT count(*) FROM pg_stat_activity a WHERE EXISTS (
    SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE l.pid = ANY(pg_blocking_pids(a.pid)) AND n.nspname = current_schema())"""


def test_an_apply_never_settles_a_batch_another_apply_is_still_committing(
        district: Path, tmp_path: Path, pg_url: str) -> None:
    """With a server store two applies can run at once. The second one finds the first one's last batch
    logged without an outcome while the first one is stopped before its commit, holding the rows' locks:
    it waits for them (FOR UPDATE), and records what the first one committed; it never records the
    batch as rolled back while it commits, and the first one, going on, is not refused either."""
    work = tmp_path / "d"
    shutil.copytree(district, work)
    copy_vendor(f"sqlite:///{work / 'system' / 'binh-son-igate.sqlite'}", pg_url)  # the store is there too
    audit_into(work, pg_url, pg_url)
    plan = tmp_path / "plan.yaml"
    make_plan(pg_url, plan)
    original = cells(pg_url)
    args = ("apply", str(plan), "--store", pg_url, "--yes", "--batch-size", "3")  # 2 batches
    with stopped(*args, fault="after-log:2:STOP") as first:
        second = cli(*args)
        engine = sa.create_engine(pg_url)
        with engine.connect() as conn:  # the second one waits for the rows the first one holds (in this schema)
            for _ in range(600):
                blocked = conn.execute(sa.text(BLOCKED_HERE)).scalar()
                conn.rollback()  # pg_stat_activity is read once a transaction
                if blocked or second.poll() is not None:
                    break
                time.sleep(0.1)
        engine.dispose()
        os.kill(first.pid, signal.SIGCONT)
        for proc in (first, second):
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0 and "Traceback" not in err, err
    assert [(r["id"], r["outcome"]) for r in history.history(pg_url)] in (
        [(1, "committed"), (2, "committed")], [(1, "committed"), (2, "recovered")])
    written_once(pg_url)
    check_consistent(pg_url, pg_url, original)


def test_two_undos_logging_at_once_on_a_server_store_take_distinct_batch_ids(
        district: Path, tmp_path: Path, pg_url: str) -> None:
    """Batch ids are the store's max + 1, read in each batch's log transaction: an undo stopped between
    that read and its INSERT, while another undo logs and commits the same id, logs again under the next id
    (only its log rolls back; its target transaction waits, uncommitted), and both finish."""
    work = tmp_path / "d"
    shutil.copytree(district, work)
    copy_vendor(f"sqlite:///{work / 'system' / 'binh-son-igate.sqlite'}", pg_url)
    audit_into(work, pg_url, pg_url)
    plan = tmp_path / "plan.yaml"
    make_plan(pg_url, plan)
    original = cells(pg_url)
    assert run("apply", str(plan), "--store", pg_url, "--yes", "--batch-size", "3")[0] == 0  # batches 1 and 2
    with stopped("undo", "2", "--store", pg_url, "--yes", fault="batch-id:1:STOP") as first:  # read id 3
        assert run("undo", "1", "--store", pg_url, "--yes")[0] == 0  # logs and commits batch 3
        os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0 and "Traceback" not in err, err
    assert [(r["id"], r["kind"], r["undo_of"], r["outcome"]) for r in history.history(pg_url)] == [
        (1, "apply", None, "committed"), (2, "apply", None, "committed"), (3, "undo", 1, "committed"),
        (4, "undo", 2, "committed")]
    assert cells(pg_url) == original


# ---------------------------------------------------------------------------- read-only accounts


@pytest.fixture(params=["postgresql", "mariadb"])
def read_only(request: pytest.FixtureRequest, district: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The vendor tables on a server, audited through a new account that may only read them (dropped after)."""
    engine = request.param
    admin_url = request.getfixturevalue("pg_url" if engine == "postgresql" else "mariadb_url")
    user = f"ro_{uuid.uuid4().hex[:10]}"
    copy_vendor(f"sqlite:///{district / 'system' / 'binh-son-igate.sqlite'}", admin_url)
    admin = sa.create_engine(admin_url)
    database = sa.engine.make_url(admin_url).database
    hosts = ("%%", "localhost")
    with admin.begin() as conn:
        if engine == "postgresql":
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
            conn.exec_driver_sql(f'CREATE ROLE "{user}" LOGIN')
            conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{user}"')
            conn.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{user}"')
        else:
            for host in hosts:
                conn.exec_driver_sql(f"CREATE USER '{user}'@'{host}'")
                conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO '{user}'@'{host}'")
    url = sa.engine.make_url(admin_url).set(username=user).render_as_string(hide_password=False)
    work = tmp_path / "d"
    shutil.copytree(district, work)
    store = str(tmp_path / "store.duckdb")
    audit_into(work, url, store)  # reading is all an audit needs
    plan = tmp_path / "plan.yaml"
    make_plan(store, plan)

    def grant(sql: str) -> None:
        with admin.begin() as conn:
            for t in sorted(WRITTEN_TABLES):
                if engine == "postgresql":
                    conn.exec_driver_sql(sql.format(table=f'"{t}"', user=f'"{user}"'))
                else:
                    for host in hosts:
                        conn.exec_driver_sql(sql.format(table=f"`{t}`", user=f"'{user}'@'{host}'"))

    yield {"engine": engine, "admin": admin_url, "url": url, "user": user, "store": store, "plan": plan,
           "grant": grant, "source": yaml_source(plan)}
    with admin.begin() as conn:
        if engine == "postgresql":
            conn.exec_driver_sql(f'DROP OWNED BY "{user}"')
            conn.exec_driver_sql(f'DROP ROLE "{user}"')
        else:
            for host in hosts:
                conn.exec_driver_sql(f"DROP USER '{user}'@'{host}'")
    admin.dispose()


def yaml_source(plan: Path) -> str:
    import yaml

    return str(yaml.safe_load(plan.read_text(encoding="utf-8"))["plan"]["system"]["source"])


def test_a_read_only_account_audits_and_apply_refuses_before_the_first_batch(read_only: dict[str, Any]) -> None:
    """An account that may only read: the audit works; apply --yes is refused before any batch (exit 3),
    in one line naming the account and the tables, the same on PostgreSQL and MariaDB, no SQL and no
    values; nothing is written to the system or logged."""
    ro = read_only
    original = cells(ro["admin"])
    err = invoke("apply", str(ro["plan"]), "--store", ro["store"], "--yes", expect=3).stderr
    assert err == (f"error: system database {ro['source']}: the account {ro['user']!r} cannot write HS_HOSO, "
                   "HS_XULY_HIENTAI (no privilege, or the database is read-only): nothing written. Hint: apply with an "
                   "account that may write them (UPDATE; INSERT for backfills), or --sql FILE writes the statements "
                   "for a DBA.\n")
    assert cells(ro["admin"]) == original and history.history(ro["store"]) == []
    invoke("apply", str(ro["plan"]), "--store", ro["store"], "--dry-run", expect=0)


def test_a_right_to_write_revoked_during_apply_stops_it_at_that_batch(read_only: dict[str, Any],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check before the first batch is not all: a batch the database refuses to let the account
    write stops apply the same way (exit 3, no SQL, no values), naming the batches committed before."""
    ro = read_only
    ro["grant"]("GRANT UPDATE ON {table} TO {user}")
    original = cells(ro["admin"])
    act_at(monkeypatch, "before-batch:2", lambda: ro["grant"]("REVOKE UPDATE ON {table} FROM {user}"))
    err = invoke("apply", str(ro["plan"]), "--store", ro["store"], "--yes", "--batch-size", "1", expect=3).stderr
    # PostgreSQL refuses the batch's locking read (FOR UPDATE needs the right to write), MariaDB its UPDATE
    tables = "HS_HOSO, HS_XULY_HIENTAI" if ro["engine"] == "postgresql" else "HS_XULY_HIENTAI"
    store, again = ro["store"], f"reconcile apply {ro['plan']} --yes"
    assert err.startswith("error: batch 2 (plan lines "), err
    assert err.split(": ", 2)[2] == (
        f"system database {ro['source']}: the account {ro['user']!r} cannot write {tables} (no privilege, or the "
        f"database is read-only); this batch was rolled back, nothing of it written. "
        f"{after_error('apply', [1], store, again)}\n")
    assert len(changed_dossiers(ro["admin"], original)) == 1
    assert [r["outcome"] for r in history.history(store)] == ["committed"]


# ------------------------------------------------------------------------------------ a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs of its own, for a store to fill."""
    if os.geteuid() != 0:
        pytest.skip("the full-disk tests mount a small tmpfs, which needs root (they run where the tests run as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """A file taking every free byte of the disk."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_under_the_store_rolls_the_audit_back_in_one_line(
        district: Path, tmp_path: Path, small_disk: Path) -> None:
    work = tmp_path / "d"
    shutil.copytree(district, work)
    store = small_disk / "store.duckdb"
    args = ["audit", "--register", *[str(p) for p in (work / "register").iterdir()], "--system",
            f"sqlite:///{work / 'system' / 'binh-son-igate.sqlite'}", "--mapping", str(work / "system" / "mapping.yaml"),
            "--workflows", str(work / "workflows"), "--as-of", "2021-06-30", "--store", str(store)]
    for unit in PAPER_ONLY:
        args += ["--paper-only", unit]
    invoke(*args, expect=1)
    filler = fill(small_disk)
    err = invoke(*args, expect=3).stderr
    assert err == (f"error: store {store}: the disk it is on is full: the audit was rolled back, nothing written. Hint: "
                   "free space on that disk, or pass --store on another one.\n")
    filler.unlink()
    assert runs_in(store) == ([1], {1})
    invoke(*args, expect=1)
    assert runs_in(store) == ([1, 2], {1, 2})


def test_a_full_disk_under_the_store_stops_apply_between_batches_naming_what_was_committed(
        district: Path, tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's disk fills between batches 2 and 3: batch 3, whose log cannot be written, rolls back;
    the message names the batches committed; with space again, the rerun finishes and undo restores all."""
    store = str(small_disk / "store.duckdb")
    url, plan, original = planned_into(district, tmp_path, store)
    filled: list[Path] = []
    act_at(monkeypatch, "before-batch:3", lambda: filled.append(fill(small_disk)))
    err = invoke("apply", str(plan), "--store", store, "--yes", "--batch-size", "1", expect=3).stderr
    assert err == (f"error: store {store}: cannot record the batch (this batch was rolled back, nothing of it "
                   f"written): the disk it is on is full. {after_error('apply', [1, 2], store, f'reconcile apply {plan} --yes')}\n")
    assert len(changed_dossiers(url, original)) == 2
    filled[0].unlink()
    monkeypatch.undo()
    finish_and_undo(url, store, plan, original)


# ------------------------------------------------------------------------- what Ctrl-C says it wrote


@pytest.mark.parametrize("command, n", [("plan", 1), ("report", 2), ("tickets", 1)])
def test_ctrl_c_after_a_command_wrote_files_names_them(fresh: dict[str, Any], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, command: str, n: int) -> None:
    """Ctrl-C says "nothing was written" only when nothing was: after `plan --out` wrote its file (and
    before the store recorded it), after `report` wrote some of its files, after `tickets` wrote its
    folder, it names what was written; each of those is whole."""
    store, out = fresh["store"], tmp_path / "out"
    args = {"plan": ["--out", str(out)], "report": ["--format", "json", "--format", "md", "--format", "csv", "--out",
                                                    str(out)], "tickets": ["--out", str(out)]}[command]
    monkeypatch.setenv(FAULT_ENV, f"wrote:{n}:INT")
    err = invoke(command, "--store", store, *args, expect=130).stderr
    written = {"plan": [out], "report": [out / "report.json", out / "report.vi.md"], "tickets": [out]}[command]
    assert err.splitlines()[-1] == (f"interrupted: wrote {', '.join(map(str, written))} before stopping; nothing else "
                                    "was written.")
    assert all(p.exists() for p in written)
    if command == "report":
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    if command == "tickets":
        assert {"index.md", "tickets.csv", "tickets.json"} <= {p.name for p in out.iterdir()}
    if command == "plan":
        opened = open_store(store, create=False)
        with opened.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(plan_file)).scalar() == 0
        opened.engine.dispose()
        assert "actions:" in out.read_text(encoding="utf-8")
