"""Start a real ``avatar-runtime serve`` process on loopback and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

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
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"runtime exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{runtime.url}/readyz", timeout=2).status_code == 200 or not ready:
                return runtime
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    runtime.stop()
    raise RuntimeError(f"runtime not ready in 90 s:\n{log.read_text()}")


def wait_unhealthy(runtime: Runtime, timeout: float = 30) -> httpx.Response:
    """The first failing ``/healthz`` answer (a pod whose loading failed), or the last one."""
    deadline = time.monotonic() + timeout
    health = httpx.get(f"{runtime.url}/healthz", timeout=5)
    while health.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        health = httpx.get(f"{runtime.url}/healthz", timeout=5)
    return health


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if status["state"] in states:
            return status
        time.sleep(interval)
    raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {status}")


def poll_until(
    client: httpx.Client, job_id: str, predicate: Any, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never matched: {status}")


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def iter_metrics(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value
