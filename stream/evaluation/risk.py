"""The compromise risk on CTU-UHB, out of fold: discrimination, calibration, the alarm's trade-off, lead
time and subgroups (``ctgwatch evaluate risk``).

Every figure here comes from the cross-fitting's out-of-fold predictions
(:mod:`models.training.compromise`): no record is scored by a stacker, LSTM or autoencoder that saw
it. The alarm's operating point is chosen on the tuning half only (:mod:`stream.evaluation.risk_alarm`);
the held-out half is reported apart.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.scoring import auc
from models.serving.compromise import OUTCOMES
from models.training.acidaemia import bootstrap_auc_interval, reliability
from models.training.compromise import CrossFit
from stream.evaluation.burden import wilson
from stream.evaluation.risk_alarm import T1_GRID, Labour, Point, curve, first_alarm, trade_off
from stream.evaluation.risk_data import RecordSeries

PREDICTOR_NAMES = {
    "risk": "compromise risk (stacked)",
    "lstm": "LSTM alone (last hour, as served)",
    "logistic_figo": "logistic regression on the whole-labour FIGO inputs",
    "figo_class": "FIGO class alone",
}
CUT_OF = {"ph_below_7_05": 7.05, "ph_below_7_15": 7.15}
#: A subgroup cell is read only with this many records of each kind (fewer: "too few").
MIN_CELL = 5


def labours(series: Sequence[RecordSeries], fit: CrossFit) -> list[Labour]:
    """Each record with its out-of-fold per-minute risk (the mean over the repeats)."""
    return [Labour(s.record_id, s.normal_outcome, s.ph < 7.05, s.times, mean_risk(fit, "ph_below_7_05", i),
                   bool(s.policy_alarms)) for i, s in enumerate(series)]


def mean_risk(fit: CrossFit, outcome: str, record: int) -> np.ndarray:
    """A record's out-of-fold per-minute risk, averaged over the repeats."""
    return np.mean([per_repeat[record] for per_repeat in fit.risk[outcome]], axis=0)


def split_halves(series: Sequence[RecordSeries], listing: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tuning (even positions of the directory's listing) and held-out (odd) record indices."""
    position = {name: i for i, name in enumerate(listing)}
    even = np.array([position.get(s.record_id, 0) % 2 == 0 for s in series])
    return np.flatnonzero(even), np.flatnonzero(~even)


# -- discrimination and calibration at delivery ------------------------------------------------

def discrimination(series: Sequence[RecordSeries], fit: CrossFit, seed: int = 0) -> list[dict[str, Any]]:
    rows = []
    ph = np.array([s.ph for s in series])
    for outcome in OUTCOMES:
        y = (ph < CUT_OF[outcome]).astype(int)
        for name, label in PREDICTOR_NAMES.items():
            scores = fit.at_delivery[f"{name}@{outcome}"]
            per_repeat = [auc(s[y == 1], s[y == 0]) for s in scores]
            mean = scores.mean(axis=0)
            lo, hi = bootstrap_auc_interval(mean, y, seed)
            rows.append({"predictor": label, "key": name, "outcome": outcome, "positives": int(y.sum()),
                         "auc": round(float(np.mean(per_repeat)), 3),
                         "auc_repeats": [round(float(a), 3) for a in per_repeat], "auc_95ci": [round(lo, 3), round(hi, 3)],
                         "brier": round(float(np.mean((scores - y[None, :]) ** 2)), 4),
                         "brier_prevalence": round(float(y.mean() * (1 - y.mean())), 4)})
    return rows


def calibration(series: Sequence[RecordSeries], fit: CrossFit) -> list[dict[str, Any]]:
    y = np.array([s.ph < 7.05 for s in series], dtype=int)
    return reliability(fit.at_delivery["risk@ph_below_7_05"].mean(axis=0), y)


# -- the alarm -----------------------------------------------------------------------------------

def lead_times_min(group: Sequence[Labour], series_end: dict[str, float], t1: float, q: int,
                   policy_first: dict[str, float | None]) -> dict[str, list[float]]:
    """Minutes from the first alarm to delivery: the risk alarm, the policy's, either."""
    out: dict[str, list[float]] = {"risk": [], "policy": [], "either": []}
    for x in group:
        r = first_alarm(x.times, x.risk, t1, q)
        p = policy_first.get(x.record_id)
        end = series_end[x.record_id]
        if r is not None:
            out["risk"].append((end - r) / 60)
        if p is not None:
            out["policy"].append((end - p) / 60)
        if r is not None or p is not None:
            out["either"].append((end - min(v for v in (r, p) if v is not None)) / 60)
    return out


# -- subgroups -------------------------------------------------------------------------------------

def _num(h: dict[str, Any], key: str) -> float | None:
    v = h.get(key)
    return float(v) if isinstance(v, (int, float)) else None


SUBGROUPS: tuple[tuple[str, Callable[[dict[str, Any]], str | None]], ...] = (
    ("parity", lambda h: None if _num(h, "Parity") is None else ("nulliparous" if _num(h, "Parity") == 0 else "parous")),
    ("gestation", lambda h: None if (g := _num(h, "Gest. weeks")) is None
     else "< 37 weeks" if g < 37 else "37-41 weeks" if g < 42 else ">= 42 weeks"),
    ("induced", lambda h: None if _num(h, "Induced") is None else ("induced" if _num(h, "Induced") else "not induced")),
    ("delivery", lambda h: {1.0: "vaginal", 2.0: "caesarean section"}.get(_num(h, "Deliv. type") or 0.0)),
    ("maternal age", lambda h: None if (a := _num(h, "Age")) is None else (">= 35" if a >= 35 else "< 35")),
    ("signal source", lambda h: {1.0: "Doppler (ultrasound)", 2.0: "scalp ECG", 12.0: "Doppler, then scalp ECG"}.get(
        _num(h, "Rec. type") or 0.0)),
)


@dataclass
class Cell:
    group: str
    value: str
    records: int
    acidaemic: int
    normal: int
    auc: float | None
    normal_alarmed: tuple[int, int]
    acidaemic_alarmed: tuple[int, int]
    mean_risk: float
    observed: float


def subgroup_cells(series: Sequence[RecordSeries], fit: CrossFit, labs: Sequence[Labour], t1: float, q: int) -> list[Cell]:
    at_delivery = fit.at_delivery["risk@ph_below_7_05"].mean(axis=0)
    alarmed = [first_alarm(x.times, x.risk, t1, q) is not None or x.policy_alarmed for x in labs]
    cells = []
    for group, of in SUBGROUPS:
        values = [of(s.header) for s in series]
        for value in sorted({v for v in values if v is not None}):
            idx = [i for i, v in enumerate(values) if v == value]
            y = np.array([series[i].ph < 7.05 for i in idx])
            normal = [i for i in idx if series[i].normal_outcome]
            acid = [i for i in idx if series[i].ph < 7.05]
            s = at_delivery[idx]
            a = auc(s[y], s[~y]) if y.sum() >= MIN_CELL and (~y).sum() >= MIN_CELL else None
            cells.append(Cell(group, value, len(idx), int(y.sum()), len(normal), a,
                              (sum(alarmed[i] for i in normal), len(normal)), (sum(alarmed[i] for i in acid), len(acid)),
                              float(s.mean()), float(y.mean())))
    return cells


# -- plots -------------------------------------------------------------------------------------------

def plot_trade_off(curves: dict[str, list[Point]], policy_point: tuple[float, float], chosen: Point, path: Path,
                   title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.0), dpi=110)
    for label, points in curves.items():
        ax.plot([p.normal_risk for p in points], [p.acidaemic_risk for p in points], "-", lw=1.2, label=f"risk alarm alone, {label}")
        ax.plot([p.normal_both for p in points], [p.acidaemic_both for p in points], "--", lw=1.2,
                label=f"today's policy + risk alarm, {label}")
    ax.plot(*policy_point, "ks", label="today's policy alone")
    ax.plot(chosen.normal_both, chosen.acidaemic_both, "r*", ms=14, label=f"operating point (t1 {chosen.t1:.2f})")
    ax.plot(chosen.normal_risk, chosen.acidaemic_risk, "r^", ms=9, label="operating point, risk alarm alone")
    ax.axvline(0.15, color="grey", lw=0.6, ls=":")
    ax.axhline(0.60, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("normal-outcome labours with an alarm (share)")
    ax.set_ylabel("acidaemic (pH < 7.05) labours with an alarm (share)")
    ax.set_xlim(0, 0.6)
    ax.set_ylim(0, 1.0)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_calibration(rows: list[dict[str, Any]], path: Path, brier: float, prevalence_brier: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 5.0), dpi=110)
    pts = [r for r in rows if r["records"]]
    ax.plot([0, 0.6], [0, 0.6], color="grey", lw=0.8, ls=":")
    ax.plot([r["mean_predicted"] for r in pts], [r["observed"] for r in pts], "o-")
    for r in pts:
        ax.annotate(str(r["records"]), (r["mean_predicted"], r["observed"]), textcoords="offset points", xytext=(4, -10),
                    fontsize=7)
    ax.set_xlabel("predicted P(pH < 7.05) at delivery (out of fold)")
    ax.set_ylabel("observed share with pH < 7.05")
    ax.set_title(f"Compromise risk: calibration (Brier {brier:.4f}, prevalence {prevalence_brier:.4f})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- the report -----------------------------------------------------------------------------------------

def _share(k: int, n: int) -> str:
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.2f} ({lo:.2f}-{hi:.2f})"


def report_markdown(series: Sequence[RecordSeries], fit: CrossFit, listing: Sequence[str], chosen: dict[str, float],
                    img_dir: Path, command: str, looks: str) -> str:
    labs = labours(series, fit)
    tuning, held = split_halves(series, listing)
    t1, t2, q = chosen["t1"], chosen["t2"], int(chosen["qualify_min"])
    lines = [f"Command: `{command}`. {len(series)} CTU-UHB records with a pH "
             f"({sum(s.ph < 7.05 for s in series)} with pH < 7.05, {sum(s.normal_outcome for s in series)} with a normal "
             f"outcome); {len(fit.risk['ph_below_7_05'])} repeats of 5-fold cross-fitting "
             f"({fit.seconds / 60:.0f} min on the 2-core CPU machine; run at {fit.made_at or 'an unrecorded commit'}, "
             f"and read from its cache until the records or the code that computes it change). {looks}", ""]
    lines += ["### Discrimination at delivery, same folds", "",
              "Each predictor's probability at the end of the recording (delivery), out of fold. AUC: mean over the "
              "repeats of the pooled out-of-fold AUC (range over repeats); 95% interval by a stratified bootstrap over "
              "records of the repeat-averaged scores.", "",
              "| predictor | outcome | positives | AUC | range over repeats | 95% CI | Brier | Brier of the prevalence |",
              "|---|---|---|---|---|---|---|---|"]
    for r in discrimination(series, fit):
        lines.append(f"| {r['predictor']} | pH < {CUT_OF[r['outcome']]} | {r['positives']} | {r['auc']:.3f} | "
                     f"{min(r['auc_repeats']):.3f}-{max(r['auc_repeats']):.3f} | {r['auc_95ci'][0]:.3f}-{r['auc_95ci'][1]:.3f} | "
                     f"{r['brier']:.4f} | {r['brier_prevalence']:.4f} |")
    cal = calibration(series, fit)
    disc = {(r["key"], r["outcome"]): r for r in discrimination(series, fit)}
    risk_row = disc[("risk", "ph_below_7_05")]
    plot_calibration(cal, img_dir / "risk_calibration.png", risk_row["brier"], risk_row["brier_prevalence"])
    lines += ["", "### Calibration (pH < 7.05, at delivery)", "",
              "![calibration](img/risk_calibration.png)", "",
              "| predicted | records | mean predicted | observed |", "|---|---|---|---|"]
    lines += [f"| {r['bin']} | {r['records']} | {r['mean_predicted']} | {r['observed']} |" for r in cal]
    # the trade-off
    policy_first = {s.record_id: (min(a[1] for a in s.policy_alarms) if s.policy_alarms else None) for s in series}
    curves = {}
    for name, idx in (("tuning half", tuning), ("held-out half", held)):
        curves[name] = curve([labs[i] for i in idx], q)
    all_point = trade_off(labs, t1, q)
    normal = [x for x in labs if x.normal_outcome]
    acid = [x for x in labs if x.acidaemic]
    policy_point = (float(np.mean([x.policy_alarmed for x in normal])), float(np.mean([x.policy_alarmed for x in acid])))
    plot_trade_off({"all records": curve(labs, q)}, policy_point, all_point, img_dir / "risk_tradeoff.png",
                   f"Alarms on CTU-UHB labours, out of fold (qualification {q} min)")
    lines += ["", "### The alarm's trade-off", "",
              f"Operating point (chosen on the tuning half, rule in `stream/evaluation/risk_alarm.py`): medium alarm once "
              f"P(pH < 7.05) >= {t1:.2f} for {q} min, high at >= {t2:.2f}. Shares of labours with any alarm at any time "
              "(95% Wilson intervals); the risk alarm read off the per-minute out-of-fold risk, today's policy from the "
              "same replay.", "", "![trade-off](img/risk_tradeoff.png)", "",
              "| records | alarm | normal outcome with an alarm | acidaemic with an alarm |", "|---|---|---|---|"]
    for name, idx in (("tuning half", tuning), ("held-out half", held), ("all", np.arange(len(labs)))):
        group = [labs[i] for i in idx]
        n = [x for x in group if x.normal_outcome]
        a = [x for x in group if x.acidaemic]
        risk_n = sum(first_alarm(x.times, x.risk, t1, q) is not None for x in n)
        risk_a = sum(first_alarm(x.times, x.risk, t1, q) is not None for x in a)
        both_n = sum(first_alarm(x.times, x.risk, t1, q) is not None or x.policy_alarmed for x in n)
        both_a = sum(first_alarm(x.times, x.risk, t1, q) is not None or x.policy_alarmed for x in a)
        lines += [f"| {name} | today's policy | {_share(sum(x.policy_alarmed for x in n), len(n))} | "
                  f"{_share(sum(x.policy_alarmed for x in a), len(a))} |",
                  f"| {name} | risk alarm alone | {_share(risk_n, len(n))} | {_share(risk_a, len(a))} |",
                  f"| {name} | both | {_share(both_n, len(n))} | {_share(both_a, len(a))} |"]
    lines += ["", "The curve, all records (risk alarm alone / with today's policy), by first threshold:", "",
              "| t1 | " + " | ".join(f"{t:.2f}" for t in T1_GRID[::3]) + " |", "|---" * (1 + len(T1_GRID[::3])) + "|"]
    pts = {p.t1: p for p in curve(labs, q)}
    lines.append("| normal, risk alone | " + " | ".join(f"{pts[t].normal_risk:.2f}" for t in T1_GRID[::3]) + " |")
    lines.append("| acidaemic, risk alone | " + " | ".join(f"{pts[t].acidaemic_risk:.2f}" for t in T1_GRID[::3]) + " |")
    lines.append("| normal, both | " + " | ".join(f"{pts[t].normal_both:.2f}" for t in T1_GRID[::3]) + " |")
    lines.append("| acidaemic, both | " + " | ".join(f"{pts[t].acidaemic_both:.2f}" for t in T1_GRID[::3]) + " |")
    ends = {s.record_id: s.end_s for s in series}
    lead = lead_times_min(acid, ends, t1, q, policy_first)
    lines += ["", "### Lead time (acidaemic labours)", "",
              "Minutes from the first alarm to delivery (the end of the recording; CTU-UHB keeps at most the last 90 min).", "",
              "| alarm | acidaemic labours alarmed | median | range |", "|---|---|---|---|"]
    for k, v in lead.items():
        lines.append(f"| {k} | {len(v)}/{len(acid)} | {statistics.median(v):.0f} min | {min(v):.0f}-{max(v):.0f} min |"
                     if v else f"| {k} | 0/{len(acid)} | - | - |")
    lines += ["", "### Subgroups", "",
              f"All records, out of fold, at the operating point (alarm: today's policy or the risk alarm). AUC of the risk "
              f"at delivery for pH < 7.05 where a cell has >= {MIN_CELL} acidaemic and >= {MIN_CELL} other records, else "
              "\"too few\"; calibration: the mean predicted risk at delivery against the observed share with pH < 7.05. "
              "Headers of the CTU-UHB records (Parity, Gest. weeks, Induced, Deliv. type, Age, Rec. type).", "",
              "| group | value | records (acidaemic) | AUC | normal outcome alarmed | acidaemic alarmed | mean risk / observed |",
              "|---|---|---|---|---|---|---|"]
    for c in subgroup_cells(series, fit, labs, t1, q):
        acid_cell = (_share(*c.acidaemic_alarmed) if c.acidaemic_alarmed[1] >= MIN_CELL
                     else f"too few ({c.acidaemic_alarmed[0]}/{c.acidaemic_alarmed[1]})")
        normal_cell = (_share(*c.normal_alarmed) if c.normal_alarmed[1] >= MIN_CELL
                       else f"too few ({c.normal_alarmed[0]}/{c.normal_alarmed[1]})")
        lines.append(f"| {c.group} | {c.value} | {c.records} ({c.acidaemic}) | "
                     f"{'too few' if c.auc is None else f'{c.auc:.2f}'} | {normal_cell} | {acid_cell} | "
                     f"{c.mean_risk:.3f} / {c.observed:.3f} |")
    return "\n".join(lines) + "\n"


def normal_share_curve(labs: Sequence[Labour], grid: Sequence[float]) -> list[float]:
    """The share of normal-outcome labours whose risk ever reached each value (what an alarm's evidence cites)."""
    peaks = np.array([x.risk.max() if x.risk.size else 0.0 for x in labs if x.normal_outcome])
    return [round(float((peaks >= g).mean()), 4) for g in grid]


def autoencoder_reference(series: Sequence[RecordSeries], repository: Path) -> float:
    """The served autoencoder's median score on the normal-outcome records' normal windows."""
    from stream.evaluation.served import onnx_session, run_batched, served_onnx

    windows = np.concatenate([s.ae_train for s in series if len(s.ae_train)])
    session = onnx_session(served_onnx(repository, "ctg_autoencoder"))
    return float(np.median(run_batched(session, "score", windows, 256)))


#: The served stacker's version, named in every risk alarm's evidence. v1: fitted 2026-12-06 from a cross-fitting
#: cached across several commits; v2: refitted 2026-12-07 at 1750da1, with caches keyed on their code.
STACKER_VERSION = "v2"


def oof_entries(series: Sequence[RecordSeries], fit: CrossFit) -> dict[str, dict[str, Any]]:
    """Per record, the out-of-fold per-minute risks and inputs (means over the repeats), for the burden replay."""
    out = {}
    repeats = len(fit.inputs)
    for i, s in enumerate(series):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an input missing in every repeat stays NaN
            inputs = (np.nanmean(np.stack([fit.inputs[r][i] for r in range(repeats)]), axis=0) if len(s.times)
                      else np.zeros((0, 0)))
        out[s.record_id] = {
            "times": s.times.tolist(),
            "risk": {o: np.round(mean_risk(fit, o, i), 5).tolist() for o in OUTCOMES},
            "inputs": [[None if not np.isfinite(v) else round(float(v), 4) for v in row] for row in inputs],
        }
    return out


def input_width(fit: CrossFit) -> int:
    """How many inputs the cached cross-fitting's stackers read (0 when no record has a minute)."""
    return next((x.shape[1] for per_record in fit.inputs[:1] for x in per_record if x.ndim == 2 and len(x)), 0)


def evaluate_risk(directory: Path, cache_dir: Path, repository: Path, *, repeats: int = 5,
                  log: Callable[[str], None] = print) -> tuple[list[RecordSeries], CrossFit, Any, dict[str, float]]:
    """Replay, cross-fit (both cached), choose the operating point on the tuning half, fit the served stacker."""
    from models.training.compromise import CompromiseConfig, cross_fit, served_stacker
    from stream.evaluation import cache as cached
    from stream.evaluation.reporting import provenance
    from stream.evaluation.risk_alarm import choose_operating_point
    from stream.evaluation.risk_data import build_series
    from stream.sources.recordings import list_records

    cfg = CompromiseConfig(repeats=repeats)
    series = build_series(directory, cache=cache_dir / "risk_series.pkl")
    ids = [s.record_id for s in series]
    fit_path, served_path = cache_dir / "risk_crossfit.pkl", cache_dir / "risk_served.pkl"
    sources = cached.source_digests()  # before fitting: an edit made while it runs marks the result stale
    fit = cached.read_fresh(fit_path, sources)
    if fit is None or fit.record_ids != ids or len(fit.inputs) != repeats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean over minutes with no input
            fit = cross_fit(series, cfg, log)
        fit.made_at = provenance()
        cached.write(fit_path, fit, sources)
    served = cached.read_fresh(served_path, sources)
    if served is None or len(served[1]) != len(series):
        served = served_stacker(series, cfg)
        cached.write(served_path, served, sources)
    stacker = served[0]
    labs = labours(series, fit)
    tuning, _ = split_halves(series, list_records(directory))
    chosen = choose_operating_point([labs[i] for i in tuning])
    grid = [round(0.01 * i, 2) for i in range(101)]
    stacker.thresholds = {"t1": chosen["t1"], "t2": chosen["t2"]}
    stacker.risk_grid, stacker.normal_share_above = grid, normal_share_curve(labs, grid)
    stacker.autoencoder_reference = autoencoder_reference(series, repository)
    stacker.version = STACKER_VERSION
    return series, fit, stacker, chosen
