"""Served models: features, tiny training of all three, ONNX parity, calibration, repository, breaker."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from detectors.scoring import auc
from models.serving.features import VALID, Normalisation, sliding_windows, window_tensor
from models.serving.repository import TRITON_NAMES, build_local_twin, install_version, read_config
from models.serving.triton_client import CircuitBreaker
from models.training.nets import AcidaemiaLstm, ConvAutoencoder, minute_summary, multiscale_view
from models.training.versions import TrainConfig, alarm_rate, calibrate, load_trained, train
from stream.sources.ctg_simulator import Scenario, simulate_ctg
from tests.helpers import tiny_all_models_config, write_synthetic_datasets

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


def test_autoencoder_shapes_and_bottleneck() -> None:
    model = ConvAutoencoder().eval()
    x = torch.zeros(3, 600, 4)
    with torch.no_grad():
        score, error, recon = model(x)
    assert score.shape == (3, 1) and error.shape == (3, 600) and recon.shape == (3, 600, 6)
    assert model.sizes[-1] * 8 < 600 * 6  # a real bottleneck


def _as_window(fhr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(window_tensor(fhr, np.full(fhr.size, 20.0), None, 4.0, NORM))[None]


def test_multiscale_view_shows_decelerations_and_lost_variability_as_departures() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(2400) / 4.0
    normal = 140 + 4 * np.sin(2 * np.pi * t / 20) + rng.normal(0, 2, t.size)  # ~15 bpm bandwidth
    dip = normal.copy()
    dip[1200:1800] -= 40 * np.sin(np.pi * np.arange(600) / 600)  # a 150-s deceleration
    rise = normal.copy()
    rise[1200:1800] += 40 * np.sin(np.pi * np.arange(600) / 600)  # a 150-s acceleration
    flat = 140 + rng.normal(0, 0.3, t.size)  # variability lost
    with torch.no_grad():
        v_normal, v_dip, v_rise, v_flat = (multiscale_view(_as_window(x))[0].numpy() for x in (normal, dip, rise, flat))
    assert v_normal[:, 0].max() < 0.3  # below: near the window's own median level
    assert v_dip[300:450, 0].max() > 0.8  # the deceleration, ~ 35 bpm below the median level
    assert v_rise[:, 0].max() < 0.3  # an acceleration is not a departure
    assert abs(float(np.median(v_normal[:, 1]))) < 0.5  # normal variability is near zero on this channel
    assert float(np.median(v_flat[:, 1])) < -0.5  # lost variability departs from it
    assert abs(float(v_normal[0, 4])) < 0.05 and float(v_normal[0, 4]) == pytest.approx(float(v_normal[-1, 4]))


def test_multiscale_view_tells_a_sinusoidal_pattern_from_noise_of_the_same_size() -> None:
    """FIGO 2015: a sinusoidal pattern is a regular 3-5 cycles/min undulation; noise of the same
    amplitude and roughness must not look like one."""
    rng = np.random.default_rng(1)
    t = np.arange(2400) / 4.0
    sine = 140 + 5 * np.sin(2 * np.pi * 4 / 60 * t)
    from scipy.ndimage import gaussian_filter1d

    noise = rng.normal(0, 1, t.size)
    noise = 140 + gaussian_filter1d(noise, 6) * 3.5 / gaussian_filter1d(noise, 6).std()
    with torch.no_grad():
        v_sine, v_noise = (multiscale_view(_as_window(x))[0].numpy() for x in (sine, noise))
    assert float(np.median(v_sine[:, 3])) > 1.6  # periodicity, doubled: a sine is 1
    assert float(np.median(v_noise[:, 3])) < 0.8


def test_acidaemia_lstm_summarises_minutes_without_nans() -> None:
    x = torch.zeros(2, 3600, 4)
    x[0, 1800:, VALID] = 1.0  # first half hour lost
    x[0, 1800:, 0] = 0.4
    x[1, :, VALID] = 1.0
    summary = minute_summary(x)
    assert summary.shape == (2, 60, 8) and torch.isfinite(summary).all()
    assert torch.all(summary[0, :30, 0] == 0) and torch.all(summary[0, 30:, 0] == 1)
    model = AcidaemiaLstm(hidden=4).eval()
    with torch.no_grad():
        risk, course = model(x)
    assert risk.shape == (2, 2) and course.shape == (2, 60) and torch.all((risk > 0) & (risk < 1))


def test_auc_and_alarm_rate() -> None:
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5
    scores = [np.array([0, 5, 5, 0, 5, 0], float)]  # two alarm episodes in 6 minutes
    assert alarm_rate(scores, 1.0, 60) == pytest.approx(20.0)
    cal = calibrate([np.linspace(0, 1, 120)], target=0.5, cadence_s=60)
    assert cal["false_alarms_per_hour"] <= 0.5 and cal["threshold"] <= 1.0


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return write_synthetic_datasets(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def tiny_version(tmp_path_factory, datasets):
    ctu, fhrma = datasets
    return train(tiny_all_models_config(), tmp_path_factory.mktemp("models"), ctu, log=lambda _m: None, fhrma_dir=fhrma)


def test_tiny_training_writes_a_complete_version(tiny_version) -> None:
    assert tiny_version.name == "v1"
    for name in ("lstm.pt", "lstm.onnx", "lstm_folds.json", "lstm_metrics.json", "lstm_normalisation.json",
                 "autoencoder.pt", "autoencoder.onnx", "false_signal.pt", "false_signal.onnx",
                 "false_signal_split.json", "false_signal_metrics.json", "false_signal_shape.json",
                 "normalisation.json", "calibration.json", "metrics.json", "MODEL_CARD.md", "config.json"):
        assert (tiny_version / name).is_file(), name
    calibration = json.loads((tiny_version / "calibration.json").read_text())
    assert set(calibration) == {"lstm", "autoencoder", "false_signal"}
    assert calibration["autoencoder"]["false_alarms_per_hour"] <= calibration["autoencoder"]["target_false_alarms_per_hour"]
    assert calibration["lstm"]["threshold"] is None  # a probability, never an alarm threshold
    metrics = json.loads((tiny_version / "metrics.json").read_text())
    assert set(metrics["trained"]) == {"autoencoder", "lstm", "false_signal"}
    for predictor in ("lstm", "figo_class", "logistic_figo"):  # the same folds for every predictor
        assert set(metrics["lstm"][f"{predictor}@7.05"]) >= {"auc_mean", "auc_repeats", "auc_ci95", "brier"}
    split = json.loads((tiny_version / "false_signal_split.json").read_text())
    parts = [set(split[k]) for k in ("train", "tuning", "validation")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])  # split by record
    assert set(metrics["false_signal"]["validation"]) == {"live", "settled"}
    card = (tiny_version / "MODEL_CARD.md").read_text()
    assert "split by record" in card and "cross-validation" in card and "False-signal" in card


def test_training_is_deterministic(tiny_version, tmp_path, datasets) -> None:
    ctu, fhrma = datasets
    cfg = TrainConfig(**json.loads((tiny_version / "config.json").read_text()))
    again = train(cfg, tmp_path, ctu, log=lambda _m: None, fhrma_dir=fhrma)
    for kind in ("lstm", "autoencoder", "false_signal"):
        a, b = torch.load(tiny_version / f"{kind}.pt"), torch.load(again / f"{kind}.pt")
        assert all(torch.equal(a[k], b[k]) for k in a), kind


def test_training_without_the_recordings_skips_what_needs_them(tmp_path) -> None:
    from tests.helpers import tiny_train_config

    messages: list[str] = []
    out = train(tiny_train_config(), tmp_path, None, log=messages.append, fhrma_dir=tmp_path / "absent")
    assert (out / "autoencoder.onnx").is_file() and not (out / "lstm.onnx").exists()
    assert not (out / "false_signal.onnx").exists()
    assert any("acidaemia-risk LSTM skipped" in m for m in messages)
    assert any("false-signal model skipped" in m for m in messages)
    repo = tmp_path / "repo"
    install_version(out, repo)
    assert sorted(p.name for p in repo.iterdir()) == ["ctg_autoencoder"]


def test_onnx_matches_torch_at_several_batch_sizes(tiny_version) -> None:
    sim = simulate_ctg(Scenario("late", duration_s=3600, decel_kind="late", decel_span=(0, 3600)), seed=5)
    ae_windows = np.stack([window_tensor(sim.fhr[a : a + 2400], sim.uc[a : a + 2400], sim.mhr[a : a + 2400], 4.0, NORM)
                           for a in range(0, 4 * 1200, 400)])
    risk_norm = Normalisation(window_s=3600)
    risk_windows = np.stack([window_tensor(sim.fhr[: a], sim.uc[: a], None, 4.0, risk_norm)
                             for a in (4 * 1200, 4 * 2400, 4 * 3600)])
    from models.serving.false_signal_features import false_signal_inputs, window_inputs

    feats = false_signal_inputs(sim.fhr, sim.mhr, sim.uc, "ultrasound")
    fs_windows = np.stack([window_inputs(feats[:end], 1800) for end in (900, 1800, 3600)])
    cases = {"autoencoder": (ae_windows, "window", ["score", "error"]),
             "lstm": (risk_windows, "window", ["risk", "risk_course"]),
             "false_signal": (fs_windows, "signal", ["p_false"])}
    for kind, (windows, input_name, outputs) in cases.items():
        model = load_trained(tiny_version, kind)
        session = ort.InferenceSession(str(tiny_version / f"{kind}.onnx"), providers=["CPUExecutionProvider"])
        for batch in (1, 2, len(windows)):
            x = windows[:batch]
            got = session.run(outputs, {input_name: x})
            with torch.no_grad():
                want = model(torch.from_numpy(x))
            want = [want] if isinstance(want, torch.Tensor) else list(want)
            if kind == "autoencoder":
                want = want[:2]
            for g, w in zip(got, want):
                assert np.allclose(g, w.numpy(), rtol=1e-4, atol=1e-5), kind


def test_repository_and_local_twin(tiny_version, tmp_path) -> None:
    repo = tmp_path / "repo"
    assert install_version(tiny_version, repo) == 1
    calibration = json.loads((tiny_version / "calibration.json").read_text())
    inputs = {"autoencoder": ("window", [600, 4]), "lstm": ("window", [3600, 4]), "false_signal": ("signal", [600, 11])}
    for kind, name in TRITON_NAMES.items():
        cfg = read_config(repo / name / "config.pbtxt")
        assert cfg.backend == "onnxruntime" and cfg.max_batch_size == 256
        assert cfg.instance_group[0].kind == cfg.instance_group[0].KIND_GPU
        assert list(cfg.dynamic_batching.preferred_batch_size) == [64, 128]
        assert [i.name for i in cfg.input] == [inputs[kind][0]] and list(cfg.input[0].dims) == inputs[kind][1]
        if kind != "lstm":
            assert float(cfg.parameters["threshold"].string_value) == calibration[kind]["threshold"]
        if kind == "false_signal":
            assert cfg.parameters["verdict_delay_s"].string_value == "60"  # the stream reads it with the threshold
            assert float(cfg.parameters["threshold_without_maternal"].string_value) == \
                calibration[kind]["threshold_without_maternal"]  # and this one (from v8)
        assert (repo / name / "1" / "model.onnx").is_file()
    (repo / "passthrough").mkdir()
    (repo / "passthrough" / "config.pbtxt").write_text('name: "passthrough"\nbackend: "python"\n')
    twin = tmp_path / "twin"
    assert build_local_twin(repo, twin) == ["ctg_autoencoder", "ctg_false_signal", "ctg_lstm", "passthrough"]
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
        assert cfg.name == name and "threshold" in cfg.parameters
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
    from models.training.versions import evaluation_markdown
    from stream.evaluation.reporting import write_section

    doc = tmp_path / "evaluation.md"
    write_section(doc, "Detectors", "old detectors", "evaluation")
    title, body = evaluation_markdown(tiny_version)
    write_section(doc, title, body, "evaluation")
    write_section(doc, "Detectors", "new detectors", "evaluation")
    text = doc.read_text()
    assert text.startswith("# evaluation") and "new detectors" in text and "old detectors" not in text
    assert text.count("## Models, version v1") == 1 and "Acidaemia risk" in text and "False signal" in text


def test_a_client_that_raises_something_unexpected_never_leaves_the_pipeline_waiting() -> None:
    """A dying Triton can make the client raise anything; the batch is reported unavailable and the
    scorer keeps working for the next windows (a stuck future would stop the analysis timer)."""
    import asyncio

    import numpy as np

    from models.serving.triton_client import ANOMALY_MODEL, BatchingScorer, ModelScores, ModelUnavailable

    MODELS = (ANOMALY_MODEL,)

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
