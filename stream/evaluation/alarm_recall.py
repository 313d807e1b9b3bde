"""Does the alarm policy still alarm on every clinically significant event? Simulator scenarios, with delays.

Each standard CTG scenario (:func:`stream.sources.ctg_simulator.standard_scenarios`)
and each maternal deterioration (:mod:`stream.sources.vitals_simulator`) is
replayed as the stream sees it through the policy; an injected event counts as
caught when an alarm of its problem is on between its start and
``grace_s`` after its end, and its delay is the time from its start to that
alarm. The held-out seeds (30-34) were not looked at while choosing the policy.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from detectors.meows import VitalsObservation as MeowsObs
from detectors.meows import score_observation, vitals_trend
from stream.alarms.policy import AlarmPolicy, Problem, Source
from stream.evaluation.streaming import AlarmLog, stream_observations
from stream.sources.ctg_simulator import simulate_ctg, standard_scenarios
from stream.sources.vitals_simulator import simulate_vitals, standard_vitals_scenarios

#: Injected events a clinician must act on, and the problem whose alarm must come (the issue's list).
SIGNIFICANT = {
    "prolonged_deceleration": Problem.CTG, "bradycardia": Problem.CTG, "tachycardia": Problem.CTG,
    "sinusoidal": Problem.CTG, "repetitive_late_decelerations": Problem.CTG, "reduced_variability": Problem.CTG,
    "maternal_preeclampsia": Problem.MATERNAL, "maternal_sepsis": Problem.MATERNAL,
    "maternal_haemorrhage": Problem.MATERNAL, "maternal_hypoxaemia": Problem.MATERNAL,
}
HELD_OUT_SEEDS = (30, 31, 32, 33, 34)


@dataclass
class Recall:
    caught: int = 0
    events: int = 0
    delays_s: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.events if self.events else float("nan")

    def delay_text(self) -> str:
        if not self.delays_s:
            return "-"
        return f"{statistics.median(self.delays_s) / 60:.1f} min (max {max(self.delays_s) / 60:.1f})"


def _score(results: dict[str, Recall], kind: str, on: list[tuple[float, Problem]], start: float, end: float) -> None:
    """Count one injected event: caught when its problem's alarm is on between its start and ``end``."""
    hits = [t for t, p in on if p is SIGNIFICANT[kind] and start <= t <= end]
    results[kind].events += 1
    if hits:
        results[kind].caught += 1
        results[kind].delays_s.append(min(hits) - start)


#: Patterns that need an alarm only past FIGO 2015's duration (shorter, they make the CTG suspicious: a notice).
PATHOLOGICAL_AFTER_S = {"reduced_variability": 50 * 60.0}


def _ctg_events(sim) -> list[tuple[str, float, float]]:
    events = [(e.kind, e.start_s, e.end_s) for e in sim.events
              if e.kind in SIGNIFICANT and e.end_s - e.start_s > PATHOLOGICAL_AFTER_S.get(e.kind, 0.0)]
    late = [e for e in sim.events if e.kind == "late_deceleration"]
    if len(late) >= 3:  # the pattern, not each deceleration: FIGO makes > 30 min of them pathological
        events.append(("repetitive_late_decelerations", late[0].start_s, late[-1].end_s))
    return events


def alarm_recall(policy: AlarmPolicy, seeds: Iterable[int] = HELD_OUT_SEEDS, grace_s: float = 600.0,
                 step_s: float = 60.0) -> tuple[dict[str, Recall], dict[str, int]]:
    """Per significant event kind its recall and delays; per scenario the alarm episodes on the normal ones."""
    results: dict[str, Recall] = defaultdict(Recall)
    false_alarms: dict[str, int] = defaultdict(int)
    for seed in seeds:
        for scenario in standard_scenarios():
            sim = simulate_ctg(scenario, seed=seed)
            log = AlarmLog(policy)
            on: list[tuple[float, Problem]] = []
            for source, t, findings in stream_observations(sim.fhr, sim.uc, sim.fs, sim.mhr, step_s=step_s):
                on += [(t, p) for p in log.observe(source, t, findings).alarms]
            events = _ctg_events(sim)
            for kind, start, end in events:
                _score(results, kind, on, start, end + grace_s)
            if not events:
                false_alarms[f"ctg:{scenario.name}"] += len(log.alarm_episodes)
        for vitals in standard_vitals_scenarios():
            sim_v = simulate_vitals(vitals, seed=seed)
            log = AlarmLog(policy)
            on = []
            history: list[MeowsObs] = []
            for sample in sim_v.samples:
                history.append(MeowsObs(t=sample.t, **cast(dict[str, Any], sample.values)))
                findings = score_observation(history[-1]).findings + vitals_trend(history)
                on += [(sample.t, p) for p in log.observe(Source.VITALS, sample.t, findings).alarms]
            for e in sim_v.events:
                _score(results, e.kind, on, e.start_s, e.end_s + grace_s)
            if not sim_v.events:
                false_alarms[f"vitals:{vitals.name}"] += len(log.alarm_episodes)
    return dict(results), dict(false_alarms)


def recall_markdown(results: dict[str, Recall], false_alarms: dict[str, int], command: str, seeds: Iterable[int]) -> str:
    lines = [
        f"Command: `{command}`. Held-out simulator seeds {', '.join(map(str, seeds))}; an event is caught when "
        "an alarm of its problem is on between its start and 10 min after its end; the delay runs from its start "
        "(a pattern such as repetitive late decelerations is pathological only after 30 min, FIGO 2015).",
        "",
        "| event | problem | caught | recall | alarm delay, median (max) |",
        "|---|---|---|---|---|",
    ]
    for kind in SIGNIFICANT:
        r = results.get(kind, Recall())
        lines.append(f"| {kind} | {SIGNIFICANT[kind]} | {r.caught}/{r.events} | {r.recall:.2f} | {r.delay_text()} |")
    lines += ["", "Alarm episodes on scenarios without a significant clinical event (the artefacts scenario's are the "
              "technical alarms for its injected maternal-HR capture): " + ", ".join(
        f"{k} {v}" for k, v in sorted(false_alarms.items())) + "."]
    return "\n".join(lines)
