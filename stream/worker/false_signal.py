"""The false-signal model in the stream: which FHR samples are not the fetal heart.

Every ``interval_s`` of a patient's recording, the last ``window_s`` seconds
(models/serving/false_signal_features.py; 10 min) go to ``ctg_false_signal`` on Triton,
batched with every other patient due in the same tick. The per-second
verdicts are merged into the patient's running verdict (the newest scoring
decides the seconds it covers; older seconds keep the last verdict they had)
and handed to the FIGO analysis of the last 30 min as a
:class:`detectors.quality.ModelVerdict`: samples the model judged false are
left out of the analysis and drawn as not fetal. Samples the model has not
judged yet, and every sample while the model is unavailable, are judged by the
rule-based detector instead; the finding's rule says which judge spoke.

Each scoring's verdict on the newest ``verdict_delay_s`` seconds of its window
(a parameter of the served model's config, 60 s from v7) is held back: a
verdict on a second with no future behind it is the least certain, so those
seconds stay with the rules until the next scoring has seen a minute past
them. The model's first word on a second therefore comes 60-120 s after it,
not 0-60 s (docs/EVALUATION.md, "False-signal model v7").

A second is "not fetal" when its probability reaches the served config's
``threshold`` where the maternal HR gave a value, or ``threshold_without_maternal``
(higher, from v8) where it did not: without the mother's rate beside it a fetal
deceleration looks like her, so the model must be surer
(models/serving/false_signal_features.py, ``FalseSignalThresholds``). The worker reads
each second's maternal value from the very window it sent.

Why 10 min and not the 30 min analysed: an output of the convolution network
looks 511 s either way, so a second's last verdict (when it is 540-600 s old)
is the one the whole recording would give, at a third of the cost of sending
30 min every minute (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.quality import ModelVerdict
from models.serving.false_signal_features import (
    FalseSignalShape,
    FalseSignalThresholds,
    SensorKind,
    false_signal_inputs,
    window_inputs,
)
from models.serving.triton_client import FALSE_SIGNAL, BatchingScorer, ModelUnavailable, Scored
from stream.core.metrics import MODEL_INTERVAL
from stream.state.windows import PatientWindow
from stream.worker.slices import map_in_slices


@dataclass(frozen=True)
class KeptVerdict:
    """Per-second verdicts (True = not fetal) from ``t0`` on the recording's clock."""

    t0: float
    false: np.ndarray
    version: str
    thresholds: FalseSignalThresholds

    def merged(self, newer: KeptVerdict, keep_s: float) -> KeptVerdict:
        """This verdict with ``newer`` written over the seconds it covers, at most ``keep_s`` seconds long.

        Contiguous on the recording clock: seconds between the two that neither judged stay
        unjudged (NaN is not representable in a bool array, so a gap restarts the verdict).
        """
        offset = int(round(newer.t0 - self.t0))
        if offset < 0 or offset > self.false.size:  # older data replayed, or a gap: start again
            return newer
        false = np.concatenate([self.false[:offset], newer.false])
        drop = max(0, false.size - int(keep_s))
        return KeptVerdict(self.t0 + drop, false[drop:], newer.version, newer.thresholds)


class FalseSignalJudge:
    def __init__(self, scorer: BatchingScorer, shape: FalseSignalShape = FalseSignalShape(),
                 interval_s: float = 60.0, min_s: float = 60.0, keep_s: float = 3600.0) -> None:
        self.scorer = scorer
        self.shape = shape
        self.interval_s = interval_s
        self.min_s = min_s
        self.keep_s = keep_s  # the running verdict covers at most this (the analysis reads 30 min)
        self.verdicts: dict[str, KeptVerdict] = {}
        self.unavailable: dict[str, str] = {}
        self.last_t: dict[str, float] = {}

    def due(self, window: PatientWindow) -> bool:
        t_end = window.t_end
        if t_end is None or window.fhr.size / window.fs < self.min_s:
            return False
        last = self.last_t.get(window.patient_id)
        return last is None or t_end - last >= self.interval_s

    def inputs(self, window: PatientWindow) -> tuple[np.ndarray, float, int]:
        """The model's input for a patient, the recording time of its first second and how many seconds are real."""
        fhr, uc, mhr, t0 = window.last(self.shape.window_s)
        sensor: SensorKind = "fecg" if window.sensor == "fecg" else "ultrasound" if window.sensor == "ultrasound" else "unknown"
        features = false_signal_inputs(fhr, mhr, uc, sensor, self.shape, window.fs)
        seconds = min(features.shape[0], self.shape.window_s)
        # features drop a trailing partial second; their first second starts at the window's first sample
        return window_inputs(features, self.shape.window_s), t0 + (features.shape[0] - seconds), seconds

    async def judge(self, due: list[PatientWindow], slice_s: float) -> None:
        """Score every due patient in one batch and keep the verdicts (or why there are none).
        The inputs are prepared in slices of ``slice_s`` of event-loop time (stream/worker/slices.py)."""

        def inputs(w: PatientWindow) -> tuple[np.ndarray, float, int]:
            last = self.last_t.get(w.patient_id)
            if last is not None and w.t_end is not None:
                MODEL_INTERVAL.labels("false_signal").observe(w.t_end - last)
            self.last_t[w.patient_id] = w.t_end or 0.0
            return self.inputs(w)

        prepared = await map_in_slices(inputs, due, slice_s)
        results = await self.scorer.score_many([tensor for tensor, _, _ in prepared])
        for window, (tensor, first_t, seconds), result in zip(due, prepared, results):
            self.keep(window.patient_id, first_t, tensor, seconds, result[FALSE_SIGNAL])

    def keep(self, patient_id: str, first_t: float, features: np.ndarray, seconds: int,
             result: Scored | ModelUnavailable) -> None:
        """Keep the verdict on the last ``seconds`` of the window (the rest was padding) but its newest
        ``result.verdict_delay_s``, or why there is none. ``features`` is the window sent (its
        maternal-HR column picks the threshold of each second)."""
        if isinstance(result, ModelUnavailable):
            self.unavailable[patient_id] = result.reason
            return
        self.unavailable.pop(patient_id, None)
        p = np.asarray(result.per_second, dtype=float)[-seconds:] if seconds > 0 else np.zeros(0)
        p = p[:max(0, p.size - int(round(result.verdict_delay_s)))]
        thresholds = FalseSignalThresholds.of(result.threshold, result.threshold_without_maternal)
        real = features[features.shape[0] - seconds:] if seconds > 0 else features[:0]
        newer = KeptVerdict(first_t, thresholds.false_seconds(p, real), result.version, thresholds)
        kept = self.verdicts.get(patient_id)
        self.verdicts[patient_id] = newer if kept is None else kept.merged(newer, self.keep_s)

    def verdict_for(self, patient_id: str, t0: float, n: int, fs: float) -> ModelVerdict | None:
        """The per-sample verdict over ``n`` samples from ``t0`` (NaN where the model has not judged)."""
        kept = self.verdicts.get(patient_id)
        if kept is None:
            return None
        per_sample = np.full(n, np.nan)
        t = t0 + np.arange(n) / fs
        second = np.floor(t - kept.t0).astype(int)
        inside = (second >= 0) & (second < kept.false.size)
        per_sample[inside] = kept.false[second[inside]].astype(float)
        return ModelVerdict(per_sample, FALSE_SIGNAL, kept.version, kept.thresholds.with_maternal,
                            kept.thresholds.without_maternal)

    def evidence(self, patient_id: str) -> dict:
        if patient_id in self.unavailable:
            return {"status": "unavailable", "reason": self.unavailable[patient_id],
                    "judge": "rules (the false-signal model is unavailable)"}
        kept = self.verdicts.get(patient_id)
        if kept is None:
            return {"status": "not yet scored", "judge": "rules"}
        return {"status": "ok", "version": kept.version, **kept.thresholds.as_dict(),
                "false_fraction": round(float(kept.false.mean()) if kept.false.size else 0.0, 4),
                "judge": f"{FALSE_SIGNAL} v{kept.version}"}

    def forget(self, patient_id: str) -> None:
        for table in (self.verdicts, self.unavailable, self.last_t):
            table.pop(patient_id, None)

    def patients(self) -> set[str]:
        """The patients this judge holds anything of."""
        return set(self.verdicts) | set(self.unavailable) | set(self.last_t)
