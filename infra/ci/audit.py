"""Audit the installed dependencies with pip-audit and say plainly how much was audited.

Fails (exit 1) on any known vulnerability. A dependency pip-audit could not look up (a
package index without the vulnerability API, no network) is not a pass: the script prints
how many were audited and how many were not, so a green CI never hides an audit that did
not happen. ``--require`` makes "nothing could be audited" a failure too (for CI that has
the PyPI vulnerability API).
"""

from __future__ import annotations

import json
import subprocess
import sys


def main() -> int:
    require = "--require" in sys.argv[1:]
    run = subprocess.run([sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"],
                         capture_output=True, text=True)
    try:
        report = json.loads(run.stdout)
    except ValueError:
        print(f"audit: pip-audit gave no report (exit {run.returncode}): {run.stderr.strip()[-500:]}")
        return 1 if require else 0
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if "skip_reason" in d]
    audited = [d for d in deps if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixed})")
    print(f"audit: {len(audited)} of {len(deps)} dependencies audited, {len(vulnerable)} vulnerable; "
          f"{len(skipped)} could not be looked up" + (f" (e.g. {skipped[0]['skip_reason']})" if skipped else ""))
    if vulnerable:
        return 1
    if require and not audited:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
