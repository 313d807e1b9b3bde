"""Write a report's section, and say where its figures were computed.

Benchmarks and evaluations each own a section of docs/BENCHMARKS.md and
docs/EVALUATION.md; rerunning one must not erase the others
(:func:`write_section`). A figure in the docs names the commit it came from,
and a cached result can outlive its commit (:func:`provenance`).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from stream.core.settings import PROJECT_ROOT


def write_section(doc: Path, title: str, body: str, heading: str) -> None:
    text = doc.read_text() if doc.exists() else f"# {heading}\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    """``git`` in the project's checkout (None where git is not installed)."""
    try:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return None


def source_commit() -> str:
    """The checkout's short commit hash ("" outside a git checkout): what a figure names as its source."""
    head = _git("rev-parse", "--short", "HEAD")
    return head.stdout.strip() if head is not None and head.returncode == 0 else ""


def provenance() -> str:
    """The commit and UTC time a figure is computed at, for a cache that may outlive its commit.

    "a39ce9f, 2026-12-07 02:10 UTC"; "with local changes" when tracked files differ from the commit;
    "no git checkout" outside one.
    """
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    commit = source_commit()
    if not commit:
        return f"no git checkout, {when}"
    diff = _git("diff", "--quiet", "HEAD")
    dirty = diff is not None and diff.returncode != 0
    return f"{commit}{' with local changes' if dirty else ''}, {when}"
