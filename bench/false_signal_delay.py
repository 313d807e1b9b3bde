"""How much a held-back verdict helps the served false-signal network: the tuning part only.

The stream scores each patient's last 10 min every 60 s. A verdict on the
newest seconds of the window has no future behind it; holding it back for
``delay`` seconds (the rules judge those seconds meanwhile) gives every
second's first model verdict ``delay`` to ``delay + 60`` s of future. This
script reads one served ONNX network out live with several delays and
thresholds on the FHRMA *tuning* part of the record-level split
(models/training/false_signal_data.py) and never loads the validation part: it is how
``verdict_delay_s`` was chosen for v7 (docs/EVALUATION.md)::

    python bench/false_signal_delay.py --fhrma-dir ../shared/data/fhrma-fs \
        --onnx infra/triton/model_repository/ctg_false_signal/7/model.onnx

Prints one JSON line per (delay, threshold): pooled per-sample F1 (all and
Doppler) and specificity, and the settled read-out (the whole recording as
context) for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.scoring import SampleConfusion  # noqa: E402
from models.training.false_signal import onnx_judge, predict_live, predict_settled, score_recording  # noqa: E402
from models.training.false_signal_data import FalseSignalRecording, annotated_names, load_fhrma, split_names  # noqa: E402


def pooled(records: list[FalseSignalRecording], probs: list, threshold: float, subset: str | None = None) -> SampleConfusion:
    """Per-sample confusion over ``records`` (or one subset of them) at ``threshold``."""
    c = SampleConfusion()
    for r, p in zip(records, probs):
        if subset is None or r.subset == subset:
            score_recording(c, p >= threshold, r)
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fhrma-dir", type=Path, required=True)
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--delays", default="0,15,30,60,120")
    ap.add_argument("--thresholds", default="0.48,0.53,0.55,0.6,0.65,0.7")
    ap.add_argument("--cadence-s", type=int, default=60)
    ap.add_argument("--context-s", type=int, default=511, help="the network's reach either way (served config)")
    ap.add_argument("--split-seed", type=int, default=0)
    args = ap.parse_args()
    tuning = load_fhrma(args.fhrma_dir, split_names(annotated_names(args.fhrma_dir), args.split_seed)["tuning"])
    judge = onnx_judge(args.onnx)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    readings: list[tuple[str, list]] = [
        (f"live, delay {d} s", [predict_live(judge, r.features, args.cadence_s, args.context_s, delay_s=d) for r in tuning])
        for d in (int(x) for x in args.delays.split(","))]
    readings.append(("settled", [predict_settled(judge, r.features) for r in tuning]))
    for name, probs in readings:
        for t in thresholds:
            c, dop = pooled(tuning, probs, t), pooled(tuning, probs, t, "DopMHR")
            print(json.dumps({"reading": name, "threshold": t, "f1": round(c.f1, 4), "doppler_f1": round(dop.f1, 4),
                              "specificity": round(c.specificity, 4), "sensitivity": round(c.sensitivity, 4),
                              "tuning_recordings": len(tuning)}), flush=True)


if __name__ == "__main__":
    main()
