"""The operator's most frequent Kubernetes writes over aiohttp, on the event loop.

Every video costs the operator about five API writes (its status two or three times,
its Events), and they are the bulk of its Kubernetes calls at fleet scale. Through the
official client each one is a thread hand-off there and back plus the client's own
(de)serialisation: ~0.6 ms of CPU a call against ~0.2 ms here (measured on the
benchmark machine, ``docs/benchmarks.md``), all of it contending for the event loop's
core. The rest of ``kube`` (pools, Deployments, reads) stays on the official client.

The connection is the official client's: the same ``Configuration`` (host, bearer token
with its refresh hook, CA, client certificate), so whatever ``load_config`` found
works here too. Failures are the official client's ``ApiException`` with the API
server's status and body, so callers read them as before.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import aiohttp
import kubernetes
from kubernetes.client.exceptions import ApiException

_USER_AGENT = "avatar-operator"


def _ssl_context(config: kubernetes.client.Configuration) -> ssl.SSLContext | bool:
    if not str(config.host).startswith("https"):
        return False
    if not config.verify_ssl:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=config.ssl_ca_cert or None)
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file or None)
    return context


class KubeHttp:
    """One connection pool of ``limit`` connections: a lane of its own, as the official
    client's thread pools were (the urgent writes never queue behind the bulk). Writes
    beyond the limit wait before their request is built: a burst's 10,000 queued Events
    held as aiohttp requests waiting for a connection doubled the operator's memory (and
    the garbage collector's pauses with it)."""

    def __init__(
        self, config: kubernetes.client.Configuration, *, limit: int, timeout: float = 30.0
    ) -> None:
        self._config = config
        self._limit = limit
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = _ssl_context(config)
        self._session: aiohttp.ClientSession | None = None
        self._turns = asyncio.Semaphore(limit)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl),
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {
            "Content-Type": content_type,
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        token = self._config.auth_settings().get("BearerToken")  # refreshes an expiring token
        if token and token.get("value"):
            headers["Authorization"] = str(token["value"])
        return headers

    async def send(self, method: str, path: str, body: Any, *, content_type: str) -> Any:
        """The API server's answer as JSON; ``ApiException`` for an error status."""
        async with self._turns:
            return await self._send(method, path, body, content_type=content_type)

    async def _send(self, method: str, path: str, body: Any, *, content_type: str) -> Any:
        async with self._http().request(
            method,
            f"{self._config.host}{path}",
            data=json.dumps(body),
            headers=self._headers(content_type),
            proxy=self._config.proxy or None,
            allow_redirects=False,
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise ApiException(status=response.status, reason=response.reason, body=text)
            return json.loads(text) if text else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
