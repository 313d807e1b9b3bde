"""Dashboard users and roles, passwords hashed with Argon2id (argon2-cffi).

Roles and what they may do:

- ``nurse``: see everything, acknowledge, escalate and resolve alerts;
- ``obstetrician``: the same;
- ``admin``: the same, and manage users.

Users live in Redis (``ctgw:user:<name>``) so every dashboard instance sees
the same accounts; created with ``ctgwatch users add NAME --role ROLE`` (an
existing user is never overwritten: ``users passwd`` changes a password),
listed, disabled and removed with ``ctgwatch users list / disable / remove``.
A wrong password costs the same time for a known and an unknown name (both
are verified against an Argon2 hash), so names cannot be found by timing.
"""

from __future__ import annotations

import re
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from stream.core.redis_values import as_text, text_fields, text_or_none

ROLES = ("nurse", "obstetrician", "admin")
ALERT_ACTIONS = {"acknowledge", "escalate", "resolve"}
PERMISSIONS: dict[str, set[str]] = {
    "nurse": ALERT_ACTIONS,
    "obstetrician": ALERT_ACTIONS,
    "admin": ALERT_ACTIONS | {"manage_users"},
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
_hasher = PasswordHasher()
#: Verified against when the name is unknown: the same work as for a real user.
_DUMMY_HASH = _hasher.hash("not a password of anyone: equalises the answer time")


class UserError(ValueError):
    """A refused user operation (bad name, role, password)."""


def may(role: str, action: str) -> bool:
    return action in PERMISSIONS.get(role, set())


class UserStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, name: str, password: str, role: str) -> None:
        """A new user; refused when the name is taken (use :meth:`set_password` to change a password)."""
        if not _NAME.match(name):
            raise UserError("user names are 2-40 lower-case letters, digits and . _ -")
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        _check_password(password)
        created = await self.redis.hsetnx(_key(name), "hash", _hasher.hash(password))
        if not created:
            raise UserError(f"user {name} exists; change the password with 'ctgwatch users passwd {name}'")
        await self.redis.hset(_key(name), mapping={"role": role, "created": time.time(), "disabled": 0})

    async def set_password(self, name: str, password: str) -> None:
        _check_password(password)
        if not await self.redis.exists(_key(name)):
            raise UserError(f"no user {name}")
        await self.redis.hset(_key(name), "hash", _hasher.hash(password))

    async def set_disabled(self, name: str, disabled: bool) -> None:
        if not await self.redis.exists(_key(name)):
            raise UserError(f"no user {name}")
        await self.redis.hset(_key(name), "disabled", int(disabled))

    async def remove(self, name: str) -> None:
        if not await self.redis.delete(_key(name)):
            raise UserError(f"no user {name}")

    async def verify(self, name: str, password: str) -> str | None:
        """The user's role if the password is right and the user is enabled, else None (same cost either way)."""
        record = await self.redis.hgetall(_key(name))
        fields = text_fields(record)
        stored = fields.get("hash") or _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if not fields or fields.get("disabled") == "1":
            return None
        return fields["role"]

    async def role(self, name: str) -> str | None:
        """The role of an enabled user, else None (a disabled or removed user is out at once)."""
        role, disabled = await self.redis.hmget(_key(name), ["role", "disabled"])
        return text_or_none(role) if role and text_or_none(disabled) != "1" else None

    async def list(self) -> list[tuple[str, str, bool]]:
        """(name, role, disabled) of every user."""
        out = []
        async for key in self.redis.scan_iter(match="ctgw:user:*"):
            name = as_text(key).split(":", 2)[2]
            role, disabled = await self.redis.hmget(key, ["role", "disabled"])
            out.append((name, text_or_none(role) or "?", text_or_none(disabled) == "1"))
        return sorted(out)


def _key(name: str) -> str:
    return f"ctgw:user:{name}"


def _check_password(password: str) -> None:
    if len(password) < 10:
        raise UserError("passwords have at least 10 characters")
