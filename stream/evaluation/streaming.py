"""A recording replayed as the stream sees it, and the alarms a policy would give on it.

:func:`stream_observations` yields what the worker's sources would report: the
per-packet rules every second (:mod:`detectors.fast`, with the baseline of the
last analysis) and the whole-labour FIGO analysis (:mod:`detectors.labour`:
each minute measured once, the class refreshed every ``step_s`` from minute 10
with the per-packet rules' deceleration in progress), as
:class:`stream.worker.pipeline.Pipeline` does. :class:`AlarmLog`
runs the same :class:`~stream.alarms.tracker.PatientAlarms` the worker runs
and counts what a ward would see: alarm episodes per problem (a new episode
only after ``episode_gap_s`` without that alarm, the alert store's quiet time),
their priorities, and notice episodes per kind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from detectors.ctg import CtgAnalysis, in_progress_deceleration
from detectors.fast import FastRuleState
from detectors.findings import Finding
from detectors.labour import HISTORY_S, WINDOW_S, LabourFigo, measure_through
from stream.alarms.policy import AlarmPolicy, Priority, Problem, Source
from stream.alarms.tracker import AlarmState, PatientAlarms

#: Consecutive per-packet observations with nothing to report are passed on every this many seconds
#: only (they can only end a condition, which the FIGO analysis also does): a 20-fold saving, the
#: clearing of a condition may come up to this much later than in the stream.
QUIET_FAST_EVERY_S = 10


def stream_observations(
    fhr: np.ndarray, uc: np.ndarray | None, fs: float, mhr: np.ndarray | None = None, *,
    step_s: float = 15.0, first_s: float = 600.0, window_s: float = WINDOW_S, history_s: float = HISTORY_S,
    packet_s: float = 1.0, on_analysis: Callable[[float, CtgAnalysis], None] | None = None,
) -> Iterator[tuple[Source, float, list[Finding]]]:
    """(source, recording time, findings) in time order, as the worker's sources would report them.

    ``on_analysis(t, analysis)`` sees each refresh's whole-labour analysis, as the station shows it
    (the compromise risk reads it every minute: :mod:`models.compromise_data`).
    """
    per_packet = int(round(packet_s * fs))
    fast = FastRuleState(fs=fs)
    figo = LabourFigo(history_s=history_s)
    baseline: float | None = None
    next_analysis = first_s
    quiet = False
    for start in range(0, fhr.size - per_packet + 1, per_packet):
        t_end = (start + per_packet) / fs
        found = fast.update(fhr[start:start + per_packet], start / fs, baseline)
        if found or not quiet or t_end % QUIET_FAST_EVERY_S < packet_s:
            yield Source.FAST, t_end, found
        quiet = not found
        if t_end >= next_analysis:
            end = start + per_packet
            measure_through(figo, fhr[:end], uc, fs, mhr, 0.0, t_end, window_s=window_s, first_after_s=first_s)
            a = figo.analysis(ongoing_deceleration_s=fast.below_s, now=t_end)
            if a is not None:
                if on_analysis is not None:
                    on_analysis(t_end, a)
                if a.baseline is not None and a.baseline.value is not None:
                    baseline = float(a.baseline.value)
                yield Source.FIGO, t_end, [f for f in a.findings if not in_progress_deceleration(f)]
            next_analysis += step_s


@dataclass
class AlarmLog:
    """What one policy shows on one recording: alarm and notice episodes, and when alarms were on."""

    policy: AlarmPolicy
    episode_gap_s: float = 900.0
    tracker: PatientAlarms = field(init=False)
    alarm_episodes: list[tuple[Problem, float, Priority]] = field(default_factory=list)  # problem, start, worst
    notice_episodes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    alarm_times: list[float] = field(default_factory=list)  # observation times with any alarm on
    alarm_reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # reason kinds at episode starts
    _last_alarm: dict[Problem, float] = field(default_factory=dict)
    _episode_index: dict[Problem, int] = field(default_factory=dict)
    _notices_on: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.tracker = PatientAlarms(self.policy)

    def observe(self, source: Source, t: float, findings: list[Finding]) -> AlarmState:
        state = self.tracker.observe(source, t, findings)
        for problem, alarm in state.alarms.items():
            last = self._last_alarm.get(problem)
            if last is None or t - last > self.episode_gap_s:
                self._episode_index[problem] = len(self.alarm_episodes)
                self.alarm_episodes.append((problem, t, alarm.priority))
                for reason in alarm.reasons:
                    self.alarm_reasons[reason.kind] += 1
            else:
                i = self._episode_index[problem]
                p, start, worst = self.alarm_episodes[i]
                self.alarm_episodes[i] = (p, start, max(worst, alarm.priority))
            self._last_alarm[problem] = t
        if state.alarms:
            self.alarm_times.append(t)
        on = {n.kind for n in state.notices if not n.qualifying}
        for kind in on - self._notices_on:
            self.notice_episodes[kind] += 1
        self._notices_on = on
        return state
