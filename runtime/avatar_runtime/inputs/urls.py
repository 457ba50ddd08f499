"""Input URLs, judged before any connection is made, and named safely in errors.

Input URLs come from users, and the runtime pod can reach things users must not:
the GKE metadata server (169.254.169.254), cluster services, localhost. The rules
for which URLs may be fetched at all live here, free of I/O, so a server can apply
them when it admits a job and the fetchers again on every hop: the scheme must be
on the allow-list, and an address must be on the public internet.

Every error about an input names it the same way, through ``Source``: what the
input is, and its URL without a password or query (signed URLs carry secrets),
with any exception shortened to one line (``reason``), never a traceback.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.settings import FetchSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HTTP_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True, kw_only=True)
class Source:
    """One input's URL as the spec gave it, with what every error message about it needs.

    ``what`` names the input in messages ("portrait", "audio"); ``field`` is copied
    into the ``JobError`` so the status can point at the spec field.
    """

    url: str
    what: str
    field: str | None = None

    def error(
        self, code: ErrorCode, reason: str, *, url: str | None = None, retriable: bool | None = None
    ) -> JobError:
        """A ``JobError`` about this input; ``url`` is the redirect hop it failed at, if any."""
        shown = display_url(self.url)
        if url is not None and url != self.url:
            shown += f" (at {display_url(url)})"
        return JobError(
            code, f"{self.what} {shown}: {reason}", retriable=retriable, field=self.field
        )

    def too_large(self, max_bytes: int, *, url: str | None = None) -> JobError:
        return self.error(
            ErrorCode.DOWNLOAD_TOO_LARGE,
            f"larger than the limit of {max_bytes} bytes",
            url=url,
        )


def scheme_of(url: str, *, source: Source, settings: FetchSettings) -> str:
    """The scheme of ``url`` (``source`` itself or a hop of it), if the settings allow it.

    Raises ``JobError`` with URL_SCHEME_NOT_ALLOWED.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    # No scheme, or a one-letter one (a Windows drive), is a local path.
    scheme = "file" if len(scheme) <= 1 else scheme
    if scheme not in settings.allowed_schemes:
        allowed = ", ".join(sorted(settings.allowed_schemes))
        raise source.error(
            ErrorCode.URL_SCHEME_NOT_ALLOWED,
            f"the scheme {scheme!r} is not allowed; allowed: {allowed}",
            url=url,
        ) from None
    return scheme


def precheck(source: str, *, settings: FetchSettings, what: str, field: str | None = None) -> None:
    """Checks a server can make when it admits a job, before any I/O.

    The scheme must be allowed, and a host written as an address (or ``localhost``)
    must be public. Names are resolved, and checked again, only when fetched.
    """
    named = Source(url=source, what=what, field=field)
    scheme = scheme_of(source, source=named, settings=settings)
    if scheme not in HTTP_SCHEMES or settings.allow_private_networks:
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
        raise named.error(
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


def reason(exc: BaseException) -> str:
    """One line about ``exc`` for a user, never a traceback."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
