"""What Redis answers, as the types the project uses.

Every Redis client here is created with ``decode_responses=False``, so replies are bytes; redis-py's
type hints allow ``bytes | str`` (and, for range commands, tuples and lists) because they cover every
client configuration. These helpers narrow a reply to what it is, and fail loudly on a client that was
created another way instead of passing a ``str`` on to code that expects bytes.
"""

from __future__ import annotations

from collections.abc import Mapping


def as_bytes(value: object) -> bytes:
    """A reply member as bytes (a blob: a stored packet, a minute of chart)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"expected a Redis bytes reply, got {type(value).__name__}")


def as_text(value: object) -> str:
    """A reply member as text (an id, a name, a JSON document)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a Redis bytes reply, got {type(value).__name__}")


def text_or_none(value: object) -> str | None:
    """A reply that may be missing (``GET``, ``HGET``), as text or None."""
    return None if value is None else as_text(value)


def text_fields(raw: Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str] | None) -> dict[str, str]:
    """A hash or stream entry (``HGETALL``, ``XRANGE`` fields) as text keys and values (empty if missing)."""
    return {as_text(k): as_text(v) for k, v in (raw or {}).items()}
