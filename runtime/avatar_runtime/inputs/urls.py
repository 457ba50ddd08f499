"""Input and output URLs: parsed once, judged before any connection, named safely in errors.

Every URL a job names (portrait, audio, a voice sample, the output) goes through
``parse`` first, the one parser that admission and the fetchers share, so a URL
that admission let through cannot crash a fetch later. It refuses, as UrlInvalid
naming the field, what ``urllib.parse`` cannot split (unclosed brackets, a bad
IPv6 address, a bad port), what it splits too kindly (``https://[::1]junk/``),
control characters (raw, or percent-encoded into a local path as ``%00``), hosts
that are no host names, and URLs without the host or bucket their scheme needs.

Input URLs come from users, and the runtime pod can reach things users must not:
the GKE metadata server (169.254.169.254), cluster services, localhost. The rules
for which URLs may be fetched at all live here, free of I/O, so a server can apply
them when it admits a job and the fetchers again on every hop: the scheme must be
on the allow-list, and an address must be on the public internet, however it is
spelt (``2852039166`` and ``0251.0376.0251.0376`` are 169.254.169.254 to the
resolver, so they are to admission too).

Every error about an input names it the same way, through ``Source``: what the
input is, and its URL without a password or query (signed URLs carry secrets),
with any exception shortened to one line (``reason``), never a traceback.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs import characters
from avatar_runtime.settings import FetchSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HTTP_SCHEMES = frozenset({"http", "https"})

# A host name as DNS takes it, after IDNA: labels of letters, digits, "-" and "_".
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
# A Cloud Storage bucket (kept loose: local buckets in tests have short names).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, kw_only=True)
class Source:
    """One input's URL as the spec gave it, with what every error message about it needs.

    ``what`` names the input in messages ("portrait", "audio"); ``field`` is copied
    into the ``JobError`` so the status can point at the spec field.
    """

    url: str
    what: str
    field: str | None = None
    too_large_code: ErrorCode = ErrorCode.DOWNLOAD_TOO_LARGE
    """What a download over the size limit is: the input's own code (``ImageTooLarge`` for a
    portrait), so a file refused before it is read and one refused as it arrives read alike."""

    def error(
        self, code: ErrorCode, reason: str, *, url: str | None = None, retriable: bool | None = None
    ) -> JobError:
        """A ``JobError`` about this input; ``url`` is the redirect hop it failed at, if any."""
        shown = display_url(self.url)
        if url is not None and url != self.url:
            shown += f" (at {display_url(url)})"
        message = f"{self.what} {shown}: {characters.printable(reason)}"
        return JobError(code, message, retriable=retriable, field=self.field)

    def too_large(self, max_bytes: int, *, url: str | None = None) -> JobError:
        return self.error(
            self.too_large_code,
            f"larger than the limit of {max_bytes} bytes",
            url=url,
        )


@dataclass(frozen=True, kw_only=True)
class Url:
    """A URL (or a local path) as ``parse`` split it: every part is safe to use as it is."""

    text: str
    """The URL as given."""
    scheme: str
    """Lower-case; ``file`` for a local path."""
    host: str
    """http(s): the name as DNS takes it (IDNA, lower-case) or the address, without
    brackets; gs: the bucket; file: the host named, if any; "" for none."""
    port: int | None = None
    path: str = ""
    """file: the local path, percent-decoded; otherwise the URL's path as written."""
    query: str = ""
    bracketed: bool = False
    """The host was written as an IPv6 address in brackets."""
    userinfo: bool = False
    """The URL names a user (``user:password@host``)."""

    @property
    def authority(self) -> str:
        """Host and port as a ``Host`` header gives them (ASCII, brackets around IPv6)."""
        host = f"[{self.host}]" if self.bracketed else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse(url: str, *, source: Source) -> Url:
    """``url`` (``source`` itself or a redirect hop of it) split into safe parts.

    Raises ``JobError`` URL_INVALID naming ``source`` and its field.
    """

    def invalid(why: str) -> JobError:
        return source.error(ErrorCode.URL_INVALID, why, url=url)

    bad = characters.unusable(url, controls=True)
    if bad is not None:
        raise invalid(f"a URL cannot hold {bad}") from None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise invalid(f"not a valid URL ({reason(exc)})") from None
    scheme = parts.scheme.lower()
    if len(scheme) <= 1:  # a local path (a one-letter scheme is a Windows drive)
        return Url(text=url, scheme="file", host="", path=url)
    if scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        bad = characters.unusable(path, controls=True)
        if bad is not None:
            raise invalid(f"its path, percent-decoded, holds {bad}") from None
        return Url(text=url, scheme=scheme, host=parts.netloc.lower(), path=path, query=parts.query)
    _, at, hostport = parts.netloc.rpartition("@")
    host, port, bracketed = _host_and_port(hostport, invalid=invalid)
    if scheme in HTTP_SCHEMES:
        if not host:
            raise invalid("the URL has no host") from None
        if not bracketed:
            host = _host_name(host, invalid=invalid)
    elif scheme == "gs" and (not _BUCKET.fullmatch(host) or bracketed or port or at):
        raise invalid("a gs:// URL needs a bucket name: gs://BUCKET/OBJECT") from None
    return Url(
        text=url,
        scheme=scheme,
        host=host,
        port=port,
        path=parts.path,
        query=parts.query,
        bracketed=bracketed,
        userinfo=bool(at),
    )


def checked(url: str, *, source: Source, settings: FetchSettings) -> Url:
    """``url`` (``source`` itself or a hop of it) parsed, if the settings allow its scheme.

    Raises ``JobError`` with URL_INVALID or URL_SCHEME_NOT_ALLOWED.
    """
    parsed = parse(url, source=source)
    if parsed.scheme not in settings.allowed_schemes:
        allowed = ", ".join(sorted(settings.allowed_schemes))
        raise source.error(
            ErrorCode.URL_SCHEME_NOT_ALLOWED,
            f"the scheme {parsed.scheme!r} is not allowed; allowed: {allowed}",
            url=url,
        ) from None
    return parsed


def precheck(source: str, *, settings: FetchSettings, what: str, field: str | None = None) -> Url:
    """Checks a server can make when it admits a job, before any I/O; returns the parsed URL.

    The URL must parse, its scheme must be allowed, a ``file://`` URL must not name
    another host, and a host written as an address (in any spelling the resolver
    reads as one) or ``localhost`` must be public. Names are resolved, and checked
    again, only when fetched.
    """
    named = Source(url=source, what=what, field=field)
    url = checked(source, source=named, settings=settings)
    if url.scheme == "file":
        local_path(url, source=named)
    if url.scheme in HTTP_SCHEMES and not settings.allow_private_networks and host_forbidden(url):
        address = literal_address(url.host)
        spelt = f" ({address})" if address is not None and str(address) != url.host else ""
        raise named.error(
            ErrorCode.URL_TARGET_FORBIDDEN, f"{url.host!r}{spelt} is not a public address"
        ) from None
    return url


def local_path(url: Url, *, source: Source) -> str:
    """The path a ``file`` URL (or a bare path) names; URL_TARGET_FORBIDDEN for another host."""
    if url.host not in ("", "localhost"):
        raise source.error(
            ErrorCode.URL_TARGET_FORBIDDEN, "file:// URLs must not name a remote host"
        ) from None
    return url.path


def host_forbidden(url: Url) -> bool:
    """Whether the host of an http(s) ``url`` is, without asking DNS, off the public internet."""
    name = url.host.removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = literal_address(url.host)
    return address is not None and address_forbidden(address)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells as the resolver reads it, if it spells one (no DNS).

    getaddrinfo reads IPv4 addresses as ``inet_aton`` does: ``2852039166``,
    ``0251.0376.0251.0376``, ``0xa9fea9fe`` and ``169.254.43518`` are all
    169.254.169.254, where ``ipaddress`` knows only the dotted-decimal form. A trailing
    dot is dropped: some resolvers read ``169.254.169.254.`` as the address, and it
    names nothing else.
    """
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.removesuffix(".")))
    except (OSError, ValueError):
        return None


def address_forbidden(address: IPAddress) -> bool:
    """Whether ``address`` is off limits for input fetches (anything not on the public internet).

    Loopback, link-local (the metadata server), private, shared (CGNAT), reserved,
    multicast and unspecified addresses are refused, including IPv4 addresses
    wrapped in IPv6 (mapped, 6to4, Teredo; NAT64's 64:ff9b::/96 lies in the
    reserved ::/8), which reach the same hosts.
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
    """``source`` fit for an error message: no password, no query (signed URLs carry secrets).

    Control characters and the like are escaped, so the message can always be encoded.
    """
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError:
        return characters.printable(_rough_display(source))
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return characters.printable(source)
    netloc = parts.netloc.rpartition("@")[2]
    query = "?…" if parts.query else ""
    shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + query
    return characters.printable(shown)


def reason(exc: BaseException) -> str:
    """One line about ``exc`` for a user, never a traceback."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _host_and_port(
    hostport: str, *, invalid: Callable[[str], JobError]
) -> tuple[str, int | None, bool]:
    """Host, port and whether the host was bracketed, from the part after any ``user@``."""
    if hostport.startswith("["):
        inside, closed, rest = hostport[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise invalid("brackets must enclose the whole host, an IPv6 address") from None
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise invalid(f"[{inside}] is not an IPv6 address") from None
        host, port = inside.lower(), rest[1:] if rest else None
    else:
        if "[" in hostport or "]" in hostport:
            raise invalid("brackets belong only around an IPv6 address") from None
        host, colon, after = hostport.partition(":")
        port = after if colon else None
    if not port:  # none, or empty ("host:"): the scheme's default
        return host, None, hostport.startswith("[")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise invalid(f"the port {port!r} is not a number from 1 to 65535") from None
    return host, int(port), hostport.startswith("[")


def _host_name(host: str, *, invalid: Callable[[str], JobError]) -> str:
    """``host`` as DNS takes it: IDNA-encoded (as getaddrinfo would), lower-case, checked."""
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        name = ""
    if not _HOST_NAME.fullmatch(name):
        raise invalid(f"{host!r} is not a host name") from None
    return name


def _rough_display(source: str) -> str:
    """``source``, which urllib cannot split, cut before a query and without a user part."""
    ends = [index for index in (source.find("?"), source.find("#")) if index >= 0]
    cut = min(ends, default=len(source))
    query = "?…" if source[cut : cut + 1] == "?" else ""
    shown = source[:cut]
    scheme, sep, rest = shown.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        shown = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return shown + query
