"""User administration (admins only); audited in its own stream, not published to hospital systems."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, HTTPException

from stream.station.deps import ActingUserDep, RedisDep, UserDep, UsersDep
from stream.station.schemas import NewUser, UserOut
from stream.station.sessions import ADMIN_AUDIT
from stream.station.users import UserError

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("", response_model=list[UserOut])
async def list_users(user: UserDep, users: UsersDep) -> list[UserOut]:
    user.require("manage_users")
    return [UserOut(name=n, role=r, disabled=d) for n, r, d in await users.list()]


@router.post("", status_code=201, response_model=UserOut)
async def add_user(body: NewUser, user: ActingUserDep, users: UsersDep, redis: RedisDep) -> UserOut:
    user.require("manage_users")
    try:
        await users.add(body.name, body.password, body.role)
    except UserError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from exc
    await redis.xadd(ADMIN_AUDIT, {"event": "user_added", "actor": user.name, "at": time.time(),
                                   "detail": json.dumps({"user": body.name, "role": body.role})})
    return UserOut(name=body.name, role=body.role)
