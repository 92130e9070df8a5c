"""Benchmark: ways to read the mapped dossier table of a vendor database into Arrow text columns, on
the 1M district of bench_vendor.py (SQLite file, and its PostgreSQL copy). Each way runs in its own
process; wall and CPU seconds and peak RSS of the read alone.

    python benchmarks/bench_vendor_read.py [--size 1000000] [--no-pg]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_vendor import pg_copy, simulate  # noqa: E402

ROWS = 100_000


def _statement(url: str, mapping: str) -> tuple[Any, Any]:
    from reconcile.util.db import connect_engine
    from reconcile.sources.system import _read_only, _statement, load_mapping

    m = load_mapping(mapping)
    engine = connect_engine(url, what="system database", read_only=True)
    with _read_only(engine) as conn:
        return engine, _statement(conn, m.dossier, m)


def sqlalchemy_rows(url: str, mapping: str) -> int:
    """Before: a Python mapping per row, then a list per column (what system.py did)."""
    from reconcile.sources.system import _read_only, _text

    engine, stmt = _statement(url, mapping)
    n = 0
    with _read_only(engine) as conn:
        result = conn.execution_options(yield_per=ROWS).execute(stmt)
        for part in result.partitions(ROWS):
            rows = [r._mapping for r in part]
            table = pa.table({k: _text([r.get(k) for r in rows]) for k in result.keys()})
            n += table.num_rows
    return n


def sqlalchemy_columns(url: str, mapping: str) -> int:
    """A server-side cursor, each batch transposed into one Arrow array per column (arrowread's fallback)."""
    from reconcile.sources import arrowread
    from reconcile.sources.system import _read_only

    engine, stmt = _statement(url, mapping)
    with _read_only(engine) as conn:
        return sum(t.num_rows for t in arrowread._sqlalchemy_batches(conn, stmt, ROWS))


def adbc(url: str, mapping: str) -> int:
    from reconcile.sources import arrowread
    from reconcile.sources.system import _read_only

    engine, stmt = _statement(url, mapping)
    assert arrowread.adbc_uri(engine.url) is not None
    return sum(t.num_rows for t in arrowread.text_batches(engine, stmt, ROWS, lambda: _read_only(engine)))


def psycopg_copy_csv(url: str, mapping: str) -> int:
    """COPY (SELECT ...) TO STDOUT as CSV, parsed by pyarrow.csv (PostgreSQL only)."""
    import psycopg
    import pyarrow.csv as pacsv

    engine, stmt = _statement(url, mapping)
    sql = str(stmt.compile(dialect=engine.dialect))
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    buf = io.BytesIO()
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for data in copy:
                buf.write(data)
    names = list(stmt.selected_columns.keys())
    table = pacsv.read_csv(pa.py_buffer(buf.getvalue()), convert_options=pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=True))
    return table.num_rows


def sqlite3_columns(url: str, mapping: str) -> int:
    """The sqlite3 module's fetchmany, transposed into Arrow arrays (SQLite only)."""
    import sqlite3

    engine, stmt = _statement(url, mapping)
    sql = str(stmt.compile(dialect=engine.dialect))
    con = sqlite3.connect(f"file:{engine.url.database}?mode=ro", uri=True)
    cur = con.execute(sql)
    n = 0
    while part := cur.fetchmany(ROWS):
        cols = list(zip(*part))
        table = pa.table({str(i): pa.array([None if v is None else str(v) for v in c], pa.string())
                          for i, c in enumerate(cols)})
        n += table.num_rows
    con.close()
    return n


WAYS: dict[str, Callable[[str, str], int]] = {
    "SQLAlchemy rows (before)": sqlalchemy_rows, "SQLAlchemy server-side cursor -> columns": sqlalchemy_columns,
    "ADBC": adbc, "psycopg COPY csv -> pyarrow.csv": psycopg_copy_csv, "sqlite3 fetchmany -> columns": sqlite3_columns,
}
ONLY = {"psycopg COPY csv -> pyarrow.csv": "postgresql", "sqlite3 fetchmany -> columns": "sqlite"}


def one(way: str, url: str, mapping: str) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    n = WAYS[way](url, mapping)
    print(json.dumps({"rows": n, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                      "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(*args.one)
        return
    data = simulate(args.size, "sqlite")
    sqlite_file = data / "system" / "binh-son-igate.sqlite"
    mapping = str(data / "system" / "mapping.yaml")
    sources = {"sqlite": f"sqlite:///{sqlite_file}"}
    if not args.no_pg:
        try:
            sources["postgresql"] = pg_copy(sqlite_file)
        except Exception as exc:  # noqa: BLE001
            print(f"PostgreSQL unreachable, its rows left out: {str(exc).splitlines()[0]}", file=sys.stderr)
    print(f"\n| dossier table, {args.size:,} rows | from | wall s | CPU s | peak MB |")
    print("|---|---|---:|---:|---:|")
    for source, url in sources.items():
        for way in WAYS:
            if ONLY.get(way, source) != source:
                continue
            out = subprocess.run([sys.executable, __file__, "--one", way, url, mapping], capture_output=True,
                                 text=True, check=True).stdout
            r = json.loads(out.splitlines()[-1])
            print(f"| {way} | {source} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['peak']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
