"""Benchmark: the FIGO analysis CPU one bed costs per minute of recording, before and after the
whole-labour state (detectors/labour.py), in steady state.

Before (main up to 900f085): the last 30 min analysed every 15 s, four analyses a minute.
Now: one minute measured once (the 30-min window ending at it), and the class refreshed every 15 s
from the carried state (four refreshes a minute), with 4 h of minute records already carried.

Run: python bench/figo_cost.py [--base /tmp/base]   (writes its docs/BENCHMARKS.md section)
Every row runs in its own process on the same trace, the rows in turn for a few rounds, so they compare
on any machine; the absolute figures move with the machine (and a process's speed by 10-30% from one
process to the next, hence the rounds and medians).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.ctg import analyse_ctg  # noqa: E402
from stream.evaluation.reporting import source_commit  # noqa: E402
from stream.sources.ctg_simulator import Scenario, simulate_ctg  # noqa: E402

FS = 4.0
HISTORY_MIN = 4 * 60 + 10  # the state carries 4 h before the measured minutes
MEASURED_MIN = 60


def trace() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A busy labour: late decelerations after every contraction for the whole record."""
    total = (HISTORY_MIN + MEASURED_MIN) * 60.0
    sim = simulate_ctg(Scenario("bench", duration_s=total, decel_kind="late", decel_span=(0, total)), seed=0)
    return sim.fhr, sim.uc, sim.mhr


def per_minute_before(fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray) -> list[float]:
    """Seconds of CPU per recording minute: four 30-min analyses (every 15 s), as main did."""
    out = []
    k = int(30 * 60 * FS)
    for minute in range(HISTORY_MIN, HISTORY_MIN + MEASURED_MIN):
        started = time.process_time()
        for quarter in range(1, 5):
            end = int((minute * 60 + 15 * quarter) * FS)
            analyse_ctg(fhr[end - k:end], uc[end - k:end], mhr=mhr[end - k:end], t0=(end - k) / FS)
        out.append(time.process_time() - started)
    return out


def per_minute_now(fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray) -> tuple[list[float], list[float]]:
    """Seconds of CPU per recording minute now (one measurement and four refreshes), and the refreshes alone."""
    from detectors.labour import LabourFigo, measure_through

    state = LabourFigo()
    measure_through(state, fhr, uc, FS, mhr, 0.0, HISTORY_MIN * 60.0)  # history first: 4 h of records
    out, refreshes = [], []
    for minute in range(HISTORY_MIN, HISTORY_MIN + MEASURED_MIN):
        started = time.process_time()
        measure_through(state, fhr, uc, FS, mhr, 0.0, (minute + 1) * 60.0)
        refresh_started = time.process_time()
        for _ in range(4):
            state.analysis()
        done = time.process_time()
        out.append(done - started)
        refreshes.append((done - refresh_started) / 4)
    assert len(state.minutes) == 240  # the 4-h cap holds
    return out, refreshes


CHILD = """
import json, statistics, sys
import numpy as np
tree, mode, trace_file = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, tree)
import detectors.ctg
assert detectors.ctg.__file__.startswith(tree), detectors.ctg.__file__  # the tree's own detectors, not ours
sys.path.insert(1, {bench!r})
import figo_cost as b
z = np.load(trace_file)
f = (z["fhr"], z["uc"], z["mhr"])
if mode == "before":
    b.per_minute_before(*f)  # warm-up
    print(json.dumps({{"minute": statistics.mean(b.per_minute_before(*f))}}))
else:
    now, refreshes = b.per_minute_now(*f)
    print(json.dumps({{"minute": statistics.mean(now), "refresh": statistics.mean(refreshes)}}))
"""


def measure_in(tree: Path, mode: str, trace_file: Path) -> dict[str, float]:
    """One row measured in a child process with ``tree``'s detectors first on the path (``mode`` "before":
    the 30-min window every 15 s; "now": the whole-labour state); ms per recording minute (and per refresh).

    Each row runs in its own process, the same way, so no row has a warmer process than another; the
    child checks that it imported the tree's detectors (figo_cost's own path would put ours first)."""
    code = CHILD.format(bench=str(ROOT / "bench"))
    out = subprocess.run([sys.executable, "-c", code, str(tree), mode, str(trace_file)],
                         capture_output=True, text=True, check=True, cwd=tree)
    return {k: v * 1e3 for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=None,
                        help="a checkout of the code before (git worktree add /tmp/base 900f085) for its own row")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the rows in turn; the medians are reported (a process's speed varies)")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"base": [], "before": [], "now": []}
    with tempfile.TemporaryDirectory() as tmp:
        trace_file = Path(tmp) / "trace.npz"
        fhr, uc, mhr = trace()
        np.savez(trace_file, fhr=fhr, uc=uc, mhr=mhr)
        for _ in range(args.rounds):
            if args.base:
                rows["base"].append(measure_in(args.base.resolve(), "before", trace_file))
            rows["before"].append(measure_in(ROOT, "before", trace_file))
            rows["now"].append(measure_in(ROOT, "now", trace_file))

    def median(name: str, key: str = "minute") -> float:
        return statistics.median(r[key] for r in rows[name])

    def spread(name: str) -> str:
        values = [r["minute"] for r in rows[name]]
        return f"{min(values):.2f}-{max(values):.2f}"

    b, n = median("before"), median("now")
    base = median("base") if args.base else None
    reference = rows["base"] if args.base else rows["before"]  # what "now" is compared with, round by round
    ratios = [r["minute"] / now["minute"] for r, now in zip(reference, rows["now"])]
    commit = source_commit()
    lines = [
        f"Command: `python bench/figo_cost.py{' --base ' + str(args.base) if args.base else ''}` at {commit}, "
        f"{time.strftime('%Y-%m-%d')}. Machine: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}. One bed's FIGO CPU (process time) per minute of recording, over "
        f"{MEASURED_MIN} minutes of a labour with a late deceleration after every contraction, after "
        f"{HISTORY_MIN} min of history (the state carries its 4-h cap). Each row in its own process on the same "
        f"trace, the rows in turn for {args.rounds} rounds: the median, and the range over the rounds.",
        "",
        "| FIGO analysis | per recording minute (ms CPU), median (range) | per 15-s refresh of the class (ms) |",
        "|---|---|---|",
    ]
    if base is not None:
        lines.append(f"| before, main at 900f085 (`--base`): the last 30 min analysed every 15 s | {base:.2f} "
                     f"({spread('base')}) | {base / 4:.2f} |")
    lines += [
        f"| the same cadence with this commit's window analysis | {b:.2f} ({spread('before')}) | {b / 4:.2f} |",
        f"| now: each minute measured once (30-min window), class refreshed every 15 s from the state | {n:.2f} "
        f"({spread('now')}) | {median('now', 'refresh'):.2f} (refresh alone) |",
        "",
        f"**{(base or b) / n:.1f}x less FIGO CPU per bed** than {'900f085' if base else 'the 15-s cadence'} "
        f"(per round {min(ratios):.1f}-{max(ratios):.1f}x). "
        f"At 1,500 beds: {1500 * n / 60 / 1e3:.2f} of a core against {1500 * (base or b) / 60 / 1e3:.2f}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    from bench._report import write_section

    write_section("FIGO analysis per bed: whole-labour state against the 30-min window (CPU)", text)


if __name__ == "__main__":
    main()
