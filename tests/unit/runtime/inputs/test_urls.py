"""What an input URL may point at, decided before any connection, and how errors show it.

No traffic leaves the machine: the address policy is a pure function, admission
(``precheck``) does no I/O, and a scheme outside the allow-list is refused before
anything is read.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Any

import pytest
import urllib3.util.connection

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs import urls
from avatar_runtime.inputs.fetching import fetch_bytes
from avatar_runtime.inputs.urls import address_forbidden, display_url, precheck
from avatar_runtime.settings import FetchSettings

MB = 1024 * 1024


# -- the address policy ---------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # GKE metadata server
        "127.0.0.1",
        "10.0.0.1",
        "192.168.1.1",
        "172.16.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:a9fe:a9fe::1",  # 6to4 wrapping 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 (well-known prefix) to 169.254.169.254
        "64:ff9b:1::a9fe:a9fe",  # NAT64 (local-use prefix)
        "::a9fe:a9fe",  # IPv4-compatible (deprecated)
        "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo to a private client
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert address_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not address_forbidden(ipaddress.ip_address(address))


# -- schemes ----------------------------------------------------------------------------


_OUTSIDE_THE_ALLOW_LIST = [
    ("ftp://example.com/a.png", FetchSettings()),
    ("http://example.com/a.png", FetchSettings()),
    ("data:image/png;base64,iVBORw0KGgo=", FetchSettings()),
    ("gs://bucket/a.png", FetchSettings(allowed_schemes=frozenset({"https", "file"}))),
    ("/tmp/a.png", FetchSettings(allowed_schemes=frozenset({"https"}))),
    ("file:///tmp/a.png", FetchSettings(allowed_schemes=frozenset({"https"}))),
]


@pytest.mark.parametrize(("source", "settings"), _OUTSIDE_THE_ALLOW_LIST)
def test_schemes_outside_the_allow_list_are_refused(source: str, settings: FetchSettings) -> None:
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(source, settings=settings, max_bytes=MB, what="portrait")
    assert excinfo.value.code == ErrorCode.URL_SCHEME_NOT_ALLOWED
    assert "allowed:" in excinfo.value.message


@pytest.mark.parametrize(("source", "settings"), _OUTSIDE_THE_ALLOW_LIST)
def test_admission_refuses_the_same_schemes(source: str, settings: FetchSettings) -> None:
    with pytest.raises(JobError) as excinfo:
        precheck(source, settings=settings, what="portrait", field="inputs.portrait")
    assert excinfo.value.code == ErrorCode.URL_SCHEME_NOT_ALLOWED
    assert "allowed:" in excinfo.value.message
    assert excinfo.value.field == "inputs.portrait"


# -- admission ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/p.png",
        "https://api.localhost/p.png",
        "https://127.0.0.1/p.png",
        "https://169.254.169.254/computeMetadata/v1/",
        "https://[::ffff:10.0.0.1]/p.png",
    ],
)
def test_admission_refuses_hosts_written_as_non_public_addresses(url: str) -> None:
    with pytest.raises(JobError) as excinfo:
        precheck(url, settings=FetchSettings(), what="portrait")
    assert excinfo.value.code == ErrorCode.URL_TARGET_FORBIDDEN
    assert "not a public address" in excinfo.value.message


@pytest.mark.parametrize("url", ["https://example.com/p.png", "gs://b/p.png", "/tmp/p.png"])
def test_admission_lets_names_and_other_schemes_through(url: str) -> None:
    precheck(url, settings=FetchSettings(), what="portrait")


# Every way to write the metadata server's address (and other non-public ones) that the
# resolver reads as an address: getaddrinfo parses IPv4 as inet_aton does.
METADATA_SPELLINGS = [
    "169.254.169.254",
    "0251.0376.0251.0376",  # octal
    "2852039166",  # one decimal number
    "0xa9fea9fe",  # one hex number
    "0xa9.0xfe.0xa9.0xfe",  # hex parts
    "0251.254.0xa9.254",  # mixed
    "169.254.43518",  # a.b.c, the last part 16 bits
    "169.16689662",  # a.b, the last part 24 bits
    "169.254.169.254.",  # a trailing dot
    "１６９.２５４.１６９.２５４",  # full-width digits: IDNA maps them to ASCII
    "[::ffff:169.254.169.254]",  # IPv4-mapped
    "[::ffff:a9fe:a9fe]",
    "[64:ff9b::a9fe:a9fe]",  # NAT64
    "[2002:a9fe:a9fe::1]",  # 6to4
]
OTHER_PRIVATE_SPELLINGS = [
    "127.1",
    "2130706433",  # 127.0.0.1
    "0x7f000001",
    "0",  # 0.0.0.0
    "012.0.0.1",  # octal 10.0.0.1
    "localhost.",
    "LOCALHOST",
    "api.localhost.",
    "[::1]",
    "[::]",
    "[0:0:0:0:0:0:0:1]",
    "[fe80::1%25eth0]",  # link-local with a zone
]


@pytest.mark.parametrize("host", METADATA_SPELLINGS + OTHER_PRIVATE_SPELLINGS)
def test_admission_refuses_every_spelling_of_a_non_public_address(host: str) -> None:
    for scheme in ("https", "http"):
        with pytest.raises(JobError) as excinfo:
            precheck(
                f"{scheme}://{host}/x.png",
                settings=FetchSettings(allowed_schemes=frozenset({"http", "https"})),
                what="portrait",
                field="inputs.portrait",
            )
        assert excinfo.value.code == ErrorCode.URL_TARGET_FORBIDDEN
        assert excinfo.value.field == "inputs.portrait"
        assert "not a public address" in excinfo.value.message


def test_admission_says_which_address_a_spelling_is() -> None:
    with pytest.raises(JobError) as excinfo:
        precheck("https://2852039166/computeMetadata/v1/", settings=FetchSettings(), what="p")
    assert "'2852039166' (169.254.169.254) is not a public address" in excinfo.value.message


@pytest.mark.parametrize(
    "host",
    [
        "0251.0376.0251.0376",
        "2852039166",
        "0xa9fea9fe",
        "169.254.43518",
        "127.1",
        "0x7f000001",
        "[::ffff:169.254.169.254]",
        "[::1]",
    ],
)
def test_admission_agrees_with_the_fetch_time_check(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each spelling the fetcher (through the system resolver) refuses, admission refuses.

    These are numeric to getaddrinfo, so no DNS query leaves the machine; a spy makes
    sure no connection is even attempted.
    """

    def no_connection(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"connected to {args}")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", no_connection)
    url = f"https://{host}/x.png"
    with pytest.raises(JobError) as at_fetch:
        fetch_bytes(url, settings=FetchSettings(), max_bytes=MB, what="portrait")
    with pytest.raises(JobError) as at_admission:
        precheck(url, settings=FetchSettings(), what="portrait")
    assert at_fetch.value.code == at_admission.value.code == ErrorCode.URL_TARGET_FORBIDDEN


@pytest.mark.parametrize(
    "host",
    [
        "134744072",  # 8.8.8.8, as one number: public
        "[2001:4860:4860::8888]",
        "1e100.net",  # digits and letters: a name, for DNS to answer
        "0x.example.com",
        "bücher.example",
        "localhost.example.com",
        "example.com.",
    ],
)
def test_public_spellings_and_names_pass_admission(host: str) -> None:
    precheck(f"https://{host}/x.png", settings=FetchSettings(), what="portrait")


# -- URLs that cannot be parsed or used -------------------------------------------------------

MALFORMED = [
    ("https://[::1/p.png", "Invalid IPv6 URL"),
    ("https://[zz]/p.png", "'zz' does not appear to be an IPv4 or IPv6 address"),
    ("https://[v1.fe]/p.png", "[v1.fe] is not an IPv6 address"),  # IPvFuture: urllib lets it by
    ("https://[::1]junk/p.png", "brackets must enclose the whole host"),
    ("https://junk[::1]/p.png", "brackets belong only around an IPv6 address"),
    ("https://exa[mple.com/p.png", "Invalid IPv6 URL"),
    ("https://exa]mple.com/p.png", "Invalid IPv6 URL"),
    ("https://example.com:99999/p.png", "the port '99999' is not a number from 1 to 65535"),
    ("https://example.com:0/p.png", "the port '0'"),
    ("https://example.com:http/p.png", "the port 'http'"),
    ("https://example.com:-1/p.png", "the port '-1'"),
    ("https://example.com:１/p.png", "the port '１'"),
    ("https://example.com:1:2/p.png", "the port '1:2'"),
    ("https:///p.png", "the URL has no host"),
    ("https://user@/p.png", "the URL has no host"),
    ("https://:443/p.png", "the URL has no host"),
    ("https://%31%32%37.0.0.1/p.png", "'%31%32%37.0.0.1' is not a host name"),
    ("https://exa mple.com/p.png", "'exa mple.com' is not a host name"),
    ("https://a..b/p.png", "'a..b' is not a host name"),
    ("https://" + "x" * 64 + ".com/p.png", "is not a host name"),
    ("https://exa\\mple.com/p.png", "is not a host name"),
    ("gs://[bucket/x/p.png", "Invalid IPv6 URL"),
    ("gs:///p.png", "a gs:// URL needs a bucket name"),
    ("gs://user@bucket/p.png", "a gs:// URL needs a bucket name"),
    ("gs://bucket:443/p.png", "a gs:// URL needs a bucket name"),
    ("gs://[::1]/p.png", "a gs:// URL needs a bucket name"),
    ("https://example.com/p\x00.png", "U+0000 (a control character) at character 22"),
    ("https://example.com/p.png\n", "U+000A (a control character)"),
    ("https://exa\tmple.com/p.png", "U+0009 (a control character)"),
    ("https://example.com/p\x85.png", "U+0085 (a control character)"),
    ("https://example.com/p\x7f.png", "U+007F (a control character)"),
    ("https://example.com/p\ud800.png", "U+D800 (a lone UTF-16 surrogate)"),
    ("https://example.com/p\uffff.png", "U+FFFF (a Unicode non-character)"),
    ("file:///tmp/a%00b.png", "its path, percent-decoded, holds U+0000"),
    ("file:///tmp/a%0Ab.png", "its path, percent-decoded, holds U+000A"),
    ("file:///tmp/a%1bb.png", "its path, percent-decoded, holds U+001B"),
    ("/tmp/a\x00b.png", "U+0000 (a control character)"),
    ("//[x/y.png", "Invalid IPv6 URL"),
]


@pytest.mark.parametrize(("url", "said"), MALFORMED)
def test_malformed_urls_are_refused_with_a_code_and_the_field(url: str, said: str) -> None:
    settings = FetchSettings(allowed_schemes=frozenset({"file", "gs", "http", "https"}))
    with pytest.raises(JobError) as excinfo:
        precheck(url, settings=settings, what="portrait", field="inputs.portrait")
    error = excinfo.value
    assert (error.code, error.field) == (ErrorCode.URL_INVALID, "inputs.portrait")
    assert not error.retriable
    assert said in error.message
    assert error.message.startswith("portrait ")
    json.dumps(error.to_dict(), ensure_ascii=False).encode()  # answerable as it is


@pytest.mark.parametrize(("url", "said"), MALFORMED)
def test_the_fetcher_refuses_them_the_same_way_before_any_io(
    url: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI and a job admitted by an older pod fetch without admission: no crash there."""

    def no_io(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"I/O for a malformed URL: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", no_io)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", no_io)
    settings = FetchSettings(allowed_schemes=frozenset({"file", "gs", "http", "https"}))
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(url, settings=settings, max_bytes=MB, what="portrait", field="portrait")
    assert (excinfo.value.code, excinfo.value.field) == (ErrorCode.URL_INVALID, "portrait")
    assert said in excinfo.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/p.png?sig=a%2Fb%00&x=%ff",  # a query is the server's to judge
        "https://example.com/%00/p.png",  # so is a path on someone else's server
        "https://example.com:/p.png",  # an empty port is the default one
        "https://[2001:db8::1]:8443/p.png",
        "https://xn--bcher-kva.example/p.png",
        "https://exa_mple.com/p.png",
        "gs://avatar-demo/people/ada lovelace.png",
        "gs://b",
        "file:///tmp/a%20b.png",
        "/tmp/a%00b.png",  # a path is not percent-decoded: these are its characters
        "C:\\in\\a.png",
    ],
)
def test_unusual_but_valid_urls_parse(url: str) -> None:
    urls.parse(url, source=urls.Source(url=url, what="portrait"))


def test_a_host_is_kept_as_dns_takes_it() -> None:
    """getaddrinfo, SNI and the Host header all get the IDNA form, lower-case."""
    url = "https://BÜCHER.Example:8443/a.png?x=1"
    parsed = urls.parse(url, source=urls.Source(url=url, what="portrait"))
    assert (parsed.scheme, parsed.host, parsed.port) == ("https", "xn--bcher-kva.example", 8443)
    assert parsed.authority == "xn--bcher-kva.example:8443"
    assert (parsed.path, parsed.query) == ("/a.png", "x=1")
    v6 = urls.parse("https://[2001:DB8::1]/", source=urls.Source(url="x", what="portrait"))
    assert (v6.host, v6.authority) == ("2001:db8::1", "[2001:db8::1]")


def test_a_file_url_is_its_decoded_path() -> None:
    url = "file:///tmp/a%20b/%2E%2E/c.png"
    parsed = urls.parse(url, source=urls.Source(url=url, what="portrait"))
    assert (parsed.scheme, parsed.path) == ("file", "/tmp/a b/../c.png")


# -- error messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@example.com/a.png?sig=SECRET", "https://example.com/a.png?…"),
        ("https://user:secret@[::1/a.png?sig=SECRET", "https://[::1/a.png?…"),  # unparseable
        ("gs://[bucket/x#frag", "gs://[bucket/x"),
        ("https://example.com/a\x00b\ud800.png", "https://example.com/a\\x00b\\ud800.png"),
        ("https://example.com/a.png", "https://example.com/a.png"),
        ("/tmp/a.png?x", "/tmp/a.png?x"),
        ("C:\\in\\a.png", "C:\\in\\a.png"),
    ],
)
def test_urls_are_shown_without_passwords_or_queries(url: str, shown: str) -> None:
    assert display_url(url) == shown
