"""Benchmark: the central station's trace wall with 50 live beds.

Starts the embedded stack on free ports, a worker, the nurse station and a
simulated ward of 50 beds (15 min of history at 10x, then live at 1 packet
per second per bed), waits for steady state, then measures with headless
Debian chromium on a 1920x1080 wall screen:

* **frame time of the wall update**: the browser's time to take one live
  message and redraw what changed (parse + every panel's canvas; the wall's
  own ``wallStats()``), median and 95th percentile over the measured span;
* **bytes per second per browser**: what the SSE stream carried, after the
  first ``history`` message;
* **server CPU per connected browser**: the station process' CPU share with 0,
  1 and 4 wall screens connected (the feed reads Redis once for all screens,
  so a screen costs only its queue and the bytes).

Also the bed page's redraw of a full-width CTG at 3 cm/min.

Run: python bench/station_wall.py [--beds 50] [--measure-s 60]   (writes a docs/BENCHMARKS.md section)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from bench._report import write_section  # noqa: E402
from bench.capacity import cpu_seconds  # noqa: E402
from stream.core.ports import free_port  # noqa: E402

PASSWORD = "bench-password-1"


def ctgwatch(args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=env, cwd=ROOT, text=True,
                          capture_output=True, timeout=300, **kw)


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stream.cli", *args], env=env, cwd=ROOT,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def open_wall(browser, url: str, errors: list[str]) -> Page:
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/login")
    page.fill("input[name=username]", "bench")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    try:
        page.wait_for_function("document.querySelectorAll('.panel[data-last-second]').length > 0", timeout=120_000)
    except Exception:
        print("the wall did not draw:", page.url, errors, page.content()[:2000], file=sys.stderr)
        raise
    return page


def reset_stats(page: Page) -> None:
    page.evaluate("() => { stats.renders.length = 0; stats.bytes = 0; stats.messages = 0; }")


def measure(wall: Page, station_pid: int, seconds: float) -> tuple[float, dict, float]:
    """After 10 s to settle: the station's CPU share, the wall's update stats and its bytes per second."""
    time.sleep(10)
    reset_stats(wall)
    t0 = time.monotonic()
    cpu = cpu_share(station_pid, seconds)
    stats = wall.evaluate("wallStats()")
    return cpu, stats, stats["bytes"] / (time.monotonic() - t0)


def cpu_share(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beds", type=int, default=50)
    parser.add_argument("--measure-s", type=float, default=60.0)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTGWATCH_")}
    env.update(CTGWATCH_STATE_DIR=str(state), CTGWATCH_BROKER_PORT=str(free_port()),
               CTGWATCH_REDIS_PORT=str(free_port()), CTGWATCH_TRITON_HTTP_PORT=str(free_port()),
               CTGWATCH_TRITON_GRPC_PORT=str(free_port()), CTGWATCH_TRITON_METRICS_PORT=str(free_port()),
               CTGWATCH_WORKER_METRICS_PORT="0", CTGWATCH_DASHBOARD_PORT=str(port))
    up = ctgwatch(["up"], env)
    assert up.returncode == 0, up.stdout + up.stderr
    procs: list[subprocess.Popen] = []
    try:
        ctgwatch(["users", "add", "bench", "--role", "nurse", "--password-stdin"], env, input=PASSWORD + "\n")
        worker = spawn(["worker"], env, state / "worker.log")
        station = spawn(["dashboard"], env, state / "dashboard.log")
        procs += [worker, station]
        time.sleep(8)
        procs.append(spawn(["simulate", "--beds", str(args.beds), "--speed", "10", "--duration", "900", "--follow",
                            "--seed", "3"], env, state / "simulate.log"))
        time.sleep(150)  # 15 min of history at 10x, then the worker drains: every bed live and analysed
        url = f"http://127.0.0.1:{port}"
        idle_cpu = cpu_share(station.pid, 20)  # no screen connected: the station does nothing
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--disable-background-networking"])
            wall = open_wall(browser, url, errors)
            panels = wall.locator(".panel").count()
            on_screen = wall.evaluate("visible.size")
            one_cpu, one, one_bytes_s = measure(wall, station.pid, args.measure_s)
            renders = wall.evaluate("stats.renders.slice()")
            every_panel = wall.evaluate("""() => { const t = []; const els = [...document.querySelectorAll('.panel')];
                for (let i = 0; i < 11; i++) { const a = performance.now();
                  for (const el of els) drawPanel(el, el.dataset.patient); t.push(performance.now() - a); }
                t.sort((x, y) => x - y); return t[5]; }""")
            others = [open_wall(browser, url, errors) for _ in range(3)]
            four_cpu, four, four_bytes_s = measure(wall, station.pid, args.measure_s)
            for page in others:
                page.close()
            bed = wall.locator(".panel").first.get_attribute("data-bed")
            wall.goto(f"{url}/beds/{bed}")
            wall.wait_for_function("typeof series !== 'undefined' && series && series.fhr.length > 600", timeout=30_000)
            wall.select_option("#speed", "3")
            bed_draw = wall.evaluate("""() => { const t = []; for (let i = 0; i < 15; i++) {
                const a = performance.now(); draw(); t.push(performance.now() - a); }
                t.sort((x, y) => x - y); return t[7]; }""")
            browser.close()
        assert not errors, errors
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        ctgwatch(["down"], env)
    per_browser = max(0.0, (four_cpu - one_cpu) / 3)
    body = "\n".join([
        f"Command: `python bench/station_wall.py --beds {args.beds} --measure-s {args.measure_s:.0f}`. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; everything on it: the embedded stack, one worker, "
        f"the station, {args.beds} simulated beds live (1 packet/s each, after 15 min of history at 10x) and headless "
        "Debian chromium with the wall on a 1920x1080 screen. Each span measured over "
        f"{args.measure_s:.0f} s in steady state.",
        "",
        "| measure | 1 wall screen | 4 wall screens |",
        "|---|---|---|",
        f"| panels on the wall (on screen, redrawn every second) | {panels} ({on_screen}) | {panels} ({on_screen}) |",
        f"| wall update (one live message: parse + redraw of the panels on screen), median / p95 / max | "
        f"{one['median_ms']:.1f} / {one['p95_ms']:.1f} / {one['max_ms']:.1f} ms ({one['frames']} updates) | "
        f"{four['median_ms']:.1f} / {four['p95_ms']:.1f} / {four['max_ms']:.1f} ms |",
        f"| bytes per second per browser (SSE, after the first history) | {one_bytes_s / 1024:.1f} KiB/s | "
        f"{four_bytes_s / 1024:.1f} KiB/s |",
        f"| station process CPU (share of one core) | {one_cpu:.3f} | {four_cpu:.3f} |",
        "",
        f"- Station CPU with no screen connected: {idle_cpu:.3f} of a core; the first screen starts the shared feed "
        f"(+{one_cpu - idle_cpu:.3f}: one Redis read of every bed per second), each further screen adds "
        + (f"**{per_browser:.4f}** of a core ({per_browser * 1000:.1f} ms of CPU per second)."
           if per_browser >= 0.001 else "less than this measurement resolves (< 1 ms of CPU per second: its queue and "
           "the bytes; the Redis reads are shared)."),
        f"- Median wall update {statistics.median(renders) if renders else float('nan'):.1f} ms with one screen, once a "
        "second (a frame at 60 Hz is 16.7 ms); panels off screen are drawn when scrolled into view. A screen large "
        f"enough to show all {panels} panels at once redraws them all in {every_panel:.1f} ms (median of 11).",
        f"- Bed page: redraw of the full-width CTG at 3 cm/min (median of 15): {bed_draw:.1f} ms.",
        "- With 4 screens the browsers share the same 2 cores as the whole stack, so their update time rises; "
        "a wall screen is normally its own machine.",
    ])
    print(body)
    write_section("Trace wall with 50 live beds", body)


if __name__ == "__main__":
    main()
