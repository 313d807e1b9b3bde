"""FIGO 2015 over the whole labour: each minute measured once, the patterns' durations carried, the class
decided from them.

Why: FIGO 2015 names durations longer than any sensible analysis window (reduced variability
> 50 min, increased variability > 30 min, sinusoidal > 30 min, repetitive late or prolonged
decelerations > 30 min, > 20 min with reduced variability). A class read off the last 30 min can
never meet them; re-reading a longer window every 15 s for every bed costs what a ward cannot pay.

How, in three named steps:

1. **measure** (:meth:`LabourFigo.add`): when a minute of the labour clock (recording time, whole
   multiples of 60 s) is complete, the window of the last ``window_s`` ending at it is analysed by
   :func:`detectors.ctg.analyse_ctg` (signal quality, the baseline with its 10-min and 20-min context,
   events with their contractions). Its newest minute becomes a :class:`MinuteRecord`: variability
   bandwidth, the sinusoidal step, the FHR level, the contractions (each once) and the
   decelerations that ended in it. The first window gives all its minutes. Decelerations are read
   again by each window that holds them (past its first minute, ``REREAD_CONTEXT_S``), as a clinician
   rereads the trace: a fall that lasts > 10 min becomes a change of baseline, not a deceleration.
2. **carry**: the records of the last ``history_s`` (a setting, 4 h by default) are kept; they are
   small (a few numbers and events a minute) and serialisable, so the stream stores them and a
   restarted or rebalanced worker reads them back instead of re-measuring.
3. **decide** (:meth:`LabourFigo.analysis`): the whole-labour features (durations of the patterns
   going on now, the decelerations and contractions of the last 30 min, the newest window's
   baseline and variability) go through the same :func:`detectors.ctg.classify` and findings as a
   single window does, so the class, its reasons and the findings always agree.

Durations are of the pattern, not of the labour (FIGO 2015 judges variability in baseline
segments): a pattern's duration counts the minutes that show it; minutes that cannot be judged
(a deceleration, signal loss) are bridged up to ``CtgThresholds.pattern_gap_s`` in a row without
counting; a judged minute without the pattern ends it.

Batch and incremental are one computation: :func:`follow_labour` measures every minute of a
recording in turn, exactly as the stream does minute by minute, and a state read back from its
stored records decides the same class (tests/unit/test_detectors_labour.py checks it per minute).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from detectors.ctg import (
    DECELERATION_BURDEN_S,
    DEFAULT_CTG,
    CtgAnalysis,
    CtgFeatures,
    PreparedSignal,
    Repetition,
    analyse_ctg,
    assemble_analysis,
)
from detectors.findings import Finding
from detectors.quality import DEFAULT_QUALITY, ModelVerdict
from detectors.thresholds import CtgThresholds, SignalQualityThresholds
from detectors.variability import VariabilityEstimate

MINUTE_S = 60.0
#: The window each minute is measured on: the 20-min anchor span of :mod:`detectors.baseline` with
#: 10 min of context before it (FIGO 2015 estimates the baseline over 10-min periods). A 20-min window
#: was tried and not kept: it found fewer prolonged decelerations (CTU-UHB alarm reasons, 0.193 ->
#: 0.165/h on acidaemic labours; docs/EVALUATION.md).
WINDOW_S = 30 * 60.0
#: How much of the labour is carried (a setting of the stream, ``CTGWATCH_LABOUR_HISTORY_S``).
HISTORY_S = 4 * 3600.0
#: A contraction is recorded once its deceleration, if any, can have ended: when its acme is this
#: old. Each acme falls in exactly one minute shifted back this much, so each is recorded once.
CONTRACTION_SETTLE_S = 120.0
#: Decelerations are read again by every window that holds them whole, as a clinician rereads the
#: trace (and as the 30-min analysis did every time): a fall first read as a prolonged deceleration
#: is a change of baseline once the window sees it last > 10 min (FIGO 2015), and the return from a
#: tachycardia is no deceleration. Each measurement's window, past its first minute (a deceleration
#: at its very edge cannot be seen whole), replaces the decelerations recorded there with its own
#: reading; older ones are final.
REREAD_CONTEXT_S = 60.0
#: A deceleration's contraction is the recorded contraction whose acme is this close to the one the
#: deceleration was typed against (the two come from windows a minute or more apart).
ACME_MATCH_S = 30.0
LATE_LIKE = ("late", "prolonged")


@dataclass(frozen=True)
class DecelerationRecord:
    """A deceleration that completed, on the labour clock (seconds)."""

    start: float
    end: float
    kind: str
    nadir_bpm: float
    contraction_acme: float | None
    reduced_within_s: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class MinuteRecord:
    """What one minute of the labour showed, measured once when it was complete.

    ``None`` in a measure means the minute could not be judged for it (not enough signal, an
    acceleration or deceleration in the way); such minutes are bridged, never counted.
    """

    t: float  # the minute's start (labour clock)
    interpretable: bool  # the window ending at this minute could be interpreted at all
    valid: float  # share of the minute's seconds with a fetal signal
    band: float | None  # variability bandwidth, bpm
    sinusoidal: bool | None  # the 2-min span ending with this minute
    level: float | None  # median FHR, bpm
    decelerations: tuple[DecelerationRecord, ...] = ()
    acmes: tuple[float, ...] = ()  # contractions recorded in this minute (their acme)
    #: Repetitive late/prolonged decelerations over the 30 min ending here (None: < 2 contractions to
    #: judge); when True, ``late_since`` is the acme of the first contraction a late one followed.
    repetitive_late: bool | None = None
    late_since: float | None = None

    @property
    def end(self) -> float:
        return self.t + MINUTE_S

    def to_dict(self) -> dict[str, Any]:
        """A compact, JSON-ready form (the stream stores one per minute and patient)."""
        return {
            "t": self.t, "i": self.interpretable, "v": round(self.valid, 3),
            "b": None if self.band is None else round(self.band, 3), "s": self.sinusoidal,
            "l": None if self.level is None else round(self.level, 2),
            "d": [[d.start, d.end, d.kind, round(d.nadir_bpm, 1), d.contraction_acme, d.reduced_within_s]
                  for d in self.decelerations],
            "a": list(self.acmes), "r": self.repetitive_late, "ls": self.late_since,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MinuteRecord:
        return cls(
            t=float(d["t"]), interpretable=bool(d["i"]), valid=float(d["v"]), band=d["b"], sinusoidal=d["s"],
            level=d["l"],
            decelerations=tuple(DecelerationRecord(float(a), float(e), str(k), float(n), None if c is None else float(c),
                                                   float(r)) for a, e, k, n, c, r in d["d"]),
            acmes=tuple(float(a) for a in d["a"]), repetitive_late=d["r"], late_since=d["ls"],
        )


def minute_records(window: CtgAnalysis, minute_end: float, since: float | None) -> list[MinuteRecord]:
    """The records of the whole minutes of ``window`` (which ends at ``minute_end``) after ``since``.

    Parameters
    ----------
    window : CtgAnalysis
        :func:`detectors.ctg.analyse_ctg` of the history ending at ``minute_end``.
    minute_end : float
        End of the newest minute (a multiple of 60 s on the labour clock).
    since : float or None
        End of the last minute already recorded (None: none yet, every whole minute of the window).

    Returns
    -------
    list of MinuteRecord
        Oldest first; without decelerations and the repetition judgement, which need the labour's
        record (:meth:`LabourFigo.add` adds them).
    """
    first = math.ceil(window.t0 / MINUTE_S - 1e-9) * MINUTE_S
    if since is not None:
        first = max(first, since)
    return [minute_record(window, minute_end, float(t)) for t in np.arange(first, minute_end - MINUTE_S + 1e-6, MINUTE_S)]


def minute_record(window: CtgAnalysis, minute_end: float, t: float) -> MinuteRecord:
    """The record of the minute starting at ``t`` as ``window`` (ending at ``minute_end``) measured it."""
    back = int(round((minute_end - t) / MINUTE_S))  # 1 = the newest minute
    valid = _valid_share(window, t)
    f = window.features
    if f is None:
        return MinuteRecord(t, False, valid, None, None, None)
    return MinuteRecord(
        t=t, interpretable=True, valid=valid,
        band=_nth_from_end(f.variability.bands, back, finite=True),
        sinusoidal=_sinusoidal_at(f, back),
        level=_level_at(f, back),
        acmes=tuple(window.t0 + c.acme for c in f.contractions
                    if t - CONTRACTION_SETTLE_S <= window.t0 + c.acme < t + MINUTE_S - CONTRACTION_SETTLE_S),
    )


def _valid_share(window: CtgAnalysis, t: float) -> float:
    v = window.quality.valid
    fs = v.size / window.duration_s if window.duration_s > 0 else 0.0
    a, e = int(round((t - window.t0) * fs)), int(round((t + MINUTE_S - window.t0) * fs))
    part = v[max(a, 0):max(e, 0)]
    return float(part.mean()) if part.size else 0.0


def _nth_from_end(values: np.ndarray, back: int, finite: bool = False) -> float | None:
    if back > values.size:
        return None
    x = float(values[-back])
    return None if finite and not math.isfinite(x) else x


def _sinusoidal_at(f: CtgFeatures, back: int) -> bool | None:
    if back > f.sinusoidal_steps.size or not f.sinusoidal_assessable[-back]:
        return None
    return bool(f.sinusoidal_steps[-back])


def _level_at(f: CtgFeatures, back: int) -> float | None:
    if back > f.minute_levels.size or not f.minute_levels_ok[-back]:
        return None
    return float(f.minute_levels[-back])


def completed_decelerations(window: CtgAnalysis, since: float) -> Iterator[DecelerationRecord]:
    """The window's completed decelerations that start at or after ``since`` (labour clock)."""
    f = window.features
    if f is None:
        return
    t0 = window.t0
    reduced = f.reduced_within_s or [0.0] * len(f.decelerations)
    for d, within in zip(f.decelerations, reduced, strict=True):
        if d.excursion.complete and t0 + d.excursion.start >= since:
            yield DecelerationRecord(
                start=t0 + d.excursion.start, end=t0 + d.excursion.end, kind=d.kind, nadir_bpm=float(d.excursion.extreme_bpm),
                contraction_acme=None if d.contraction is None else t0 + d.contraction.acme,
                reduced_within_s=within)


@dataclass
class LabourFigo:
    """One patient's FIGO state over the labour: the minute records and the newest window's analysis.

    The records are what is stored; ``latest`` (the newest window's analysis) is kept in memory only
    and rebuilt by the next minute's measurement.
    """

    history_s: float = HISTORY_S
    th: CtgThresholds = DEFAULT_CTG
    minutes: list[MinuteRecord] = field(default_factory=list)
    latest: CtgAnalysis | None = None
    latest_end: float | None = None
    #: The whole-labour features as of ``latest_end`` (made once per measured minute; a refresh only adds
    #: the deceleration in progress).
    _features: CtgFeatures | None = field(default=None, repr=False)

    @property
    def measured_until(self) -> float | None:
        """End of the newest recorded minute (None before the first)."""
        return self.minutes[-1].end if self.minutes else None

    def add(self, window: CtgAnalysis, minute_end: float) -> list[MinuteRecord]:
        """Record the minutes of ``window`` (ending at ``minute_end``) not recorded yet, and reread the
        decelerations of the minutes it holds past its context; returns every record made or changed.

        Parameters
        ----------
        window : CtgAnalysis
            :func:`detectors.ctg.analyse_ctg` of the last ``window_s`` ending at ``minute_end``.
        minute_end : float
            A multiple of 60 s after :attr:`measured_until`.
        """
        since = self.measured_until
        if since is not None and minute_end <= since:
            raise ValueError(f"minute ending at {minute_end} is already recorded (up to {since})")
        added = minute_records(window, minute_end, since)
        first_new = len(self.minutes)
        self.minutes.extend(added)
        changed = self._reread_decelerations(window, since) | self._judge_unjudged(window, minute_end, since)
        for i in range(first_new, len(self.minutes)):  # the repetition as known at each new minute's end
            self.minutes[i] = replace(self.minutes[i], **self._repetition_at(self.minutes[i].end))
        self._trim(minute_end)
        self.latest, self.latest_end = window, minute_end
        self._features = self._whole_labour_features()
        new_from = added[0].t if added else minute_end
        return [m for m in self.minutes if m.t in changed or m.t >= new_from]

    def _judge_unjudged(self, window: CtgAnalysis, minute_end: float, since: float | None) -> set[float]:
        """Minutes recorded when their window could not be interpreted (too little signal in the 10 min
        before them) take this window's measures, if it can be interpreted; returns the minutes changed.
        A minute judged once is never judged again."""
        if window.features is None or since is None:
            return set()
        changed = set()
        for i in range(self._first_since(window.t0 + REREAD_CONTEXT_S), len(self.minutes)):
            m = self.minutes[i]
            if m.interpretable or m.end > since:
                continue
            judged = minute_record(window, minute_end, m.t)
            self.minutes[i] = replace(m, interpretable=True, band=judged.band, sinusoidal=judged.sinusoidal,
                                      level=judged.level)
            changed.add(m.t)
        return changed

    def _reread_decelerations(self, window: CtgAnalysis, since: float | None) -> set[float]:
        """Replace the decelerations recorded past the window's context with the window's reading (see
        ``REREAD_CONTEXT_S``); returns the starts of the minutes whose record changed. A window that could
        not be interpreted rereads nothing."""
        if window.features is None:
            return set()
        reread_from = window.t0 if since is None else window.t0 + REREAD_CONTEXT_S
        first = self._first_since(reread_from)
        kept = [d for m in self.minutes[first:] for d in m.decelerations if d.start < reread_from]
        fresh = [d for d in completed_decelerations(window, reread_from) if not any(_overlap(d, k) for k in kept)]
        changed = set()
        for i in range(first, len(self.minutes)):
            m = self.minutes[i]
            mine = tuple(d for d in m.decelerations if d.start < reread_from) + tuple(
                d for d in fresh if m.t <= d.end < m.end)
            if mine != m.decelerations:
                self.minutes[i] = replace(m, decelerations=mine)
                changed.add(m.t)
        return changed

    def restore(self, records: list[MinuteRecord]) -> None:
        """Take the stored records back (a restarted or rebalanced worker); ``latest`` waits for the next minute."""
        self.minutes = sorted(records, key=lambda r: r.t)
        self.latest = self.latest_end = self._features = None
        if self.minutes:
            self._trim(self.minutes[-1].end)

    def _trim(self, now: float) -> None:
        keep_from = now - self.history_s
        if self.minutes and self.minutes[0].t < keep_from:
            self.minutes = [m for m in self.minutes if m.t >= keep_from]

    # -- the whole-labour features ------------------------------------------------------------------
    def _first_since(self, t: float) -> int:
        """The index of the first record whose minute ends after ``t`` (the list is in time order)."""
        return bisect.bisect_right(self.minutes, t - MINUTE_S, key=lambda m: m.t)

    def _since(self, t: float) -> list[MinuteRecord]:
        """The records of the minutes that end after ``t``."""
        return self.minutes[self._first_since(t):]

    def _decelerations_since(self, t: float) -> list[DecelerationRecord]:
        return [d for m in self._since(t) for d in m.decelerations]

    def _contractions_since(self, t: float) -> tuple[list[float], list[DecelerationRecord]]:
        """The acmes recorded from ``t`` on, and the decelerations that could have followed them."""
        recent = self._since(t)
        return [a for m in recent for a in m.acmes if a >= t], [d for m in recent for d in m.decelerations]

    def _repetition_at(self, end: float) -> dict[str, Any]:
        """FIGO 2015 repetitive late/prolonged decelerations over the 30 min ending at ``end``."""
        acmes, decels = self._contractions_since(end - self.th.tachysystole_average_s - CONTRACTION_SETTLE_S)
        if len(acmes) < 2:
            return {"repetitive_late": None, "late_since": None}
        late = [a for a in acmes if _followed(a, decels, LATE_LIKE)]
        repetitive = len(late) / len(acmes) > self.th.repetitive_fraction
        return {"repetitive_late": repetitive, "late_since": min(late) if repetitive else None}

    def episode(self, flag: Callable[[MinuteRecord], bool | None]) -> list[MinuteRecord]:
        """The minutes of the pattern going on now, newest first (see the module's docstring)."""
        if not self.minutes:
            return []
        out: list[MinuteRecord] = []
        edge = self.minutes[-1].end
        for rec in reversed(self.minutes):
            f = flag(rec)
            if f is None:
                continue
            if edge - rec.end > self.th.pattern_gap_s or not f:
                break
            out.append(rec)
            edge = rec.t
        return out

    def features(self, ongoing_deceleration_s: float = 0.0) -> CtgFeatures | None:
        """The whole labour's features, on the newest window's (None before a window could be interpreted),
        with a deceleration in progress this long (see :meth:`analysis`)."""
        if self._features is None:
            return None
        if ongoing_deceleration_s <= self._features.longest_prolonged_s:
            return self._features
        return replace(self._features, longest_prolonged_s=ongoing_deceleration_s)

    def _whole_labour_features(self) -> CtgFeatures | None:
        if self.latest is None or self.latest.features is None or self.latest_end is None:
            return None
        th, now, w = self.th, self.latest_end, self.latest.features
        reduced = self.episode(lambda m: None if m.band is None else m.band < th.variability_reduced_bpm)
        increased = self.episode(lambda m: None if m.band is None else m.band > th.variability_increased_bpm)
        sinusoidal = self.episode(lambda m: m.sinusoidal)
        brady = self.episode(lambda m: None if m.level is None else m.level < th.bradycardia_bpm)
        tachy = self.episode(lambda m: None if m.level is None else m.level > th.tachycardia_bpm)
        late = self.episode(lambda m: m.repetitive_late)
        recent = [d for d in self._decelerations_since(now - th.tachysystole_average_s)
                  if d.end > now - th.tachysystole_average_s]
        ongoing = max([0.0] + [d.excursion.duration for d in w.decelerations
                               if d.kind == "prolonged" and not d.excursion.complete])
        within = [d.reduced_within_s for d in recent if d.reduced_within_s > 0]
        burden = [d for d in self._decelerations_since(now - DECELERATION_BURDEN_S) if d.end > now - DECELERATION_BURDEN_S]
        return replace(
            w,
            variability=VariabilityEstimate(bands=np.array([np.nan if m.band is None else m.band for m in self.minutes]),
                                            median_bpm=w.variability.median_bpm,
                                            reduced_s=len(reduced) * MINUTE_S, increased_s=len(increased) * MINUTE_S),
            sinusoidal_s=(len(sinusoidal) + 1) * MINUTE_S if sinusoidal else 0.0,  # n 2-min steps span n + 1 min
            bradycardia_s=len(brady) * MINUTE_S, bradycardia_level=_median_level(brady),
            tachycardia_s=len(tachy) * MINUTE_S, tachycardia_level=_median_level(tachy),
            repetition=self._recent_repetition(now, w.repetition.per_10min is not None or bool(w.contractions)),
            repetitive_late_s=now - late[-1].late_since if late and late[-1].late_since is not None else 0.0,
            longest_prolonged_s=max([ongoing] + [d.duration for d in recent if d.kind == "prolonged"]),
            reduced_in_decelerations_s=float(sum(within)),
            reduced_in_decelerations_bpm=w.reduced_in_decelerations_bpm if within else None,
            first_deceleration_s=(min(d.start for d in recent) - self.latest.t0) if within else None,
            deceleration_burden_s=float(sum(d.duration for d in burden)),
        )

    def _recent_repetition(self, now: float, has_uc: bool) -> Repetition:
        """Decelerations with the contractions recorded over the last 30 min (FIGO 2015: repetitive if > 50 %)."""
        th = self.th
        covered = now - self.minutes[0].t if self.minutes else 0.0
        span = min(covered, th.tachysystole_average_s)
        acmes, decels = self._contractions_since(now - span - CONTRACTION_SETTLE_S)
        kinds = [k for k in (_followed(a, decels) for a in acmes) if k is not None]
        late_like = [k for k in kinds if k in LATE_LIKE]
        enough = len(acmes) >= 2
        return Repetition(
            span_s=span, contractions=len(acmes), with_deceleration=len(kinds), kinds=sorted(set(kinds)),
            repetitive=enough and len(kinds) / len(acmes) > th.repetitive_fraction,
            repetitive_late=enough and len(late_like) / len(acmes) > th.repetitive_fraction,
            per_10min=len(acmes) / (span / 600.0) if span >= 600 and has_uc else None,
        )

    def analysis(self, ongoing_deceleration_s: float = 0.0, now: float | None = None) -> CtgAnalysis | None:
        """The whole labour's analysis: class, reasons and findings (None before the first minute).

        Parameters
        ----------
        ongoing_deceleration_s : float
            How long the FHR has been below the baseline now, by the per-packet rules
            (:class:`detectors.fast.FastRuleState`): lets a prolonged deceleration passing 5 min make
            the class pathological within seconds, between two minute measurements.
        now : float or None
            The refresh's time (the recording's newest sample; default: the newest measured minute's
            end). What was going on at the newest measured minute's end (the class, the patterns, a
            signal problem) is reported as going on until ``now``: the next minute's measurement
            says otherwise if it ended, and a refresh is never older than a minute.
        """
        if self.latest is None or self.latest_end is None:
            return None
        now = self.latest_end if now is None else max(now, self.latest_end)
        features = self.features(ongoing_deceleration_s)
        w = self.latest
        if features is None:  # the newest window could not be interpreted: it says why
            return replace(w, duration_s=now - w.t0, findings=_held_until(w.findings, self.latest_end, now))
        signal = PreparedSignal(w.t0, 0.0, now - w.t0, w.quality, np.empty(0), np.empty(0), np.empty(0, bool))
        analysis = assemble_analysis(signal, features, self.th)
        return replace(analysis, findings=_held_until(analysis.findings, self.latest_end, now))


def _held_until(findings: list[Finding], measured_end: float, now: float) -> list[Finding]:
    """Findings still going on at the newest measured minute's end, held until ``now``."""
    if now <= measured_end:
        return findings
    return [replace(f, end_s=now) if measured_end - 1.0 <= f.end_s <= measured_end + 1e-6 else f for f in findings]


def _followed(acme: float, decelerations: list[DecelerationRecord], kinds: tuple[str, ...] | None = None) -> str | None:
    """The kind of the deceleration that followed the contraction with this acme (None if none did)."""
    for d in decelerations:
        if (d.contraction_acme is not None and abs(d.contraction_acme - acme) <= ACME_MATCH_S
                and (kinds is None or d.kind in kinds)):
            return d.kind
    return None


def _median_level(episode: list[MinuteRecord]) -> float | None:
    levels = [m.level for m in episode if m.level is not None]
    return float(statistics.median(levels)) if levels else None


def _overlap(a: DecelerationRecord, b: DecelerationRecord) -> bool:
    return a.start < b.end and b.start < a.end


def minute_ends(t_first: float, t_end: float, first_after_s: float) -> Iterator[float]:
    """The minute boundaries (labour clock) at which a recording from ``t_first`` to ``t_end`` is measured:
    from the first that has ``first_after_s`` of history (FIGO: the baseline needs 10 min)."""
    start = math.ceil((t_first + first_after_s) / MINUTE_S - 1e-9) * MINUTE_S
    return iter(np.arange(start, t_end + 1e-6, MINUTE_S).tolist())


def pending_minute_ends(state: LabourFigo, t_first: float, t_end: float, first_after_s: float) -> list[float]:
    """The minute boundaries up to ``t_end`` not measured yet: after the newest recorded minute, or, for a
    labour not measured yet, from the first with ``first_after_s`` of history after ``t_first``."""
    since = state.measured_until
    if since is None:
        return list(minute_ends(t_first, t_end, first_after_s))
    return [end for end in minute_ends(since, t_end, 0.0) if end > since]


def measure_through(
    state: LabourFigo, fhr: np.ndarray, uc: np.ndarray | None, fs: float, mhr: np.ndarray | None, t0: float,
    until: float, *, window_s: float = WINDOW_S, first_after_s: float = 600.0,
    th: CtgThresholds = DEFAULT_CTG, qth: SignalQualityThresholds = DEFAULT_QUALITY,
    model_verdict: ModelVerdict | None = None,
) -> list[MinuteRecord]:
    """Measure every minute of a recording (samples from ``t0``) that ended by ``until`` and is not recorded
    yet, each on the window of ``window_s`` ending at it, as the stream does; returns the new records."""
    added: list[MinuteRecord] = []
    for end in pending_minute_ends(state, t0, min(until, t0 + fhr.size / fs), first_after_s):
        b = int(round((end - t0) * fs))
        a = max(0, int(round((end - window_s - t0) * fs)))
        verdict = None if model_verdict is None else replace(model_verdict, false=model_verdict.false[a:b])
        window = analyse_ctg(fhr[a:b], None if uc is None else uc[a:b], fs=fs,
                             mhr=None if mhr is None else mhr[a:b], t0=t0 + a / fs, th=th, qth=qth,
                             model_verdict=verdict)
        added.extend(state.add(window, end))
    return added


def follow_labour(
    fhr: np.ndarray, uc: np.ndarray | None = None, fs: float = 4.0, mhr: np.ndarray | None = None, t0: float = 0.0,
    *, window_s: float = WINDOW_S, history_s: float = HISTORY_S, first_after_s: float = 600.0,
    th: CtgThresholds = DEFAULT_CTG, qth: SignalQualityThresholds = DEFAULT_QUALITY,
    model_verdict: ModelVerdict | None = None,
) -> Iterator[tuple[float, LabourFigo]]:
    """A recording measured minute by minute, as the stream measures it: ``(minute end, state)`` after each.

    The state is the same object each time (advanced in place). ``model_verdict`` covers the whole recording.
    """
    state = LabourFigo(history_s=history_s, th=th)
    fhr = np.asarray(fhr, dtype=float)
    for end in minute_ends(t0, t0 + fhr.size / fs, first_after_s):
        measure_through(state, fhr, uc, fs, mhr, t0, end, window_s=window_s, first_after_s=first_after_s,
                        th=th, qth=qth, model_verdict=model_verdict)
        yield end, state


def analyse_labour(
    fhr: np.ndarray, uc: np.ndarray | None = None, fs: float = 4.0, mhr: np.ndarray | None = None, t0: float = 0.0,
    **kwargs: Any,
) -> CtgAnalysis | None:
    """The whole-labour analysis at the end of a recording (the batch form of the stream's; None if < 10 min)."""
    last: LabourFigo | None = None
    for _, last in follow_labour(fhr, uc, fs, mhr, t0, **kwargs):  # noqa: B007 (the state after the last minute)
        continue
    return None if last is None else last.analysis()
