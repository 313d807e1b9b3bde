"""The error type for problems an operator can fix (settings, ports, files, the broker)."""

from __future__ import annotations


class SetupError(Exception):
    """A misconfiguration or environment problem, with the fix to apply.

    The CLI prints it as a single line (``error: <problem>; fix: <fix>``)
    instead of a traceback: the person reading it is setting up a ward
    monitor, not debugging Python.
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}; fix: {self.fix}"
