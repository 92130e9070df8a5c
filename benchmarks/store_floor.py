"""Benchmark: the floor of a PostgreSQL-store audit, against the embedded store's whole audit.

The floor is what PostgreSQL alone needs to take in an audit's rows: the same rows COPYed into the same
tables in one transaction (indexes dropped first, built after, each table ANALYZEd, as the audit does),
with no reading, normalising or classifying. The rows are those a PostgreSQL-store audit of the
simulated district stored, exported once to CSV files before anything is timed. Each run times, in
this order: the embedded audit (a process), the PostgreSQL audit (a process, into a fresh schema) and
the floor (in this process, into another fresh schema, from the transaction's start to its commit).

    python benchmarks/store_floor.py [--size 1000000] [--runs 3]

Server: RECONCILE_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/test; schemas store_floor_*).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_audit import DATA, measure, simulate  # noqa: E402
from benchmarks.bench_store import commands, fresh_store  # noqa: E402
from reconcile.store import SCHEMA_VERSION, begin_fill, filled, metadata, open_store  # noqa: E402

# The tables an audit run fills, in the order the audit fills them.
RUN_TABLES = ("register_entry", "text_key", "register_book", "dossier", "account", "step_event", "wf_version",
              "wf_step", "wf_transition", "migration_step", "reconciliation", "finding", "work_day", "wf_state",
              "stats_group", "audit_run")


def audit(kind: str, data: Path, tmp: Path, schema: str) -> float:
    store = fresh_store(kind, tmp, schema)
    return measure(commands(data, store, tmp)["audit"], {"NO_COLOR": "1"})[0].wall


def export(store: str, out: Path) -> None:
    """Each run table's rows as a CSV file (COPY TO, column order of the table)."""
    engine = open_store(store, create=False).engine
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        for name in RUN_TABLES:
            with (out / f"{name}.csv").open("wb") as fh, cursor.copy(
                    f'COPY "{name}" TO STDOUT WITH (FORMAT csv)') as copy:
                for chunk in copy:
                    fh.write(chunk)
    engine.dispose()


def floor(store_url: str, rows: Path) -> float:
    """Seconds from BEGIN to COMMIT: COPY every file, the indexes and statistics as the audit builds them."""
    store = open_store(store_url)
    try:
        start = time.perf_counter()
        with store.begin() as conn:
            dropped = begin_fill(conn)
            cursor = conn.connection.dbapi_connection.cursor()
            for name in RUN_TABLES:
                with (rows / f"{name}.csv").open("rb") as fh, cursor.copy(
                        f'COPY "{name}" FROM STDIN WITH (FORMAT csv)') as copy:
                    while chunk := fh.read(1 << 20):
                        copy.write(chunk)
                filled(conn, dropped, metadata.tables[name])
        return time.perf_counter() - start
    finally:
        store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = simulate(args.size)
    rows = DATA / f"floor-n{args.size}-schema{SCHEMA_VERSION}"  # exported again when the schema changes
    tmp = Path(tempfile.mkdtemp(prefix="store-floor-"))
    if not (rows / ".done").exists():
        rows.mkdir(parents=True, exist_ok=True)
        audit("postgresql", data, tmp, "store_floor_src")
        export(fresh_store_url("store_floor_src"), rows)
        (rows / ".done").write_text("ok")
    times: dict[str, list[float]] = {"embedded": [], "postgresql": [], "floor": []}
    for i in range(args.runs):
        times["embedded"].append(audit("duckdb", data, tmp, ""))
        times["postgresql"].append(audit("postgresql", data, tmp, "store_floor_pg"))
        times["floor"].append(floor(fresh_store("postgresql", tmp, "store_floor"), rows))
        e, p, f = (times[k][-1] for k in ("embedded", "postgresql", "floor"))
        print(f"  run {i + 1}: embedded {e:.1f} s, postgresql {p:.1f} s ({p / e:.2f}x), floor {f:.1f} s "
              f"({f / e:.2f}x); load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: statistics.median(t / e for t, e in zip(v, times["embedded"])) for k, v in times.items()}
    print(f"\n{args.size:,} dossiers, {args.runs} runs, medians (ratio: median of each run's ratio to the embedded "
          "audit of the same run):")
    for k in ("embedded", "postgresql", "floor"):
        print(f"| {k} | {med[k]:.1f} s | {ratios[k]:.2f}x |")


def fresh_store_url(schema: str) -> str:
    """The URL of an existing schema (fresh_store would re-create it)."""
    url = sa.engine.make_url(os.environ.get("RECONCILE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


if __name__ == "__main__":
    main()
