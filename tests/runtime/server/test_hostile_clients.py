"""A real runtime process against hostile and broken clients, over loopback.

Limits come before work: a body over the limit, or without a token, is refused
before it is read (and the pod's memory does not grow); a connection that sends
headers and no body, or nothing at all, is cut off; text over the limit is
refused at admission. Long polls wait on the event loop, so 500 of them leave
the probes answering within 100 ms; past the cap a poll gets 429.

One process serves every test (1 slot, short body and header timeouts). Its one
slot is held by a job whose portrait URL leads to a socket that never answers,
so that job runs, without using the CPU, for as long as the tests need.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.runtime.server.harness import (
    MEDIUM_TEXT,
    Runtime,
    connect,
    iter_metrics,
    job_body,
    poll_until,
    raw_request_head,
    read_answer,
    rss_bytes,
    start_runtime,
)

TOKEN = "hostile-tests-token"
MB = 1024 * 1024
LONG_POLLS = 500
TIMEOUT = 1.0  # the body and the header timeout of this module's runtime, seconds


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that takes connections and never says a word (nothing calls accept)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    env = {
        "AVATAR_RUNTIME_SERVER__BODY_TIMEOUT_SECONDS": str(TIMEOUT),
        "AVATAR_RUNTIME_SERVER__HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "AVATAR_RUNTIME_SERVER__MAX_LONG_POLLS": str(LONG_POLLS),
        "AVATAR_RUNTIME_FETCH__ALLOW_PRIVATE_NETWORKS": "true",  # the silent port
        "AVATAR_RUNTIME_FETCH__TIMEOUT_SECONDS": "120",
    }
    tmp = tmp_path_factory.mktemp("hostile")
    process = start_runtime(tmp, slots=1, queue_limit=2, token=TOKEN, env=env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(runtime: Runtime) -> Iterator[httpx.Client]:
    with runtime.client() as client:
        yield client


@pytest.fixture(scope="module")
def blocked(runtime: Runtime, api: httpx.Client, portrait_png: Path, silent_port: int) -> str:
    """The id of a job that runs, idle, for the whole module: its portrait never arrives."""
    body = job_body("blocked", portrait_png, runtime.out)
    body["inputs"]["portrait"] = f"https://127.0.0.1:{silent_port}/portrait.png"
    assert api.post("/v1/jobs", json=body).status_code == 202
    poll_until(api, "blocked", lambda s: s["state"] == "running", timeout=10)
    return "blocked"


def _json_head(runtime: Runtime, length: int | None, *, token: str | None = TOKEN) -> bytes:
    headers = {"Content-Type": "application/json"}
    headers |= {"Content-Length": str(length)} if length is not None else {}
    headers |= {} if length is not None else {"Transfer-Encoding": "chunked"}
    return raw_request_head(runtime, "POST", "/v1/jobs", headers=headers, token=token)


def _send_quietly(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send in the background as a hostile client would; the server may hang up on it."""

    def send() -> None:
        with contextlib.suppress(OSError):  # refused and closed: what we want
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _settled_rss(runtime: Runtime) -> int:
    time.sleep(0.3)
    return rss_bytes(runtime)


# -- bodies ----------------------------------------------------------------------------


def test_a_20_mb_body_is_refused_413_before_it_is_read(runtime: Runtime) -> None:
    payload = b"{" + b" " * (20 * MB - 2) + b"}"
    with connect(runtime) as sock:  # once first, so every code path is loaded before measuring
        sock.sendall(_json_head(runtime, len(payload)))
        assert read_answer(sock).status == 413
    before = _settled_rss(runtime)
    with connect(runtime) as sock:
        started = time.monotonic()
        sock.sendall(_json_head(runtime, len(payload)))
        sender = _send_quietly(sock, payload)
        answer = read_answer(sock)
        took = time.monotonic() - started
        sender.join(5)
    grown = _settled_rss(runtime) - before
    assert answer.status == 413, answer
    error = answer.json()["error"]
    assert (error["code"], error["retriable"]) == ("RequestTooLarge", False)
    assert answer.closed  # the rest of the body is never taken in
    assert took < 1.0
    assert grown < 4 * MB, f"RSS grew {grown / MB:.1f} MB"


def test_a_chunked_body_is_cut_off_at_the_limit(runtime: Runtime) -> None:
    """Without a declared length the guard counts what comes and stops at the limit."""
    chunk = 64 * 1024
    chunks = b"".join(b"%x\r\n%s\r\n" % (chunk, b" " * chunk) for _ in range(20 * MB // chunk))
    before = _settled_rss(runtime)
    with connect(runtime) as sock:
        sock.sendall(_json_head(runtime, None))
        sender = _send_quietly(sock, chunks + b"0\r\n\r\n")
        answer = read_answer(sock)
        sender.join(5)
    grown = _settled_rss(runtime) - before
    assert answer.status == 413, answer
    assert answer.json()["error"]["code"] == "RequestTooLarge"
    assert "passed" in answer.json()["error"]["message"]
    assert grown < 4 * MB, f"RSS grew {grown / MB:.1f} MB"


def test_a_200_mb_body_without_a_token_is_refused_401_unread(runtime: Runtime) -> None:
    before = _settled_rss(runtime)
    with connect(runtime) as sock:
        started = time.monotonic()
        sock.sendall(_json_head(runtime, 200 * MB, token=None))
        sender = _send_quietly(sock, b" " * (16 * MB))  # a start; the rest never goes out
        answer = read_answer(sock)
        took = time.monotonic() - started
        sender.join(5)
    grown = _settled_rss(runtime) - before
    assert answer.status == 401, answer
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"]["code"] == "Unauthorized"
    assert answer.closed
    assert took < 1.0
    assert grown < 4 * MB, f"RSS grew {grown / MB:.1f} MB"


def test_headers_without_the_body_are_cut_off_after_the_body_timeout(runtime: Runtime) -> None:
    """Slowloris: a declared body that never comes holds the connection no longer."""
    with connect(runtime) as sock:
        started = time.monotonic()
        sock.sendall(_json_head(runtime, 1000) + b'{"id": "slow')  # and then nothing
        answer = read_answer(sock)
        took = time.monotonic() - started
    assert answer.status == 408, answer
    error = answer.json()["error"]
    assert (error["code"], error["retriable"]) == ("InvalidRequest", True)
    assert answer.closed
    assert TIMEOUT <= took < TIMEOUT + 1.0


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"])
def test_a_connection_without_complete_headers_is_closed(runtime: Runtime, sent: bytes) -> None:
    """Nothing at all, or a request line and never the headers' end: uvicorn alone waits."""
    started = time.monotonic()  # the clock runs from the connection's opening
    with connect(runtime) as sock:
        sock.sendall(sent)
        assert sock.recv(1024) == b""  # closed, without an answer
        took = time.monotonic() - started
    assert TIMEOUT <= took < TIMEOUT + 1.0


def test_endless_headers_are_refused_with_a_typed_error(runtime: Runtime) -> None:
    """What h11 cannot take never reaches the app; even so, the answer is an ErrorBody."""
    head = raw_request_head(runtime, "GET", "/healthz").removesuffix(b"\r\n")
    with connect(runtime) as sock:
        sock.sendall(head + b"X-Padding: " + b"a" * (32 * 1024))  # past 16 KiB, never ending
        answer = read_answer(sock)
    assert answer.status == 400, answer
    assert answer.json()["error"]["code"] == "InvalidRequest"
    assert answer.closed


def test_text_over_the_limit_is_refused_at_admission(
    runtime: Runtime, api: httpx.Client, portrait_png: Path, blocked: str
) -> None:
    started = time.monotonic()
    answer = api.post("/v1/jobs", json=job_body("wordy", portrait_png, runtime.out, "a" * 5001))
    took = time.monotonic() - started
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("TextTooLong", "inputs.text")
    assert "5001" in error["message"]
    assert took < 1.0
    assert api.get("/v1/jobs/wordy").status_code == 404  # never admitted

    # Counted as the pipeline counts it: whitespace that collapses does not count.
    padded = "     ".join(["word"] * 1000)  # 8,995 characters; 4,999 once cleaned
    body = job_body("spacious", portrait_png, runtime.out, padded)
    assert api.post("/v1/jobs", json=body).status_code == 202  # queued behind the blocked job
    assert api.delete("/v1/jobs/spacious").json()["state"] == "cancelled"


# -- long polls ------------------------------------------------------------------------


def _open_long_polls(runtime: Runtime, job_id: str, count: int) -> list[socket.socket]:
    head = raw_request_head(runtime, "GET", f"/v1/jobs/{job_id}?wait=25", token=TOKEN)
    polls = []
    for _ in range(count):
        sock = connect(runtime)
        sock.sendall(head)
        polls.append(sock)
    return polls


def _long_polls_open(runtime: Runtime) -> float:
    text = httpx.get(f"{runtime.url}/metrics", timeout=5).text
    return next(v for n, _, v in iter_metrics(text) if n == "avatar_runtime_long_polls")


def _probe(runtime: Runtime, path: str) -> tuple[float, int]:
    """One probe as the kubelet sends it: a new connection, one GET; seconds and status."""
    host, port = runtime.url.removeprefix("http://").split(":")
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"} if path.startswith("/v1/") else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    return time.perf_counter() - started, response.status


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def test_500_long_polls_leave_the_probes_answering_within_100_ms(
    runtime: Runtime, api: httpx.Client, blocked: str, portrait_png: Path
) -> None:
    polls = _open_long_polls(runtime, blocked, LONG_POLLS)
    try:
        deadline = time.monotonic() + 10
        while _long_polls_open(runtime) < LONG_POLLS:
            assert time.monotonic() < deadline, _long_polls_open(runtime)
            time.sleep(0.05)

        routes = ("/healthz", "/readyz", "/metrics", "/v1/capacity")
        seconds: dict[str, list[float]] = {route: [] for route in routes}
        for _ in range(40):
            for route in routes:
                took, status = _probe(runtime, route)
                assert status == 200, route
                seconds[route].append(took)
        p99 = {route: _p99(samples) for route, samples in seconds.items()}
        print("p99 ms:", {route: round(s * 1000, 1) for route, s in p99.items()})
        assert all(s < 0.1 for s in p99.values()), p99

        started = time.monotonic()
        body = job_body("through", portrait_png, runtime.out, MEDIUM_TEXT)
        assert api.post("/v1/jobs", json=body).status_code == 202
        assert time.monotonic() - started < 1.0
        assert api.delete("/v1/jobs/through").status_code == 200

        started = time.monotonic()
        refused = api.get(f"/v1/jobs/{blocked}", params={"wait": 25})
        assert time.monotonic() - started < 1.0
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "1"
        error = refused.json()["error"]
        assert (error["code"], error["retriable"]) == ("TooManyLongPolls", True)
        assert api.get(f"/v1/jobs/{blocked}").json()["state"] == "running"  # no wait: answered
    finally:
        for sock in polls:
            sock.close()
    # A client that hangs up gives its place back at once, not when its wait runs out.
    deadline = time.monotonic() + 5
    while _long_polls_open(runtime) > 0:
        assert time.monotonic() < deadline, _long_polls_open(runtime)
        time.sleep(0.05)


def test_refusals_are_counted(runtime: Runtime) -> None:
    text = httpx.get(f"{runtime.url}/metrics", timeout=5).text
    refused = {
        labels["reason"]: value
        for name, labels, value in iter_metrics(text)
        if name == "avatar_runtime_requests_refused_total"
    }
    assert refused["unauthorized"] >= 1
    assert refused["body_too_large"] >= 2
    assert refused["body_timeout"] >= 1
    assert refused["long_polls_full"] >= 1


def test_unknown_routes_answer_a_typed_error(api: httpx.Client) -> None:
    answer = api.get("/v2/nothing-here")
    assert answer.status_code == 404
    assert json.loads(answer.content)["error"]["code"] == "InvalidRequest"
