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
