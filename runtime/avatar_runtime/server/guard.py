"""Limits before work: the pure ASGI middleware every request passes first.

A client must not cost the pod memory or a thread before it has shown that it
may. So the job API's bearer token is checked from the headers, before a byte
of the body is read; a declared body over the limit is refused at once, an
undeclared (chunked) one as soon as it passes the limit; and the whole body must
arrive within a time limit. A body that passes is read here in full (a few
hundred KB at most) and handed on, so the app never sees half of one. Every
refusal is a typed ``ErrorBody``, and closes the connection when a body was
left unread, so the rest of it is never taken in.

This is also the one place where an exception nothing else handled becomes an
answer: logged with the job id and the traceback, answered 500 ``InternalError``
(retriable), never a bare "Internal Server Error" page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Iterator

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avatar_runtime import logs
from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.schemas import ErrorBody, ErrorInfo
from avatar_runtime.metrics import RuntimeMetrics
from avatar_runtime.settings import ServerSettings

log = logging.getLogger(__name__)

_JOB_ID = "job_id"  # under scope["state"]: the job id of a route that reads it from the body


def note_job_id(scope: Scope, job_id: str) -> None:
    """Name the request's job, so an unexpected error is logged with its id (a route with
    the id in its path, ``{job_id}``, need not)."""
    scope.setdefault("state", {})[_JOB_ID] = job_id


def error_body(error: JobError) -> bytes:
    return ErrorBody(error=ErrorInfo(**error.to_dict())).model_dump_json().encode()


class _RefusedError(Exception):
    """An answer given instead of the app's: status, typed error, metric reason."""

    def __init__(
        self, status: int, error: JobError, *, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = headers or {}


class RequestGuard:
    """Auth, body size and body time, then the app; any unexpected exception, typed."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        settings: ServerSettings,
        metrics: RuntimeMetrics,
    ) -> None:
        self.app = app
        self._token = token.encode() if token is not None else None
        self._max_body = settings.max_body_bytes
        self._body_timeout = settings.body_timeout_seconds
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope["headers"]}
        declared = _content_length(headers)
        has_body = b"transfer-encoding" in headers or bool(declared)
        try:
            self._check_token(scope, headers)
            if declared is not None and declared > self._max_body:
                raise self._too_large(f"declares {declared} bytes")
            if has_body:
                body = await self._read_body(receive)
                if body is None:
                    return  # the client went away: nobody to answer
                receive = _replay(body, receive)
        except _RefusedError as refusal:
            self._metrics.requests_refused.labels(refusal.reason).inc()
            await _answer(
                send,
                status=refusal.status,
                error=refusal.error,
                headers=refusal.headers,
                close=has_body,
            )
            return
        await self._serve(scope, receive, send)

    def _check_token(self, scope: Scope, headers: dict[bytes, bytes]) -> None:
        path: str = scope["path"]
        if self._token is None or not (path == "/v1" or path.startswith("/v1/")):
            return
        scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            raise _RefusedError(
                401,
                JobError(ErrorCode.UNAUTHORIZED, "A valid bearer token is required."),
                reason="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def _too_large(self, what: str) -> _RefusedError:
        message = f"The request body {what}; this pod takes at most {self._max_body} bytes."
        return _RefusedError(
            413, JobError(ErrorCode.REQUEST_TOO_LARGE, message), reason="body_too_large"
        )

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, counted as it comes; None if the client disconnected."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > self._max_body:
                        raise self._too_large(f"passed {self._max_body} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            message_text = (
                f"The request body did not arrive within {self._body_timeout:g} s"
                f" ({size} bytes came)."
            )
            error = JobError(ErrorCode.INVALID_REQUEST, message_text, retriable=True)
            raise _RefusedError(408, error, reason="body_timeout") from None

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            self._metrics.internal_errors.inc()
            job_id = _job_id(scope)
            with _job_logging(job_id):
                log.exception(
                    "unexpected %s answering %s %s",
                    type(exc).__name__,
                    scope["method"],
                    scope["path"],
                    extra={"method": scope["method"], "path": scope["path"]},
                )
            if started:  # too late for an answer; uvicorn closes the connection
                return
            about = f" (job {job_id})" if job_id else ""
            message = (
                f"Unexpected {type(exc).__name__} on the runtime pod{about}; its log has the"
                " traceback."
            )
            await _answer(send, status=500, error=JobError(ErrorCode.INTERNAL, message))


def _content_length(headers: dict[bytes, bytes]) -> int | None:
    value = headers.get(b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:  # h11 refuses these before they get here; count the body instead
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the connection's own messages (its disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def _job_id(scope: Scope) -> str | None:
    job_id = scope.get("path_params", {}).get("job_id") or scope.get("state", {}).get(_JOB_ID)
    return str(job_id) if job_id else None


@contextlib.contextmanager
def _job_logging(job_id: str | None) -> Iterator[None]:
    if job_id is None:
        yield
        return
    with logs.job_context(job_id):
        yield


async def _answer(
    send: Send,
    *,
    status: int,
    error: JobError,
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> None:
    body = error_body(error)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items()),
    ]
    if close:  # a body was left unread: never take the rest of it in
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
