"""What runs in the ward loads no torch: the worker, the station and the gateway import only the serving half
of models/ (pyproject.toml's import contract says so statically; this checks the interpreter agrees)."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_station_and_gateway_start_without_torch() -> None:
    code = ("import sys\n"
            "import stream.worker.app, stream.station.app, stream.gateway.server\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'models.training')))\n"
            "print(loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
