"""Audit the installed dependencies with pip-audit and say plainly how much was audited.

A dependency pip-audit could not look up (a package index without the vulnerability API, no network) is
not a pass. ``tests/unit/test_dependency_audit.py`` runs this audit: it fails on any known vulnerability
and is reported as *skipped*, with the counts, when any dependency could not be audited, so CI's test
summary shows an audit that did not happen. Run alone (``python infra/ci/audit.py``) it prints the same
line and exits 0 (all audited, none vulnerable), 1 (a vulnerability) or 3 (not all audited).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

NOT_ALL_AUDITED = 3


@dataclass(frozen=True)
class AuditResult:
    """What pip-audit looked up: the dependencies it audited, those it could not, the vulnerabilities."""

    audited: int
    total: int
    not_looked_up: list[str] = field(default_factory=list)  # "name version: why"
    vulnerabilities: list[str] = field(default_factory=list)  # "name version: id (fixed in ...)"
    error: str | None = None  # pip-audit gave no report at all

    @property
    def complete(self) -> bool:
        return self.error is None and self.audited == self.total > 0

    def summary(self) -> str:
        if self.error is not None:
            return f"audit: NOT DONE: pip-audit gave no report ({self.error})"
        line = (f"audit: {self.audited} of {self.total} dependencies audited, "
                f"{len(self.vulnerabilities)} vulnerable")
        if self.not_looked_up:
            line += f"; NOT AUDITED: {len(self.not_looked_up)} (e.g. {self.not_looked_up[0]})"
        return line


def run_audit() -> AuditResult:
    run = subprocess.run([sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"],
                         capture_output=True, text=True)
    try:
        report = json.loads(run.stdout)
    except ValueError:
        return AuditResult(0, 0, error=f"exit {run.returncode}: {run.stderr.strip()[-300:]}")
    deps = report.get("dependencies", [])
    skipped = [f"{d['name']} {d.get('version', '?')}: {d['skip_reason']}" for d in deps if "skip_reason" in d]
    vulns = [f"{d['name']} {d['version']}: {v['id']} (fixed in: {', '.join(v.get('fix_versions') or []) or 'no fix yet'})"
             for d in deps if "skip_reason" not in d for v in d.get("vulns", [])]
    return AuditResult(len(deps) - len(skipped), len(deps), skipped, vulns)


def main() -> int:
    result = run_audit()
    for vuln in result.vulnerabilities:
        print(f"audit: {vuln}")
    print(result.summary())
    if result.vulnerabilities:
        return 1
    return 0 if result.complete else NOT_ALL_AUDITED


if __name__ == "__main__":
    sys.exit(main())
