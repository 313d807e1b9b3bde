"""Compare false-signal network configurations on the FHRMA tuning part, in parallel, on a GPU.

Why a separate script: ``ctgwatch train`` fits one configuration on the CPU in
minutes; choosing a network needs several fitted for much longer, which only a
lent GPU machine (the ``device`` tool) does in its few minutes. This script
needs only numpy, scipy and torch (what such a machine has), loads the
``train`` and ``tuning`` parts of the same record-level split as
``ctgwatch train`` (models/training/false_signal_data.py) and never reads the
``validation`` part: choosing among configurations is tuning, and the
validation part stays for the one scoring of the chosen one, on this machine:

    python bench/false_signal_sweep.py --fhrma-dir ../shared/data/fhrma-fs --out /tmp/sweep \
        --configs bench/false_signal_sweep/round1.json --device cuda

Per configuration it writes ``<name>.pt`` (the state dict of the best tuning
epoch) and ``<name>.json`` (config, history, the threshold chosen on the tuning
part with its live and settled figures per subset, seconds), and
``sweep.json`` with all of them. Then, here, on the CPU::

    ctgwatch train --models false_signal --false-signal-config <name>.json --false-signal-weights <name>.pt

takes the chosen weights as they are (no fitting), chooses the threshold on the
tuning part again and scores the validation part once.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.serving.false_signal_features import FalseSignalThresholds  # noqa: E402
from models.training.false_signal import (  # noqa: E402
    FalseSignalConfig,
    _spread,
    choose_thresholds,
    evaluate_split,
    fit,
    predict_live,
    receptive_half_s,
)
from models.training.false_signal_data import FalseSignalRecording, annotated_names, load_recording, split_names  # noqa: E402

_DATA: dict[str, list[FalseSignalRecording]] = {}


def _load_one(args: tuple[str, str, dict]) -> FalseSignalRecording:
    directory, name, annotation = args
    return load_recording(Path(directory), name, annotation)


def load_parts(directory: Path, split_seed: int, workers: int,
               limit: int | None = None) -> tuple[dict[str, list[str]], dict[str, list[FalseSignalRecording]]]:
    names = annotated_names(directory)
    annotations = json.loads((directory / "annotations.json").read_text())
    split = split_names(_spread(names, limit) if limit else names, split_seed)
    parts: dict[str, list[FalseSignalRecording]] = {}
    with mp.get_context("fork").Pool(workers) as pool:
        for part in ("train", "tuning"):  # never the validation part
            parts[part] = pool.map(_load_one, [(str(directory), n, annotations.get(n, {})) for n in split[part]])
    return split, parts


def run_config(job: tuple[str, dict, str, str]) -> dict:
    """Fit one configuration (in its own process) and score it on the tuning part."""
    import torch

    name, overrides, out_dir, device = job
    torch.set_num_threads(2)
    cfg = FalseSignalConfig(**{**overrides, "device": device})
    t0 = time.monotonic()
    lines: list[str] = []
    model, history = fit(_DATA["train"], _DATA["tuning"], cfg, log=lambda m: lines.append(f"{name}: {m}"))
    fit_s = time.monotonic() - t0
    model.to(device)
    tuning = _DATA["tuning"]
    probs = [predict_live(model, r.features, cfg.cadence_s, receptive_half_s(cfg), delay_s=cfg.verdict_delay_s)
             for r in tuning]
    chosen = choose_thresholds(probs, tuning, cfg.min_specificity, cfg.separate_maternal_threshold)
    figures = evaluate_split(model, tuning, FalseSignalThresholds.from_dict(chosen), cfg)
    throughput = _windows_per_second(model, device)
    model.to("cpu")
    torch.save(model.state_dict(), Path(out_dir) / f"{name}.pt")
    result = {"name": name, "config": {k: v for k, v in asdict(cfg).items() if k not in ("init_weights",)},
              "history": history, "threshold": chosen, "tuning": figures,
              "fit_seconds": round(fit_s, 1),
              "windows_per_s_batch256": throughput, "parameters": sum(p.numel() for p in model.parameters())}
    (Path(out_dir) / f"{name}.json").write_text(json.dumps(result, indent=1))
    print("\n".join(lines[-3:]), flush=True)
    print(f"{name}: tuning live all {figures['live']['all']} settled all {figures['settled']['all']} "
          f"({fit_s:.0f} s)", flush=True)
    return result


def _windows_per_second(model, device: str, batch: int = 256, window_s: int = 600, repeats: int = 10) -> float:
    """Served-shape inference throughput of the network in torch on ``device`` (10-min windows, batch 256)."""
    import torch

    from models.serving.false_signal_features import N_FEATURES

    x = torch.zeros(batch, window_s, N_FEATURES, device=device)
    x[..., 1] = 1.0
    with torch.no_grad():
        model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return round(batch * repeats / (time.perf_counter() - t0), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fhrma-dir", type=Path, required=True)
    parser.add_argument("--configs", type=Path, required=True, help="JSON object: name -> FalseSignalConfig overrides")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--only", default="", help="comma-separated names to run (default: all)")
    parser.add_argument("--load-workers", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="a few recordings only (a check of the script)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    configs = json.loads(args.configs.read_text())
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only.split(",")}
    t0 = time.monotonic()
    split, parts = load_parts(args.fhrma_dir, split_seed=0, workers=args.load_workers, limit=args.limit)
    _DATA.update(parts)
    print(f"loaded {len(parts['train'])} train / {len(parts['tuning'])} tuning recordings in "
          f"{time.monotonic() - t0:.0f} s", flush=True)
    # fork after loading (the children share the arrays); CUDA starts in each child only
    with mp.get_context("fork").Pool(len(configs)) as pool:
        results = pool.map(run_config, [(n, c, str(args.out), args.device) for n, c in configs.items()], chunksize=1)
    summary = {"command": " ".join(sys.argv), "machine": platform.node(), "device": args.device,
               "split_sizes": {k: len(v) for k, v in split.items()}, "seconds": round(time.monotonic() - t0, 1),
               "results": [{k: r[k] for k in ("name", "threshold", "fit_seconds", "windows_per_s_batch256", "parameters")}
                           | {"live": r["tuning"]["live"], "settled": r["tuning"]["settled"]} for r in results]}
    (args.out / "sweep.json").write_text(json.dumps(summary, indent=1))
    for r in results:
        live = r["tuning"]["live"]
        print(f"{r['name']:>14}: live F1 all {live['all']['f1']} dop {live['DopMHR']['f1']} scalp "
              f"{live['ScalpECG']['f1']} spec {live['all']['specificity']} minutes {live['all']['false_minutes_caught']}"
              f" | settled F1 {r['tuning']['settled']['all']['f1']} ({r['fit_seconds']} s)")


if __name__ == "__main__":
    main()
