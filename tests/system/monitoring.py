"""A real Prometheus scraping the local system's runtime pods, and a recorder of the pool.

Prometheus is Debian's package on loopback. On GKE it finds the runtime pods through a
PodMonitor (Kubernetes service discovery); Debian builds Prometheus without the
Kubernetes discovery, so ``PodDiscovery`` stands in for it: it lists the dev cluster's
runtime pods and writes them as a ``file_sd`` target file, labelled ``namespace`` and
``pod`` as a PodMonitor labels them. Everything else (the scrapes, the series, the
PromQL the operator sends) is Prometheus itself.

``Recorder`` keeps what the tests assert on afterwards: each pod's life (when it was
first seen, when it was marked for deletion) and every distinct decision and scale in
the pool's status.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from avatar_devcluster import stack
from avatar_devcluster.local_system import RUNTIME_NAMESPACE
from avatar_operator import settings
from tests.runtime.server.prometheus import prometheus_scraping


def _pods(api: httpx.Client) -> list[dict[str, Any]]:
    answer = api.get(
        f"/api/v1/namespaces/{RUNTIME_NAMESPACE}/pods",
        params={"labelSelector": settings.POOL_LABEL},
    )
    items: list[dict[str, Any]] = answer.raise_for_status().json()["items"]
    return items


class _Poller(threading.Thread):
    """Calls ``poll`` every ``every`` seconds until stopped; errors are kept, not raised."""

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self._stop_event = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as api:
            while not self._stop_event.is_set():
                try:
                    self.poll(api)
                except Exception as exc:  # the API restarting, say: try again
                    self.errors.append(repr(exc))
                self._stop_event.wait(self.every)

    def poll(self, api: httpx.Client) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop polling, after one last poll: what the caller awaited is in it."""
        self._stop_event.set()
        self.join(10)
        with httpx.Client(base_url=self.url, timeout=10) as api:
            try:
                self.poll(api)
            except Exception as exc:
                self.errors.append(repr(exc))


class PodDiscovery(_Poller):
    """The runtime pods as a ``file_sd`` file: what Kubernetes discovery would give."""

    def __init__(self, url: str, targets: Path) -> None:
        super().__init__(url, every=0.5)
        self.targets = targets
        self.targets.write_text("[]")

    def poll(self, api: httpx.Client) -> None:
        groups = [
            {
                "targets": [f"{pod['status']['podIP']}:{stack.RUNTIME_PORT}"],
                "labels": {"namespace": RUNTIME_NAMESPACE, "pod": pod["metadata"]["name"]},
            }
            for pod in _pods(api)
            if (pod.get("status") or {}).get("podIP")
        ]
        text = json.dumps(groups, sort_keys=True)
        if text != self.targets.read_text():
            partial = self.targets.with_suffix(".tmp")
            partial.write_text(text)
            partial.replace(self.targets)  # Prometheus watches the file: whole, or not at all


@contextlib.contextmanager
def prometheus(tmp: Path, *, targets: Path) -> Iterator[str]:
    """Prometheus scraping the targets in ``targets`` every second; its API's URL."""
    scrape = (
        "  - job_name: runtime-pods\n    file_sd_configs:\n"
        f"      - files: ['{targets}']\n        refresh_interval: 1s\n"
    )
    with prometheus_scraping(tmp, scrape) as url:
        yield url


@dataclass
class PodLife:
    first_seen: float
    deleted: float | None = None
    """Wall time the pod was first seen marked for deletion; for a pod that went between
    two polls, the last poll that saw it unmarked (a lower bound, so never flattering)."""
    was_ready: bool = False
    last_seen: float = 0.0
    kept_from_autoscaler: bool = False
    """Seen with ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`` (while busy)."""


class Recorder(_Poller):
    """Each runtime pod's life and every distinct decision of one pool, polled."""

    def __init__(self, url: str, pool: str) -> None:
        super().__init__(url, every=0.2)
        self.pool = pool
        self.pods: dict[str, PodLife] = {}
        self.decisions: list[dict[str, Any]] = []
        self.scales: list[dict[str, Any]] = []
        """Each distinct ``lastScale``: a poll can miss a decision, not a scale it kept."""
        self.statuses: list[dict[str, Any]] = []

    def poll(self, api: httpx.Client) -> None:
        now = time.time()
        pods = _pods(api)
        for pod in pods:
            meta = pod["metadata"]
            life = self.pods.setdefault(meta["name"], PodLife(first_seen=now))
            life.last_seen = now
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (pod.get("status") or {}).get("conditions") or [])  # fmt: skip
            life.was_ready = life.was_ready or ready
            annotations = meta.get("annotations") or {}
            if annotations.get("cluster-autoscaler.kubernetes.io/safe-to-evict") == "false":
                life.kept_from_autoscaler = True
            if meta.get("deletionTimestamp") and life.deleted is None:
                life.deleted = now
        present = {pod["metadata"]["name"] for pod in pods}
        for name, life in self.pods.items():
            if name not in present and life.deleted is None:
                life.deleted = life.last_seen
        answer = api.get(
            f"/apis/{settings.GROUP}/{settings.VERSION}/namespaces/{RUNTIME_NAMESPACE}"
            f"/{settings.POOL_PLURAL}/{self.pool}"
        )
        if answer.status_code != 200:
            return
        status = answer.json().get("status") or {}
        if status and (not self.statuses or self.statuses[-1] != status):
            self.statuses.append(status)
        for key, seen in (("lastDecision", self.decisions), ("lastScale", self.scales)):
            decision = dict(status.get(key) or {})
            decision.pop("time", None)
            if decision and (not seen or seen[-1] != decision):
                seen.append(decision)
