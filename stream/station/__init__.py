"""Nurse-station dashboard: live ward, bed traces, alerts with acknowledge/escalate/resolve."""
