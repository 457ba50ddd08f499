"""The runtime pods the operator can dispatch to: found by label, sized by ``/v1/capacity``.

The pod watch says which pods exist and are ready; the capacity read (``CapacityReader``)
says how many slots each has, which engines it runs and whether it accepts work. Free
slots are counted from the operator's own dispatches, so a slot is taken the moment a
job is sent, not when the next capacity read notices it. A pod the scaling loop chose
to remove (``retire``) takes no new job, and the registry keeps since when each pod is
idle and, through ``usage``, each job's share of its pod's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from avatar_operator.runtime_client import RuntimeClient
from avatar_operator.settings import POOL_LABEL
from avatar_operator.usage import GpuTime
from avatar_runtime.api.schemas import Capacity

log = logging.getLogger(__name__)


@dataclass
class PodRecord:
    """What the operator knows of one runtime pod (the runtime's own ``RuntimePod`` is the
    process inside it)."""

    name: str
    pool: str = "default"
    address: str | None = None
    port: int = 8080
    ready: bool = False
    terminating: bool = False
    """Being deleted: takes no new jobs, but still finishes (or interrupts) its own."""
    disrupted: bool = False
    """Kubernetes ended it for the platform's reasons: preempted, evicted, its node shut down."""
    gone: bool = False
    """Deleted, or its process ended: its jobs must run elsewhere."""
    capacity: Capacity | None = None
    capacity_read: float = 0.0
    jobs: set[str] = field(default_factory=set)
    """Jobs the operator has on this pod (sent, or being sent)."""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    gpus: int = 0
    """``nvidia.com/gpu`` the pod's containers are given."""
    retiring: bool = False
    """Chosen by the scaling loop for removal: takes no new job."""
    idle_since: float | None = None
    """Monotonic time since when the operator has no job on the pod (None: busy, or unknown)."""

    @property
    def url(self) -> str | None:
        return f"http://{self.address}:{self.port}" if self.address else None

    def runs(self, *, tts: str | None, renderer: str | None) -> bool:
        """Whether the pod runs the engines a job asks for (None: any)."""
        if self.capacity is None:
            return False
        engines = self.capacity.engines
        return (tts is None or engines.tts == tts) and (
            renderer is None or engines.renderer == renderer
        )

    @property
    def free(self) -> int:
        if (
            not self.ready
            or self.retiring
            or self.terminating
            or self.gone
            or self.capacity is None
            or not self.capacity.accepting
        ):
            return 0
        return max(0, self.capacity.slots_total - len(self.jobs))


def _is_ready(status: Mapping[str, Any]) -> bool:
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


# What the kubelet and the control plane write on a pod they end for their own reasons.
_DISRUPTED_REASONS = frozenset({"Evicted", "NodeShutdown", "Shutdown", "Terminated", "Preempting"})


def _disrupted(status: Mapping[str, Any]) -> bool:
    if status.get("reason") in _DISRUPTED_REASONS:
        return True
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _gpus(spec: Mapping[str, Any]) -> int:
    total = 0
    for container in spec.get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        total += int(limits.get("nvidia.com/gpu") or 0)
    return total


def _http_port(spec: Mapping[str, Any], default: int) -> int:
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "http" and port.get("containerPort"):
                return int(port["containerPort"])
    return default


class PodRegistry:
    def __init__(self, *, namespace: str, default_port: int) -> None:
        self.namespace = namespace
        self.default_port = default_port
        self._pods: dict[str, PodRecord] = {}
        self.usage = GpuTime()
        self.on_busy: Callable[[PodRecord], None] = lambda pod: None
        """Called when an idle pod gets a job (the scaling loop shields it from eviction)."""

    def get(self, name: str) -> PodRecord | None:
        return self._pods.get(name)

    def all(self) -> list[PodRecord]:
        return list(self._pods.values())

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> PodRecord | None:
        """Apply one watch event; returns the pod when it may have gained free slots."""
        meta = body.get("metadata") or {}
        if meta.get("namespace", "") != self.namespace:
            return None
        name = meta["name"]
        pod = self._pods.setdefault(name, PodRecord(name=name))
        labels = meta.get("labels") or {}
        pod.pool = labels.get(POOL_LABEL) or "default"
        pod.labels, pod.annotations = dict(labels), dict(meta.get("annotations") or {})
        status = body.get("status") or {}
        was_ready = pod.ready
        pod.address = status.get("podIP") or pod.address
        pod.port = _http_port(body.get("spec") or {}, self.default_port)
        pod.gpus = _gpus(body.get("spec") or {})
        terminated = status.get("phase") in ("Succeeded", "Failed")
        pod.terminating = bool(meta.get("deletionTimestamp"))
        pod.disrupted = _disrupted(status)
        pod.gone = event_type == "DELETED" or terminated
        pod.ready = _is_ready(status) and not pod.gone and not pod.terminating
        if not pod.ready:
            pod.capacity = None
        elif not was_ready and not pod.jobs:
            pod.idle_since = time.monotonic()
        if pod.gone and not pod.jobs and event_type == "DELETED":
            del self._pods[name]
        return pod if pod.ready and not was_ready else None

    def reserve(self, name: str, uid: str) -> PodRecord:
        """Count a job against a pod, known yet or not (an adopted job after a restart)."""
        pod = self._pods.setdefault(name, PodRecord(name=name, port=self.default_port))
        was_idle = not pod.jobs
        pod.jobs.add(uid)
        pod.idle_since = None
        self.usage.start(name, uid, gpus=pod.gpus)
        if was_idle:
            self.on_busy(pod)
        return pod

    def release(self, name: str, uid: str) -> None:
        pod = self._pods.get(name)
        self.usage.stop(name, uid)
        if pod is None:
            return
        pod.jobs.discard(uid)
        if not pod.jobs and pod.idle_since is None:
            pod.idle_since = time.monotonic()
        if pod.gone and not pod.jobs:
            del self._pods[name]

    def set_capacity(self, name: str, capacity: Capacity | None) -> None:
        pod = self._pods.get(name)
        if pod is not None:
            pod.capacity = capacity
            pod.capacity_read = time.monotonic()

    def pick(
        self, pool: str, *, tts: str | None = None, renderer: str | None = None
    ) -> PodRecord | None:
        """The pool's pod with the most free slots (spreads jobs) that runs the engines asked."""
        best: PodRecord | None = None
        for pod in self._pods.values():
            if pod.pool != pool or pod.free <= 0 or not pod.runs(tts=tts, renderer=renderer):
                continue
            if best is None or (pod.free, best.name) > (best.free, pod.name):
                best = pod
        return best

    def offered(self, pool: str, *, tts: str | None, renderer: str | None) -> bool:
        """Whether any ready pod of the pool runs those engines, busy or not."""
        return any(
            p.pool == pool and p.ready and p.runs(tts=tts, renderer=renderer)
            for p in self._pods.values()
        )

    def has_free(self, pool: str) -> bool:
        return any(p.pool == pool and p.free > 0 for p in self._pods.values())

    def pools(self) -> set[str]:
        return {p.pool for p in self._pods.values()}

    def retire(self, name: str, retiring: bool = True) -> None:
        """Stop (or resume) dispatching to a pod the scaling loop removes."""
        pod = self._pods.get(name)
        if pod is not None:
            pod.retiring = retiring


class CapacityReader:
    """Reads each ready pod's capacity: at once when it becomes ready, then now and then.

    ``wanted()`` asks for a read soon (a pod became ready, or refused a job); pods are
    read concurrently, and ``on_read`` runs after each round that read any, so the
    dispatcher looks at the new free slots at once.
    """

    def __init__(
        self,
        *,
        pods: PodRegistry,
        runtime: RuntimeClient,
        refresh_seconds: float,
        on_read: Callable[[], None],
    ) -> None:
        self.pods = pods
        self.runtime = runtime
        self.refresh_seconds = refresh_seconds
        self._on_read = on_read
        self._wanted = asyncio.Event()

    def wanted(self) -> None:
        self._wanted.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), 1.0)
            self._wanted.clear()
            await self.read_stale()

    async def read_stale(self) -> None:
        now = time.monotonic()
        stale = [
            p
            for p in self.pods.all()
            if p.ready
            and p.url
            and (p.capacity is None or now - p.capacity_read > self.refresh_seconds)
        ]
        results = await asyncio.gather(
            *(self.runtime.capacity(p.url) for p in stale if p.url), return_exceptions=True
        )
        for pod, result in zip(stale, results, strict=True):
            if isinstance(result, BaseException):
                log.info("runtime pod %s: no capacity: %s", pod.name, result)
                self.pods.set_capacity(pod.name, None)
            else:
                self.pods.set_capacity(pod.name, result)
        if stale:
            self._on_read()
