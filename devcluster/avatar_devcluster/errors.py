"""API errors as the API server reports them: ``Status`` objects with stable reasons.

kubectl and kopf read ``code``, ``reason`` and ``message``; a Python traceback
in an answer is never right.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _about(code: int, reason: str, resource: str, name: str, group: str, text: str) -> ApiError:
    """An error about one object; ``text`` has ``{what}`` for its qualified name."""
    what = f'{resource}.{group} "{name}"' if group else f'{resource} "{name}"'
    return ApiError(
        code,
        reason,
        text.format(what=what),
        details={"name": name, "group": group, "kind": resource},
    )


def not_found(resource: str, name: str, *, group: str = "") -> ApiError:
    return _about(404, "NotFound", resource, name, group, "{what} not found")


def already_exists(resource: str, name: str, *, group: str = "") -> ApiError:
    return _about(409, "AlreadyExists", resource, name, group, "{what} already exists")


def conflict(resource: str, name: str, *, group: str = "") -> ApiError:
    return _about(
        409,
        "Conflict",
        resource,
        name,
        group,
        "Operation cannot be fulfilled on {what}: the object has been modified; please apply"
        " your changes to the latest version and try again",
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
