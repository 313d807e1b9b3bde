"""Shared fixtures: a real embedded stack (Tansu broker, redis-server,
tritonserver) started once per test session on free loopback ports."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from stream.core.settings import Settings
from tests.helpers import FIXTURES, stack_settings


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The real embedded stack, up for the whole session, down (and checked) after."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server (see README)")
    from infra.launcher.stack import down, up

    # Serve the shipped anomaly models next to the test-only Python model.
    repository = tmp_path_factory.mktemp("repository")
    (repository / "scale_by_two").symlink_to(FIXTURES / "triton_repository" / "scale_by_two")
    shipped = Settings().triton_model_repository
    for name in ("ctg_lstm", "ctg_autoencoder", "ctg_false_signal"):
        (repository / name).symlink_to(shipped / name)
    settings = stack_settings(tmp_path_factory.mktemp("stack"), repository)
    up(settings, echo=lambda _line: None)
    try:
        yield settings
    finally:
        down(settings, echo=lambda _line: None)
