"""Nurse-station sign-in and sessions against the real Redis: lockout, equal answer times for known and
unknown names, revoked sessions, the API documents behind sign-in, no silent overwrite of a user."""

from __future__ import annotations

import json
import statistics
import time
import uuid

import httpx
import pytest
from redis.asyncio import Redis

from stream.station.app import create_dashboard
from stream.station.users import UserError, UserStore

pytestmark = pytest.mark.integration


async def station(stack, tmp_path, address: str = "10.1.2.3", **settings):
    redis = Redis.from_url(stack.redis_dsn)
    app = create_dashboard(stack.model_copy(update={"state_dir": tmp_path, "dashboard_secret": "s-" + uuid.uuid4().hex,
                                                    **settings}), redis)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://station", follow_redirects=False), redis


async def new_user(redis, role: str = "nurse") -> str:
    name = f"u{uuid.uuid4().hex[:8]}"
    await UserStore(redis).add(name, "right-password-1", role)
    return name


async def sign_in(client: httpx.AsyncClient, name: str, password: str) -> str:
    r = await client.post("/login", data={"username": name, "password": password})
    return r.headers["location"]


async def test_the_api_documents_need_a_session(stack, tmp_path) -> None:
    client, redis = await station(stack, tmp_path)
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert (await client.get(path)).status_code in (401, 404), path
    name = await new_user(redis)
    assert await sign_in(client, name, "right-password-1") == "/"
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "ctgwatch nurse station"
    assert (await client.get("/docs")).status_code == 200
    await redis.aclose()


async def test_repeated_failures_lock_the_name_and_are_audited(stack, tmp_path) -> None:
    client, redis = await station(stack, tmp_path, address=f"10.9.{uuid.uuid4().int % 250}.1",
                                  dashboard_login_max_failures=3)
    name = await new_user(redis)
    for _ in range(3):
        assert await sign_in(client, name, "wrong-password-x") == "/login?failed=1"
    # locked: even the right password is refused, for this name
    assert await sign_in(client, name, "right-password-1") == "/login?locked=1"
    other = await new_user(redis)
    assert await sign_in(client, other, "right-password-1") == "/"  # another name from the same ward PC
    audit = [e for _, e in await redis.xrange("ctgw:audit:admin", count=100000)
             if e[b"event"] == b"sign_in_failed" and e[b"actor"].decode() == name]
    assert len(audit) == 4 and json.loads(audit[-1][b"detail"])["reason"] == "locked"
    await redis.aclose()


async def test_an_address_with_many_failures_is_locked(stack, tmp_path) -> None:
    client, redis = await station(stack, tmp_path, address=f"10.8.{uuid.uuid4().int % 250}.1",
                                  dashboard_login_max_failures=2)
    for _ in range(8):  # 4 names' allowance of 2: a guessing machine
        await sign_in(client, f"nobody{uuid.uuid4().hex[:6]}", "guess-guess-1")
    name = await new_user(redis)
    assert await sign_in(client, name, "right-password-1") == "/login?locked=1"
    await redis.aclose()


async def test_known_and_unknown_names_answer_in_the_same_time(stack, tmp_path) -> None:
    client, redis = await station(stack, tmp_path, dashboard_login_max_failures=1000)
    name = await new_user(redis)

    async def timed(user: str) -> float:
        started = time.perf_counter()
        await sign_in(client, user, "wrong-password-x")
        return time.perf_counter() - started

    known, unknown = [], []
    for _ in range(7):
        known.append(await timed(name))
        unknown.append(await timed(f"ghost{uuid.uuid4().hex[:6]}"))
    k, u = statistics.median(known), statistics.median(unknown)
    assert abs(k - u) / max(k, u) < 0.2, (k, u)
    await redis.aclose()


async def test_a_session_ends_with_sign_out_and_with_the_user(stack, tmp_path) -> None:
    client, redis = await station(stack, tmp_path)
    name = await new_user(redis)
    assert await sign_in(client, name, "right-password-1") == "/"
    saved = dict(client.cookies)
    assert (await client.get("/api/me")).status_code == 200
    await client.post("/logout")
    replay, _ = await station(stack, tmp_path)
    replay.cookies.update(saved)  # the cookie kept from before the sign-out
    assert (await replay.get("/api/me")).status_code == 401
    # disabling (or removing) a user ends their sessions at once
    assert await sign_in(client, name, "right-password-1") == "/"
    await UserStore(redis).set_disabled(name, True)
    assert (await client.get("/api/me")).status_code == 401
    assert await sign_in(client, name, "right-password-1") == "/login?failed=1"
    await redis.aclose()


async def test_a_user_is_never_overwritten(stack, tmp_path) -> None:
    client, redis = await station(stack, tmp_path)
    admin = await new_user(redis, "admin")
    assert await sign_in(client, admin, "right-password-1") == "/"
    csrf = (await client.get("/api/me")).json()["csrf"]
    r = await client.post("/api/users", json={"name": admin, "password": "another-password", "role": "nurse"},
                          headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409
    with pytest.raises(UserError, match="exists"):
        await UserStore(redis).add(admin, "another-password", "nurse")
    assert await sign_in(client, admin, "right-password-1") == "/"  # the password did not change
    await redis.aclose()


def test_users_are_administered_from_the_command_line(stack) -> None:
    import subprocess
    import sys

    from tests.helpers import PROJECT_ROOT, env_for

    env, name = env_for(stack), f"cli{uuid.uuid4().hex[:6]}"

    def ctgwatch(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "stream.cli", "users", *args], input=stdin, env=env,
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)

    assert ctgwatch("add", name, "--role", "obstetrician", "--password-stdin", stdin="first-password\n").returncode == 0
    again = ctgwatch("add", name, "--password-stdin", stdin="other-password\n")
    assert again.returncode == 2 and "exists" in again.stderr and "users passwd" in again.stderr
    assert ctgwatch("passwd", name, "--password-stdin", stdin="second-password\n").returncode == 0
    assert ctgwatch("disable", name).returncode == 0
    listing = ctgwatch("list").stdout
    assert any(line.split() == [name, "obstetrician", "disabled"] for line in listing.splitlines()), listing
    assert ctgwatch("remove", name).returncode == 0
    assert name not in ctgwatch("list").stdout
    gone = ctgwatch("passwd", name, "--password-stdin", stdin="third-password\n")
    assert gone.returncode == 2 and "no user" in gone.stderr


async def test_redis_down_answers_503_naming_the_service(stack, tmp_path) -> None:
    from stream.core.ports import free_port

    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    app = create_dashboard(stack.model_copy(update={"state_dir": tmp_path, "dashboard_secret": "x" * 20}), dead)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://station")
    r = await client.get("/health", headers={"accept": "application/json"})
    assert r.status_code == 503 and r.json()["service"] == "redis" and "Redis" in r.json()["error"]
    page = await client.post("/login", data={"username": "ann", "password": "whatever-1"}, headers={"accept": "text/html"})
    assert page.status_code == 503 and "unavailable" in page.text and page.headers["retry-after"] == "5"


async def test_session_cookie_is_secure_whenever_the_station_is_served_over_tls(stack, tmp_path) -> None:
    client, redis = await station(stack, tmp_path)
    name = await new_user(redis)
    r = await client.post("/login", data={"username": name, "password": "right-password-1"})
    assert "secure" not in r.headers["set-cookie"].lower()  # plain http (a test, a loopback demo)
    tls = httpx.AsyncClient(transport=client._transport, base_url="https://station", follow_redirects=False)
    r = await tls.post("/login", data={"username": name, "password": "right-password-1"})
    assert r.headers["set-cookie"].lower().rstrip().endswith("; secure")
    await redis.aclose()


async def test_guessing_cannot_lock_a_nurse_out(stack, tmp_path) -> None:
    """Tries while a name waits neither count nor prolong the wait (every try used to reset 15 min); the same
    name signs in from another computer meanwhile; waits double from 1 min; the page says how long."""
    attacker = f"10.7.{uuid.uuid4().int % 250}.9"
    client, redis = await station(stack, tmp_path, address=attacker, dashboard_login_max_failures=3)
    guard = client._transport.app.state.guard  # type: ignore[attr-defined]
    name = await new_user(redis)
    for _ in range(3):
        await sign_in(client, name, "wrong-password-x")
    first = await redis.pttl(f"ctgw:signin:lock:pair:{name}|{attacker}")
    assert 55_000 < first <= 60_000  # the first wait: 1 min
    time.sleep(1.0)
    for _ in range(5):
        assert await sign_in(client, name, "wrong-password-x") == "/login?locked=1"
    assert await redis.pttl(f"ctgw:signin:lock:pair:{name}|{attacker}") < first - 900  # not prolonged
    nurse, _ = await station(stack, tmp_path, address=f"10.6.{uuid.uuid4().int % 250}.2")
    assert await sign_in(nurse, name, "right-password-1") == "/"  # her own computer lets her in
    await redis.delete(f"ctgw:signin:lock:pair:{name}|{attacker}")  # the wait is over
    for _ in range(3):
        await sign_in(client, name, "wrong-password-x")
    assert 110_000 < await redis.pttl(f"ctgw:signin:lock:pair:{name}|{attacker}") <= 120_000  # then 2 min
    assert guard.FIRST_WAIT_S == 60.0
    page = (await client.get("/login?locked=2")).text
    assert "Too many failed sign-ins" in page and 'query.get("locked")' in page
    await redis.aclose()


@pytest.mark.parametrize("trusted", [False, True], ids=["no-proxy", "behind-a-proxy"])
def test_forwarded_addresses_count_only_from_a_configured_proxy(stack, tmp_path, trusted: bool) -> None:
    """A rotating X-Forwarded-For from loopback used to forge the audited address and dodge the per-address
    throttle (uvicorn trusts loopback by default). Only CTGWATCH_TRUSTED_PROXIES is believed now."""
    import asyncio as aio

    from stream.core.ports import free_port
    from tests.helpers import ctgwatch_process, env_for

    port, ward = free_port(), f"xff-{uuid.uuid4().hex[:6]}"
    env = env_for(stack, CTGWATCH_DASHBOARD_PORT=str(port), CTGWATCH_WARD_ID=ward,
                  CTGWATCH_DASHBOARD_SECRET="s-" + uuid.uuid4().hex,
                  **({"CTGWATCH_TRUSTED_PROXIES": '["127.0.0.1"]'} if trusted else {}))
    name = f"x{uuid.uuid4().hex[:8]}"
    with (ctgwatch_process(["dashboard"], env, tmp_path / "dashboard.log", ready="dashboard ready"),
          httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False) as client):
        for i in range(3):
            client.post("/login", data={"username": name, "password": "wrong-password-x"},
                        headers={"X-Forwarded-For": f"203.0.113.{i + 1}"})

    async def audited() -> list[str]:
        redis = Redis.from_url(stack.redis_dsn)
        entries = await redis.xrange("ctgw:audit:admin", count=100000)
        await redis.aclose()
        return [json.loads(e[b"detail"])["address"] for _, e in entries if e[b"actor"].decode() == name]

    addresses = aio.run(audited())
    assert addresses == (["203.0.113.1", "203.0.113.2", "203.0.113.3"] if trusted else ["127.0.0.1"] * 3), addresses


@pytest.mark.parametrize("revoke", ["sign-out", "disable", "remove", "password"])
def test_an_open_live_stream_closes_when_the_session_ends(stack, tmp_path, revoke: str) -> None:
    """An open /api/wall/events or /api/events kept sending patient data after `users disable` (80 events in
    40 s), `users remove` and sign-out. Now it says signed_out and closes within the recheck time."""
    import asyncio as aio
    import threading

    from stream.core.ports import free_port
    from stream.station.deps import SESSION_RECHECK_S
    from stream.station.sessions import SessionStore
    from tests.helpers import ctgwatch_process, env_for

    port, ward = free_port(), f"rev-{uuid.uuid4().hex[:6]}"
    env = env_for(stack, CTGWATCH_DASHBOARD_PORT=str(port), CTGWATCH_WARD_ID=ward,
                  CTGWATCH_DASHBOARD_SECRET="s-" + uuid.uuid4().hex)
    name = f"r{uuid.uuid4().hex[:8]}"

    async def admin(action: str) -> None:
        redis = Redis.from_url(stack.redis_dsn)
        users = UserStore(redis)
        if action == "add":
            await users.add(name, "right-password-1", "nurse")
        elif action == "disable":
            await users.set_disabled(name, True)
        elif action == "remove":
            await users.remove(name)
        elif action == "password":
            await users.set_password(name, "another-password-2")
        if action in ("disable", "remove", "password"):  # what `ctgwatch users ...` does after the change
            await SessionStore(redis, idle_s=60, max_age_s=3600).end_all(name)
        await redis.aclose()

    aio.run(admin("add"))
    base = f"http://127.0.0.1:{port}"
    with ctgwatch_process(["dashboard"], env, tmp_path / "dashboard.log", ready="dashboard ready"):
        client = httpx.Client(base_url=base, follow_redirects=False)
        assert client.post("/login", data={"username": name, "password": "right-password-1"}).headers["location"] == "/"
        csrf = client.get("/api/me").json()["csrf"]
        for path in ("/api/wall/events", "/api/events"):
            ended: dict[str, float] = {}
            lines: list[str] = []

            def read(path: str = path, lines: list[str] = lines, ended: dict[str, float] = ended) -> None:
                with client.stream("GET", path, timeout=60) as r:
                    for line in r.iter_lines():
                        lines.append(line)
                ended["at"] = time.monotonic()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            time.sleep(1.5)
            revoked_at = time.monotonic()
            if revoke == "sign-out":
                client.post("/logout", headers={"X-CSRF-Token": csrf})
            else:
                aio.run(admin(revoke))
            reader.join(SESSION_RECHECK_S + 10)
            assert "at" in ended, f"{path} still open after {revoke}"
            assert ended["at"] - revoked_at <= SESSION_RECHECK_S + 3
            assert "event: signed_out" in lines, lines[-3:]
            if revoke != "sign-out":
                break  # the user is gone: the second stream cannot even open
            assert client.post("/login", data={"username": name, "password": "right-password-1"}).headers["location"] == "/"
            csrf = client.get("/api/me").json()["csrf"]
        client.close()
