"""The compromise risk in the worker on fakeredis: a risk held above its threshold becomes a CTG alarm whose
evidence names the risk and what raised it; a low risk raises nothing and is still shown as evidence."""

from __future__ import annotations

import math
import time
import uuid

import numpy as np

from models.serving.compromise import INPUT_NAMES, OUTCOMES, Stacker
from models.serving.triton_client import Scored
from stream.alarms.handling import AlertHandling
from stream.alarms.policy import COMPROMISE_QUALIFY_S
from stream.state.alerts import AlertStore
from stream.state.windows import WindowStore
from stream.worker.pipeline import Cadence, Pipeline
from tests.unit.test_pipeline import packets


class _Scorer:
    """Triton answering one model with a fixed score."""

    deadline_s = 1.0

    def __init__(self, model: str, score: float) -> None:
        self.models = (model,)
        self.model, self.score = model, score

    async def score_many(self, windows: list[np.ndarray]) -> list[dict]:
        return [{self.model: Scored(self.score, np.zeros(600, np.float32), 1.0, "1")} for _ in windows]


def _stacker() -> Stacker:
    n = len(INPUT_NAMES)
    w = np.zeros(n)
    w[INPUT_NAMES.index("lstm")] = 1.0
    center = np.zeros(n)
    center[INPUT_NAMES.index("lstm")] = math.log(0.05 / 0.95)
    reference = np.zeros(n)
    reference[INPUT_NAMES.index("lstm")] = 0.05
    return Stacker(center=center, scale=np.ones(n), weights={o: w.copy() for o in OUTCOMES},
                   intercepts={o: math.log(0.05 / 0.95) for o in OUTCOMES}, reference=reference,
                   thresholds={"t1": 0.2, "t2": 0.9}, version="test")


async def _run(redis, lstm_risk: float) -> tuple[Pipeline, str]:  # noqa: ANN001
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=f"w-{uuid.uuid4().hex[:6]}")),
                 WindowStore(redis, capacity_s=3600), Cadence(forget_idle_s=1e9),
                 _Scorer("ctg_autoencoder", 0.5), risk_scorer=_Scorer("ctg_lstm", lstm_risk),  # type: ignore[arg-type]
                 compromise=_stacker())
    minutes = 12 + int(COMPROMISE_QUALIFY_S // 60) + 3
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", 60 * (time.time() // 60) - minutes * 60
    for i, pkt in enumerate(packets(patient, t0, np.full(4 * 60 * minutes, 140.0))):
        await p.on_record(pkt)
        if i % 60 == 59:
            await p.tick()
            await p.wait_scoring()
    return p, patient


async def test_a_risk_held_above_its_threshold_is_a_ctg_alarm_with_its_reasons(redis) -> None:
    p, patient = await _run(redis, lstm_risk=0.6)
    alerts = await p.alerts.open_alerts()
    assert [a.kind for a in alerts] == ["ctg_alarm"]
    reasons = {r["kind"]: r for r in alerts[0].evidence["reasons"]}
    risk = reasons["compromise_risk"]
    assert "Risk of fetal acidaemia (cord pH < 7.05)" in risk["sentence"]
    assert "the LSTM's acidaemia risk from the last hour: 60%" in risk["sentence"]
    assert risk["values"]["risk_ph_below_7_05"] > 0.2 and risk["values"]["reasons"]
    assert alerts[0].severity_name == "urgent"  # medium priority below the second threshold
    evidence = (await p.status.read(patient)).model_evidence
    assert evidence is not None and evidence["compromise_risk"]["risk_ph_below_7_05"] > 0.2


async def test_a_low_risk_is_evidence_and_no_alarm(redis) -> None:
    p, patient = await _run(redis, lstm_risk=0.03)
    assert await p.alerts.open_alerts() == []
    evidence = (await p.status.read(patient)).model_evidence
    assert evidence is not None and evidence["compromise_risk"]["risk_ph_below_7_05"] < 0.2
