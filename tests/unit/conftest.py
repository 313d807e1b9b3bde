"""Fixtures of the unit suite: no services, an in-process Redis for the state and pipeline logic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest


@pytest.fixture
async def redis() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    """A fresh in-process Redis per test (fakeredis implements transactions, sorted sets and streams)."""
    client = fakeredis.FakeAsyncRedis()
    yield client
    await client.flushall()
    await client.aclose()
