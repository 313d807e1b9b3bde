"""The clinical pipeline of a worker: packets -> windows -> detectors and models -> alerts.

Two paces, as a ward needs them:

- every packet (:meth:`Pipeline.on_ctg`): the window is extended (idempotent,
  mirrored to Redis) and the incremental fast rules run (signal loss,
  prolonged deceleration in progress, bradycardia), so those alerts do not
  wait for the next analysis; every vitals observation runs the MEOWS chart and
  the trend rules at once;
- on a cadence (:meth:`Pipeline.tick`, a timer): each patient whose recording
  advanced by ``analysis_interval_s`` (15 s) since its last refresh gets its
  FIGO class refreshed over the whole labour (:mod:`detectors.labour`): every
  minute of the labour clock that completed since is measured once, on the
  window of the last ``analysis_window_s`` ending at it, its record stored
  (:mod:`stream.state.labour_figo`, read back after a restart or a rebalance),
  and the class decided from the durations carried, with the per-packet
  rules' deceleration in progress; every ``model_interval_s``
  its 10-min window goes to Triton, and the windows of all patients due in the
  same tick travel in one batched request (a model round, which runs beside the
  ticks, one at a time, so the analyses never wait on Triton). Cadences run on each patient's
  own recording clock, so a replay at 60x is analysed like real time, and
  patients fall due at different moments (their packets arrive at different
  times), which spreads the load.

What the ward is shown goes through one alarm state machine per patient
(:mod:`stream.alarms.tracker`, the policy table of :mod:`stream.alarms.policy`):
findings become annotations (drawn on the trace), notices (on the patient's
status, no acknowledgement) or, once qualified, one alarm per problem (CTG,
mother, signal) in the alert store, whose evidence lists every reason.

Model scores are a notice at most, when both models agree for
``model_alert_consecutive`` scorings; they are attached to every alarm as
separate evidence, and an unavailable model is reported as degraded mode
while the rules keep alerting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from redis.asyncio import Redis

from detectors.ctg import CtgAnalysis, analyse_ctg, in_progress_deceleration
from detectors.findings import Finding, Severity
from detectors.labour import LabourFigo, pending_minute_ends
from detectors.meows import VitalsObservation as MeowsObs
from detectors.meows import score_observation, vitals_trend
from models.serving.compromise import AUTOENCODER_HISTORY_MIN, INPUT_NAMES, Stacker, risk_finding, risk_inputs
from models.serving.features import Normalisation, window_tensor
from models.serving.triton_client import ANOMALY_MODEL, FALSE_SIGNAL, MODELS, RISK_MODEL, BatchingScorer, ModelUnavailable
from stream.alarms.policy import AlarmPolicy, Problem, Source
from stream.alarms.tracker import PatientAlarms
from stream.core.logs import pseudonym
from stream.core.metrics import ALERTS, ANALYSIS_INTERVAL, ANALYSIS_SECONDS, MODEL_INTERVAL, MODEL_STATUS
from stream.core.schemas import CtgPacket, VitalsObservation
from stream.state.alerts import AlertStore
from stream.state.labour_figo import LabourFigoStore
from stream.state.labour_record import TREND_STEP_S, ChartMinutes, LabourRecordStore, anomaly_marks, one_hz, trend_point
from stream.state.patient_status import ModelError, PatientStatusStore, TraceMark
from stream.state.windows import NewSamples, PatientWindow, WindowStore, packet_arrays, packet_index
from stream.worker.analysis_pool import AnalysisPool
from stream.worker.false_signal import FalseSignalJudge
from stream.worker.outage import is_outage, log_failure
from stream.worker.slices import map_in_slices

log = logging.getLogger("ctgwatch.pipeline")


@dataclass(frozen=True)
class Cadence:
    analysis_interval_s: float = 15.0  # the class is refreshed every this much recording
    analysis_window_s: float = 1800.0  # each minute is measured on the window this long ending at it
    min_analysis_s: float = 600.0  # FIGO: the baseline needs 10 min
    labour_history_s: float = 4 * 3600.0  # how much of the labour the FIGO durations reach back
    model_interval_s: float = 60.0
    model_alert_consecutive: int = 3
    vitals_merge_s: float = 3600.0  # a reading older than this is not 'current' for MEOWS
    forget_idle_s: float = 3600.0  # a patient silent this long leaves memory (Redis keeps the window)
    alarm_refresh_s: float = 15.0  # an unchanged alarm's evidence is rewritten at most this often
    data_gap_samples: int = 8  # packets missing for this long (2 s at 4 Hz) is an interruption, not signal loss
    # A window the ticks have left this far behind (recording time) is analysed by the packet path before it
    # takes more: after an outage a small ward's backlog can bring an hour of one patient between two ticks,
    # and minutes that leave the window unanalysed would never be checked, marked or archived
    catch_up_analysis_s: float = 300.0
    #: Event-loop time one tick may spend in FIGO analyses (their own time: the packets handled between two
    #: analyses do not count). Beyond it the remaining patients wait for the next tick (most overdue first),
    #: so packets, and the per-packet alarm rules, are never held back by a burst of analyses
    #: (docs/SCALING.md). 800 beds need about 53 analyses a second, 0.25-0.45 s of a core.
    analysis_budget_s: float = 0.4
    #: Event-loop time model inputs are prepared for before the packets that arrived meanwhile go first
    #: (stream/worker/slices.py).
    prepare_slice_s: float = 0.02
    #: With the analyses in helper processes (stream/worker/analysis_pool.py) the event loop is not held
    #: while they run, so a tick may wait on them for most of its interval.
    pooled_analysis_budget_s: float = 0.8
    #: Refreshes run this many patients at a time in the event loop (their Redis round trips overlap; a
    #: minute's measurement still holds the loop while it runs).
    refresh_concurrency: int = 8


@dataclass
class Shown:
    """What a patient's status and alerts show now, so only changes are written."""

    notices: tuple = ()
    alarms: dict[Problem, tuple[tuple, float]] = field(default_factory=dict)


@dataclass
class PatientState:
    """Everything a worker keeps in memory for one patient, so forgetting her (discharged, idle, or her
    partition moved to another worker) is one operation. Redis keeps what outlives it: the window, the FIGO
    minute records, the status and the alerts, which the next owner reads back.

    Her lock is not here: a lock must outlive a forgotten state while a holder still holds it
    (:meth:`Pipeline._forget`), or a new state's lock would let a second holder in beside it.
    """

    alarms: PatientAlarms  # the alarm state machine (stream/alarms/tracker.py)
    window: PatientWindow | None = None  # loaded on her first packet (vitals alone need none)
    figo: LabourFigo | None = None  # the whole-labour FIGO state, read back on her first analysis
    shown: Shown = field(default_factory=Shown)
    model_streak: int = 0  # consecutive model scorings above threshold (a model notice needs several)
    model_evidence: dict[str, Any] | None = None  # the last model round's evidence, attached to her alarms
    #: the autoencoder's scores of the last hour (over its reference), which the compromise risk reads; after
    #: a restart the risk reads the scores since (the hour refills in an hour)
    autoencoder_scores: deque[float] = field(default_factory=lambda: deque(maxlen=AUTOENCODER_HISTORY_MIN))


class Pipeline:
    def __init__(
        self,
        redis: Redis,
        alerts: AlertStore,
        windows: WindowStore,
        cadence: Cadence = Cadence(),
        scorer: BatchingScorer | None = None,
        norm: Normalisation = Normalisation(),
        policy: AlarmPolicy | None = None,
        log_key: bytes = b"",
        false_signal: FalseSignalJudge | None = None,
        risk_scorer: BatchingScorer | None = None,
        risk_norm: Normalisation = Normalisation(window_s=3600),
        analysis_pool: AnalysisPool | None = None,
        compromise: Stacker | None = None,
    ) -> None:
        policy = policy or AlarmPolicy()
        self.log_key = log_key  # patients are named in logs by a keyed pseudonym only
        self.redis = redis
        self.alerts = alerts
        self.windows = windows
        self.status = PatientStatusStore(redis, keep_marks_s=windows.capacity_s)
        self.record = LabourRecordStore(redis)
        self.figo_store = LabourFigoStore(redis, keep_s=cadence.labour_history_s)
        self.cadence = cadence
        self.scorer = scorer
        self.false_signal = false_signal
        self.risk_scorer = risk_scorer
        self.risk_norm = risk_norm
        self.norm = norm
        self.analysis_pool = analysis_pool  # None: the FIGO analyses run in the event loop
        self.patients: dict[str, PatientState] = {}  # everything in memory per patient
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.policy = policy
        self.policy_why = {kind: rule.why for kind, rule in policy.rules.items()}
        self.compromise = compromise  # the compromise-risk stacker (models/serving/compromise.py); None: not served
        #: (since, which models and why) while a served model does not answer, for the heartbeat; None: all answer
        self.models_down: tuple[float, str] | None = None
        self._scoring: asyncio.Task[None] | None = None  # the model round in flight (Pipeline.tick)
        # counts rebalances (forget_all): a model round that began under an older count must not write for
        # patients whose partitions may now be another worker's
        self._ownership = 0

    # -- per record ---------------------------------------------------------
    async def on_record(self, record: CtgPacket | VitalsObservation) -> None:
        if isinstance(record, CtgPacket):
            await self.on_ctg(record)
        else:
            await self.on_vitals(record)

    def _patient(self, patient_id: str) -> PatientState:
        """The patient's state in memory, created on first sight."""
        state = self.patients.get(patient_id)
        if state is None:
            state = self.patients[patient_id] = PatientState(PatientAlarms(self.policy))
        return state

    def window_of(self, patient_id: str) -> PatientWindow | None:
        """The patient's window in memory (None: not loaded, or forgotten)."""
        state = self.patients.get(patient_id)
        return None if state is None else state.window

    async def _window(self, patient_id: str, bed_id: str) -> PatientWindow:
        state = self._patient(patient_id)
        window = state.window
        if window is None:
            baseline = (await self.status.read(patient_id)).baseline_bpm
            window = await self.windows.load(patient_id, bed_id, baseline)
            window.last_packet_monotonic = time.monotonic()
            state.window = window
            await self.alerts.move_patient(patient_id, bed_id)  # moved while this worker did not hold her
        elif window.bed_id != bed_id:  # the patient was moved: her alarms go with her
            window.bed_id = bed_id
            await self.alerts.move_patient(patient_id, bed_id)
        return window

    async def on_ctg(self, packet: CtgPacket) -> None:
        for _index, exc in await self.on_ctg_batch([packet]):
            raise exc

    async def on_ctg_batch(self, packets: list[CtgPacket]) -> list[tuple[int, Exception]]:
        """Packets in arrival order (several patients, several packets of one): the windows are
        extended, all new packets are mirrored to Redis in one round trip, then each packet's fast
        rules run in order.

        Returns the packets that failed for a reason other than an outage, by index, with the error
        (the caller dead-letters them); the others are handled all the same. An outage (Redis away)
        is raised: the caller retries the whole batch, and what is already stored counts as a
        duplicate. The batch holds the locks of its patients (taken in a fixed order, so two holders
        never wait on each other), as one packet did: an analysis never sees a window half extended.
        """
        failed: list[tuple[int, Exception]] = []
        async with contextlib.AsyncExitStack() as held:
            for patient_id in sorted({p.patient_id for p in packets}):
                await held.enter_async_context(self.locks[patient_id])
            added: list[tuple[int, PatientWindow, CtgPacket, NewSamples]] = []
            for index, packet in enumerate(packets):
                try:
                    window = await self._window(packet.patient_id, packet.bed_id)
                    await self._catch_up(window)
                    new = self._extend(window, packet)
                except Exception as exc:
                    if is_outage(exc):
                        raise
                    failed.append((index, exc))
                    continue
                if new is not None:  # None: a duplicate delivery, already in the window
                    added.append((index, window, packet, new))
            await self.windows.save_packets([(window, packet) for _, window, packet, _ in added],
                                            ward_id=self.alerts.policy.ward_id)
            arrived = time.monotonic()
            for index, window, _packet, new in added:
                window.last_packet_monotonic = arrived
                try:
                    await self._fast_rules(window, new)
                except Exception as exc:
                    if is_outage(exc):
                        raise
                    failed.append((index, exc))
        return failed

    async def _catch_up(self, window: PatientWindow) -> None:
        """Analyse a window the ticks have fallen ``catch_up_analysis_s`` behind (its lock is held) before it
        takes more packets, so no minute leaves it unanalysed and unarchived (a backlog after an outage).
        A window never analysed here (a new patient, or one reloaded after a restart) counts as analysed
        when it first held ``min_analysis_s``."""
        if window.t_end is None or window.t_start is None:
            return
        since = (window.last_analysis_t if window.last_analysis_t is not None
                 else window.t_start + self.cadence.min_analysis_s)
        if window.t_end - since < self.cadence.catch_up_analysis_s:
            return
        try:
            await self._analyse(window)
        except Exception as exc:
            if is_outage(exc):
                raise
            log_failure(log, "catch-up analysis", exc)  # the packet itself is fine; the ticks try again
            window.last_analysis_t = window.t_end  # not again on every packet of this batch

    @staticmethod
    def _extend(window: PatientWindow, packet: CtgPacket) -> NewSamples | None:
        new = window.add(packet_index(packet), *packet_arrays(packet))
        if packet.fhr_source != "unknown":
            window.sensor = packet.fhr_source
        return new

    async def _fast_rules(self, window: PatientWindow, new: NewSamples) -> None:
        """The per-packet rules on the samples one packet brought, observed at that packet's end."""
        t_end = new.t_first + new.fhr.size / window.fs  # this packet's end, not the batch's
        if new.gap >= self.cadence.data_gap_samples:  # packets missing, not FHR 0: nothing is known of it
            window.fast.interrupt()
            findings = window.fast.update(new.fhr[new.gap:], new.t_first + new.gap / window.fs, window.baseline_bpm)
        else:
            findings = window.fast.update(new.fhr, new.t_first, window.baseline_bpm)
        await self._observe(window.patient_id, window.bed_id, Source.FAST, t_end, findings)

    async def on_replayed(self, record: CtgPacket | VitalsObservation) -> None:
        """A dead letter sent again (``ctgwatch deadletter replay``): store it where it belongs in time.

        A record newer than what the patient has goes the normal way. An older one fills its place
        in the stored window (and the in-memory one) without running the fast rules or MEOWS again:
        it is history, and an alarm about the past would mislead.
        """
        if isinstance(record, VitalsObservation):
            history = await self.windows.vitals_history(record.patient_id)
            if history and record.observed_ts <= history[-1].observed_ts:
                await self.windows.save_vitals(record)
            else:
                await self.on_vitals(record)
            return
        async with self.locks[record.patient_id]:
            window = await self._window(record.patient_id, record.bed_id)
            past = window.end_index is not None and packet_index(record) + len(record.fhr) <= window.end_index
            if past:
                window.backfill(packet_index(record), *packet_arrays(record))
                await self.windows.save_packet(window, record)
                return
        await self.on_ctg(record)

    async def fill_gap(self, packet: CtgPacket) -> bool:
        """A packet that arrives after newer ones (a producer's resend after an outage) and brings samples that
        never arrived: stored at its place in time, as history (no fast rules, no alarm about the past, as a
        replayed dead letter). False, and nothing changed, when it lies outside the stored window or any of its
        samples is there already (then it is not a late packet but a clash, and the caller dead-letters it)."""
        async with self.locks[packet.patient_id]:
            window = await self._window(packet.patient_id, packet.bed_id)
            if window.end_index is None:
                return False
            first = window.end_index - window.fhr.size
            start = packet_index(packet)
            end = start + len(packet.fhr)
            if start < first or end > window.end_index or not np.isnan(window.fhr[start - first:end - first]).all():
                return False
            window.backfill(start, *packet_arrays(packet))
            await self.windows.save_packet(window, packet)
            return True

    async def on_vitals(self, obs: VitalsObservation) -> None:
        async with self.locks[obs.patient_id]:
            await self.windows.save_vitals(obs)
            # MEOWS merges the last hour and its trend rule looks back an hour over the merged history
            history = await self.windows.vitals_history(obs.patient_id, since=obs.observed_ts - 3 * self.cadence.vitals_merge_s)
            merged = merge_vitals(history, self.cadence.vitals_merge_s)
            result = score_observation(merged[-1])
            findings = result.findings + vitals_trend(merged)
            await self.status.record_vitals(obs.patient_id, obs.bed_id, meows_red=len(result.red),
                                            meows_yellow=len(result.yellow), observed_ts=obs.observed_ts)
            await self._observe(obs.patient_id, obs.bed_id, Source.VITALS, obs.observed_ts, findings)

    async def _observe(self, patient_id: str, bed_id: str, source: str, t: float, findings: list[Finding]) -> None:
        """Feed one source's findings to the patient's alarm state machine and show what changed:
        the notices on the patient's status, one alarm per problem in the alert store."""
        patient = self._patient(patient_id)
        state = patient.alarms.observe(source, t, findings)
        shown = patient.shown
        notices = tuple((n.kind, n.since, n.sentence) for n in state.notices)
        if notices != shown.notices:
            await self.status.record_notices(patient_id, bed_id, state.notices)
            shown.notices = notices
        for problem, alarm in state.alarms.items():
            signature = (alarm.priority, tuple(sorted(f.kind for f in alarm.reasons)))
            last = shown.alarms.get(problem)
            if last is None or last[0] != signature or t - last[1] >= self.cadence.alarm_refresh_s:
                await self._alert(patient_id, bed_id, alarm.as_finding(t, self.policy_why),
                                  origin="models" if {f.kind for f in alarm.reasons} == {"model_anomaly"} else "rules")
                shown.alarms[problem] = (signature, t)
        for problem in set(shown.alarms) - set(state.alarms):
            await self.alerts.mark_cleared(patient_id, problem.alarm_kind)
            del shown.alarms[problem]

    async def _alert(self, patient_id: str, bed_id: str, finding: Finding, origin: str = "rules") -> None:
        patient = self.patients.get(patient_id)
        outcome = await self.alerts.apply(patient_id, bed_id, finding, origin=origin,
                                          models=None if patient is None else patient.model_evidence)
        if outcome and outcome[0] == "raised":
            ALERTS.labels(finding.kind, str(finding.severity)).inc()
            who = pseudonym(patient_id, self.log_key)
            log.info("alert %s for %s: %s", finding.kind, who, finding.sentence,
                     extra={"event": "alert_raised", "alert_id": outcome[1], "patient": who,
                            "bed_id": bed_id, "alert_kind": finding.kind, "severity": str(finding.severity),
                            "origin": origin})

    # -- on a cadence -----------------------------------------------------------
    async def tick(self) -> None:
        """Analyse the patients that are due (within the tick's budget); score all due windows in one batch."""
        analysis_due: list[PatientWindow] = []
        model_due: list[PatientWindow] = []
        false_due: list[PatientWindow] = []
        now = time.monotonic()
        for patient_id, patient in list(self.patients.items()):
            window = patient.window
            if window is None:
                continue
            if now - window.last_packet_monotonic > self.cadence.forget_idle_s:
                self._forget(patient_id)  # discharged or monitor off: free the memory
                continue
            t_end = window.t_end
            if t_end is None:
                continue
            if window.fhr.size / window.fs >= self.cadence.min_analysis_s and (
                window.last_analysis_t is None or t_end - window.last_analysis_t >= self.cadence.analysis_interval_s
            ):
                analysis_due.append(window)
            if self.scorer is not None and window.fhr.size / window.fs >= self.norm.window_s and (
                window.last_model_t is None or t_end - window.last_model_t >= self.cadence.model_interval_s
            ):
                model_due.append(window)
            if self.false_signal is not None and self.false_signal.due(window):
                false_due.append(window)
        await self._analyse_due(analysis_due)
        if (false_due or model_due) and self.scoring_idle():
            # Triton's answer for a few hundred windows takes a second or more on a CPU: the scoring runs beside
            # the ticks, so the FIGO cadence never waits on it (one round at a time; patients left due while a
            # round is in flight are taken by the first tick after it ends).
            self._scoring = asyncio.create_task(self._score_round(false_due, model_due))

    def scoring_idle(self) -> bool:
        """No model round is in flight."""
        return self._scoring is None or self._scoring.done()

    async def wait_scoring(self) -> None:
        """Until the model round in flight (if any) has ended (tests; the worker does not wait for it at stop)."""
        if self._scoring is not None:
            await asyncio.shield(self._scoring)

    async def _score_round(self, false_due: list[PatientWindow], model_due: list[PatientWindow]) -> None:
        ownership = self._ownership
        try:
            if false_due and self.false_signal is not None:
                # the verdicts serve the next analysis of each patient (at most one interval old)
                await self.false_signal.judge(false_due, self.cadence.prepare_slice_s)
                if self._ownership != ownership:  # rebalanced while Triton answered: the new owner scores them
                    for window in false_due:
                        self.false_signal.forget(window.patient_id)
                    return
            if model_due:
                await self._score(model_due, ownership)
        except Exception as exc:  # one failed round must not stop the next (the patients fall due again)
            log_failure(log, "model round", exc)

    async def _analyse_due(self, due: list[PatientWindow]) -> None:
        """The due analyses, most overdue first, giving the event loop back to the packets after each one,
        until the tick's budget is spent (at least one runs); the others stay due for the next tick."""
        def overdue(w: PatientWindow) -> float:
            return float("inf") if w.last_analysis_t is None else (w.t_end or 0.0) - w.last_analysis_t

        budget = self.cadence.analysis_budget_s if self.analysis_pool is None else self.cadence.pooled_analysis_budget_s
        # Most refreshes measure nothing new and only wait on Redis: several at a time overlap those waits
        # (one at a time, 1,500 beds' 100 refreshes a second no longer fitted in the ticks: docs/SCALING.md)
        in_flight = self.cadence.refresh_concurrency if self.analysis_pool is None else self.analysis_pool.processes
        ordered = sorted(due, key=overdue, reverse=True)
        started = time.perf_counter()
        # In the event loop the budget counts the analyses' own time, not the packets handled between them:
        # counted in wall time, a busy packet path used to spend the analyses' budget (docs/SCALING.md).
        # With helper processes the loop is free meanwhile, and the budget is the tick's wall time.
        in_analyses = 0.0
        for i in range(0, len(ordered), in_flight):
            spent = in_analyses if self.analysis_pool is None else time.perf_counter() - started
            if i and spent >= budget:
                break
            batch = ordered[i:i + in_flight]
            if len(batch) == 1:
                in_analyses += await self._analyse_locked(batch[0])
            else:
                in_analyses += sum(await asyncio.gather(*(self._analyse_locked(w) for w in batch)))
            await asyncio.sleep(0)  # the packets that arrived meanwhile go first

    async def _analyse_locked(self, window: PatientWindow) -> float:
        async with self.locks[window.patient_id]:
            return await self._analyse(window)

    async def _analyse(self, window: PatientWindow) -> float:
        """Measure the minutes completed since the last refresh, refresh the whole-labour class and show it;
        returns the measurements' own time (in the event loop: what they held the loop for; with helpers:
        the hand-over and wait)."""
        figo = await self._labour(window)
        took = await self._measure_minutes(window, figo)
        if window.last_analysis_t is not None and window.t_end is not None:
            ANALYSIS_INTERVAL.observe(window.t_end - window.last_analysis_t)
        window.last_analysis_t = window.t_end
        analysis = figo.analysis(ongoing_deceleration_s=window.fast.below_s, now=window.t_end)
        if analysis is None:
            return took  # no minute measured yet (a reloaded labour waits for its next minute)
        if analysis.baseline is not None and analysis.baseline.value is not None:
            window.baseline_bpm = float(analysis.baseline.value)
        fhr = window.fhr
        valid = fhr[fhr > 0]
        fhr_now = float(valid[-1]) if valid.size else None
        shown = (figo.measured_until, analysis.classification, tuple(analysis.reasons))
        if shown != window.shown_analysis:  # a new minute, or the class moved between minutes: everything
            marks = await self.status.record_analysis(
                self.alerts.policy.ward_id, window.patient_id, window.bed_id, analysis, t_end=window.t_end or 0.0,
                fhr_now=fhr_now, baseline_bpm=window.baseline_bpm, analysed_at=time.time())
            window.shown_analysis = shown
        else:  # the same minute's analysis: only the clock moves
            marks = None
            await self.status.record_refresh(
                self.alerts.policy.ward_id, window.patient_id, t_end=window.t_end or 0.0, fhr_now=fhr_now,
                baseline_bpm=window.baseline_bpm, analysed_at=time.time())
        await self._keep_record(window, analysis, marks)
        # A deceleration still in progress is typed (early/late/variable) only when it ends.
        findings = [f for f in analysis.findings if not in_progress_deceleration(f)]
        await self._observe(window.patient_id, window.bed_id, Source.FIGO, window.t_end or 0.0, findings)
        return took

    async def _labour(self, window: PatientWindow) -> LabourFigo:
        """The patient's FIGO state, read back from Redis on first sight (a restart or a rebalance)."""
        patient = self._patient(window.patient_id)
        if patient.figo is None:
            figo = LabourFigo(history_s=self.cadence.labour_history_s)
            figo.restore(await self.figo_store.load(window.patient_id))
            patient.figo = figo
        return patient.figo

    async def _measure_minutes(self, window: PatientWindow, figo: LabourFigo) -> float:
        """Each minute of the labour clock completed since the last one measured, on the window ending at it
        (oldest first); their records are stored. Minutes the stored window no longer holds are left out (the
        durations bridge or end there, as for any minute that cannot be judged)."""
        if window.t_end is None or window.t_start is None:
            return 0.0
        took = 0.0
        added = []
        for end in pending_minute_ends(figo, window.t_start, window.t_end, self.cadence.min_analysis_s):
            if end - 60.0 < window.t_start:
                continue
            start = max(window.t_start, end - self.cadence.analysis_window_s)
            fhr, uc, mhr = window.span(start, end)
            verdict = (None if self.false_signal is None
                       else self.false_signal.verdict_for(window.patient_id, start, fhr.size, window.fs))
            started = time.perf_counter()
            measured = (analyse_ctg(fhr, uc, mhr=mhr, t0=start, model_verdict=verdict) if self.analysis_pool is None
                        else await self.analysis_pool.analyse(fhr, uc, mhr, start, verdict))
            spent = time.perf_counter() - started
            ANALYSIS_SECONDS.observe(spent)
            took += spent
            added.extend(figo.add(measured, end))
        await self.figo_store.add(window.patient_id, added)
        return took

    async def _keep_record(self, window: PatientWindow, analysis: CtgAnalysis, marks: list[TraceMark] | None) -> None:
        """The labour record: a trend point every 5 min, and the minutes the analysis has left behind
        (before its window, so their marks are final) archived at 1 Hz for the bed page's scrollback
        (``marks`` None: the same minute's analysis as the last archive saw, nothing new to archive)."""
        t_end = window.t_end or 0.0
        if window.last_trend_t is None or t_end - window.last_trend_t >= TREND_STEP_S:
            await self.record.add_trend(window.patient_id, trend_point(analysis, t_end))
            window.last_trend_t = t_end
        if marks is None:
            return
        if window.archived_until is None:
            window.archived_until = await self.record.archived_until(window.patient_id) or float("-inf")
        start = max(window.archived_until, math.ceil((window.t_start or 0.0) / 60) * 60)
        end = math.floor(analysis.t0 / 60) * 60
        if end - start < 60:
            return
        f1, u1, m1 = one_hz(*window.span(start, end), window.fs)
        await self.record.archive(window.patient_id, ChartMinutes(start, f1, u1, m1), marks)
        window.archived_until = end

    async def _score(self, due: list[PatientWindow], ownership: int) -> None:
        """The autoencoder on each due patient's last 10 min, the acidaemia-risk LSTM on the last hour.

        The results are used only while the worker still owns what it owned when the round began
        (``ownership``): after a rebalance they could overwrite the new owner's evidence or raise an
        alarm from a window this worker no longer keeps.
        """
        assert self.scorer is not None

        def inputs(w: PatientWindow) -> tuple[np.ndarray, np.ndarray | None]:
            if w.last_model_t is not None and w.t_end is not None:
                MODEL_INTERVAL.labels("anomaly_and_risk").observe(w.t_end - w.last_model_t)
            w.last_model_t = w.t_end
            return (window_tensor(*w.last(self.norm.window_s)[:3], w.fs, self.norm),
                    None if self.risk_scorer is None
                    else window_tensor(*w.last(self.risk_norm.window_s)[:3], w.fs, self.risk_norm))

        prepared = await map_in_slices(inputs, due, self.cadence.prepare_slice_s)
        anomaly = [a for a, _ in prepared]
        risk = [r for _, r in prepared if r is not None]
        results, risks = await asyncio.gather(
            self.scorer.score_many(anomaly),
            self.risk_scorer.score_many(risk) if self.risk_scorer is not None else asyncio.sleep(0, result=[]))
        for i, (window, result) in enumerate(zip(due, results)):
            async with self.locks[window.patient_id]:  # the round runs beside the analyses of the next ticks
                if self._ownership != ownership:
                    return
                await self._use_scores(window, {**result, **(risks[i] if risks else {})})

    def _model_evidence(self, window: PatientWindow, result: dict[str, Any]) -> tuple[dict[str, Any], int, list[str]]:
        """Each served model's evidence for the alarms and the bed page; how many models were above their
        threshold; which models were unavailable, and why."""
        evidence: dict[str, Any] = {}
        above = 0
        unavailable = []
        for model in MODELS:
            r = result.get(model)
            if r is None:
                continue  # not served in this deployment
            if isinstance(r, ModelUnavailable):
                unavailable.append(f"{model}: {r.reason}")
                evidence[model] = {"status": "unavailable", "reason": r.reason}
                continue
            if model == RISK_MODEL:
                evidence[model] = {"status": "ok", "risk_ph_below_7_05": round(r.score, 4),
                                   "window_s": self.risk_norm.window_s,
                                   "note": "acidaemia risk from the last hour: evidence and a trend, never an alarm"}
                continue
            score, error, threshold = r.score, r.per_second, r.threshold
            top = np.argsort(error)[-3:][::-1]
            t0 = (window.t_end or 0) - self.norm.window_s
            evidence[model] = {"status": "ok", "score": round(score, 4), "threshold": round(threshold, 4),
                               "above_threshold": bool(score > threshold),
                               "most_abnormal_s": [round(t0 + float(i), 1) for i in top]}
            above += int(score > threshold)
        if self.false_signal is not None:
            evidence[FALSE_SIGNAL] = self.false_signal.evidence(window.patient_id)
            if evidence[FALSE_SIGNAL]["status"] == "unavailable":
                unavailable.append(f"{FALSE_SIGNAL}: {evidence[FALSE_SIGNAL]['reason']} (signal quality judged by the rules)")
        return evidence, above, unavailable

    async def _use_scores(self, window: PatientWindow, result: dict[str, Any]) -> None:
        """Keep and show one model round's results for a patient: evidence, the anomaly shading, the risk
        trend, the compromise risk, and a model notice once the autoencoder has been above its threshold
        ``model_alert_consecutive`` times running."""
        patient = self.patients.get(window.patient_id)
        if patient is None:
            return  # forgotten (idle) while Triton answered: nothing of hers is kept any more
        evidence, above, unavailable = self._model_evidence(window, result)
        MODEL_STATUS.set(0 if unavailable else 1)
        if unavailable:
            self.models_down = (self.models_down[0] if self.models_down else time.time(), "; ".join(unavailable))
        else:
            self.models_down = None
        patient.model_evidence = evidence
        ae = result.get("ctg_autoencoder")
        error = None
        if ae is not None and not isinstance(ae, ModelUnavailable):
            # the per-second reconstruction error, for the dashboard's "where is it abnormal" shading
            error = ModelError(model="ctg_autoencoder", t0=(window.t_end or 0) - self.norm.window_s,
                               threshold=float(ae.threshold),
                               error=np.round(np.asarray(ae.per_second, dtype=float), 4).tolist())
        risk = evidence.get(RISK_MODEL, {}).get("risk_ph_below_7_05")
        if error is not None:  # the newest scoring interval's above-threshold seconds, kept for the scrollback
            await self.record.add_marks(window.patient_id, anomaly_marks(
                error, since=(window.t_end or 0.0) - self.cadence.model_interval_s))
        model_findings = await self._compromise(patient, result, evidence)
        await self.status.record_models(
            window.patient_id, models="degraded: " + "; ".join(unavailable) if unavailable else "ok",
            evidence=evidence, error=error, risk=None if risk is None else (window.t_end or 0.0, float(risk)))
        patient.model_streak = patient.model_streak + 1 if above else 0
        t_end = window.t_end or 0.0
        if patient.model_streak >= self.cadence.model_alert_consecutive:
            model_findings.append(Finding(
                "model_anomaly", Severity.ADVISORY, t_end - self.norm.window_s, t_end,
                rule=(f"ctg_autoencoder above its calibrated threshold for "
                      f"{patient.model_streak} consecutive scorings"),
                sentence=("The autoencoder finds the last 10 min unlike normal-outcome traces (level, variability "
                          "or contractions); review the trace"
                          + (f"; acidaemia risk (pH < 7.05) from the last hour {risk:.0%}" if risk is not None else "")),
                values={"ctg_autoencoder": evidence.get("ctg_autoencoder", {}).get("score"), RISK_MODEL: risk},
            ))
        await self._observe(window.patient_id, window.bed_id, Source.MODELS, t_end, model_findings)

    async def _compromise(self, patient: PatientState, result: dict[str, Any], evidence: dict[str, Any]) -> list[Finding]:
        """The compromise risk from the whole-labour FIGO state and the models' outputs (models/serving/compromise.py).

        Its evidence goes with the models' (the bed page's trend); at or above its threshold it is a
        ``compromise_risk`` finding, which the policy makes an alarm once it has held. A model that is
        unavailable adds nothing to the risk (its input takes the typical value), and the evidence says so.
        """
        if self.compromise is None or patient.window is None:
            return []
        window = patient.window
        ae = result.get(ANOMALY_MODEL)
        if ae is not None and not isinstance(ae, ModelUnavailable):
            patient.autoencoder_scores.append(float(ae.score) / self.compromise.autoencoder_reference)
        lstm = result.get(RISK_MODEL)
        lstm_risk = None if lstm is None or isinstance(lstm, ModelUnavailable) else float(lstm.score)
        figo = patient.figo
        analysis = None if figo is None else figo.analysis(ongoing_deceleration_s=window.fast.below_s,
                                                           now=window.t_end)
        raw = risk_inputs(analysis, lstm_risk, patient.autoencoder_scores)
        risks, finding = risk_finding(self.compromise, raw, window.t_end or 0.0)
        reasons = finding.values["reasons"] if finding is not None else self.compromise.explain(raw)
        evidence["compromise_risk"] = {
            "status": "ok", **{f"risk_{k}": round(v, 4) for k, v in risks.items()},
            "threshold": self.compromise.thresholds, "reasons": reasons,
            "inputs_missing": [n for n, v in zip(INPUT_NAMES, raw) if not np.isfinite(v)]}
        return [] if finding is None else [finding]

    def patients_held(self) -> set[str]:
        """The patients whose state, lock or false-signal verdicts are still in memory (a rebalance must leave
        none behind)."""
        held = set(self.patients) | set(self.locks)
        if self.false_signal is not None:
            held |= self.false_signal.patients()
        return held

    def _forget(self, patient_id: str) -> None:
        if self.false_signal is not None:
            self.false_signal.forget(patient_id)
        self.patients.pop(patient_id, None)
        lock = self.locks.get(patient_id)
        if lock is not None and not lock.locked():  # a held lock stays with its holder; it ends with it
            self.locks.pop(patient_id, None)

    def forget_window(self, patient_id: str) -> None:
        """Drop a patient's cached window (not its alarm state): it is reloaded from Redis.

        After a failed write the cache may hold samples Redis does not; reloading makes the
        retry of the same packet write them instead of skipping it as a duplicate.
        """
        patient = self.patients.get(patient_id)
        if patient is not None:
            patient.window = None

    def forget_all(self) -> None:
        """Drop cached windows (after a rebalance another worker may have extended them); a model round in
        flight will not use its results."""
        self._ownership += 1
        for patient_id in list(self.patients_held()):  # everything per patient: windows, alarms, models, locks
            self._forget(patient_id)


def merge_vitals(history: list[VitalsObservation], max_age_s: float) -> list[MeowsObs]:
    """Per observation, the latest value of each vital sign not older than ``max_age_s`` (for MEOWS)."""
    latest: dict[str, tuple[float, float]] = {}
    avpu: tuple[float, str] | None = None
    merged: list[MeowsObs] = []
    for obs in history:
        for name, reading in obs.readings().items():
            latest[name] = (reading.ts, reading.value)
        if obs.avpu is not None:
            avpu = (obs.avpu_ts or obs.observed_ts, obs.avpu)
        t = obs.observed_ts
        current = {k: v for k, (ts, v) in latest.items() if t - ts <= max_age_s}
        merged.append(MeowsObs(t=t, avpu=avpu[1] if avpu and t - avpu[0] <= max_age_s else None, **current))
    return merged
