"""Benchmark: the workflow census over 1M open dossiers spread over 300 versions of one process,
against a bare `GROUP BY version, step` count over the same store table, in the same run.

Target (issue 3): census <= 3x the bare count. Also prints the audit that builds the store.

    python benchmarks/bench_census.py [--dossiers 1000000] [--versions 300] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
PROC = "1.004227.000.00.00.H48"
STEPS = [f"S{i:02d}" for i in range(1, 9)]


def generate(out: Path, dossiers: int, versions: int) -> None:
    """One process redeployed `versions` times (each drops one middle step), open dossiers on random
    versions and steps: about one in eight sits on a step its version dropped."""
    marker = out / ".done"
    if marker.exists():
        return
    print(f"generating {dossiers:,} open dossiers over {versions} versions into {out}", file=sys.stderr)
    wf = out / "workflows" / "land"
    wf.mkdir(parents=True, exist_ok=True)
    for v in range(1, versions + 1):
        dropped = STEPS[2 + v % 5]
        steps = [s for s in STEPS if s != dropped]
        lines = [f'procedure: "{PROC}"', 'name: "Đăng ký biến động quyền sử dụng đất"', f"version: {v}",
                 f"valid_from: 2020-{1 + v * 11 // versions:02d}-01", "steps:"]
        for i, s in enumerate(steps):
            nxt = f"[{steps[i + 1]}]" if i + 1 < len(steps) else "[]"
            lines.append(f"  - {{id: {s}, name: Bước {s}, unit: VPDK, days: 2, next: {nxt}, "
                         f"final: {'true' if i + 1 == len(steps) else 'false'}}}")
        (wf / f"v{v}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    system = out / "system"
    system.mkdir(exist_ok=True)
    import numpy as np

    rng = np.random.default_rng(2021)
    n = dossiers
    codes = pa.array([f"000.00.53.H48-2012{20 + i % 10:02d}-{i:07d}" for i in range(n)])
    received = pa.array([f"2020-12-{20 + i % 10:02d}" for i in range(n)])
    table = pa.table({
        "dossier_code": codes, "procedure": pa.array([PROC] * n), "applicant": pa.array(["Nguyễn Văn An"] * n),
        "status": pa.array(["in_progress"] * n), "workflow_key": pa.array([PROC] * n),
        "workflow_version": pa.array(rng.integers(1, versions + 1, n).astype(str)),
        "current_step": pa.array(np.array(STEPS)[rng.integers(0, len(STEPS), n)]),
        "assignee": pa.array(["vpdk.an"] * n), "unit": pa.array(["VPDK"] * n), "received_at": received,
        "due_at": received, "finished_at": pa.nulls(n, pa.string()), "returned_at": pa.nulls(n, pa.string()),
    })
    pacsv.write_csv(table, system / "dossiers.csv")
    (system / "accounts.csv").write_text("account,unit,active\nvpdk.an,VPDK,1\n", encoding="utf-8")
    # A 2021 register book: the 2020 dossiers are outside its period, so the run holds no paper findings.
    (out / "register.csv").write_text(
        "STT,Mã hồ sơ,Nhận hồ sơ\n1,000.00.53.H48-210104-0000001,04/01/2021\n", encoding="utf-8-sig")
    marker.write_text("ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    out = DATA / f"census-{args.dossiers}-{args.versions}"
    generate(out, args.dossiers, args.versions)
    store = out / "store.duckdb"
    store.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reconcile", "audit", "--register", str(out / "register.csv"),
                    "--system", str(out / "system"), "--workflows", str(out / "workflows"),
                    "--as-of", "2020-12-31", "--store", str(store), "--format", "json"],
                   check=False, stdout=subprocess.DEVNULL)
    audit_s = time.perf_counter() - start

    from reconcile.store import open_store, wf_state
    from reconcile.workflow.state import census

    s = open_store(str(store), create=False)
    w = wf_state.c
    bare_stmt = sa.select(w.version, w.step, sa.func.count()).where(w.run_id == 1).group_by(w.version, w.step)
    times: dict[str, list[float]] = {"bare": [], "census": []}
    with s.connect() as conn:
        for _ in range(args.runs):
            t = time.perf_counter()
            bare = conn.execute(bare_stmt).all()
            times["bare"].append(time.perf_counter() - t)
            t = time.perf_counter()
            rows = census(conn, 1)
            times["census"].append(time.perf_counter() - t)
    s.engine.dispose()
    assert sum(r.open for r in rows) == sum(n for *_, n in bare) == args.dossiers
    bare_s, census_s = statistics.median(times["bare"]), statistics.median(times["census"])
    orphaned = sum(r.orphaned for r in rows)
    print(f"audit building the store ({args.dossiers:,} open dossiers, {args.versions} versions): {audit_s:.2f} s")
    print(f"census: {len(rows):,} rows, {orphaned:,} orphaned dossiers; median of {args.runs}: "
          f"census {census_s * 1000:.0f} ms, bare GROUP BY version, step {bare_s * 1000:.0f} ms, "
          f"ratio {census_s / bare_s:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
