"""The exported models on the real embedded Triton: same scores as torch, over gRPC and HTTP;
the client degrades to 'model unavailable' when Triton dies and recovers by itself."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import torch
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp

from infra.launcher.process import ManagedProcess
from infra.launcher.services import Triton
from infra.launcher.stack import wait_ready
from models.features import Normalisation, window_tensor
from models.repository import TRITON_NAMES, install_version
from models.training import load_trained, train
from models.triton_client import AnomalyClient, BatchingScorer, ModelScores, ModelUnavailable
from stream.core.ports import free_port
from stream.sources.ctg_simulator import simulate_ctg, standard_scenarios
from tests.helpers import tiny_train_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    cfg = tiny_train_config()
    version = train(cfg, tmp / "artifacts", None, log=lambda _m: None)
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


def some_windows(n: int) -> np.ndarray:
    sim = simulate_ctg(standard_scenarios()[4], seed=8)
    norm = Normalisation()
    return np.stack([window_tensor(sim.fhr[a : a + 2400], sim.uc[a : a + 2400], sim.mhr[a : a + 2400], 4.0, norm)
                     for a in range(0, 400 * n, 400)])


def test_triton_scores_equal_torch_over_grpc_and_http(served) -> None:
    settings, version, _, _ = served
    windows = some_windows(9)
    grpc_client = tgrpc.InferenceServerClient(settings.triton_grpc)
    http_client = thttp.InferenceServerClient(settings.triton_http)
    for kind, name in TRITON_NAMES.items():
        with torch.no_grad():
            expected_score, expected_error, _ = torch_model(version, kind)(torch.from_numpy(windows))
        for module, client in ((tgrpc, grpc_client), (thttp, http_client)):
            inp = module.InferInput("window", list(windows.shape), "FP32")
            inp.set_data_from_numpy(windows)
            result = client.infer(name, [inp])
            assert np.allclose(result.as_numpy("score"), expected_score.numpy(), atol=1e-4), (name, module.__name__)
            assert np.allclose(result.as_numpy("error"), expected_error.numpy(), atol=1e-4)
        config = http_client.get_model_config(name)
        assert config["backend"] == "python"  # the local twin of the onnxruntime config
        assert config["max_batch_size"] == 256 and config["input"][0]["dims"] == [600, 4]


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
        expected, _, _ = torch_model(version, "lstm")(torch.from_numpy(windows))
    for i, result in enumerate(results):
        score, error, threshold = result["ctg_lstm"]
        assert score == pytest.approx(float(expected[i % 6, 0]), abs=1e-4) and error.shape == (600,)
        assert threshold > 0


async def test_model_unavailable_within_timeout_and_recovery(served) -> None:
    settings, _, proc, start = served
    client = AnomalyClient(settings.triton_grpc, timeout_s=1.5, retries=2, breaker_failures=2, breaker_reset_s=1.0)
    windows = some_windows(2)
    try:
        assert isinstance(await client.score("ctg_lstm", windows), ModelScores)
        proc.stop(15)  # Triton goes away mid-stream
        for _ in range(3):
            t0 = time.monotonic()
            result = await client.score("ctg_lstm", windows)
            assert isinstance(result, ModelUnavailable) and result.reason
            assert time.monotonic() - t0 <= 1.5 + 0.3
        assert client.breakers["ctg_lstm"].state == "open"
        t0 = time.monotonic()
        assert isinstance(await client.score("ctg_lstm", windows), ModelUnavailable)
        assert time.monotonic() - t0 < 0.1  # the open breaker answers at once
        await asyncio.to_thread(start)  # Triton comes back
        deadline = time.monotonic() + 30
        result = await client.score("ctg_lstm", windows)
        while not isinstance(result, ModelScores) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            result = await client.score("ctg_lstm", windows)
        assert isinstance(result, ModelScores), result
        assert client.breakers["ctg_lstm"].state == "closed"
    finally:
        await client.close()
