"""Benchmark: one patient's 10-min CTG window through the whole detector
chain (quality, baseline, variability, events, contractions, classification).

Run: python bench/detectors_window.py   (writes docs/BENCHMARKS.md section)
Target: < 5 ms median on the project's 2-core machine.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402
from detectors.ctg import analyse_ctg  # noqa: E402
from stream.sources.ctg_simulator import Scenario, simulate_ctg  # noqa: E402


def bench(window_min: float, repeats: int = 300) -> tuple[float, float]:
    sim = simulate_ctg(Scenario("bench", duration_s=window_min * 60, decel_kind="variable",
                                decel_span=(0, window_min * 60)), seed=0)
    for _ in range(10):
        analyse_ctg(sim.fhr, sim.uc, mhr=sim.mhr)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        analyse_ctg(sim.fhr, sim.uc, mhr=sim.mhr)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[int(0.99 * len(times)) - 1]


def main() -> None:
    rows = [(m, *bench(m)) for m in (10, 30, 60)]
    lines = [
        f"Command: `python bench/detectors_window.py`. Machine: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}; 300 runs after 10 warm-up runs, "
        "FHR + UC + maternal HR at 4 Hz with variable decelerations.",
        "",
        "| window | median (ms) | p99 (ms) |",
        "|---|---|---|",
    ] + [f"| {m:.0f} min | {med:.2f} | {p99:.2f} |" for m, med, p99 in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    write_section("Detector chain, one patient window (CPU)", text)


if __name__ == "__main__":
    main()
