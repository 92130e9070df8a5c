"""Faults: a real `reconcile audit` killed (SIGKILL) or interrupted (SIGINT) at every stage; a full disk
under the store; and what Ctrl-C says it wrote.

An audit's fault is checked for whole runs (no rows of an unfinished audit run) and a rerun that completes."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from helpers import invoke
from test_apply import PAPER_ONLY, make_plan
from reconcile.commands import AuditInputs, audit
from reconcile.faults import FAULT_ENV
from reconcile.simulate import simulate
from reconcile.store import audit_run, metadata, open_store, plan_file

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
    """A private copy of the district (tmp/d) audited into `store` and planned (6 writing actions, one a
    dossier): its system URL, the plan, and the system's values as they were."""
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
