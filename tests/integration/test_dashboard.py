"""Nurse-station dashboard: API security and audit, and a real headless Chromium session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from detectors.findings import Finding, Severity
from stream.core.kafka import start_producer
from stream.core.ports import free_port
from stream.core.schemas import CtgPacket, encode
from stream.state.alerts import AlertStore
from stream.station.users import UserStore
from tests.helpers import ctgwatch_process, env_for

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def dashboard(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard")
    ward, port = f"ward-{uuid.uuid4().hex[:6]}", free_port()
    env = env_for(stack, CTGWATCH_WARD_ID=ward, CTGWATCH_DASHBOARD_PORT=str(port),
                  CTGWATCH_DASHBOARD_SECRET="test-secret-" + uuid.uuid4().hex)

    async def add_users() -> None:
        redis = Redis.from_url(stack.redis_dsn)
        users = UserStore(redis)
        await users.add("ann", "nurse-password-1", "nurse")
        await users.add("olga", "obstetrician-pw-1", "obstetrician")
        await users.add("root", "admin-password-1", "admin")
        await redis.aclose()

    asyncio.run(add_users())
    with ctgwatch_process(["dashboard"], env, tmp / "dashboard.log", ready="dashboard ready"):
        yield {"url": f"http://127.0.0.1:{port}", "ward": ward, "env": env, "tmp": tmp}


def signed_in(url: str, user: str, password: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, follow_redirects=False)
    r = client.post("/login", data={"username": user, "password": password})
    assert r.status_code == 303 and r.headers["location"] == "/"
    return client, client.get("/api/me").json()["csrf"]


def raise_alert(stack, ward: str, kind: str = "prolonged_deceleration") -> str:
    async def go() -> str:
        redis = Redis.from_url(stack.redis_dsn)
        store = AlertStore(redis, stack.model_copy(update={"ward_id": ward}).alert_handling())
        pid = f"api-{uuid.uuid4().hex[:6]}"
        _, aid = await store.apply(pid, "bed-9", Finding(kind, Severity.URGENT, 0, 200, "FIGO 2015: test rule",
                                                         "Prolonged deceleration for 3.3 min, nadir 90 bpm", {}))
        await redis.aclose()
        return aid

    return asyncio.run(go())


def test_nothing_without_sign_in_except_health(dashboard) -> None:
    c = httpx.Client(base_url=dashboard["url"], follow_redirects=False)
    assert c.get("/health").status_code == 200
    assert c.get("/").status_code == 303 and c.get("/").headers["location"] == "/login"
    for path in ("/api/ward", "/api/alerts", "/api/me", "/api/users", "/api/events", "/api/patients/x/trace"):
        assert c.get(path).status_code == 401, path
    assert c.post("/api/alerts/x/acknowledge", json={}).status_code == 401
    r = c.post("/login", data={"username": "ann", "password": "wrong-password"})
    assert r.status_code == 303 and "failed" in r.headers["location"]
    assert c.get("/api/ward").status_code == 401


def test_roles_csrf_and_audit(stack, dashboard) -> None:
    aid = raise_alert(stack, dashboard["ward"])
    nurse, csrf = signed_in(dashboard["url"], "ann", "nurse-password-1")
    # actions need the session's CSRF token
    assert nurse.post(f"/api/alerts/{aid}/acknowledge", json={"reason": "x"}).status_code == 403
    assert nurse.post(f"/api/alerts/{aid}/acknowledge", json={"reason": "x"},
                      headers={"X-CSRF-Token": "forged"}).status_code == 403
    # a nurse cannot do admin actions
    assert nurse.get("/api/users").status_code == 403
    assert nurse.post("/api/users", json={"name": "eve", "password": "whatever-123", "role": "admin"},
                      headers={"X-CSRF-Token": csrf}).status_code == 403
    # the nurse's actions, and an obstetrician's, land in the audit trail with their names
    r = nurse.post(f"/api/alerts/{aid}/acknowledge", json={"reason": "at the bedside"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    doctor, dcsrf = signed_in(dashboard["url"], "olga", "obstetrician-pw-1")
    assert doctor.post(f"/api/alerts/{aid}/escalate", json={"reason": "theatre"},
                       headers={"X-CSRF-Token": dcsrf}).status_code == 200
    assert doctor.post(f"/api/alerts/{aid}/resolve", json={"reason": ""},
                       headers={"X-CSRF-Token": dcsrf}).status_code == 409  # a reason is required
    assert doctor.post(f"/api/alerts/{aid}/resolve", json={"reason": "delivered"},
                       headers={"X-CSRF-Token": dcsrf}).status_code == 200
    trail = nurse.get(f"/api/alerts/{aid}/audit").json()
    assert [(e["event"], e["actor"]) for e in trail] == [
        ("raised", "ctgwatch"), ("acknowledged", "ann"), ("escalated", "olga"), ("resolved", "olga")]
    assert trail[1]["detail"]["note"] == "at the bedside" and trail[3]["detail"]["reason"] == "delivered"
    # an admin can add users, and that is audited too
    admin, acsrf = signed_in(dashboard["url"], "root", "admin-password-1")
    r = admin.post("/api/users", json={"name": "ben", "password": "another-password", "role": "nurse"},
                   headers={"X-CSRF-Token": acsrf})
    assert r.status_code == 201
    assert {"name": "ben", "role": "nurse", "disabled": False} in admin.get("/api/users").json()

    async def admin_trail() -> list:
        redis = Redis.from_url(stack.redis_dsn)
        entries = await redis.xrange("ctgw:audit:admin")
        await redis.aclose()
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]

    assert any(e["event"] == "user_added" and e["actor"] == "root" and '"ben"' in e["detail"]
               for e in asyncio.run(admin_trail()))


def test_read_api_and_fhir_export(stack, dashboard) -> None:
    aid = raise_alert(stack, dashboard["ward"], "bradycardia")
    c, _ = signed_in(dashboard["url"], "ann", "nurse-password-1")
    assert any(a["id"] == aid for a in c.get("/api/alerts").json())
    ward = c.get("/api/ward").json()
    assert ward["ward_id"] == dashboard["ward"] and any(a["id"] == aid for p in ward["patients"] for a in p["alerts"])
    fhir = c.get(f"/api/alerts/{aid}/fhir").json()
    assert fhir["resourceType"] == "DetectedIssue" and fhir["status"] == "preliminary"
    assert fhir["severity"] == "moderate" and fhir["code"]["coding"][0]["code"] == "bradycardia"
    assert fhir["evidence"][0]["detail"][0]["display"].startswith("FIGO 2015: test rule")
    schema = c.get("/openapi.json").json()
    assert "/api/ward" in schema["paths"] and "/api/alerts/{alert_id}/fhir" in schema["paths"]


def store_trace_with_maternal_capture(stack, patient: str, ward: str) -> None:
    """15 min of a bed whose FHR channel carried the mother's heart rate in minutes 5-8, run through
    the worker's pipeline (packets stored, then its FIGO analysis), as the worker does."""
    import numpy as np

    from stream.alarms.handling import AlertHandling
    from stream.state.alerts import AlertStore
    from stream.state.windows import WindowStore
    from stream.worker.pipeline import Pipeline

    fs, n = 4.0, 4 * 900
    t = np.arange(n) / fs
    mhr = 88 + 6 * np.sin(2 * np.pi * t / 50)
    fhr = 140 + 5 * np.sin(2 * np.pi * t / 13)
    fhr[4 * 300:4 * 480] = mhr[4 * 300:4 * 480] + 0.5
    start_ts = time.time() - n / fs

    async def store() -> None:
        redis = Redis.from_url(stack.redis_dsn)
        pipeline = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=ward)), WindowStore(redis, capacity_s=2400))
        for i in range(0, n, 240):
            pkt = CtgPacket(patient_id=patient, bed_id="bed-7", device_id="mon-nf", start_ts=start_ts + i / fs,
                            fhr=[round(float(v), 2) for v in fhr[i:i + 240]], uc=[10.0] * 240,
                            mhr=[round(float(v), 2) for v in mhr[i:i + 240]])
            await pipeline.on_record(pkt)
        await pipeline.tick()  # the worker's FIGO analysis, stored with its not-fetal stretches
        await redis.aclose()

    asyncio.run(store())


def test_trace_shows_what_was_judged_not_fetal(stack, dashboard) -> None:
    """The trace API marks the stretch the quality detector judged to be the mother's heart rate,
    so the bed view can shade what the analysis left out."""
    patient = f"nf-{uuid.uuid4().hex[:6]}"
    store_trace_with_maternal_capture(stack, patient, dashboard["ward"])
    c, _ = signed_in(dashboard["url"], "ann", "nurse-password-1")
    tr = c.get(f"/api/patients/{patient}/trace", params={"seconds": 900}).json()
    spans = [s for s in tr["not_fetal"] if s["kind"] == "maternal_hr_capture"]
    assert len(spans) == 1
    assert spans[0]["start"] - tr["t0"] == pytest.approx(300, abs=5) and spans[0]["end"] - tr["t0"] == pytest.approx(480, abs=5)


def test_tile_and_bed_view_show_the_same_class(stack, dashboard) -> None:
    """Both come from the worker's one analysis: a 40-min bed view cannot reclassify the trace."""
    patient = f"cl-{uuid.uuid4().hex[:6]}"
    store_trace_with_maternal_capture(stack, patient, dashboard["ward"])
    c, _ = signed_in(dashboard["url"], "ann", "nurse-password-1")
    tile = next(t for t in c.get("/api/ward").json()["patients"] if t["patient_id"] == patient)
    for seconds in (600, 900, 2400):
        tr = c.get(f"/api/patients/{patient}/trace", params={"seconds": seconds}).json()
        assert tr["classification"] == tile["classification"] and tr["classification"] is not None
        assert tr["reasons"] == tile["reasons"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
def test_browser_sees_alert_live_and_acknowledges_it(stack, dashboard, tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ward = dashboard["ward"]
    # the ward's alarm policy, changed for the test: 20 s of signal loss is a (technical) alarm
    env = dict(dashboard["env"], CTGWATCH_ALARM_POLICY=json.dumps({"signal_loss": {"qualify_s": 20}}),
               CTGWATCH_WORKER_APP_ID=f"g-{ward}", CTGWATCH_WORKER_METRICS_PORT="0",
               CTGWATCH_WORKER_SESSION_TIMEOUT_S="6", CTGWATCH_WORKER_HEARTBEAT_S="1")
    shots = Path(os.environ.get("CTGWATCH_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    patient, capture_patient = f"ui-{uuid.uuid4().hex[:6]}", f"ui-nf-{uuid.uuid4().hex[:6]}"
    page_errors: list[str] = []
    store_trace_with_maternal_capture(stack, capture_patient, ward)  # before playwright owns this thread's loop
    with ctgwatch_process(["worker"], env, tmp_path / "worker.log", ready="[^Worker]: Ready"), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        page.on("dialog", lambda d: page_errors.append(f"browser pop-up: {d.message}"))
        page.goto(dashboard["url"] + "/")
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", "nurse-password-1")
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_have_text("ann (nurse)")
        expect(page.locator("#live")).to_contain_text("live", timeout=10_000)

        async def monitor() -> None:  # a bedside monitor: 2 min of trace, then the signal is lost for 1 min
            producer = await start_producer(stack)
            now = time.time()
            for i in range(180):
                fhr = 140.0 + (i % 7) if i < 120 else 0.0
                pkt = CtgPacket(patient_id=patient, bed_id="bed-42", device_id="mon-ui", start_ts=now - 180 + i,
                                fhr=[fhr] * 4, uc=[15.0] * 4)
                await producer.send_and_wait("ctg.packets", encode(pkt), key=patient.encode())
            await producer.stop()

        publisher = threading.Thread(target=lambda: asyncio.run(monitor()))  # playwright owns this thread's loop
        publisher.start()
        publisher.join(60)
        expect(page.locator("#interrupted")).to_be_hidden(timeout=30_000)  # the worker reports: no banner
        row = page.locator(f"#alerts tr:has-text('{patient}')").filter(has_text="signal alarm")
        expect(row).to_be_visible(timeout=30_000)  # arrived over Server-Sent Events, no reload
        expect(row.locator(".status")).to_have_text("raised")
        page.screenshot(path=str(shots / "ward-overview.png"), full_page=True)
        row.locator("button[data-action=acknowledge]").click()
        expect(row.locator(".status")).to_contain_text("acknowledged", timeout=10_000)
        expect(row.locator(".status")).to_contain_text("by ann")
        # The list is updated in place: the row (and the button under the cursor) survives new snapshots.
        row.locator("button[data-action=escalate]").evaluate("b => { b.dataset.kept = 'yes'; }")
        page.wait_for_timeout(2500)  # two pushes of the ward
        expect(row.locator("button[data-action=escalate]")).to_have_attribute("data-kept", "yes")
        # Escalate asks for its reason in the row itself, not in a browser pop-up.
        row.locator("button[data-action=escalate]").click()
        row.locator("form.reason input").fill("no improvement after repositioning")
        row.locator("form.reason button[type=submit]").click()
        expect(row.locator(".status")).to_contain_text("escalated", timeout=10_000)
        # The bed page at its own URL draws the trace; a bed whose trace held the mother's heart rate
        # draws that stretch shaded, without a script error.
        page.goto(dashboard["url"] + "/beds/bed-42")
        expect(page.locator("#bed-title")).to_contain_text(patient, timeout=15_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "bed-view.png"))
        page.goto(dashboard["url"] + "/beds/bed-7")
        expect(page.locator("#bed-title")).to_contain_text(capture_patient, timeout=15_000)
        page.wait_for_function("typeof marks !== 'undefined' && marks.some(m => m.kind === 'maternal_hr_capture')",
                               timeout=15_000)
        page.screenshot(path=str(shots / "bed-view-maternal-capture.png"))
        browser.close()
    assert not page_errors, page_errors
    assert (shots / "ward-overview.png").stat().st_size > 10_000 and (shots / "bed-view.png").stat().st_size > 10_000
    assert (shots / "bed-view-maternal-capture.png").stat().st_size > 10_000


def store_long_labour(stack, patient: str, bed: str, ward: str, hours: float) -> None:
    """``hours`` of simulated labour through the worker's pipeline (history sent fast), archived as the worker
    archives it, ending now; and one open alarm on the bed, so its buttons can be checked."""
    from stream.alarms.handling import AlertHandling
    from stream.sources.ctg_simulator import Scenario, simulate_ctg
    from stream.state.windows import WindowStore
    from stream.worker.pipeline import Cadence, Pipeline

    duration = hours * 3600.0
    sim = simulate_ctg(Scenario("long", duration_s=duration, decel_kind="late", decel_span=(duration - 2400, duration)),
                       seed=5)
    start_ts = 60 * (time.time() // 60) - duration

    async def store() -> None:
        redis = Redis.from_url(stack.redis_dsn)
        pipeline = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=ward)), WindowStore(redis, capacity_s=3600),
                            Cadence(forget_idle_s=1e9))
        step = 240  # one minute a packet
        for n, i in enumerate(range(0, sim.fhr.size, step)):
            await pipeline.on_record(CtgPacket(patient_id=patient, bed_id=bed, device_id="mon-long",
                                               start_ts=start_ts + i / sim.fs,
                                               fhr=[round(float(v), 1) for v in sim.fhr[i:i + step]],
                                               uc=[round(float(v), 1) for v in sim.uc[i:i + step]]))
            if n % 10 == 9:
                await pipeline.tick()  # the worker analyses (and archives) as the labour goes on
        await pipeline.tick()
        store = AlertStore(redis, stack.model_copy(update={"ward_id": ward}).alert_handling())
        await store.apply(patient, bed, Finding("prolonged_deceleration", Severity.URGENT, duration - 300, duration,
                                                "FIGO 2015: test rule", "Prolonged deceleration for 4.0 min", {}))
        await redis.aclose()

    asyncio.run(store())


@contextlib.contextmanager
def worker_alive(stack) -> Iterator[None]:
    """A worker's heartbeat every second (this test runs none): the page shows a ward at work, not the
    "stream worker is silent" banner a ward without a worker rightly shows."""
    from redis import Redis as SyncRedis

    from stream.state.heartbeat import HEARTBEAT, WorkerReport

    stop = threading.Event()

    def beat() -> None:
        redis = SyncRedis.from_url(stack.redis_dsn)
        while not stop.is_set():
            redis.set(HEARTBEAT, WorkerReport(t=time.time()).model_dump_json(), ex=60)
            stop.wait(1.0)
        redis.close()

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join(5)


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 1920, "height": 1080}],
                         ids=["1366x768", "1920x1080"])
def test_the_bed_page_fits_the_screen_and_follows_a_six_hour_labour(stack, dashboard, tmp_path, viewport) -> None:
    """After 6 h of labour the page is as wide as the screen, the trace scrolls inside its own area with
    "now" at its right edge, and the vitals and an alarm's buttons are on the screen; scrolling back stops
    following, ticking "follow live" again jumps back to now."""
    from playwright.sync_api import expect, sync_playwright

    ward = dashboard["ward"]
    patient, bed = f"long-{uuid.uuid4().hex[:6]}", f"bed-{uuid.uuid4().hex[:4]}"
    store_long_labour(stack, patient, bed, ward, hours=6.0)
    shots = Path(os.environ.get("CTGWATCH_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page_errors: list[str] = []
    with worker_alive(stack), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport=viewport)
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        page.goto(dashboard["url"] + "/")
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", "nurse-password-1")
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_have_text("ann (nurse)")
        for speed in ("1", "3"):
            page.goto(dashboard["url"] + f"/beds/{bed}")
            expect(page.locator("#bed-title")).to_contain_text(patient, timeout=15_000)
            page.select_option("#speed", speed)
            page.check("#follow")
            page.wait_for_function("document.querySelector('#trace').dataset.newest !== undefined", timeout=15_000)
            page.wait_for_timeout(500)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width == viewport["width"], (speed, width)
            newest = float(page.locator("#trace").get_attribute("data-newest"))
            assert 0.95 <= newest <= 1.0, (speed, newest)  # now is in the right 5% of the trace area
            for selector in ("#vitals thead", "#alerts button[data-action=acknowledge]",
                             "#alerts button[data-action=resolve]"):
                box = page.locator(selector).first.bounding_box()  # on the screen as it opens, no scrolling
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (selector, box)
                assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], (selector, box)
            page.screenshot(path=str(shots / f"bed-6h-{viewport['width']}x{viewport['height']}-{speed}cm.png"))
        page.locator("#trace-scroll").evaluate("s => { s.scrollLeft = 0; }")  # the user scrolls back to the start
        expect(page.locator("#follow")).not_to_be_checked(timeout=5_000)
        page.check("#follow")  # and ticks it again: back to now
        page.wait_for_timeout(300)
        assert float(page.locator("#trace").get_attribute("data-newest")) >= 0.95
        browser.close()
    assert not page_errors, page_errors
