"""Start a real ``avatar-runtime serve`` process on loopback and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from avatar_devcluster.waiting import wait_until

CLI = str(Path(sys.executable).parent / "avatar-runtime")

SHORT_TEXT = "Hi there, nice to meet you."
MEDIUM_TEXT = "This is one of several videos that the runtime renders at the same time."
LONG_TEXT = (
    "This video takes a while. It talks about the weather, the news, and the plans for the"
    " weekend, and then it talks some more, so that there is time to look at it while it"
    " renders, to cancel it, or to stop the server in the middle of it. Then it says goodbye,"
    " and thanks everybody for watching until the very end."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Runtime:
    process: subprocess.Popen[bytes]
    url: str
    out: Path
    log: Path
    token: str | None

    def client(self, *, token: str | None = None, auth: bool = True) -> httpx.Client:
        headers = {}
        if auth and (token or self.token):
            headers["Authorization"] = f"Bearer {token or self.token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_runtime(
    tmp: Path,
    *,
    slots: int,
    queue_limit: int,
    token: str | None = None,
    grace: float = 60.0,
    env: dict[str, str] | None = None,
    ready: bool = True,
) -> Runtime:
    """Start the server; with ``ready=False``, return as soon as it answers at all."""
    port = free_port()
    out = tmp / "out"
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        # Tests read portraits from disk; a pod refuses file:// unless told otherwise.
        "AVATAR_RUNTIME_FETCH__ALLOWED_SCHEMES": '["file", "https"]',
        "AVATAR_RUNTIME_SERVER__TOKEN": token or "",
        **(env or {}),
    }
    args = [
        CLI,
        "serve",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--slots", str(slots),
        "--queue-limit", str(queue_limit),
        "--grace", str(grace),
        "--output-root", str(out),
    ]  # fmt: skip
    log = tmp / "runtime.log"
    process = subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    runtime = Runtime(process, f"http://127.0.0.1:{port}", out, log, token)

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"runtime exited {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{runtime.url}/readyz", timeout=2).status_code == 200 or not ready
        except httpx.TransportError:
            return False

    try:
        wait_until(answering, timeout=90, what="the runtime to answer /readyz")
    except TimeoutError:
        runtime.stop()
        raise RuntimeError(f"runtime not ready in 90 s:\n{log.read_text()}") from None
    return runtime


def wait_unhealthy(runtime: Runtime, timeout: float = 30) -> httpx.Response:
    """The first failing ``/healthz`` answer (a pod whose loading failed), or the last one."""
    answers: list[httpx.Response] = []

    def failing() -> httpx.Response | None:
        answers.append(httpx.get(f"{runtime.url}/healthz", timeout=5))
        return answers[-1] if answers[-1].status_code != 200 else None

    try:
        return wait_until(failing, timeout=timeout, what="/healthz to fail")
    except TimeoutError:
        return answers[-1]


def job_body(job_id: str, portrait: Path, out: Path, text: str = MEDIUM_TEXT) -> dict[str, Any]:
    return {
        "id": job_id,
        "inputs": {"portrait": str(portrait), "text": text},
        "options": {"resolution": 256},
        "output": str(out / job_id) + "/",
    }


def wait_for(
    client: httpx.Client,
    job_id: str,
    *,
    states: set[str],
    timeout: float = 120,
    interval: float = 0.1,
) -> dict[str, Any]:
    return _wait_for_job(
        client,
        job_id,
        predicate=lambda s: s["state"] in states,
        wanted=f"in {states}",
        timeout=timeout,
        every=interval,
    )


def poll_until(
    client: httpx.Client, job_id: str, predicate: Any, timeout: float = 60
) -> dict[str, Any]:
    return _wait_for_job(
        client, job_id, predicate=predicate, wanted="to match", timeout=timeout, every=0.05
    )


def _wait_for_job(
    client: httpx.Client,
    job_id: str,
    *,
    predicate: Callable[[dict[str, Any]], bool],
    wanted: str,
    timeout: float,
    every: float,
) -> dict[str, Any]:
    """The job's status once ``predicate`` holds; on timeout, the error shows the last one."""
    seen: list[dict[str, Any]] = [{}]

    def matching() -> dict[str, Any] | None:
        seen[0] = client.get(f"/v1/jobs/{job_id}").json()
        return seen[0] if predicate(seen[0]) else None

    return wait_until(
        matching, timeout=timeout, every=every, what=lambda: f"job {job_id} {wanted}: {seen[0]}"
    )


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def iter_metrics(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def rss_bytes(runtime: Runtime) -> int:
    """The runtime process's resident memory now (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{runtime.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line")


@dataclass
class RawAnswer:
    """An HTTP/1.1 answer read off a raw socket: status line and headers parsed, body as is."""

    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool
    """The server closed the connection after the answer."""

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request_head(
    runtime: Runtime,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> bytes:
    """A request's line and headers, to send on a socket as a client that httpx is not would."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {runtime.url.removeprefix('http://')}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(runtime: Runtime, *, timeout: float = 10.0) -> socket.socket:
    host, port = runtime.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_answer(sock: socket.socket) -> RawAnswer:
    """Read one answer (its Content-Length's worth of body), then whether the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    timeout = sock.gettimeout()
    sock.settimeout(1.0)
    try:
        closed = sock.recv(1) == b""
    except TimeoutError:
        closed = False
    except ConnectionResetError:
        closed = True
    finally:
        sock.settimeout(timeout)
    return RawAnswer(int(status_line.split()[1]), headers, body[:length], closed)
