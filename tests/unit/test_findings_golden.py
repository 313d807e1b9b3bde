"""Clinical behaviour is fixed: findings and alarms on fixed records equal a committed golden file.

Why: capacity work (the capacity work: incremental or batched FIGO analysis, a cheaper
packet path) must not change what a clinician is shown. This test replays the
simulator's standard scenarios (seed 7, 1 h each; no data set needed) through
the stream's own observation order (`stream.evaluation.streaming`: the
per-packet rules every second, the FIGO analysis of the last 30 min every 60 s)
and the default alarm policy, and compares every finding (kind, severity,
start, end), every analysis' classification and baseline, and every alarm
episode with `tests/golden/findings.json`.

A deliberate clinical change regenerates the file, reviewed in the diff:
``CTGWATCH_UPDATE_GOLDEN=1 pytest tests/unit/test_findings_golden.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stream.alarms.policy import AlarmPolicy
from stream.evaluation.streaming import AlarmLog, Source, stream_observations
from stream.sources.ctg_simulator import simulate_ctg, standard_scenarios

GOLDEN = Path(__file__).parents[1] / "golden" / "findings.json"
SEED = 7
STEP_S = 60.0


def record_behaviour(scenario_name: str) -> dict:
    """What the stream shows for one simulated record: findings, analyses, alarm episodes."""
    scenario = next(s for s in standard_scenarios() if s.name == scenario_name)
    sim = simulate_ctg(scenario, seed=SEED)
    log = AlarmLog(AlarmPolicy())
    findings: set[tuple] = set()
    analyses: list[list] = []
    for source, t, found in stream_observations(sim.fhr, sim.uc, sim.fs, sim.mhr, step_s=STEP_S):
        log.observe(source, t, found)
        for f in found:
            findings.add((f.kind, str(f.severity), round(f.start_s, 2), round(f.end_s, 2)))
        if source is Source.FIGO:
            kinds = sorted({f.kind for f in found})
            analyses.append([round(t, 1), len(found), kinds])
    return {
        "findings": sorted(list(f) for f in findings),
        "figo_analyses": analyses,
        "alarm_episodes": [[str(p), round(t, 1), str(prio)] for p, t, prio in log.alarm_episodes],
        "notice_episodes": dict(sorted(log.notice_episodes.items())),
    }


def current() -> dict:
    return {s.name: record_behaviour(s.name) for s in standard_scenarios()}


def test_findings_and_alarms_on_fixed_records_equal_the_golden_file() -> None:
    now = current()
    if os.environ.get("CTGWATCH_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now, indent=0, sort_keys=True) + "\n")
        pytest.skip(f"golden file rewritten: {GOLDEN}")
    golden = json.loads(GOLDEN.read_text())
    assert sorted(now) == sorted(golden)
    for name in golden:
        for part in ("findings", "figo_analyses", "alarm_episodes", "notice_episodes"):
            assert json.loads(json.dumps(now[name][part])) == golden[name][part], f"{name}: {part} changed"
    assert sum(len(r["findings"]) for r in golden.values()) > 100  # the records exercise the detectors
    assert any(r["alarm_episodes"] for r in golden.values())
