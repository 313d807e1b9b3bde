"""Alert burden: what the stream would raise on real CTU-UHB recordings, per monitored hour."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from detectors.ctg import in_progress_deceleration
from detectors.findings import Finding, Severity

# -- Alert burden: what the stream would raise on real recordings ------------------

#: Findings of one kind closer than this are one alert episode: the alert store keeps
#: an episode open while its findings go on and does not raise it again within its
#: quiet time (15 min, ``CTGWATCH_SUPPRESS_AFTER_RESOLVE_S``) after a resolution.
EPISODE_GAP_S = 900.0
#: Outcome groups of the alert-burden table (normal outcome as the models' training uses it).
NORMAL_OUTCOME = "normal outcome (pH >= 7.20, Apgar5 >= 7)"
ACIDAEMIA = "acidaemia (pH < 7.05)"


def alert_episodes(findings: Iterable[Finding], gap_s: float = EPISODE_GAP_S) -> dict[str, list[tuple[float, float, int]]]:
    """Per finding kind, the alert episodes (start, end, worst severity) the findings would raise.

    As the stream: only advisory or worse, and no deceleration still in progress.
    """
    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for f in findings:
        if f.severity >= Severity.ADVISORY and not in_progress_deceleration(f):
            spans[f.kind].append((f.start_s, f.end_s, int(f.severity)))
    episodes: dict[str, list[tuple[float, float, int]]] = {}
    for kind, items in spans.items():
        merged: list[tuple[float, float, int]] = []
        for start, end, sev in sorted(items):
            if merged and start <= merged[-1][1] + gap_s:
                s0, e0, v0 = merged[-1]
                merged[-1] = (s0, max(e0, end), max(v0, sev))
            else:
                merged.append((start, end, sev))
        episodes[kind] = merged
    return episodes


@dataclass
class Burden:
    records: int = 0
    hours: float = 0.0
    episodes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    urgent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    records_with_urgent: int = 0


def alert_burden(directory: Path, limit: int | None = None) -> dict[str, Burden]:
    """Alert episodes per monitored hour on CTU-UHB records, by outcome group, as the stream would raise them."""
    from stream.evaluation.simulated import replay_analyses
    from stream.sources.recordings import NORMAL_APGAR5, NORMAL_PH, list_records, read_recording

    groups = {NORMAL_OUTCOME: Burden(), ACIDAEMIA: Burden()}
    for name in list_records(directory)[:limit]:
        rec = read_recording(name, directory)
        apgar5 = rec.outcome.get("Apgar5")
        if rec.ph is None:
            continue
        if rec.ph >= NORMAL_PH and isinstance(apgar5, (int, float)) and apgar5 >= NORMAL_APGAR5:
            group = groups[NORMAL_OUTCOME]
        elif rec.ph < 7.05:
            group = groups[ACIDAEMIA]
        else:
            continue
        findings = [f for a in replay_analyses(rec.fhr, rec.uc, rec.fs) for f in a.findings]
        episodes = alert_episodes(findings)
        group.records += 1
        group.hours += rec.fhr.size / rec.fs / 3600.0
        for kind, eps in episodes.items():
            group.episodes[kind] += len(eps)
            group.urgent[kind] += sum(1 for _, _, sev in eps if sev >= Severity.URGENT)
        group.records_with_urgent += any(sev >= Severity.URGENT for eps in episodes.values() for _, _, sev in eps)
    return groups


def burden_markdown(groups: dict[str, Burden], command: str) -> str:
    kinds = sorted({k for g in groups.values() for k in g.episodes},
                   key=lambda k: -groups[NORMAL_OUTCOME].episodes.get(k, 0) / max(groups[NORMAL_OUTCOME].hours, 1e-9))
    head = " | ".join(f"{name}: alerts/h | urgent or worse/h" for name in groups)
    lines = [
        f"Command: `{command}`. Each CTU-UHB record is replayed as the stream analyses it (a 30-min history "
        "every minute from minute 10); the findings of advisory severity or worse become alert episodes, one "
        f"per kind until {EPISODE_GAP_S / 60:.0f} min pass without a finding of that kind (the alert store's "
        "quiet time), decelerations still in progress excepted. Rates are per monitored hour of one patient; "
        "the anomaly models are not included. "
        + "; ".join(f"{name}: {g.records} records, {g.hours:.0f} h, {g.records_with_urgent} with an urgent "
                    f"alert or worse" for name, g in groups.items()) + ".",
        "",
        f"| alert kind | {head} |",
        "|---|" + "---|---|" * len(groups),
    ]

    def rate(count: int, hours: float) -> str:
        return f"{count / hours:.2f}" if hours else "-"

    for kind in kinds:
        cells = " | ".join(f"{rate(g.episodes.get(kind, 0), g.hours)} | {rate(g.urgent.get(kind, 0), g.hours)}"
                           for g in groups.values())
        lines.append(f"| {kind} | {cells} |")
    totals = " | ".join(f"**{rate(sum(g.episodes.values()), g.hours)}** | **{rate(sum(g.urgent.values()), g.hours)}**"
                        for g in groups.values())
    lines.append(f"| all kinds | {totals} |")
    return "\n".join(lines)
