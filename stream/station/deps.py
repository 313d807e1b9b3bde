"""Typed dependencies of the nurse-station routes: the stores, the signed-in user, the CSRF check.

Everything a route needs comes in as an ``Annotated`` parameter, so a route
reads as what it does and its tests can override any dependency.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from redis.asyncio import Redis

from stream.core.settings import Settings
from stream.state.alerts import AlertStore
from stream.state.patient_status import PatientStatusStore
from stream.station.sessions import SessionStore, SignInGuard
from stream.station.users import UserStore, may


@dataclass(frozen=True)
class SignedInUser:
    name: str
    role: str
    csrf: str

    def require(self, action: str) -> None:
        """403 unless the user's role may do ``action`` (roles in users.py)."""
        if not may(self.role, action):
            raise HTTPException(403, f"role {self.role} may not {action.replace('_', ' ')}")


def _state(request: Request):  # the objects create_dashboard put on the app
    return request.app.state


def get_settings(request: Request) -> Settings:
    return _state(request).settings


def get_redis(request: Request) -> Redis:
    return _state(request).redis


def get_alerts(request: Request) -> AlertStore:
    return _state(request).alerts


def get_users(request: Request) -> UserStore:
    return _state(request).users


def get_status(request: Request) -> PatientStatusStore:
    return _state(request).status


def get_sessions(request: Request) -> SessionStore:
    return _state(request).sessions


def get_guard(request: Request) -> SignInGuard:
    return _state(request).guard


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
AlertsDep = Annotated[AlertStore, Depends(get_alerts)]
UsersDep = Annotated[UserStore, Depends(get_users)]
StatusDep = Annotated[PatientStatusStore, Depends(get_status)]
SessionsDep = Annotated[SessionStore, Depends(get_sessions)]
GuardDep = Annotated[SignInGuard, Depends(get_guard)]


async def current_user(request: Request, users: UsersDep, sessions: SessionsDep) -> SignedInUser:
    """The user of the request's server-side session, re-read on every request: a signed-out, idle,
    disabled or removed user is out at once."""
    session = await sessions.get(request.session.get("sid"))
    role = await users.role(session.user) if session else None
    if session is None or role is None:
        raise HTTPException(401, "sign in first")
    return SignedInUser(session.user, role, session.csrf)


UserDep = Annotated[SignedInUser, Depends(current_user)]


async def acting_user(request: Request, user: UserDep) -> SignedInUser:
    """The signed-in user of a state-changing request, which must carry the session's CSRF token."""
    token = request.headers.get("x-csrf-token", "")
    if not user.csrf or not secrets.compare_digest(token, user.csrf):
        raise HTTPException(403, "missing or wrong CSRF token")
    return user


ActingUserDep = Annotated[SignedInUser, Depends(acting_user)]
