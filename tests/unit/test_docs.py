"""The docs point only at what the repository holds.

A link or a path in a document, a docstring or a comment that names a file the repository does not
hold (a file outside it, one renamed or moved) fails here, as does a reference to an issue number,
which names no tracker a reader can open.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Markdown links: [text](target); http(s), mail and in-page anchors are not files.
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: A path into the repository's own folders, as code and docs write them.
REPO_PATH = re.compile(r"(?<![\w./-])((?:docs|stream|models|detectors|infra|tests|bench)/[\w./-]*?"
                       r"\.(?:md|py|json|yaml|yml|png|svg|csv|pbtxt|js|html|css))\b")
#: A document named on its own (CLINICAL.md, docs/..., ../shared/X.md).
DOC_NAME = re.compile(r"(?<![\w/.{}-])((?:\.\./)*(?:[\w.-]+/)*[A-Z][A-Z_-]+\.md)\b")
ISSUE = re.compile(r"\bissues? \d+\b", re.I)


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    return [ROOT / p for p in out if (ROOT / p).is_file()]


def _markdown() -> list[Path]:
    return _tracked("README.md", "docs/*.md", "docs/**/*.md", "infra/**/*.md")


def _code() -> list[Path]:
    return _tracked("*.py", "*.toml", "Makefile", "Dockerfile", "*.yml", "*.yaml", "*.js", "*.html")


def _exists(target: str, base: Path) -> bool:
    path = (base / target).resolve()
    return path.is_relative_to(ROOT) and path.exists()


def _broken_links(doc: Path) -> list[str]:
    text = doc.read_text()
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        if not _exists(target.split("#", 1)[0], doc.parent):
            broken.append(f"{doc.relative_to(ROOT)}: link {target}")
    return broken


def _broken_paths(path: Path) -> list[str]:
    text = path.read_text(errors="replace")
    broken = [f"{path.relative_to(ROOT)}: {p}" for p in REPO_PATH.findall(text)
              if "<" not in p and "*" not in p and not (ROOT / p).exists()]
    for name in DOC_NAME.findall(text):
        here = _exists(name, path.parent) or _exists(name, ROOT)
        elsewhere = "/" not in name and any(p.name == name for p in _markdown())
        if not (here or elsewhere):
            broken.append(f"{path.relative_to(ROOT)}: {name}")
    return broken


def test_every_link_in_the_docs_names_a_file_in_the_repository() -> None:
    broken = [b for doc in _markdown() for b in _broken_links(doc)]
    assert broken == [], "\n".join(broken)


def test_every_path_named_in_docs_and_code_is_in_the_repository() -> None:
    broken = [b for path in _markdown() + _code() for b in _broken_paths(path)]
    assert broken == [], "\n".join(broken)


def test_the_docs_name_no_issue_numbers() -> None:
    found = [f"{doc.relative_to(ROOT)}: {m}" for doc in _markdown() for m in ISSUE.findall(doc.read_text())]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("doc", ["README.md"])
def test_the_readme_stays_short(doc: str) -> None:
    assert len((ROOT / doc).read_text().splitlines()) <= 220


def test_every_doc_says_who_it_is_for() -> None:
    """Each file in docs/ opens (within its first 8 lines) with its reader and where its figures come from."""
    missing = [str(d.relative_to(ROOT)) for d in _tracked("docs/*.md", "docs/**/*.md")
               if not re.search(r"\*\*For\*\*", "\n".join(d.read_text().splitlines()[:8]))]
    assert missing == [], missing
