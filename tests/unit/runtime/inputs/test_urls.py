"""What an input URL may point at, decided before any connection, and how errors show it.

No traffic leaves the machine: the address policy is a pure function, admission
(``precheck``) does no I/O, and a scheme outside the allow-list is refused before
anything is read.
"""

from __future__ import annotations

import ipaddress

import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
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


# -- error messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@example.com/a.png?sig=SECRET", "https://example.com/a.png?…"),
        ("https://example.com/a.png", "https://example.com/a.png"),
        ("/tmp/a.png?x", "/tmp/a.png?x"),
        ("C:\\in\\a.png", "C:\\in\\a.png"),
    ],
)
def test_urls_are_shown_without_passwords_or_queries(url: str, shown: str) -> None:
    assert display_url(url) == shown
