"""The FIGO class against CTU-UHB outcomes (Chudáček et al. 2014), docs/EVALUATION.md.

Per record the whole-labour FIGO analysis at the end of the recording
(delivery), read the way the stream reads it (:func:`detectors.labour.analyse_labour`:
each minute measured once, the durations carried over the labour), its
baseline, variability and deceleration counts, and the association of the FIGO
class with umbilical-artery acidaemia (pH < 7.05 and < 7.15).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from detectors.ctg import CtgAnalysis
from detectors.labour import follow_labour

# -- CTU-UHB: FIGO class against the outcome ---------------------------------------

CLASS_RANK = {"normal": 0, "suspicious": 1, "pathological": 2}
LAST_HOUR_S = 3600.0


def _labour_at_delivery(fhr: np.ndarray, uc: np.ndarray, fs: float) -> tuple[CtgAnalysis | None, str | None]:
    """The whole-labour analysis at the end of the recording, and the worst class the stream showed in its
    last hour (normal < suspicious < pathological; insufficient signal only if nothing else was shown)."""
    end = fhr.size / fs
    shown: list[str] = []
    last = None
    for minute_end, state in follow_labour(fhr, uc, fs):
        last = state.analysis()
        if last is not None and minute_end > end - LAST_HOUR_S:
            shown.append(last.classification)
    ranked = [c for c in shown if c in CLASS_RANK]
    worst = max(ranked, key=CLASS_RANK.__getitem__) if ranked else (shown[-1] if shown else None)
    return last, worst


def evaluate_ctu(directory: Path, limit: int | None = None, csv_path: Path | None = None) -> list[dict]:
    from stream.sources.recordings import list_records, read_recording

    rows = []
    for name in list_records(directory)[:limit]:
        rec = read_recording(name, directory)
        a, worst = _labour_at_delivery(rec.fhr, rec.uc, rec.fs)
        if a is None:  # under 10 min of recording
            continue
        decel_kinds = [d.kind for d in a.decelerations]
        rows.append({
            "record": rec.record_id, "ph": rec.ph, "apgar5": rec.outcome.get("Apgar5"),
            "classification": a.classification, "worst_class_last_hour": worst,
            "baseline_bpm": None if a.baseline is None or a.baseline.value is None else round(a.baseline.value, 1),
            "variability_bpm": None if a.variability is None else getattr(a.variability, "median_bpm", None),
            "valid_fraction": round(a.quality.valid_fraction, 3),
            **{f"{kind}_decelerations": decel_kinds.count(kind)
               for kind in ("early", "late", "variable", "prolonged", "unclassified")},
            "contractions_per_10min": None if a.contractions_per_10min is None else round(a.contractions_per_10min, 1),
            "reduced_variability_in_decelerations_s": a.reduced_in_decelerations_s,
        })
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


def ctu_markdown(rows: list[dict], command: str) -> str:
    scored = [r for r in rows if r["ph"] is not None and r["classification"] in CLASS_RANK]
    lines: list[str] = [
        f"Command: `{command}`. The whole-labour FIGO 2015 analysis (as the stream reads it: each minute "
        f"measured once, durations over the labour) at the end of each of {len(rows)} "
        f"CTU-UHB records (the recording ends at delivery); {len(rows) - len(scored)} record(s) had insufficient "
        "signal for a class at delivery. Read two ways: the class at delivery, and the worst class the stream "
        "showed in the last hour before it (what the 60-min window analysis this command read before "
        "comes closest to). Per-record baseline, variability, deceleration counts and contraction rate: "
        "`docs/ctu-uhb-records.csv`.",
        "",
    ]
    for column, title in (("classification", "the class at delivery"),
                          ("worst_class_last_hour", "the worst class shown in the last hour before delivery")):
        lines += _class_tables(rows, column, title)
    return "\n".join(lines)


def _class_tables(rows: list[dict], column: str, title: str) -> list[str]:
    """The records per class of ``column`` and its association with acidaemia (AUC with the stratified
    bootstrap interval the acidaemia model's evaluation uses)."""
    from detectors.scoring import auc
    from models.training.acidaemia import bootstrap_auc_interval

    scored = [r for r in rows if r["ph"] is not None and r[column] in CLASS_RANK]
    lines = ["", f"By {title}:", "", "| classification | records | pH < 7.05 | pH < 7.15 |", "|---|---|---|---|"]
    for cls in ("normal", "suspicious", "pathological", "insufficient_signal"):
        sel = [r for r in rows if r[column] == cls and r["ph"] is not None]
        lines.append(f"| {cls} | {len(sel)} | {sum(r['ph'] < 7.05 for r in sel)} | {sum(r['ph'] < 7.15 for r in sel)} |")
    lines += ["", "| outcome | positives | 'pathological' sensitivity | specificity | "
              "'suspicious or worse' sensitivity | specificity | AUC (normal < suspicious < pathological), 95% CI |",
              "|---|---|---|---|---|---|---|"]
    for cut in (7.05, 7.15):
        rank = np.array([CLASS_RANK[r[column]] for r in scored], float)
        bad = np.array([r["ph"] < cut for r in scored])
        pos, neg = rank[bad], rank[~bad]
        se2, sp2 = float((pos >= 2).mean()) if pos.size else 0.0, float((neg < 2).mean()) if neg.size else 0.0
        se1, sp1 = float((pos >= 1).mean()) if pos.size else 0.0, float((neg < 1).mean()) if neg.size else 0.0
        lo, hi = bootstrap_auc_interval(rank, bad.astype(int)) if pos.size and neg.size else (np.nan, np.nan)
        lines.append(f"| pH < {cut} | {pos.size} | {se2:.2f} | {sp2:.2f} | {se1:.2f} | {sp1:.2f} | "
                     f"{auc(pos, neg):.3f} ({lo:.2f}-{hi:.2f}) |")
    return lines
