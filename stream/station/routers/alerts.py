"""Alerts: the open list, one alert, its audit trail and FHIR form, and the three clinical actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from stream.state.alerts import AlertError
from stream.station.deps import ActingUserDep, AlertsDep, UserDep
from stream.station.fhir import detected_issue
from stream.station.schemas import ActionBody, Alert, AuditEntry

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


async def _found(alerts: AlertsDep, alert_id: str) -> dict[str, Any]:
    found = await alerts.get(alert_id)
    if found is None:
        raise HTTPException(404, "no such alert")
    return found


@router.get("", response_model=list[Alert])
async def open_alerts(user: UserDep, alerts: AlertsDep) -> list[dict[str, Any]]:
    return await alerts.open_alerts()


@router.get("/{alert_id}", response_model=Alert)
async def alert(alert_id: str, user: UserDep, alerts: AlertsDep) -> dict[str, Any]:
    return await _found(alerts, alert_id)


@router.get("/{alert_id}/audit", response_model=list[AuditEntry])
async def alert_audit(alert_id: str, user: UserDep, alerts: AlertsDep) -> list[dict[str, Any]]:
    return await alerts.audit_trail(alert_id)


@router.get("/{alert_id}/fhir")
async def alert_fhir(alert_id: str, user: UserDep, alerts: AlertsDep) -> dict[str, Any]:
    """The alert as a FHIR R4 ``DetectedIssue``."""
    return detected_issue(await _found(alerts, alert_id))


@router.post("/{alert_id}/acknowledge", response_model=Alert)
async def acknowledge(alert_id: str, body: ActionBody, user: ActingUserDep, alerts: AlertsDep) -> dict[str, Any]:
    user.require("acknowledge")
    try:
        return await alerts.acknowledge(alert_id, user.name, body.reason)
    except AlertError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post("/{alert_id}/escalate", response_model=Alert)
async def escalate(alert_id: str, body: ActionBody, user: ActingUserDep, alerts: AlertsDep) -> dict[str, Any]:
    user.require("escalate")
    try:
        return await alerts.escalate(alert_id, user.name, body.reason)
    except AlertError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post("/{alert_id}/resolve", response_model=Alert)
async def resolve(alert_id: str, body: ActionBody, user: ActingUserDep, alerts: AlertsDep) -> dict[str, Any]:
    user.require("resolve")
    try:
        return await alerts.resolve(alert_id, user.name, body.reason)
    except AlertError as exc:
        raise HTTPException(409, str(exc)) from exc
