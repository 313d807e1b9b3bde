"""Check: the stream's incremental FIGO state equals the batch analysis of the same history, per minute.

The batch reference is :func:`detectors.labour.follow_labour` over the whole recording without a break
(every minute measured in turn, the state in memory). The incremental run is what a worker does across
restarts and rebalances: every ``--restart-every`` minutes its state is written as the stored JSON
records (stream/state/labour_figo.py), dropped, and read back into a fresh state that measures on.
Per minute both give the class, its reasons and the whole-labour durations; every difference is counted.

Run: python bench/labour_equivalence.py [--ctu DIR] [--records 50]   (writes its docs/EVALUATION.md section)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.labour import LabourFigo, MinuteRecord, follow_labour, measure_through, minute_ends  # noqa: E402
from stream.evaluation.reporting import source_commit, write_section  # noqa: E402
from stream.sources.ctg_simulator import Scenario, scale_scenario, simulate_ctg, standard_scenarios  # noqa: E402

FS = 4.0


def reading(state: LabourFigo) -> tuple:
    """What the stream shows of one minute: class, reasons and the durations the class is decided from."""
    a = state.analysis()
    assert a is not None
    f = a.features
    durations = () if f is None else (f.variability.reduced_s, f.variability.increased_s, f.sinusoidal_s,
                                      f.bradycardia_s, f.tachycardia_s, round(f.repetitive_late_s, 3),
                                      f.longest_prolonged_s, f.reduced_in_decelerations_s)
    return a.classification, tuple(a.reasons), durations


def compare(fhr: np.ndarray, uc: np.ndarray | None, mhr: np.ndarray | None, restart_every: int) -> tuple[int, int, list]:
    """Minutes compared, minutes that differ, and the first few differences."""
    batch = {end: reading(state) for end, state in follow_labour(fhr, uc, FS, mhr)}
    state = LabourFigo()
    compared = differ = 0
    examples: list = []
    for i, end in enumerate(minute_ends(0.0, fhr.size / FS, 600.0)):
        if i and i % restart_every == 0:  # a restart: only the stored records survive
            stored = [json.dumps(r.to_dict()) for r in state.minutes]
            state = LabourFigo()
            state.restore([MinuteRecord.from_dict(json.loads(s)) for s in stored])
        measure_through(state, fhr, uc, FS, mhr, 0.0, end)
        got = reading(state)
        compared += 1
        if got != batch[end]:
            differ += 1
            if len(examples) < 3:
                examples.append((end / 60, batch[end][:2], got[:2]))
    return compared, differ, examples


def simulated() -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    for seed in (50, 51):
        for scenario in standard_scenarios():
            sim = simulate_ctg(scenario, seed=seed)
            yield f"sim {scenario.name} seed {seed}", sim.fhr, sim.uc, sim.mhr
    # past the 4-h cap: the durations must be capped the same way in both
    long = scale_scenario(Scenario("long", duration_s=3600.0, reduced_variability=(600.0, 3600.0)), 5 * 3600.0)
    sim = simulate_ctg(long, seed=52)
    yield "sim 5-h reduced variability", sim.fhr, sim.uc, sim.mhr


def ctu(directory: Path, records: int) -> Iterator[tuple[str, np.ndarray, np.ndarray, None]]:
    from stream.sources.recordings import list_records, read_recording

    for name in list_records(directory)[:records]:
        rec = read_recording(name, directory)
        yield f"CTU-UHB {rec.record_id}", rec.fhr, rec.uc, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctu", type=Path, default=ROOT.parent / "shared" / "data" / "ctu-uhb")
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--restart-every", type=int, default=7, help="minutes between two restarts")
    args = parser.parse_args()
    rows = []
    sources: list[tuple[str, Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]]] = [
        ("simulator", simulated())]
    if args.ctu.is_dir():
        sources.append((f"CTU-UHB, first {args.records} records", ctu(args.ctu, args.records)))
    for label, traces in sources:
        total = differ = records = 0
        examples: list = []
        for name, fhr, uc, mhr in traces:
            n, d, ex = compare(fhr, uc, mhr, args.restart_every)
            total, differ, records = total + n, differ + d, records + 1
            examples += [(name, *e) for e in ex]
        rows.append((label, records, total, differ, examples[:3]))
    commit = source_commit()
    lines = [
        f"Command: `python bench/labour_equivalence.py` at {commit}, {time.strftime('%Y-%m-%d')}. Per minute from "
        "minute 10, the class, its reasons and the whole-labour durations (reduced / increased variability, "
        "sinusoidal, bradycardia, tachycardia, repetitive late decelerations, longest recent prolonged "
        "deceleration, reduced variability within decelerations) of the batch reference (every minute measured "
        "in turn, one state in memory) against the stream's incremental state, restarted every "
        f"{args.restart_every} minutes from its stored JSON records. Tolerance: none (equal or counted).",
        "",
        "| traces | records | minutes compared | minutes that differ |",
        "|---|---|---|---|",
    ] + [f"| {label} | {n} | {total} | {differ} |" for label, n, total, differ, _ in rows]
    for label, *_, examples in rows:
        for ex in examples:
            lines.append(f"\nFirst differences ({label}): {ex}")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(ROOT / "docs" / "EVALUATION.md", "FIGO over the whole labour: incremental against batch", text,
                  "ctgwatch evaluation")


if __name__ == "__main__":
    main()
