"""Anomaly models: features, tiny training, ONNX parity, calibration, repository, breaker."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from detectors.scoring import auc
from models.features import VALID, Normalisation, sliding_windows, window_tensor
from models.nets import ConvAutoencoder, LstmForecaster
from models.repository import TRITON_NAMES, build_local_twin, install_version, read_config
from models.training import TrainConfig, alarm_rate, calibrate, load_trained, train
from models.triton_client import CircuitBreaker
from stream.sources.ctg_simulator import Scenario, simulate_ctg
from tests.helpers import tiny_train_config

NORM = Normalisation()


def test_window_tensor_normalises_and_masks_loss() -> None:
    fhr = np.full(2400, 140.0)
    fhr[400:800] = 0.0  # 100 s lost
    w = window_tensor(fhr, np.full(2400, 25.0), np.full(2400, 90.0), 4.0, NORM)
    assert w.shape == (600, 4) and w.dtype == np.float32
    assert np.allclose(w[:100, 0], 0.0) and np.allclose(w[:100, VALID], 1.0)
    assert np.allclose(w[100:200, VALID], 0.0) and np.allclose(w[100:200, 0], 0.0)
    assert np.allclose(w[:, 1], 0.5) and np.allclose(w[:, 2], (90 - 140) / 25)
    short = window_tensor(np.full(400, 150.0), np.zeros(400), None, 4.0, NORM)
    assert np.allclose(short[:500, VALID], 0.0) and np.allclose(short[500:, 0], 0.4)
    empty = window_tensor(np.zeros(0), np.zeros(0), None, 4.0, NORM)
    assert not empty.any()


def test_sliding_windows_skip_mostly_lost_windows() -> None:
    fhr = np.full(4 * 1800, 140.0)
    fhr[: 4 * 700] = 0.0
    w, ends = sliding_windows(fhr, np.zeros_like(fhr), None, 4.0, NORM, 300)
    assert list(ends) == [1200.0, 1500.0, 1800.0] and w.shape == (3, 600, 4)


def test_lstm_forecast_error_is_masked_and_aligned() -> None:
    torch.manual_seed(0)
    model = LstmForecaster(hidden=8, horizon_s=10).eval()
    x = torch.zeros(1, 600, 4)
    x[..., VALID] = 1.0
    x[0, 300:, VALID] = 0.0
    with torch.no_grad():
        score, error, forecast = model(x)
    assert error.shape == (1, 600) and forecast.shape == (1, 600) and score.shape == (1, 1)
    assert torch.all(error[0, :10] == 0) and torch.all(error[0, 300:] == 0)


def test_autoencoder_shapes() -> None:
    model = ConvAutoencoder().eval()
    x = torch.zeros(3, 600, 4)
    with torch.no_grad():
        score, error, recon = model(x)
    assert score.shape == (3, 1) and error.shape == (3, 600) and recon.shape == (3, 600, 2)
    assert model.sizes[-1] * 8 < 600 * 2  # a real bottleneck


def test_auc_and_alarm_rate() -> None:
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5
    scores = [np.array([0, 5, 5, 0, 5, 0], float)]  # two alarm episodes in 6 minutes
    assert alarm_rate(scores, 1.0, 60) == pytest.approx(20.0)
    cal = calibrate([np.linspace(0, 1, 120)], target=0.5, cadence_s=60)
    assert cal["false_alarms_per_hour"] <= 0.5 and cal["threshold"] <= 1.0


@pytest.fixture(scope="module")
def tiny_version(tmp_path_factory):
    cfg = tiny_train_config()
    return train(cfg, tmp_path_factory.mktemp("models"), None, log=lambda _m: None)


def test_tiny_training_writes_a_complete_version(tiny_version) -> None:
    assert tiny_version.name == "v1"
    for name in ("lstm.pt", "lstm.onnx", "autoencoder.pt", "autoencoder.onnx", "normalisation.json",
                 "calibration.json", "metrics.json", "MODEL_CARD.md", "config.json"):
        assert (tiny_version / name).is_file(), name
    calibration = json.loads((tiny_version / "calibration.json").read_text())
    assert set(calibration) == {"lstm", "autoencoder"}
    assert all(c["false_alarms_per_hour"] <= c["target_false_alarms_per_hour"] for c in calibration.values())
    card = (tiny_version / "MODEL_CARD.md").read_text()
    assert "split by record" in card and "threshold" in card


def test_training_is_deterministic(tiny_version, tmp_path) -> None:
    cfg = TrainConfig(**json.loads((tiny_version / "config.json").read_text()))
    again = train(cfg, tmp_path, None, log=lambda _m: None)
    a = torch.load(tiny_version / "lstm.pt")
    b = torch.load(again / "lstm.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["lstm", "autoencoder"])
def test_onnx_matches_torch_at_several_batch_sizes(tiny_version, kind: str) -> None:
    model = load_trained(tiny_version, kind)
    session = ort.InferenceSession(str(tiny_version / f"{kind}.onnx"), providers=["CPUExecutionProvider"])
    sim = simulate_ctg(Scenario("late", duration_s=1800, decel_kind="late", decel_span=(0, 1800)), seed=5)
    windows = np.stack([window_tensor(sim.fhr[a : a + 2400], sim.uc[a : a + 2400], sim.mhr[a : a + 2400], 4.0, NORM)
                        for a in range(0, 4 * 1200, 400)])
    for batch in (1, 3, len(windows)):
        x = windows[:batch]
        score, error = session.run(["score", "error"], {"window": x})
        with torch.no_grad():
            t_score, t_error, _ = model(torch.from_numpy(x))
        assert np.allclose(score, t_score.numpy(), atol=1e-5) and np.allclose(error, t_error.numpy(), atol=1e-5)


def test_repository_and_local_twin(tiny_version, tmp_path) -> None:
    repo = tmp_path / "repo"
    assert install_version(tiny_version, repo) == 1
    calibration = json.loads((tiny_version / "calibration.json").read_text())
    for kind, name in TRITON_NAMES.items():
        cfg = read_config(repo / name / "config.pbtxt")
        assert cfg.backend == "onnxruntime" and cfg.max_batch_size == 256
        assert cfg.instance_group[0].kind == cfg.instance_group[0].KIND_GPU
        assert list(cfg.dynamic_batching.preferred_batch_size) == [64, 128]
        assert [i.name for i in cfg.input] == ["window"] and list(cfg.input[0].dims) == [600, 4]
        assert float(cfg.parameters["threshold"].string_value) == calibration[kind]["threshold"]
        assert (repo / name / "1" / "model.onnx").is_file()
    (repo / "passthrough").mkdir()
    (repo / "passthrough" / "config.pbtxt").write_text('name: "passthrough"\nbackend: "python"\n')
    twin = tmp_path / "twin"
    assert build_local_twin(repo, twin) == ["ctg_autoencoder", "ctg_lstm", "passthrough"]
    for name in TRITON_NAMES.values():
        cfg = read_config(twin / name / "config.pbtxt")
        prod = read_config(repo / name / "config.pbtxt")
        assert cfg.backend == "python" and cfg.instance_group[0].kind == cfg.instance_group[0].KIND_CPU
        assert cfg.input == prod.input and cfg.output == prod.output and cfg.parameters == prod.parameters
        assert (twin / name / "1" / "model.py").is_file()
        assert (twin / name / "1" / "model.onnx").resolve() == (repo / name / "1" / "model.onnx").resolve()
    assert (twin / "passthrough").is_symlink()


def test_shipped_repository_configs_are_consistent() -> None:
    from stream.core.settings import Settings

    repo = Settings().triton_model_repository
    for name in TRITON_NAMES.values():
        cfg = read_config(repo / name / "config.pbtxt")
        assert cfg.name == name and float(cfg.parameters["threshold"].string_value) > 0
        versions = [p for p in (repo / name).iterdir() if p.is_dir()]
        assert versions and all((v / "model.onnx").is_file() and (v / "MODEL_CARD.md").is_file() for v in versions)


def test_circuit_breaker_opens_and_recovers() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, reset_after_s=5.0, clock=lambda: now[0])
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 5.0
    assert breaker.state == "half-open" and breaker.allow() and not breaker.allow()  # one probe only
    breaker.failure()
    assert breaker.state == "open"
    now[0] = 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def test_report_sections_replace_only_themselves(tmp_path, tiny_version) -> None:
    from models.training import evaluation_markdown
    from stream.evaluation.reporting import write_section

    doc = tmp_path / "EVAL.md"
    write_section(doc, "Detectors", "old detectors", "evaluation")
    title, body = evaluation_markdown(tiny_version)
    write_section(doc, title, body, "evaluation")
    write_section(doc, "Detectors", "new detectors", "evaluation")
    text = doc.read_text()
    assert text.startswith("# evaluation") and "new detectors" in text and "old detectors" not in text
    assert text.count("## Anomaly models, version v1") == 1 and "| lstm |" in text


def test_a_client_that_raises_something_unexpected_never_leaves_the_pipeline_waiting() -> None:
    """A dying Triton can make the client raise anything; the batch is reported unavailable and the
    scorer keeps working for the next windows (a stuck future would stop the analysis timer)."""
    import asyncio

    import numpy as np

    from models.triton_client import MODELS, BatchingScorer, ModelScores, ModelUnavailable

    class Dying:
        timeout_s = 0.1
        calls = 0

        async def score(self, model: str, windows: np.ndarray):
            Dying.calls += 1
            if Dying.calls <= len(MODELS):
                raise RuntimeError("channel closed mid-call")
            return ModelScores(model, "1", np.zeros(len(windows)), np.zeros((len(windows), 600)), 1.0, 0.01)

    async def scenario() -> tuple[dict, dict]:
        scorer = BatchingScorer(Dying(), max_wait_s=0.0)  # type: ignore[arg-type]
        window = np.zeros((600, 4), dtype=np.float32)
        first = await asyncio.wait_for(scorer.score(window), scorer.deadline_s)
        second = await asyncio.wait_for(scorer.score(window), scorer.deadline_s)
        await scorer.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert all(isinstance(first[m], ModelUnavailable) and "RuntimeError" in first[m].reason for m in MODELS)
    assert all(not isinstance(second[m], ModelUnavailable) for m in MODELS)
