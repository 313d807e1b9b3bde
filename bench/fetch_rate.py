"""Summarise what bench/fetch_probe logged of a worker: fetches a second and the broker's answer time, and, over
the bench's measured span, the garbage collector's pauses and the event loop's lag.

Fetches: only 10-s bins in which at least 90% of the fetches brought records count (the streaming span; before
it the consumer waits on an empty log, and each fetch then lasts the fetch wait). Collections and lag: the
125 s before the worker's last lag line, less the last 5 s (:func:`pauses`; bench/capacity.py measures the
last 120 s of its 150 s in real time and then stops the worker).

Run: python bench/fetch_rate.py DIR [DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def fetch_rate(log: Path, bin_s: float = 10.0) -> tuple[float, float, int]:
    """(fetches a second, median answer time in ms, bins counted) over the streaming span of one worker's log."""
    rows = np.loadtxt(log, ndmin=2)
    starts, took, has_records = rows[:, 0], rows[:, 1], rows[:, 2]
    bins = ((starts - starts[0]) // bin_s).astype(int)
    rates, answer = [], []
    for b in np.unique(bins):
        inside = bins == b
        if inside.sum() > 3 and has_records[inside].mean() >= 0.9:
            rates.append(inside.sum() / bin_s)
            answer.append(float(np.median(took[inside])))
    if not rates:
        return float("nan"), float("nan"), 0
    return float(np.mean(rates)), 1000 * float(np.median(answer)), len(rates)


def pauses(directory: Path, pid: str, span_s: float = 125.0) -> dict[str, float] | None:
    """Over the measured span: the collector's CPU as a share of a core, its longest pause (s), how many times
    the oldest generation was collected, and the event loop's lag p99 and maximum (ms). None without logs."""
    lag_log, gc_log = directory / f"lag-{pid}.log", directory / f"gc-{pid}.log"
    if not (lag_log.exists() and gc_log.exists()):
        return None
    lag, collections = np.loadtxt(lag_log, ndmin=2), np.loadtxt(gc_log, ndmin=2)
    end = float(lag[-1, 0])
    lo, hi = end - span_s, end - 5.0
    waits = lag[(lag[:, 0] > lo) & (lag[:, 0] < hi), 1]
    inside = collections[(collections[:, 0] > lo) & (collections[:, 0] < hi)]
    return {"gc_share": float(inside[:, 3].sum()) / (hi - lo),
            "gc_longest_s": float(inside[:, 2].max()) if len(inside) else 0.0,
            "oldest_collections": int((inside[:, 1] == 2).sum()),
            "lag_p99_ms": 1000 * float(np.percentile(waits, 99)), "lag_max_ms": 1000 * float(waits.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    for directory in parser.parse_args().dirs:
        for log in sorted(p for p in directory.glob("*.log") if p.stem.isdigit()):
            rate, answer_ms, bins = fetch_rate(log)
            print(f"{log}: {rate:.1f} fetches a second, the broker answering in {answer_ms:.0f} ms (median; {bins} bins)")
            held = pauses(directory, log.stem)
            if held is not None:
                print(f"  garbage collector {held['gc_share']:.4f} of a core, longest pause {held['gc_longest_s']:.3f} s, "
                      f"oldest generation collected {held['oldest_collections']} times; event-loop lag p99 "
                      f"{held['lag_p99_ms']:.0f} ms, longest {held['lag_max_ms']:.0f} ms")


if __name__ == "__main__":
    main()
