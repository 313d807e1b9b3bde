"""Benchmark: what the stream pays per patient per second, incremental vs recomputing.

The worker runs the fast rules on every 1-s packet (incremental counters,
detectors/fast.py) and the full FIGO analysis of the last 30 min every 15 s
of recording. The naive alternative re-analyses the 30-min window on every
packet. Both are timed on the same simulated trace.

Run: python bench/detectors_incremental.py   (writes a docs/BENCHMARKS.md section)
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402
from detectors.ctg import analyse_ctg  # noqa: E402
from detectors.fast import FastRuleState  # noqa: E402
from stream.sources.ctg_simulator import Scenario, simulate_ctg  # noqa: E402

FS = 4


def main() -> None:
    sim = simulate_ctg(Scenario("bench", duration_s=3600, decel_kind="variable", decel_span=(0, 3600)), seed=0)
    # fast rules: one update per 1-s packet over the last 30 min
    state = FastRuleState()
    start = 1800 * FS
    per_packet = []
    for i in range(start, sim.fhr.size, FS):
        t0 = time.perf_counter()
        state.update(sim.fhr[i : i + FS], i / FS, 140.0)
        per_packet.append(time.perf_counter() - t0)
    fast_ms = statistics.median(per_packet) * 1e3
    window = slice(sim.fhr.size - 1800 * FS, sim.fhr.size)
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        analyse_ctg(sim.fhr[window], sim.uc[window], mhr=sim.mhr[window])
        times.append(time.perf_counter() - t0)
    full_ms = statistics.median(times) * 1e3
    stream_ms_per_s = fast_ms + full_ms / 15.0
    naive_ms_per_s = full_ms
    body = "\n".join([
        f"Command: `python bench/detectors_incremental.py`. Machine: {platform.machine()}, {os.cpu_count()} cores. "
        "One patient, 4 Hz, 1-s packets, variable decelerations; medians.",
        "",
        "| work | cost |",
        "|---|---|",
        f"| fast rules, one packet (incremental: signal loss, prolonged deceleration, bradycardia) | {fast_ms * 1e3:.0f} µs |",
        f"| full FIGO analysis of the last 30 min | {full_ms:.2f} ms |",
        f"| the stream's schedule: fast rules every packet + analysis every 15 s | {stream_ms_per_s:.3f} ms per patient-second |",
        f"| naive: re-analyse 30 min on every packet | {naive_ms_per_s:.2f} ms per patient-second |",
        f"| patients one core carries (CPU of detectors only) | {1000 / stream_ms_per_s:.0f} vs {1000 / naive_ms_per_s:.0f} |",
    ])
    print(body)
    write_section("Detectors in the stream: incremental vs recomputing", body)


if __name__ == "__main__":
    main()
