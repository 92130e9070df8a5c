"""Benchmark: plan + apply of 100k fixes (with their change rows) and undo of them, against a bare
bulk UPDATE of the same rows and columns on the same SQLite database, in the same run.

The district is a vendor-shaped SQLite database (HS_HOSO, HS_XULY_HIENTAI, DM_CANBO, HS_NHATKY, with
an index on the dossier code as a vendor database has) where every open dossier sits with an account
that was deactivated while an active colleague works in the same unit: the audit flags them all and
the plan has one `reassign` per dossier. Each run starts from a fresh copy of the audited database and
store, and times, in-process (as the CLI calls them): `plan` (build, write and record the plan file), `apply
--yes` (default batch size), `undo --yes` of every batch (newest first); then, on another fresh copy,
the bare bulk UPDATE of the same rows and column to the same values in one transaction (executemany),
and the bare UPDATE back; then the floor of the safety model on the target side: the same batches, each
re-reading its rows and running compare-and-set UPDATEs in its own transaction, in raw sqlite3 (no tool
code, no fingerprints, no change log, no plan file): what any implementation of that model pays.

Target (issue 4): plan + apply <= 3x the bare UPDATE; undo <= 3x the bare UPDATE back.

    python benchmarks/bench_apply.py [--dossiers 100000] [--runs 3] [--batch-size N]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from reconcile.demo.district import MAPPING_YAML, SQLITE_SCHEMA
from reconcile.store import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
PROC = "1.004227.000.00.00.H48"
UNITS = [f"U{i:02d}" for i in range(1, 21)]
STEPS = ["S01", "S02", "S03", "S04"]


def generate(out: Path, dossiers: int) -> None:
    """The vendor database, its mapping, a one-procedure catalog and a register book of another year."""
    marker, done = out / ".done", f"schema {SCHEMA_VERSION}"  # an older store is upgraded at open: not timed
    if marker.exists() and marker.read_text() == done:
        return
    print(f"generating {dossiers:,} open dossiers with deactivated assignees into {out}", file=sys.stderr)
    shutil.rmtree(out, ignore_errors=True)
    wf = out / "workflows" / "land"
    wf.mkdir(parents=True)
    lines = [f'procedure: "{PROC}"', 'name: "Đăng ký biến động quyền sử dụng đất"', "version: 1",
             "valid_from: 2020-01-01", "steps:"]
    for i, s in enumerate(STEPS):
        nxt = f"[{STEPS[i + 1]}]" if i + 1 < len(STEPS) else "[]"
        unit = UNITS[0] if i == 0 else "VPDK"
        lines.append(f"  - {{id: {s}, name: Bước {s}, unit: {unit}, days: 5, next: {nxt}, "
                     f"final: {'true' if i + 1 == len(STEPS) else 'false'}}}")
    (wf / "v1.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    system = out / "system"
    system.mkdir()
    (system / "mapping.yaml").write_text(MAPPING_YAML, encoding="utf-8")  # the demo's vendor shape
    db = sqlite3.connect(system / "vendor.sqlite")
    db.executescript(SQLITE_SCHEMA)
    accounts = []
    for u in UNITS:
        accounts.append((f"{u.lower()}.old", f"Cán bộ cũ {u}", u, 0))  # deactivated, still holds dossiers
        accounts += [(f"{u.lower()}.can{k}", f"Cán bộ {k} {u}", u, 1) for k in range(1, 4)]
    db.executemany("INSERT INTO DM_CANBO VALUES (?, ?, ?, ?)", accounts)
    hoso, task = [], []
    for i in range(dossiers):
        code = f"000.00.53.H48-2012{20 + i % 10:02d}-{i:07d}"
        unit = UNITS[i % len(UNITS)]
        received = f"2020-12-{20 + i % 10:02d} 08:30:00"
        hoso.append((i + 1, code, PROC, "Nguyễn Văn An", received, "2021-03-31 17:00:00", 2, PROC, 1))
        task.append((code, "S01", f"{unit.lower()}.old", unit, received, "2021-03-31 17:00:00"))
    db.executemany("INSERT INTO HS_HOSO(ID, MA_HOSO, MA_TTHC, CHU_HOSO, NGAY_TIEPNHAN, NGAY_HENTRA, TRANGTHAI, "
                   "MA_QUYTRINH, PHIENBAN) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", hoso)
    db.executemany("INSERT INTO HS_XULY_HIENTAI VALUES (?, ?, ?, ?, ?, ?)", task)
    db.executescript("CREATE INDEX IX_HS_HOSO_MA ON HS_HOSO(MA_HOSO);"
                     "CREATE INDEX IX_HS_XULY_MA ON HS_XULY_HIENTAI(MA_HOSO);")
    db.commit()
    db.close()
    # A 2021 register book: the 2020 dossiers are outside its period, so the run holds no paper findings.
    (out / "register.csv").write_text(
        "STT,Mã hồ sơ,Nhận hồ sơ\n1,000.00.53.H48-210104-0000001,04/01/2021\n", encoding="utf-8-sig")
    from reconcile.audit.inputs import AuditInputs
    from reconcile.audit.commands import audit

    audit(AuditInputs(register=(str(out / "register.csv"),), system=f"sqlite:///{system / 'vendor.sqlite'}",
                      workflows=str(out / "workflows"), as_of=date(2020, 12, 31),
                      mapping=str(system / "mapping.yaml")), str(out / "pristine.duckdb"))
    shutil.copy(system / "vendor.sqlite", out / "pristine.sqlite")
    marker.write_text(done)


def fresh(out: Path) -> None:
    """The audited database and store as the audit left them."""
    shutil.copy(out / "pristine.sqlite", out / "system" / "vendor.sqlite")
    shutil.copy(out / "pristine.duckdb", out / "store.duckdb")


def bare(db_path: Path, pairs: list[tuple[str, str]]) -> float:
    """One transaction: UPDATE the task table's assignee of the given codes (executemany)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    start = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.executemany("UPDATE HS_XULY_HIENTAI SET TAIKHOAN_XULY = ? WHERE MA_HOSO = ?", pairs)
    db.execute("COMMIT")
    took = time.perf_counter() - start
    db.close()
    return took


def floor(db_path: Path, writes: list[tuple[str, str, str]], batch_size: int, columns: str) -> float:
    """Per batch one BEGIN IMMEDIATE transaction: re-read the batch's rows (`columns` of the dossier and task
    tables, one IN list per table), compare-and-set UPDATE of the task's assignee (executemany), COMMIT.
    `writes`: (code, value read, value to write)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    start = time.perf_counter()
    for i in range(0, len(writes), batch_size):
        part = writes[i:i + batch_size]
        db.execute("BEGIN IMMEDIATE")
        codes = [code for code, _, _ in part]
        marks = ",".join("?" * len(codes))
        for table in ("HS_HOSO", "HS_XULY_HIENTAI") if columns == "*" else ("HS_XULY_HIENTAI",):
            db.execute(f"SELECT {columns} FROM {table} WHERE MA_HOSO IN ({marks})", codes).fetchall()
        cur = db.executemany("UPDATE HS_XULY_HIENTAI SET TAIKHOAN_XULY = ? WHERE MA_HOSO = ? AND TAIKHOAN_XULY = ?",
                             [(new, code, old) for code, old, new in part])
        assert cur.rowcount == len(part), cur.rowcount
        db.execute("COMMIT")
    took = time.perf_counter() - start
    db.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="apply's batch size (default: apply's own)")
    args = parser.parse_args()
    out = DATA / f"apply-{args.dossiers}"
    generate(out, args.dossiers)

    from reconcile.fix import apply as ap
    from reconcile.fix import commands as fix_commands
    from reconcile.fix.undo import undo_batches

    store, plan_path, db_path = str(out / "store.duckdb"), out / "plan.yaml", out / "system" / "vendor.sqlite"
    batch_size = args.batch_size or ap.DEFAULT_BATCH_SIZE
    times: dict[str, list[float]] = {k: [] for k in ("plan", "apply", "undo", "bare", "bare_back", "floor",
                                                     "floor_back")}
    for _ in range(args.runs):
        fresh(out)
        t = time.perf_counter()
        plan = fix_commands.plan(store)
        fix_commands.write_plan(plan, plan_path, store)  # as `reconcile plan --out`: written and recorded
        times["plan"].append(time.perf_counter() - t)
        reassign = [a for a in plan.actions if a.action == "reassign"]
        # and the register's one row, missing in the system: a backfill or escalation apply does not write
        assert len(reassign) == args.dossiers and len(plan.actions) <= args.dossiers + 1, plan.counts()

        t = time.perf_counter()
        result = ap.apply_plan(plan_path, store, yes=True, batch_size=batch_size)
        times["apply"].append(time.perf_counter() - t)
        assert result.counts()["written"] == args.dossiers, result.counts()
        with sqlite3.connect(db_path) as db:
            assert db.execute("SELECT count(*) FROM HS_XULY_HIENTAI WHERE TAIKHOAN_XULY LIKE '%.old'"
                              ).fetchone()[0] == 0

        t = time.perf_counter()
        for _ in undo_batches(sorted(result.batches, reverse=True), store, yes=True):
            pass  # as `reconcile undo ID...` does
        times["undo"].append(time.perf_counter() - t)
        with sqlite3.connect(db_path) as db:
            assert db.execute("SELECT count(*) FROM HS_XULY_HIENTAI WHERE TAIKHOAN_XULY LIKE '%.old'"
                              ).fetchone()[0] == args.dossiers

        # The same rows and column to the same values, and back, on a fresh copy of the same database.
        fresh(out)
        old = {a.dossier_code: a.evidence["assignee"] for a in reassign}
        times["bare"].append(bare(db_path, [(a.set["assignee"], a.dossier_code) for a in reassign]))
        times["bare_back"].append(bare(db_path, [(old[c], c) for c in old]))
        # The safety model's floor: apply re-reads every column (its fingerprints need them), undo the written one.
        fixes = [(a.dossier_code, old[a.dossier_code], a.set["assignee"]) for a in reassign]
        times["floor"].append(floor(db_path, fixes, batch_size, "*"))
        times["floor_back"].append(floor(db_path, [(c, new, was) for c, was, new in fixes], batch_size,
                                         "MA_HOSO, TAIKHOAN_XULY"))

    m = {k: statistics.median(v) for k, v in times.items()}
    print(f"apply benchmark: {args.dossiers:,} reassign fixes on a vendor-shaped SQLite database, "
          f"batch size {batch_size}, median of {args.runs} runs")
    print(f"  plan (build, write, record the file){m['plan']:8.2f} s")
    print(f"  apply --yes (with change rows)      {m['apply']:8.2f} s")
    print(f"  undo --yes of every batch           {m['undo']:8.2f} s")
    print(f"  bare bulk UPDATE (executemany)      {m['bare']:8.2f} s")
    print(f"  bare bulk UPDATE back               {m['bare_back']:8.2f} s")
    print(f"  floor: batches re-read + CAS UPDATE {m['floor']:8.2f} s  ({m['floor'] / m['bare']:.1f}x bare; "
          "raw sqlite3, target side only)")
    print(f"  floor: the same back                {m['floor_back']:8.2f} s  ({m['floor_back'] / m['bare_back']:.1f}x "
          "bare back)")
    print(f"  plan + apply / bare: {(m['plan'] + m['apply']) / m['bare']:.1f}x (target <= 3x); "
          f"apply alone / bare: {m['apply'] / m['bare']:.1f}x")
    print(f"  undo / bare back:    {m['undo'] / m['bare_back']:.1f}x (target <= 3x)")


if __name__ == "__main__":
    main()
