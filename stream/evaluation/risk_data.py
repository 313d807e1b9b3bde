"""What the compromise risk is fitted and judged on: each CTU-UHB labour replayed minute by minute.

Per record, one replay as the stream sees it (:func:`stream.evaluation.streaming.stream_observations`,
FIGO refreshed every minute as in every burden figure) gives, at each minute from minute 10:

- the stacker's FIGO and quality inputs (:func:`models.serving.compromise.risk_inputs` on the analysis the
  station shows at that minute);
- the LSTM's input for the hour ending there, as per-minute summaries (what the LSTM reads first);
- the autoencoder's input, the 10 min ending there;

and, for the models refitted inside each fold, the LSTM's training windows (the last hour, as
``models.training.acidaemia`` takes them) and the autoencoder's (the record's windows the rules call
normal, as ``models.training.versions.normal_ctg_windows``). The same replay runs today's alarm policy, so
the risk alarm can be weighed with and without the rules' alarms on the same observations.

Also the header fields the subgroup table reads (parity, gestation, induction, delivery, age, signal).
Building all 415 records takes about 10 min on two cores, so the result is cached (pickle) by path, with the
digests of the code that built it (:mod:`stream.evaluation.cache`).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.serving.compromise import risk_inputs
from models.serving.features import Normalisation, window_tensor, windows_ending
from models.training.acidaemia import AcidaemiaConfig
from stream.alarms.policy import AlarmPolicy
from stream.evaluation.burden import EPISODE_GAP_S
from stream.evaluation.streaming import AlarmLog, stream_observations

#: Header fields kept for the subgroup table (CTU-UHB ``.hea`` comments).
HEADER_FIELDS = ("Parity", "Gest. weeks", "Induced", "Deliv. type", "Age", "Rec. type", "Apgar5")


@dataclass
class RecordSeries:
    """One labour, minute by minute, and what the policy in force alarmed on it."""

    record_id: str
    ph: float
    normal_outcome: bool
    header: dict[str, Any]
    end_s: float
    times: np.ndarray  # minute ends (s) with an analysis
    figo: np.ndarray  # [minutes, len(INPUT_NAMES)]: risk_inputs without the models (NaN there)
    lstm_summaries: np.ndarray  # [minutes, 60, 8] float32: the hour ending at each minute
    ae_windows: np.ndarray  # [minutes, 600, 4] float32: the 10 min ending at each minute
    lstm_train: np.ndarray  # [shifts, 60, 8]: the LSTM's training windows (the last hour and shifted)
    ae_train: np.ndarray  # [n, 600, 4]: this record's normal windows (normal-outcome records only)
    policy_alarms: list[tuple[str, float, int]] = field(default_factory=list)  # problem, start, worst priority

    @property
    def hours(self) -> float:
        return self.end_s / 3600.0


def _summaries(windows: list[np.ndarray]) -> np.ndarray:
    import torch

    from models.training.nets import minute_summary

    if not windows:
        return np.zeros((0, 60, 8), np.float32)
    with torch.no_grad():
        return minute_summary(torch.from_numpy(np.stack(windows))).numpy().astype(np.float32)


def record_series(directory: Path, name: str, policy: AlarmPolicy | None = None) -> RecordSeries | None:
    """One record replayed (None without a pH)."""
    from models.training.versions import normal_ctg_windows
    from stream.sources.recordings import NORMAL_APGAR5, NORMAL_PH, read_recording

    rec = read_recording(name, directory)
    if rec.ph is None:
        return None
    apgar = rec.outcome.get("Apgar5")
    normal = rec.ph >= NORMAL_PH and isinstance(apgar, float) and apgar >= NORMAL_APGAR5
    log = AlarmLog(policy or AlarmPolicy(), EPISODE_GAP_S)
    times: list[float] = []
    figo: list[np.ndarray] = []

    def seen(t: float, analysis: Any) -> None:
        if t % 60.0 < 1e-6 and (not times or t > times[-1]):
            times.append(t)
            figo.append(risk_inputs(analysis, None, []))

    for source, t, findings in stream_observations(rec.fhr, rec.uc, rec.fs, step_s=60.0, on_analysis=seen):
        log.observe(source, t, findings)
    k = int(rec.fs)
    hour, ten = Normalisation(window_s=3600), Normalisation(window_s=600)
    train_w = []
    for shift in AcidaemiaConfig().shifts_s:
        end = rec.fhr.size - shift * k
        a = max(0, end - 3600 * k)
        train_w.append(window_tensor(rec.fhr[a:end], rec.uc[a:end], None, rec.fs, hour))
    from models.training.data import Recording

    ae_train = (normal_ctg_windows([Recording(rec.record_id, rec.fs, rec.fhr, rec.uc)], ten, 120) if normal
                else np.zeros((0, 600, 4), np.float32))
    return RecordSeries(
        record_id=rec.record_id, ph=float(rec.ph), normal_outcome=normal,
        header={f: rec.outcome.get(f) for f in HEADER_FIELDS}, end_s=rec.fhr.size / rec.fs,
        times=np.array(times), figo=np.array(figo).reshape(len(times), -1),
        lstm_summaries=_summaries(list(windows_ending(rec.fhr, rec.uc, rec.fs, np.array(times), hour))),
        ae_windows=windows_ending(rec.fhr, rec.uc, rec.fs, np.array(times), ten).astype(np.float32),
        lstm_train=_summaries(train_w), ae_train=ae_train.astype(np.float32),
        policy_alarms=[(str(p), float(start), int(worst)) for p, start, worst in log.alarm_episodes],
    )


def _one(args: tuple[Path, str]) -> RecordSeries | None:
    import torch

    torch.set_num_threads(1)
    return record_series(*args)


def build_series(directory: Path, limit: int | None = None, processes: int = 2,
                 cache: Path | None = None) -> list[RecordSeries]:
    """Every record with a pH, replayed (read from ``cache`` when it holds the same records replayed by
    today's code: :mod:`stream.evaluation.cache`)."""
    from stream.evaluation import cache as cached
    from stream.sources.recordings import list_records

    names = list_records(directory)[:limit]
    sources = cached.source_digests()
    hit = cached.read_fresh(cache, sources) if cache is not None else None
    if hit is not None and hit["names"] == names and hit["directory"] == str(directory):
        return list(hit["series"])
    with ProcessPoolExecutor(max_workers=max(1, processes)) as pool:
        series = [s for s in pool.map(_one, [(directory, n) for n in names], chunksize=2) if s is not None]
    if cache is not None:
        cached.write(cache, {"names": names, "directory": str(directory), "series": series}, sources)
    return series
