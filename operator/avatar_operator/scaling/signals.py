"""What each runtime pod is doing, from Prometheus' HTTP API or from the pods' own /metrics.

Both sources read the same series of the runtime (``avatar_runtime_slots{state}``,
``avatar_runtime_video_seconds_total``, ``avatar_runtime_gpu_memory_*_bytes``) and give
the same figures per pod (``PodFigures``), which ``pod_signal`` joins with what the
operator knows itself (readiness, the jobs it sent, since when a pod is idle) into the
policy's ``PodSignal``. So the policy sees the same inputs whichever source is set up.

Throughput is *video seconds per second while busy*: the video seconds a pod finished
in the window divided by the time it had a busy slot in it. Prometheus computes it with
``increase()`` over a subquery of the busy gauge; the direct scrape keeps each pod's
samples over the window and computes the same from them. A pod that finished nothing
in the window has no measured throughput (None), rather than a zero.

Prometheus' series are matched to pods by their ``namespace`` and ``pod`` labels, the
ones a PodMonitor (kube-prometheus-stack) or a ``kubernetes_sd`` relabelling gives.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from avatar_operator.scaling.policy import PodSignal

log = logging.getLogger(__name__)

SLOTS = "avatar_runtime_slots"
VIDEO_SECONDS = "avatar_runtime_video_seconds_total"
GPU_USED = "avatar_runtime_gpu_memory_used_bytes"
GPU_TOTAL = "avatar_runtime_gpu_memory_total_bytes"


class SignalsError(Exception):
    """The source could not be read (Prometheus down, a bad answer)."""


@dataclass(frozen=True)
class PodTarget:
    """A pod to read: its name, and its address for a direct scrape."""

    name: str
    url: str | None = None


@dataclass(frozen=True)
class PodFigures:
    """One pod's figures, as either source reads them (None: not known)."""

    busy_slots: int | None = None
    slots: int | None = None
    throughput: float | None = None
    gpu_memory_used_bytes: float | None = None
    gpu_memory_total_bytes: float | None = None


class SignalSource(Protocol):
    """Where pods' figures come from: ``name`` is what the pool's status shows."""

    name: str

    async def read(self, namespace: str, pods: Sequence[PodTarget]) -> dict[str, PodFigures]:
        """Figures of those pods it knows of (a pod it has no figures for is left out)."""
        ...

    async def close(self) -> None: ...


def pod_signal(
    name: str,
    *,
    ready: bool,
    jobs: int,
    idle_since: float | None,
    figures: PodFigures | None,
) -> PodSignal:
    """The policy's view of a pod: the operator's own counts, and the source's figures.

    Busy slots are the larger of the jobs the operator sent and what the pod reported:
    a job sent a moment ago is not in any scrape yet, and a pod must never look idle
    while it renders (an idle pod may be removed).
    """
    figures = figures or PodFigures()
    busy = max(jobs, figures.busy_slots or 0)
    return PodSignal(
        name=name,
        ready=ready,
        busy_slots=busy,
        slots=max(figures.slots or 1, busy, 1),
        throughput=figures.throughput,
        idle_since=None if busy else idle_since,
        gpu_memory_used_bytes=figures.gpu_memory_used_bytes,
        gpu_memory_total_bytes=figures.gpu_memory_total_bytes,
    )


class PrometheusSource:
    """Prometheus' HTTP API (``/api/v1/query``): four instant queries per round, all pods."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        *,
        window_seconds: float,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.window = max(1, round(window_seconds))
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), timeout=timeout, transport=transport
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def read(self, namespace: str, pods: Sequence[PodTarget]) -> dict[str, PodFigures]:
        if not pods:
            return {}
        where = f'namespace="{namespace}"'
        step = max(1, self.window // 60)
        busy_now = f'sum by (pod) ({SLOTS}{{{where},state="busy"}})'
        # Seconds with a busy slot in the window: busy samples of a subquery, times its step.
        busy_seconds = f"sum_over_time(({busy_now} > bool 0)[{self.window}s:{step}s]) * {step}"
        made = f"sum by (pod) (increase({VIDEO_SECONDS}{{{where}}}[{self.window}s]))"
        busy = await self._vector(busy_now)
        slots = await self._vector(f"sum by (pod) ({SLOTS}{{{where}}})")
        throughput = await self._vector(f"({made} > 0) / ({busy_seconds} > 0)")
        used = await self._vector(f"sum by (pod) ({GPU_USED}{{{where}}})")
        total = await self._vector(f"sum by (pod) ({GPU_TOTAL}{{{where}}})")
        out: dict[str, PodFigures] = {}
        for pod in pods:
            if pod.name not in slots:
                continue  # not scraped yet
            out[pod.name] = PodFigures(
                busy_slots=round(busy.get(pod.name, 0.0)),
                slots=round(slots[pod.name]),
                throughput=throughput.get(pod.name),
                gpu_memory_used_bytes=used.get(pod.name),
                gpu_memory_total_bytes=total.get(pod.name),
            )
        return out

    async def _vector(self, query: str) -> dict[str, float]:
        """An instant vector by its ``pod`` label."""
        try:
            answer = await self._client.get("/api/v1/query", params={"query": query})
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignalsError(f"Prometheus did not answer {query!r}: {exc}") from exc
        if answer.status_code != 200 or body.get("status") != "success":
            raise SignalsError(f"Prometheus refused {query!r}: {body.get('error', answer.text)}")
        result = (body.get("data") or {}).get("result") or []
        values: dict[str, float] = {}
        for series in result:
            pod = (series.get("metric") or {}).get("pod")
            value = float(series["value"][1])
            if pod and value == value and abs(value) != float("inf"):  # not NaN, not ±Inf
                values[pod] = value
        return values


@dataclass(frozen=True)
class _Sample:
    at: float
    video_seconds: float
    busy: bool


class ScrapeSource:
    """The pods' own ``/metrics``, read concurrently; rates from successive samples."""

    name = "scrape"

    def __init__(
        self,
        *,
        window_seconds: float,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window_seconds
        self._clock = clock
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._history: dict[str, collections.deque[_Sample]] = {}

    async def close(self) -> None:
        await self._client.aclose()

    async def read(self, namespace: str, pods: Sequence[PodTarget]) -> dict[str, PodFigures]:
        reachable = [p for p in pods if p.url]
        texts = await asyncio.gather(
            *(self._scrape(p.url) for p in reachable if p.url), return_exceptions=True
        )
        now = self._clock()
        out: dict[str, PodFigures] = {}
        for pod, text in zip(reachable, texts, strict=True):
            if isinstance(text, BaseException):
                log.debug("no metrics from runtime pod %s: %s", pod.name, text)
                continue
            out[pod.name] = self.figures(pod.name, parse(text), now=now)
        for gone in set(self._history) - {p.name for p in pods}:
            del self._history[gone]
        return out

    async def _scrape(self, url: str) -> str:
        answer = await self._client.get(f"{url}/metrics")
        answer.raise_for_status()
        return answer.text

    def figures(self, name: str, series: Mapping[str, float], *, now: float) -> PodFigures:
        """Record one scrape of a pod and give its figures (throughput over the window)."""
        busy = round(series.get("busy_slots", 0.0))
        sample = _Sample(at=now, video_seconds=series.get("video_seconds", 0.0), busy=busy > 0)
        history = self._history.setdefault(name, collections.deque())
        if history and sample.video_seconds < history[-1].video_seconds:
            history.clear()  # the counter was reset: the pod's process restarted
        history.append(sample)
        # Keep one sample at or before the window's start, as the rate's baseline.
        while len(history) > 2 and history[1].at <= now - self.window:
            history.popleft()
        return PodFigures(
            busy_slots=busy,
            slots=round(series["slots"]) if "slots" in series else None,
            throughput=_throughput(history, since=now - self.window),
            gpu_memory_used_bytes=series.get("gpu_used"),
            gpu_memory_total_bytes=series.get("gpu_total"),
        )


def _throughput(history: Iterable[_Sample], *, since: float) -> float | None:
    samples = list(history)
    if len(samples) < 2:
        return None
    made = samples[-1].video_seconds - samples[0].video_seconds
    busy_seconds = 0.0
    for before, after in itertools.pairwise(samples):
        start = max(before.at, since)
        if after.at > start:
            busy_seconds += (after.at - start) * (before.busy + after.busy) / 2
    if made <= 0 or busy_seconds <= 0:
        return None
    return made / busy_seconds


def parse(text: str) -> dict[str, float]:
    """The series a pod's /metrics page holds that the policy reads, summed per name."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == SLOTS:
                out["slots"] = out.get("slots", 0.0) + sample.value
                if sample.labels.get("state") == "busy":
                    out["busy_slots"] = out.get("busy_slots", 0.0) + sample.value
            elif sample.name == VIDEO_SECONDS:
                out["video_seconds"] = out.get("video_seconds", 0.0) + sample.value
            elif sample.name == GPU_USED:
                out["gpu_used"] = out.get("gpu_used", 0.0) + sample.value
            elif sample.name == GPU_TOTAL:
                out["gpu_total"] = out.get("gpu_total", 0.0) + sample.value
    return out
