"""FHIR R4 ``DetectedIssue`` for an alert: the clinical finding and its evidence, for hospital systems."""

from __future__ import annotations

import time
from typing import Any

_SEVERITY_FHIR = {"advisory": "low", "urgent": "moderate", "emergency": "high"}


def detected_issue(alert: dict[str, Any]) -> dict[str, Any]:
    """FHIR R4 DetectedIssue for an alert (the clinical finding and its evidence)."""
    evidence = alert.get("evidence", {})
    return {
        "resourceType": "DetectedIssue",
        "id": alert["id"],
        "status": "final" if alert["status"] == "resolved" else "preliminary",
        "severity": _SEVERITY_FHIR.get(alert["severity_name"], "low"),
        "code": {"coding": [{"system": "https://ctgwatch.example.org/alert-kind", "code": alert["kind"]}],
                 "text": alert["kind"].replace("_", " ")},
        "patient": {"identifier": {"value": alert["patient_id"]}},
        "identifiedDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(alert["raised_at"])),
        "detail": alert["sentence"],
        "reference": alert.get("rule"),
        "evidence": [{"detail": [{"display": f"{f['rule']}: {f['sentence']}"}]}
                     for f in evidence.get("findings", [])],
        "mitigation": [
            {"action": {"text": event}, "author": {"display": who}}
            for event, who in (("acknowledged", alert.get("ack_by")), ("resolved", alert.get("resolved_by"))) if who
        ],
    }
