"""Alerts: the open list, one alert, its audit trail and FHIR form, and the three clinical actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException

from stream.state.alerts import AlertError, AlertRecord, AuditEntry
from stream.station import views
from stream.station.deps import ActingUserDep, AlertsDep, SignedInUser, UserDep
from stream.station.fhir import detected_issue
from stream.station.schemas import ActionBody, Alert

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


async def _found(alerts: AlertsDep, alert_id: str) -> AlertRecord:
    found = await alerts.get(alert_id)
    if found is None:
        raise HTTPException(404, "no such alert")
    return found


@router.get("", response_model=list[Alert])
async def open_alerts(user: UserDep, alerts: AlertsDep) -> list[Alert]:
    return [views.with_priority(a) for a in await alerts.open_alerts()]


@router.get("/{alert_id}", response_model=Alert)
async def alert(alert_id: str, user: UserDep, alerts: AlertsDep) -> Alert:
    return views.with_priority(await _found(alerts, alert_id))


@router.get("/{alert_id}/audit", response_model=list[AuditEntry])
async def alert_audit(alert_id: str, user: UserDep, alerts: AlertsDep) -> list[AuditEntry]:
    return await alerts.audit_trail(alert_id)


@router.get("/{alert_id}/fhir")
async def alert_fhir(alert_id: str, user: UserDep, alerts: AlertsDep) -> dict[str, Any]:
    """The alert as a FHIR R4 ``DetectedIssue``."""
    return detected_issue((await _found(alerts, alert_id)).model_dump())


async def _act(action: str, change: Callable[[str, str, str], Awaitable[AlertRecord]], alert_id: str,
               body: ActionBody, user: SignedInUser) -> Alert:
    """One clinical action by a user whose role allows it; a wrong state answers 409 with the reason."""
    user.require(action)
    try:
        return views.with_priority(await change(alert_id, user.name, body.reason))
    except AlertError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post("/{alert_id}/acknowledge", response_model=Alert)
async def acknowledge(alert_id: str, body: ActionBody, user: ActingUserDep, alerts: AlertsDep) -> Alert:
    return await _act("acknowledge", alerts.acknowledge, alert_id, body, user)


@router.post("/{alert_id}/escalate", response_model=Alert)
async def escalate(alert_id: str, body: ActionBody, user: ActingUserDep, alerts: AlertsDep) -> Alert:
    return await _act("escalate", alerts.escalate, alert_id, body, user)


@router.post("/{alert_id}/resolve", response_model=Alert)
async def resolve(alert_id: str, body: ActionBody, user: ActingUserDep, alerts: AlertsDep) -> Alert:
    """Resolve with a reason (required: the alert store refuses an empty one)."""
    return await _act("resolve", alerts.resolve, alert_id, body, user)
