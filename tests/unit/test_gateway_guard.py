"""The gateway's guards: refusals sampled not stored, per-device rate limits, the MLLP allow-list."""

from __future__ import annotations

import hashlib

from stream.gateway.guard import DeviceRateLimit, RefusalSampler, sample_of
from stream.gateway.mllp import MllpPolicy


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_sample_keeps_size_hash_and_head_not_the_body() -> None:
    body = b"x" * 262_144
    head, description = sample_of(body, 256)
    assert head == b"x" * 256
    assert description == f"262144 bytes, sha256 {hashlib.sha256(body).hexdigest()}"


def test_refusals_are_sampled_per_sender_and_minute() -> None:
    clock = Clock()
    sampler = RefusalSampler(per_min=3, clock=clock)
    assert [sampler.take("10.0.0.9") for _ in range(300)].count(True) == 3
    assert sampler.take("10.0.0.8")  # another sender has its own budget
    clock.t += 60
    assert sampler.take("10.0.0.9")


def test_rate_limit_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    limit = DeviceRateLimit(rate_per_s=2.0, burst=5, clock=clock)
    assert [limit.allow("mon-1") for _ in range(7)] == [True] * 5 + [False] * 2
    assert limit.allow("mon-2")  # per device
    clock.t += 1.0
    assert [limit.allow("mon-1") for _ in range(3)] == [True, True, False]


def test_mllp_allow_list() -> None:
    policy = MllpPolicy.of(["10.20.0.0/16", "192.168.1.7"], None, 300, 10)
    assert policy.admits("10.20.3.4") and policy.admits("192.168.1.7")
    assert not policy.admits("10.21.0.1") and not policy.admits("not-an-ip")
    assert MllpPolicy().admits("203.0.113.5")  # no list: any address
