"""``ctgwatch train``: train, calibrate, evaluate and export the models served on Triton.

Deterministic for a seed (torch and numpy seeded, one CPU thread order).
Output, under ``<models_dir>/v<N>/``: ``lstm.pt`` / ``autoencoder.pt`` (weights),
``lstm.onnx`` / ``autoencoder.onnx``, ``normalisation.json``,
``calibration.json`` (thresholds and the false-alarm rate they give),
``metrics.json`` and ``MODEL_CARD.md``.

Calibration: the stream scores each patient's window every ``cadence_s``
seconds; consecutive windows above the threshold are one alarm. On held-out
normal-outcome records the threshold is the lowest value whose alarm rate is
at most ``target_false_alarms_per_hour`` of monitoring.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from detectors.scoring import auc
from models.serving.features import VALID, Normalisation, sliding_windows, window_tensor
from models.training.data import (
    ABNORMAL_EVENTS,
    Recording,
    load_ctu_uhb,
    normal_simulated,
    overlapping_kinds,
    simulated,
    split_by_record,
    window_label,
)
from models.training.nets import TENSOR_IN, build


@dataclass
class TrainConfig:
    source: str = "auto"  # auto (CTU-UHB when present), ctu-uhb, simulator
    seed: int = 0
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 3e-3
    stride_s: int = 120  # training windows overlap by 8 of 10 min
    cadence_s: int = 60  # the stream scores a window per patient per minute
    max_train_windows: int = 12000
    target_false_alarms_per_hour: float = 0.5
    ctu_limit: int | None = None
    sim_train_seeds: list[int] = field(default_factory=lambda: list(range(100, 112)))
    # seeds 10-12 were looked at while the autoencoder was developed (6 runs for v2, 17 for v6);
    # 40-42 scored v2 once; 70-74 are held out for v6 and later (docs/EVALUATION.md)
    sim_eval_seeds: list[int] = field(default_factory=lambda: [70, 71, 72, 73, 74])
    sim_duration_s: float = 3600.0
    autoencoder: dict = field(default_factory=lambda: {"width": 16, "code_channels": 8})
    models: list[str] = field(default_factory=lambda: ["lstm", "autoencoder", "false_signal"])
    false_signal: dict = field(default_factory=dict)  # FalseSignalConfig fields to override
    acidaemia: dict = field(default_factory=dict)  # AcidaemiaConfig fields to override
    fhrma_limit: int | None = None  # a tiny false-signal run (CI): this many recordings


def windows_of(records: list[Recording], norm: Normalisation, stride_s: int) -> tuple[np.ndarray, list[tuple[int, float]]]:
    chunks, index = [], []
    for i, r in enumerate(records):
        w, ends = sliding_windows(r.fhr, r.uc, r.mhr, r.fs, norm, stride_s)
        chunks.append(w)
        index += [(i, float(e)) for e in ends]
    if not chunks:
        return np.zeros((0, norm.window_s, 4), np.float32), []
    return np.concatenate(chunks), index


def normal_ctg_windows(records: list[Recording], norm: Normalisation, stride_s: int) -> np.ndarray:
    """Windows whose own FIGO 2015 analysis is 'normal' with no deceleration: what normal looks like.

    Normal-outcome labours are full of decelerations and other patterns the
    autoencoder should find unusual; trained on every window of them it learned
    to reconstruct decelerations too (measured: simulator window AUC 0.47). So
    the training windows are those the rules call a normal CTG.
    """
    from detectors.ctg import analyse_ctg

    kept = []
    for r in records:
        k = int(r.fs)
        for end in range(norm.window_s, len(r.fhr) // k + 1, stride_s):
            a, b = (end - norm.window_s) * k, end * k
            analysis = analyse_ctg(r.fhr[a:b], r.uc[a:b], fs=r.fs)
            if analysis.classification == "normal" and not analysis.decelerations:
                kept.append(window_tensor(r.fhr[a:b], r.uc[a:b], None if r.mhr is None else r.mhr[a:b], r.fs, norm))
    return np.stack(kept) if kept else np.zeros((0, norm.window_s, 4), np.float32)


def fit(kind: str, config: dict, norm: Normalisation, windows: np.ndarray, cfg: TrainConfig, log=print) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)
    model = build(kind, {**config, **({"window_s": norm.window_s} if kind == "autoencoder" else {})})
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    data = torch.from_numpy(windows)
    gen = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(data), generator=gen)
        total, batches = 0.0, 0
        for b in range(0, len(data), cfg.batch_size):
            score, _, _ = model(data[order[b : b + cfg.batch_size]])
            loss = score.mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item()
            batches += 1
        log(f"{kind}: epoch {epoch + 1}/{cfg.epochs} loss {total / max(batches, 1):.4f}")
    model.eval()
    return model


@torch.no_grad()
def scores(model: torch.nn.Module, windows: np.ndarray, batch: int = 256) -> np.ndarray:
    out = [model(torch.from_numpy(windows[i : i + batch]))[0][:, 0].numpy() for i in range(0, len(windows), batch)]
    return np.concatenate(out) if out else np.zeros(0)


def alarm_rate(per_record: list[np.ndarray], threshold: float, cadence_s: int) -> float:
    """Alarms (runs of consecutive windows above threshold) per monitored hour."""
    alarms = sum(int(np.sum(np.diff(np.concatenate([[0], (s > threshold).astype(int)])) == 1)) for s in per_record)
    hours = sum(len(s) for s in per_record) * cadence_s / 3600.0
    return alarms / hours if hours else float("nan")


def calibrate(per_record: list[np.ndarray], target: float, cadence_s: int) -> dict:
    pooled = np.sort(np.concatenate(per_record))
    for threshold in np.quantile(pooled, np.linspace(0.5, 1.0, 501)):
        rate = alarm_rate(per_record, float(threshold), cadence_s)
        if rate <= target:
            break
    return {
        "threshold": float(threshold),
        "false_alarms_per_hour": float(rate),
        "target_false_alarms_per_hour": target,
        "cadence_s": cadence_s,
        "monitored_hours": float(sum(len(s) for s in per_record) * cadence_s / 3600.0),
        "normal_score_percentiles": {str(q): float(np.quantile(pooled, q / 100)) for q in (50, 90, 99)},
    }


def per_record_scores(model, records: list[Recording], norm: Normalisation, stride_s: int) -> list[np.ndarray]:
    windows, index = windows_of(records, norm, stride_s)
    s = scores(model, windows)
    rec_of = np.array([i for i, _ in index], dtype=int)
    return [s[rec_of == i] for i in range(len(records))]


def load_trained(version_dir: Path, kind: str) -> torch.nn.Module:
    """A trained model of a version directory, in eval mode (for parity checks and offline scoring)."""
    saved = json.loads((version_dir / "config.json").read_text())
    model: torch.nn.Module
    if kind == "autoencoder":
        config = {**saved["autoencoder"], "window_s": Normalisation.load(version_dir / "normalisation.json").window_s}
        model = build(kind, config)
    elif kind == "lstm":
        from models.training.acidaemia import AcidaemiaConfig

        ac = AcidaemiaConfig(**saved.get("acidaemia", {}))
        model = build(kind, {"hidden": ac.hidden, "dropout": ac.dropout})
    elif kind == "false_signal":
        from models.training.false_signal import load_false_signal

        return load_false_signal(version_dir)
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    model.load_state_dict(torch.load(version_dir / f"{kind}.pt"))
    return model.eval()


def export_onnx(model: torch.nn.Module, kind: str, norm: Normalisation, path: Path) -> None:
    """The autoencoder as ONNX (the other models have their own exporters)."""
    example = torch.zeros(2, norm.window_s, 4)
    example[..., VALID] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export(model, example, path, "reconstruction")


def _export(model: torch.nn.Module, example: torch.Tensor, path: Path, extra: str) -> None:
    torch.onnx.export(
        model, (example,), str(path), input_names=[TENSOR_IN], output_names=["score", "error", extra],
        dynamic_axes={TENSOR_IN: {0: "batch"}, "score": {0: "batch"}, "error": {0: "batch"}, extra: {0: "batch"}},
        opset_version=17, dynamo=False,
    )


def next_version(models_dir: Path) -> int:
    existing = [int(p.name[1:]) for p in models_dir.glob("v*") if p.name[1:].isdigit()]
    return max(existing, default=0) + 1


def load_training_data(cfg: TrainConfig, ctu_dir: Path | None) -> tuple[str, list[Recording], list, list, list[Recording], str]:
    """(source, all CTU-UHB records or [], autoencoder train / calibration records, CTU evaluation records, description)."""
    source = cfg.source
    if source == "auto":
        source = "ctu-uhb" if ctu_dir is not None and (ctu_dir / "RECORDS").exists() else "simulator"
    if source == "ctu-uhb":
        assert ctu_dir is not None
        records = load_ctu_uhb(ctu_dir, cfg.ctu_limit)
        normal = [r for r in records if r.normal_outcome]
        train_recs, cal_recs, test_normal = split_by_record(normal, cfg.seed, (0.7, 0.15, 0.15))
        ctu_eval = test_normal + [r for r in records if not r.normal_outcome and r.ph is not None]
        desc = (f"CTU-UHB ({ctu_dir.name}): {len(records)} records, {len(normal)} with normal outcome "
                f"(pH >= 7.20, Apgar5 >= 7); autoencoder split by record {len(train_recs)}/{len(cal_recs)}/"
                f"{len(test_normal)} (train/calibration/test), seed {cfg.seed}")
        return source, records, train_recs, cal_recs, ctu_eval, desc
    if source == "simulator":
        recs = normal_simulated(cfg.sim_train_seeds, cfg.sim_duration_s)
        train_recs, cal_recs, _ = split_by_record(recs, cfg.seed, (0.7, 0.3, 0.0))
        desc = (f"simulator, scenario 'normal': {len(recs)} records of {cfg.sim_duration_s:.0f} s "
                f"(seeds {cfg.sim_train_seeds[0]}-{cfg.sim_train_seeds[-1]}), split by record "
                f"{len(train_recs)}/{len(cal_recs)} (train/calibration)")
        return source, [], train_recs, cal_recs, [], desc
    raise ValueError(f"unknown source {source!r}: auto, ctu-uhb or simulator")


def train(cfg: TrainConfig, models_dir: Path, ctu_dir: Path | None, log=print, fhrma_dir: Path | None = None) -> Path:
    """Train the models named in ``cfg.models``; returns the version directory.

    - ``autoencoder``: on normal-outcome windows (CTU-UHB, or the simulator's normal
      scenario), calibrated to ``target_false_alarms_per_hour`` on held-out normal records;
    - ``lstm``: the acidaemia-risk model, cross-validated on CTU-UHB beside the FIGO
      baselines, then fitted on every record (needs CTU-UHB: skipped on the simulator);
    - ``false_signal``: on the FHRMA recordings (``fhrma_dir``; skipped with a message
      when absent).
    A model that is skipped is not installed; the stream reports it unavailable.
    """
    t_start = time.monotonic()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    np.random.seed(cfg.seed)
    norm = Normalisation()
    source, ctu_records, train_recs, cal_recs, ctu_eval, data_desc = load_training_data(cfg, ctu_dir)
    version = next_version(models_dir)
    out = models_dir / f"v{version}"
    out.mkdir(parents=True, exist_ok=False)
    norm.save(out / "normalisation.json")
    calibration: dict = {}
    metrics: dict = {"source": source, "data": data_desc, "trained": []}
    if "autoencoder" in cfg.models:
        train_windows = (normal_ctg_windows(train_recs, norm, cfg.stride_s) if source == "ctu-uhb"
                         else windows_of(train_recs, norm, cfg.stride_s)[0])
        if len(train_windows) > cfg.max_train_windows:
            keep = np.random.default_rng(cfg.seed).choice(len(train_windows), cfg.max_train_windows, replace=False)
            train_windows = train_windows[np.sort(keep)]
        log(f"autoencoder: training on {len(train_windows)} windows from {len(train_recs)} normal records ({source})")
        metrics["train_windows"] = int(len(train_windows))
        model = fit("autoencoder", cfg.autoencoder, norm, train_windows, cfg, log)
        model.fit_normal_statistics(torch.from_numpy(train_windows))  # type: ignore[operator]
        torch.save(model.state_dict(), out / "autoencoder.pt")
        export_onnx(model, "autoencoder", norm, out / "autoencoder.onnx")
        calibration["autoencoder"] = calibrate(per_record_scores(model, cal_recs, norm, cfg.cadence_s),
                                               cfg.target_false_alarms_per_hour, cfg.cadence_s)
        sim_eval = simulated(cfg.sim_eval_seeds, duration_s=cfg.sim_duration_s)
        metrics["autoencoder"] = evaluate(model, norm, cfg, calibration["autoencoder"]["threshold"], sim_eval, ctu_eval)
        metrics["trained"].append("autoencoder")
        log(f"autoencoder: threshold {calibration['autoencoder']['threshold']:.4f} "
            f"({calibration['autoencoder']['false_alarms_per_hour']:.2f} false alarms/h), {metrics['autoencoder']}")
    if "lstm" in cfg.models:
        if ctu_records:
            from models.training.acidaemia import AcidaemiaConfig, train_acidaemia

            ac_cfg = AcidaemiaConfig(**{"seed": cfg.seed, **cfg.acidaemia})
            metrics["lstm"] = train_acidaemia(ac_cfg, ctu_records, out, log)
            calibration["lstm"] = {"cadence_s": cfg.cadence_s, "threshold": None,
                                   "note": "a probability, never an alarm threshold"}
            metrics["trained"].append("lstm")
        else:
            log("acidaemia-risk LSTM skipped: it needs the CTU-UHB records with their pH (set CTGWATCH_CTU_UHB_DIR)")
    if "false_signal" in cfg.models:
        if fhrma_dir is not None and (fhrma_dir / "annotations.json").is_file():
            from models.training.false_signal import FalseSignalConfig, train_false_signal

            fs_cfg = FalseSignalConfig(**{"seed": cfg.seed, **cfg.false_signal})
            fs_metrics = train_false_signal(fs_cfg, fhrma_dir, out, cfg.fhrma_limit, log)
            calibration["false_signal"] = {"threshold": fs_metrics["threshold"]["threshold"],
                                           "threshold_without_maternal":
                                               fs_metrics["threshold"]["threshold_without_maternal"],
                                           "min_specificity": fs_cfg.min_specificity,
                                           "cadence_s": fs_cfg.cadence_s, "chosen_on": "tuning part (FHRMA)",
                                           "verdict_delay_s": fs_cfg.verdict_delay_s,
                                           "context_s": fs_metrics["receptive_half_s"]}
            metrics["false_signal"] = {k: fs_metrics[k] for k in ("split", "threshold", "validation", "history",
                                                                  "simulator", "train_seconds", "cadence_s",
                                                                  "verdict_delay_s", "min_specificity")}
            metrics["trained"].append("false_signal")
        else:
            log(f"false-signal model skipped: no FHRMA annotations.json in {fhrma_dir} (set CTGWATCH_FHRMA_DIR)")
    (out / "calibration.json").write_text(json.dumps(calibration, indent=2))
    metrics["train_seconds"] = round(time.monotonic() - t_start, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    (out / "MODEL_CARD.md").write_text(model_card(version, cfg, data_desc, calibration, metrics))
    return out


def evaluate(model, norm: Normalisation, cfg: TrainConfig, threshold: float,
             sim_records: list[Recording], ctu_records: list[Recording]) -> dict:
    """Window AUC against the simulator's injected episodes (overall, per pattern, with a
    95% interval from resampling whole recordings); record AUC against pH < 7.05."""
    result: dict = {}
    windows, index = windows_of(sim_records, norm, cfg.cadence_s)
    s = scores(model, windows)
    kinds = [overlapping_kinds(sim_records[i].events, end - norm.window_s / 2, end) for i, end in index]
    labels = np.array([-1 if (lab := window_label(k)) is None else lab for k in kinds])
    result["sim_window_auc"] = round(auc(s[labels == 1], s[labels == 0]), 4)
    result["sim_window_auc_ci95"] = recording_bootstrap_auc(s, labels, np.array([i for i, _ in index]), cfg.seed)
    result["sim_windows"] = {"abnormal": int((labels == 1).sum()), "normal": int((labels == 0).sum())}
    result["sim_seeds"] = list(cfg.sim_eval_seeds)
    per_pattern = {}
    for kind in sorted(ABNORMAL_EVENTS):
        shows = np.array([kind in overlapping for overlapping in kinds], dtype=bool) & (labels == 1)
        if shows.any():
            per_pattern[kind] = round(auc(s[shows], s[labels == 0]), 4)
    result["sim_window_auc_per_pattern"] = per_pattern
    result["sim_recall_at_threshold"] = round(float((s[labels == 1] > threshold).mean()), 4) if (labels == 1).any() else None
    if ctu_records:
        per = per_record_scores(model, ctu_records, norm, cfg.cadence_s)
        rec_score = np.array([np.quantile(p, 0.9) if len(p) else np.nan for p in per])
        acid = np.array([r.acidaemic for r in ctu_records])
        ok = np.isfinite(rec_score)
        result["ctu_ph705_auc"] = round(auc(rec_score[ok & acid], rec_score[ok & ~acid]), 4)
        result["ctu_records"] = {"acidaemic": int((ok & acid).sum()), "other": int((ok & ~acid).sum())}
        normal_test = [p for p, r in zip(per, ctu_records) if r.normal_outcome]
        result["ctu_test_false_alarms_per_hour"] = round(alarm_rate(normal_test, threshold, cfg.cadence_s), 3)
    return result


def recording_bootstrap_auc(scores_: np.ndarray, labels: np.ndarray, recording: np.ndarray, seed: int,
                            n: int = 1000) -> list[float]:
    """95% interval of the window AUC, resampling whole recordings (windows of one trace are not independent)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(recording)
    members = {r: np.flatnonzero(recording == r) for r in ids}
    values = []
    for _ in range(n):
        take = np.concatenate([members[r] for r in rng.choice(ids, ids.size, replace=True)])
        pos, neg = scores_[take][labels[take] == 1], scores_[take][labels[take] == 0]
        if pos.size and neg.size:
            values.append(auc(pos, neg))
    return [round(float(q), 4) for q in np.quantile(values, [0.025, 0.975])] if values else []


def model_card(version: int, cfg: TrainConfig, data_desc: str, calibration: dict, metrics: dict) -> str:
    lines = [
        f"# ctgwatch models, version {version}",
        "",
        "Decision support only: these outputs are evidence beside the FIGO 2015 rules; they do not",
        "classify a CTG and never replace the rules or a clinician.",
        "",
        "## Models",
        *[line for kind, line in (
            ("autoencoder",
             "- `ctg_autoencoder`: 1-D convolutional autoencoder over a multiscale view of the last 10 min "
             "(FHR below the window's median level at 15 s, log variability and roughness over 60 s, periodicity "
             "at 3-5 cycles/min, median level, UC; models/training/nets.py), trained on FIGO-normal windows only "
             f"{cfg.autoencoder}; anomaly = distance of each code position from the normal codes (Mahalanobis) + "
             "reconstruction error with each channel scaled by its training error, per second and averaged."),
            ("lstm",
             "- `ctg_lstm`: acidaemia-risk LSTM over per-minute summaries of the last hour; outputs the probability "
             "of umbilical-artery pH < 7.05 and < 7.15 (`risk`) and the pH < 7.05 risk after each minute "
             "(`risk_course`). A trend and evidence, never an alarm."),
            ("false_signal",
             "- `ctg_false_signal`: temporal convolution network (or the mean of several, `members`) over "
             "per-second FHR / maternal HR features (models/serving/false_signal_features.py); per-second probability "
             f"that the FHR is not fetal (`p_false`); settings {_false_signal_settings(cfg)}."),
        ) if kind in metrics.get("trained", cfg.models)],
        "",
        "## Data",
        f"- {data_desc}.",
    ]
    if "autoencoder" in metrics:
        c, m = calibration["autoencoder"], metrics["autoencoder"]
        lines += [
            f"- Autoencoder: {metrics.get('train_windows', '?')} training windows (10 min, stride {cfg.stride_s} s), "
            f"seed {cfg.seed}, {cfg.epochs} epochs, Adam lr {cfg.learning_rate}; threshold {c['threshold']:.4f} gives "
            f"{c['false_alarms_per_hour']:.2f} alarms per monitored hour on held-out normal records "
            f"(target {c['target_false_alarms_per_hour']}). Simulator window AUC {m['sim_window_auc']} "
            f"(95% CI {m.get('sim_window_auc_ci95', 'n/a')}, seeds {m.get('sim_seeds', 'n/a')}), "
            f"CTU-UHB pH<7.05 AUC {m.get('ctu_ph705_auc', 'n/a')}.",
        ]
    if "lstm" in metrics:
        m = metrics["lstm"]
        lines.append(
            f"- Acidaemia LSTM: {m['repeats']} x {m['folds']}-fold stratified cross-validation on {m['records']} "
            f"records: AUC(pH<7.05) {m['lstm@7.05']['auc_mean']} (95% CI {m['lstm@7.05']['auc_ci95']}), FIGO class "
            f"{m['figo_class@7.05']['auc_mean']}, logistic regression on FIGO features "
            f"{m['logistic_figo@7.05']['auc_mean']}; Brier {m['lstm@7.05']['brier']} (prevalence-only "
            f"{m['lstm@7.05']['brier_prevalence']}). The served weights are fitted on every record.")
    if "false_signal" in metrics:
        m = metrics["false_signal"]
        v = m["validation"]["live"]
        lines.append(
            f"- False-signal model: FHRMA recordings split by record {m['split']}; threshold "
            f"{_thresholds_text(m['threshold'])} chosen on the tuning part; validation part (scored once), live: "
            f"Doppler F1 {v['DopMHR']['f1']}, scalp ECG F1 {v['ScalpECG']['f1']}, overall specificity "
            f"{v['all']['specificity']}, false minutes caught {v['all']['false_minutes_caught']}.")
        if cfg.false_signal.get("init_weights") and cfg.false_signal.get("epochs") == 0:
            lines.append("- The false-signal weights were taken as trained elsewhere (`init_weights`: "
                         "bench/false_signal_sweep.py on a GPU, same split, same train part); this run chose the "
                         "threshold on the tuning part and scored the validation part.")
    lines += ["", f"Training took {metrics.get('train_seconds', '?')} s on the machine that ran it.", "",
              "CTU-UHB: Chudáček V et al., BMC Pregnancy and Childbirth 2014;14:16 (ODC-By 1.0). FHRMA: Boudet S "
              "et al., Biosensors 2022;12(9):691."]
    return "\n".join(lines) + "\n"


def _false_signal_settings(cfg: TrainConfig) -> dict:
    """The false-signal settings as trained (paths of weights trained elsewhere shortened to their names)."""
    settings = dict(cfg.false_signal)
    if settings.get("init_weights"):
        settings["init_weights"] = [Path(p).name for p in settings["init_weights"]]
    return settings


def evaluation_markdown(version_dir: Path) -> tuple[str, str]:
    """The docs/EVALUATION.md section for a trained version: (title, body)."""
    metrics = json.loads((version_dir / "metrics.json").read_text())
    return f"Models, version {version_dir.name}", "\n".join(evaluation_lines(version_dir.name, metrics))


def evaluation_lines(name: str, metrics: dict) -> list[str]:
    lines = [f"Data: {metrics.get('data', '')}. Trained: {', '.join(metrics.get('trained', []))} "
             f"in {metrics.get('train_seconds', '?')} s.", ""]
    if "autoencoder" in metrics:
        m = metrics["autoencoder"]
        sim_w, ctu = m["sim_windows"], m.get("ctu_records", {})
        lines += [
            "### Autoencoder (`ctg_autoencoder`)", "",
            "Simulator AUC: windows of the standard scenarios whose last 5 min overlap an injected abnormal "
            "episode (decelerations, brady/tachycardia, sinusoidal, reduced variability) against windows with "
            "none; artefact windows left out. CTU-UHB AUC: each held-out record scored by the 90th percentile of "
            "its window scores, pH < 7.05 against the rest (records never used for training).", "",
            "| simulator window AUC (abnormal/normal windows) | 95% CI (recordings resampled) | recall at threshold | "
            "CTU-UHB pH<7.05 AUC | CTU-UHB test false alarms/h |", "|---|---|---|---|---|",
            f"| {m['sim_window_auc']} ({sim_w['abnormal']}/{sim_w['normal']}) | "
            f"{'-'.join(str(x) for x in m.get('sim_window_auc_ci95', [])) or 'n/a'} | {m['sim_recall_at_threshold']} | "
            f"{m.get('ctu_ph705_auc', 'n/a')} ({ctu.get('acidaemic', 0)}/{ctu.get('other', 0)}) | "
            f"{m.get('ctu_test_false_alarms_per_hour', 'n/a')} |", ""]
        if m.get("sim_window_auc_per_pattern"):
            lines += [f"Simulator seeds {m.get('sim_seeds', '?')}. Per pattern (its abnormal windows against all "
                      "normal windows): " + ", ".join(f"{k} {v}" for k, v in m["sim_window_auc_per_pattern"].items())
                      + ".", ""]
    if "lstm" in metrics:
        m = metrics["lstm"]
        lines += [
            "### Acidaemia risk (`ctg_lstm`) beside the baselines, same folds", "",
            f"{m['records']} CTU-UHB records with a pH, {m['repeats']} repeats of {m['folds']}-fold cross-validation "
            "stratified on pH < 7.05 (folds in `lstm_folds.json`); every predictor is fitted on the training folds "
            "and scores the held-out fold. AUC: mean over repeats of the pooled out-of-fold AUC, its range over "
            "repeats, and a 95% bootstrap interval (records resampled) of the repeat-averaged scores.", "",
            "| predictor | outcome | positives | AUC mean | range over repeats | 95% CI | Brier | Brier of prevalence |",
            "|---|---|---|---|---|---|---|---|"]
        for predictor, label in (("lstm", "LSTM (last hour, per-minute summaries)"),
                                 ("figo_class", "FIGO class alone"),
                                 ("logistic_figo", "logistic regression on FIGO features")):
            for cut in ("7.05", "7.15"):
                r = m[f"{predictor}@{cut}"]
                lines.append(f"| {label} | pH < {cut} | {r['positives']} | {r['auc_mean']} | "
                             f"{min(r['auc_repeats'])}-{max(r['auc_repeats'])} | {r['auc_ci95'][0]}-{r['auc_ci95'][1]} | "
                             f"{r['brier']} | {r['brier_prevalence']} |")
        lines += ["", "Reliability of the LSTM (pH < 7.05, repeat-averaged out-of-fold probabilities):", "",
                  "| predicted | records | mean predicted | observed |", "|---|---|---|---|"]
        for row in m["lstm@7.05"]["reliability"]:
            lines.append(f"| {row['bin']} | {row['records']} | {row['mean_predicted']} | {row['observed']} |")
        lines.append("")
    if "false_signal" in metrics:
        m = metrics["false_signal"]
        delay, cadence = int(m.get("verdict_delay_s", 0)), int(m.get("cadence_s", 60))
        lines += [
            "### False signal (`ctg_false_signal`) on the FHRMA validation part", "",
            f"Split by record, stratified by subset: {m['split']} (train/tuning/validation). The threshold "
            f"({_thresholds_text(m['threshold'])}) was chosen on the tuning part (highest F1 with specificity >= "
            f"{m.get('min_specificity', 0.99)}); "
            "the validation part was scored once for this version (how often across versions: docs/EVALUATION.md). "
            "Per sample at 4 Hz, on samples the experts marked and where "
            "the monitor gave a value. *live*: each second judged by the first scoring that gives it a verdict "
            f"({delay}-{delay + cadence} s of future, what the station shows at first); *settled*: judged with the "
            "whole recording around it. In brackets: 95% intervals, resampling whole recordings.", "",
            "| reading | subset | false samples | sensitivity | specificity | precision | F1 | false minutes caught |",
            "|---|---|---|---|---|---|---|---|"]
        for mode in ("live", "settled"):
            for subset in ("DopMHR", "ScalpECG", "all"):
                r = m["validation"][mode][subset]
                lines.append(f"| {mode} | {subset} | {r['false_samples']} | {_with_interval(r, 'sensitivity')} | "
                             f"{_with_interval(r, 'specificity')} | {_with_interval(r, 'precision')} | "
                             f"{_with_interval(r, 'f1')} | {r['false_minutes_caught']} ({r['false_minutes']} min) |")
    return lines


def _with_interval(figures: dict, key: str) -> str:
    """A figure with its 95% interval in brackets, where the version's metrics carry one."""
    ci = figures.get("interval_95", {})
    return f"{figures[key]} ({ci[key][0]}-{ci[key][1]})" if key in ci else f"{figures[key]}"


def _thresholds_text(chosen: dict) -> str:
    """The false-signal threshold as chosen: one, or (from v8) one with a maternal value and one without."""
    from models.serving.false_signal_features import FalseSignalThresholds

    t = FalseSignalThresholds.from_dict(chosen)
    if t.with_maternal == t.without_maternal:
        return f"{t.with_maternal:g}"
    return f"{t.with_maternal:g} with a maternal value, {t.without_maternal:g} without"
