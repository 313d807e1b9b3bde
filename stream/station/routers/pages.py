"""Sign-in, sign-out, the page itself and the health probe (the only routes open without a session)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from stream.station.deps import RedisDep, UsersDep

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
async def login(request: Request, users: UsersDep) -> RedirectResponse:
    form = await request.form()
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    role = await users.verify(name, password)
    if role is None:
        return RedirectResponse("/login?failed=1", status_code=303)
    request.session.clear()
    request.session.update({"user": name, "csrf": secrets.token_urlsafe(32), "since": time.time()})
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse, response_model=None)
async def index(request: Request, users: UsersDep) -> FileResponse | RedirectResponse:
    name = request.session.get("user")
    if not name or await users.role(name) is None:
        return RedirectResponse("/login", status_code=303)
    return FileResponse(STATIC / "index.html")
