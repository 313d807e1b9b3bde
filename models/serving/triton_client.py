"""Async Triton client for the anomaly models: batching, timeouts, retries, circuit breaker.

The stream must keep alerting on the clinical rules when Triton is slow or
down. So every call has a deadline (``timeout_s``, retries included), failures
open a circuit breaker (no waiting on a dead server for every window), and the
result is either :class:`ModelScores` or :class:`ModelUnavailable` — never an
exception — which the stream turns into a "degraded: models unavailable" flag.
After ``reset_after_s`` the breaker lets one call through (half-open); its
success closes the breaker again, so recovery needs no operator.

:class:`BatchingScorer` gathers windows from many patients into one request
per model, so the cost of scoring grows with batches, not with patients.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

MODELS = ("ctg_lstm", "ctg_autoencoder")  # evidence beside the rules: acidaemia risk, anomaly
RISK_MODEL = "ctg_lstm"  # the acidaemia-risk LSTM (last hour)
ANOMALY_MODEL = "ctg_autoencoder"  # the autoencoder (last 10 min)
FALSE_SIGNAL = "ctg_false_signal"


@dataclass(frozen=True)
class ModelIO:
    """Tensor names of a served model: its input, its per-window and its per-second output."""

    input: str
    scalar: str
    per_second: str


MODEL_IO = {
    "ctg_lstm": ModelIO("window", "risk", "risk_course"),  # risk [B, 2]: pH < 7.05, < 7.15; course [B, 60]
    "ctg_autoencoder": ModelIO("window", "score", "error"),
    FALSE_SIGNAL: ModelIO("signal", "false_fraction", "p_false"),
}

log = logging.getLogger("ctgwatch.models")


@dataclass(frozen=True)
class ModelScores:
    model: str
    version: str
    scores: np.ndarray  # [B] per-window output (anomaly score; share of the window judged false)
    errors: np.ndarray  # [B, T] per-second output (error: where abnormal; p_false: probability not fetal)
    threshold: float
    latency_s: float
    # seconds at the end of each window whose per-second output is not used yet (the model's config
    # parameter ``verdict_delay_s``: a verdict with no future is the least certain); 0 for the others
    verdict_delay_s: float = 0.0
    # the false-signal threshold for seconds without a maternal value (config parameter
    # ``threshold_without_maternal``, from v8); None: ``threshold`` for every second
    threshold_without_maternal: float | None = None

    @property
    def abnormal(self) -> np.ndarray:
        return self.scores > self.threshold


class Scored(NamedTuple):
    """One window's result from one model."""

    score: float
    per_second: np.ndarray
    threshold: float
    version: str
    verdict_delay_s: float = 0.0
    threshold_without_maternal: float | None = None


class Calibration(NamedTuple):
    """What a served model's config says about reading its output (the client never pairs versions)."""

    version: str
    threshold: float
    verdict_delay_s: float
    threshold_without_maternal: float | None


@dataclass(frozen=True)
class ModelUnavailable:
    model: str
    reason: str


class CircuitBreaker:
    """closed -> (``failures`` in a row) -> open -> (``reset_after_s``) -> half-open -> closed/open."""

    def __init__(self, failures: int = 3, reset_after_s: float = 5.0, clock=time.monotonic) -> None:
        self.failures_to_open = failures
        self.reset_after_s = reset_after_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_after_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self._probe_in_flight = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        if self._probe_in_flight or self.failures >= self.failures_to_open:
            self.opened_at = self.clock()
        self._probe_in_flight = False


class AnomalyClient:
    def __init__(
        self,
        grpc_url: str,
        *,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        breaker_failures: int = 3,
        breaker_reset_s: float = 5.0,
        on_latency=None,
    ) -> None:
        """``on_latency(model, seconds, batch_size)`` is called after each successful request (metrics)."""
        self.on_latency = on_latency
        self.url = grpc_url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        # one breaker per model, made on first use: a model missing from the server fails alone
        self.breakers: defaultdict[str, CircuitBreaker] = defaultdict(
            lambda: CircuitBreaker(breaker_failures, breaker_reset_s))
        self._client: InferenceServerClient | None = None
        self._calibrations: dict[str, Calibration] = {}

    def _conn(self) -> InferenceServerClient:
        if self._client is None:
            self._client = InferenceServerClient(self.url)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def unready_reason(self, timeout_s: float = 1.5) -> str | None:
        """None when the server answers ready; else why not, in words (the worker's heartbeat reports it, so
        the ward hears of a Triton outage before a model round fails)."""
        try:
            ready = await self._conn().is_server_ready(client_timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 (unreachable, refused, timed out: all mean "not answering")
            return f"Triton not answering ({type(exc).__name__})"
        return None if ready else "Triton not ready"

    async def _calibration(self, model: str, timeout: float) -> Calibration:
        """Version, threshold(s) and verdict delay from the server's model config: a client never pairs a
        model with another version's calibration."""
        if model not in self._calibrations:
            cfg = await self._conn().get_model_config(model, as_json=True, client_timeout=timeout)
            params = cfg["config"].get("parameters", {})
            threshold = float(params.get("threshold", {}).get("string_value", "nan"))
            delay = float(params.get("verdict_delay_s", {}).get("string_value", "0"))
            without = params.get("threshold_without_maternal", {}).get("string_value")
            meta = await self._conn().get_model_metadata(model, as_json=True, client_timeout=timeout)
            self._calibrations[model] = Calibration(str(meta.get("versions", ["?"])[-1]), threshold, delay,
                                                    float(without) if without is not None else None)
        return self._calibrations[model]

    async def _infer(self, model: str, windows: np.ndarray, timeout: float) -> ModelScores:
        t0 = time.monotonic()
        calibration = await self._calibration(model, timeout)
        io = MODEL_IO.get(model, ModelIO("window", "score", "error"))
        inp = InferInput(io.input, list(windows.shape), "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        result = await self._conn().infer(
            model, [inp], outputs=[InferRequestedOutput(io.scalar), InferRequestedOutput(io.per_second)],
            client_timeout=max(timeout - (time.monotonic() - t0), 0.05),
        )
        return ModelScores(model, calibration.version, result.as_numpy(io.scalar)[:, 0],
                           result.as_numpy(io.per_second), calibration.threshold, time.monotonic() - t0,
                           calibration.verdict_delay_s, calibration.threshold_without_maternal)

    async def score(self, model: str, windows: np.ndarray) -> ModelScores | ModelUnavailable:
        """Scores for a batch ``[B, T, 4]``, or why the model is unavailable, within ``timeout_s``."""
        breaker = self.breakers[model]
        if not breaker.allow():
            return ModelUnavailable(model, f"circuit open after {breaker.failures} failures; retrying in "
                                           f"{breaker.reset_after_s:g} s")
        deadline = time.monotonic() + self.timeout_s
        reason = "no attempt"
        for attempt in range(self.retries + 1):
            left = deadline - time.monotonic()
            if left <= 0.01:
                reason = f"timed out after {self.timeout_s:g} s ({reason})"
                break
            try:
                result = await asyncio.wait_for(self._infer(model, windows, left), left)
                breaker.success()
                if self.on_latency is not None:
                    self.on_latency(model, result.latency_s, len(windows))
                return result
            except Exception as exc:  # whatever a dying server makes the client raise: the model is unavailable
                if not isinstance(exc, (TimeoutError, InferenceServerException, ConnectionError, OSError)):
                    log.warning("%s: unexpected %s from the Triton client (counted as unavailable): %s",
                                model, type(exc).__name__, exc)
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                self._calibrations.pop(model, None)  # the server may come back with another version
                if self._client is not None and "UNAVAILABLE" in str(exc).upper():
                    await self.close()  # reconnect on the next attempt
            await asyncio.sleep(min(self.backoff_s * 2**attempt, max(deadline - time.monotonic(), 0)))
        breaker.failure()
        return ModelUnavailable(model, reason)


@dataclass
class _Pending:
    window: np.ndarray
    future: asyncio.Future


class BatchingScorer:
    """Collects windows from many patients; one Triton request per model per batch.

    ``models`` share one input tensor; each served model has its own scorer
    in the worker (their windows differ: 10 min, 1 h, per-second features).
    """

    def __init__(self, client: AnomalyClient, *, max_batch: int = 128, max_wait_s: float = 0.02,
                 models: tuple[str, ...] = (ANOMALY_MODEL,)) -> None:
        self.client = client
        self.models = models
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self.batches: deque[int] = deque(maxlen=1000)  # recent batch sizes (bounded: a worker runs for weeks)

    @property
    def deadline_s(self) -> float:
        """The longest a caller should wait for :meth:`score` (the client's deadline, twice, plus batching)."""
        return 2 * float(getattr(self.client, "timeout_s", 2.0)) + self.max_wait_s + 1.0

    async def score_many(self, windows: list[np.ndarray]) -> list[dict[str, Scored | ModelUnavailable]]:
        """Each window's results, bounded by :attr:`deadline_s`: the models never hold the analysis up."""
        if not windows:
            return []
        try:
            return list(await asyncio.wait_for(asyncio.gather(*(self.score(w) for w in windows)), self.deadline_s))
        except TimeoutError:
            late = f"no answer within {self.deadline_s:g} s"
            return [{m: ModelUnavailable(m, late) for m in self.models} for _ in windows]

    async def score(self, window: np.ndarray) -> dict[str, Scored | ModelUnavailable]:
        """One patient's window -> per model (score, per-second output, threshold, version) or unavailable."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(window, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(deadline - time.monotonic(), 0)))
                except TimeoutError:
                    break
            self.batches.append(len(batch))
            windows = np.stack([p.window for p in batch])
            try:
                results = await asyncio.gather(*(self.client.score(m, windows) for m in self.models))
            except Exception as exc:  # never leave a caller waiting: the whole batch is unavailable
                log.warning("scoring batch failed (%s: %s); models reported unavailable", type(exc).__name__, exc)
                results = [ModelUnavailable(m, f"{type(exc).__name__}: {str(exc)[:200]}") for m in self.models]
            for i, pending in enumerate(batch):
                out: dict[str, Scored | ModelUnavailable] = {}
                for res in results:
                    if isinstance(res, ModelUnavailable):
                        out[res.model] = res
                    else:
                        out[res.model] = Scored(float(res.scores[i]), res.errors[i], res.threshold, res.version,
                                                res.verdict_delay_s, res.threshold_without_maternal)
                if not pending.future.done():
                    pending.future.set_result(out)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
