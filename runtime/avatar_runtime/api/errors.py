"""Typed job errors with stable codes: the one list a user scripts against.

The operator copies ``code``, ``message`` and ``retriable`` into the AvatarVideo
status, so every code a user can find in ``status.error.code`` is here, the
runtime's and the operator's own alike, and a code never changes meaning once
released. Add new codes; never rename one.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    """Stable error codes. Input errors are the user's to fix; the rest may pass."""

    # Portrait
    IMAGE_UNREADABLE = "ImageUnreadable"
    IMAGE_TOO_LARGE = "ImageTooLarge"
    FACE_NOT_FOUND = "FaceNotFound"
    FACE_TOO_SMALL = "FaceTooSmall"  # found, but too few pixels to animate
    SEVERAL_FACES = "SeveralFaces"  # more than one face large enough to be the speaker
    # Speech
    TEXT_EMPTY = "TextEmpty"
    TEXT_TOO_LONG = "TextTooLong"
    TEXT_INVALID = "TextInvalid"  # a lone UTF-16 surrogate or a non-character: broken text
    AUDIO_UNREADABLE = "AudioUnreadable"
    AUDIO_TOO_LONG = "AudioTooLong"
    AUDIO_SILENT = "AudioSilent"
    LANGUAGE_UNSUPPORTED = "LanguageUnsupported"
    # Voice to clone
    VOICE_UNREADABLE = "VoiceUnreadable"
    VOICE_TOO_SHORT = "VoiceTooShort"  # too little speech in it to clone from
    VOICE_TOO_LONG = "VoiceTooLong"
    VOICE_SILENT = "VoiceSilent"
    VOICE_UNKNOWN = "VoiceUnknown"  # a named voice the engine does not have
    INVALID_OPTION = "InvalidOption"
    # Fetching inputs
    INPUT_NOT_FOUND = "InputNotFound"
    URL_INVALID = "UrlInvalid"  # an input or output URL that cannot be parsed or used as one
    URL_SCHEME_NOT_ALLOWED = "UrlSchemeNotAllowed"
    URL_TARGET_FORBIDDEN = "UrlTargetForbidden"
    DOWNLOAD_TOO_LARGE = "DownloadTooLarge"
    DOWNLOAD_FAILED = "DownloadFailed"
    # Quality gate
    INTELLIGIBILITY_LOW = "IntelligibilityLow"
    # Outputs and the process itself
    OUTPUT_WRITE_FAILED = "OutputWriteFailed"
    CANCELLED = "Cancelled"
    INTERRUPTED = "Interrupted"
    MODEL_UNAVAILABLE = "ModelUnavailable"
    ENGINE_UNAVAILABLE = "EngineUnavailable"  # asked for an engine this pod does not run
    # The runtime's HTTP API
    INVALID_REQUEST = "InvalidRequest"
    UNAUTHORIZED = "Unauthorized"
    JOB_NOT_FOUND = "JobNotFound"
    JOB_CONFLICT = "JobConflict"
    POD_FULL = "PodFull"
    NOT_ACCEPTING = "NotAccepting"
    REQUEST_TOO_LARGE = "RequestTooLarge"  # a body over the pod's limit, refused before reading
    TOO_MANY_LONG_POLLS = "TooManyLongPolls"  # every long-poll place of the pod is taken
    INTERNAL = "InternalError"
    # Set by the operator, never by a runtime pod
    DEADLINE_EXCEEDED = "DeadlineExceeded"  # not finished within the spec's deadlineSeconds
    RUNTIME_LOST = "RuntimeLost"  # the pod died, was deleted, or forgot the job
    DISPATCH_FAILED = "DispatchFailed"  # the pod answered the job's submission with an error


# Failures that may pass on their own: worth another attempt (possibly on another pod).
_RETRIABLE = frozenset(
    {
        ErrorCode.DOWNLOAD_FAILED,
        ErrorCode.OUTPUT_WRITE_FAILED,
        ErrorCode.INTERRUPTED,
        ErrorCode.POD_FULL,
        ErrorCode.NOT_ACCEPTING,
        ErrorCode.TOO_MANY_LONG_POLLS,
        ErrorCode.MODEL_UNAVAILABLE,
        ErrorCode.INTERNAL,
    }
)


class JobError(Exception):
    """A job failure a user can act on: stable code, human message, retriable flag."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retriable: bool | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retriable = code in _RETRIABLE if retriable is None else retriable
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": str(self.code),
            "message": self.message,
            "retriable": self.retriable,
        }
        if self.field is not None:
            out["field"] = self.field
        return out

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
