"""Per-packet rules that must not wait for the next window analysis.

Updated incrementally: each packet's few samples move running counters
(O(samples in the packet), never the history), so a stream can call this on
every packet of every patient. Three conditions, all "in progress now":

- signal loss: no FHR for >= ``signal_loss_s`` (the same 15-s event
  threshold as :func:`detectors.quality.assess_quality`);
- prolonged deceleration: FHR > 15 bpm below the last known baseline for
  > 3 min (FIGO 2015 deceleration depth and prolonged duration);
- bradycardia: FHR < 110 bpm for > 10 min (FIGO 2015), counted on valid
  samples so short losses do not reset it.

The baseline comes from the last full analysis (``detectors.ctg``); without
one, the deceleration rule waits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.findings import Finding, Severity
from detectors.thresholds import CtgThresholds, SignalQualityThresholds

DEFAULT_CTG = CtgThresholds()
DEFAULT_QUALITY = SignalQualityThresholds()

FIGO = "FIGO 2015"


@dataclass
class FastRuleState:
    """Running counters of one patient; a few numbers, cheap to keep and to store."""

    fs: float = 4.0
    loss_samples: int = 0
    loss_start: float | None = None
    below_samples: int = 0  # valid samples under baseline - depth, tolerating short losses
    below_start: float | None = None
    below_nadir: float = float("inf")
    brady_samples: int = 0
    brady_start: float | None = None
    gap_samples: int = 0  # consecutive invalid samples inside a below/brady run

    def update(
        self,
        fhr: np.ndarray,
        t_first: float,
        baseline_bpm: float | None,
        th: CtgThresholds = DEFAULT_CTG,
        qth: SignalQualityThresholds = DEFAULT_QUALITY,
    ) -> list[Finding]:
        """Advance by one packet (samples ``fhr`` from time ``t_first``); findings in progress now."""
        max_gap = int(qth.fast_rule_max_gap_s * self.fs)
        for i, v in enumerate(np.asarray(fhr, dtype=float)):
            t = t_first + i / self.fs
            valid = np.isfinite(v) and v > 0
            if not valid:
                self.loss_start = t if self.loss_samples == 0 else self.loss_start
                self.loss_samples += 1
                self.gap_samples += 1
                if self.gap_samples > max_gap:
                    self._reset_runs()
                continue
            self.loss_samples, self.loss_start, self.gap_samples = 0, None, 0
            below = baseline_bpm is not None and v < baseline_bpm - th.deceleration_bpm
            if below:
                self.below_start = t if self.below_samples == 0 else self.below_start
                self.below_samples += 1
                self.below_nadir = min(self.below_nadir, v)
            else:
                self.below_samples, self.below_start, self.below_nadir = 0, None, float("inf")
            if v < th.bradycardia_bpm:
                self.brady_start = t if self.brady_samples == 0 else self.brady_start
                self.brady_samples += 1
            else:
                self.brady_samples, self.brady_start = 0, None
        t_end = t_first + len(fhr) / self.fs
        return self._findings(t_end, baseline_bpm, th, qth)

    @property
    def below_s(self) -> float:
        """How long the FHR has been more than 15 bpm below the baseline now (0 when it is not)."""
        return self.below_samples / self.fs if self.below_start is not None else 0.0

    def interrupt(self) -> None:
        """No data arrived for a while (monitor off, network, broker or worker down): that is not a loss of
        the fetal signal, which the monitor reports as FHR 0. The loss run starts afresh; the deceleration
        and bradycardia runs too, since nothing is known of the FHR in between."""
        self.loss_samples, self.loss_start, self.gap_samples = 0, None, 0
        self._reset_runs()

    def _reset_runs(self) -> None:
        self.below_samples, self.below_start, self.below_nadir = 0, None, float("inf")
        self.brady_samples, self.brady_start = 0, None

    def _findings(
        self, t_end: float, baseline: float | None, th: CtgThresholds, qth: SignalQualityThresholds
    ) -> list[Finding]:
        out = []
        loss_s = self.loss_samples / self.fs
        if loss_s >= qth.loss_event_min_s and self.loss_start is not None:
            out.append(Finding(
                "signal_loss", Severity.ADVISORY, self.loss_start, t_end,
                rule=f"signal quality: no FHR signal for >= {qth.loss_event_min_s:.0f} s (in progress)",
                sentence=f"FHR signal lost for {loss_s:.0f} s and counting; check the transducer",
                values={"duration_s": loss_s},
            ))
        below_s = self.below_samples / self.fs
        if below_s > th.prolonged_deceleration_s and self.below_start is not None and baseline is not None:
            # FIGO 2015: > 5 min below 80 bpm suggests acute hypoxia (as detectors.ctg rates it)
            acute = below_s > th.acute_hypoxia_deceleration_s and self.below_nadir < th.acute_hypoxia_bpm
            severity = Severity.EMERGENCY if acute else Severity.URGENT
            out.append(Finding(
                "prolonged_deceleration", severity, self.below_start, t_end,
                rule=f"{FIGO}: deceleration > {th.deceleration_bpm:.0f} bpm below baseline for > "
                     f"{th.prolonged_deceleration_s / 60:.0f} min (in progress)",
                sentence=(f"FHR {baseline - self.below_nadir:.0f} bpm below the {baseline:.0f} bpm baseline for "
                          f"{below_s / 60:.1f} min and ongoing, nadir {self.below_nadir:.0f} bpm"),
                values={"duration_s": below_s, "baseline_bpm": baseline, "nadir_bpm": self.below_nadir},
            ))
        brady_s = self.brady_samples / self.fs
        if brady_s > th.baseline_window_s and self.brady_start is not None:
            out.append(Finding(
                "bradycardia", Severity.URGENT, self.brady_start, t_end,
                rule=f"{FIGO}: FHR < {th.bradycardia_bpm:.0f} bpm for > {th.baseline_window_s / 60:.0f} min (in progress)",
                sentence=f"FHR below {th.bradycardia_bpm:.0f} bpm for {brady_s / 60:.1f} min and ongoing",
                values={"duration_s": brady_s},
            ))
        return out
