"""What the gateway does before it trusts a sender: sample what it refuses, limit each device's rate.

- **Unauthenticated input is not data.** Keeping every refused body whole let
  anyone fill the broker (300 x 262 KB in 3 s). A refusal is counted always
  (``ctgwatch_gateway_refused_total``) and *sampled*: at most
  ``sample_per_min`` per sender address a minute become a dead letter, and a
  sample keeps the size, the SHA-256 and the first ``keep_bytes`` bytes, which
  is what an operator needs to find the sender, not the body.
- **Per-device rate limit.** A token bucket per device id (HTTP token or MLLP
  MSH-3): a monitor sends about one request a second and back-fills in
  batches, so the default (20/s, burst 200) only stops a runaway or a
  stolen token from crowding out the ward. Over the limit: HTTP 429 with
  ``Retry-After`` / HL7 ``AR``; nothing is kept, the device resends.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


def sample_of(raw: bytes, keep_bytes: int) -> tuple[bytes, str]:
    """The first ``keep_bytes`` of ``raw`` and a description with its size and SHA-256."""
    return raw[:keep_bytes], f"{len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}"


class RefusalSampler:
    """At most ``per_min`` samples a minute per sender address (bounded number of addresses)."""

    def __init__(self, per_min: int, *, clock: Callable[[], float] = time.monotonic, max_senders: int = 10_000) -> None:
        self.per_min = per_min
        self.clock = clock
        self.max_senders = max_senders
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def take(self, sender: str) -> bool:
        """True if this refusal from ``sender`` should be kept as a sample."""
        now = self.clock()
        start, count = self._windows.get(sender, (now, 0))
        if now - start >= 60.0:
            start, count = now, 0
        keep = count < self.per_min
        self._windows[sender] = (start, count + 1)
        self._windows.move_to_end(sender)
        while len(self._windows) > self.max_senders:
            self._windows.popitem(last=False)
        return keep


@dataclass
class _Bucket:
    tokens: float
    at: float


class DeviceRateLimit:
    """A token bucket per device: ``rate_per_s`` sustained, ``burst`` at once."""

    def __init__(self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_devices: int = 100_000) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.clock = clock
        self.max_devices = max_devices
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, device: str) -> bool:
        now = self.clock()
        bucket = self._buckets.get(device) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._buckets[device] = bucket
        self._buckets.move_to_end(device)
        while len(self._buckets) > self.max_devices:
            self._buckets.popitem(last=False)
        return allowed
