"""Triton model repositories: the production one and its local twin.

Production (``infra/triton/model_repository``, mounted at /models by
docker-compose): ``ctg_lstm``, ``ctg_autoencoder`` and ``ctg_false_signal``, each a ``config.pbtxt``
for Triton's ``onnxruntime`` backend on GPU with dynamic batching, and one
``model.onnx`` per version directory. The model's calibration and
normalisation travel in the config's ``parameters``, so a client reads the
threshold from the server it talks to and can never pair a model with another
version's threshold.

Local twin (built by ``ctgwatch up`` under the state directory): the same
configs with ``backend: "python"`` on CPU, serving the same ONNX files through
models/serving/triton_onnx_model.py (onnxruntime), because nvidia-pytriton's
tritonserver has only the Python backend. Model names, tensor names, shapes
and batching are identical, so clients cannot tell the difference. Models
that are already Python-backend (test fixtures) are linked as they are.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from models.serving.false_signal_features import N_FEATURES, FalseSignalShape
from models.serving.features import CHANNELS, VIEW_CHANNELS, Normalisation

TRITON_NAMES = {"lstm": "ctg_lstm", "autoencoder": "ctg_autoencoder", "false_signal": "ctg_false_signal"}
EXTRA_OUTPUT = {"lstm": "forecast", "autoencoder": "reconstruction"}
PYTHON_MODEL = Path(__file__).with_name("triton_onnx_model.py")


def false_signal_config(shape: FalseSignalShape, calibration: dict, *, max_batch_size: int = 256) -> mc.ModelConfig:
    """Production config of ``ctg_false_signal``: per-second features in, per-second probability out."""
    cfg = mc.ModelConfig(name=TRITON_NAMES["false_signal"], backend="onnxruntime", max_batch_size=max_batch_size)
    cfg.input.append(mc.ModelInput(name="signal", data_type=mc.TYPE_FP32, dims=[shape.window_s, N_FEATURES]))
    cfg.output.extend([
        mc.ModelOutput(name="false_fraction", data_type=mc.TYPE_FP32, dims=[1]),
        mc.ModelOutput(name="p_false", data_type=mc.TYPE_FP32, dims=[shape.window_s]),
    ])
    _batching_and_instances(cfg)
    _set_parameters(cfg, {"threshold": calibration["threshold"],
                          # from v8 a second threshold for seconds without a maternal value; one before
                          "threshold_without_maternal": calibration.get("threshold_without_maternal",
                                                                        calibration["threshold"]),
                          "cadence_s": calibration["cadence_s"],
                          "context_s": calibration.get("context_s", shape.window_s),
                          # versions before v7 used every second of the window at once
                          "verdict_delay_s": calibration.get("verdict_delay_s", 0),
                          **{f"shape_{k}": v for k, v in shape.as_dict().items()}})
    return cfg


def _set_parameters(cfg: mc.ModelConfig, params: dict) -> None:
    """Calibration and normalisation in the config's ``parameters``: a client reads them from the server."""
    for key, value in params.items():
        cfg.parameters[key].string_value = str(value)


def _batching_and_instances(cfg: mc.ModelConfig) -> None:
    # Many patients' windows arrive together at each scoring cadence: let Triton
    # gather them into batches of 64-128, waiting at most 2 ms for stragglers.
    cfg.dynamic_batching.preferred_batch_size.extend([64, 128])
    cfg.dynamic_batching.max_queue_delay_microseconds = 2000
    cfg.instance_group.append(mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_GPU, count=1))
    cfg.version_policy.latest.num_versions = 1


def risk_config(norm: Normalisation, calibration: dict, *, max_batch_size: int = 256) -> mc.ModelConfig:
    """Production config of the acidaemia-risk LSTM ``ctg_lstm``: the last hour in, two probabilities out.

    It has no threshold: its output is evidence and a trend, never an alarm (docs/EVALUATION.md).
    """
    cfg = mc.ModelConfig(name=TRITON_NAMES["lstm"], backend="onnxruntime", max_batch_size=max_batch_size)
    cfg.input.append(mc.ModelInput(name="window", data_type=mc.TYPE_FP32, dims=[norm.window_s, len(CHANNELS)]))
    cfg.output.extend([
        mc.ModelOutput(name="risk", data_type=mc.TYPE_FP32, dims=[2]),
        mc.ModelOutput(name="risk_course", data_type=mc.TYPE_FP32, dims=[norm.window_s // 60]),
    ])
    _batching_and_instances(cfg)
    _set_parameters(cfg, {"outcomes": "pH<7.05,pH<7.15", "threshold": "nan", "cadence_s": calibration.get("cadence_s", 60),
                          **{f"norm_{k}": v for k, v in norm.__dict__.items()}})
    return cfg


def model_config(kind: str, norm: Normalisation, calibration: dict, *, max_batch_size: int = 256) -> mc.ModelConfig:
    """Production config of the autoencoder: onnxruntime backend on GPU, dynamic batching."""
    cfg = mc.ModelConfig(name=TRITON_NAMES[kind], backend="onnxruntime", max_batch_size=max_batch_size)
    cfg.input.append(mc.ModelInput(name="window", data_type=mc.TYPE_FP32, dims=[norm.window_s, len(CHANNELS)]))
    extra_dims = [norm.window_s, VIEW_CHANNELS]
    cfg.output.extend([
        mc.ModelOutput(name="score", data_type=mc.TYPE_FP32, dims=[1]),
        mc.ModelOutput(name="error", data_type=mc.TYPE_FP32, dims=[norm.window_s]),
        mc.ModelOutput(name=EXTRA_OUTPUT[kind], data_type=mc.TYPE_FP32, dims=extra_dims),
    ])
    _batching_and_instances(cfg)
    _set_parameters(cfg, {
        "threshold": calibration["threshold"],
        "false_alarms_per_hour": calibration["false_alarms_per_hour"],
        "cadence_s": calibration["cadence_s"],
        **{f"norm_{k}": v for k, v in norm.__dict__.items()},
    })
    return cfg


def write_config(cfg: mc.ModelConfig, path: Path, header: str = "") -> None:
    path.write_text(header + text_format.MessageToString(cfg))


def read_config(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def install_version(artifact_dir: Path, repository: Path) -> int:
    """Copy a trained version (``v<N>``) into the production repository as version N."""
    match = re.fullmatch(r"v(\d+)", artifact_dir.name)
    if not match:
        raise ValueError(f"{artifact_dir} is not a trained version directory (v<N>)")
    version = int(match.group(1))
    norm = Normalisation.load(artifact_dir / "normalisation.json")
    calibration = json.loads((artifact_dir / "calibration.json").read_text())
    for kind, name in TRITON_NAMES.items():
        if not (artifact_dir / f"{kind}.onnx").exists():
            continue  # a version trained without this model (e.g. no FHRMA data for the false-signal one)
        model_dir = repository / name
        (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact_dir / f"{kind}.onnx", model_dir / str(version) / "model.onnx")
        shutil.copyfile(artifact_dir / "MODEL_CARD.md", model_dir / str(version) / "MODEL_CARD.md")
        if kind == "false_signal":
            shape = FalseSignalShape(**json.loads((artifact_dir / "false_signal_shape.json").read_text()))
            cfg = false_signal_config(shape, calibration[kind])
        elif kind == "lstm":
            cfg = risk_config(Normalisation.load(artifact_dir / "lstm_normalisation.json"), calibration.get(kind, {}))
        else:
            cfg = model_config(kind, norm, calibration[kind])
        write_config(cfg, model_dir / "config.pbtxt",
                     header=f"# Generated by 'ctgwatch train --install' from {artifact_dir.name}; see {version}/MODEL_CARD.md\n")
    return version


def build_local_twin(repository: Path, twin: Path) -> list[str]:
    """The CPU/Python-backend twin of ``repository`` in ``twin`` (rebuilt each time)."""
    if twin.exists():
        shutil.rmtree(twin)
    twin.mkdir(parents=True)
    names = []
    for model_dir in sorted(p for p in repository.iterdir() if (p / "config.pbtxt").is_file()):
        cfg = read_config(model_dir / "config.pbtxt")
        names.append(cfg.name or model_dir.name)
        if cfg.backend == "python":
            (twin / model_dir.name).symlink_to(model_dir.resolve(), target_is_directory=True)
            continue
        if cfg.backend != "onnxruntime" and cfg.platform != "onnxruntime_onnx":
            raise ValueError(f"{model_dir.name}: backend {cfg.backend or cfg.platform} has no local twin")
        cfg.backend, cfg.platform = "python", ""
        del cfg.instance_group[:]
        cfg.instance_group.append(mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_CPU, count=1))
        target = twin / model_dir.name
        target.mkdir()
        write_config(cfg, target / "config.pbtxt",
                     header=f"# Local twin of {model_dir / 'config.pbtxt'} (Python backend + onnxruntime, CPU)\n")
        for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()):
            (target / version_dir.name).mkdir()
            shutil.copyfile(PYTHON_MODEL, target / version_dir.name / "model.py")
            (target / version_dir.name / "model.onnx").symlink_to((version_dir / "model.onnx").resolve())
    return names


def deployed_false_signal(repository: Path) -> tuple[Path, dict[str, float]] | None:
    """The ONNX file and parameters (threshold, threshold_without_maternal, cadence_s, context_s,
    verdict_delay_s) of the served false-signal model, if any."""
    model_dir = repository / TRITON_NAMES["false_signal"]
    onnx = latest_onnx(model_dir)
    if not (model_dir / "config.pbtxt").is_file() or onnx is None:
        return None
    params = {k: float(v.string_value) for k, v in read_config(model_dir / "config.pbtxt").parameters.items()
              if k in ("threshold", "threshold_without_maternal", "cadence_s", "context_s", "verdict_delay_s")}
    return onnx, params


def latest_onnx(model_dir: Path) -> Path | None:
    """The ONNX file of a model's newest numbered version (what Triton's ``latest`` policy serves)."""
    versions = sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and (p / "model.onnx").exists()),
                      key=lambda p: int(p.name)) if model_dir.is_dir() else []
    return versions[-1] / "model.onnx" if versions else None
