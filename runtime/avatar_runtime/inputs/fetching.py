"""Fetch an input's bytes from a local path, ``file://``, ``gs://`` or ``https://``.

Input URLs come from users, and the runtime pod can reach things users must not:
the GKE metadata server (169.254.169.254), cluster services, localhost. So https
fetches resolve the host once, refuse non-public addresses, connect to exactly the
address that was checked (no second lookup, so DNS rebinding cannot swap it),
re-check every redirect hop, and stop reading as soon as a size limit is passed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import certifi
import fsspec
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
from avatar_runtime.settings import FetchSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HTTP_SCHEMES = frozenset({"http", "https"})
_USER_AGENT = "avatar-runtime/0.1 (input fetcher)"


def fetch_bytes(
    source: str,
    *,
    settings: FetchSettings,
    max_bytes: int,
    what: str,
    field: str | None = None,
) -> bytes:
    """Return the bytes ``source`` points to, at most ``max_bytes`` of them.

    ``what`` names the input in error messages ("portrait", "audio"); ``field`` is
    copied into the ``JobError`` so the status can point at the spec field.

    Raises ``JobError`` with URL_SCHEME_NOT_ALLOWED, URL_TARGET_FORBIDDEN,
    INPUT_NOT_FOUND, DOWNLOAD_TOO_LARGE or DOWNLOAD_FAILED.
    """
    fetch = _Fetch(source=source, settings=settings, max_bytes=max_bytes, what=what, field=field)
    return fetch.run()


def precheck(source: str, *, settings: FetchSettings, what: str, field: str | None = None) -> None:
    """Checks a server can make when it admits a job, before any I/O.

    The scheme must be allowed, and a host written as an address (or ``localhost``)
    must be public. Names are resolved, and checked again, only when fetched.
    """
    fetch = _Fetch(source=source, settings=settings, max_bytes=0, what=what, field=field)
    scheme = fetch.scheme_of(source)
    if scheme not in _HTTP_SCHEMES or settings.allow_private_networks:
        return
    host = (urllib.parse.urlsplit(source).hostname or "").lower()
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if (
        host == "localhost"
        or host.endswith(".localhost")
        or (literal is not None and address_forbidden(literal))
    ):
        raise fetch.error(
            ErrorCode.URL_TARGET_FORBIDDEN, f"{host!r} is not a public address"
        ) from None


def address_forbidden(address: IPAddress) -> bool:
    """Whether ``address`` is off limits for input fetches (anything not on the public internet).

    Loopback, link-local (the metadata server), private, shared (CGNAT), reserved,
    multicast and unspecified addresses are refused, including IPv4 addresses
    wrapped in IPv6 (mapped, 6to4, Teredo), which reach the same hosts.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if any(inner is not None and address_forbidden(inner) for inner in embedded):
            return True
        if address.is_site_local:
            return True
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


def display_url(source: str) -> str:
    """``source`` fit for an error message: no password, no query (signed URLs carry secrets)."""
    parts = urllib.parse.urlsplit(source)
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return source
    netloc = parts.netloc.rpartition("@")[2]
    query = "?…" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + query


class _Fetch:
    """One fetch: carries the context every error message needs."""

    def __init__(
        self,
        *,
        source: str,
        settings: FetchSettings,
        max_bytes: int,
        what: str,
        field: str | None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.max_bytes = max_bytes
        self.what = what
        self.field = field

    def error(
        self, code: ErrorCode, reason: str, *, url: str | None = None, retriable: bool | None = None
    ) -> JobError:
        shown = display_url(self.source)
        if url is not None and url != self.source:
            shown += f" (at {display_url(url)})"
        return JobError(
            code, f"{self.what} {shown}: {reason}", retriable=retriable, field=self.field
        )

    def too_large(self, *, url: str | None = None) -> JobError:
        return self.error(
            ErrorCode.DOWNLOAD_TOO_LARGE,
            f"larger than the limit of {self.max_bytes} bytes",
            url=url,
        )

    def scheme_of(self, url: str) -> str:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        # No scheme, or a one-letter one (a Windows drive), is a local path.
        scheme = "file" if len(scheme) <= 1 else scheme
        if scheme not in self.settings.allowed_schemes:
            allowed = ", ".join(sorted(self.settings.allowed_schemes))
            raise self.error(
                ErrorCode.URL_SCHEME_NOT_ALLOWED,
                f"the scheme {scheme!r} is not allowed; allowed: {allowed}",
                url=url,
            ) from None
        return scheme

    def run(self) -> bytes:
        scheme = self.scheme_of(self.source)
        if scheme == "file":
            return self.read_local()
        if scheme == "gs":
            return self.read_gs()
        if scheme in _HTTP_SCHEMES:
            return self.read_http()
        raise self.error(
            ErrorCode.URL_SCHEME_NOT_ALLOWED,
            f"the scheme {scheme!r} is allowed but not supported; use file, gs or https",
        ) from None

    # -- local files ---------------------------------------------------------------

    def local_path(self) -> Path:
        parts = urllib.parse.urlsplit(self.source)
        if len(parts.scheme) <= 1:
            return Path(self.source)
        if parts.netloc not in ("", "localhost"):
            raise self.error(
                ErrorCode.URL_TARGET_FORBIDDEN, "file:// URLs must not name a remote host"
            ) from None
        return Path(urllib.request.url2pathname(parts.path))

    def read_local(self) -> bytes:
        path = self.local_path()
        try:
            with path.open("rb") as file:
                info = os.fstat(file.fileno())
                if stat.S_ISDIR(info.st_mode):
                    raise self.error(
                        ErrorCode.INPUT_NOT_FOUND, "is a directory, not a file"
                    ) from None
                if not stat.S_ISREG(info.st_mode):
                    raise self.error(ErrorCode.INPUT_NOT_FOUND, "is not a regular file") from None
                if info.st_size > self.max_bytes:
                    raise self.too_large() from None
                data = file.read(self.max_bytes + 1)  # the file may have grown since fstat
        except FileNotFoundError:
            raise self.error(ErrorCode.INPUT_NOT_FOUND, "no such file") from None
        except IsADirectoryError:
            raise self.error(ErrorCode.INPUT_NOT_FOUND, "is a directory, not a file") from None
        except PermissionError:
            raise self.error(
                ErrorCode.INPUT_NOT_FOUND, "the file exists but cannot be read (permission)"
            ) from None
        except OSError as exc:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED, f"could not read the file: {exc.strerror or exc}"
            ) from None
        if len(data) > self.max_bytes:
            raise self.too_large() from None
        return data

    # -- Google Cloud Storage (any fsspec filesystem registered as "gs") -------------

    def read_gs(self) -> bytes:
        parts = urllib.parse.urlsplit(self.source)
        path = f"{parts.netloc}{parts.path}"
        if not parts.netloc or not parts.path.strip("/"):
            raise self.error(
                ErrorCode.INPUT_NOT_FOUND, "a gs:// URL needs a bucket and an object name"
            ) from None
        try:
            fs = fsspec.filesystem("gs")
            info: dict[str, Any] = fs.info(path)
            if info.get("type") == "directory":
                raise self.error(ErrorCode.INPUT_NOT_FOUND, "is a folder, not an object") from None
            size = info.get("size")
            if isinstance(size, int) and size > self.max_bytes:
                raise self.too_large() from None
            chunks: list[bytes] = []
            received = 0
            with fs.open(path, "rb") as file:
                while chunk := file.read(_CHUNK):
                    received += len(chunk)
                    if received > self.max_bytes:
                        raise self.too_large() from None
                    chunks.append(chunk)
        except JobError:
            raise
        except FileNotFoundError:
            raise self.error(ErrorCode.INPUT_NOT_FOUND, "no such object") from None
        except PermissionError:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED,
                "access denied; grant the runtime's service account read access",
                retriable=False,
            ) from None
        except Exception as exc:  # gcsfs raises many kinds (HTTP, auth, network)
            raise self.error(ErrorCode.DOWNLOAD_FAILED, f"could not read: {_reason(exc)}") from None
        return b"".join(chunks)

    # -- https (and http, where an operator allowed it) -------------------------------

    def read_http(self) -> bytes:
        url = self.source
        for hop in range(self.settings.max_redirects + 1):
            response = self.request(url)
            try:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise self.error(
                            ErrorCode.DOWNLOAD_FAILED,
                            f"HTTP {response.status} redirect without a Location",
                            url=url,
                            retriable=False,
                        ) from None
                    if hop == self.settings.max_redirects:
                        break
                    url = urllib.parse.urljoin(url, location)
                    if self.scheme_of(url) not in _HTTP_SCHEMES:
                        raise self.error(
                            ErrorCode.URL_SCHEME_NOT_ALLOWED,
                            "redirects may only lead to http(s) URLs",
                            url=url,
                        ) from None
                    continue
                self.check_status(response.status, url=url)
                return self.read_body(response, url=url)
            finally:
                response.close()  # never drain: the rest of the body may be huge
                response.release_conn()
        raise self.error(
            ErrorCode.DOWNLOAD_FAILED,
            f"more than {self.settings.max_redirects} redirects",
            url=url,
            retriable=False,
        ) from None

    def resolve(self, host: str, port: int, *, url: str) -> list[str]:
        """Resolve ``host`` once and refuse it if any address is not public."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED, f"cannot resolve host {host!r}: {exc}", url=url
            ) from None
        addresses: list[str] = []
        for *_, sockaddr in infos:
            text = str(sockaddr[0])
            if text not in addresses:
                addresses.append(text)
        if not self.settings.allow_private_networks:
            for text in addresses:
                if address_forbidden(ipaddress.ip_address(text.partition("%")[0])):
                    raise self.error(
                        ErrorCode.URL_TARGET_FORBIDDEN,
                        f"{host!r} resolves to {text}, which is not a public address",
                        url=url,
                    ) from None
        if not addresses:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED, f"host {host!r} has no addresses", url=url
            ) from None
        return addresses

    def request(self, url: str) -> urllib3.BaseHTTPResponse:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            host = parts.hostname
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED, "malformed URL", url=url, retriable=False
            ) from None
        if not host:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED, "the URL has no host", url=url, retriable=False
            ) from None
        if parts.username is not None:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED,
                "user names and passwords in URLs are not supported",
                url=url,
                retriable=False,
            ) from None
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        headers = {
            "Host": parts.netloc,
            "User-Agent": _USER_AGENT,
            "Accept-Encoding": "identity",
        }
        timeout = urllib3.Timeout(
            connect=self.settings.timeout_seconds, read=self.settings.timeout_seconds
        )
        addresses = self.resolve(host, port, url=url)
        for index, address in enumerate(addresses):
            pool = self.pool(scheme=scheme, address=address, port=port, host=host, timeout=timeout)
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
                    raise self.error(
                        ErrorCode.DOWNLOAD_FAILED, f"cannot connect: {_reason(exc)}", url=url
                    ) from None
            except HTTPError as exc:
                raise self.transport_error(exc, url=url) from None
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
                return self.error(
                    ErrorCode.DOWNLOAD_FAILED,
                    f"TLS certificate check failed: {_reason(exc)}",
                    url=url,
                    retriable=False,
                )
            return self.error(ErrorCode.DOWNLOAD_FAILED, f"TLS error: {_reason(exc)}", url=url)
        if isinstance(exc, Urllib3TimeoutError | ReadTimeoutError):
            return self.error(
                ErrorCode.DOWNLOAD_FAILED,
                f"timed out after {self.settings.timeout_seconds:g} s",
                url=url,
            )
        return self.error(ErrorCode.DOWNLOAD_FAILED, f"connection failed: {_reason(exc)}", url=url)

    def check_status(self, status: int, *, url: str) -> None:
        if 200 <= status < 300:
            return
        if status in (404, 410):
            raise self.error(
                ErrorCode.INPUT_NOT_FOUND, f"HTTP {status}: not found", url=url
            ) from None
        if status in (408, 429):  # the server asks us to come back later
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED, f"HTTP {status}", url=url, retriable=True
            ) from None
        if 400 <= status < 500:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED, f"HTTP {status}", url=url, retriable=False
            ) from None
        if status >= 500:
            raise self.error(
                ErrorCode.DOWNLOAD_FAILED, f"HTTP {status} (server error)", url=url
            ) from None
        raise self.error(
            ErrorCode.DOWNLOAD_FAILED, f"unexpected HTTP {status}", url=url, retriable=False
        ) from None

    def read_body(self, response: urllib3.BaseHTTPResponse, *, url: str) -> bytes:
        length = response.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            raise self.too_large(url=url) from None
        chunks: list[bytes] = []
        received = 0
        try:
            for chunk in response.stream(_CHUNK, decode_content=True):
                received += len(chunk)
                if received > self.max_bytes:
                    raise self.too_large(url=url) from None
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


def _reason(exc: BaseException) -> str:
    """One line about ``exc`` for a user, never a traceback."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
