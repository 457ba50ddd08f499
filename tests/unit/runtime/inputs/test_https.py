"""Fetching over https: a real HTTPS server on 127.0.0.1.

No traffic leaves loopback: addresses outside it are only ever fed to the policy
function or refused before any connection is made (a spy on urllib3's connect
proves it where it matters).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
import urllib3.util.connection

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs import urls
from avatar_runtime.inputs.fetching import fetch_bytes
from avatar_runtime.settings import FetchSettings
from tests.unit.runtime.inputs.test_fetching import MB, PNG

_JUNK_LOCATIONS = [
    "https://[::1/x.png",
    "https://[zz]/x.png",
    "https://h:99999/x",
    "https://[::1]junk/",
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, headers={"Location": location})

    def do_GET(self) -> None:
        port = int(self.server.server_address[1])  # type: ignore[index]
        path = self.path.partition("?")[0]
        try:
            if path == "/portrait.png":
                self._send(200, PNG, {"Content-Type": "image/png"})
            elif path == "/host":
                self._send(200, self.headers["Host"].encode())
            elif path.startswith("/redirect/"):
                left = int(path.rsplit("/", 1)[1])
                self._redirect(f"/redirect/{left - 1}" if left > 1 else "/portrait.png")
            elif path in ("/missing", "/gone", "/forbidden", "/broken", "/busy"):
                status = {"/missing": 404, "/gone": 410, "/forbidden": 403, "/broken": 503}
                self._send(status.get(path, 429), b"no")
            elif path == "/huge":  # says up front that it is too large
                self.send_response(200)
                self.send_header("Content-Length", str(4 * MB))
                self.end_headers()
                for _ in range(64):
                    self.wfile.write(b"\0" * (64 * 1024))
            elif path == "/chunked":  # no Content-Length: only counting can stop it
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"x" * (64 * 1024)
                for _ in range(160):  # 10 MiB if nobody stops reading
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/stall":  # headers, a few bytes, then nothing
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                time.sleep(1.5)
            elif path == "/to-http":
                self._redirect(f"http://localhost:{port}/portrait.png")
            elif path == "/to-file":
                self._redirect("file:///etc/hostname")
            elif path == "/to-metadata":
                self._redirect("https://169.254.169.254/computeMetadata/v1/")
            elif path == "/to-metadata-as-a-number":
                self._redirect("https://2852039166/computeMetadata/v1/")
            elif path.startswith("/to-junk/"):  # /to-junk/<n>: the n-th malformed Location
                self._redirect(_JUNK_LOCATIONS[int(path.rsplit("/", 1)[1])])
            else:
                self._send(500, b"unknown route")
        except (OSError, ssl.SSLError):
            pass  # the client hung up on purpose (size limit)


@dataclass
class Server:
    port: int
    ca_file: Path

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    def settings(self, **overrides: Any) -> FetchSettings:
        values: dict[str, Any] = {
            "allow_private_networks": True,
            "ca_bundle": self.ca_file,
            "timeout_seconds": 3.0,
        }
        values.update(overrides)
        return FetchSettings(**values)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    ca = trustme.CA()
    # Names only, no IP: a client that checked the certificate against the address
    # it connected to (instead of the host name) would fail every test below.
    cert = ca.issue_cert("localhost", "public.test", "rebind.test", "multi.test", "mixed.test")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(port=httpd.server_address[1], ca_file=ca_file)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Resolve *.test names to 127.0.0.1, counting lookups; rebind.test answers only once.

    multi.test answers 127.0.0.2 (nobody listens there) then 127.0.0.1; mixed.test
    answers 127.0.0.1 and the private 10.0.0.1.

    A second lookup of rebind.test fails, as a rebinding attacker's DNS would
    instead answer with an internal address.
    """
    real = socket.getaddrinfo
    lookups: dict[str, int] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".test"):
            lookups[host] = lookups.get(host, 0) + 1
            if host == "rebind.test" and lookups[host] > 1:
                raise socket.gaierror(socket.EAI_NONAME, "second lookup")
            answers = {
                "multi.test": ["127.0.0.2", "127.0.0.1"],
                "mixed.test": ["127.0.0.1", "10.0.0.1"],
            }
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))
                for address in answers.get(host, ["127.0.0.1"])
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address urllib3 connects to (a spy: the connection still happens)."""
    real = urllib3.util.connection.create_connection
    seen: list[str] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.append(address[0])
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return seen


def test_https_fetch_checks_the_certificate_against_the_host_name(server: Server) -> None:
    data = fetch_bytes(
        server.url("/portrait.png"), settings=server.settings(), max_bytes=MB, what="portrait"
    )
    assert data == PNG


def test_host_header_names_the_host_not_the_address(server: Server) -> None:
    data = fetch_bytes(server.url("/host"), settings=server.settings(), max_bytes=MB, what="x")
    assert data.decode() == f"localhost:{server.port}"


def test_connects_to_the_address_it_checked_without_a_second_lookup(
    server: Server, fake_dns: dict[str, int], connections: list[str]
) -> None:
    url = server.url("/portrait.png", host="rebind.test")
    assert fetch_bytes(url, settings=server.settings(), max_bytes=MB, what="portrait") == PNG
    assert fake_dns["rebind.test"] == 1
    assert connections == ["127.0.0.1"]


def test_default_settings_refuse_loopback(server: Server, connections: list[str]) -> None:
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url("/portrait.png"),
            settings=FetchSettings(ca_bundle=server.ca_file),
            max_bytes=MB,
            what="portrait",
        )
    assert excinfo.value.code == ErrorCode.URL_TARGET_FORBIDDEN
    assert "portrait" in excinfo.value.message
    assert "not a public address" in excinfo.value.message
    assert connections == []


def test_certificate_from_an_unknown_ca_is_refused(server: Server) -> None:
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url("/portrait.png"),
            settings=server.settings(ca_bundle=None),
            max_bytes=MB,
            what="portrait",
        )
    assert excinfo.value.code == ErrorCode.DOWNLOAD_FAILED
    assert not excinfo.value.retriable
    assert "certificate" in excinfo.value.message


def test_certificate_must_name_the_host(server: Server) -> None:
    with pytest.raises(JobError) as excinfo:  # the certificate names no IP address
        fetch_bytes(
            server.url("/portrait.png", host="127.0.0.1"),
            settings=server.settings(),
            max_bytes=MB,
            what="portrait",
        )
    assert excinfo.value.code == ErrorCode.DOWNLOAD_FAILED
    assert not excinfo.value.retriable


def test_redirects_are_followed_up_to_the_limit(server: Server) -> None:
    settings = server.settings(max_redirects=3)
    assert fetch_bytes(server.url("/redirect/3"), settings=settings, max_bytes=MB, what="p") == PNG
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(server.url("/redirect/4"), settings=settings, max_bytes=MB, what="p")
    assert excinfo.value.code == ErrorCode.DOWNLOAD_FAILED
    assert "more than 3 redirects" in excinfo.value.message


@pytest.mark.parametrize("route", ["/to-http", "/to-file"])
def test_redirect_to_another_scheme_is_refused(server: Server, route: str) -> None:
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(server.url(route), settings=server.settings(), max_bytes=MB, what="portrait")
    assert excinfo.value.code == ErrorCode.URL_SCHEME_NOT_ALLOWED


def test_redirect_to_the_metadata_server_is_refused_before_connecting(
    server: Server,
    fake_dns: dict[str, int],
    connections: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With private networks forbidden, pretend our loopback server is a public site.

    The policy is widened for exactly 127.0.0.1 (there is no public server here);
    the redirect hop must still go through the real policy and be refused.
    """
    real_policy = urls.address_forbidden
    monkeypatch.setattr(
        urls,
        "address_forbidden",
        lambda address: str(address) != "127.0.0.1" and real_policy(address),
    )
    settings = server.settings(allow_private_networks=False)
    url = server.url("/portrait.png", host="public.test")
    assert fetch_bytes(url, settings=settings, max_bytes=MB, what="portrait") == PNG
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url("/to-metadata", host="public.test"),
            settings=settings,
            max_bytes=MB,
            what="portrait",
        )
    assert excinfo.value.code == ErrorCode.URL_TARGET_FORBIDDEN
    assert "169.254.169.254" in excinfo.value.message
    assert "169.254.169.254" not in connections
    assert set(connections) == {"127.0.0.1"}


@pytest.mark.parametrize("junk", range(len(_JUNK_LOCATIONS)))
def test_a_redirect_to_a_malformed_url_fails_the_download_not_the_job_code(
    server: Server, junk: int
) -> None:
    """The server's Location is at fault, not the job's URL: DownloadFailed, never a crash."""
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url(f"/to-junk/{junk}"), settings=server.settings(), max_bytes=MB, what="p"
        )
    assert excinfo.value.code == ErrorCode.DOWNLOAD_FAILED
    assert not excinfo.value.retriable
    assert "redirected to an invalid URL" in excinfo.value.message


def test_a_redirect_to_a_numeric_spelling_of_the_metadata_server_is_refused(
    server: Server,
    fake_dns: dict[str, int],
    connections: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2852039166 is 169.254.169.254 to the resolver; the hop is checked as it resolves."""
    real_policy = urls.address_forbidden
    monkeypatch.setattr(
        urls,
        "address_forbidden",
        lambda address: str(address) != "127.0.0.1" and real_policy(address),
    )
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url("/to-metadata-as-a-number", host="public.test"),
            settings=server.settings(allow_private_networks=False),
            max_bytes=MB,
            what="portrait",
        )
    assert excinfo.value.code == ErrorCode.URL_TARGET_FORBIDDEN
    assert "resolves to 169.254.169.254" in excinfo.value.message
    assert set(connections) == {"127.0.0.1"}


def test_next_address_is_tried_when_one_refuses(
    server: Server, fake_dns: dict[str, int], connections: list[str]
) -> None:
    url = server.url("/portrait.png", host="multi.test")
    assert fetch_bytes(url, settings=server.settings(), max_bytes=MB, what="portrait") == PNG
    assert connections == ["127.0.0.2", "127.0.0.1"]


def test_one_private_address_among_the_answers_is_enough_to_refuse(
    server: Server,
    fake_dns: dict[str, int],
    connections: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_policy = urls.address_forbidden
    monkeypatch.setattr(
        urls,
        "address_forbidden",
        lambda address: str(address) != "127.0.0.1" and real_policy(address),
    )
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url("/portrait.png", host="mixed.test"),
            settings=server.settings(allow_private_networks=False),
            max_bytes=MB,
            what="portrait",
        )
    assert excinfo.value.code == ErrorCode.URL_TARGET_FORBIDDEN
    assert "10.0.0.1" in excinfo.value.message
    assert connections == []


@pytest.mark.parametrize(
    ("route", "code", "retriable"),
    [
        ("/missing", ErrorCode.INPUT_NOT_FOUND, False),
        ("/gone", ErrorCode.INPUT_NOT_FOUND, False),
        ("/forbidden", ErrorCode.DOWNLOAD_FAILED, False),
        ("/busy", ErrorCode.DOWNLOAD_FAILED, True),
        ("/broken", ErrorCode.DOWNLOAD_FAILED, True),
    ],
)
def test_http_errors_map_to_codes(
    server: Server, route: str, code: ErrorCode, retriable: bool
) -> None:
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url(route) + "?signature=SECRET",
            settings=server.settings(),
            max_bytes=MB,
            what="portrait",
            field="portrait",
        )
    error = excinfo.value
    assert (error.code, error.retriable, error.field) == (code, retriable, "portrait")
    assert error.message.startswith(f"portrait https://localhost:{server.port}{route}?…")
    assert "SECRET" not in error.message
    assert "Traceback" not in error.message


def test_content_length_over_the_limit_is_refused_up_front(server: Server) -> None:
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(server.url("/huge"), settings=server.settings(), max_bytes=MB, what="audio")
    assert excinfo.value.code == ErrorCode.DOWNLOAD_TOO_LARGE


def test_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url("/chunked"), settings=server.settings(), max_bytes=100_000, what="audio"
        )
    assert excinfo.value.code == ErrorCode.DOWNLOAD_TOO_LARGE
    assert "100000 bytes" in excinfo.value.message


def test_stalled_body_times_out_retriably(server: Server) -> None:
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            server.url("/stall"),
            settings=server.settings(timeout_seconds=0.3),
            max_bytes=MB,
            what="audio",
        )
    assert excinfo.value.code == ErrorCode.DOWNLOAD_FAILED
    assert excinfo.value.retriable


def test_silent_server_times_out_retriably(server: Server) -> None:
    with socket.socket() as listener:  # accepts TCP (backlog) but never speaks TLS
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(JobError) as excinfo:
            fetch_bytes(
                f"https://localhost:{port}/x",
                settings=server.settings(timeout_seconds=0.3),
                max_bytes=MB,
                what="portrait",
            )
    assert excinfo.value.code == ErrorCode.DOWNLOAD_FAILED
    assert excinfo.value.retriable
    assert time.monotonic() - started < 3


def test_connection_refused_is_retriable(server: Server) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(JobError) as excinfo:
        fetch_bytes(
            f"https://localhost:{port}/x", settings=server.settings(), max_bytes=MB, what="p"
        )
    assert excinfo.value.code == ErrorCode.DOWNLOAD_FAILED
    assert excinfo.value.retriable
