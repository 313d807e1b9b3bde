"""Typed dependencies of the nurse-station routes: the stores, the signed-in user, the CSRF check.

Everything a route needs comes in as an ``Annotated`` parameter, so a route
reads as what it does and its tests can override any dependency.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from stream.core.settings import Settings
from stream.state.alerts import AlertStore
from stream.state.audio_pause import AudioPauseStore
from stream.state.labour_record import LabourRecordStore
from stream.state.patient_status import PatientStatusStore
from stream.state.windows import WindowStore
from stream.station.feed import WallFeed
from stream.station.schemas import Ward
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


def app_state(name: str) -> Callable[[Request], Any]:
    """A dependency that returns one of the objects ``create_dashboard`` put on ``app.state``."""
    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


SettingsDep = Annotated[Settings, Depends(app_state("settings"))]
RedisDep = Annotated[Redis, Depends(app_state("redis"))]
AlertsDep = Annotated[AlertStore, Depends(app_state("alerts"))]
UsersDep = Annotated[UserStore, Depends(app_state("users"))]
StatusDep = Annotated[PatientStatusStore, Depends(app_state("status"))]
SessionsDep = Annotated[SessionStore, Depends(app_state("sessions"))]
WindowsDep = Annotated[WindowStore, Depends(app_state("windows"))]
RecordDep = Annotated[LabourRecordStore, Depends(app_state("record"))]
AudioDep = Annotated[AudioPauseStore, Depends(app_state("audio"))]
FeedDep = Annotated[WallFeed, Depends(app_state("feed"))]
WardNowDep = Annotated[Callable[[], Awaitable[Ward]], Depends(app_state("ward_now"))]
GuardDep = Annotated[SignInGuard, Depends(app_state("guard"))]


async def current_user(request: Request, users: UsersDep, sessions: SessionsDep) -> SignedInUser:
    """The user of the request's server-side session, re-read on every request: a signed-out, idle,
    disabled or removed user is out at once."""
    session = await sessions.get(request.session.get("sid"))
    role = await users.role(session.user) if session else None
    if session is None or role is None:
        raise HTTPException(401, "sign in first")
    return SignedInUser(session.user, role, session.csrf)


UserDep = Annotated[SignedInUser, Depends(current_user)]

#: A live stream re-reads its session this often: a sign-out, disable, removal or password change
#: (which ends the user's sessions) closes it within this time.
SESSION_RECHECK_S = 5.0


#: What a live stream sends before it closes because its session has ended.
SIGNED_OUT_EVENT = "event: signed_out\ndata: {}\n\n"


@dataclass
class SessionRecheck:
    """A long-lived request's session, re-read at most every ``SESSION_RECHECK_S`` (as on every request)."""

    request: Request
    users: UserStore
    sessions: SessionStore
    user: SignedInUser
    checked: float = field(default_factory=time.monotonic)

    async def ended(self) -> bool:
        """True once the session no longer stands for the same user (sign-out, disabled, removed, new password)."""
        if time.monotonic() - self.checked < SESSION_RECHECK_S:
            return False
        self.checked = time.monotonic()
        try:
            session = await self.sessions.get(self.request.session.get("sid"))
            return session is None or session.user != self.user.name or await self.users.role(session.user) is None
        except RedisError:
            # The session store is unreachable: keep the stream, which then carries only the outage banner
            # (no patient data can be read without Redis either); the next check after it is back decides.
            return False


async def session_recheck(request: Request, users: UsersDep, sessions: SessionsDep, user: UserDep) -> SessionRecheck:
    return SessionRecheck(request, users, sessions, user)


SessionRecheckDep = Annotated[SessionRecheck, Depends(session_recheck)]


async def acting_user(request: Request, user: UserDep) -> SignedInUser:
    """The signed-in user of a state-changing request, which must carry the session's CSRF token."""
    token = request.headers.get("x-csrf-token", "")
    if not user.csrf or not secrets.compare_digest(token, user.csrf):
        raise HTTPException(403, "missing or wrong CSRF token")
    return user


ActingUserDep = Annotated[SignedInUser, Depends(acting_user)]
