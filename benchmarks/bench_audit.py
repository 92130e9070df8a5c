"""Benchmark: `reconcile audit` at 100k and 1M dossiers against datacompy (pandas and polars).

Each engine runs in its own process on the same two CSV files (the simulated register and the
system's csv export) with the same normalisation; the script checks that all three find the same
differences, then prints the median wall time, peak memory (max RSS) and the ratios.

    python benchmarks/bench_audit.py [--sizes 100000 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
BASE_DOSSIERS = 15_256 + 24  # system dossiers of the demo district at scale 1 (approximate)


def simulate(size: int) -> Path:
    out = DATA / f"n{size}"
    marker = out / ".done"
    if marker.exists():
        return out
    scale = size / BASE_DOSSIERS
    print(f"simulating ~{size:,} dossiers (scale {scale:.2f}) into {out}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "reconcile", "simulate", "--out", str(out), "--scale", f"{scale:.4f}",
                    "--register-format", "csv", "--system-format", "csv"], check=True)
    marker.write_text("ok")
    return out


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    peak = _peak_mb(err)
    return elapsed, peak, out


def _peak_mb(stderr: str) -> float:
    for line in stderr.splitlines()[::-1]:
        if line.startswith("PEAK_RSS_KB="):
            return int(line.split("=")[1]) / 1024
    return float("nan")


# The child wrapper reports its own peak RSS (ru_maxrss of itself and its children) on stderr.
WRAP = (
    "import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
    "try:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
    "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
    "r = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "print(f'PEAK_RSS_KB={r}', file=sys.stderr); sys.exit(code)\n"
)


def run_reconcile(data: Path, store: Path) -> tuple[float, float]:
    store.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", WRAP, "reconcile", "audit",
           "--register", str(data / "register" / "so-theo-doi-ho-so-2021.csv"),
           "--system", str(data / "system"), "--workflows", str(data / "workflows"),
           "--config", str(data / "reconcile.yaml"), "--store", str(store), "--format", "json"]
    elapsed, peak, _ = measure(cmd, {"NO_COLOR": "1"})
    return elapsed, peak


def run_datacompy(data: Path, backend: str) -> tuple[float, float, dict[str, list[str]]]:
    cmd = [sys.executable, "-c", WRAP, "benchmarks.datacompy_side", backend,
           str(data / "register" / "so-theo-doi-ho-so-2021.csv"), str(data / "system" / "dossiers.csv")]
    elapsed, peak, out = measure(cmd, {"PYTHONPATH": str(ROOT)})
    return elapsed, peak, json.loads(out)


def reconcile_sets(store: Path) -> dict[str, list[str]]:
    """The same difference sets, read from the audit's store."""
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    run = con.execute("SELECT max(id) FROM audit_run").fetchone()[0]

    def codes(sql: str) -> list[str]:
        return sorted(r[0] for r in con.execute(sql, [run]).fetchall())

    sets = {
        "only_register": codes("SELECT dossier_code FROM reconciliation WHERE run_id = ? AND class IN "
                               "('missing_in_system', 'paper_only_unit')"),
        "only_system": codes("SELECT dossier_code FROM reconciliation WHERE run_id = ? AND class IN "
                             "('missing_in_register', 'outside_period')"),
        "applicant": codes("SELECT dossier_code FROM finding WHERE run_id = ? AND kind = 'field_mismatch' "
                           "AND details LIKE '%\"field\":%\"applicant\"%'"),
    }
    for field in ("received_at", "due_at", "returned_at"):
        sets[field] = codes("SELECT DISTINCT dossier_code FROM finding WHERE run_id = ? AND kind = 'date_mismatch' "
                            f"AND json_extract_string(details, '$.field') = '{field}'")
    con.close()
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        data = simulate(size)
        store = DATA / f"n{size}.duckdb"
        results: dict[str, list[tuple[float, float]]] = {"reconcile": [], "datacompy-pandas": [],
                                                         "datacompy-polars": []}
        sets: dict[str, dict[str, list[str]]] = {}
        for i in range(args.runs):
            results["reconcile"].append(run_reconcile(data, store))
            for backend in ("pandas", "polars"):
                t, m, s = run_datacompy(data, backend)
                results[f"datacompy-{backend}"].append((t, m))
                sets[backend] = s
            print(f"  n={size:,} run {i + 1}/{args.runs}: " + ", ".join(
                f"{k} {v[-1][0]:.2f}s" for k, v in results.items()), file=sys.stderr)
        ours = reconcile_sets(store)
        for backend, theirs in sets.items():
            for key in ours:
                if ours[key] != theirs[key]:
                    only_ours = sorted(set(ours[key]) - set(theirs[key]))[:5]
                    only_theirs = sorted(set(theirs[key]) - set(ours[key]))[:5]
                    raise SystemExit(f"n={size}: {key} differs from datacompy-{backend}: "
                                     f"ours-only {only_ours}, theirs-only {only_theirs}")
        counts = {k: len(v) for k, v in ours.items()}
        med = {k: (statistics.median(t for t, _ in v), max(m for _, m in v)) for k, v in results.items()}
        rows.append((size, med, counts))
    print("\n| dossiers | engine | median s | peak MB | vs reconcile |")
    print("|---:|---|---:|---:|---:|")
    for size, med, counts in rows:
        base = med["reconcile"][0]
        for engine, (t, m) in med.items():
            print(f"| {size:,} | {engine} | {t:.2f} | {m:,.0f} | {t / base:.2f}x |")
    if len(rows) >= 2:
        (s1, m1, _), (s2, m2, _) = rows[0], rows[-1]
        print(f"\nreconcile scaling {s1:,} -> {s2:,}: {m2['reconcile'][0] / m1['reconcile'][0]:.1f}x the time "
              f"for {s2 / s1:.0f}x the dossiers")
    for size, _, counts in rows:
        print(f"differences agreed at n={size:,}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
