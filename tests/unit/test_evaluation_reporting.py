"""Where a report's figures were computed: the commit and time a cached cross-fitting ran at."""

from __future__ import annotations

import re
import subprocess

import pytest

from stream.core.settings import PROJECT_ROOT
from stream.evaluation.reporting import provenance, source_commit


def test_provenance_names_this_checkouts_commit_and_the_utc_time() -> None:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert source_commit() == head.stdout.strip()
    said = provenance()
    assert said.startswith(head.stdout.strip())
    assert re.search(r", \d{4}-\d\d-\d\d \d\d:\d\d UTC$", said)


def test_a_cross_fitting_pickled_before_provenance_reads_as_unrecorded() -> None:
    import pickle

    from models.training.compromise import CrossFit

    fit = CrossFit(["1001"], {}, [], {})
    state = pickle.loads(pickle.dumps(fit))
    del state.__dict__["made_at"]  # as a cross-fitting cached by an older commit
    assert state.made_at == ""
