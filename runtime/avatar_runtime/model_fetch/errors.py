"""The ways filling a model volume fails, each with a message that says what to do.

A Job's log is read by someone who did not write this code: every failure is a
``FetchError`` of a known ``Problem``, printed as one line, never a traceback.
"""

from __future__ import annotations

import enum


class Problem(enum.Enum):
    """Why a fetch stopped; ``retriable`` problems may pass on the next attempt."""

    UNREACHABLE = "unreachable"
    SERVER_ERROR = "server-error"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    NOT_AUTHORISED = "not-authorised"
    NOT_FOUND = "not-found"
    DISK_FULL = "disk-full"
    BAD_OPTION = "bad-option"
    VOLUME_INCOMPLETE = "volume-incomplete"

    @property
    def retriable(self) -> bool:
        return self in (Problem.UNREACHABLE, Problem.SERVER_ERROR, Problem.CHECKSUM_MISMATCH)


class FetchError(Exception):
    """A failure to fill the volume, naming the file or source it concerns."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message

    def __str__(self) -> str:
        return f"{self.problem.value}: {self.message}"
