"""Alarm burden on real CTU-UHB labours, and what each choice of qualification time costs.

Each record is replayed as the stream sees it (:mod:`stream.evaluation.streaming`:
per-packet rules every second, the whole-labour FIGO analysis every
``step_s`` from minute 10, and the compromise risk every minute when a
stacker is installed) through the same alarm policy the worker applies.
Counted per monitored patient-hour, by outcome group: alarm episodes (those
needing acknowledgement), high-priority ones, notices; the share of records
with any alarm and with an alarm in the last 60 min before delivery (the end
of the recording), and the time from the first alarm to delivery. The
trade-off table re-runs the policy with other qualification times on the same
observations.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream.alarms.policy import AlarmPolicy, Priority
from stream.evaluation.streaming import AlarmLog, stream_observations

#: Outcome groups (normal outcome as the models' training uses it; acidaemia as docs/CLINICAL.md).
NORMAL_OUTCOME = "normal outcome (pH >= 7.20, Apgar5 >= 7)"
ACIDAEMIA = "acidaemia (pH < 7.05)"
PH_715 = "pH < 7.15"
GROUP_KEYS = {NORMAL_OUTCOME: "normal_outcome", ACIDAEMIA: "acidaemia", PH_715: "ph_below_7_15"}
#: An alarm of one problem counts again only after this long without it (the alert store's
#: quiet time after a resolution, ``CTGWATCH_SUPPRESS_AFTER_RESOLVE_S``).
EPISODE_GAP_S = 900.0
LAST_HOUR_S = 3600.0
#: Qualification times of the pathological-CTG alarm weighed against each other (seconds).
CTG_QUALIFY_CANDIDATES = (0.0, 300.0, 600.0, 900.0, 1200.0, 1800.0)
SIGNAL_QUALIFY_CANDIDATES = (600.0, 1200.0, 1800.0)


@dataclass
class GroupBurden:
    records: int = 0
    hours: float = 0.0
    alarms: int = 0
    high: int = 0
    by_problem: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_reason: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    notices: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    with_alarm: int = 0
    with_problem: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    with_physiological: int = 0  # records with a CTG or maternal alarm (technical ones left out)
    with_alarm_last_hour: int = 0
    first_alarm_to_delivery_s: list[float] = field(default_factory=list)

    def add(self, log: AlarmLog, hours: float, end_s: float) -> None:
        self.records += 1
        self.hours += hours
        self.alarms += len(log.alarm_episodes)
        self.high += sum(1 for _, _, worst in log.alarm_episodes if worst >= Priority.HIGH)
        for problem, _, _ in log.alarm_episodes:
            self.by_problem[str(problem)] += 1
        for name in {str(p) for p, _, _ in log.alarm_episodes}:
            self.with_problem[name] += 1
        self.with_physiological += any(p.condition == "physiological" for p, _, _ in log.alarm_episodes)
        for kind, n in log.alarm_reasons.items():
            self.by_reason[kind] += n
        for kind, n in log.notice_episodes.items():
            self.notices[kind] += n
        if log.alarm_episodes:
            self.with_alarm += 1
            self.first_alarm_to_delivery_s.append(end_s - log.alarm_episodes[0][1])
        self.with_alarm_last_hour += any(t >= end_s - LAST_HOUR_S for t in log.alarm_times)

    def summary(self) -> dict[str, Any]:
        per_h = (lambda n: round(n / self.hours, 3)) if self.hours else (lambda n: None)
        share = self.with_alarm / self.records if self.records else None
        low, high = wilson(self.with_alarm, self.records)
        return {
            "records": self.records, "hours": round(self.hours, 1),
            "alarms_per_hour": per_h(self.alarms), "high_priority_per_hour": per_h(self.high),
            "share_with_alarm": None if share is None else round(share, 3),
            "share_with_alarm_95ci": [round(low, 3), round(high, 3)],
            "share_with_physiological_alarm": round(self.with_physiological / self.records, 3) if self.records else None,
            "share_with_alarm_last_hour": round(self.with_alarm_last_hour / self.records, 3) if self.records else None,
            "median_first_alarm_to_delivery_min": (
                round(statistics.median(self.first_alarm_to_delivery_s) / 60, 1) if self.first_alarm_to_delivery_s else None),
            "notices_per_hour": per_h(sum(self.notices.values())),
        }


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (few records: say how sure the share is)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def candidate_policies(base: AlarmPolicy | None = None, *, sweep: bool = True) -> dict[str, AlarmPolicy]:
    """The policy in force, and (``sweep``) the same with other qualification times."""
    base = base or AlarmPolicy()
    out = {"policy": base}
    if not sweep:
        return out
    overrides = {k: {"qualify_s": r.qualify_s} for k, r in base.rules.items()}
    for q in CTG_QUALIFY_CANDIDATES:
        out[f"ctg_pathological.qualify_s={q:.0f}"] = AlarmPolicy(overrides={**overrides, "ctg_pathological": {"qualify_s": q}})
    for q in SIGNAL_QUALIFY_CANDIDATES:
        out[f"signal_loss.qualify_s={q:.0f}"] = AlarmPolicy(overrides={**overrides, "signal_loss": {"qualify_s": q}})
    return out


def _groups_of(ph: float | None, apgar5: Any) -> list[str]:
    from stream.sources.recordings import ACIDAEMIA_PH, NORMAL_APGAR5, NORMAL_PH

    if ph is None:
        return []
    groups = []
    if ph >= NORMAL_PH and isinstance(apgar5, (int, float)) and apgar5 >= NORMAL_APGAR5:
        groups.append(NORMAL_OUTCOME)
    if ph < ACIDAEMIA_PH:
        groups.append(ACIDAEMIA)
    if ph < 7.15:
        groups.append(PH_715)
    return groups


@dataclass
class RiskSource:
    """Where the replay takes the compromise risk from (:mod:`stream.evaluation.risk_replay`): the
    cross-fitting's out-of-fold risks for the records it covers, the served models for any other."""

    stacker: Any  # models.serving.compromise.Stacker
    oof: dict[str, dict[str, Any]] | None
    repository: Path


def _record_risk(risk: RiskSource | None, rec: Any) -> Any:
    from stream.evaluation.risk_replay import oof_record, served_record

    if risk is None:
        return None
    if risk.oof is not None and rec.record_id in risk.oof:
        return oof_record(risk.stacker, risk.oof[rec.record_id])
    return served_record(risk.stacker, risk.repository, rec.fhr, rec.uc, rec.fs)


def _one_record(args: tuple[Path, str, dict[str, AlarmPolicy], float, RiskSource | None]
                ) -> tuple[list[str], float, float, dict[str, AlarmLog], tuple[float | None, str]]:
    """One record replayed through every policy: its groups, hours, end, logs, and (risk at delivery, its source)."""
    directory, name, policies, step_s, risk = args
    from stream.alarms.policy import Source
    from stream.sources.recordings import read_recording

    rec = read_recording(name, directory)
    groups = _groups_of(rec.ph, rec.outcome.get("Apgar5"))
    if not groups:
        return [], 0.0, 0.0, {}, (None, "")
    logs = {key: AlarmLog(policy, EPISODE_GAP_S) for key, policy in policies.items()}
    record_risk = _record_risk(risk, rec)
    pending: list[tuple[float, list]] = []  # the risk of a minute's analysis, observed right after it

    def seen(t: float, analysis: Any) -> None:
        if t % 60.0 < 1e-6:
            pending.append((t, record_risk.findings_at(t, analysis)))

    for source, t, findings in stream_observations(rec.fhr, rec.uc, rec.fs, step_s=step_s,
                                                   on_analysis=None if record_risk is None else seen):
        for log in logs.values():
            log.observe(source, t, findings)
        while pending:
            t_risk, found = pending.pop(0)
            for log in logs.values():
                log.observe(Source.MODELS, t_risk, found)
    end_s = rec.fhr.size / rec.fs
    if record_risk is None:
        return groups, end_s / 3600.0, end_s, logs, (None, "")
    kind = "out_of_fold" if record_risk.given is not None else "served"
    return groups, end_s / 3600.0, end_s, logs, (record_risk.risk_at_delivery(), kind)


def alert_burden(
    directory: Path, limit: int | None = None, *, policies: dict[str, AlarmPolicy] | None = None,
    step_s: float = 60.0, processes: int = 2, half: str | None = None, risk: RiskSource | None = None,
) -> dict[str, dict[str, GroupBurden]]:
    """Per policy, per outcome group: the burden of what the stream would show on the CTU-UHB records.

    ``half``: ``"tuning"`` (records at even positions of the listing, where the policy was chosen),
    ``"held_out"`` (odd positions, never tuned on) or None (all). ``risk``: replay the compromise-risk
    alarm too (its figures at delivery come back under the key ``"risk"``).
    """
    from stream.sources.recordings import list_records

    policies = policies or candidate_policies(sweep=False)
    result: dict[str, Any] = {key: {g: GroupBurden() for g in GROUP_KEYS} for key in policies}
    at_delivery: list[tuple[float, bool, str]] = []
    names = list_records(directory)[:limit]
    if half is not None:
        names = names[{"tuning": 0, "held_out": 1}[half]::2]
    jobs = [(directory, name, policies, step_s, risk) for name in names]
    with ProcessPoolExecutor(max_workers=max(1, processes)) as pool:
        for groups, hours, end_s, logs, (last, kind) in pool.map(_one_record, jobs, chunksize=4):
            for key, log in logs.items():
                for g in groups:
                    result[key][g].add(log, hours, end_s)
            if last is not None and groups:
                at_delivery.append((last, ACIDAEMIA in groups, kind))
    if risk is not None:
        result["risk"] = {"at_delivery": at_delivery}
    return result


def risk_summary(result: dict[str, Any]) -> dict[str, Any] | None:
    """AUC (95% bootstrap interval) and Brier score of the compromise risk at delivery for pH < 7.05."""
    from detectors.scoring import auc
    from models.training.acidaemia import bootstrap_auc_interval

    entries = result.get("risk", {}).get("at_delivery")
    if not entries:
        return None
    p = np.array([e[0] for e in entries], float)
    y = np.array([e[1] for e in entries], int)
    kinds = sorted({e[2] for e in entries})
    if not (y == 1).any() or not (y == 0).any():
        return {"auc": None, "records": len(p), "source": kinds}
    lo, hi = bootstrap_auc_interval(p, y)
    return {"auc": round(auc(p[y == 1], p[y == 0]), 3), "auc_95ci": [round(lo, 3), round(hi, 3)],
            "brier": round(float(np.mean((p - y) ** 2)), 4), "brier_prevalence": round(float(y.mean() * (1 - y.mean())), 4),
            "records": len(p), "source": kinds}


def burden_json(result: dict[str, dict[str, GroupBurden]], policy: AlarmPolicy) -> str:
    """The headline figures of the policy in force, for scripts (``ctgwatch evaluate burden --json``)."""
    groups = result["policy"]
    out: dict[str, Any] = {GROUP_KEYS[g]: b.summary() for g, b in groups.items()}
    risk = risk_summary(result)
    if risk is not None:
        out["risk"] = risk
    out["policy"] = {k: {"tier_alarm_at": None if r.alarm_at is None else str(r.alarm_at),
                         "tier_notice_at": None if r.notice_at is None else str(r.notice_at),
                         "priority": str(r.priority), "qualify_s": r.qualify_s, "clear_s": r.clear_s}
                     for k, r in sorted(policy.rules.items())}
    return json.dumps(out, indent=2)


def burden_markdown(result: dict[str, dict[str, GroupBurden]], command: str, step_s: float) -> str:
    groups = result["policy"]
    normal = groups[NORMAL_OUTCOME]
    lines = [
        f"Command: `{command}`. Every CTU-UHB record replayed as the stream sees it (per-packet rules every "
        f"second, the whole-labour FIGO analysis every {step_s:.0f} s from minute 10; the stream analyses "
        "every 15 s) through the alarm policy of `stream/alarms/policy.py`. An alarm episode is one alarm "
        f"per problem until {EPISODE_GAP_S / 60:.0f} min pass without it. Delivery is the end of the recording. "
        "Shares carry their 95% Wilson interval. Maternal vitals are not in these records. The compromise-risk "
        "alarm is replayed when a stacker is installed: out-of-fold risks for the records `ctgwatch evaluate risk` "
        "cross-fitted, the served models for any other; the autoencoder-alone notice is not replayed.",
        "",
        "| group | records | hours | alarms/h | high priority/h | share with an alarm (95% CI) | "
        "physiological (CTG, mother) only | alarm in the last 60 min | first alarm to delivery, median | notices/h |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in groups.items():
        s = g.summary()
        lo, hi = s["share_with_alarm_95ci"]
        lines.append(
            f"| {name} | {s['records']} | {s['hours']} | {s['alarms_per_hour']} | {s['high_priority_per_hour']} | "
            f"{g.with_alarm}/{g.records} = {s['share_with_alarm']} ({lo:.2f}-{hi:.2f}) | "
            f"{g.with_physiological}/{g.records} = {s['share_with_physiological_alarm']} | {s['share_with_alarm_last_hour']} | "
            f"{s['median_first_alarm_to_delivery_min']} min | {s['notices_per_hour']} |")
    lines += ["", "Per kind, per monitored hour (alarms: episodes by problem and the reasons they started with; "
              "notices: episodes by kind):", "",
              "| tier | kind | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]

    def rate(n: int, hours: float) -> str:
        return f"{n / hours:.3f}" if hours else "-"

    for problem in sorted({p for g in groups.values() for p in g.by_problem}):
        lines.append(f"| alarm | {problem} | " + " | ".join(rate(g.by_problem.get(problem, 0), g.hours) for g in groups.values()) + " |")
    for kind in sorted({k for g in groups.values() for k in g.by_reason}):
        lines.append(f"| alarm reason | {kind} | " + " | ".join(rate(g.by_reason.get(kind, 0), g.hours) for g in groups.values()) + " |")
    for kind in sorted({k for g in groups.values() for k in g.notices}, key=lambda k: -normal.notices.get(k, 0)):
        lines.append(f"| notice | {kind} | " + " | ".join(rate(g.notices.get(kind, 0), g.hours) for g in groups.values()) + " |")
    risk = risk_summary(result)
    if risk is not None:
        lines += ["", f"Compromise risk at delivery ({', '.join(risk['source'])}), pH < 7.05: AUC {risk['auc']} "
                  f"(95% CI {risk.get('auc_95ci')}), Brier {risk.get('brier')} against {risk.get('brier_prevalence')} "
                  f"for the prevalence, {risk['records']} records."]
    policies = {k: v for k, v in result.items() if k != "risk"}
    if len(policies) > 1:
        lines += ["", "Trade-off: the same records and observations, one qualification time changed at a time.", "",
                  "| policy | normal: alarms/h | normal: high/h | normal: share with alarm (physiological) | "
                  "acidaemia: share with alarm (physiological) | acidaemia: alarm in last 60 min | pH < 7.15: share with alarm |",
                  "|---|---|---|---|---|---|---|"]
        for key, gs in policies.items():
            n, a, p = (gs[g].summary() for g in (NORMAL_OUTCOME, ACIDAEMIA, PH_715))
            lines.append(f"| {key} | {n['alarms_per_hour']} | {n['high_priority_per_hour']} | {n['share_with_alarm']} "
                         f"({n['share_with_physiological_alarm']}) | {a['share_with_alarm']} ({a['share_with_physiological_alarm']}) | "
                         f"{a['share_with_alarm_last_hour']} | {p['share_with_alarm']} |")
    return "\n".join(lines)
