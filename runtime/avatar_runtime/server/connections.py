"""uvicorn's h11 connection, with the timeout it lacks and a typed answer to bad HTTP.

uvicorn closes a kept-alive connection that stays idle, but it has no clock for a
request's line and headers: a client that connects and sends nothing, or a few
bytes of a request and then nothing, holds its connection (and a slot of
``limit_concurrency``) forever. Here the clock starts when the connection opens,
and again at the first byte of each later request, and the connection is closed
if the headers are not complete when it runs out. The body's own time limit is
the request guard's (``server.guard``), which sees the request once its headers
have arrived.

What h11 cannot parse (headers over ``h11_max_incomplete_event_size``, a bad
``Content-Length``, no HTTP at all) never reaches the app; uvicorn answers it
with a plain-text 400, which here is an ``ErrorBody`` like every other answer.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.server.guard import error_body


class _HeaderTimeoutProtocol(H11Protocol):
    header_timeout_seconds = 10.0

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        """The clock runs while the client owes a request's headers, and only then.

        ``IDLE`` is h11's state for "no complete request yet". Between requests of a
        kept-alive connection uvicorn's keep-alive timer covers the silence; the first
        byte of the next request stops that timer, and this one takes over.
        """
        owing = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if not owing:
            self._stop_header_timer()
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.header_timeout_seconds, self._headers_too_late
            )

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def send_400_response(self, msg: str) -> None:
        body = error_body(JobError(ErrorCode.INVALID_REQUEST, f"Not an HTTP/1.1 request: {msg}"))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _headers_too_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.debug("closing a connection whose request headers did not arrive in time")
            self.transport.close()


def h11_protocol(*, header_timeout_seconds: float) -> type[H11Protocol]:
    """The protocol class to give uvicorn (``Config(http=...)``), with this header timeout."""
    return type(
        "HeaderTimeoutH11Protocol",
        (_HeaderTimeoutProtocol,),
        {"header_timeout_seconds": header_timeout_seconds},
    )
