"""Benchmark: the worker's own CPU per packet, without Kafka: judging, storing, the fast rules, the FIGO refreshes.

What the capacity run (bench/capacity.py) cannot separate: how much of a worker's CPU per bed-second is its own
code and how much is the Kafka client and Faust around it. Here N beds, each with ``--history-s`` of history,
send 1-s packets for ``--seconds`` of recording; each second's packets are judged (stream/core/validation.py,
from the JSON bytes a producer writes), handed to ``Pipeline.on_ctg_batch`` 50 at a time (real redis-server on a
free loopback port) and followed by one ``Pipeline.tick`` (the class refreshed every 15 s, each minute measured
once). Models are off. CPU is the process time of this process (the client side; Redis's own time is not in it).

Run: python bench/packet_path.py [--beds 300] [--seconds 45] [--profile out.pstats]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from stream.alarms.handling import AlertHandling  # noqa: E402
from stream.core.ports import free_port  # noqa: E402
from stream.core.schemas import CtgPacket  # noqa: E402
from stream.core.settings import Settings  # noqa: E402
from stream.core.validation import Validator  # noqa: E402
from stream.evaluation.reporting import source_commit  # noqa: E402
from stream.sources.ctg_simulator import Scenario, simulate_ctg  # noqa: E402
from stream.state.alerts import AlertStore  # noqa: E402
from stream.state.windows import WindowStore  # noqa: E402
from stream.worker.pipeline import Cadence, Pipeline  # noqa: E402

BATCH = 50  # packets per on_ctg_batch, about what the worker's 50-ms batching gathers at 1,000 beds


async def measure(beds: int, seconds: int, history_s: int, profile: Path | None) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        redis = Redis(port=port)
        for _ in range(50):
            try:
                await redis.ping()
                break
            except Exception:
                await asyncio.sleep(0.1)
        pipeline = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id="bench")), WindowStore(redis, capacity_s=3600),
                            Cadence())
        validator = Validator(Settings().ingest_limits())
        sim = simulate_ctg(Scenario("bench", duration_s=history_s + seconds + 60), seed=0)
        t0 = time.time() - history_s
        for minute in range(history_s // 60):  # history first, in 60-s packets, as the capacity run sends it
            s = 60 * minute
            await pipeline.on_ctg_batch([
                CtgPacket(patient_id=f"p{b}", bed_id=f"bed-{b}", device_id="m", start_ts=t0 + s,
                          fhr=sim.fhr[4 * s:4 * s + 240].tolist(), uc=sim.uc[4 * s:4 * s + 240].tolist())
                for b in range(beds)])
        while True:  # every bed's history analysed before the measured span
            before = sum(w.last_analysis_t or 0 for w in (pipeline.window_of(f"p{b}") for b in range(beds)) if w)
            await pipeline.tick()
            if sum(w.last_analysis_t or 0 for w in (pipeline.window_of(f"p{b}") for b in range(beds)) if w) == before:
                break
        raws = [[json.dumps({"kind": "ctg", "patient_id": f"p{b}", "bed_id": f"bed-{b}", "device_id": "m",
                             "start_ts": t0 + s, "fhr": sim.fhr[4 * s:4 * s + 4].tolist(),
                             "uc": sim.uc[4 * s:4 * s + 4].tolist(), "fhr_source": "ultrasound"}).encode()
                 for b in range(beds)] for s in range(history_s, history_s + seconds)]
        spent = {"judge": 0.0, "store and fast rules": 0.0, "FIGO refreshes (tick)": 0.0}
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        for second, packets in enumerate(raws):
            now = t0 + history_s + second + 1.2
            for i in range(0, beds, BATCH):
                a = time.process_time()
                records = [validator.judge(raw, source="bench", now=now) for raw in packets[i:i + BATCH]]
                b_ = time.process_time()
                failed = await pipeline.on_ctg_batch(records)  # type: ignore[arg-type]
                spent["judge"] += b_ - a
                spent["store and fast rules"] += time.process_time() - b_
                assert not failed, failed
            a = time.process_time()
            await pipeline.tick()
            spent["FIGO refreshes (tick)"] += time.process_time() - a
        if prof:
            prof.disable()
            prof.dump_stats(str(profile))
        await redis.aclose()
        n = beds * seconds
        return {k: 1e6 * v / n for k, v in spent.items()}
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=45)
    parser.add_argument("--history-s", type=int, default=1800)
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the measured span here")
    parser.add_argument("--write", action="store_true", help="write the docs/BENCHMARKS.md section")
    args = parser.parse_args()
    us = asyncio.run(measure(args.beds, args.seconds, args.history_s, args.profile))
    commit = source_commit()
    lines = [f"Command: `python bench/packet_path.py --beds {args.beds} --seconds {args.seconds}` at {commit}, "
             f"{time.strftime('%Y-%m-%d')}. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; redis-server on loopback. {args.beds} beds after {args.history_s // 60} min "
             f"of history, {args.seconds} s of 1-s packets, {BATCH} packets a batch, models off.", "",
             "| step | CPU per packet (us) |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in us.items()] + [f"| **the worker's own code, all** | **{sum(us.values()):.0f}** |"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        from bench._report import write_section

        write_section("The worker's own packet path, without Kafka (CPU)", text)


if __name__ == "__main__":
    main()
