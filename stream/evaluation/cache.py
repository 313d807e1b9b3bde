"""Cached evaluation results that cannot outlive the code that computed them.

Why: the risk evaluation caches its replay (about 10 min), its 5 x 5 cross-fitting (about 35 min) and the
served stacker's fit. Keyed only on the records and the stacker's inputs, the cross-fitting behind the published
figures was reused across several commits that changed the code it ran, and a fresh run with today's code did not
reproduce it (docs/EVALUATION.md, "Rerun"). A cached result therefore records the SHA-256 of every source file of
the packages that compute it (:data:`SOURCES`); when one of them differs, the result is stale and is computed again.

Pure bookkeeping: a value and the source digests in, a pickle on disk out; no evaluation code here.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.core.settings import PROJECT_ROOT

#: The packages whose code the risk evaluation runs (what its replay, cross-fitting and report import;
#: ``tests/unit/test_evaluation_cache.py`` checks it). The worker, the web station and the ingest are not read.
SOURCES = ("detectors", "models", "stream/alarms", "stream/core", "stream/evaluation", "stream/sources")


def source_digests(root: Path = PROJECT_ROOT, sources: tuple[str, ...] = SOURCES) -> dict[str, str]:
    """SHA-256 of each Python source file under ``sources``, by its path relative to ``root``."""
    out = {}
    for package in sources:
        for path in sorted((root / package).rglob("*.py")):
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def changed_sources(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """The source files added, removed or changed between two digests, sorted."""
    return sorted(p for p in recorded.keys() | current.keys() if recorded.get(p) != current.get(p))


@dataclass
class Cached:
    """A cached value and the source digests of the code that computed it."""

    value: Any
    sources: dict[str, str]

    def changed(self, current: dict[str, str] | None = None) -> list[str]:
        """The source files that differ now from when the value was computed (empty: still fresh)."""
        return changed_sources(self.sources, source_digests() if current is None else current)


def read(path: Path) -> Cached | None:
    """The cache at ``path``; None when there is none, or it was written before caches recorded their sources."""
    if not path.is_file():
        return None
    try:
        cached = pickle.loads(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None  # unreadable: computed again
    return cached if isinstance(cached, Cached) else None


def read_fresh(path: Path, current: dict[str, str] | None = None) -> Any | None:
    """The cached value when the code that computed it is today's, else None."""
    cached = read(path)
    return cached.value if cached is not None and not cached.changed(current) else None


def write(path: Path, value: Any, sources: dict[str, str] | None = None) -> None:
    """Cache ``value`` with the digests of the code that computed it (today's unless given).

    Give the digests taken before the computation started, so an edit made while it ran marks it stale.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Cached(value, source_digests() if sources is None else sources)))
