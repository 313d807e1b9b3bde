"""Benchmark: the served models through the embedded Triton (CPU), by batch size,
next to the same ONNX files in-process (onnxruntime) and the torch models.

Run: python bench/triton_models.py   (starts its own Triton on free ports with the
shipped repository infra/triton/model_repository; writes a docs/BENCHMARKS.md section)
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnxruntime as ort  # noqa: E402
import tritonclient.grpc as tgrpc  # noqa: E402

from bench._report import write_section  # noqa: E402
from infra.launcher.process import ManagedProcess  # noqa: E402
from infra.launcher.services import Triton  # noqa: E402
from infra.launcher.stack import wait_ready  # noqa: E402
from models.serving.features import Normalisation, window_tensor  # noqa: E402
from models.serving.repository import TRITON_NAMES, latest_onnx  # noqa: E402
from stream.core.ports import free_port  # noqa: E402
from stream.core.settings import load_settings  # noqa: E402
from stream.sources.ctg_simulator import simulate_ctg, standard_scenarios  # noqa: E402

BATCHES = (1, 8, 32, 64, 128, 256)


def windows(n: int, window_s: int = 600) -> np.ndarray:
    sim = simulate_ctg(standard_scenarios()[3], seed=1)
    norm = Normalisation(window_s=window_s)
    k = 4 * window_s
    one = [window_tensor(sim.fhr[max(0, a + 2400 - k) : a + 2400], sim.uc[max(0, a + 2400 - k) : a + 2400],
                         sim.mhr[max(0, a + 2400 - k) : a + 2400], 4.0, norm) for a in range(0, 4 * 3000, 400)]
    return np.stack([one[i % len(one)] for i in range(n)])


def false_signal_windows(n: int) -> np.ndarray:
    from models.serving.false_signal_features import false_signal_inputs, window_inputs

    sim = simulate_ctg(standard_scenarios()[-1], seed=1)
    feats = false_signal_inputs(sim.fhr, sim.mhr, sim.uc, "ultrasound")
    one = [window_inputs(feats[: 600 + 60 * i], 600) for i in range(40)]
    return np.stack([one[i % len(one)] for i in range(n)])


#: per served model: input tensor name, first output, windows
INPUTS = {
    "ctg_autoencoder": ("window", "score", lambda n: windows(n)),
    "ctg_lstm": ("window", "risk", lambda n: windows(n, 3600)),
    "ctg_false_signal": ("signal", "p_false", false_signal_windows),
}



def timed(fn, repeats: int) -> tuple[float, float]:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times) * 1e3, times[max(0, int(0.99 * len(times)) - 1)] * 1e3


def false_signal_cost(rows: list[tuple]) -> list[str]:
    """What the measured false-signal cost means for a ward (worked out from the rows, never typed in)."""
    fs = {b: (med, w) for n, b, med, _, w, _, _ in rows if n == "ctg_false_signal"}
    if 64 not in fs:
        return []
    med64, per_s = fs[64]
    return [
        "Each bed is scored once a minute by each model: N beds need N/60 windows/s per model. On this CPU the "
        "false-signal model is the costly one; in production Triton runs the same ONNX files on a GPU (Triton on a "
        "GPU was not measured: the GPU machine lent through the device tool has no tritonserver).",
        f"Here one false-signal window (10 min) costs {med64 / 64:.1f} ms of Triton time in batches of 64: 100 beds "
        f"need 1.7 windows/s ({1.7 / per_s:.0%} of the Triton process' throughput), 2,000 beds 33 windows/s "
        f"({33.3 / per_s:.0%}), and a tick in which 64 patients fall due together waits {med64 / 1000:.2f} s for its "
        "batch (the client's deadline is 2 s). The stream sends 10 min, not the 30 min it analyses: the convolutions "
        "reach 511 s either way, so each second's last verdict equals the whole recording's "
        "(stream/worker/false_signal.py).",
    ]


def main() -> None:
    base = load_settings()
    tmp = Path(tempfile.mkdtemp())
    settings = base.model_copy(update={
        "triton_url": None, "state_dir": tmp, "triton_http_port": free_port(), "triton_grpc_port": free_port(),
        "triton_metrics_port": free_port(),
    })
    triton = Triton(settings)
    proc = ManagedProcess("triton", settings.run_dir, settings.log_dir)
    proc.start(triton.command(), env=triton.env())
    rows = []
    try:
        wait_ready(triton, proc, 120)
        client = tgrpc.InferenceServerClient(settings.triton_grpc)
        for name in TRITON_NAMES.values():
            input_name, output, make = INPUTS[name]
            data = make(max(BATCHES))
            onnx = latest_onnx(settings.triton_model_repository / name)
            assert onnx is not None, f"{name} has no version in {settings.triton_model_repository}"
            session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
            for batch in BATCHES:
                x = data[:batch]
                inp = tgrpc.InferInput(input_name, list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                repeats = 20 if batch <= 64 else 5
                med, p99 = timed(lambda: client.infer(name, [inp]), repeats)
                ort_med, _ = timed(lambda: session.run([output], {input_name: x}), repeats)
                rows.append((name, batch, med, p99, batch / med * 1e3, ort_med, batch / ort_med * 1e3))
                print(rows[-1], flush=True)
    finally:
        proc.stop(15)
    import os

    body = [
        f"Command: `python bench/triton_models.py`. Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; "
        f"embedded tritonserver (nvidia-pytriton, Python backend running the ONNX files with onnxruntime, "
        f"1 CPU instance) over gRPC, one request at a time; next to it the same ONNX file in-process "
        f"(onnxruntime, CPU). Windows: autoencoder [batch, 600, 4] (10 min at 1 Hz), acidaemia LSTM [batch, 3600, 4] "
        f"(1 h), false signal [batch, 600, 11] (10 min of per-second features).",
        "",
        "| model | batch | Triton median (ms) | Triton p99 (ms) | Triton windows/s | in-process ORT median (ms) | ORT windows/s |",
        "|---|---|---|---|---|---|---|",
    ] + [f"| {n} | {b} | {m:.1f} | {p:.1f} | {w:.0f} | {om:.1f} | {ow:.0f} |" for n, b, m, p, w, om, ow in rows] + [
        "",
        *false_signal_cost(rows),
    ]
    text = "\n".join(body)
    print(text)
    write_section("Models through Triton (CPU)", text)


if __name__ == "__main__":
    main()
