"""Summarise the worker's fetches logged by bench/fetch_probe: fetches a second and the broker's answer time.

Only 10-s bins in which at least 90% of the fetches brought records count (the streaming span; before it the
consumer waits on an empty log, and each fetch then lasts the fetch wait).

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    for directory in parser.parse_args().dirs:
        for log in sorted(directory.glob("*.log")):
            rate, answer_ms, bins = fetch_rate(log)
            print(f"{log}: {rate:.1f} fetches a second, the broker answering in {answer_ms:.0f} ms (median; {bins} bins)")


if __name__ == "__main__":
    main()
