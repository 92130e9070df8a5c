"""Benchmark: `reconcile audit` at 100k and 1M dossiers against datacompy (pandas and polars).

Each engine runs in its own process on the same two CSV files (the simulated register and the
system's csv export) with the same normalisation; the script checks that all three find the same
differences, then prints the median wall and CPU time, peak memory (max RSS) and the ratios each is
held to: the audit's CPU time at most 3.5x datacompy/polars's on the same files in the same run.

With --ten-million (or BENCH_10M=1) it also audits 10M dossiers once (datacompy needs about 9 GB
there and is left out), held to 11x the 1M audit's time and 2 GB peak. Each size's data is
simulated once into bench-data/ (10M: about 5 minutes on a quiet host and 5 GB of CSV).

    python benchmarks/bench_audit.py [--sizes 100000 1000000] [--runs 3] [--ten-million]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    cpu: float  # user + system seconds of the process
    peak: float  # MB, max RSS


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Sample, str]:
    """Wall and CPU seconds, peak RSS and stdout of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return Sample(elapsed, _reported(err, "CPU_S"), _reported(err, "PEAK_RSS_KB") / 1024), out


def _reported(stderr: str, key: str) -> float:
    for line in stderr.splitlines()[::-1]:
        if line.startswith(f"{key}="):
            return float(line.split("=")[1])
    return float("nan")


# The child wrapper reports its own peak RSS (ru_maxrss of itself and its children) and CPU time on stderr.
WRAP = (
    "import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
    "try:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
    "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
    "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(f'PEAK_RSS_KB={max(me.ru_maxrss, kids.ru_maxrss)}', file=sys.stderr)\n"
    "print(f'CPU_S={me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime:.2f}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_reconcile(data: Path, store: Path) -> Sample:
    store.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", WRAP, "reconcile", "audit",
           "--register", str(data / "register" / "so-theo-doi-ho-so-2021.csv"),
           "--system", str(data / "system"), "--workflows", str(data / "workflows"),
           "--config", str(data / "reconcile.yaml"), "--store", str(store), "--format", "json"]
    sample, _ = measure(cmd, {"NO_COLOR": "1"})
    return sample


def run_datacompy(data: Path, backend: str) -> tuple[Sample, dict[str, list[str]]]:
    cmd = [sys.executable, "-c", WRAP, "benchmarks.datacompy_side", backend,
           str(data / "register" / "so-theo-doi-ho-so-2021.csv"), str(data / "system" / "dossiers.csv")]
    sample, out = measure(cmd, {"PYTHONPATH": str(ROOT)})
    return sample, json.loads(out)


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


TEN_MILLION = 10_000_000
CPU_RATIO = 3.5  # the CSV-profile audit's CPU time against datacompy/polars's, same files, same run
SCALING = 11.0  # the 10M audit's time against the 1M audit's
PEAK_10M_MB = 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ten-million", action="store_true", default=bool(os.environ.get("BENCH_10M")),
                        help="also audit 10M dossiers, once, without datacompy (BENCH_10M=1 does the same)")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        data = simulate(size)
        store = DATA / f"n{size}.duckdb"
        results: dict[str, list[Sample]] = {"reconcile": [], "datacompy-pandas": [], "datacompy-polars": []}
        sets: dict[str, dict[str, list[str]]] = {}
        for i in range(args.runs):
            results["reconcile"].append(run_reconcile(data, store))
            for backend in ("pandas", "polars"):
                sample, found = run_datacompy(data, backend)
                results[f"datacompy-{backend}"].append(sample)
                sets[backend] = found
            print(f"  n={size:,} run {i + 1}/{args.runs}: " + ", ".join(
                f"{k} {v[-1].wall:.2f}s" for k, v in results.items()), file=sys.stderr)
        ours = reconcile_sets(store)
        for backend, theirs in sets.items():
            for key in ours:
                if ours[key] != theirs[key]:
                    only_ours = sorted(set(ours[key]) - set(theirs[key]))[:5]
                    only_theirs = sorted(set(theirs[key]) - set(ours[key]))[:5]
                    raise SystemExit(f"n={size}: {key} differs from datacompy-{backend}: "
                                     f"ours-only {only_ours}, theirs-only {only_theirs}")
        counts = {k: len(v) for k, v in ours.items()}
        rows.append((size, {k: _median(v) for k, v in results.items()}, counts))
    if args.ten_million:
        data = simulate(TEN_MILLION)
        sample = run_reconcile(data, DATA / f"n{TEN_MILLION}.duckdb")
        print(f"  n={TEN_MILLION:,}: reconcile {sample.wall:.1f}s", file=sys.stderr)
        rows.append((TEN_MILLION, {"reconcile": sample}, {}))
    print("\n| dossiers | engine | median s | CPU s | peak MB | vs reconcile |")
    print("|---:|---|---:|---:|---:|---:|")
    for size, med, counts in rows:
        base = med["reconcile"].wall
        for engine, m in med.items():
            print(f"| {size:,} | {engine} | {m.wall:.2f} | {m.cpu:.1f} | {m.peak:,.0f} | {m.wall / base:.2f}x |")
    print()
    by_size = {size: med for size, med, _ in rows}
    for size, med, _ in rows:
        if "datacompy-polars" in med:
            ratio = med["reconcile"].cpu / med["datacompy-polars"].cpu
            print(f"n={size:,}: audit CPU {ratio:.1f}x datacompy/polars's (held to <= {CPU_RATIO}x): "
                  + ("ok" if ratio <= CPU_RATIO else "OVER"))
    if len(rows) >= 2 and TEN_MILLION not in by_size:
        (s1, m1, _), (s2, m2, _) = rows[0], rows[-1]
        print(f"reconcile scaling {s1:,} -> {s2:,}: {m2['reconcile'].wall / m1['reconcile'].wall:.1f}x the time "
              f"for {s2 / s1:.0f}x the dossiers")
    if TEN_MILLION in by_size and 1_000_000 in by_size:
        big, one = by_size[TEN_MILLION]["reconcile"], by_size[1_000_000]["reconcile"]
        # Both ratios must hold: on a busy host the wall-time ratio alone flatters the longer run.
        ratio = max(big.wall / one.wall, big.cpu / one.cpu)
        ok = ratio <= SCALING and big.peak <= PEAK_10M_MB
        print(f"10M audit: {big.wall / one.wall:.1f}x the 1M time, {big.cpu / one.cpu:.1f}x its CPU, peak "
              f"{big.peak / 1024:.2f} GB (held to <= {SCALING:.0f}x and <= {PEAK_10M_MB / 1024:.0f} GB): "
              + ("ok" if ok else "OVER"))
    for size, _, counts in rows:
        if counts:
            print(f"differences agreed at n={size:,}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def _median(samples: list[Sample]) -> Sample:
    return Sample(statistics.median(s.wall for s in samples), statistics.median(s.cpu for s in samples),
                  max(s.peak for s in samples))


if __name__ == "__main__":
    main()
