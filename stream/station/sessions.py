"""Server-side sessions and the sign-in guard of the nurse station, in Redis.

The signed cookie carries only a random session id; the session itself
(``ctgw:session:<id>``: user, CSRF token, start) lives in Redis with an idle
timeout, so signing out, disabling or removing a user ends their sessions at
once, and a cookie saved before sign-out is worthless.

Failed sign-ins are counted per (name, address) and per address over a window;
past the limit that pair or address waits, with a backoff (even the right
password is refused meanwhile; see :class:`SignInGuard`), every failure is
logged and written to the user-administration audit stream with the address.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from stream.core.redis_values import as_text, text_fields

ADMIN_AUDIT = "ctgw:audit:admin"
#: How many names' worth of failures one address may make before it is locked.
ADDRESS_ALLOWANCE = 4
log = logging.getLogger("ctgwatch.station")


@dataclass(frozen=True)
class Session:
    sid: str
    user: str
    csrf: str
    created: float


class SessionStore:
    def __init__(self, redis: Redis, *, idle_s: float, max_age_s: float) -> None:
        self.redis = redis
        self.idle_s = idle_s
        self.max_age_s = max_age_s

    async def create(self, user: str) -> Session:
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), time.time())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(_session_key(session.sid), mapping={"user": user, "csrf": session.csrf, "created": session.created})
            pipe.expire(_session_key(session.sid), int(self.idle_s))
            pipe.sadd(_user_sessions(user), session.sid)
            await pipe.execute()
        return session

    async def get(self, sid: str | None) -> Session | None:
        """The live session (its idle timer restarted), or None when it ended, idled out or grew too old."""
        if not sid:
            return None
        raw = await self.redis.hgetall(_session_key(sid))
        if not raw:
            return None
        fields = text_fields(raw)
        session = Session(sid, fields["user"], fields["csrf"], float(fields["created"]))
        if time.time() - session.created > self.max_age_s:
            await self.end(sid)
            return None
        await self.redis.expire(_session_key(sid), int(self.idle_s))
        return session

    async def end(self, sid: str | None) -> None:
        if not sid:
            return
        user = await self.redis.hget(_session_key(sid), "user")
        await self.redis.delete(_session_key(sid))
        if user:
            await self.redis.srem(_user_sessions(as_text(user)), sid)

    async def end_all(self, user: str) -> int:
        """End every session of a user (sign-out everywhere, disable, remove); returns how many."""
        sids = [as_text(s) for s in await self.redis.smembers(_user_sessions(user))]
        if sids:
            await self.redis.delete(*(_session_key(s) for s in sids))
        await self.redis.delete(_user_sessions(user))
        return len(sids)


class SignInGuard:
    """Slows guessing down without letting anyone lock a nurse out (OWASP Authentication Cheat Sheet).

    Failures are counted per (name, address) pair and per address over ``window_s``. Past
    ``max_failures`` for a pair (an address: four times that, it may be a shared ward computer) that
    pair or address must wait: 1 min at first, twice as long at each further lock, at most
    ``lockout_s``. Attempts made while waiting are refused and audited but neither counted nor extend
    the wait. A name is never locked as such: guessing from one computer cannot keep its nurse out at
    another.
    """

    #: The first wait; each further lock of the same pair or address doubles it (up to ``lockout_s``).
    FIRST_WAIT_S = 60.0

    def __init__(self, redis: Redis, *, max_failures: int, window_s: float, lockout_s: float) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s

    def _subjects(self, name: str, address: str) -> tuple[tuple[str, str, int], ...]:
        # an address may be a shared ward computer: it gets four times a name's allowance
        return (("pair", f"{name}|{address}", self.max_failures), ("addr", address, self.max_failures * ADDRESS_ALLOWANCE))

    async def wait_s(self, name: str, address: str) -> float:
        """How long this name must wait at this address (0: it may try now)."""
        ttls = [await self.redis.pttl(_lock_key(kind, value)) for kind, value, _ in self._subjects(name, address)]
        return max([0.0] + [t / 1000 for t in ttls if t > 0])

    async def locked(self, name: str, address: str) -> bool:
        return await self.wait_s(name, address) > 0

    async def failed(self, name: str, address: str, reason: str) -> None:
        locked_now = []
        if reason != "locked":  # attempts while waiting are not counted: they cannot prolong the wait
            for kind, value, allowance in self._subjects(name, address):
                key = f"ctgw:signin:fail:{kind}:{value}"
                count = await self.redis.incr(key)
                if count == 1:
                    await self.redis.expire(key, int(self.window_s))
                if count >= allowance:
                    locks = await self.redis.incr(f"ctgw:signin:locks:{kind}:{value}")
                    await self.redis.expire(f"ctgw:signin:locks:{kind}:{value}", int(max(self.window_s, self.lockout_s) * 4))
                    wait = min(self.lockout_s, self.FIRST_WAIT_S * 2 ** (locks - 1))
                    await self.redis.set(_lock_key(kind, value), 1, px=int(wait * 1000))
                    await self.redis.delete(key)  # counting starts again after the wait
                    locked_now.append(kind)
        log.warning("sign-in failed for %r from %s: %s", name, address, reason,
                    extra={"event": "sign_in_failed", "user": name, "address": address})
        await self.redis.xadd(ADMIN_AUDIT, {"event": "sign_in_failed", "actor": name, "at": time.time(),
                                            "detail": json.dumps({"address": address, "reason": reason,
                                                                  "locked": locked_now})})

    async def succeeded(self, name: str, address: str) -> None:
        await self.redis.delete(f"ctgw:signin:fail:pair:{name}|{address}", f"ctgw:signin:locks:pair:{name}|{address}")


def _session_key(sid: str) -> str:
    return f"ctgw:session:{sid}"


def _user_sessions(user: str) -> str:
    return f"ctgw:sessions:user:{user}"


def _lock_key(kind: str, value: str) -> str:
    return f"ctgw:signin:lock:{kind}:{value}"
