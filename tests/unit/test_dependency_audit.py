"""The installed dependencies against the known vulnerabilities (pip-audit, infra/ci/audit.py).

An audit that could not look a dependency up is a skip with its counts, never a pass: CI's summary
shows "SKIPPED ... NOT AUDITED: 146" where the package index has no vulnerability API.
"""

from __future__ import annotations

import pytest

from infra.ci.audit import AuditResult, run_audit


def test_no_installed_dependency_has_a_known_vulnerability() -> None:
    result = run_audit()
    assert not result.vulnerabilities, "\n".join(result.vulnerabilities)
    if not result.complete:
        pytest.skip(result.summary())


def test_an_audit_that_looked_nothing_up_is_not_complete() -> None:
    """The rule the skip above rests on: nothing audited, part audited or no report is never complete."""
    assert not AuditResult(0, 146, ["aiokafka 0.14.0: not found"]).complete
    assert not AuditResult(100, 146, ["x 1: not found"] * 46).complete
    assert not AuditResult(0, 0, error="no network").complete
    assert AuditResult(146, 146).complete
    assert "NOT AUDITED: 46" in AuditResult(100, 146, ["x 1: not found"] * 46).summary()
