"""The served ONNX models run offline, as Triton serves them: one session per file, windows in batches.

Shared by ``ctgwatch evaluate models`` (:mod:`stream.evaluation.models`) and the compromise risk's
replay (:mod:`stream.evaluation.risk_replay`, :mod:`stream.evaluation.risk`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from models.serving.repository import latest_onnx


@functools.lru_cache(maxsize=16)
def onnx_session(path: Path) -> Any:
    """An onnxruntime CPU session of one ONNX file (kept: a replay scores many records with it)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_batched(session: Any, output: str, windows: np.ndarray, batch: int) -> np.ndarray:
    """The first column of ``output`` for every window, ``batch`` windows per run (empty for none)."""
    if not len(windows):
        return np.zeros(0)
    return np.concatenate([session.run([output], {"window": windows[i:i + batch]})[0][:, 0]
                           for i in range(0, len(windows), batch)])


def served_onnx(repository: Path, model: str) -> Path:
    """The ONNX file Triton serves for ``model`` (its newest version in the repository)."""
    path = latest_onnx(repository / model)
    if path is None:
        raise FileNotFoundError(f"no version of {model} in {repository}")
    return path
