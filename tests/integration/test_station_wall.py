"""The central station in a real browser (Debian chromium): the trace wall of a simulated ward, a bed that
stops, a high-priority alarm heard, paused and acknowledged from the wall, the bed page at its URL, the
trends and the hand-over. Screenshots go to ``CTGWATCH_SCREENSHOT_DIR`` (the README shows them)."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest

from stream.core.kafka import start_producer
from stream.core.ports import free_port
from stream.core.schemas import CtgPacket, Reading, VitalsObservation, encode
from tests.helpers import add_user, ctgwatch_process, env_for

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BED_SILENT_S = 6
SIM_BEDS = ("bed-81", "bed-82", "bed-83")




def publish_then_stop(stack, patient: str, bed: str, seconds: int) -> None:
    """A monitor that sends ``seconds`` of normal trace ending now, a MEOWS-red observation, then falls silent."""
    async def go() -> None:
        producer = await start_producer(stack)
        now = time.time()
        for i in range(seconds):
            pkt = CtgPacket(patient_id=patient, bed_id=bed, device_id="mon-wall", start_ts=now - seconds + i,
                            fhr=[138.0 + (i % 9)] * 4, uc=[15.0 + (i % 40)] * 4)
            await producer.send_and_wait(stack.topic_names().ctg, encode(pkt), key=patient.encode())
        t = time.time()
        obs = VitalsObservation(patient_id=patient, bed_id=bed, device_id="vit-wall", heart_rate=Reading(value=132.0, ts=t),
                                systolic_bp=Reading(value=84.0, ts=t), spo2=Reading(value=97.0, ts=t))
        topics = stack.topic_names()
        await producer.send_and_wait(topics.vitals, encode(obs), key=patient.encode())
        await producer.stop()

    worker = threading.Thread(target=lambda: asyncio.run(go()))  # playwright owns the test thread's loop
    worker.start()
    worker.join(60)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
def test_the_wall_the_bed_page_the_trends_and_the_hand_over(stack, tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ward, port = f"wall-{uuid.uuid4().hex[:6]}", free_port()
    env = env_for(stack, CTGWATCH_WARD_ID=ward, CTGWATCH_DASHBOARD_PORT=str(port),
                  CTGWATCH_DASHBOARD_SECRET="wall-secret-" + uuid.uuid4().hex,
                  CTGWATCH_DASHBOARD_BED_SILENT_S=str(BED_SILENT_S), CTGWATCH_WORKER_APP_ID=f"g-{ward}",
                  CTGWATCH_WORKER_METRICS_PORT="0", CTGWATCH_WORKER_SESSION_TIMEOUT_S="6", CTGWATCH_WORKER_HEARTBEAT_S="1")
    shots = Path(os.environ.get("CTGWATCH_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    nurse = f"wall{uuid.uuid4().hex[:4]}"
    add_user(stack, nurse, "wall-password-1")
    stopper, stop_bed = f"wall-stop-{uuid.uuid4().hex[:6]}", "bed-89"
    seed = str(7000 + int(uuid.uuid4().int % 1000))  # the simulated patients are named by the seed
    errors: list[str] = []
    url = f"http://127.0.0.1:{port}"
    with ctgwatch_process(["dashboard"], env, tmp_path / "dashboard.log", ready="dashboard ready"), \
            ctgwatch_process(["worker"], env, tmp_path / "worker.log", ready="[^Worker]: Ready"), \
            ctgwatch_process(["simulate", "--beds", "3", "--speed", "30", "--duration", "1500", "--follow",
                              "--first-bed", "81", "--seed", seed], env, tmp_path / "simulate.log", ready="bed-83"), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--disable-background-networking", "--disable-component-update",
                                          "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1800, "height": 1150})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: errors.append(f"browser pop-up: {d.message}"))
        page.goto(url + "/")
        page.fill("input[name=username]", nurse)
        page.fill("input[name=password]", "wall-password-1")
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_contain_text(nurse)

        # Every bed of the simulated ward has a panel, and its trace moves.
        for bed in SIM_BEDS:
            expect(page.locator(f".panel[data-bed='{bed}'] canvas")).to_be_visible(timeout=60_000)
        page.wait_for_function(f"[...document.querySelectorAll('.panel')].filter(p => {list(SIM_BEDS)}.includes(p.dataset.bed)"
                               " && p.dataset.lastSecond).length === 3", timeout=60_000)
        first = {bed: int(page.locator(f".panel[data-bed='{bed}']").get_attribute("data-last-second")) for bed in SIM_BEDS}
        page.wait_for_timeout(3500)
        later = {bed: int(page.locator(f".panel[data-bed='{bed}']").get_attribute("data-last-second")) for bed in SIM_BEDS}
        assert all(later[b] > first[b] for b in SIM_BEDS), (first, later)

        # A monitor that stops: 'monitoring interrupted' on its panel within the configured time.
        publish_then_stop(stack, stopper, stop_bed, seconds=90)
        panel = page.locator(f".panel[data-bed='{stop_bed}']")
        expect(panel).to_be_visible(timeout=30_000)
        expect(panel.locator(".interrupted-overlay")).to_be_hidden()
        stopped_at = time.time()
        expect(panel.locator(".interrupted-overlay")).to_contain_text("MONITORING INTERRUPTED", timeout=(BED_SILENT_S + 12) * 1000)
        assert time.time() - stopped_at <= BED_SILENT_S + 12

        # Its MEOWS-red observation: a high-priority alarm on top, heard once sound is enabled.
        row = page.locator(f"#alerts tr:has-text('{stopper}')").filter(has_text="maternal alarm")
        expect(row).to_be_visible(timeout=30_000)
        expect(row.locator(".sev")).to_contain_text("high priority")
        expect(page.locator("#alerts tbody tr").first).to_have_attribute("data-priority", "high")
        expect(page.locator("#sound")).to_contain_text("Sound OFF")
        page.click("#sound")
        expect(page.locator("#sound")).to_have_attribute("data-sounding", "high")
        expect(page.locator("#sound")).to_contain_text("Sounding: high priority")
        assert page.evaluate("Sound.bursts") >= 1
        page.wait_for_timeout(1500)  # let the wall settle before the screenshot
        page.screenshot(path=str(shots / "wall.png"))
        # The audio pause silences it for everyone, names who paused, and is logged.
        page.select_option("#pause-minutes", "2")
        page.click("#pause-form button[type=submit]")
        expect(page.locator("#sound")).to_contain_text(f"Audio paused by {nurse}", timeout=10_000)
        expect(page.locator("#sound")).to_have_attribute("data-sounding", "")
        page.click("#audio-log-link")
        expect(page.locator("#audio-log")).to_contain_text(f"audio paused by {nurse}")
        # Acknowledged from the wall; the row stays where it was.
        row.locator("button[data-action=acknowledge]").click()
        expect(row.locator(".status")).to_contain_text("acknowledged", timeout=10_000)
        expect(row.locator(".status")).to_contain_text(f"by {nurse}")
        page.click("#resume-audio")
        expect(page.locator("#sound")).not_to_contain_text("Audio paused", timeout=10_000)
        # sound again for what is still unacknowledged (a simulated bed may have its own alarm by now)
        page.wait_for_timeout(1500)
        expected = page.evaluate("""() => { const open = [...document.querySelectorAll('#alerts tbody tr')]
            .filter(r => /raised|escalated/.test(r.querySelector('.status').textContent)).map(r => r.dataset.priority);
            return open.includes('high') ? 'high' : open.includes('medium') ? 'medium' : ''; }""")
        expect(page.locator("#sound")).to_have_attribute("data-sounding", expected)

        # Keyboard: a panel is a link; Enter on it opens the bed page at its own URL, reloadable, with its trends.
        page.locator(f".panel[data-bed='{SIM_BEDS[0]}'] .panel-head").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{url}/beds/{SIM_BEDS[0]}")
        expect(page.locator("#bed-title")).to_contain_text(SIM_BEDS[0], timeout=15_000)
        expect(page.locator("#bed-class")).to_contain_text("FIGO", timeout=30_000)
        page.reload()
        expect(page.locator("#bed-title")).to_contain_text(SIM_BEDS[0], timeout=15_000)
        page.wait_for_function("document.querySelector('#tr-class') && +document.querySelector('#tr-class').dataset.points > 0",
                               timeout=60_000)
        page.select_option("#speed", "3")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "bed-page.png"))
        page.locator("#trends").screenshot(path=str(shots / "trends.png"))
        page.check("input[name=span][value='12']")
        page.wait_for_function("+document.querySelector('#tr-class').dataset.points > 0", timeout=10_000)

        # The hand-over of the stopped bed lists its alarm and who acknowledged it.
        page.goto(f"{url}/beds/{stop_bed}/handover")
        expect(page.locator("#alarms")).to_contain_text("maternal", timeout=15_000)
        expect(page.locator("#alarms")).to_contain_text(nurse)
        page.screenshot(path=str(shots / "handover.png"), full_page=True)
        browser.close()
    assert not errors, errors
    for name in ("wall.png", "bed-page.png", "trends.png", "handover.png"):
        assert (shots / name).stat().st_size > 10_000, name
