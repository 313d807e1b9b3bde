"""Test helpers: read topics from the beginning, run ctgwatch processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from stream.core.ports import free_port
from stream.core.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list], bool],
    keep: Callable[[bytes | None, bytes], bool] = lambda k, v: True,
    timeout_s: float = 30.0,
) -> list:
    """Every (key, value) kept from the start of ``topic`` until ``until(kept)`` or the timeout."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        kept: list = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(kept):
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                kept.extend((m.key, m.value) for m in messages if keep(m.key, m.value))
        return kept
    finally:
        await consumer.stop()


def stack_settings(state_dir: Path, model_repository: Path | None = None) -> Settings:
    """Settings for a private stack: own state dir and free ports, embedded services."""
    ports = [free_port() for _ in range(5)]
    return Settings(
        state_dir=state_dir,
        kafka_bootstrap=None,
        redis_url=None,
        triton_url=None,
        broker_port=ports[0],
        redis_port=ports[1],
        triton_http_port=ports[2],
        triton_grpc_port=ports[3],
        triton_metrics_port=ports[4],
        triton_model_repository=model_repository or FIXTURES / "triton_repository",
        startup_timeout_s=90,
    )


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that points a ctgwatch process at the test stack."""
    env = {**os.environ, **settings.client_env()}
    env.update(extra)
    return env


def spawn_ctgwatch(args: list[str], env: dict[str, str], log: Path, ready: str,
                   timeout_s: float = 45.0) -> subprocess.Popen:
    """Start ``ctgwatch ARGS`` in its own process group; return once ``ready`` is in its output."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT, start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while ready.encode() not in log.read_bytes():
        if proc.poll() is not None:
            raise AssertionError(f"ctgwatch {' '.join(args)} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            stop_process(proc)
            raise AssertionError(f"ctgwatch {' '.join(args)} not ready in {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def ctgwatch_process(args: list[str], env: dict[str, str], log: Path, ready: str, timeout_s: float = 45.0) -> Iterator[subprocess.Popen]:
    """Run ``ctgwatch ARGS`` until the block ends; wait for ``ready`` in its output first."""
    proc = spawn_ctgwatch(args, env, log, ready, timeout_s)
    try:
        yield proc
    finally:
        stop_process(proc)



def tiny_train_config():
    """Models small enough to train in about a second, on 20-min simulated records."""
    from models.training.versions import TrainConfig

    return TrainConfig(source="simulator", epochs=1, sim_train_seeds=[100, 101, 102], sim_eval_seeds=[10],
                       sim_duration_s=1200, stride_s=120, cadence_s=120,
                       autoencoder={"width": 8, "code_channels": 4})


def write_synthetic_datasets(root: Path, n_ctu: int = 12, n_fhrma: int = 6, duration_s: float = 1500.0) -> tuple[Path, Path]:
    """Tiny CTU-UHB-style (WFDB with pH) and FHRMA-style (.fhrm + annotations.json) directories from the simulator.

    Lets every model's training and scoring path run in tests and CI without the real recordings:
    CTU records alternate a normal trace (pH 7.30) and a bradycardia one (pH 6.98); FHRMA recordings
    carry maternal-HR capture episodes, marked false, the rest marked true.
    """
    import json
    import struct

    import numpy as np
    import wfdb

    from stream.sources.ctg_simulator import Scenario, simulate_ctg
    from stream.sources.fhrma import FHRM_DTYPE

    ctu, fhrma = root / "ctu", root / "fhrma"
    ctu.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n_ctu):
        acidaemic = i % 2 == 1
        scenario = Scenario("bradycardia" if acidaemic else "normal", duration_s=duration_s,
                            bradycardia=(duration_s * 0.6, duration_s) if acidaemic else None)
        sim = simulate_ctg(scenario, seed=500 + i)
        name = f"{9100 + i}"
        wfdb.wrsamp(name, fs=4, units=["bpm", "nd"], sig_name=["FHR", "UC"],
                    p_signal=np.column_stack([sim.fhr, np.clip(sim.uc, 0, 127)]), fmt=["16", "16"],
                    adc_gain=[100, 100], baseline=[0, 0], write_dir=str(ctu),
                    comments=["-- Outcome measures", f"pH           {6.98 if acidaemic else 7.30}", "Apgar5       9"])
        names.append(name)
    (ctu / "RECORDS").write_text("\n".join(names) + "\n")
    annotations = {}
    for i in range(n_fhrma):
        subset = "DopMHR" if i % 3 else "ScalpECG"
        third = duration_s / 3
        sim = simulate_ctg(Scenario("maternal_hr_capture", duration_s=duration_s,
                                    maternal_capture=((third, third + 240.0),)), seed=700 + i)
        name = f"{subset}Train{i + 1:04d}.fhrm"
        (fhrma / subset).mkdir(parents=True, exist_ok=True)
        rec = np.zeros(sim.fhr.size, dtype=FHRM_DTYPE)
        channel = "fhr1" if subset == "DopMHR" else "fhr2"
        rec[channel] = np.round(sim.fhr * 4)
        rec["mhr"] = np.round(sim.mhr * 4)
        rec["toco"] = np.round(np.clip(sim.uc, 0, 127) * 2)
        (fhrma / subset / name).write_bytes(struct.pack("<I", 1_700_000_000) + rec.tobytes())
        false = [[int(e.start_s * 4) + 1, int(e.end_s * 4)] for e in sim.events if e.kind == "maternal_hr_capture"]
        annotations[name] = {"set": subset, "true_fhr": [[1, sim.fhr.size]] if not false else
                             [[1, false[0][0] - 1], [false[-1][1] + 1, sim.fhr.size]], "false_fhr": false}
    (fhrma / "annotations.json").write_text(json.dumps(annotations))
    return ctu, fhrma


def tiny_all_models_config():
    """Every model (autoencoder, acidaemia LSTM, false-signal) trained in seconds on the synthetic datasets."""
    from models.training.versions import TrainConfig

    return TrainConfig(source="ctu-uhb", epochs=1, sim_eval_seeds=[10], sim_duration_s=1200, stride_s=120,
                       cadence_s=120, autoencoder={"width": 8, "code_channels": 4},
                       acidaemia={"epochs": 2, "repeats": 1, "folds": 2, "hidden": 8, "shifts_s": [0]},
                       false_signal={"epochs": 1, "crops_per_epoch": 32, "batch_size": 8, "crop_s": 600,
                                     "net": {"width": 8, "kernel": 3, "dilations": [1, 2, 4, 8], "gru_hidden": 0}})


def add_user(settings: Settings, name: str, password: str, role: str = "nurse") -> None:
    """A station user in the stack's Redis (what ``ctgwatch users add`` does)."""
    from redis.asyncio import Redis as AsyncRedis

    from stream.station.users import UserStore

    async def go() -> None:
        redis = AsyncRedis.from_url(settings.redis_dsn)
        try:
            await UserStore(redis).add(name, password, role)
        finally:
            await redis.aclose()

    asyncio.run(go())
