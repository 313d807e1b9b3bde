"""Sign-in, sign-out, the page itself and the health probe (the only routes open without a session)."""

from __future__ import annotations

import math
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from stream.station.deps import GuardDep, RedisDep, SessionsDep, UsersDep

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/health")
async def health(redis: RedisDep) -> dict[str, str]:
    await redis.ping()
    return {"status": "ok"}


@router.get("/login", response_class=HTMLResponse)
async def login_page() -> FileResponse:
    return FileResponse(STATIC / "login.html")


@router.post("/login")
async def login(request: Request, users: UsersDep, sessions: SessionsDep, guard: GuardDep) -> RedirectResponse:
    """Sign in: refused while the name or the address is locked; every failure counted, logged, audited."""
    form = await request.form()
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    address = request.client.host if request.client else "?"
    wait = await guard.wait_s(name, address)
    if wait > 0:
        await users.verify(name, password)  # the same answer time as any other refusal
        await guard.failed(name, address, "locked")
        return RedirectResponse(f"/login?locked={math.ceil(wait / 60)}", status_code=303)
    role = await users.verify(name, password)
    if role is None:
        await guard.failed(name, address, "wrong name or password, or disabled")
        return RedirectResponse("/login?failed=1", status_code=303)
    await guard.succeeded(name, address)
    session = await sessions.create(name)
    request.session.clear()
    request.session["sid"] = session.sid
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
async def logout(request: Request, sessions: SessionsDep) -> RedirectResponse:
    await sessions.end(request.session.get("sid"))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def _page(request: Request, users: UsersDep, sessions: SessionsDep, name: str) -> FileResponse | RedirectResponse:
    """A page of the station for a signed-in user; otherwise the sign-in page."""
    session = await sessions.get(request.session.get("sid"))
    if session is None or await users.role(session.user) is None:
        return RedirectResponse("/login", status_code=303)
    return FileResponse(STATIC / name)


@router.get("/", response_class=HTMLResponse, response_model=None)
async def index(request: Request, users: UsersDep, sessions: SessionsDep) -> FileResponse | RedirectResponse:
    """The trace wall."""
    return await _page(request, users, sessions, "index.html")


@router.get("/beds/{bed_id}", response_class=HTMLResponse, response_model=None)
async def bed_page(bed_id: str, request: Request, users: UsersDep, sessions: SessionsDep) -> FileResponse | RedirectResponse:
    """One bed at its own URL (the page reads the bed from its address)."""
    return await _page(request, users, sessions, "bed.html")


@router.get("/beds/{bed_id}/handover", response_class=HTMLResponse, response_model=None)
async def handover_page(bed_id: str, request: Request, users: UsersDep, sessions: SessionsDep) -> FileResponse | RedirectResponse:
    """The printable hand-over of one bed."""
    return await _page(request, users, sessions, "handover.html")
