"""The nurse-station web service (FastAPI).

Pages: ``/`` (ward overview, alert list, bed view; live over Server-Sent
Events) and ``/login``. Read-only JSON API for other hospital systems under
``/api`` (OpenAPI at ``/docs``), FHIR ``DetectedIssue`` export of an alert,
and the alert actions (acknowledge / escalate / resolve with a reason).

Security: every page and API needs a signed-in session except ``/health``
and ``/login``; sessions are signed cookies (SameSite=strict, HttpOnly);
actions need the session's CSRF token in ``X-CSRF-Token``; roles are checked
on every action (users.py); every action is written to the audit trail with
the user's name (stream/state/alerts.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from starlette.middleware.sessions import SessionMiddleware

from stream.core.settings import Settings
from stream.state.alerts import AlertError, AlertStore
from stream.station import views as data
from stream.station.users import UserError, UserStore, may

STATIC = Path(__file__).with_name("static")
ADMIN_AUDIT = "ctgw:audit:admin"


class ActionBody(BaseModel):
    reason: str = Field(default="", max_length=500)


class NewUser(BaseModel):
    name: str
    password: str
    role: str


def session_secret(settings: Settings) -> str:
    """From CTGWATCH_DASHBOARD_SECRET, else a random one kept (0600) in the state directory."""
    if settings.dashboard_secret:
        return settings.dashboard_secret
    path = settings.state_dir / "dashboard-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def create_dashboard(settings: Settings, redis: Redis | None = None) -> FastAPI:
    redis = redis or Redis.from_url(settings.redis_dsn)
    alerts = AlertStore(redis, settings.alert_policy())
    users = UserStore(redis)
    app = FastAPI(title="ctgwatch nurse station", version="1",
                  description="Live CTG and maternal-vitals alerts. Read-only API for hospital systems; "
                              "actions need a signed-in session with its CSRF token.")
    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie="ctgwatch_session",
                       same_site="strict", https_only=settings.dashboard_secure_cookies, max_age=12 * 3600)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def current_user(request: Request) -> dict[str, str]:
        name = request.session.get("user")
        role = await users.role(name) if name else None  # re-read: a removed user is out at once
        if not name or role is None:
            raise HTTPException(401, "sign in first")
        return {"name": name, "role": role, "csrf": request.session.get("csrf", "")}

    def check_csrf(request: Request, user: dict[str, str]) -> None:
        token = request.headers.get("x-csrf-token", "")
        if not user["csrf"] or not secrets.compare_digest(token, user["csrf"]):
            raise HTTPException(403, "missing or wrong CSRF token")

    @app.get("/health", include_in_schema=False)
    async def health() -> dict:
        await redis.ping()
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page() -> FileResponse:
        return FileResponse(STATIC / "login.html")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> RedirectResponse:
        form = await request.form()
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        role = await users.verify(name, password)
        if role is None:
            return RedirectResponse("/login?failed=1", status_code=303)
        request.session.clear()
        request.session.update({"user": name, "csrf": secrets.token_urlsafe(32), "since": time.time()})
        return RedirectResponse("/", status_code=303)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> RedirectResponse:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request):
        if not request.session.get("user") or await users.role(request.session["user"]) is None:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC / "index.html")

    @app.get("/api/me")
    async def me(user: dict = Depends(current_user)) -> dict:
        return {"user": user["name"], "role": user["role"], "csrf": user["csrf"],
                "may": sorted(a for a in ("acknowledge", "escalate", "resolve", "manage_users") if may(user["role"], a))}

    @app.get("/api/ward")
    async def ward(user: dict = Depends(current_user)) -> dict:
        return await data.ward_snapshot(redis, alerts, settings.ward_id)

    @app.get("/api/alerts")
    async def open_alerts(user: dict = Depends(current_user)) -> list[dict]:
        return await alerts.open_alerts()

    @app.get("/api/alerts/{alert_id}")
    async def alert(alert_id: str, user: dict = Depends(current_user)) -> dict:
        found = await alerts.get(alert_id)
        if found is None:
            raise HTTPException(404, "no such alert")
        return found

    @app.get("/api/alerts/{alert_id}/audit")
    async def alert_audit(alert_id: str, user: dict = Depends(current_user)) -> list[dict]:
        return await alerts.audit_trail(alert_id)

    @app.get("/api/alerts/{alert_id}/fhir")
    async def alert_fhir(alert_id: str, user: dict = Depends(current_user)) -> dict:
        found = await alerts.get(alert_id)
        if found is None:
            raise HTTPException(404, "no such alert")
        return detected_issue(found)

    @app.get("/api/patients/{patient_id}/trace")
    async def patient_trace(patient_id: str, seconds: float = 1800, user: dict = Depends(current_user)) -> dict:
        seconds = max(60.0, min(seconds, settings.history_s))
        return await data.trace(redis, patient_id, seconds, settings.history_s)

    @app.get("/api/patients/{patient_id}/vitals")
    async def patient_vitals(patient_id: str, user: dict = Depends(current_user)) -> list[dict]:
        return await data.vitals(redis, patient_id, settings.history_s)

    @app.post("/api/alerts/{alert_id}/{action}")
    async def act(alert_id: str, action: str, body: ActionBody, request: Request,
                  user: dict = Depends(current_user)) -> dict:
        check_csrf(request, user)
        if action not in ("acknowledge", "escalate", "resolve"):
            raise HTTPException(404, "unknown action")
        if not may(user["role"], action):
            raise HTTPException(403, f"role {user['role']} may not {action}")
        try:
            if action == "acknowledge":
                return await alerts.acknowledge(alert_id, user["name"], body.reason)
            if action == "escalate":
                return await alerts.escalate(alert_id, user["name"], body.reason)
            return await alerts.resolve(alert_id, user["name"], body.reason)
        except AlertError as exc:
            raise HTTPException(409, str(exc)) from exc

    @app.get("/api/users")
    async def list_users(user: dict = Depends(current_user)) -> list[dict]:
        if not may(user["role"], "manage_users"):
            raise HTTPException(403, "only admins manage users")
        return [{"name": n, "role": r} for n, r in await users.list()]

    @app.post("/api/users", status_code=201)
    async def add_user(body: NewUser, request: Request, user: dict = Depends(current_user)) -> dict:
        check_csrf(request, user)
        if not may(user["role"], "manage_users"):
            raise HTTPException(403, "only admins manage users")
        try:
            await users.add(body.name, body.password, body.role)
        except UserError as exc:
            raise HTTPException(422, str(exc)) from exc
        # user administration has its own audit stream: the alert audit is published to hospital systems
        await redis.xadd(ADMIN_AUDIT, {"event": "user_added", "actor": user["name"], "at": time.time(),
                                       "detail": json.dumps({"user": body.name, "role": body.role})})
        return {"name": body.name, "role": body.role}

    @app.get("/api/events")
    async def events(request: Request, user: dict = Depends(current_user)) -> StreamingResponse:
        """Server-Sent Events: the ward snapshot whenever it changes, checked every second."""
        async def stream():
            last = None
            while not await request.is_disconnected():
                snapshot = json.dumps(await data.ward_snapshot(redis, alerts, settings.ward_id), default=str)
                if snapshot != last:
                    yield f"event: ward\ndata: {snapshot}\n\n"
                    last = snapshot
                else:
                    yield ": keep-alive\n\n"
                await asyncio.sleep(settings.dashboard_push_s)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    app.state.users = users
    app.state.alerts = alerts
    return app


_SEVERITY_FHIR = {"advisory": "low", "urgent": "moderate", "emergency": "high"}


def detected_issue(alert: dict[str, Any]) -> dict[str, Any]:
    """FHIR R4 DetectedIssue for an alert (the clinical finding and its evidence)."""
    evidence = alert.get("evidence", {})
    return {
        "resourceType": "DetectedIssue",
        "id": alert["id"],
        "status": "final" if alert["status"] == "resolved" else "preliminary",
        "severity": _SEVERITY_FHIR.get(alert["severity_name"], "low"),
        "code": {"coding": [{"system": "https://ctgwatch.example.org/alert-kind", "code": alert["kind"]}],
                 "text": alert["kind"].replace("_", " ")},
        "patient": {"identifier": {"value": alert["patient_id"]}},
        "identifiedDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(alert["raised_at"])),
        "detail": alert["sentence"],
        "reference": alert.get("rule"),
        "evidence": [{"detail": [{"display": f"{f['rule']}: {f['sentence']}"}]}
                     for f in evidence.get("findings", [])],
        "mitigation": [
            {"action": {"text": event}, "author": {"display": who}}
            for event, who in (("acknowledged", alert.get("ack_by")), ("resolved", alert.get("resolved_by"))) if who
        ],
    }
