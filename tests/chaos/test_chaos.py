"""``make chaos``: a ward under long and overlapping faults, read from the open wall; writes docs/RELIABILITY.md.

One private stack (broker, Redis, Triton with the shipped models), a worker, the gateway and the station as
processes. The ward: simulated beds published through a producer's outbox (normal beds and one bradycardia:
one CTG alarm expected), a monitor posting over HTTP and one sending HL7 v2 over MLLP (both after an 11-min
backlog, so their FIGO analysis runs), and the wall open in Debian's chromium.

Each scenario runs ``CHAOS_REPEATS`` times (default 3): Redis, the broker, the worker and Triton killed
(SIGKILL) for ``CHAOS_DOWN_S`` (default 45 s, past every indicator), the broker stalled (SIGSTOP) as long,
and two overlapping faults: the worker killed and, 60 s later, the broker lost; the broker restarted and
Redis killed while it does. Services come back as ``ctgwatch up`` (and the ward's supervisor) bring them.

Checked, and written to docs/RELIABILITY.md: every packet acknowledged to a source (the outbox's broker
acknowledgement, HTTP 202, MLLP AA) is in its patient's stored window; nothing valid dead-lettered; the
expected alarm exactly once and no other alarm; no notice on a normal bed asks for the transducer or says
the signal was lost; and the wall names each fault by its cause within 10 s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from redis import Redis

from stream.core.kafka import producer_outbox
from stream.core.ports import free_port
from stream.core.settings import Settings
from stream.gateway.devices import DeviceRegistry
from stream.sources.ctg_simulator import Scenario, simulate_ctg
from stream.sources.publishing import publish_paced
from stream.sources.ward import Bed
from tests.faults import KnownWard, alerts_of, crash, private_stack, restart, resume, stall, stored_packets, worker_env
from tests.helpers import PROJECT_ROOT, add_user, spawn_ctgwatch, stop_process

REPEATS = int(os.environ.get("CHAOS_REPEATS", "3"))
DOWN_S = float(os.environ.get("CHAOS_DOWN_S", "45"))
SETTLE_S = 30.0  # between two faults: the worker catches up and the banners clear
NAMED_WITHIN_S = 10.0
SPEED = 3.0  # the simulated beds (the two live monitors send in real time)
WARMUP_S = 600.0 / SPEED + 10.0  # the simulated beds' first 10 min, which the FIGO analysis needs
BACKLOG_S = 660
#: scenario -> the cause the wall must name
SCENARIOS = {
    "redis": "redis_unreachable", "broker": "broker_unreachable", "worker": "worker_silent",
    "triton": "models_degraded", "stall": "broker_unreachable", "worker, then the broker": "worker_silent",
    "redis while the broker restarts": "redis_unreachable",
}
CHROMIUM = "/usr/bin/chromium"


# -- the live monitors ------------------------------------------------------------------------------
def normal_trace(seconds: int, seed: int) -> tuple[list[float], list[float]]:
    """A normal labour's FHR and UC at 4 Hz from the simulator (a made-up periodic trace reads, rightly, as
    sinusoidal), for a live monitor to send second by second."""
    sim = simulate_ctg(Scenario("normal", duration_s=float(seconds)), seed=seed)
    return [round(float(v), 1) for v in sim.fhr], [round(float(v), 1) for v in sim.uc]


class HttpMonitor(threading.Thread):
    """Posts an 11-min backlog, then a 1-s packet a second, to the gateway; keeps what it got 202 for."""

    def __init__(self, url: str, token: str, patient: str, seconds: int) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.patient = url, token, patient
        self.fhr, self.uc = normal_trace(seconds + BACKLOG_S + 600, seed=301)
        self.t0 = int(time.time()) - BACKLOG_S
        self.acknowledged: set[int] = set()
        self.stopping = threading.Event()

    def _packet(self, t: int) -> dict:
        i = 4 * ((t - self.t0) % (len(self.fhr) // 4))
        return dict(kind="ctg", patient_id=self.patient, bed_id="bed-http", device_id="mon-http",
                    start_ts=float(t), fhr=self.fhr[i:i + 4], uc=self.uc[i:i + 4])

    def _post(self, client: httpx.Client, ts: list[int]) -> None:
        while not self.stopping.is_set():
            try:
                r = client.post("/v1/ingest", json={"records": [self._packet(t) for t in ts]},
                                headers={"Authorization": f"Bearer {self.token}"})
                if r.status_code == 202:
                    self.acknowledged.update(t * 4 for t in ts)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)  # refused (outbox full) or the gateway away: the monitor keeps the data

    def run(self) -> None:
        now = int(time.time())
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for start in range(now - BACKLOG_S, now, 60):
                self._post(client, list(range(start, min(start + 60, now))))
            t = now
            while not self.stopping.is_set():
                while t < time.time() - 1:
                    self._post(client, [t])
                    t += 1
                time.sleep(0.2)


def _hl7_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y%m%d%H%M%S.%f")[:-3] + "+0000"


class MllpMonitor(threading.Thread):
    """Sends one ORU^R01 per second over MLLP (after the backlog); keeps what it got AA for."""

    def __init__(self, host: str, port: int, device: str, patient: str, seconds: int) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.device, self.patient = host, port, device, patient
        self.fhr, self.uc = normal_trace(seconds + BACKLOG_S + 600, seed=302)
        self.t0 = int(time.time()) - BACKLOG_S
        self.acknowledged: set[int] = set()
        self.stopping = threading.Event()

    def _oru(self, t: int) -> bytes:
        when = _hl7_time(t)
        i = 4 * ((t - self.t0) % (len(self.fhr) // 4))
        fhr = "^".join(f"{v:g}" for v in self.fhr[i:i + 4])
        uc = "^".join(f"{v:g}" for v in self.uc[i:i + 4])
        return "\r".join([
            f"MSH|^~\\&|{self.device}|LABOUR|CTGWATCH|HOSP|{_hl7_time(time.time())}||ORU^R01^ORU_R01|C{t}|P|2.6",
            f"PID|||{self.patient}^^^HOSP^MR", "PV1||I|LABOUR^^bed-mllp",
            f"OBR|1|||CTG^Cardiotocography^99CTG|||{when}",
            f"OBX|1|NA|11948-7^Fetal heart rate^LN||{fhr}|/min^^UCUM|||||R|||{when}",
            f"OBX|2|NA|UA^Uterine activity^99CTG||{uc}||||||R|||{when}",
        ]).encode()

    async def _send_all(self) -> None:
        from hl7.mllp import open_hl7_connection

        now = int(time.time())
        pending = list(range(now - BACKLOG_S, now))
        t_live = now
        while not self.stopping.is_set():
            try:
                reader, writer = await open_hl7_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(1)
                continue
            try:
                while not self.stopping.is_set():
                    while t_live < time.time() - 1:
                        pending.append(t_live)
                        t_live += 1
                    if not pending:
                        await asyncio.sleep(0.2)
                        continue
                    t = pending[0]
                    writer.writeblock(self._oru(t))
                    await writer.drain()
                    ack = await asyncio.wait_for(reader.readmessage(), 30)
                    if str(ack.segment("MSA")[1]) == "AA":
                        self.acknowledged.add(t * 4)
                        pending.pop(0)
                    else:
                        await asyncio.sleep(1)  # AE/AR: not taken; the monitor sends it again
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                await asyncio.sleep(1)
            finally:
                writer.close()

    def run(self) -> None:
        asyncio.run(self._send_all())


# -- the open wall ----------------------------------------------------------------------------------
class Wall(threading.Thread):
    """Debian's chromium on the wall page, recording when each outage cause appears on its banner."""

    def __init__(self, url: str, user: str, password: str) -> None:
        super().__init__(daemon=True)
        self.url, self.user, self.password = url, user, password
        self.seen: list[tuple[float, frozenset[str]]] = []  # (time, causes) at each change of the banner
        self.stopping, self.ready = threading.Event(), threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page()
                page.goto(self.url + "/")
                page.fill("input[name=username]", self.user)
                page.fill("input[name=password]", self.password)
                page.click("button[type=submit]")
                page.wait_for_selector(".panel", timeout=120_000)
                self.ready.set()
                last: frozenset[str] | None = None
                while not self.stopping.is_set():
                    causes = frozenset((page.get_attribute("#interrupted", "data-causes") or "").split()) \
                        if page.is_visible("#interrupted") else frozenset()
                    if causes != last:
                        self.seen.append((time.time(), causes))
                        last = causes
                    page.wait_for_timeout(250)
                browser.close()
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def named_after(self, since: float, cause: str) -> float | None:
        """Seconds from ``since`` until the banner first named ``cause`` (None: never)."""
        for t, causes in self.seen:
            if t >= since and cause in causes:
                return t - since
        return None


# -- the faults -------------------------------------------------------------------------------------
class Worker:
    """The worker process, started again after a kill as the ward's supervisor does."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.runs = env, logs, 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.runs += 1
        self.proc = spawn_ctgwatch(["worker"], self.env, self.logs / f"worker-{self.runs}.log",
                                   ready="[^Worker]: Ready", timeout_s=120)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("worker-*.log")))


async def _inject(scenario: str, settings: Settings, worker: Worker) -> None:
    """One fault, from its start until everything is up again."""
    up = lambda name: asyncio.to_thread(restart, settings, name)  # noqa: E731
    if scenario in ("redis", "broker", "triton"):
        crash(settings, scenario)
        await asyncio.sleep(DOWN_S)
        await up(scenario)
    elif scenario == "worker":
        worker.kill()
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(worker.start)
    elif scenario == "stall":
        group = stall(settings, "broker")
        await asyncio.sleep(DOWN_S)
        resume(group)
    elif scenario == "worker, then the broker":
        worker.kill()
        await asyncio.sleep(60)
        crash(settings, "broker")
        await asyncio.sleep(10)
        await up("broker")
        await asyncio.to_thread(worker.start)
    elif scenario == "redis while the broker restarts":
        crash(settings, "broker")
        restarting = asyncio.create_task(up("broker"))
        await asyncio.sleep(1)
        crash(settings, "redis")
        await restarting
        await asyncio.sleep(DOWN_S)
        await up("redis")
    else:
        raise AssertionError(scenario)


def _simulated_ward(tag: str, duration_s: float) -> KnownWard:
    ward = KnownWard(tag, beds=3, duration_s=duration_s, speed=SPEED)
    brady = ward.ward[0]
    ward.ward[0] = Bed(brady.index, brady.patient_id, brady.bed_id,
                       Scenario("brady", duration_s=duration_s, bradycardia=(900.0, duration_s)), brady.vitals,
                       brady.seed)
    return ward


def test_a_ward_under_long_and_overlapping_faults(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "make chaos reads the banners in Debian's chromium (apt-get install chromium)"
    tag = f"chaos{uuid.uuid4().hex[:5]}"
    order = [s for _ in range(REPEATS) for s in SCENARIOS]
    run_s = WARMUP_S + len(order) * (DOWN_S + 15 + SETTLE_S) + 120
    ward = _simulated_ward(tag, run_s * SPEED)
    started = time.monotonic()
    latencies: dict[str, list[float | None]] = {s: [] for s in SCENARIOS}
    with private_stack(tmp_path / "stack", services=("broker", "redis", "triton")) as settings:
        http_port, mllp_port, station_port = free_port(), free_port(), free_port()
        tokens = tmp_path / "tokens.json"
        registry = DeviceRegistry(tokens)
        http_token = registry.add("mon-http")
        registry.add("MON-MLLP")
        env = worker_env(settings, f"g-{tag}", models=True, CTGWATCH_GATEWAY_HTTP_PORT=str(http_port),
                         CTGWATCH_GATEWAY_MLLP_PORT=str(mllp_port), CTGWATCH_GATEWAY_TOKENS_FILE=str(tokens),
                         CTGWATCH_DASHBOARD_PORT=str(station_port),
                         CTGWATCH_DASHBOARD_SECRET="chaos-" + uuid.uuid4().hex)
        add_user(settings, "chaosnurse", "chaos-password-1")
        worker = Worker(env, tmp_path)
        worker.start()
        gateway = spawn_ctgwatch(["gateway"], env, tmp_path / "gateway.log", ready="gateway ready")
        station = spawn_ctgwatch(["dashboard"], env, tmp_path / "dashboard.log", ready="dashboard ready")
        http = HttpMonitor(f"http://127.0.0.1:{http_port}", http_token, f"{tag}-http", int(run_s))
        mllp = MllpMonitor("127.0.0.1", mllp_port, "MON-MLLP", f"{tag}-mllp", int(run_s))
        wall = Wall(f"http://127.0.0.1:{station_port}", "chaosnurse", "chaos-password-1")
        items = ward.schedule(settings)
        acked_sim: dict[str, set[int]] = {b.patient_id: set() for b in ward.ward}
        try:
            http.start()
            mllp.start()
            wall.start()
            assert wall.ready.wait(180) and wall.error is None, wall.error

            async def run() -> None:
                # the outbox keeps each record until the workers' group has read it: it must ask that group
                group_settings = settings.model_copy(update={"worker_app_id": f"g-{tag}"})
                async with producer_outbox(group_settings, "chaos-ward", max_records=200_000) as outbox:
                    publishing = asyncio.create_task(publish_paced(outbox, items, speed=SPEED))
                    await asyncio.sleep(WARMUP_S)
                    for scenario in order:
                        t = time.time()
                        await _inject(scenario, settings, worker)
                        latencies[scenario].append(wall.named_after(t, SCENARIOS[scenario]))
                        await asyncio.sleep(SETTLE_S)
                    await publishing

            asyncio.run(run())
            for item in items:
                if item.record.kind == "ctg":
                    acked_sim[item.record.patient_id].add(round(item.record.start_ts * 4))
            http.stopping.set()
            mllp.stopping.set()
            time.sleep(60)  # the last records through, alarms qualified
            wall.stopping.set()
        finally:
            for proc in (gateway, station):
                stop_process(proc)
            if worker.proc is not None:
                stop_process(worker.proc)
        redis = Redis.from_url(settings.redis_dsn)
        acked = {**acked_sim, http.patient: http.acknowledged, mllp.patient: mllp.acknowledged}
        lost = {pid: _missing(redis, pid, got) for pid, got in acked.items()}
        alerts = alerts_of(redis, tag)
        notices = _outage_notices(redis, [b.patient_id for b in ward.ward[1:]] + [http.patient, mllp.patient])
        log_text = worker.log_text()
        dead = log_text.count("dead letter from")
        wall_s = time.monotonic() - started

    kinds = Counter((a["patient_id"], a["kind"]) for a in alerts)
    expected = (ward.ward[0].patient_id, "ctg_alarm")
    unexpected = sorted(k for k in kinds if k != expected)
    late = {s: v for s, v in latencies.items() if any(x is None or x > NAMED_WITHIN_S for x in v)}
    result = {
        "acknowledged": sum(len(v) for v in acked.values()), "lost": sum(n for n, _ in lost.values()),
        "dead": dead, "alarm": kinds.get(expected, 0), "unexpected": unexpected, "notices": notices,
        "latencies": latencies, "late": late, "wall_s": wall_s, "repeats": REPEATS,
    }
    _write_report(result)
    assert result["lost"] == 0, lost
    assert dead == 0
    assert kinds.get(expected) == 1 and not unexpected, kinds
    assert not notices, notices
    assert not late, latencies




def _missing(redis: Redis, patient: str, acknowledged: set[int]) -> tuple[int, int]:
    """(acknowledged packets not stored, of how many), counting only what the window still spans (it keeps
    the last ``history_s``: older packets are trimmed by design)."""
    stored = set(stored_packets(redis, patient))
    if not stored:
        return len(acknowledged), len(acknowledged)
    spanned = {i for i in acknowledged if i >= min(stored)}
    return len(spanned - stored), len(spanned)


def _outage_notices(redis: Redis, normal: list[str]) -> list[str]:
    """Notices on the normal beds that an outage could have caused (signal loss, the transducer)."""
    import json

    out = []
    for pid in normal:
        raw = redis.hget(f"ctgw:patient:{pid}", "notices")
        for n in json.loads(raw) if raw else []:
            if n["kind"] in ("signal_loss", "insufficient_signal") or "transducer" in n["sentence"]:
                out.append(f"{pid}: {n['sentence']}")
    return out


def _write_report(r: dict) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=PROJECT_ROOT).stdout.strip() or "unknown"

    def cell(values: list[float | None]) -> str:
        shown = [v for v in values if v is not None]
        worst = "never" if len(shown) < len(values) else f"{max(shown):.1f} s"
        return f"{len(shown)} of {len(values)}; worst {worst}; " + ", ".join(
            "never" if v is None else f"{v:.1f}" for v in values)

    rows = "\n".join(f"| {s} | `{SCENARIOS[s]}` | {cell(v)} |" for s, v in r["latencies"].items())
    passed = lambda ok: "passed" if ok else "FAILED"  # noqa: E731
    text = f"""# Reliability: a ward under long and overlapping faults

**For** operators and hospital IT: what an outage of each service costs, measured. **Figures**: the last run
of `make chaos` (tests/chaos/test_chaos.py), {time.strftime('%Y-%m-%d')}, commit {commit}; this whole file is
written by that run.

- command: `make chaos` (CHAOS_REPEATS={r['repeats']}, CHAOS_DOWN_S={DOWN_S:g}); machine: {platform.machine()},
  {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; wall {r['wall_s']:.0f} s
- stack: private broker (Tansu, memory-only), Redis, Triton with the shipped models; a worker, the gateway and
  the station as processes; a dead worker started again as the ward's supervisor does
- ward: {3} simulated beds through a producer's outbox at x{SPEED:g} (one with a bradycardia: one CTG alarm
  expected), a monitor over HTTP and one over HL7 v2 (MLLP) in real time after an 11-min backlog; the wall
  open in Debian's chromium
- each scenario {r['repeats']} times, {SETTLE_S:g} s apart: each service killed (SIGKILL) for {DOWN_S:g} s, the
  broker stalled (SIGSTOP) as long, the worker killed and the broker lost 60 s later (10 s away), Redis killed
  while the broker restarts

| | measured | result |
|---|---|---|
| packets acknowledged to a source (outbox, HTTP 202, MLLP AA) | {r['acknowledged']} | {r['lost']} not stored: {passed(r['lost'] == 0)} |
| valid records dead-lettered (workers' logs) | {r['dead']} | {passed(r['dead'] == 0)} |
| the expected CTG alarm | raised {r['alarm']} time(s) | {passed(r['alarm'] == 1)} |
| other alarms (an outage read as a patient's) | {len(r['unexpected'])} | {passed(not r['unexpected'])} |
| outage notices on normal beds (signal loss, the transducer) | {len(r['notices'])} | {passed(not r['notices'])} |

What the open wall's banner named, and how long after the fault began (target: within {NAMED_WITHIN_S:g} s):

| scenario | cause named | seen; worst; each run (s) |
|---|---|---|
{rows}
"""
    (PROJECT_ROOT / "docs" / "RELIABILITY.md").write_text(text)
