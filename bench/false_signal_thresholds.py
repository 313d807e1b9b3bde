"""One threshold or two (with and without a maternal value): the tuning part only.

Reads one served false-signal ONNX network out live (as the stream does, with
its verdict hold) on the FHRMA *tuning* part of the record-level split
(models/training/false_signal_data.py) and never loads the validation part. For each
tuning specificity floor it prints the thresholds ``choose_thresholds`` picks,
one for every second and a separate pair, with their pooled figures and where
the false positives lie (seconds with and without a maternal value). Then the
pair at the last floor against the single threshold at the first (v7 as served:
one threshold, floor 0.99), with 95% intervals of the change from resampling
whole recordings. It is how v8's read-out was chosen
(docs/EVALUATION.md, "False-signal model v8")::

    python bench/false_signal_thresholds.py --fhrma-dir ../shared/data/fhrma-fs \
        --onnx infra/triton/model_repository/ctg_false_signal/8/model.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.scoring import SampleConfusion, recording_change_intervals  # noqa: E402
from models.serving.false_signal_features import MHR_VALID, FalseSignalThresholds, to_samples  # noqa: E402
from models.training.false_signal import (  # noqa: E402
    choose_thresholds,
    onnx_judge,
    predict_live,
    score_recording,
)
from models.training.false_signal_data import FalseSignalRecording, annotated_names, load_fhrma, split_names  # noqa: E402


def per_recording(records: list[FalseSignalRecording], probs: list[np.ndarray],
                  thresholds: FalseSignalThresholds) -> list[SampleConfusion]:
    out = []
    for r, p in zip(records, probs):
        c = SampleConfusion()
        score_recording(c, thresholds.false_seconds(p, r.features), r)
        out.append(c)
    return out


def pooled(confusions: list[SampleConfusion]) -> SampleConfusion:
    total = SampleConfusion()
    for c in confusions:
        total.merge(c)
    return total


def false_positives_by_maternal(records: list[FalseSignalRecording], probs: list[np.ndarray],
                                thresholds: FalseSignalThresholds) -> dict[str, int]:
    """Fetal samples judged false, split by whether their second had a maternal value."""
    out = {"with_maternal": 0, "without_maternal": 0}
    for r, p in zip(records, probs):
        judged = to_samples(thresholds.false_seconds(p, r.features), r.fhr.size)
        maternal = to_samples(r.features[:, MHR_VALID] > 0, r.fhr.size)
        fp = judged & (r.labels == 0) & (r.fhr > 0)
        out["with_maternal"] += int((fp & maternal).sum())
        out["without_maternal"] += int((fp & ~maternal).sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fhrma-dir", type=Path, required=True)
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--delay-s", type=int, default=60)
    ap.add_argument("--cadence-s", type=int, default=60)
    ap.add_argument("--context-s", type=int, default=511, help="the network's reach either way (served config)")
    ap.add_argument("--floors", default="0.99,0.995")
    ap.add_argument("--split-seed", type=int, default=0)
    args = ap.parse_args()
    tuning = load_fhrma(args.fhrma_dir, split_names(annotated_names(args.fhrma_dir), args.split_seed)["tuning"])
    judge = onnx_judge(args.onnx)
    probs = [predict_live(judge, r.features, args.cadence_s, args.context_s, delay_s=args.delay_s) for r in tuning]
    chosen_rows: list[FalseSignalThresholds] = []
    for floor in (float(f) for f in args.floors.split(",")):
        for separate in (False, True):
            chosen = choose_thresholds(probs, tuning, floor, separate_maternal=separate)
            thresholds = FalseSignalThresholds.from_dict(chosen)
            c = pooled(per_recording(tuning, probs, thresholds))
            print(json.dumps({"floor": floor, "separate": separate, **thresholds.as_dict(), "f1": round(c.f1, 4),
                              "specificity": round(c.specificity, 4), "sensitivity": round(c.sensitivity, 4),
                              "false_minutes_caught": round(c.minutes_caught_fraction, 4),
                              "false_positives": false_positives_by_maternal(tuning, probs, thresholds)}))
            chosen_rows.append(thresholds)
    single, pair = per_recording(tuning, probs, chosen_rows[0]), per_recording(tuning, probs, chosen_rows[-1])
    was, now, change = pooled(single), pooled(pair), recording_change_intervals(single, pair)
    print(json.dumps({"last_pair_against_first_single": {
        "specificity_change": round(now.specificity - was.specificity, 4),
        "specificity_change_interval_95": change["specificity"],
        "f1_change": round(now.f1 - was.f1, 4), "f1_change_interval_95": change["f1"],
        "recordings_with_fewer_false_positives": sum(b.fp < a.fp for a, b in zip(single, pair)),
        "with_more": sum(b.fp > a.fp for a, b in zip(single, pair))}}))


if __name__ == "__main__":
    main()
