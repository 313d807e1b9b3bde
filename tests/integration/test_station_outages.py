"""Every outage is named by its cause on an open wall and bed page within 10 s (in Debian's chromium).

A private broker and Redis (tests/faults.py), a worker, the station and one bed streaming. With the pages
open: Redis is killed (the wall's stream stays and says "Redis"; the bed page's next answer says so), then
started again (the banner goes); the broker is killed (the worker reports it: "broker unreachable", and the
bed says the broker, not its monitor, stopped its data); the worker is killed ("worker silent"). Each
banner must be on screen within 10 s of the fault, and the station's log holds one line per Redis outage,
not a traceback a second.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from stream.core.kafka import producer_outbox
from stream.core.ports import free_port
from stream.core.schemas import CtgPacket, encode, record_key
from tests.faults import crash, private_stack, restart, worker_env
from tests.helpers import add_user, ctgwatch_process, spawn_ctgwatch, stop_process

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NAMED_WITHIN_S = 10.0
BED = "bed-31"


class Monitor(threading.Thread):
    """A bedside monitor sending 1-s packets through a producer's outbox until stopped."""

    def __init__(self, settings, patient: str) -> None:
        super().__init__(daemon=True)
        self.settings, self.patient, self.stopping = settings, patient, threading.Event()

    def run(self) -> None:
        async def go() -> None:
            topic = self.settings.topic_names().ctg
            async with producer_outbox(self.settings, "outage-monitor", max_records=100_000) as outbox:
                t = time.time() - 120
                while not self.stopping.is_set():
                    while t < time.time() - 1:
                        pkt = CtgPacket(patient_id=self.patient, bed_id=BED, device_id="mon-outage", start_ts=t,
                                        fhr=[140.0 + (int(t) % 7)] * 4, uc=[15.0] * 4)
                        await outbox.put(topic, record_key(pkt), encode(pkt))
                        t += 1
                    await asyncio.sleep(0.2)

        asyncio.run(go())




def _restart(settings, name: str) -> None:
    """``ctgwatch up`` for one service, off the test thread (playwright runs an event loop there)."""
    starter = threading.Thread(target=restart, args=(settings, name))
    starter.start()
    starter.join(120)


def _named(page, selector: str, cause: str, since: float) -> float:
    """Seconds from ``since`` until the banner at ``selector`` names ``cause`` (fails past NAMED_WITHIN_S + 5)."""
    page.wait_for_function(
        f"() => {{ const b = document.querySelector('{selector}'); return b && !b.hidden && "
        f"(b.dataset.causes || '').split(' ').includes('{cause}'); }}", timeout=(NAMED_WITHIN_S + 5) * 1000)
    return time.time() - since


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
def test_each_outage_is_named_by_its_cause_on_the_open_wall_and_bed_page(tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    group, port = f"out-{uuid.uuid4().hex[:6]}", free_port()
    nurse = f"out{uuid.uuid4().hex[:4]}"
    took: dict[str, float] = {}
    with private_stack(tmp_path / "state") as settings:
        add_user(settings, nurse, "outage-password-1")
        env = worker_env(settings, group, CTGWATCH_DASHBOARD_PORT=str(port),
                         CTGWATCH_DASHBOARD_SECRET="outage-secret-" + uuid.uuid4().hex)
        monitor = Monitor(settings, f"{group}-p")
        monitor.start()
        worker = spawn_ctgwatch(["worker"], env, tmp_path / "worker.log", ready="[^Worker]: Ready")
        try:
            with ctgwatch_process(["dashboard"], env, tmp_path / "dashboard.log", ready="dashboard ready"), \
                    sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                wall = context.new_page()
                wall.goto(f"http://127.0.0.1:{port}/")
                wall.fill("input[name=username]", nurse)
                wall.fill("input[name=password]", "outage-password-1")
                wall.click("button[type=submit]")
                expect(wall.locator(f".panel[data-bed='{BED}']")).to_be_visible(timeout=60_000)
                bed = context.new_page()  # the same signed-in nurse
                bed.goto(f"http://127.0.0.1:{port}/beds/{BED}")
                expect(bed.locator("#bed-title")).to_contain_text(BED, timeout=30_000)
                expect(wall.locator("#interrupted")).to_be_hidden(timeout=20_000)

                t = time.time()
                crash(settings, "redis")
                took["redis: wall"] = _named(wall, "#interrupted", "redis_unreachable", t)
                took["redis: bed page"] = _named(bed, "#interrupted", "redis_unreachable", t)
                _restart(settings, "redis")
                expect(wall.locator("#interrupted")).to_be_hidden(timeout=30_000)

                t = time.time()
                crash(settings, "broker")
                took["broker: wall"] = _named(wall, "#interrupted", "broker_unreachable", t)
                took["broker: bed page"] = _named(bed, "#interrupted", "broker_unreachable", t)
                overlay = wall.locator(f".panel[data-bed='{BED}'] .interrupted-overlay")
                expect(overlay).to_contain_text("broker is unreachable, not this bed's monitor", timeout=15_000)
                _restart(settings, "broker")

                t = time.time()
                os.killpg(worker.pid, signal.SIGKILL)
                took["worker: wall"] = _named(wall, "#interrupted", "worker_silent", t)
                took["worker: bed page"] = _named(bed, "#interrupted", "worker_silent", t)
                browser.close()
        finally:
            monitor.stopping.set()
            stop_process(worker)
    late = {k: round(v, 1) for k, v in took.items() if v > NAMED_WITHIN_S}
    assert not late, f"named later than {NAMED_WITHIN_S} s: {late} (all: {took})"
    log = (tmp_path / "dashboard.log").read_text()
    assert log.count("Redis is unreachable") == 1 and "Traceback" not in log, log[-3000:]
