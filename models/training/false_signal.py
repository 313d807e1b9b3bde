"""Training, threshold choice and evaluation of the false-signal model (``ctg_false_signal``).

Steps, each its own function: load the FHRMA recordings and split them by
record (models/training/false_signal_data.py) -> fit the network on random crops of the
training part, keeping the epoch that does best on the tuning part -> choose
the decision thresholds on the tuning part (the highest F1 whose specificity is
at least ``min_specificity``; from v8 one with a maternal value, one without) -> score the validation part once, per sample at
4 Hz on the samples the experts marked and the monitor gave a value (as
``ctgwatch evaluate quality`` scores the rule-based detector).

Two ways of reading the model out, because the stream sees the future of a
sample only as it arrives:

- *live*: each second judged by the first scoring that gives it a verdict: the
  stream scores every ``cadence_s`` seconds and, from v7, keeps back the verdict
  on the newest ``verdict_delay_s`` seconds of each window (the rules judge them
  meanwhile), so a second's first verdict sees ``verdict_delay_s`` to
  ``verdict_delay_s + cadence_s`` s of its future: what the central station shows
  at first;
- *settled*: each second judged with the whole recording around it: what the
  FIGO analysis of the last 30 min mostly uses once later scorings revised it.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from detectors.scoring import SampleConfusion, auc, recording_intervals
from models.serving.false_signal_features import (
    FEATURES,
    MHR_VALID,
    N_FEATURES,
    FalseSignalShape,
    FalseSignalThresholds,
    to_samples,
)
from models.training.false_signal_data import FalseSignalRecording
from models.training.nets import FalseSignalEnsemble, FalseSignalNet

#: a single network or an ensemble of them (both map ``[B, T, F]`` to probabilities ``[B, T]``)
FalseSignalModel = FalseSignalNet | FalseSignalEnsemble


@dataclass
class FalseSignalConfig:
    seed: int = 0
    split_seed: int = 0
    epochs: int = 24
    crop_s: int = 900
    batch_size: int = 32
    crops_per_epoch: int = 1600
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    # the thresholds are chosen on the tuning part as the highest F1 with at least this specificity. v8's
    # recipe (bench/false_signal_sweep/v8.json) asks 0.995 of the tuning part: v7 met 0.99 there (0.9917)
    # and not on validation (0.9882), so 74 recordings need a margin for the target to hold elsewhere
    min_specificity: float = 0.99
    # choose a second, separate threshold for seconds without a maternal value (FalseSignalThresholds;
    # from v8: on the tuning part, 2,426 of v7's 2,979 false-positive samples lay in such seconds, where
    # a deceleration looks like the mother's rate); False: one threshold for all seconds, as up to v7
    separate_maternal_threshold: bool = True
    cadence_s: int = 60  # the stream scores each patient's false-signal window this often
    # the stream keeps back the verdict on the newest seconds of each window until a later scoring
    # has seen this much of their future. A verdict on a second with no future is the least certain
    # (on the tuning part, v5's network at threshold 0.53: live F1 0.851 with 60 s held back against 0.839
    # without, both at specificity 0.9917; bench/false_signal_delay.py); the cost is that the rule-based
    # detector judges the newest 60-120 s instead of 0-60 s
    verdict_delay_s: int = 60
    # share of training crops shown without the maternal channel: a quarter of the false samples lie in
    # recordings whose maternal HR is mostly absent, where v2 caught 31% (83% with it); hiding the channel
    # on crops that have it teaches the trace's own shape as evidence
    mhr_dropout: float = 0.0
    device: str = "cpu"  # "cuda" on a GPU machine (bench/false_signal_sweep.py); the weights are moved to the CPU after
    eval_every: int = 1  # epochs between scorings of the tuning part (the best scored epoch is kept)
    # how many networks, trained alike from seeds seed, seed+1, ..., whose mean probability is served
    members: int = 1
    # state dicts to start from, one per member (e.g. trained on a GPU by bench/false_signal_sweep.py);
    # with epochs=0 they are taken as they are
    init_weights: list[str] | None = None
    # distillation: a trained teacher, as {"version_dir": ".ctgwatch/models/v4"} (a version written by
    # ctgwatch train) or as FalseSignalConfig fields (members, net, init_weights). The student learns the
    # teacher's probability on every second with a trace, mixed half and half with the experts' mark where
    # there is one: one network at the cost of one, with the ensemble's quality (v5 from the v4 ensemble,
    # which costs five networks per window)
    teacher: dict | None = None
    # the CPU default is v2's network (the served v5 is bench/false_signal_sweep/v5.json, trained on a GPU;
    # docs/EVALUATION.md): convolutions only. A GRU at an 8-s step (gru_hidden 32) did better on
    # the tuning part (live F1 0.80 vs 0.75) but worse on the validation part (0.785 vs 0.793) and the simulator
    # check, so it stays an option, not the default
    net: dict = field(default_factory=lambda: {"width": 64, "kernel": 3, "dilations": [1, 2, 4, 8, 16, 32, 64, 128, 256],
                                               "gru_hidden": 0, "gru_stride": 8})


def build_member(cfg: FalseSignalConfig) -> FalseSignalNet:
    net = dict(cfg.net)
    net["dilations"] = tuple(net["dilations"])
    return FalseSignalNet(n_features=N_FEATURES, **net)


def build_net(cfg: FalseSignalConfig) -> FalseSignalModel:
    """The network ``cfg`` describes: one, or ``members`` alike in an ensemble (the saved state dict's shape)."""
    if cfg.members > 1:
        return FalseSignalEnsemble([build_member(cfg) for _ in range(cfg.members)])
    return build_member(cfg)


def receptive_half_s(cfg: FalseSignalConfig, window_s: int = FalseSignalShape().window_s) -> int:
    """How far (s) one output looks to either side: the convolutions' reach, or the whole window with a GRU."""
    if cfg.net.get("gru_hidden"):
        return window_s
    return sum(d * (cfg.net["kernel"] - 1) // 2 for d in cfg.net["dilations"])


#: the features that carry the maternal channel (hidden together by ``mhr_dropout``)
MATERNAL_FEATURES = [FEATURES.index(name) for name in ("mhr", "mhr_valid", "fhr_minus_mhr", "log2_fhr_over_mhr")]
FHR_VALID = FEATURES.index("fhr_valid")


def _crops(records: list[FalseSignalRecording], cfg: FalseSignalConfig,
           rng: np.random.Generator) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Random ``crop_s`` crops (zero-padded when a recording is shorter), weighted by labelled seconds.

    With ``mhr_dropout``, that share of crops loses the maternal channel (as when the
    belt or the oximeter is off), so the network also learns to judge without it.
    """
    # a distilled student learns from every second with a trace (the teacher judges them all)
    weights = np.array([(r.features[:, FHR_VALID] > 0).sum() if cfg.teacher
                        else (r.labels_s >= 0).sum() for r in records], dtype=float)
    weights /= weights.sum()
    for _ in range(cfg.crops_per_epoch // cfg.batch_size):
        xs = np.zeros((cfg.batch_size, cfg.crop_s, N_FEATURES), np.float32)
        ys = np.full((cfg.batch_size, cfg.crop_s), -1, np.int8)
        for b, i in enumerate(rng.choice(len(records), cfg.batch_size, p=weights)):
            r = records[i]
            n = r.features.shape[0]
            if n <= cfg.crop_s:
                xs[b, :n], ys[b, :n] = r.features, r.labels_s
            else:
                a = int(rng.integers(0, n - cfg.crop_s + 1))
                xs[b], ys[b] = r.features[a:a + cfg.crop_s], r.labels_s[a:a + cfg.crop_s]
            if cfg.mhr_dropout and rng.random() < cfg.mhr_dropout:
                xs[b][:, MATERNAL_FEATURES] = 0.0
        yield xs, ys


def fit(train: list[FalseSignalRecording], tuning: list[FalseSignalRecording], cfg: FalseSignalConfig,
        log: Callable[[str], None] = print) -> tuple[FalseSignalModel, list[dict]]:
    """Fit ``cfg.members`` networks (seeds ``seed``, ``seed + 1``, ...); one alone, or their ensemble."""
    if cfg.init_weights is not None and len(cfg.init_weights) != cfg.members:
        raise ValueError(f"{len(cfg.init_weights)} init_weights for {cfg.members} members")
    teacher = _teacher(cfg, torch.device(cfg.device)) if cfg.epochs > 0 else None  # loaded once for all members
    members, history = [], []
    for i in range(cfg.members):
        init = cfg.init_weights[i] if cfg.init_weights else None
        net, member_history = fit_member(train, tuning, cfg, cfg.seed + i, init, teacher, log)
        members.append(net)
        history += [{"member": i, **h} for h in member_history]
    if cfg.members == 1:
        return members[0], history
    return FalseSignalEnsemble(members).eval(), history


def fit_member(train: list[FalseSignalRecording], tuning: list[FalseSignalRecording], cfg: FalseSignalConfig,
               seed: int, init_weights: str | None = None, teacher: FalseSignalModel | None = None,
               log: Callable[[str], None] = print) -> tuple[FalseSignalNet, list[dict]]:
    """Fit one network on ``train``; keep the weights of the epoch with the best per-second AUC on ``tuning``.

    Runs on ``cfg.device``; the returned network is on the CPU. ``init_weights`` starts
    from a saved state dict (``epochs=0`` takes it as it is: weights trained elsewhere).
    ``teacher`` (on ``cfg.device``): distil from it (``cfg.teacher``).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = torch.device(cfg.device)
    model = build_member(cfg)
    if init_weights:
        model.load_state_dict(weights_from_onnx(Path(init_weights)) if init_weights.endswith(".onnx")
                              else torch.load(init_weights, map_location="cpu", weights_only=True))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * (cfg.crops_per_epoch // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.learning_rate, total_steps=max(steps, 1))
    best: tuple[float, dict] | None = None
    history = []
    for epoch in range(cfg.epochs):
        t0 = time.monotonic()
        model.train()
        total, batches = 0.0, 0
        for xs, ys in _crops(train, cfg, rng):
            x = torch.from_numpy(xs).to(device)
            y = torch.from_numpy(ys.astype(np.float32)).to(device)
            mask = y >= 0
            if teacher is not None:
                with torch.no_grad():
                    soft = teacher(x)
                y = torch.where(mask, 0.5 * y + 0.5 * soft, soft)
                mask = mask | (x[:, :, FHR_VALID] > 0)
            logits = model.logits(x)
            loss = F.binary_cross_entropy_with_logits(logits[mask], y[mask])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
            batches += 1
        if (epoch + 1) % max(cfg.eval_every, 1) and epoch + 1 != cfg.epochs:
            continue
        model.eval()
        tune_auc = per_second_auc(model, tuning)
        history.append({"epoch": epoch + 1, "loss": round(total / max(batches, 1), 4), "tuning_auc": round(tune_auc, 4),
                        "seconds": round(time.monotonic() - t0, 1)})
        log(f"false-signal: epoch {epoch + 1}/{cfg.epochs} loss {total / max(batches, 1):.4f} "
            f"tuning AUC {tune_auc:.4f} ({time.monotonic() - t0:.0f} s)")
        if best is None or tune_auc > best[0]:
            best = (tune_auc, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    model.to("cpu")
    if best is not None:
        model.load_state_dict(best[1])
    return model.eval(), history


def weights_from_onnx(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of one served network, read back from its ONNX file (``export_false_signal_onnx``).

    Why: v5 was trained on a lent GPU and only its ONNX was kept; its weights, read
    back, let a later version re-choose the threshold (or fine-tune) from exactly the
    served network. The export keeps the parameter names under the serving
    wrapper's ``net.``; an ensemble's file does not map onto one network and is refused.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    state = {init.name.removeprefix("net."): torch.from_numpy(numpy_helper.to_array(init).copy())
             for init in graph.initializer if init.name.startswith("net.")}
    if not state or any(k.startswith("members.") for k in state):
        raise ValueError(f"{path} does not hold one false-signal network's named weights")
    return state


def load_false_signal(version_dir: Path) -> torch.nn.Module:
    """A version's trained false-signal network (its ``config.json`` and ``false_signal.pt``), in eval mode."""
    import json

    saved = json.loads((version_dir / "config.json").read_text())
    model = build_net(FalseSignalConfig(**saved.get("false_signal", {})))
    model.load_state_dict(torch.load(version_dir / "false_signal.pt"))
    return model.eval()


def _teacher(cfg: FalseSignalConfig, device: torch.device) -> FalseSignalModel | None:
    """The trained teacher of a distillation (``cfg.teacher``), on ``device``, or None."""
    if not cfg.teacher:
        return None
    if "version_dir" in cfg.teacher:
        trained = load_false_signal(Path(cfg.teacher["version_dir"]))
        if not isinstance(trained, (FalseSignalNet, FalseSignalEnsemble)):
            raise TypeError(f"{cfg.teacher['version_dir']} holds no false-signal network")
        return trained.to(device).eval()
    teacher_cfg = FalseSignalConfig(**{**cfg.teacher, "epochs": 0, "device": "cpu"})
    model, _ = fit([], [], teacher_cfg, log=lambda _: None)
    return model.to(device).eval()


#: A judge maps per-second features ``[B, T, F]`` to probabilities ``[B, T]`` (torch or the deployed ONNX).
Judge = Callable[[np.ndarray], np.ndarray]


def torch_judge(model: torch.nn.Module) -> Judge:
    """The network itself, on whichever device its weights are."""
    device = next(model.parameters()).device

    @torch.no_grad()
    def run(batch: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)).cpu().numpy()
    return run


def onnx_judge(path: Path) -> Judge:
    """The served ONNX file through onnxruntime: exactly what Triton computes."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(["p_false"], {"signal": np.ascontiguousarray(batch, dtype=np.float32)})[0]
    return run


def _as_judge(model: FalseSignalModel | Judge) -> Judge:
    return torch_judge(model) if isinstance(model, torch.nn.Module) else model


def predict_settled(model: FalseSignalModel | Judge, features: np.ndarray) -> np.ndarray:
    """Per-second probability with the whole recording as context."""
    if features.shape[0] == 0:
        return np.zeros(0, np.float32)
    return _as_judge(model)(features[None])[0]


def predict_live(model: FalseSignalModel | Judge, features: np.ndarray, cadence_s: int, context_s: int,
                 window_s: int = FalseSignalShape().window_s, delay_s: int = 0) -> np.ndarray:
    """Per-second probability from the first scoring that gives the second a verdict.

    The stream scores the last ``window_s`` seconds every ``cadence_s`` s and uses
    each scoring's verdict up to ``delay_s`` seconds before the window's end
    (stream/worker/false_signal.py), so the scoring at ``e`` first judges the
    seconds from ``previous e - delay_s`` to ``e - delay_s``; a scoring at the
    recording's end judges what is left, with less future than the stream's next
    scoring would give those seconds while monitoring goes on (when it stops, the
    stream leaves them to the rules). When an output depends
    on only ``context_s`` seconds either side (convolutions), a window of
    ``context_s + cadence_s + delay_s`` seconds gives the same outputs (exactly) at
    a fraction of the cost; otherwise the stream's own window.
    """
    n = features.shape[0]
    out = np.zeros(n, np.float32)
    ends = list(range(cadence_s, n, cadence_s)) + [n]
    span = min(context_s + cadence_s + delay_s, window_s)
    batch: list[np.ndarray] = []
    spans: list[tuple[int, int, int]] = []

    judge = _as_judge(model)

    def flush() -> None:
        if not batch:
            return
        probs = judge(np.stack(batch))
        for p, (a, b, end) in zip(probs, spans):
            first = span - (end - a)
            out[a:b] = p[first:first + (b - a)]
        batch.clear()
        spans.clear()

    for i, end in enumerate(ends):
        start = max(0, (ends[i - 1] if i else 0) - delay_s)
        judged_to = end if end == n else end - delay_s
        if judged_to <= start:
            continue
        window = np.zeros((span, features.shape[1]), np.float32)
        piece = features[max(0, end - span):end]
        window[span - piece.shape[0]:] = piece
        batch.append(window)
        spans.append((start, judged_to, end))
        if len(batch) == 64:
            flush()
    flush()
    return out


def per_second_auc(model: FalseSignalModel, records: list[FalseSignalRecording]) -> float:
    probs, labels = [], []
    for r in records:
        p = predict_settled(model, r.features)
        keep = r.labels_s >= 0
        probs.append(p[keep])
        labels.append(r.labels_s[keep])
    p, y = np.concatenate(probs), np.concatenate(labels)
    return auc(p[y == 1], p[y == 0]) if (y == 1).any() and (y == 0).any() else float("nan")


#: thresholds tried for seconds with a maternal reference (and for all, with one threshold)
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)
#: thresholds tried for seconds without one: a coarser grid, as a second parameter fitted on 74 recordings
THRESHOLD_GRID_WITHOUT_MATERNAL = np.round(np.arange(0.05, 0.96, 0.05), 2)


def choose_thresholds(probs: list[np.ndarray], records: list[FalseSignalRecording], min_specificity: float,
                      separate_maternal: bool = False) -> dict:
    """The thresholds with the highest per-sample F1 among those with specificity >= ``min_specificity``.

    One threshold for all seconds, or (``separate_maternal``) a pair: one for seconds
    with a maternal value (``THRESHOLD_GRID``) and one for seconds without
    (``THRESHOLD_GRID_WITHOUT_MATERNAL``). Ties go to the lower thresholds. Returns
    ``threshold`` (with a maternal value), ``threshold_without_maternal`` and the
    pooled figures at them.
    """
    # per-sample scored probabilities, split by whether the second had a maternal value
    groups: dict[bool, tuple[list[np.ndarray], list[np.ndarray]]] = {True: ([], []), False: ([], [])}
    for p, r in zip(probs, records):
        scored = (r.labels >= 0) & (r.fhr > 0)
        p_samples = to_samples(np.asarray(p, dtype=float), r.fhr.size)[scored]
        maternal = to_samples(r.features[:, MHR_VALID] > 0, r.fhr.size)[scored]
        truth = r.labels[scored] == 1
        for flag in (True, False):
            groups[flag][0].append(p_samples[maternal == flag])
            groups[flag][1].append(truth[maternal == flag])

    def counts(flag: bool, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Per threshold of ``grid``: true positives and false positives in one group; its positives and negatives."""
        p, y = np.concatenate(groups[flag][0]), np.concatenate(groups[flag][1])
        pos, neg = np.sort(p[y]), np.sort(p[~y])
        tp = pos.size - np.searchsorted(pos, grid, side="left")
        fp = neg.size - np.searchsorted(neg, grid, side="left")
        return tp, fp, pos.size, neg.size

    grid_without = THRESHOLD_GRID_WITHOUT_MATERNAL if separate_maternal else THRESHOLD_GRID
    tp_m, fp_m, pos_m, neg_m = counts(True, THRESHOLD_GRID)
    tp_n, fp_n, pos_n, neg_n = counts(False, grid_without)
    # (index with a maternal value, index without), in ascending order of both
    pairs = (itertools.product(range(THRESHOLD_GRID.size), range(grid_without.size)) if separate_maternal
             else ((i, i) for i in range(THRESHOLD_GRID.size)))
    best = {"threshold": 0.5, "threshold_without_maternal": 0.5, "f1": -1.0}
    for i, j in pairs:
        tp, fp = int(tp_m[i] + tp_n[j]), int(fp_m[i] + fp_n[j])
        c = SampleConfusion(tp=tp, fp=fp, fn=pos_m + pos_n - tp, tn=neg_m + neg_n - fp)
        if c.specificity >= min_specificity and c.f1 > best["f1"]:
            best = {"threshold": float(THRESHOLD_GRID[i]), "threshold_without_maternal": float(grid_without[j]),
                    "f1": round(c.f1, 4), "specificity": round(c.specificity, 4), "sensitivity": round(c.sensitivity, 4)}
    return best


def score_recording(confusion: SampleConfusion, false_s: np.ndarray, r: FalseSignalRecording) -> None:
    """Add one recording's per-sample verdicts (from per-second ones) to a confusion matrix."""
    confusion.add_recording(to_samples(false_s.astype(bool), r.fhr.size), r.labels, r.fhr > 0)


def evaluate_split(model: FalseSignalModel | Judge, records: list[FalseSignalRecording], thresholds: FalseSignalThresholds,
                   cfg: FalseSignalConfig, context_s: int | None = None,
                   modes: tuple[str, ...] = ("live", "settled")) -> dict[str, dict[str, dict]]:
    """Per reading-out mode (``modes``: live, settled) and subset (DopMHR, ScalpECG, all): per-sample
    figures, each with its 95% interval from resampling whole recordings (``interval_95``)."""
    out: dict[str, dict[str, dict]] = {}
    context = receptive_half_s(cfg) if context_s is None else context_s
    for mode in modes:
        per_recording: dict[str, list[SampleConfusion]] = {"DopMHR": [], "ScalpECG": [], "all": []}
        for r in records:
            p = (predict_live(model, r.features, cfg.cadence_s, context, delay_s=cfg.verdict_delay_s) if mode == "live"
                 else predict_settled(model, r.features))
            confusion = SampleConfusion()
            score_recording(confusion, thresholds.false_seconds(p, r.features), r)
            for key in (r.subset, "all"):
                per_recording[key].append(confusion)
        out[mode] = {}
        for key, confusions in per_recording.items():
            pooled = SampleConfusion()
            for c in confusions:
                pooled.merge(c)
            out[mode][key] = {**pooled.as_dict(), "recordings": len(confusions),
                              "interval_95": recording_intervals(confusions)}
    return out


def export_false_signal_onnx(model: FalseSignalModel, window_s: int, path: Path) -> None:
    from models.training.nets import FalseSignalServed

    example = torch.zeros(2, window_s, N_FEATURES)
    example[..., 1] = 1.0
    torch.onnx.export(
        FalseSignalServed(model).eval(), (example,), str(path), input_names=["signal"],
        output_names=["false_fraction", "p_false"],
        # time is dynamic too, so offline scoring can read a whole recording; Triton fixes it at window_s
        dynamic_axes={"signal": {0: "batch", 1: "time"}, "false_fraction": {0: "batch"}, "p_false": {0: "batch", 1: "time"}},
        opset_version=17, dynamo=False,
    )


def train_false_signal(cfg: FalseSignalConfig, directory: Path, out_dir: Path, limit: int | None = None,
                       log: Callable[[str], None] = print) -> dict:
    """Split, fit, choose the threshold, score the validation part once; write weights, ONNX, split, metrics.

    Returns the metrics (also written to ``false_signal_metrics.json``).
    """
    from models.training.false_signal_data import annotated_names, load_fhrma, split_names

    t_start = time.monotonic()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    shape = FalseSignalShape()
    names = annotated_names(directory)
    if limit is not None:  # a tiny run (CI): every subset still represented
        names = _spread(names, limit)
    split = split_names(names, cfg.split_seed)
    data = {part: load_fhrma(directory, split[part], shape) for part in split}
    log(f"false-signal: {len(names)} annotated FHRMA recordings, split by record "
        f"{len(split['train'])}/{len(split['tuning'])}/{len(split['validation'])} (train/tuning/validation)")
    model, history = fit(data["train"], data["tuning"], cfg, log)
    tuning_probs = [predict_live(model, r.features, cfg.cadence_s, receptive_half_s(cfg), delay_s=cfg.verdict_delay_s)
                    for r in data["tuning"]]
    chosen = choose_thresholds(tuning_probs, data["tuning"], cfg.min_specificity, cfg.separate_maternal_threshold)
    log(f"false-signal: thresholds chosen on the tuning part ({chosen})")
    thresholds = FalseSignalThresholds.from_dict(chosen)
    validation = evaluate_split(model, data["validation"], thresholds, cfg)
    log(f"false-signal: validation (scored once) {validation['live']['all']}")
    simulator = simulator_check(model, thresholds, cfg, seeds=(40,) if limit is not None else (40, 41, 42, 43, 44))
    log(f"false-signal: simulator check {simulator}")
    metrics = {
        "split": {part: len(v) for part, v in split.items()},
        "threshold": chosen, "history": history, "validation": validation, "simulator": simulator,
        "receptive_half_s": receptive_half_s(cfg), "train_seconds": round(time.monotonic() - t_start, 1),
        "cadence_s": cfg.cadence_s, "verdict_delay_s": cfg.verdict_delay_s, "min_specificity": cfg.min_specificity,
    }
    torch.save(model.state_dict(), out_dir / "false_signal.pt")
    export_false_signal_onnx(model, shape.window_s, out_dir / "false_signal.onnx")
    (out_dir / "false_signal_shape.json").write_text(json.dumps(shape.as_dict(), indent=2))
    (out_dir / "false_signal_split.json").write_text(json.dumps(split, indent=1))
    (out_dir / "false_signal_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _spread(names: list[str], limit: int) -> list[str]:
    """``limit`` names spread over both subsets (a tiny training run for CI)."""
    from models.training.false_signal_data import SUBSETS, subset_of

    per = max(limit // len(SUBSETS), 1)
    return sorted(n for s in SUBSETS for n in [m for m in names if subset_of(m) == s][:per])


def simulator_check(model: FalseSignalModel | Judge, thresholds: FalseSignalThresholds, cfg: FalseSignalConfig,
                    seeds: tuple[int, ...] = (40, 41, 42, 43, 44), context_s: int | None = None) -> dict[str, dict]:
    """A safety check on the simulator's standard scenarios (ground truth known, FHRMA-independent).

    Per scenario, read out live: the share of *fetal* samples judged false (a fetal
    bradycardia or deceleration near the mother's rate must stay fetal, or the
    analysis would drop the very pattern that matters) and the share of injected
    false samples (maternal capture, halving/doubling) caught.
    """
    from models.serving.false_signal_features import false_signal_inputs
    from stream.sources.ctg_simulator import simulate_ctg, standard_scenarios

    context = receptive_half_s(cfg) if context_s is None else context_s
    out: dict[str, dict] = {}
    for scenario in standard_scenarios():
        fetal_called, fetal, false_caught, false_n = 0, 0, 0, 0
        for seed in seeds:
            sim = simulate_ctg(scenario, seed=seed)
            features = false_signal_inputs(sim.fhr, sim.mhr, sim.uc, "ultrasound")
            p = predict_live(model, features, cfg.cadence_s, context, delay_s=cfg.verdict_delay_s)
            judged = to_samples(thresholds.false_seconds(p, features), sim.fhr.size)
            truth = np.zeros(sim.fhr.size, bool)
            for e in sim.events:
                if e.kind in ("maternal_hr_capture", "halving_doubling"):
                    truth[int(e.start_s * 4):int(e.end_s * 4)] = True
            signal = sim.fhr > 0
            fetal_called += int((judged & ~truth & signal).sum())
            fetal += int((~truth & signal).sum())
            false_caught += int((judged & truth & signal).sum())
            false_n += int((truth & signal).sum())
        out[scenario.name] = {"fetal_judged_false": round(fetal_called / max(fetal, 1), 4),
                              "false_caught": round(false_caught / false_n, 4) if false_n else None}
    return out
