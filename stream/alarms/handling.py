"""How the ward wants its alert records handled: escalation delays, quiet time after a resolution.

Plain data, built from the settings (:meth:`stream.core.settings.Settings.alert_handling`)
and applied by the alert store (:mod:`stream.state.alerts`), so a ward changes it in
one place. Not to be confused with the alarm policy (:mod:`stream.alarms.policy`),
which decides which finding is an alarm, a notice or an annotation: this module
decides what happens to an alarm's record once it exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.findings import Severity


@dataclass(frozen=True)
class AlertHandling:
    ward_id: str = "labour-ward"
    escalate_after_s: tuple[tuple[int, float], ...] = ((int(Severity.URGENT), 300.0), (int(Severity.EMERGENCY), 60.0))
    suppress_after_resolve_s: float = 900.0
    evidence_keep: int = 5  # most recent findings kept as evidence

    def escalation_delay(self, severity: int) -> float | None:
        return dict(self.escalate_after_s).get(severity)
