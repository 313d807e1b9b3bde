"""The three exported models on the real embedded Triton: same outputs as torch, over gRPC and HTTP;
the client degrades to 'model unavailable' when Triton dies (or one model is missing) and recovers by itself."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
import torch
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp

from infra.launcher.process import ManagedProcess
from infra.launcher.services import Triton
from infra.launcher.stack import wait_ready
from models.serving.false_signal_features import false_signal_inputs, window_inputs
from models.serving.features import Normalisation, window_tensor
from models.serving.repository import TRITON_NAMES, install_version
from models.serving.triton_client import ANOMALY_MODEL, FALSE_SIGNAL, AnomalyClient, BatchingScorer, ModelScores, ModelUnavailable
from models.training.versions import load_trained, train
from stream.core.ports import free_port
from stream.sources.ctg_simulator import simulate_ctg, standard_scenarios
from tests.helpers import tiny_all_models_config, write_synthetic_datasets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    ctu, fhrma = write_synthetic_datasets(tmp / "data")
    version = train(tiny_all_models_config(), tmp / "artifacts", ctu, log=lambda _m: None, fhrma_dir=fhrma)
    install_version(version, tmp / "repo")
    settings = stack.model_copy(update={
        "triton_url": None, "triton_grpc_url": None, "state_dir": tmp / "state", "triton_model_repository": tmp / "repo",
        "triton_http_port": free_port(), "triton_grpc_port": free_port(), "triton_metrics_port": free_port(),
    })
    triton = Triton(settings)
    proc = ManagedProcess("triton", settings.run_dir, settings.log_dir)

    def start() -> None:
        proc.start(triton.command(), env=triton.env())
        wait_ready(triton, proc, 90)

    start()
    try:
        yield settings, version, proc, start
    finally:
        proc.stop(15)


def torch_model(version, kind: str):
    return load_trained(version, kind)


def some_windows(n: int, window_s: int = 600) -> np.ndarray:
    sim = simulate_ctg(standard_scenarios()[4], seed=8)
    norm = Normalisation(window_s=window_s)
    k = 4 * window_s
    return np.stack([window_tensor(sim.fhr[max(0, a + 2400 - k) : a + 2400], sim.uc[max(0, a + 2400 - k) : a + 2400],
                                   sim.mhr[max(0, a + 2400 - k) : a + 2400], 4.0, norm)
                     for a in range(0, 400 * n, 400)])


def false_signal_windows(n: int) -> np.ndarray:
    sim = simulate_ctg(standard_scenarios()[-1], seed=8)
    feats = false_signal_inputs(sim.fhr, sim.mhr, sim.uc, "ultrasound")
    return np.stack([window_inputs(feats[: 600 + 200 * i], 600) for i in range(n)])


INPUTS = {"autoencoder": ("window", lambda n: some_windows(n), ["score", "error", "reconstruction"], [600, 4]),
          "lstm": ("window", lambda n: some_windows(n, 3600), ["risk", "risk_course"], [3600, 4]),
          "false_signal": ("signal", false_signal_windows, ["false_fraction", "p_false"], [600, 11])}


def test_triton_outputs_equal_torch_over_grpc_and_http(served) -> None:
    settings, version, _, _ = served
    grpc_client = tgrpc.InferenceServerClient(settings.triton_grpc)
    http_client = thttp.InferenceServerClient(settings.triton_http)
    for kind, name in TRITON_NAMES.items():
        input_name, make, outputs, dims = INPUTS[kind]
        windows = make(5)
        with torch.no_grad():
            out = torch_model(version, kind)(torch.from_numpy(windows))
        expected = {"autoencoder": lambda o: {"score": o[0], "error": o[1]},
                    "lstm": lambda o: {"risk": o[0], "risk_course": o[1]},
                    "false_signal": lambda o: {"p_false": o}}[kind](out)
        for module, client in ((tgrpc, grpc_client), (thttp, http_client)):
            inp = module.InferInput(input_name, list(windows.shape), "FP32")
            inp.set_data_from_numpy(windows)
            result = client.infer(name, [inp])
            for output, want in expected.items():
                assert np.allclose(result.as_numpy(output), want.numpy(), atol=1e-4), (name, output, module.__name__)
        config = http_client.get_model_config(name)
        assert config["backend"] == "python"  # the local twin of the onnxruntime config
        assert config["max_batch_size"] == 256 and config["input"][0]["dims"] == dims
        assert [o["name"] for o in config["output"]] == outputs


async def test_batching_scorer_sends_one_request_for_many_patients(served) -> None:
    settings, version, _, _ = served
    client = AnomalyClient(settings.triton_grpc, timeout_s=5.0)
    scorer = BatchingScorer(client, max_batch=64, max_wait_s=0.05)
    windows = some_windows(6)
    try:
        results = await asyncio.gather(*(scorer.score(windows[i % 6]) for i in range(30)))
    finally:
        await scorer.close()
        await client.close()
    assert sum(scorer.batches) == 30 and len(scorer.batches) <= 2
    with torch.no_grad():
        expected, _, _ = torch_model(version, "autoencoder")(torch.from_numpy(windows))
    for i, result in enumerate(results):
        score, error, threshold = result[ANOMALY_MODEL][:3]
        assert score == pytest.approx(float(expected[i % 6, 0]), abs=1e-4) and error.shape == (600,)
        assert threshold > 0


async def test_a_missing_model_is_unavailable_while_the_others_answer(served, tmp_path) -> None:
    """A repository without ctg_false_signal (an older deployment): that model is reported unavailable, the
    others keep answering, so the stream judges signal quality by the rules and says so."""
    settings, version, _, _ = served
    client = AnomalyClient(settings.triton_grpc, timeout_s=1.0, retries=0)
    try:
        assert isinstance(await client.score(ANOMALY_MODEL, some_windows(1)), ModelScores)
        judged = await client.score(FALSE_SIGNAL, false_signal_windows(1))
        assert isinstance(judged, ModelScores)
        assert judged.verdict_delay_s == 60.0  # read from the served config, like the threshold
        calibration = json.loads((version / "calibration.json").read_text())["false_signal"]
        assert judged.threshold_without_maternal == calibration["threshold_without_maternal"]  # and this one
        missing = await client.score("ctg_not_deployed", some_windows(1))  # type: ignore[arg-type]
    finally:
        await client.close()
    assert isinstance(missing, ModelUnavailable) and "not" in missing.reason.lower()


async def test_model_unavailable_within_timeout_and_recovery(served) -> None:
    settings, _, proc, start = served
    client = AnomalyClient(settings.triton_grpc, timeout_s=1.5, retries=2, breaker_failures=2, breaker_reset_s=1.0)
    windows = some_windows(2)
    try:
        assert isinstance(await client.score(ANOMALY_MODEL, windows), ModelScores)
        proc.stop(15)  # Triton goes away mid-stream
        for _ in range(3):
            t0 = time.monotonic()
            result = await client.score(ANOMALY_MODEL, windows)
            assert isinstance(result, ModelUnavailable) and result.reason
            assert time.monotonic() - t0 <= 1.5 + 0.3
        assert client.breakers[ANOMALY_MODEL].state == "open"
        t0 = time.monotonic()
        assert isinstance(await client.score(ANOMALY_MODEL, windows), ModelUnavailable)
        assert time.monotonic() - t0 < 0.1  # the open breaker answers at once
        await asyncio.to_thread(start)  # Triton comes back
        deadline = time.monotonic() + 30
        result = await client.score(ANOMALY_MODEL, windows)
        while not isinstance(result, ModelScores) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            result = await client.score(ANOMALY_MODEL, windows)
        assert isinstance(result, ModelScores), result
        assert client.breakers[ANOMALY_MODEL].state == "closed"
    finally:
        await client.close()
