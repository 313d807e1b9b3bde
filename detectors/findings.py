"""What every detector returns: findings that carry their own evidence.

A clinician looking at an alert must be able to see *why* it was raised:
which rule (and which guideline it implements), over which time span, on
which values. A :class:`Finding` holds exactly that, plus one short sentence
written for a person at the bedside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    """Ordered so that ``max()`` picks the most urgent finding."""

    INFO = 0
    ADVISORY = 1
    URGENT = 2
    EMERGENCY = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One detected feature or abnormality, with its evidence."""

    kind: str  # e.g. "late_deceleration", "bradycardia", "signal_loss", "meows_trigger"
    severity: Severity
    start_s: float  # seconds on the caller's clock (the window's t0 + offset)
    end_s: float
    rule: str  # which rule fired and its source, e.g. "FIGO 2015: deceleration > 15 bpm, > 15 s"
    sentence: str  # for the bedside: "Prolonged deceleration for 4.0 min, nadir 88 bpm"
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = str(self.severity)
        return d
