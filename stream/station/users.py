"""Dashboard users and roles, passwords hashed with Argon2id (argon2-cffi).

Roles and what they may do:

- ``nurse``: see everything, acknowledge, escalate and resolve alerts;
- ``obstetrician``: the same;
- ``admin``: the same, and manage users.

Users live in Redis (``ctgw:user:<name>``) so every dashboard instance sees
the same accounts; created with ``ctgwatch users add NAME --role ROLE``.
"""

from __future__ import annotations

import re
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

ROLES = ("nurse", "obstetrician", "admin")
ALERT_ACTIONS = {"acknowledge", "escalate", "resolve"}
PERMISSIONS: dict[str, set[str]] = {
    "nurse": ALERT_ACTIONS,
    "obstetrician": ALERT_ACTIONS,
    "admin": ALERT_ACTIONS | {"manage_users"},
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
_hasher = PasswordHasher()


class UserError(ValueError):
    """A refused user operation (bad name, role, password)."""


def may(role: str, action: str) -> bool:
    return action in PERMISSIONS.get(role, set())


class UserStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, name: str, password: str, role: str) -> None:
        if not _NAME.match(name):
            raise UserError("user names are 2-40 lower-case letters, digits and . _ -")
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 10:
            raise UserError("passwords have at least 10 characters")
        await self.redis.hset(f"ctgw:user:{name}", mapping={
            "hash": _hasher.hash(password), "role": role, "created": time.time()})

    async def verify(self, name: str, password: str) -> str | None:
        """The user's role if the password is right, else None (same cost either way)."""
        record = await self.redis.hgetall(f"ctgw:user:{name}")
        stored = record.get(b"hash", b"").decode() or _hasher.hash("timing-equaliser")
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return record[b"role"].decode() if record else None

    async def role(self, name: str) -> str | None:
        role = await self.redis.hget(f"ctgw:user:{name}", "role")
        return role.decode() if role else None

    async def list(self) -> list[tuple[str, str]]:
        out = []
        async for key in self.redis.scan_iter(match="ctgw:user:*"):
            name = key.decode().split(":", 2)[2]
            out.append((name, (await self.role(name)) or "?"))
        return sorted(out)
