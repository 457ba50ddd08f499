"""HTTP to the runtime pods: one aiohttp connection pool per pod, failures told apart.

The operator sends every dispatch and every long poll of the fleet from one event
loop on one core, so the client's own CPU per request is dispatch latency. aiohttp
(already kopf's client) costs ~0.13 ms of CPU a request where httpx over httpcore
costs ~1.2 ms (measured on the benchmark machine: ``docs/benchmarks.md``).

What a caller needs from a failure is whether the pod can have acted on the
request: ``PodUnreachableError`` when nothing reached it (refused, no route, the
connect timed out), ``NoAnswerError`` when the request went out and no answer came
back (timed out reading, the connection dropped). An answer of any status is an
``Answer``; reading its meaning is ``runtime_client``'s job.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp


class RuntimeCallError(Exception):
    """Base of what a runtime call can raise."""


class PodUnreachableError(RuntimeCallError):
    """No answer, or not an answer of the runtime API."""


class NoAnswerError(PodUnreachableError):
    """The request went out but no answer came back: the pod may have acted on it."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: Mapping[str, str]
    """Case-insensitive, as HTTP's."""
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Transport(Protocol):
    """What ``RuntimeClient`` sends through; tests give a scripted one."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        pool: str,
        content: str | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Answer: ...

    async def aclose(self) -> None: ...


# Failures before any byte of the request reached the pod. ClientConnectorError is a
# refused or unroutable connect; ConnectionTimeoutError is a connect that timed out.
_NOT_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
)


class AiohttpTransport:
    """A pool per pod: the fleet's long polls never share (or scan) one pool. Pools of
    pods not used for a while are closed (at most ``pools`` are kept)."""

    def __init__(self, *, connect_timeout: float, pools: int = 512) -> None:
        self._connect_timeout = connect_timeout
        self._sessions: collections.OrderedDict[str, aiohttp.ClientSession] = (
            collections.OrderedDict()
        )
        self._max = pools
        self._closing: set[asyncio.Task[None]] = set()

    def _session(self, pool: str) -> aiohttp.ClientSession:
        session = self._sessions.get(pool)
        if session is not None:
            self._sessions.move_to_end(pool)
            return session
        session = self._sessions[pool] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, limit_per_host=0, keepalive_timeout=30),
            # Answers are JSON read whole; no cookies, no proxies from the environment.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
        while len(self._sessions) > self._max:  # the least recently used pod's
            _, old = self._sessions.popitem(last=False)
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return session

    async def request(
        self,
        method: str,
        url: str,
        *,
        pool: str,
        content: str | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Answer:
        limits = aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(timeout, self._connect_timeout)
        )
        try:
            async with self._session(pool).request(
                method,
                url,
                data=content,
                headers=dict(headers),
                timeout=limits,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return Answer(response.status, response.headers, body)
        except _NOT_SENT as exc:
            raise PodUnreachableError(f"{method} {url}: {exc!r}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NoAnswerError(f"{method} {url}: {exc!r}") from exc

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), collections.OrderedDict()
        await asyncio.gather(*(s.close() for s in sessions), *self._closing)
