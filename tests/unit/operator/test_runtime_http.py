"""The operator's HTTP transport to runtime pods, against real sockets on loopback.

What a dispatch decides from a failure is whether the pod can have taken the job:
nothing sent (the connection was refused) is ``PodUnreachableError`` alone; a
request that went out and got no answer (dropped, or too slow) is ``NoAnswerError``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
from aiohttp import web

from avatar_operator.runtime_http import AiohttpTransport, NoAnswerError, PodUnreachableError

T = TypeVar("T")


def run(action: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(action())  # type: ignore[arg-type]


@asynccontextmanager
async def serving(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_answer_comes_back_whole_with_its_headers_and_the_request_as_sent() -> None:
    seen: list[tuple[str, str, str | None, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(
            (
                request.method,
                request.path_qs,
                request.headers.get("Authorization"),
                await request.read(),
            )
        )
        return web.json_response({"id": "uid-1"}, status=202, headers={"Retry-After": "3"})

    async def go() -> None:
        async with serving(handler) as base:
            transport = AiohttpTransport(connect_timeout=2)
            try:
                answer = await transport.request(
                    "POST",
                    f"{base}/v1/jobs?x=1",
                    pool=base,
                    content='{"id": "uid-1"}',
                    headers={"Authorization": "Bearer t0k", "Content-Type": "application/json"},
                    timeout=2,
                )
            finally:
                await transport.aclose()
        assert answer.status_code == 202
        assert answer.headers["retry-after"] == "3"  # case-insensitive, as HTTP's
        assert answer.text == '{"id": "uid-1"}'

    run(go)
    assert seen == [("POST", "/v1/jobs?x=1", "Bearer t0k", b'{"id": "uid-1"}')]


def test_a_refused_connection_is_unreachable_and_nothing_was_sent() -> None:
    async def go() -> None:
        transport = AiohttpTransport(connect_timeout=2)
        try:
            with pytest.raises(PodUnreachableError) as caught:
                await transport.request(
                    "POST", f"http://127.0.0.1:{free_port()}/v1/jobs", pool="p",
                    content="{}", headers={}, timeout=2,
                )  # fmt: skip
        finally:
            await transport.aclose()
        assert not isinstance(caught.value, NoAnswerError)

    run(go)


def test_a_request_the_pod_read_and_dropped_is_no_answer() -> None:
    """The pod may have taken the job before the connection went: not 'unreachable'."""
    got: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        got.append(await request.read())
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(1)
        return web.Response()

    async def go() -> None:
        async with serving(handler) as base:
            transport = AiohttpTransport(connect_timeout=2)
            try:
                with pytest.raises(NoAnswerError):
                    await transport.request(
                        "POST", f"{base}/v1/jobs", pool=base, content="{}", headers={}, timeout=5
                    )
            finally:
                await transport.aclose()

    run(go)
    assert got == [b"{}"]


def test_a_pod_that_does_not_answer_in_time_is_no_answer_after_the_timeout() -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    async def go() -> float:
        async with serving(handler) as base:
            transport = AiohttpTransport(connect_timeout=2)
            start = time.monotonic()
            try:
                with pytest.raises(NoAnswerError):
                    await transport.request(
                        "GET", f"{base}/v1/jobs/a", pool=base, content=None, headers={},
                        timeout=0.3,
                    )  # fmt: skip
            finally:
                await transport.aclose()
            return time.monotonic() - start

    assert 0.25 < run(go) < 2.0


def test_each_pod_has_its_own_pool_and_the_least_recently_used_is_closed() -> None:
    peers: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername")[1])
        return web.Response(text="ok")

    async def go() -> None:
        async with serving(handler) as base:
            transport = AiohttpTransport(connect_timeout=2, pools=2)
            try:
                for pool in ("a", "a", "b", "c", "a"):
                    answer = await transport.request(
                        "GET", f"{base}/", pool=pool, content=None, headers={}, timeout=2
                    )
                    assert answer.text == "ok"
            finally:
                await transport.aclose()

    run(go)
    # "a" reused its connection once; "b" and "c" had their own; "a" was closed when "c"
    # came (two pools at most) and opened a new connection.
    assert peers[0] == peers[1]
    assert len({peers[0], peers[2], peers[3], peers[4]}) == 4
