"""Evaluation of the detectors on real recordings (docs/EVALUATION.md).

- FHRMA false-signal set (Boudet et al., Biosensors 2022;12:691): experts
  marked which stretches of each FHR trace are true fetal signal and which are
  false (mostly the maternal heart rate, or its double/half). The signal-quality
  detector's per-sample verdict (maternal capture or halving/doubling = false)
  is scored on the samples the experts marked and where the monitor gave a value.
- CTU-UHB (Chudáček et al. 2014): per record the FIGO analysis of the last
  ``window_s`` before the end of the recording (delivery), its baseline,
  variability and deceleration counts, and the association of the FIGO class
  with umbilical artery acidaemia (pH < 7.05 and < 7.15).

Readers take the dataset directory as an argument; nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detectors.ctg import analyse_ctg, in_progress_deceleration
from detectors.findings import Finding, Severity
from detectors.quality import assess_quality

FHRM_DTYPE = np.dtype([("fhr1", "<u2"), ("fhr2", "<u2"), ("mhr", "<u2"), ("toco", "u1"), ("flags", "u1")])


@dataclass(frozen=True)
class FhrmRecord:
    name: str
    fhr: np.ndarray
    mhr: np.ndarray
    toco: np.ndarray


def read_fhrm(path: Path) -> FhrmRecord:
    """An FHRMA ``.fhrm`` file: 4-byte header, then 8-byte records at 4 Hz.

    The FHR is the sensor that carries the signal: sensor 1 in the Doppler
    recordings, sensor 2 in most scalp-ECG ones.
    """
    raw = np.frombuffer(path.read_bytes()[4:], dtype=FHRM_DTYPE)
    channel = "fhr1" if np.count_nonzero(raw["fhr1"]) >= np.count_nonzero(raw["fhr2"]) else "fhr2"
    return FhrmRecord(path.name, raw[channel] / 4.0, raw["mhr"] / 4.0, raw["toco"] / 2.0)


def label_samples(n: int, true_spans: list, false_spans: list) -> np.ndarray:
    """Per sample: 1 false signal, 0 true signal, -1 not marked (spans 1-based, inclusive)."""
    labels = np.full(n, -1, dtype=np.int8)
    for value, spans in ((0, true_spans), (1, false_spans)):
        for a, b in spans:
            labels[max(int(a) - 1, 0) : min(int(b), n)] = value
    return labels


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    false_minutes: int = 0
    false_minutes_caught: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        self.tp += int(np.sum(predicted & truth))
        self.fp += int(np.sum(predicted & ~truth))
        self.fn += int(np.sum(~predicted & truth))
        self.tn += int(np.sum(~predicted & ~truth))

    @property
    def sensitivity(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def specificity(self) -> float:
        return self.tn / max(self.tn + self.fp, 1)

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.sensitivity
        return 2 * p * r / (p + r) if p + r else 0.0


#: The maternal-capture thresholds were tuned on the even-numbered recordings (in
#: file-name order) and are reported separately on the odd-numbered ones.
TUNING_HALF = "tuning half (even-numbered)"
HELD_OUT_HALF = "held-out half (odd-numbered)"


def evaluate_fhrma(directory: Path, limit: int | None = None) -> tuple[dict[str, Confusion], int]:
    """Per subset (DopMHR, ScalpECG, all): per-sample confusion of the false-signal verdict."""
    annotations = json.loads((directory / "annotations.json").read_text())
    results = {"DopMHR": Confusion(), "ScalpECG": Confusion(), "all": Confusion(),
               "with maternal HR channel": Confusion(), TUNING_HALF: Confusion(), HELD_OUT_HALF: Confusion()}
    used = 0
    for i, (name, ann) in enumerate(sorted(annotations.items())[:limit]):
        subset = "DopMHR" if name.startswith("DopMHR") else "ScalpECG"
        path = directory / subset / name
        if not path.exists() or not (ann.get("true_fhr") or ann.get("false_fhr")):
            continue
        rec = read_fhrm(path)
        report = assess_quality(rec.fhr, fs=4.0, mhr=np.where(rec.mhr > 0, rec.mhr, np.nan))
        predicted = report.maternal | report.ratio_error
        labels = label_samples(rec.fhr.size, ann.get("true_fhr", []), ann.get("false_fhr", []))
        scored = (labels >= 0) & (rec.fhr > 0)
        keys = (subset, "all", TUNING_HALF if i % 2 == 0 else HELD_OUT_HALF) + (
            ("with maternal HR channel",) if np.mean(rec.mhr > 0) >= 0.5 else ())
        for key in keys:
            results[key].add(predicted[scored], labels[scored] == 1)
        # minutes that are mostly false signal, and whether the detector flagged them mostly too
        m = rec.fhr.size // 240
        lab = (labels[: m * 240] == 1).reshape(m, 240).mean(axis=1) >= 0.5
        hit = predicted[: m * 240].reshape(m, 240).mean(axis=1) >= 0.5
        for key in keys:
            results[key].false_minutes += int(lab.sum())
            results[key].false_minutes_caught += int((lab & hit).sum())
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
        f"Command: `{command}`. {used} annotated recordings of the FHRMA false-signal training set. A sample is "
        "predicted false when the signal-quality detector marks it as maternal-HR capture or halving/doubling; "
        "scored on samples the experts marked (true or false FHR) and where the monitor gave a value. The detector "
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


# -- CTU-UHB: FIGO class against the outcome ---------------------------------------

CLASS_RANK = {"normal": 0, "suspicious": 1, "pathological": 2}


def evaluate_ctu(directory: Path, window_s: float = 3600.0, limit: int | None = None,
                 csv_path: Path | None = None) -> list[dict]:
    from stream.sources.recordings import list_records, read_recording

    rows = []
    for name in list_records(directory)[:limit]:
        rec = read_recording(name, directory)
        k = int(window_s * rec.fs)
        a = analyse_ctg(rec.fhr[-k:], rec.uc[-k:], fs=rec.fs)
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


def ctu_markdown(rows: list[dict], command: str, window_s: float) -> str:
    from detectors.scoring import auc

    scored = [r for r in rows if r["ph"] is not None and r["classification"] in CLASS_RANK]
    lines = [
        f"Command: `{command}`. FIGO 2015 analysis of the last {window_s / 60:.0f} min of each of {len(rows)} "
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
