"""Readers and scoring of the real-data evaluations (FHRMA files written by the test)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from stream.evaluation.quality import Confusion, evaluate_fhrma
from stream.sources.fhrma import FHRM_DTYPE, label_samples, read_fhrm


def write_fhrm(path, fhr1, fhr2, mhr) -> None:
    rec = np.zeros(len(fhr1), dtype=FHRM_DTYPE)
    rec["fhr1"], rec["fhr2"], rec["mhr"] = np.round(np.array(fhr1) * 4), np.round(np.array(fhr2) * 4), np.round(np.array(mhr) * 4)
    path.write_bytes(struct.pack("<I", 1_700_000_000) + rec.tobytes())


def test_label_samples_uses_one_based_inclusive_spans() -> None:
    labels = label_samples(10, [[1, 3]], [[5, 6]])
    assert labels.tolist() == [0, 0, 0, -1, 1, 1, -1, -1, -1, -1]


def test_read_fhrm_picks_the_sensor_with_signal(tmp_path) -> None:
    n = 40
    write_fhrm(tmp_path / "a.fhrm", [0] * n, [140.25] * n, [80.5] * n)
    rec = read_fhrm(tmp_path / "a.fhrm")
    assert rec.fhr[0] == 140.25 and rec.mhr[0] == 80.5 and rec.fhr.size == n


def test_confusion_metrics() -> None:
    c = Confusion()
    c.add(np.array([True, True, False, False]), np.array([True, False, True, False]))
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 1)
    assert c.sensitivity == 0.5 and c.specificity == 0.5 and c.f1 == pytest.approx(0.5)


def test_maternal_capture_scored_against_marks(tmp_path) -> None:
    n = 4 * 600
    t = np.arange(n) / 4
    mhr = 85 + 5 * np.sin(2 * np.pi * t / 40)
    fhr = 140 + 4 * np.sin(2 * np.pi * t / 17)
    fhr[4 * 300 : 4 * 420] = mhr[4 * 300 : 4 * 420]  # two minutes of the mother's rate
    (tmp_path / "DopMHR").mkdir()
    write_fhrm(tmp_path / "DopMHR" / "DopMHRTrain0001.fhrm", fhr, np.zeros(n), mhr)
    (tmp_path / "annotations.json").write_text(json.dumps({"DopMHRTrain0001.fhrm": {
        "true_fhr": [[1, 1200], [1681, n]], "false_fhr": [[1201, 1680]]}}))
    results, used = evaluate_fhrma(tmp_path)
    c = results["all"]
    assert used == 1 and c.sensitivity > 0.9 and c.specificity > 0.99
    assert c.false_minutes == 2 and c.false_minutes_caught == 2


def test_alarm_log_counts_one_episode_per_problem_within_the_quiet_time() -> None:
    from detectors.findings import Finding, Severity
    from stream.alarms.policy import AlarmPolicy, Priority, Problem, Source
    from stream.evaluation.streaming import AlarmLog

    def f(kind, start, end, sev=Severity.URGENT):
        return Finding(kind, sev, start, end, "rule", "sentence", {})

    log = AlarmLog(AlarmPolicy(overrides={"ctg_pathological": {"qualify_s": 0, "clear_s": 0}}), episode_gap_s=900)
    log.observe(Source.FIGO, 100, [f("ctg_pathological", 0, 100)])
    log.observe(Source.FIGO, 160, [])  # cleared
    log.observe(Source.FAST, 500, [f("prolonged_deceleration", 200, 500, Severity.EMERGENCY)])  # < 15 min later: same episode, higher
    log.observe(Source.FAST, 501, [])
    log.observe(Source.FIGO, 2000, [f("ctg_pathological", 1000, 2000)])  # > 15 min after: a new episode
    log.observe(Source.FIGO, 2015, [f("ctg_suspicious", 1000, 2015, Severity.ADVISORY)])
    assert log.alarm_episodes == [(Problem.CTG, 100, Priority.HIGH), (Problem.CTG, 2000, Priority.MEDIUM)]
    assert log.notice_episodes == {"ctg_suspicious": 1} and log.alarm_reasons["ctg_pathological"] == 2


def test_alert_burden_on_real_records() -> None:
    from stream.core.settings import Settings
    from stream.evaluation.burden import ACIDAEMIA, NORMAL_OUTCOME, alert_burden, burden_markdown

    directory = Settings().ctu_uhb_dir
    if not (directory / "1001.hea").is_file():
        pytest.skip("CTU-UHB records not present in ../shared/data")
    result = alert_burden(directory, limit=3, processes=1, step_s=120.0)
    groups = result["policy"]
    counted = groups[NORMAL_OUTCOME].records + groups[ACIDAEMIA].records
    assert 1 <= counted <= 3 and groups[NORMAL_OUTCOME].hours > 0.5
    table = burden_markdown(result, "ctgwatch evaluate burden --limit 3 --step 120", 120.0)
    assert "| normal outcome" in table and "| notice |" in table
