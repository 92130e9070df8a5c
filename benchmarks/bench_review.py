"""Benchmark: `reconcile review` on a large plan (issue 18: 60 MB, 100k actions must stay usable).

The small simulated district is audited and planned without migration rules (guesses and backfills to
review); its actions are then repeated under new dossier codes up to --actions, in the layout `reconcile
plan` writes, so the plan file has the size and shape of a 1M-dossier district's (the store has register
rows for the original codes only). Measured: the server's start (the plan checked as apply checks it, the
store read), a page, a decision (one, and 50 ticked rows), and a page after another reviewer's change.
No target: the figures go to the README (wall and CPU; CPU is steadier on a shared machine).

    python benchmarks/bench_review.py [--actions 100000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconcile.audit.commands import audit  # noqa: E402
from reconcile.audit.inputs import AuditInputs  # noqa: E402
from reconcile.fix import planfile  # noqa: E402
from reconcile.fix.commands import plan, write_plan  # noqa: E402
from reconcile.review import worklist as wl  # noqa: E402
from reconcile.review.decisions import Decision  # noqa: E402
from reconcile.review.server import Review  # noqa: E402
from reconcile.demo.simulate import simulate  # noqa: E402


def measure(label: str, f: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = f()
    print(f"{label:<44} {time.perf_counter() - wall:7.2f} s wall {time.process_time() - cpu:7.2f} s CPU")
    return result


def large_plan(folder: Path, actions: int) -> Path:
    d = folder / "d"
    simulate(d, scale=0.15)
    store = str(folder / "store.duckdb")
    audit(AuditInputs(register=tuple(str(p) for p in (d / "register").iterdir()),
                      system=f"sqlite:///{d / 'system' / 'binh-son-igate.sqlite'}", workflows=str(d / "workflows"),
                      as_of=date(2021, 6, 30), mapping=str(d / "system" / "mapping.yaml")), store)
    (folder / "no-rules").mkdir()
    small = folder / "small.yaml"
    write_plan(plan(store, None, str(folder / "no-rules")), str(small), store)
    data = planfile.load(small.read_text(encoding="utf-8"))[0]  # type: ignore[index]
    out = []
    while len(out) < actions:
        for a in data["actions"]:
            code = f"{a['dossier_code']}-{len(out):07d}"
            out.append(a | {"dossier_code": code} | ({"set": a["set"] | {"dossier_code": code}}
                                                      if a["action"] == "backfill" else {}))
    data["actions"] = out[:actions]
    big = folder / "plan.yaml"
    big.write_text(planfile.dump(data), encoding="utf-8")
    return big


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = large_plan(Path(tmp), args.actions)
        print(f"plan: {args.actions:,} actions, {path.stat().st_size / 2**20:.0f} MB")
        work = measure("start (plan checked, store read)", lambda: wl.load(path))
        review = Review(work, "vi", None, {"127.0.0.1"})
        print(f"actions to review: {len(work.rows):,}")
        measure("page 1 (pending)", lambda: review.render(wl.Filter(), {}))
        measure("page 500 (every state)", lambda: review.render(wl.Filter(state="", page=500), {}))
        codes = [r.dossier_code for r in work.rows[100:151]]
        measure("one decision", lambda: review.decide([Decision(codes[0], "reject", work.states[codes[0]].state)],
                                                       "bench"))
        measure("50 ticked rows confirmed", lambda: review.decide(
            [Decision(c, "confirm", work.states[c].state) for c in codes[1:]], "bench"))
        measure("page after its own decisions", lambda: review.render(wl.Filter(), {}))
        path.touch()  # as if another reviewer had written it
        measure("page after another reviewer's change", lambda: review.render(wl.Filter(), {}))
        print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MB")


if __name__ == "__main__":
    main()
