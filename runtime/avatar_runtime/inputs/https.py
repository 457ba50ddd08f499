"""Fetch an input over https (or http, where an operator allowed it) without opening the cluster.

The runtime pod can reach what users must not: the GKE metadata server
(169.254.169.254), cluster services, localhost. A URL that looked public when the
job was admitted can still lead there, through DNS or a redirect. So this fetcher
resolves the host once, refuses it if any address is not public, connects to
exactly the address that was checked (no second lookup, so DNS rebinding cannot
swap it) while checking the certificate against the host name, re-checks every
redirect hop, and stops reading as soon as the size limit is passed.

Every failure becomes a ``JobError`` whose reason and retriable flag say whether
trying again can help (a timeout can; a bad certificate or a 403 cannot).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

import certifi
import urllib3
from urllib3.exceptions import (
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util.ssl_match_hostname import CertificateError

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs import urls
from avatar_runtime.settings import FetchSettings

_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "avatar-runtime/0.1 (input fetcher)"


def read(source: urls.Source, *, url: urls.Url, settings: FetchSettings, max_bytes: int) -> bytes:
    """Return the body ``url`` leads to, following checked redirects, at most ``max_bytes``.

    ``url`` is ``source.url`` as ``urls.checked`` parsed it (its scheme allowed).

    Raises ``JobError`` with URL_SCHEME_NOT_ALLOWED, URL_TARGET_FORBIDDEN,
    INPUT_NOT_FOUND, DOWNLOAD_TOO_LARGE or DOWNLOAD_FAILED (INTERNAL when the
    configured CA bundle cannot be loaded).
    """
    return _Download(source=source, settings=settings, max_bytes=max_bytes).run(url)


@dataclass(frozen=True, kw_only=True)
class _Download:
    """One download: carries what every hop and error message needs."""

    source: urls.Source
    settings: FetchSettings
    max_bytes: int

    def run(self, start: urls.Url) -> bytes:
        url = start
        for hop in range(self.settings.max_redirects + 1):
            response = self.request(url)
            try:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise self.source.error(
                            ErrorCode.DOWNLOAD_FAILED,
                            f"HTTP {response.status} redirect without a Location",
                            url=url.text,
                            retriable=False,
                        ) from None
                    if hop == self.settings.max_redirects:
                        break
                    url = self.redirect(url, location)
                    continue
                self.check_status(response.status, url=url.text)
                return self.read_body(response, url=url.text)
            finally:
                response.close()  # never drain: the rest of the body may be huge
                response.release_conn()
        raise self.source.error(
            ErrorCode.DOWNLOAD_FAILED,
            f"more than {self.settings.max_redirects} redirects",
            url=url.text,
            retriable=False,
        ) from None

    def redirect(self, url: urls.Url, location: str) -> urls.Url:
        """The next hop, parsed with the same rules as the URL the job gave.

        A ``Location`` that is no valid URL is the server's fault, not the job's:
        DOWNLOAD_FAILED (not retriable), where the job's own URL would be URL_INVALID.
        """
        try:
            target = urllib.parse.urljoin(url.text, location)
            hop = urls.checked(target, source=self.source, settings=self.settings)
        except (ValueError, JobError) as exc:
            if isinstance(exc, JobError) and exc.code is not ErrorCode.URL_INVALID:
                raise
            raise self.source.error(
                ErrorCode.DOWNLOAD_FAILED,
                f"redirected to an invalid URL: {location!r}",
                url=url.text,
                retriable=False,
            ) from None
        if hop.scheme not in urls.HTTP_SCHEMES:
            raise self.source.error(
                ErrorCode.URL_SCHEME_NOT_ALLOWED,
                "redirects may only lead to http(s) URLs",
                url=hop.text,
            ) from None
        return hop

    def resolve(self, host: str, port: int, *, url: str) -> list[str]:
        """Resolve ``host`` once and refuse it if any address is not public."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError) as exc:  # gaierror is an OSError
            raise self.source.error(
                ErrorCode.DOWNLOAD_FAILED, f"cannot resolve host {host!r}: {exc}", url=url
            ) from None
        addresses: list[str] = []
        for *_, sockaddr in infos:
            text = str(sockaddr[0])
            if text not in addresses:
                addresses.append(text)
        if not self.settings.allow_private_networks:
            for text in addresses:
                if urls.address_forbidden(ipaddress.ip_address(text.partition("%")[0])):
                    raise self.source.error(
                        ErrorCode.URL_TARGET_FORBIDDEN,
                        f"{host!r} resolves to {text}, which is not a public address",
                        url=url,
                    ) from None
        if not addresses:
            raise self.source.error(
                ErrorCode.DOWNLOAD_FAILED, f"host {host!r} has no addresses", url=url
            ) from None
        return addresses

    def request(self, url: urls.Url) -> urllib3.BaseHTTPResponse:
        host = url.host  # as DNS takes it (IDNA), so the lookup, SNI and Host header agree
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.userinfo:
            raise self.source.error(
                ErrorCode.DOWNLOAD_FAILED,
                "user names and passwords in URLs are not supported",
                url=url.text,
                retriable=False,
            ) from None
        path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
        headers = {
            "Host": url.authority,
            "User-Agent": _USER_AGENT,
            "Accept-Encoding": "identity",
        }
        timeout = urllib3.Timeout(
            connect=self.settings.timeout_seconds, read=self.settings.timeout_seconds
        )
        addresses = self.resolve(host, port, url=url.text)
        for index, address in enumerate(addresses):
            pool = self.pool(
                scheme=url.scheme, address=address, port=port, host=host, timeout=timeout
            )
            try:
                return pool.urlopen(
                    "GET",
                    path,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    assert_same_host=False,
                )
            except NewConnectionError as exc:
                # Refused or unreachable: try the host's next (already checked) address.
                if index == len(addresses) - 1:
                    raise self.source.error(
                        ErrorCode.DOWNLOAD_FAILED,
                        f"cannot connect: {urls.reason(exc)}",
                        url=url.text,
                    ) from None
            except HTTPError as exc:
                raise self.transport_error(exc, url=url.text) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def pool(
        self, *, scheme: str, address: str, port: int, host: str, timeout: urllib3.Timeout
    ) -> urllib3.HTTPConnectionPool:
        if scheme == "http":
            return urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
        context = ssl.create_default_context(cafile=certifi.where())
        if self.settings.ca_bundle is not None:
            try:
                context.load_verify_locations(cafile=str(self.settings.ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                raise JobError(
                    ErrorCode.INTERNAL,
                    f"cannot load the CA bundle {self.settings.ca_bundle}: {exc}",
                    retriable=False,
                ) from None
        return urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ssl_context=context,
            server_hostname=host,  # SNI
            assert_hostname=host,  # the certificate must name the host, not the address
        )

    def transport_error(self, exc: HTTPError, *, url: str) -> JobError:
        if isinstance(exc, SSLError):
            if _certificate_problem(exc):
                return self.source.error(
                    ErrorCode.DOWNLOAD_FAILED,
                    f"TLS certificate check failed: {urls.reason(exc)}",
                    url=url,
                    retriable=False,
                )
            return self.source.error(
                ErrorCode.DOWNLOAD_FAILED, f"TLS error: {urls.reason(exc)}", url=url
            )
        if isinstance(exc, Urllib3TimeoutError | ReadTimeoutError):
            return self.source.error(
                ErrorCode.DOWNLOAD_FAILED,
                f"timed out after {self.settings.timeout_seconds:g} s",
                url=url,
            )
        return self.source.error(
            ErrorCode.DOWNLOAD_FAILED, f"connection failed: {urls.reason(exc)}", url=url
        )

    def check_status(self, status: int, *, url: str) -> None:
        if 200 <= status < 300:
            return
        if status in (404, 410):
            raise self.source.error(
                ErrorCode.INPUT_NOT_FOUND, f"HTTP {status}: not found", url=url
            ) from None
        if status in (408, 429):  # the server asks us to come back later
            raise self.source.error(
                ErrorCode.DOWNLOAD_FAILED, f"HTTP {status}", url=url, retriable=True
            ) from None
        if 400 <= status < 500:
            raise self.source.error(
                ErrorCode.DOWNLOAD_FAILED, f"HTTP {status}", url=url, retriable=False
            ) from None
        if status >= 500:
            raise self.source.error(
                ErrorCode.DOWNLOAD_FAILED, f"HTTP {status} (server error)", url=url
            ) from None
        raise self.source.error(
            ErrorCode.DOWNLOAD_FAILED, f"unexpected HTTP {status}", url=url, retriable=False
        ) from None

    def read_body(self, response: urllib3.BaseHTTPResponse, *, url: str) -> bytes:
        length = response.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            raise self.source.too_large(self.max_bytes, url=url) from None
        chunks: list[bytes] = []
        received = 0
        try:
            for chunk in response.stream(_CHUNK, decode_content=True):
                received += len(chunk)
                if received > self.max_bytes:
                    raise self.source.too_large(self.max_bytes, url=url) from None
                chunks.append(chunk)
        except (ProtocolError, HTTPError) as exc:
            raise self.transport_error(exc, url=url) from None
        return b"".join(chunks)


def _certificate_problem(exc: BaseException) -> bool:
    """Whether a TLS failure is about the certificate (a setup problem, not a blip)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError | CertificateError):
            return True
        todo.extend([item.__cause__, item.__context__, *item.args])
    return False
