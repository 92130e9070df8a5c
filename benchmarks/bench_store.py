"""Benchmark: the server stores against the embedded one, in the same run.

The simulated district (benchmarks/bench_audit.py's CSV files) is audited into a fresh DuckDB store, a
fresh PostgreSQL schema and a fresh MariaDB database; then `plan`, `stats` and `report --format html`
run on each store. Every command is its own process, timed from start to exit. Each server time is
held to 3x the embedded store's (issue 16).

    python benchmarks/bench_store.py [--size 1000000] [--mariadb-size 100000] [--runs 1]

Servers: RECONCILE_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/test; schema bench_store)
and RECONCILE_BENCH_MARIADB (default mysql://root@127.0.0.1:3306; database bench_store), re-created
at each audit. `--mariadb-size 0` leaves MariaDB out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_audit import measure, simulate  # noqa: E402

PG = os.environ.get("RECONCILE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB = os.environ.get("RECONCILE_BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")
NAME = "bench_store"
TARGET = 3.0


def fresh_store(kind: str, tmp: Path, name: str = NAME) -> str:
    """An empty store of this kind (server stores: schema or database `name`), as --store takes it."""
    if kind == "duckdb":
        path = tmp / "store.duckdb"
        path.unlink(missing_ok=True)
        return str(path)
    admin = sa.create_engine(PG if kind == "postgresql" else MARIADB)
    with admin.begin() as conn:
        if kind == "postgresql":
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    url = sa.engine.make_url(PG if kind == "postgresql" else MARIADB)
    url = (url.update_query_dict({"options": f"-csearch_path={name}"}) if kind == "postgresql"
           else url.set(database=name))
    return url.render_as_string(hide_password=False)


def commands(data: Path, store: str, tmp: Path) -> dict[str, list[str]]:
    r = [sys.executable, "-m", "reconcile"]
    return {
        "audit": [*r, "audit", "--register", str(data / "register" / "so-theo-doi-ho-so-2021.csv"),
                  "--system", str(data / "system"), "--workflows", str(data / "workflows"),
                  "--config", str(data / "reconcile.yaml"), "--store", store, "--format", "json"],
        "plan": [*r, "plan", "--store", store, "--out", str(tmp / "plan.yaml")],
        "stats": [*r, "stats", "--store", store, "--format", "json"],
        "report": [*r, "report", "--store", store, "--out", str(tmp / "report"), "--format", "html"],
    }


def time_store(kind: str, size: int, runs: int) -> dict[str, float]:
    """Median wall seconds of each command on a store of this kind (each run audits a fresh store)."""
    data = simulate(size)
    times: dict[str, list[float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-store-{kind}-"))
    try:
        for _ in range(runs):
            store = fresh_store(kind, tmp)
            for name, cmd in commands(data, store, tmp).items():
                elapsed = measure(cmd, {"NO_COLOR": "1"})[0].wall
                times.setdefault(name, []).append(elapsed)
                print(f"  {kind:10} {size:>9,} {name:6} {elapsed:7.2f} s", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--mariadb-size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    rows: list[tuple[int, str, dict[str, float], dict[str, float]]] = []
    embedded = time_store("duckdb", args.size, args.runs)
    rows.append((args.size, "duckdb", embedded, embedded))
    rows.append((args.size, "postgresql", time_store("postgresql", args.size, args.runs), embedded))
    if args.mariadb_size:
        small = embedded if args.mariadb_size == args.size else time_store("duckdb", args.mariadb_size, args.runs)
        if small is not embedded:
            rows.append((args.mariadb_size, "duckdb", small, small))
        rows.append((args.mariadb_size, "mariadb", time_store("mariadb", args.mariadb_size, args.runs), small))
    names = ("audit", "plan", "stats", "report")
    print(f"\n| dossiers | store | {' | '.join(names)} |")
    print(f"|---:|---|{'---:|' * len(names)}")
    over = []
    for size, kind, t, base in rows:
        cells = []
        for n in names:
            ratio = t[n] / base[n]
            cells.append(f"{t[n]:.1f} s" + ("" if kind == "duckdb" else f" ({ratio:.1f}x)"))
            if kind == "postgresql" and ratio > TARGET:
                over.append(f"{n} {ratio:.1f}x")
        print(f"| {size:,} | {kind} | {' | '.join(cells)} |")
    print(f"\nPostgreSQL store vs embedded, target <= {TARGET:.0f}x each: "
          + ("met" if not over else "NOT met: " + ", ".join(over)))


if __name__ == "__main__":
    main()
