"""The Faust app's configuration, without a broker."""

from __future__ import annotations

from pathlib import Path

from stream.core.settings import Settings
from stream.worker.app import create_app


async def noop(_record) -> None:  # noqa: ANN001
    return None


def test_the_worker_keeps_its_faust_data_under_the_state_directory(tmp_path: Path) -> None:
    """Faust's data directory lives under CTGWATCH_STATE_DIR, named by the app id, not in the current directory."""
    app = create_app(Settings(state_dir=tmp_path, worker_app_id="ward-7"), on_record=noop)
    assert Path(app.conf.datadir) == tmp_path / "faust" / "ward-7-data"
