"""Training and evaluation data: CTU-UHB records split by record, or simulator traces.

"Normal outcome" and acidaemia are defined with the recordings
(:mod:`stream.sources.recordings`). Splits are by record, never by window, so
no recording contributes to both training and evaluation. Recordings come in
only through :mod:`stream.sources.recordings` and the simulator, never through
Kafka code (the import contract in pyproject.toml checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stream.sources.ctg_simulator import Scenario, scale_scenario, simulate_ctg, standard_scenarios
from stream.sources.recordings import ACIDAEMIA_PH, NORMAL_APGAR5, NORMAL_PH, list_records, read_recording

#: Simulator events that make a window abnormal (clinically meaningful patterns);
#: artefact episodes are left out of both classes.
ABNORMAL_EVENTS = {
    "early_deceleration", "late_deceleration", "variable_deceleration", "prolonged_deceleration",
    "bradycardia", "tachycardia", "sinusoidal", "reduced_variability",
}
ARTEFACT_EVENTS = {"signal_loss", "maternal_hr_capture", "halving_doubling"}


@dataclass
class Recording:
    record_id: str
    fs: float
    fhr: np.ndarray
    uc: np.ndarray
    mhr: np.ndarray | None = None
    ph: float | None = None
    apgar5: float | None = None
    events: list[tuple[str, float, float]] = field(default_factory=list)  # simulator ground truth

    @property
    def normal_outcome(self) -> bool:
        return self.ph is not None and self.ph >= NORMAL_PH and (self.apgar5 or 0) >= NORMAL_APGAR5

    @property
    def acidaemic(self) -> bool:
        return self.ph is not None and self.ph < ACIDAEMIA_PH


def load_ctu_uhb(directory: Path, limit: int | None = None) -> list[Recording]:
    out = []
    for name in list_records(directory)[:limit]:
        r = read_recording(name, directory)
        apgar = r.outcome.get("Apgar5")
        out.append(Recording(r.record_id, r.fs, r.fhr, r.uc, None, r.ph,
                             float(apgar) if isinstance(apgar, float) else None))
    return out


def simulated(seeds: list[int], scenarios: list[Scenario] | None = None, duration_s: float | None = None) -> list[Recording]:
    """One recording per (scenario, seed); 'normal' scenarios carry no abnormal events."""
    out = []
    for scenario in scenarios or standard_scenarios():
        if duration_s is not None:
            scenario = scale_scenario(scenario, duration_s)
        for seed in seeds:
            sim = simulate_ctg(scenario, seed=seed)
            out.append(Recording(f"{scenario.name}-{seed}", sim.fs, sim.fhr, sim.uc, sim.mhr,
                                 events=[(e.kind, e.start_s, e.end_s) for e in sim.events]))
    return out


def normal_simulated(seeds: list[int], duration_s: float = 3600.0) -> list[Recording]:
    return simulated(seeds, [Scenario("normal", duration_s=duration_s)])


def split_by_record(records: list[Recording], seed: int, fractions: tuple[float, float, float]) -> tuple[list, list, list]:
    """Deterministic train / calibration / test split of whole records."""
    order = np.random.default_rng(seed).permutation(len(records))
    n_train = int(round(fractions[0] * len(records)))
    n_cal = int(round(fractions[1] * len(records)))
    pick = lambda idx: [records[i] for i in sorted(idx)]  # noqa: E731
    return pick(order[:n_train]), pick(order[n_train:n_train + n_cal]), pick(order[n_train + n_cal:])


def overlapping_kinds(events: list[tuple[str, float, float]], start_s: float, end_s: float) -> set[str]:
    """The kinds of the simulator events that overlap ``[start_s, end_s)``."""
    return {kind for kind, a, b in events if a < end_s and b > start_s}


def window_label(overlapping: set[str]) -> int | None:
    """A window by the kinds of event it overlaps (:func:`overlapping_kinds`): 1 abnormal, 0 normal,
    None when an artefact makes it ambiguous."""
    if overlapping & ARTEFACT_EVENTS:
        return None
    return int(bool(overlapping & ABNORMAL_EVENTS))
