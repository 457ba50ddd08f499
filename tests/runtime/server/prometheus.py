"""A real Prometheus server (Debian's ``prometheus`` package) on loopback, for tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatar_devcluster.waiting import wait_until
from tests.runtime.server.harness import free_port


@contextmanager
def prometheus(tmp: Path, *, target: str) -> Iterator[str]:
    """Scrape ``target`` (host:port) every second; yields the API base URL."""
    with prometheus_scraping(
        tmp, f"  - job_name: runtime\n    static_configs:\n      - targets: ['{target}']\n"
    ) as url:
        yield url


@contextmanager
def prometheus_scraping(tmp: Path, scrape_configs: str) -> Iterator[str]:
    """Prometheus with these ``scrape_configs`` (YAML), every second; yields the API's URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed; `make test` installs Debian's package")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n{scrape_configs}"
    )
    port = free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=30, what=lambda: f"prometheus to start:\n{log.read_text()}")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def query(url: str, expression: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expression}, timeout=10).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def wait_for_value(url: str, expression: str, *, timeout: float = 30) -> float:
    """The first sample of ``expression`` once it is positive."""

    def positive() -> float | None:
        result = query(url, expression)
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value > 0 else None

    return wait_until(
        positive,
        timeout=timeout,
        every=0.5,
        what=lambda: f"{expression} to become positive: {query(url, expression)}",
    )
