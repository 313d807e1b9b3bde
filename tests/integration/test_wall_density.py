"""The wall of a whole ward on one screen: 16 live beds and 4 open alarms at 1920x1080, every panel on the
screen with its FHR trace, bed name and concern word readable (a screenshot is kept)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from detectors.findings import Finding, Severity
from stream.alarms.handling import AlertHandling
from stream.core.schemas import CtgPacket
from stream.state.alerts import AlertStore
from stream.state.windows import WindowStore
from stream.worker.pipeline import Cadence, Pipeline
from tests.integration.test_dashboard import CHROMIUM

pytestmark = pytest.mark.integration
BEDS, ALARMS = 16, 4


def store_ward(stack, ward: str, tag: str) -> None:  # noqa: ANN001
    """16 beds with 15 min of trace ending now, through the worker's pipeline, and 4 open alarms."""
    async def go() -> None:
        redis = Redis.from_url(stack.redis_dsn)
        pipeline = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=ward)), WindowStore(redis, capacity_s=2400),
                            Cadence(forget_idle_s=1e9))
        start = time.time() - 900
        rng = np.random.default_rng(0)
        for b in range(BEDS):
            fhr = 135 + 8 * np.sin(np.arange(3600) / 40 + b) + rng.normal(0, 2, 3600)
            for i in range(0, 3600, 240):
                await pipeline.on_record(CtgPacket(
                    patient_id=f"{tag}-{b:02d}", bed_id=f"bed-{b + 1:02d}", device_id=f"mon-{b}",
                    start_ts=start + i / 4, fhr=[round(float(v), 1) for v in fhr[i:i + 240]], uc=[12.0] * 240))
        await pipeline.tick()
        store = AlertStore(redis, stack.model_copy(update={"ward_id": ward}).alert_handling())
        for b, severity in zip(range(ALARMS), (Severity.EMERGENCY, Severity.URGENT, Severity.URGENT, Severity.ADVISORY)):
            await store.apply(f"{tag}-{b:02d}", f"bed-{b + 1:02d}", Finding(
                "ctg_alarm", severity, 600, 900, "FIGO 2015: test rule", "Pathological CTG for 12 min", {}))
        await redis.aclose()

    asyncio.run(go())


def test_sixteen_live_beds_and_four_alarms_fit_one_1080p_screen(stack, tmp_path_factory) -> None:
    from playwright.sync_api import expect, sync_playwright

    from stream.core.ports import free_port
    from stream.station.users import UserStore
    from tests.helpers import ctgwatch_process, env_for

    ward, port, tag = f"dense-{uuid.uuid4().hex[:6]}", free_port(), f"d{uuid.uuid4().hex[:4]}"
    tmp = tmp_path_factory.mktemp("wall")
    env = env_for(stack, CTGWATCH_WARD_ID=ward, CTGWATCH_DASHBOARD_PORT=str(port),
                  CTGWATCH_DASHBOARD_SECRET="test-secret-" + uuid.uuid4().hex)

    async def add_user() -> None:
        redis = Redis.from_url(stack.redis_dsn)
        await UserStore(redis).add("wally", "wall-password-1", "nurse")
        await redis.aclose()

    asyncio.run(add_user())
    shots = Path(os.environ.get("CTGWATCH_SCREENSHOT_DIR", tmp))
    shots.mkdir(parents=True, exist_ok=True)
    store_ward(stack, ward, tag)  # before playwright owns this thread's event loop
    with ctgwatch_process(["dashboard"], env, tmp / "dashboard.log", ready="dashboard ready"), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"http://127.0.0.1:{port}/")
        page.fill("input[name=username]", "wally")
        page.fill("input[name=password]", "wall-password-1")
        page.click("button[type=submit]")
        expect(page.locator("#wall .panel")).to_have_count(BEDS, timeout=20_000)
        expect(page.locator("#alert-count")).to_have_text(str(ALARMS), timeout=20_000)
        page.wait_for_timeout(2000)  # the traces arrive and are drawn
        page.screenshot(path=str(shots / "wall-16-beds-1920x1080.png"))
        for panel in page.locator("#wall .panel").all():
            box = panel.bounding_box()
            assert box and box["y"] >= 0 and box["y"] + box["height"] <= 1080 and box["x"] + box["width"] <= 1920, box
            name = panel.locator(".bed-name")
            assert float(name.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 16
            assert panel.locator(".concern").inner_text().strip()
            trace = panel.locator("canvas").bounding_box()
            assert trace and trace["height"] >= 100 and trace["width"] >= 280, trace
            assert panel.get_attribute("data-last-second"), "its trace was drawn"
        fits = {}
        for width, height in ((1920, 1080), (1680, 1050), (1366, 768)):  # how many panels a screen shows whole
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(300)
            fits[f"{width}x{height}"] = sum(
                1 for b in (x.bounding_box() for x in page.locator("#wall .panel").all())
                if b and b["y"] >= 0 and b["y"] + b["height"] <= height and b["x"] + b["width"] <= width)
        print(f"panels shown whole with {ALARMS} open alarms: {fits}")
        assert fits["1920x1080"] == BEDS
        browser.close()
