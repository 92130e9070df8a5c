"""Benchmark: statistics and the HTML report over the simulated district at 1M dossiers.

Targets (issue 5): the statistics table <= 2x a bare grouped count over the same table in the same
run; the full HTML report <= 10 s and <= 5 MB.

    python benchmarks/bench_report.py [--size 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_audit import simulate  # noqa: E402
from reconcile.stats import tables as stats  # noqa: E402
from reconcile.audit import groups  # noqa: E402
from reconcile.store import audit_run, dossier, open_store  # noqa: E402


def audited(data: Path) -> Path:
    store = data / "report.duckdb"
    if store.exists() and "schema_version', '5'" not in str(_meta(store)):
        store.unlink()  # audited by an older version: audit again
    if not store.exists():
        print(f"auditing {data} into {store}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "reconcile", "audit", "--store", str(store), "--format", "json"],
                       cwd=data, stdout=subprocess.DEVNULL, check=False)
    return store


def _meta(store: Path) -> list[tuple[str, str]]:
    import duckdb

    with duckdb.connect(str(store), read_only=True) as c:
        return c.execute("SELECT key, value FROM store_meta").fetchall()


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    data = simulate(args.size)
    store_path = audited(data)
    store = open_store(str(store_path), create=False)
    with store.connect() as conn:
        run_id, as_of = conn.execute(sa.select(audit_run.c.id, audit_run.c.as_of).order_by(audit_run.c.id.desc())
                                     .limit(1)).one()
        n = conn.execute(sa.select(sa.func.count()).select_from(dossier).where(dossier.c.run_id == run_id)).scalar()
        bare = sa.select(dossier.c.workflow_key, sa.func.count()).where(dossier.c.run_id == run_id) \
            .group_by(dossier.c.workflow_key)
        t_bare = median_seconds(lambda: conn.execute(bare).all(), args.runs)
        t_stats = median_seconds(lambda: stats.compute(conn, run_id, as_of), args.runs)
        start, _ = groups.default_period(as_of)
        other = (start.replace(month=start.month + 3), as_of)  # a period the audit did not store: computed
        t_other = median_seconds(lambda: stats.compute(conn, run_id, as_of, period=other), args.runs)
        t_paper = median_seconds(lambda: stats.compute(conn, run_id, as_of, view="register", period=other),
                                 args.runs)
    store.engine.dispose()
    out = data / "report-out"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reconcile", "report", "--store", str(store_path), "--format", "html",
                    "--out", str(out)], cwd=data, check=True, stdout=subprocess.DEVNULL)
    t_html = time.perf_counter() - t0
    size = (out / "report.vi.html").stat().st_size
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reconcile", "report", "--store", str(store_path), "--format", "all",
                    "--out", str(out)], cwd=data, check=True, stdout=subprocess.DEVNULL)
    t_all = time.perf_counter() - t0
    print(f"{n:,} system dossiers, median of {args.runs} runs")
    print(f"bare GROUP BY count          {t_bare * 1000:8.1f} ms")
    print(f"statistics, audit's period   {t_stats * 1000:8.1f} ms   {t_stats / t_bare:5.2f}x  (target <= 2x; "
          "grouped by the audit)")
    print(f"statistics, another period   {t_other * 1000:8.1f} ms   {t_other / t_bare:5.2f}x  (grouped now)")
    print(f"  the same, register view    {t_paper * 1000:8.1f} ms")
    print(f"report --format html         {t_html:8.2f} s    {size / 1e6:5.2f} MB  (targets <= 10 s, <= 5 MB)")
    print(f"report --format all (vi)     {t_all:8.2f} s")


if __name__ == "__main__":
    main()
