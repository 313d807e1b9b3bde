"""The nurse-station web service (FastAPI): the app, its middleware and its routers.

Pages: ``/`` (the trace wall: every bed's live CTG strip, alarms by
priority with sound, live over Server-Sent Events), ``/beds/<bed>`` (one
bed: the whole labour's CTG, trends, vitals), ``/beds/<bed>/handover``
(printable shift hand-over) and ``/login``. Read-only JSON API for other hospital systems under
``/api`` (OpenAPI at ``/docs``), FHIR ``DetectedIssue`` export of an alert,
and the alert actions (acknowledge / escalate / resolve with a reason).
One router per resource (``routers/``); what a route needs arrives through
the typed dependencies of ``deps.py``.

Security: every page and API needs a signed-in session except ``/health``
and ``/login``; sessions are signed cookies (SameSite=strict, HttpOnly);
actions need the session's CSRF token in ``X-CSRF-Token``; roles are checked
on every action (users.py); every action is written to the audit trail with
the user's name (stream/state/alerts.py).
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream.core.settings import Settings
from stream.state.alerts import AlertStore
from stream.state.audio_pause import AudioPauseStore
from stream.state.labour_record import LabourRecordStore
from stream.state.patient_status import PatientStatusStore
from stream.state.windows import WindowStore
from stream.station import views
from stream.station.deps import UserDep
from stream.station.feed import WallFeed
from stream.station.routers import alerts, pages, patients, users, wall, ward
from stream.station.routers.pages import STATIC
from stream.station.schemas import Ward
from stream.station.sessions import SessionStore, SignInGuard
from stream.station.users import UserStore


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


class SecureCookiesOverTls:
    """Mark every cookie ``Secure`` when the request came over TLS (directly or, with uvicorn's proxy
    headers, from the hospital's reverse proxy), so no setting is needed for the safe choice;
    ``CTGWATCH_DASHBOARD_SECURE_COOKIES=true`` makes it unconditional."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for name, value in message.get("headers", []):
                    if name.lower() == b"set-cookie" and b"secure" not in value.lower():
                        value += b"; secure"
                    headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secure)


def create_dashboard(settings: Settings, redis: Redis | None = None) -> FastAPI:
    redis = redis or Redis.from_url(settings.redis_dsn)
    app = FastAPI(title="ctgwatch nurse station", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  description="Live CTG and maternal-vitals alerts. Read-only API for hospital systems; "
                              "actions need a signed-in session with its CSRF token.")
    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie="ctgwatch_session",
                       same_site="strict", https_only=settings.dashboard_secure_cookies, max_age=int(settings.dashboard_session_max_age_s))
    app.add_middleware(SecureCookiesOverTls)  # outermost: sees the Set-Cookie the session layer wrote
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.settings = settings
    app.state.redis = redis
    app.state.alerts = AlertStore(redis, settings.alert_handling())
    app.state.users = UserStore(redis)
    app.state.status = PatientStatusStore(redis, keep_marks_s=settings.history_s)
    app.state.windows = WindowStore(redis, capacity_s=settings.history_s)
    app.state.record = LabourRecordStore(redis)
    app.state.audio = AudioPauseStore(redis, settings.ward_id)

    async def ward_now() -> Ward:
        return await views.ward_snapshot(app.state.status, app.state.alerts, settings.ward_id,
                                         settings.dashboard_worker_stale_s, record=app.state.record,
                                         audio=app.state.audio, bed_silent_s=settings.dashboard_bed_silent_s,
                                         discharge_after_s=settings.dashboard_discharge_after_s)

    app.state.ward_now = ward_now
    app.state.feed = WallFeed(app.state.windows, ward_now,
                              wall_s=settings.dashboard_wall_s, push_s=settings.dashboard_push_s)
    app.state.sessions = SessionStore(redis, idle_s=settings.dashboard_session_idle_s,
                                      max_age_s=settings.dashboard_session_max_age_s)
    app.state.guard = SignInGuard(redis, max_failures=settings.dashboard_login_max_failures,
                                  window_s=settings.dashboard_login_window_s, lockout_s=settings.dashboard_lockout_s)
    for router in (pages.router, ward.router, wall.router, alerts.router, patients.router, users.router):
        app.include_router(router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(user: UserDep) -> JSONResponse:
        """The OpenAPI document, for signed-in users only (it maps the whole API)."""
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(user: UserDep) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="ctgwatch nurse station API")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RedisError)
    async def store_unavailable(request: Request, exc: RedisError) -> JSONResponse | HTMLResponse:
        """Redis down (or still loading): a 503 that names the failing service, never a bare 500."""
        message = (f"The alert store (Redis at {settings.redis_dsn.rsplit('@', 1)[-1]}) is unavailable "
                   f"({type(exc).__name__}): alarms and traces cannot be shown. Monitor the beds directly "
                   "and call IT; this page retries by itself.")
        headers = {"Retry-After": "5"}
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(f"<!doctype html><meta http-equiv=refresh content=5><title>ctgwatch: unavailable</title>"
                                f"<h1>Nurse station unavailable</h1><p>{message}</p>", status_code=503, headers=headers)
        return JSONResponse({"error": message, "service": "redis"}, status_code=503, headers=headers)

    return app
