"""Write one benchmark's section of docs/BENCHMARKS.md, keeping the other sections."""

from __future__ import annotations

from pathlib import Path

from stream.evaluation.reporting import write_section as _write

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def write_section(title: str, body: str) -> None:
    _write(DOC, title, body, "ctgwatch benchmarks")
