"""A cached evaluation result is read back only while the code that computed it is unchanged, and the packages
whose code counts are the ones the risk evaluation actually imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stream.core.settings import PROJECT_ROOT
from stream.evaluation import cache


def _tree(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "fit.py").write_text("SEED = 0\n")
    (root / "other").mkdir()
    (root / "other" / "web.py").write_text("PORT = 1\n")


def test_a_cached_value_is_fresh_until_a_source_file_changes(tmp_path: Path) -> None:
    root = tmp_path / "src"
    _tree(root)
    digests = cache.source_digests(root, ("pkg",))
    assert set(digests) == {"pkg/__init__.py", "pkg/sub/fit.py"}
    path = tmp_path / "c" / "fit.pkl"
    cache.write(path, {"auc": 0.79}, digests)
    assert cache.read_fresh(path, cache.source_digests(root, ("pkg",))) == {"auc": 0.79}

    (root / "other" / "web.py").write_text("PORT = 2\n")  # outside the packages: still fresh
    assert cache.read_fresh(path, cache.source_digests(root, ("pkg",))) == {"auc": 0.79}

    (root / "pkg" / "sub" / "fit.py").write_text("SEED = 1\n")
    (root / "pkg" / "new.py").write_text("")
    now = cache.source_digests(root, ("pkg",))
    assert cache.read_fresh(path, now) is None
    stored = cache.read(path)
    assert stored is not None and stored.changed(now) == ["pkg/new.py", "pkg/sub/fit.py"]


def test_a_cache_without_its_sources_or_unreadable_is_not_read(tmp_path: Path) -> None:
    import pickle

    old = tmp_path / "old.pkl"
    old.write_bytes(pickle.dumps({"series": []}))  # as written before caches recorded their sources
    assert cache.read(old) is None and cache.read_fresh(old) is None
    torn = tmp_path / "torn.pkl"
    torn.write_bytes(pickle.dumps({"series": []})[:5])
    assert cache.read(torn) is None
    assert cache.read(tmp_path / "absent.pkl") is None


def test_the_sources_cover_every_project_module_the_risk_evaluation_imports() -> None:
    """In a fresh interpreter, import what ``ctgwatch evaluate risk`` and ``risk-screen`` run, and list the
    project's modules loaded: each must lie in one of :data:`cache.SOURCES`."""
    script = (
        "import json, sys\n"
        "import stream.evaluation.risk, stream.evaluation.risk_data, stream.evaluation.risk_screen\n"
        "import stream.evaluation.risk_alarm, stream.evaluation.risk_replay\n"
        "import models.training.compromise, models.training.versions, models.training.acidaemia\n"
        "print(json.dumps(sorted(getattr(m, '__file__', None) or '' for n, m in list(sys.modules.items())\n"
        "                        if n.split('.')[0] in ('stream', 'models', 'detectors'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    files = [Path(f).resolve().relative_to(PROJECT_ROOT).as_posix() for f in json.loads(out.stdout) if f]
    assert files
    outside = [f for f in files if not any(f.startswith(p + "/") for p in cache.SOURCES) and f != "stream/__init__.py"]
    assert not outside, f"the risk evaluation imports code its caches do not fingerprint: {outside}"
    assert set(files) - {"stream/__init__.py", cache.BOOKKEEPING} <= set(cache.source_digests())


def test_comments_docstrings_and_layout_do_not_count_but_code_does() -> None:
    base = b'"""Module."""\n\ndef fit(x):\n    """Why."""\n    return x + 1  # add one\n'
    same = b'"""Module, reworded."""\n\n\ndef fit(x):\n    """Why, at length."""\n    # a comment\n    return (x +\n            1)\n'
    other = b'"""Module."""\n\ndef fit(x):\n    """Why."""\n    return x + 2\n'
    assert cache.code_digest(base) == cache.code_digest(same)
    assert cache.code_digest(base) != cache.code_digest(other)
    assert cache.code_digest(b"def broken(:\n") != cache.code_digest(b"def broken(:\n\n")  # unparsable: bytes
    only_docstring = b'def f():\n    """Nothing else."""\n'
    assert cache.code_digest(only_docstring) == cache.code_digest(b"def f():\n    pass\n")
