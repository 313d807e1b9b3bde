"""The signal-quality detector against the FHRMA experts' marks of true and false FHR (docs/EVALUATION.md).

The detector's per-sample verdict (maternal capture or halving/doubling =
false) is scored on the samples the experts marked and where the monitor
gave a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from detectors.quality import assess_quality
from detectors.scoring import SampleConfusion
from models.training.false_signal_data import subset_of
from stream.sources.fhrma import label_samples, read_fhrm

Confusion = SampleConfusion


#: The maternal-capture thresholds were tuned on the even-numbered recordings (in
#: file-name order) and are reported separately on the odd-numbered ones.
TUNING_HALF = "tuning half (even-numbered)"
HELD_OUT_HALF = "held-out half (odd-numbered)"


def rules_verdicts(directory: Path, names: list[str] | None = None, limit: int | None = None) -> Iterator[tuple]:
    """Per annotated recording, in name order: (position in the listing, subset, its maternal-HR channel,
    the rule-based detector's per-sample false verdict, the experts' per-sample labels)."""
    annotations = json.loads((directory / "annotations.json").read_text())
    wanted = set(names) if names is not None else None
    for i, (name, ann) in enumerate(sorted(annotations.items())[:limit]):
        subset = subset_of(name)
        path = directory / subset / name
        if (wanted is not None and name not in wanted) or not path.exists() or not (ann.get("true_fhr") or ann.get("false_fhr")):
            continue
        rec = read_fhrm(path)
        report = assess_quality(rec.fhr, fs=4.0, mhr=np.where(rec.mhr > 0, rec.mhr, np.nan))
        labels = label_samples(rec.fhr.size, ann.get("true_fhr", []), ann.get("false_fhr", []))
        yield i, subset, rec, report.maternal | report.ratio_error, labels


def evaluate_fhrma(directory: Path, limit: int | None = None) -> tuple[dict[str, Confusion], int]:
    """Per subset (DopMHR, ScalpECG, all): per-sample confusion of the false-signal verdict."""
    results = {"DopMHR": Confusion(), "ScalpECG": Confusion(), "all": Confusion(),
               "with maternal HR channel": Confusion(), TUNING_HALF: Confusion(), HELD_OUT_HALF: Confusion()}
    used = 0
    for i, subset, rec, predicted, labels in rules_verdicts(directory, limit=limit):
        keys = (subset, "all", TUNING_HALF if i % 2 == 0 else HELD_OUT_HALF) + (
            ("with maternal HR channel",) if np.mean(rec.mhr > 0) >= 0.5 else ())
        for key in keys:
            results[key].add_recording(predicted, labels, rec.fhr > 0)
        used += 1
    return results, used


def fhrma_markdown(results: dict[str, Confusion], used: int, command: str) -> str:
    rows = [
        f"| {k} | {c.tp + c.fn} | {c.tp + c.fp + c.tn + c.fn} | {c.sensitivity:.3f} | {c.specificity:.3f} | "
        f"{c.precision:.3f} | {c.f1:.3f} | {c.false_minutes_caught}/{c.false_minutes} "
        f"({c.false_minutes_caught / max(c.false_minutes, 1):.1%}) |"
        for k, c in results.items()
    ]
    return "\n".join([
        f"Command: `{command}`. The rule-based detector, which the stream uses where the false-signal model has "
        "not judged (the newest one to two minutes, or while Triton is unavailable); the model itself is scored on its "
        "validation recordings under 'False-signal model v8' (`ctgwatch evaluate quality --json` prints the "
        "stream's judge). "
        f"{used} annotated recordings of the FHRMA false-signal training set. A sample is "
        "predicted false when the signal-quality detector marks it as maternal-HR capture or halving/doubling; "
        "scored on samples the experts marked (true or false FHR) and where the monitor gave a value; a false-signal "
        "minute has a value for at least half of it, at least half of those marked false (minutes of lost signal "
        "hold nothing to catch). The detector "
        "compares the FHR with the maternal heart-rate channel; 'with maternal HR channel' is the subset of "
        "recordings where that channel carries a value at least half of the time. The capture thresholds "
        "(`SignalQualityThresholds`) were tuned on the even-numbered recordings; the odd-numbered half was "
        "scored twice, after the density rule and after the tracking test (added because a simulated fetal "
        "deceleration at the mother's rate was read as capture, not for this half), and tuned on neither time.",
        "",
        "| subset | false-signal samples | scored samples | sensitivity | specificity | precision | F1 | "
        "false-signal minutes caught |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ])


def rules_confusion(directory: Path, names: list[str] | None = None) -> dict[str, SampleConfusion]:
    """The rule-based detector per subset (DopMHR, ScalpECG, all) on the named recordings (default: all)."""
    out = {"DopMHR": SampleConfusion(), "ScalpECG": SampleConfusion(), "all": SampleConfusion()}
    for _, subset, rec, predicted, labels in rules_verdicts(directory, names):
        for key in (subset, "all"):
            out[key].add_recording(predicted, labels, rec.fhr > 0)
    return out


def stream_judge_quality(directory: Path, repository: Path) -> dict:
    """Per subset, the judge the stream uses: the deployed ``ctg_false_signal`` read out live, else the rules.

    Live: each second judged by the first scoring that gives it a verdict, as the
    stream does every ``cadence_s`` seconds, holding back the newest
    ``verdict_delay_s``, with the served thresholds (from v8 one with a maternal value and one
    without; models/training/false_signal.py).
    """
    from models.serving.false_signal_features import FalseSignalThresholds
    from models.serving.repository import deployed_false_signal
    from models.training.false_signal import FalseSignalConfig, evaluate_split, onnx_judge
    from models.training.false_signal_data import load_fhrma

    deployed = deployed_false_signal(repository)
    keys = ("sensitivity", "specificity", "precision", "f1", "false_minutes_caught")
    if deployed is None:
        rules = rules_confusion(directory)
        return {"judge": "rules (no ctg_false_signal deployed)",
                **{k: {m: c.as_dict()[m] for m in keys} for k, c in rules.items()}}
    path, params = deployed
    records = load_fhrma(directory)
    cfg = FalseSignalConfig(cadence_s=int(params.get("cadence_s", 60)), verdict_delay_s=int(params.get("verdict_delay_s", 0)))
    result = evaluate_split(onnx_judge(path), records, FalseSignalThresholds.from_dict(params), cfg,
                            context_s=int(params.get("context_s", 1800)), modes=("live",))["live"]
    return {"judge": f"ctg_false_signal {path.parent.name} (live; the rules while Triton is unavailable)",
            "records": len(records), **{k: {m: v[m] for m in keys} for k, v in result.items()}}
