"""Benchmark: the mapping-profile audit from a vendor database (SQLite and PostgreSQL) against the
CSV-profile audit of the same district in the same run (target: at most 1.3x its wall time, peak
memory at most 1 GB).

The district is simulated once into bench-data/ (system as csv export and as the vendor SQLite of the
same seed); the PostgreSQL copy goes into the schema `bench_vendor` of RECONCILE_BENCH_PG (default
postgresql://postgres@127.0.0.1:5432/test), made once. Each audit runs in its own process.

    python benchmarks/bench_vendor.py [--size 1000000] [--runs 1] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
BASE_DOSSIERS = 15_256 + 24  # as in bench_audit
PG_URL = os.environ.get("RECONCILE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "bench_vendor"
TABLES = ("HS_HOSO", "HS_XULY_HIENTAI", "DM_CANBO", "HS_NHATKY")

# The child reports its own peak RSS and CPU seconds (itself and its children) on stderr.
WRAP = (
    "import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
    "try:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
    "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
    "s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(f'PEAK_RSS_KB={max(s.ru_maxrss, c.ru_maxrss)}', file=sys.stderr)\n"
    "print(f'CPU_S={s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime}', file=sys.stderr); sys.exit(code)\n"
)


def simulate(size: int, system_format: str) -> Path:
    out = DATA / f"n{size}-{system_format}"
    if (out / ".done").exists():
        return out
    print(f"simulating ~{size:,} dossiers ({system_format} system) into {out}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "reconcile", "simulate", "--out", str(out), "--scale",
                    f"{size / BASE_DOSSIERS:.4f}", "--register-format", "csv", "--system-format", system_format],
                   check=True)
    (out / ".done").write_text("ok")
    return out


def pg_copy(sqlite_file: Path) -> str:
    """The vendor tables in PostgreSQL (schema bench_vendor, same column types), copied once by ADBC."""
    marker = sqlite_file.with_name(".pg-copied")
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{PG_SCHEMA}"
    if marker.exists():  # delete it to copy again
        return url
    import adbc_driver_postgresql.dbapi as pg
    import adbc_driver_sqlite.dbapi as lite

    print(f"copying {sqlite_file.name} into PostgreSQL schema {PG_SCHEMA}", file=sys.stderr)
    with pg.connect(PG_URL) as dst, lite.connect(f"file:{sqlite_file}?mode=ro") as src:
        cur, scur = dst.cursor(), src.cursor()
        cur.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        cur.execute(f"CREATE SCHEMA {PG_SCHEMA}")
        for name in TABLES:
            scur.execute(f'SELECT * FROM "{name}"')
            cur.adbc_ingest(name, scur.fetch_record_batch(), mode="create", db_schema_name=PG_SCHEMA)
        dst.commit()
    marker.write_text("ok")
    return url


def audit(data: Path, system: list[str], store: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak MB of one audit."""
    store.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", WRAP, "reconcile", "audit",
           "--register", str(data / "register" / "so-theo-doi-ho-so-2021.csv"), *system,
           "--workflows", str(data / "workflows"), "--config", str(data / "reconcile.yaml"),
           "--store", str(store), "--format", "json"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    found = dict(line.split("=", 1) for line in proc.stderr.splitlines() if line.startswith(("PEAK_RSS_KB=", "CPU_S=")))
    store.unlink(missing_ok=True)
    return wall, float(found["CPU_S"]), int(found["PEAK_RSS_KB"]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-pg", action="store_true", help="leave out the PostgreSQL row")
    args = parser.parse_args()
    csv_data, lite_data = simulate(args.size, "csv"), simulate(args.size, "sqlite")
    sqlite_file = lite_data / "system" / "binh-son-igate.sqlite"
    mapping = str(lite_data / "system" / "mapping.yaml")
    paths = {"CSV profile": (csv_data, ["--system", str(csv_data / "system")]),
             "mapping from SQLite": (lite_data, ["--system", f"sqlite:///{sqlite_file}", "--mapping", mapping])}
    if not args.no_pg:
        try:
            paths["mapping from PostgreSQL"] = (lite_data, ["--system", pg_copy(sqlite_file), "--mapping", mapping])
        except Exception as exc:  # noqa: BLE001 - the other rows still mean something
            print(f"PostgreSQL at {PG_URL} unreachable, its row left out: {str(exc).splitlines()[0]}", file=sys.stderr)
    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in paths}
    for i in range(args.runs):
        for name, (data, system) in paths.items():
            results[name].append(audit(data, system, DATA / "bench-vendor.duckdb"))
            print(f"  run {i + 1}/{args.runs} {name}: {results[name][-1][0]:.1f}s", file=sys.stderr)
    med = {k: (statistics.median(w for w, _, _ in v), statistics.median(c for _, c, _ in v), max(m for *_, m in v))
           for k, v in results.items()}
    base_wall, base_cpu, _ = med["CSV profile"]
    print(f"\n| {args.size:,} dossiers | wall s | CPU s | peak MB | wall vs CSV | CPU vs CSV |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (wall, cpu, peak) in med.items():
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {peak:,.0f} | {wall / base_wall:.2f}x | {cpu / base_cpu:.2f}x |")
    print("targets: mapping rows <= 1.30x the CSV profile's wall time, peak <= 1,000 MB")


if __name__ == "__main__":
    main()
