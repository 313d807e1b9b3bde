"""What the nurse-station API answers and accepts (pydantic response and request models).

An alert's audit entries are answered as the alert store keeps them (:class:`stream.state.alerts.AuditEntry`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from stream.state.alerts import AlertRecord, AlertStatus
from stream.state.audio_pause import AudioPause
from stream.state.labour_record import TrendPoint
from stream.state.patient_status import ModelError, PatientStatus, RiskPoint, TraceMark


class AlarmPresentation(BaseModel):
    """What the station adds to an alert record for the screens."""

    priority: str = Field(default="low", description="IEC 60601-1-8 alarm priority: high, medium or low.")
    reasons: list[str] = Field(default_factory=list, description="Every reason of a consolidated alarm, in words.")


class Alert(AlertRecord, AlarmPresentation):
    """One alert with its whole record and evidence (rule, span, values, sentence; model scores apart)."""


class AlertSummary(AlarmPresentation):
    """An alert as a ward tile lists it: the fields of the record (stream.state.alerts.AlertRecord) the wall
    shows, without the evidence, with the priority and reasons."""

    id: str
    patient_id: str
    bed_id: str
    kind: str
    severity: int
    severity_name: str
    status: AlertStatus
    raised_at: float
    updated_at: float
    sentence: str
    rule: str | None = None
    ack_by: str | None = None
    escalated_at: float | None = None
    condition_active: int | None = None
    escalations: int | None = None
    origin: str | None = None


class StripCell(BaseModel):
    """One 5-min cell of a bed's 4-h class strip."""

    t: float
    c: str = Field(description="FIGO 2015 class at t, over the whole labour so far.")


OutageCause = Literal["redis_unreachable", "broker_unreachable", "worker_silent", "models_degraded",
                      "broker_log_lost"]


class Outage(BaseModel):
    """A technical condition of the monitoring itself, named by its cause (IEC 60601-1-8: technical apart
    from physiological conditions; never shown as a patient's finding)."""

    cause: OutageCause
    since: float | None = Field(default=None, description="When it started (Unix time); None: not known.")
    sentence: str = Field(description="What it means for the ward, in words.")
    alarms_stopped: bool = Field(description="No alarm is raised for new data while it lasts.")


class Tile(PatientStatus):
    """A bed on the ward overview: the worker's status of its patient and the patient's open alerts."""

    alerts: list[AlertSummary]
    worst: str
    data_interrupted: bool = Field(default=False, description="No packet for this bed lately (a technical condition).")
    interrupted_by: OutageCause | None = Field(
        default=None, description="While data_interrupted: the ward-wide outage that stops this bed's data, if any "
        "(None: this bed's own monitor or its connection).")
    outages: list[Outage] = Field(default_factory=list, description="The ward's outages (for a bed's own page).")
    strip: list[StripCell] = Field(default_factory=list, description="The CTG class over the last 4 h, one cell per 5 min.")


class Ward(BaseModel):
    ward_id: str
    patients: list[Tile]
    open_alerts: int
    monitoring_interrupted: bool = Field(default=False, description="The worker is silent: no alarm is being raised.")
    worker_silent_s: float | None = Field(
        default=None, description="While interrupted: seconds since the worker last reported (None: never seen).")
    audio_paused: AudioPause | None = Field(default=None, description="The alarm sounds are paused: until when, by whom.")
    outages: list[Outage] = Field(default_factory=list, description="Technical conditions of the monitoring, by cause.")


class BedChart(BaseModel):
    """The archived chart of a patient (1 Hz, older than the live hour) with its final marks."""

    patient_id: str
    t0: float | None
    fhr: list[float | None] = Field(default_factory=list)
    uc: list[float | None] = Field(default_factory=list)
    mhr: list[float | None] = Field(default_factory=list)
    marks: list[TraceMark] = Field(default_factory=list)


class VitalsPoint(BaseModel):
    """One maternal observation with the MEOWS band of each reading (red, yellow or none)."""

    t: float
    values: dict[str, float | str]
    bands: dict[str, str]  # per reading, and "blood_pressure": the worse of systolic and diastolic
    banded_by: dict[str, str] = {}  # "blood_pressure": "systolic" or "diastolic", whichever set its band


class AudioPauseBody(BaseModel):
    minutes: float = Field(default=2.0, gt=0, le=10, description="How long the alarm sounds stay paused (at most 10 min).")


class HandOver(BaseModel):
    """What a shift hands over for one bed: the class history, every alarm and who acted, the vitals."""

    patient_id: str
    bed_id: str
    since: float
    until: float
    status: PatientStatus
    trend: list[TrendPoint]
    alerts: list[Alert]
    vitals: list[VitalsPoint]


class Trace(BaseModel):
    """The last minutes of a patient's CTG at 1 Hz with the worker's own analysis of it."""

    patient_id: str
    t0: float | None
    fs: float = 1.0
    fhr: list[float | None] = Field(default_factory=list)
    uc: list[float | None] = Field(default_factory=list)
    mhr: list[float | None] = Field(default_factory=list)
    events: list[TraceMark] = Field(default_factory=list)
    not_fetal: list[TraceMark] = Field(default_factory=list)
    baseline_bpm: float | None = None
    classification: str | None = None
    reasons: list[str] = Field(default_factory=list)
    analysed_at: float | None = None
    anomaly: ModelError | None = None
    risk_trend: list[RiskPoint] = Field(default_factory=list, description=(
        "Acidaemia risk (pH < 7.05) from the acidaemia-risk LSTM, one point per 5 min: evidence, never an alarm."))


class Me(BaseModel):
    user: str
    role: str
    csrf: str
    may: list[str]


class ActionBody(BaseModel):
    reason: str = Field(default="", max_length=500)


class UserOut(BaseModel):
    name: str
    role: str
    disabled: bool = False


class NewUser(BaseModel):
    name: str
    password: str
    role: str
