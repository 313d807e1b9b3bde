"""Benchmark: how many monitored beds one worker carries in steady state, and what each costs.

For each bed count N (a fresh embedded stack each time: broker, Redis, Triton with the shipped
models):

1. **History first.** Every bed gets ``--history-s`` (default 30 min) of a simulated normal CTG,
   sent in 60-s packets, so that every bed is past the 10 min the FIGO baseline needs and is
   analysed every 15 s and scored every 60 s like a bed in a labour ward; the bench waits until
   the worker group's lag is 0 and the workers have measured the history's minutes (steady state:
   no backlog of FIGO work runs into the measured span), then sends what went by meanwhile, so that
   the live packets continue every bed's trace without a gap.
2. **Then real time.** Every second each bed sends its next 1-s packet (4 Hz) stamped with the
   wall clock, and every 5 min a vitals observation, for ``--steady-s``; the first
   ``--warmup-s`` are not measured. The measured span is a whole number of minutes (default 120 s):
   each bed measures its newest minute once a minute, so any such span holds the same number of
   measurements per bed (a 90-s span held one or two, and the CPU per bed-second moved with it).
3. **Alarm latency under that load.** During the measured span, ``--alarm-trials`` of the beds
   (each with its full history) lose their FHR for 20 s, one after another; each is timed from
   the publish of the packet that completes 15 s of loss to the signal alarm's ``raised_at`` in
   Redis (as bench/alert_latency.py times it, with the same policy change: signal loss alarms
   without its 20-min qualification; but on beds of the steady-state load).
4. **Measured** from the workers' own Prometheus metrics (deltas over the measured span):
   records/s processed, packet age p50/p99 (wall time from a packet's last sample to the end of
   its processing, interpolated in the histogram's buckets), FIGO analyses/s, Triton windows/s
   and mean batch; the backlog (records published minus records the workers have taken, counted, not
   read from committed offsets) sampled every 5 s (bounded = not growing over the span); CPU
   share and RSS of every process (workers, broker, Redis, Triton, this load generator); Redis
   commands/s and memory per bed.

The sweep stops at the first N whose p99 exceeds 1 s or whose backlog grows (ends more than a
second's packets above where it began, and above two seconds' worth); the largest N that held
is the headline. Results go to docs/capacity.json and a docs/BENCHMARKS.md section.

Run: python bench/capacity.py --beds 50,100,200,400 [--workers 1] [--steady-s 150]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from redis import Redis  # noqa: E402

from bench._report import write_section  # noqa: E402
from infra.launcher.process import ManagedProcess  # noqa: E402
from infra.launcher.stack import build_services, down, up  # noqa: E402
from models.serving.triton_client import MODEL_IO  # noqa: E402
from stream.core.kafka import group_lag, producer_outbox  # noqa: E402
from stream.core.outbox import Outbox  # noqa: E402
from stream.core.ports import free_port  # noqa: E402
from stream.core.redis_values import as_text  # noqa: E402
from stream.core.schemas import CtgPacket, Reading, VitalsObservation, encode, record_key  # noqa: E402
from stream.core.settings import Settings  # noqa: E402
from stream.sources.ctg_simulator import Scenario, simulate_ctg  # noqa: E402

FS = 4
TRACES = 16  # distinct simulated traces, shared round-robin by the beds (each bed its own offset)
TICKS = os.sysconf("SC_CLK_TCK")
LOSS_S = 20  # seconds of FHR loss on an alarm-trial bed (the signal alarm needs 15 s)


#: The held criterion's analysis cadence: 15 s asked, plus the tick (1 s) and a little slack.
MAX_MEAN_ANALYSIS_INTERVAL_S = 16.5
#: And the models' cadence: 60 s asked, and the same tenth as the analyses' (16.5 for 15) for the tick and a round
#: in flight (each model scoring, its mean). First set at 61.5 s (the analyses' 1.5 s, not their tenth): every
#: point then measured broke it by 0.1-1.1 s whatever its load (300 beds 62.6 s, 400 beds 61.6 s), so it told
#: scheduling granularity, not a worker falling behind, from nothing (docs/SCALING.md).
MAX_MEAN_MODEL_INTERVAL_S = 66.0


@dataclass
class Point:
    beds: int
    workers: int
    records_per_s: float
    p50_s: float
    p99_s: float
    analyses_per_s: float
    model_windows_per_s: float
    mean_triton_batch: float
    lag_first: int  # backlog: records published and not yet taken by a worker (the bench's count - the workers')
    lag_last: int
    lag_max: int
    cpu_share: float  # workers together, share of one core
    cpu_ms_per_bed_second: float
    rss_mb: float  # workers together
    other_cpu: dict[str, float]
    redis_commands_per_s: float
    redis_bytes_per_bed: float
    alarm_latency_s: dict[str, float | int | None] | None = None  # trials, median, max (publish -> raised_at)
    #: "spread": each bed's packets at its own phase in the second (independent monitors); "together": all at once
    phases: str = "together"
    analysis_processes: int = 0  # helper processes per worker for the FIGO analyses (their CPU counts as the worker's)
    #: Mean recording time between two analyses of a bed over the span (the cadence asks for 15 s; a bed is
    #: due at the first 1-s tick after 15 s of new recording, so about 15.5 s when the worker keeps up).
    analysis_interval_s: float | None = None
    #: Mean wall time of one FIGO analysis in the worker (its histogram): beside the analysis' cost alone
    #: (bench/detectors_incremental.py) it shows what the worker's other threads and processes take from it.
    analysis_mean_ms: float | None = None
    #: Share of one core the hypervisor took for other guests over the span (/proc/stat steal), all cores summed.
    host_steal: float | None = None
    #: Mean recording time between two scorings of a bed, the slower of the false-signal model's and the
    #: autoencoder/LSTM round's (the cadence asks for 60 s). None: no bed was scored twice in the span.
    model_interval_s: float | None = None

    @property
    def held(self) -> bool:
        # The backlog is counted, not read from the group's committed offsets: Faust commits every few seconds,
        # so the committed lag of a worker that keeps up saws between 0 and ~3 s of records (one record decided
        # a point when this read the committed lag). A backlog sample can catch a second or two of packets in
        # flight (one per bed per second): bounded means
        # it ends within that of where it began, or within two seconds' worth. The analyses must keep their
        # cadence too (the capacity target: "FIGO analysis every 15 s for every bed"): a worker that keeps its packets
        # on time by analysing each bed every 20 s does not carry that many beds.
        keeps_cadence = ((self.analysis_interval_s is None or self.analysis_interval_s <= MAX_MEAN_ANALYSIS_INTERVAL_S)
                         and (self.model_interval_s is None or self.model_interval_s <= MAX_MEAN_MODEL_INTERVAL_S))
        return (self.p99_s <= 1.0 and self.lag_last <= max(2 * self.beds, self.lag_first + self.beds)
                and keeps_cadence)


# -- processes ---------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group: Triton and its backend stubs, a worker and its analysis helpers."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def _sum_over(pids: list[int], measure) -> float:
    """A measure summed over processes, skipping any that ended in between."""
    total = 0.0
    for pid in pids:
        try:
            total += measure(pid)
        except (ProcessLookupError, FileNotFoundError):
            pass
    return total


def host_steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests (``steal`` in /proc/stat), summed over cores: a run with
    much of it measured a slower machine than the others, and its figures say so."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[8]) / TICKS if len(fields) > 8 else 0.0


def group_cpu_seconds(pgid: int) -> float:
    return _sum_over(group_pids(pgid), cpu_seconds)


def group_rss_mb(pgid: int) -> float:
    return _sum_over(group_pids(pgid), rss_mb)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- metrics -----------------------------------------------------------------------------------
def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def total(metrics: dict, name: str, **labels: str) -> float:
    return sum(v for lab, v in metrics.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


def records_taken(ports: list[int]) -> float:
    """Records the workers have taken from Kafka so far (their ingest counters, summed)."""
    return sum(total(scrape(port), "ctgwatch_ingest_records_total", entrance="kafka") for port in ports)


def buckets(metrics: dict, name: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for lab, v in metrics.get(f"{name}_bucket", []):
        le = float("inf") if lab["le"] == "+Inf" else float(lab["le"])
        out[le] = out.get(le, 0.0) + v
    return out


def quantile(cumulative: dict[float, float], q: float) -> float:
    """Linear interpolation inside the bucket that holds the q-quantile (Prometheus' method)."""
    bounds = sorted(cumulative)
    count = cumulative[bounds[-1]]
    if count <= 0:
        return float("nan")
    rank, prev_bound, prev_count = q * count, 0.0, 0.0
    for bound in bounds:
        if cumulative[bound] >= rank:
            if bound == float("inf"):
                return prev_bound
            span = cumulative[bound] - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / span if span else 1.0)
        prev_bound, prev_count = bound, cumulative[bound]
    return prev_bound


# -- load --------------------------------------------------------------------------------------
def traces(seconds: float) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for seed in range(TRACES):
        sim = simulate_ctg(Scenario("normal", duration_s=seconds), seed=1000 + seed)
        out.append((np.round(sim.fhr, 2), np.round(sim.uc, 2)))
    return out


def ctg_packet(bed: int, trace: tuple[np.ndarray, np.ndarray], offset: int, start_ts: float, n: int) -> CtgPacket:
    fhr, uc = trace
    i = (offset + int(round(start_ts * FS))) % (len(fhr) - n)
    return CtgPacket(patient_id=f"cap-{bed:05d}", bed_id=f"bed-{bed:05d}", device_id=f"mon-{bed:05d}",
                     start_ts=start_ts, fhr=[float(x) for x in fhr[i:i + n]], uc=[float(x) for x in uc[i:i + n]])


def vitals(bed: int, ts: float) -> VitalsObservation:
    return VitalsObservation(patient_id=f"cap-{bed:05d}", bed_id=f"bed-{bed:05d}", device_id=f"mon-{bed:05d}",
                             heart_rate=Reading(value=84.0, ts=ts), spo2=Reading(value=98.0, ts=ts),
                             systolic_bp=Reading(value=118.0, ts=ts), diastolic_bp=Reading(value=74.0, ts=ts))


async def send_span(outbox: Outbox, settings: Settings, beds: int, data: list, start: float, seconds: int) -> None:
    """Every bed's CTG from ``start`` for ``seconds``, in packets of at most 60 s (history, or a catch-up)."""
    names = settings.topic_names()
    for a in range(0, seconds, 60):
        n = min(60, seconds - a) * FS
        for bed in range(beds):
            p = ctg_packet(bed, data[bed % TRACES], bed * 997, start + a, n)
            await outbox.put(names.ctg, record_key(p), encode(p))
    await outbox.flush()


async def drain(settings: Settings, timeout_s: float = 900.0) -> None:
    """Wait until the worker group's lag is 0."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lag = await group_lag(settings)
        if lag is not None and sum(lag.values()) == 0:
            return
        await asyncio.sleep(2)


def minutes_measured(ports: list[int]) -> float:
    """FIGO minutes the workers have measured so far (their analysis histograms' counts, summed)."""
    return sum(total(scrape(port), "ctgwatch_window_analysis_seconds_count") for port in ports)


async def settle(ports: list[int], beds: int, timeout_s: float = 600.0) -> None:
    """Wait until the workers have measured the minutes the history left them: fewer than a steady ward's
    ``beds / 60`` a second over 5 s, while no packet arrives.

    Why: the worker reads a drained history's records long before it has measured their minutes (the ticks
    measure a backlog within their analysis budget), and at 1,500 beds the rest of that work ran into the
    measured span of some runs (32.6 measurements a second there, against the 25 of a ward in steady state).
    """
    deadline = time.monotonic() + timeout_s
    before = minutes_measured(ports)
    while time.monotonic() < deadline:
        await asyncio.sleep(5)
        now = minutes_measured(ports)
        if (now - before) / 5 <= beds / 60:
            return
        before = now


async def send_history(outbox: Outbox, settings: Settings, beds: int, data: list, history_s: float,
                       ports: list[int]) -> float:
    """History up to now, drained and measured, then caught up until less than 3 s are missing; returns
    where it ends.

    Why the catch-up: draining a large ward's history and measuring its minutes take a while, and a gap
    between the history and the live packets would be a stretch of lost signal in every bed's window (the
    FIGO analysis and the alarms would see it).
    """
    end = time.time()
    await send_span(outbox, settings, beds, data, end - history_s, int(history_s))
    await drain(settings)
    await settle(ports, beds)
    for _ in range(5):
        missing = int(time.time() - end)
        if missing < 3:
            break
        await send_span(outbox, settings, beds, data, end, missing)
        end += missing
        await drain(settings)
        await settle(ports, beds)
    return end


#: Live packets go out in this many slots per second: each bed has its own phase within the second,
#: as independent bedside monitors do (``--together``: every bed at the same instant, a worst case).
PHASE_SLOTS = 20


def bed_phase(bed: int, together: bool) -> float:
    """Where in each second a bed's packets end: spread evenly over the slots (golden-ratio steps, so any
    run of consecutive beds is spread too), or 0 for all beds."""
    if together:
        return 0.0
    return int(((bed * 0.6180339887498949) % 1.0) * PHASE_SLOTS) / PHASE_SLOTS


def live_packet(bed: int, trace: tuple[np.ndarray, np.ndarray], t0: float, k: int, phase: float) -> CtgPacket:
    """Bed ``bed``'s ``k``-th live packet: it ends at ``t0 + k + 1 + phase``. The first one starts at ``t0``
    (where the history ended), so it is up to a second longer and the trace goes on without a gap."""
    end = t0 + k + 1.0 + phase
    start = t0 if k == 0 else end - 1.0
    n = int(round(end * FS)) - int(round(start * FS))
    return ctg_packet(bed, trace, bed * 997, start, n)


async def stream_live(outbox: Outbox, settings: Settings, beds: int, data: list, seconds: float,
                      t0: float, losses: dict[int, int] | None = None,
                      published: dict[tuple[int, int], float] | None = None, together: bool = False,
                      sent: list[int] | None = None) -> None:
    """One 1-s packet per bed per second, each sent when its last sample is due (the bed's phase in the
    second, :func:`bed_phase`), vitals every 5 min per bed, spread.

    ``losses``: bed -> second (from ``t0``) at which that bed's FHR drops to 0 for ``LOSS_S``
    seconds; the publish time of each of those packets goes to ``published`` by (bed, seconds of
    loss it completes). ``sent[0]`` counts the records handed to the producer.
    """
    names = settings.topic_names()
    losses = losses or {}
    sent = sent if sent is not None else [0]
    slots: dict[float, list[int]] = {}
    for bed in range(beds):
        slots.setdefault(bed_phase(bed, together), []).append(bed)
    for k in range(int(seconds)):
        for phase in sorted(slots):
            due = t0 + k + 1.0 + phase
            await asyncio.sleep(max(0.0, due - time.time()))
            for bed in slots[phase]:
                p = live_packet(bed, data[bed % TRACES], t0, k, phase)
                lost = bed in losses and losses[bed] <= k < losses[bed] + LOSS_S
                if lost:
                    p = p.model_copy(update={"fhr": [0.0] * len(p.fhr)})
                await outbox.put(names.ctg, record_key(p), encode(p))
                sent[0] += 1
                if lost and published is not None:
                    published[(bed, k - losses[bed] + 1)] = time.time()  # (bed, seconds of loss this packet completes)
                if (k + bed) % 300 == 0:
                    v = vitals(bed, due - 0.5)
                    await outbox.put(names.vitals, record_key(v), encode(v))
                    sent[0] += 1


async def alarm_latencies(settings: Settings, losses: dict[int, int], published: dict[tuple[int, int], float],
                          until: float) -> list[float]:
    """Per bed that lost its signal: its signal alarm's raised_at minus the publish of the packet that
    completed 15 s of loss (whatever packet the worker raised it on: the detection's own delay counts)."""
    from redis.asyncio import Redis as AsyncRedis

    redis = AsyncRedis.from_url(settings.redis_dsn)
    found: dict[int, float] = {}
    try:
        while len(found) < len(losses) and time.time() < until:
            for bed in losses:
                sent, began = published.get((bed, 15)), published.get((bed, 1))
                if bed in found or sent is None or began is None:
                    continue
                for aid in await redis.smembers(f"ctgw:open:bed:bed-{bed:05d}"):
                    alert = await redis.hgetall(f"ctgw:alert:{as_text(aid)}")
                    # only an alarm raised by this loss: one left open from earlier leaves the trial untimed
                    if alert.get(b"kind") == b"signal_alarm" and float(alert[b"raised_at"]) >= began:
                        found[bed] = float(alert[b"raised_at"]) - sent
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    return list(found.values())


# -- one point of the sweep -------------------------------------------------------------------
def measure_point(beds: int, workers: int, history_s: float, steady_s: float, warmup_s: float,
                  profile_dir: Path | None = None, alarm_trials_n: int = 10, analysis_processes: int = 0,
                  together: bool = False) -> Point:
    state = Path(tempfile.mkdtemp(prefix="ctgwatch-capacity-"))
    ports = [free_port() for _ in range(5)]
    settings = Settings(state_dir=state, kafka_bootstrap=None, redis_url=None, triton_url=None,
                        broker_port=ports[0], redis_port=ports[1], triton_http_port=ports[2],
                        triton_grpc_port=ports[3], triton_metrics_port=ports[4], startup_timeout_s=180)
    up(settings, echo=lambda _l: None)
    metric_ports = [free_port() for _ in range(workers)]
    procs = []
    try:
        for w, port in enumerate(metric_ports):
            env = {**os.environ, **settings.client_env(), "CTGWATCH_WORKER_METRICS_PORT": str(port),
                   # as bench/alert_latency.py: signal loss alarms at once (the ward's policy holds it 20 min), so the
                   # trials time the pipeline from packet to alarm, not the qualification time
                   "CTGWATCH_ALARM_POLICY": json.dumps({"signal_loss": {"qualify_s": 0}}),
                   "CTGWATCH_ANALYSIS_PROCESSES": str(analysis_processes)}
            log = open(state / f"worker-{w}.log", "wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "stream.cli", "worker", "--loglevel", "warning"],
                                          env=env, stdout=log, stderr=log, start_new_session=True))
        time.sleep(15)  # join the group (no 'Ready' line at warning level)
        data = traces(history_s + steady_s + 600)
        point = asyncio.run(_run(settings, beds, workers, data, history_s, steady_s, warmup_s, metric_ports, procs,
                                profile_dir, alarm_trials_n, together))
        return replace(point, analysis_processes=analysis_processes, phases="together" if together else "spread")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        down(settings, echo=lambda _l: None)


def start_profilers(procs: list, beds: int, seconds: float, profile_dir: Path) -> list[subprocess.Popen]:
    """py-spy on every worker for the measured span: a flame graph per worker (its overhead is on the same
    cores, so a profiled run is for where the time goes, not for the headline figures).

    Only samples of the thread holding the GIL count (``--gil``): without it, a thread waiting to take the GIL
    back after a socket write or an epoll wait is sampled at that line, and the graph showed about 20% of the
    worker in ``socket.write`` and ``select`` that was the other thread's CPU, not theirs."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    # Each worker twice over: a flame graph to look at, and the collapsed stacks (one line per stack with its
    # sample count) to add up, e.g. the share of samples under a function or in it alone
    return [subprocess.Popen([spy, "record", "--pid", str(p.pid), "--duration", str(int(seconds)), "--rate", "50",
                              "--nonblocking", "--threads", "--gil", "--format", form,
                              "--output", str(profile_dir / f"worker-flame-{beds}beds-w{i}.{ext}")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, p in enumerate(procs) for form, ext in (("flamegraph", "svg"), ("raw", "txt"))]


async def _run(settings: Settings, beds: int, workers: int, data: list, history_s: float, steady_s: float,
               warmup_s: float, metric_ports: list[int], procs: list, profile_dir: Path | None = None,
               alarm_trials_n: int = 10, together: bool = False) -> Point:
    outbox = await producer_outbox(settings, "capacity", max_records=500_000).start(require_broker=True)
    try:
        history_end = await send_history(outbox, settings, beds, data, history_s, metric_ports)
        # alarm trials: beds spread over the ward, losing their signal one after another in the measured span
        trial_beds = [int(i * beds / alarm_trials_n) for i in range(alarm_trials_n)] if alarm_trials_n else []
        spacing = max(1.0, (steady_s - warmup_s - LOSS_S - 10) / max(len(trial_beds), 1))
        losses = {bed: int(warmup_s + i * spacing) for i, bed in enumerate(trial_beds)}
        published: dict[tuple[int, int], float] = {}
        t_live = history_end  # the live packets continue the history without a gap
        taken0 = records_taken(metric_ports)
        sent = [0]
        live = asyncio.create_task(stream_live(outbox, settings, beds, data, steady_s, t_live, losses, published,
                                               together, sent))
        alarms = asyncio.create_task(alarm_latencies(settings, losses, published, t_live + steady_s + 15))
        await asyncio.sleep(warmup_s)
        spies = start_profilers(procs, beds, steady_s - warmup_s - 5, profile_dir) if profile_dir else []
        service_groups = {s.name: ManagedProcess(s.name, settings.run_dir, settings.log_dir).record()
                          for s in build_services(settings)}
        redis = Redis.from_url(settings.redis_dsn)
        before = [scrape(p) for p in metric_ports]
        # each worker leads its own process group (start_new_session): its analysis helpers count with it
        cpu0 = [group_cpu_seconds(p.pid) for p in procs]
        others0 = {n: group_cpu_seconds(r.pgid) for n, r in service_groups.items() if r}
        me0 = cpu_seconds(os.getpid())
        steal0 = host_steal_seconds()
        cmd0 = int(redis.info("stats")["total_commands_processed"])
        t_start = time.monotonic()
        lags = []
        while not live.done():
            lags.append(int(sent[0] - (records_taken(metric_ports) - taken0)))
            await asyncio.sleep(5)
        span = time.monotonic() - t_start
        after = [scrape(p) for p in metric_ports]
        latencies = await alarms
        for spy in spies:
            spy.wait(60)
        cpu1 = [group_cpu_seconds(p.pid) for p in procs]
        others = {n: round((group_cpu_seconds(r.pgid) - others0[n]) / span, 3) for n, r in service_groups.items() if r}
        others["load generator"] = round((cpu_seconds(os.getpid()) - me0) / span, 3)
        steal = round((host_steal_seconds() - steal0) / span, 3)
        cmds = (int(redis.info("stats")["total_commands_processed"]) - cmd0) / span
        used = float(redis.info("memory")["used_memory"])
        worker_rss = sum(group_rss_mb(p.pid) for p in procs)
    finally:
        await outbox.stop(flush_timeout_s=30)

    def delta(name: str, **labels: str) -> float:
        return sum(total(a, name, **labels) - total(b, name, **labels) for a, b in zip(after, before))

    hist: dict[float, float] = {}
    for a, b in zip(after, before):
        ba, bb = buckets(a, "ctgwatch_packet_age_seconds"), buckets(b, "ctgwatch_packet_age_seconds")
        for le in ba:
            hist[le] = hist.get(le, 0.0) + ba[le] - bb.get(le, 0.0)
    batches = delta("ctgwatch_triton_batch_size_count")
    intervals = delta("ctgwatch_analysis_interval_seconds_count")
    cpu_share = sum(c1 - c0 for c0, c1 in zip(cpu0, cpu1)) / span
    return Point(
        beds=beds, workers=workers,
        records_per_s=round(delta("ctgwatch_ingest_records_total", entrance="kafka") / span, 1),
        p50_s=round(quantile(hist, 0.5), 3), p99_s=round(quantile(hist, 0.99), 3),
        analyses_per_s=round(delta("ctgwatch_window_analysis_seconds_count") / span, 2),
        analysis_interval_s=round(delta("ctgwatch_analysis_interval_seconds_sum") / intervals, 2) if intervals else None,
        host_steal=steal,
        model_interval_s=max((round(delta("ctgwatch_model_interval_seconds_sum", scoring=k)
                                    / delta("ctgwatch_model_interval_seconds_count", scoring=k), 2)
                              for k in ("false_signal", "anomaly_and_risk")
                              if delta("ctgwatch_model_interval_seconds_count", scoring=k)), default=None),
        analysis_mean_ms=(round(1000 * delta("ctgwatch_window_analysis_seconds_sum")
                                / delta("ctgwatch_window_analysis_seconds_count"), 2)
                          if delta("ctgwatch_window_analysis_seconds_count") else None),
        # the batch histogram is observed once per model request: windows = its sum over the models
        # every patient window is sent once to each served model (autoencoder, acidaemia LSTM, false signal)
        model_windows_per_s=round(delta("ctgwatch_triton_batch_size_sum") / len(MODEL_IO) / span, 2),
        mean_triton_batch=round(delta("ctgwatch_triton_batch_size_sum") / batches, 1) if batches else 0.0,
        lag_first=lags[0] if lags else 0, lag_last=lags[-1] if lags else 0, lag_max=max(lags) if lags else 0,
        cpu_share=round(cpu_share, 3), cpu_ms_per_bed_second=round(1000 * cpu_share / beds, 3),
        rss_mb=round(worker_rss, 1), other_cpu=others, redis_commands_per_s=round(cmds, 1),
        redis_bytes_per_bed=round(used / beds),
        alarm_latency_s={"trials": len(losses), "timed": len(latencies),
                         "median": round(float(np.median(latencies)), 3) if latencies else None,
                         "max": round(max(latencies), 3) if latencies else None},
    )


def _alarm_cell(p: Point) -> str:
    a = p.alarm_latency_s or {}
    if not a.get("timed"):
        return "-"
    return f"{a['median']} / {a['max']} s ({a['timed']} of {a['trials']})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beds", default="50,100,200,400", help="comma-separated bed counts, ascending")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--history-s", type=float, default=1800.0)
    parser.add_argument("--steady-s", type=float, default=150.0,
                        help="real-time seconds; the measured span (this less --warmup-s) should be whole minutes")
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--keep-going", action="store_true", help="measure every N even after one broke")
    parser.add_argument("--alarm-trials", type=int, default=10,
                        help="beds that lose their signal in the measured span, timed from publish to alarm (0: none)")
    parser.add_argument("--analysis-processes", type=int, default=0,
                        help="FIGO analyses in this many helper processes per worker (CTGWATCH_ANALYSIS_PROCESSES)")
    parser.add_argument("--together", action="store_true",
                        help="every bed's live packet at the same instant each second (a worst case; default: each "
                             "bed at its own phase in the second, as independent monitors)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also record a py-spy flame graph of every worker into this directory (skews CPU figures)")
    args = parser.parse_args()
    command = "python bench/capacity.py " + " ".join(sys.argv[1:])
    sweep: list[Point] = []
    for beds in (int(b) for b in args.beds.split(",")):
        point = measure_point(beds, args.workers, args.history_s, args.steady_s, args.warmup_s, args.profile,
                              args.alarm_trials, args.analysis_processes, args.together)
        sweep.append(point)
        print(json.dumps(asdict(point)), flush=True)
        if not point.held and not args.keep_going:
            break
    held = [p for p in sweep if p.held]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    out = ROOT / "docs" / "capacity.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    helpers = args.analysis_processes
    phases = "together" if args.together else "spread"
    same_run = (lambda s: s["workers"] == args.workers and s.get("analysis_processes", 0) == helpers  # noqa: E731
                and s.get("phases", "together") == phases)
    # the headline is the one-worker run with spread phases; the others keep their commands beside their figures
    headline_run = not helpers and not args.together and args.workers == 1
    result = {**previous, "machine": machine, **({"command": command} if headline_run else {}),
              "sweep": [s for s in previous.get("sweep", []) if not same_run(s)] + [asdict(p) for p in sweep]}
    cpu = round(float(np.median([p.cpu_ms_per_bed_second for p in held])), 3) if held else None
    if helpers or args.together:  # the headline is a worker alone under independent monitors; these go beside it
        result[f"with_{helpers}_analysis_processes" if helpers else f"together_{args.workers}_workers"] = {
            "command": command, "workers": args.workers, "beds": max((p.beds for p in held), default=0),
            "p99_packet_age_s": max((p.p99_s for p in held), default=None), "cpu_ms_per_bed_second": cpu}
    elif args.workers == 1:
        result.update(beds_per_worker=max((p.beds for p in held), default=0),
                      p99_packet_age_s=max((p.p99_s for p in held), default=None), cpu_ms_per_bed_second=cpu)
    else:
        # the scale-out figure: from the points that held, else from the smallest load measured (said so)
        basis = f"median of {[p.beds for p in held]} beds (held)" if held else f"{sweep[0].beds} beds (did not hold)"
        result.update(two_worker_cpu_ms_per_bed_second=cpu if held else sweep[0].cpu_ms_per_bed_second,
                      two_worker_cpu_basis=basis, two_worker_command=command)
    out.write_text(json.dumps(result, indent=2) + "\n")
    body = report_body(sweep, command, machine, args)
    print(body)
    write_section(section_title(args), body)


def section_title(args: argparse.Namespace) -> str:
    """The docs/BENCHMARKS.md section of a run: one per kind of run (workers, helpers, load shape)."""
    helpers = args.analysis_processes
    title = f"Capacity in steady state ({args.workers} worker{'s' if args.workers > 1 else ''}"
    title += f", {helpers} analysis process{'es' if helpers > 1 else ''}" if helpers else ""
    return title + (", every bed's packet at once)" if args.together else ")")


def report_body(sweep: list[Point], command: str, machine: str, args: argparse.Namespace) -> str:
    """The docs/BENCHMARKS.md text of a sweep: how it was run, a row per bed count, the headline."""
    helpers = args.analysis_processes
    held = [p for p in sweep if p.held]
    rows = [f"| {p.beds} | {p.workers} | {p.records_per_s} | {p.p50_s} | {p.p99_s} | {p.lag_first} -> {p.lag_last} "
            f"(max {p.lag_max}) | {p.analyses_per_s} ({p.beds / 15:.1f}) | {p.analysis_mean_ms} | {p.analysis_interval_s} | "
            f"{p.model_windows_per_s} ({p.mean_triton_batch}) | {p.model_interval_s} | "
            f"{p.cpu_share} | {p.cpu_ms_per_bed_second} | {p.rss_mb} | "
            f"{', '.join(f'{k} {v}' for k, v in p.other_cpu.items())}"
            f"{'' if p.host_steal is None else f', stolen by the host {p.host_steal}'} | {p.redis_commands_per_s} | "
            f"{p.redis_bytes_per_bed / 1024:.0f} | {_alarm_cell(p)} | {'held' if p.held else 'BROKE'} |" for p in sweep]
    return "\n".join([
        f"Command: `{command}`. Machine: {machine}; embedded Tansu, redis-server, Triton (models on), "
        f"{args.workers} worker(s)"
        + (f", each with {helpers} analysis process(es) whose CPU and memory count as the worker's" if helpers else "")
        + f". Each bed first gets {args.history_s / 60:.0f} min of history (60-s packets; "
        f"the bench waits for lag 0 and for the workers to have measured its minutes), "
        f"then streams 1-s packets at 4 Hz in real time for {args.steady_s:.0f} s "
        + ("(every bed's packet at the same instant each second: a worst case) " if args.together else
           f"(each bed at its own phase in the second, {PHASE_SLOTS} slots, as independent monitors) ") +
        f"(vitals every 5 min); the first {args.warmup_s:.0f} s are not measured. Packet age = wall time from a "
        "packet's last sample to the end of its processing (worker histogram, interpolated). CPU as a share of "
        "one core over the measured span; the load generator, broker, Redis and Triton run on the same 2 cores. "
        f"Publish -> alarm: {args.alarm_trials} of the beds lose their FHR for {LOSS_S} s one after another in the "
        "measured span, each timed from the publish of the packet that completes 15 s of loss to the signal "
        "alarm's raised_at in Redis (the bench's policy lets signal loss alarm without its 20-min qualification).",
        "",
        "| beds | workers | records/s | age p50 (s) | age p99 (s) | backlog (records) first -> last | FIGO analyses/s "
        "(due) | ms per analysis | mean s between a bed's analyses | model windows/s (mean batch) "
        "| mean s between a bed's model scorings | worker CPU "
        "| worker CPU ms per bed-second | worker RSS (MB) | other "
        "processes' CPU | Redis cmds/s | Redis KiB per bed | publish -> alarm, median / max (timed of trials) "
        f"| p99 <= 1 s, backlog bounded, analyses every <= {MAX_MEAN_ANALYSIS_INTERVAL_S} s, "
        f"model scorings every <= {MAX_MEAN_MODEL_INTERVAL_S} s |",
        "|" + "---|" * 19,
        *rows,
        "",
        f"Headline (largest N that held): **{max((p.beds for p in held), default=0)} beds** with "
        f"{args.workers} worker(s). Full results: docs/capacity.json.",
    ])


if __name__ == "__main__":
    main()
