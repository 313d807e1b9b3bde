"""Readers and scoring of the real-data evaluations (FHRMA files written by the test)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from stream.evaluation_real import FHRM_DTYPE, Confusion, evaluate_fhrma, label_samples, read_fhrm


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
