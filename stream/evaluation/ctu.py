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

from detectors.labour import analyse_labour

# -- CTU-UHB: FIGO class against the outcome ---------------------------------------

CLASS_RANK = {"normal": 0, "suspicious": 1, "pathological": 2}


def evaluate_ctu(directory: Path, limit: int | None = None, csv_path: Path | None = None) -> list[dict]:
    from stream.sources.recordings import list_records, read_recording

    rows = []
    for name in list_records(directory)[:limit]:
        rec = read_recording(name, directory)
        a = analyse_labour(rec.fhr, rec.uc, fs=rec.fs)
        if a is None:  # under 10 min of recording
            continue
        decel_kinds = [d.kind for d in a.decelerations]
        rows.append({
            "record": rec.record_id, "ph": rec.ph, "apgar5": rec.outcome.get("Apgar5"),
            "classification": a.classification,
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
    from detectors.scoring import auc

    scored = [r for r in rows if r["ph"] is not None and r["classification"] in CLASS_RANK]
    lines = [
        f"Command: `{command}`. The whole-labour FIGO 2015 analysis (as the stream reads it: each minute "
        f"measured once, durations over the labour) at the end of each of {len(rows)} "
        f"CTU-UHB records (the recording ends at delivery); {len(rows) - len(scored)} record(s) had insufficient "
        "signal for a class. Per-record baseline, variability, deceleration counts and contraction rate: "
        "`docs/ctu-uhb-records.csv`.",
        "",
        "| classification | records | pH < 7.05 | pH < 7.15 |",
        "|---|---|---|---|",
    ]
    for cls in ("normal", "suspicious", "pathological", "insufficient_signal"):
        sel = [r for r in rows if r["classification"] == cls and r["ph"] is not None]
        lines.append(f"| {cls} | {len(sel)} | {sum(r['ph'] < 7.05 for r in sel)} | {sum(r['ph'] < 7.15 for r in sel)} |")
    lines += ["", "| outcome | positives | 'pathological' sensitivity | specificity | "
              "'suspicious or worse' sensitivity | specificity | AUC (normal < suspicious < pathological) |",
              "|---|---|---|---|---|---|---|"]
    for cut in (7.05, 7.15):
        pos = [r for r in scored if r["ph"] < cut]
        neg = [r for r in scored if r["ph"] >= cut]

        def sens_spec(level: int, pos: list = pos, neg: list = neg) -> tuple[float, float]:
            se = sum(CLASS_RANK[r["classification"]] >= level for r in pos) / max(len(pos), 1)
            sp = sum(CLASS_RANK[r["classification"]] < level for r in neg) / max(len(neg), 1)
            return se, sp

        (se2, sp2), (se1, sp1) = sens_spec(2), sens_spec(1)
        a = auc(np.array([CLASS_RANK[r["classification"]] for r in pos], float),
                np.array([CLASS_RANK[r["classification"]] for r in neg], float))
        lines.append(f"| pH < {cut} | {len(pos)} | {se2:.2f} | {sp2:.2f} | {se1:.2f} | {sp1:.2f} | {a:.3f} |")
    return "\n".join(lines)
