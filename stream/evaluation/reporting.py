"""Replace one ``## section`` of a Markdown report, keeping the others.

Benchmarks and evaluations each own a section of docs/BENCHMARKS.md and
docs/EVALUATION.md; rerunning one must not erase the others.
"""

from __future__ import annotations

import re
from pathlib import Path


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
