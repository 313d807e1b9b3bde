"""``ctgwatch train``: train, calibrate, evaluate and export both anomaly models.

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
from models.data import Recording, load_ctu_uhb, normal_simulated, simulated, split_by_record, window_label
from models.features import VALID, Normalisation, sliding_windows
from models.nets import TENSOR_IN, build

MODEL_KINDS = ("lstm", "autoencoder")


@dataclass
class TrainConfig:
    source: str = "auto"  # auto (CTU-UHB when present), ctu-uhb, simulator
    seed: int = 0
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 3e-3
    stride_s: int = 120  # training windows overlap by 8 of 10 min
    cadence_s: int = 60  # the stream scores a window per patient per minute
    max_train_windows: int = 12000
    target_false_alarms_per_hour: float = 0.5
    ctu_limit: int | None = None
    sim_train_seeds: list[int] = field(default_factory=lambda: list(range(100, 112)))
    sim_eval_seeds: list[int] = field(default_factory=lambda: [10, 11, 12])
    sim_duration_s: float = 3600.0
    lstm: dict = field(default_factory=lambda: {"hidden": 32, "layers": 1, "horizon_s": 10})
    autoencoder: dict = field(default_factory=lambda: {"width": 16, "code_channels": 8})


def windows_of(records: list[Recording], norm: Normalisation, stride_s: int) -> tuple[np.ndarray, list[tuple[int, float]]]:
    chunks, index = [], []
    for i, r in enumerate(records):
        w, ends = sliding_windows(r.fhr, r.uc, r.mhr, r.fs, norm, stride_s)
        chunks.append(w)
        index += [(i, float(e)) for e in ends]
    if not chunks:
        return np.zeros((0, norm.window_s, 4), np.float32), []
    return np.concatenate(chunks), index


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
    config = json.loads((version_dir / "config.json").read_text())[kind]
    if kind == "autoencoder":
        config = {**config, "window_s": Normalisation.load(version_dir / "normalisation.json").window_s}
    model = build(kind, config)
    model.load_state_dict(torch.load(version_dir / f"{kind}.pt"))
    return model.eval()


def export_onnx(model: torch.nn.Module, kind: str, norm: Normalisation, path: Path) -> None:
    example = torch.zeros(2, norm.window_s, 4)
    example[..., VALID] = 1.0
    extra = "forecast" if kind == "lstm" else "reconstruction"
    with warnings.catch_warnings():
        # The LSTM warning concerns initial states passed per batch; ours start at zero for
        # every window, and tests compare ONNX and torch at several batch sizes.
        warnings.simplefilter("ignore")
        _export(model, example, path, extra)


def _export(model: torch.nn.Module, example: torch.Tensor, path: Path, extra: str) -> None:
    torch.onnx.export(
        model, (example,), str(path), input_names=[TENSOR_IN], output_names=["score", "error", extra],
        dynamic_axes={TENSOR_IN: {0: "batch"}, "score": {0: "batch"}, "error": {0: "batch"}, extra: {0: "batch"}},
        opset_version=17, dynamo=False,
    )


def next_version(models_dir: Path) -> int:
    existing = [int(p.name[1:]) for p in models_dir.glob("v*") if p.name[1:].isdigit()]
    return max(existing, default=0) + 1


def train(cfg: TrainConfig, models_dir: Path, ctu_dir: Path | None, log=print) -> Path:
    """Train both models; returns the version directory."""
    t_start = time.monotonic()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    np.random.seed(cfg.seed)
    norm = Normalisation()
    source = cfg.source
    if source == "auto":
        source = "ctu-uhb" if ctu_dir is not None and (ctu_dir / "RECORDS").exists() else "simulator"
    ctu_eval: list[Recording] = []
    if source == "ctu-uhb":
        assert ctu_dir is not None
        records = load_ctu_uhb(ctu_dir, cfg.ctu_limit)
        normal = [r for r in records if r.normal_outcome]
        train_recs, cal_recs, test_normal = split_by_record(normal, cfg.seed, (0.7, 0.15, 0.15))
        ctu_eval = test_normal + [r for r in records if not r.normal_outcome and r.ph is not None]
        data_desc = (f"CTU-UHB ({ctu_dir.name}): {len(records)} records, {len(normal)} with normal outcome "
                     f"(pH >= 7.20, Apgar5 >= 7); split by record {len(train_recs)}/{len(cal_recs)}/{len(test_normal)} "
                     f"(train/calibration/test), seed {cfg.seed}")
    elif source == "simulator":
        recs = normal_simulated(cfg.sim_train_seeds, cfg.sim_duration_s)
        train_recs, cal_recs, _ = split_by_record(recs, cfg.seed, (0.7, 0.3, 0.0))
        data_desc = (f"simulator, scenario 'normal': {len(recs)} records of {cfg.sim_duration_s:.0f} s "
                     f"(seeds {cfg.sim_train_seeds[0]}-{cfg.sim_train_seeds[-1]}), split by record "
                     f"{len(train_recs)}/{len(cal_recs)} (train/calibration)")
    else:
        raise ValueError(f"unknown source {source!r}: auto, ctu-uhb or simulator")

    train_windows, _ = windows_of(train_recs, norm, cfg.stride_s)
    if len(train_windows) > cfg.max_train_windows:
        keep = np.random.default_rng(cfg.seed).choice(len(train_windows), cfg.max_train_windows, replace=False)
        train_windows = train_windows[np.sort(keep)]
    log(f"training on {len(train_windows)} windows from {len(train_recs)} records ({source})")

    version = next_version(models_dir)
    out = models_dir / f"v{version}"
    out.mkdir(parents=True, exist_ok=False)
    norm.save(out / "normalisation.json")
    sim_eval = simulated(cfg.sim_eval_seeds, duration_s=cfg.sim_duration_s)
    calibration, metrics = {}, {"source": source, "train_windows": int(len(train_windows))}
    for kind in MODEL_KINDS:
        model = fit(kind, getattr(cfg, kind if kind == "lstm" else "autoencoder"), norm, train_windows, cfg, log)
        torch.save(model.state_dict(), out / f"{kind}.pt")
        export_onnx(model, kind, norm, out / f"{kind}.onnx")
        calibration[kind] = calibrate(per_record_scores(model, cal_recs, norm, cfg.cadence_s),
                                      cfg.target_false_alarms_per_hour, cfg.cadence_s)
        metrics[kind] = evaluate(model, norm, cfg, calibration[kind]["threshold"], sim_eval, ctu_eval)
        log(f"{kind}: threshold {calibration[kind]['threshold']:.4f} "
            f"({calibration[kind]['false_alarms_per_hour']:.2f} false alarms/h), {metrics[kind]}")
    (out / "calibration.json").write_text(json.dumps(calibration, indent=2))
    metrics["train_seconds"] = round(time.monotonic() - t_start, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    (out / "MODEL_CARD.md").write_text(model_card(version, cfg, data_desc, calibration, metrics))
    return out


def evaluate(model, norm: Normalisation, cfg: TrainConfig, threshold: float,
             sim_records: list[Recording], ctu_records: list[Recording]) -> dict:
    """Window AUC against the simulator's injected episodes; record AUC against pH < 7.05."""
    result: dict = {}
    windows, index = windows_of(sim_records, norm, cfg.cadence_s)
    s = scores(model, windows)
    labels = np.array([
        -1 if (lab := window_label(sim_records[i].events, end - norm.window_s / 2, end)) is None else lab
        for i, end in index
    ])
    result["sim_window_auc"] = round(auc(s[labels == 1], s[labels == 0]), 4)
    result["sim_windows"] = {"abnormal": int((labels == 1).sum()), "normal": int((labels == 0).sum())}
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


def model_card(version: int, cfg: TrainConfig, data_desc: str, calibration: dict, metrics: dict) -> str:
    lines = [
        f"# ctgwatch anomaly models, version {version}",
        "",
        "Decision support only: these scores flag windows that differ from normal-outcome traces;",
        "they do not classify a CTG and never replace the FIGO/NICE rules or a clinician.",
        "",
        "## Models",
        f"- `ctg_lstm`: LSTM forecaster {cfg.lstm}; anomaly = masked squared error of the FHR forecast "
        f"{cfg.lstm.get('horizon_s', 10)} s ahead, per second and averaged over the window.",
        f"- `ctg_autoencoder`: 1-D convolutional autoencoder {cfg.autoencoder}; anomaly = masked "
        "reconstruction error of FHR (+0.25 x UC), per second and averaged.",
        "- Input `window` [batch, 600, 4]: 10 min at 1 Hz of FHR, UC, maternal HR, FHR-valid mask "
        "(models/features.py); outputs `score` [batch, 1], `error` [batch, 600].",
        "",
        "## Data",
        f"- {data_desc}.",
        f"- Training windows: {metrics['train_windows']} (10 min, stride {cfg.stride_s} s, windows with < 50 % "
        "valid FHR skipped); seed " + str(cfg.seed) + f", {cfg.epochs} epochs, Adam lr {cfg.learning_rate}.",
        "",
        "## Calibration (held-out normal records)",
    ]
    for kind, c in calibration.items():
        lines.append(f"- {kind}: threshold {c['threshold']:.4f} gives {c['false_alarms_per_hour']:.2f} alarms per "
                     f"monitored hour (target {c['target_false_alarms_per_hour']}) over {c['monitored_hours']:.1f} h, "
                     f"scoring every {c['cadence_s']} s.")
    lines += ["", "## Evaluation", "", "| model | simulator window AUC | recall at threshold | CTU-UHB pH<7.05 AUC | "
              "CTU-UHB test false alarms/h |", "|---|---|---|---|---|"]
    for kind in MODEL_KINDS:
        m = metrics[kind]
        lines.append(f"| {kind} | {m['sim_window_auc']} | {m['sim_recall_at_threshold']} | "
                     f"{m.get('ctu_ph705_auc', 'n/a')} | {m.get('ctu_test_false_alarms_per_hour', 'n/a')} |")
    lines += ["", f"Training took {metrics.get('train_seconds', '?')} s on the machine that ran it.", "",
              "CTU-UHB: Chudáček V et al., BMC Pregnancy and Childbirth 2014;14:16 (ODC-By 1.0)."]
    return "\n".join(lines) + "\n"


def evaluation_markdown(version_dir: Path) -> tuple[str, str]:
    """The docs/EVALUATION.md section for a trained version: (title, body)."""
    metrics = json.loads((version_dir / "metrics.json").read_text())
    calibration = json.loads((version_dir / "calibration.json").read_text())
    cfg = json.loads((version_dir / "config.json").read_text())
    card_data = next((line[2:] for line in (version_dir / "MODEL_CARD.md").read_text().splitlines()
                      if line.startswith("- ") and ("CTU-UHB (" in line or "simulator, scenario" in line)), "")
    rows = []
    for kind in MODEL_KINDS:
        m, c = metrics[kind], calibration[kind]
        sim_w = m["sim_windows"]
        ctu = m.get("ctu_records", {})
        rows.append(
            f"| {kind} | {c['threshold']:.4f} | {c['false_alarms_per_hour']:.2f} | "
            f"{m.get('ctu_test_false_alarms_per_hour', 'n/a')} | {m['sim_window_auc']} "
            f"({sim_w['abnormal']}/{sim_w['normal']}) | {m['sim_recall_at_threshold']} | "
            f"{m.get('ctu_ph705_auc', 'n/a')} ({ctu.get('acidaemic', 0)}/{ctu.get('other', 0)}) |"
        )
    body = "\n".join([
        f"Command: `ctgwatch train --source {metrics['source']} --epochs {cfg['epochs']} --seed {cfg['seed']}` "
        f"then `ctgwatch evaluate models {version_dir.name}`. Data: {card_data}",
        "",
        f"Thresholds are calibrated on held-out normal-outcome records for at most "
        f"{cfg['target_false_alarms_per_hour']} alarms per monitored hour, scoring each patient's 10-min window "
        f"every {cfg['cadence_s']} s (consecutive windows above threshold = one alarm). Simulator AUC: windows of "
        f"the standard scenarios (seeds {', '.join(map(str, cfg['sim_eval_seeds']))}) whose last 5 min overlap an "
        "injected abnormal episode (decelerations, brady/tachycardia, sinusoidal, reduced variability) against "
        "windows with none; artefact windows left out. CTU-UHB AUC: each held-out record scored by the 90th "
        "percentile of its window scores, pH < 7.05 against the rest (records never used for training).",
        "",
        "| model | threshold | calibration false alarms/h | CTU-UHB test false alarms/h | simulator window AUC "
        "(abnormal/normal windows) | simulator recall at threshold | CTU-UHB pH<7.05 AUC (acidaemic/other) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])
    return f"Anomaly models, version {version_dir.name}", body
