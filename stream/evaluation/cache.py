"""Cached evaluation results that cannot outlive the code that computed them.

Why: the risk evaluation caches its replay (about 10 min), its 5 x 5 cross-fitting (about 35 min) and the
served stacker's fit. Keyed only on the records and the stacker's inputs, the cross-fitting behind the published
figures was reused across several commits that changed the code it ran, and a fresh run with today's code did not
reproduce it (docs/EVALUATION.md, "Reproduction (v2)"). A cached result therefore records a digest of every source
file of the packages that compute it (:data:`SOURCES`); when one of them differs, the result is stale and is
computed again. The digest reads the code, not its comments, docstrings or layout (:func:`code_digest`): a
docstring edit must not cost a 38-min cross-fitting, or people would learn to bypass the check.

Pure bookkeeping: a value and the source digests in, a pickle on disk out; no evaluation code here.
"""

from __future__ import annotations

import ast
import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.core.settings import PROJECT_ROOT

#: The packages whose code the risk evaluation runs (what its replay, cross-fitting and report import;
#: ``tests/unit/test_evaluation_cache.py`` checks it). The worker, the web station and the ingest are not read.
SOURCES = ("detectors", "models", "stream/alarms", "stream/core", "stream/evaluation", "stream/sources")
#: This module only keeps the books: a change to it changes no cached result.
BOOKKEEPING = "stream/evaluation/cache.py"


def code_digest(source: bytes) -> str:
    """SHA-256 of a Python source's syntax tree without its docstrings: comments, docstrings and layout do not
    count, anything that can change what runs does. A file that does not parse counts byte for byte."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).hexdigest()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def source_digests(root: Path = PROJECT_ROOT, sources: tuple[str, ...] = SOURCES) -> dict[str, str]:
    """:func:`code_digest` of each Python source file under ``sources`` (but this module), by its path relative
    to ``root``."""
    out = {}
    for package in sources:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            if name != BOOKKEEPING:
                out[name] = code_digest(path.read_bytes())
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
