"""API errors as the API server reports them: ``Status`` objects with stable reasons.

kubectl and kopf read ``code``, ``reason`` and ``message``; a Python traceback
in an answer is never right. :class:`PatchError` is the one raised by code that
knows no ``Status`` (``patching``, ``strategic_merge``): the routes answer it as one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final


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


def unknown_format(accepted: Iterable[str]) -> str:
    """kube-apiserver's words for a body it has no decoder for (415, from any route)."""
    return "the body of the request was in an unknown format - accepted media types include: " + (
        ", ".join(accepted)
    )


def unsupported_media_type(accepted: Iterable[str], *, why: str = "") -> ApiError:
    """415: the body's Content-Type is one the route cannot read; ``why`` adds the dev
    cluster's own reason where it reads the type but not this body (some protobuf)."""
    message = unknown_format(accepted) + (f" ({why})" if why else "")
    return ApiError(415, "UnsupportedMediaType", message)


def not_acceptable(offered: Iterable[str]) -> ApiError:
    """406: the Accept header names no media type the route can answer in."""
    return ApiError(
        406,
        "NotAcceptable",
        "only the following media types are accepted: " + ", ".join(offered),
    )


_PATCH_REASONS: Final = {
    400: "BadRequest",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
}


class PatchError(Exception):
    """A patch the API server refuses.

    ``status`` is the HTTP status: 400 for a body that is not a patch of its type, 413 for
    a JSON patch over the operation limit, 415 for a patch type the resource does not
    accept, 422 for a patch that cannot be applied to the object (a failed JSON patch
    ``test``, a missing path) or whose result is not an object.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def reason(self) -> str:
        """The ``metav1.Status`` reason that goes with the status code."""
        return _PATCH_REASONS.get(self.status, "BadRequest")
