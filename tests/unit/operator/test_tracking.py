"""Following one attempt: a finished job is seen at once, a lost pod within its budget.

The runtime is an httpx ``MockTransport`` (see ``fake_runtime``), and the
Kubernetes API a stand-in that answers pod lookups: what is tested is the
tracker's own judgement of when a job ended or its pod is lost.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from avatar_operator.pods import PodRegistry
from avatar_operator.runtime_client import RuntimeClient
from avatar_operator.settings import TrackingSettings
from avatar_operator.tracking import AttemptEnd, Ending, Tracker
from avatar_runtime.api.schemas import JobState, JobStatus
from tests.unit.operator.fake_runtime import FakeRuntime, job_status, pod_body, status_answer

FAST = TrackingSettings(
    long_poll_seconds=0.05, unreachable_backoff_seconds=(0.01, 0.05), pod_lost_seconds=0.3
)


class PodLookups:
    """Stands in for the Kubernetes API's pod reads (the tracker's only use of it)."""

    def __init__(self, pods: dict[str, dict[str, Any]] | None = None) -> None:
        self.pods = pods or {}
        self.asked: list[str] = []

    async def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.asked.append(name)
        return self.pods.get(name)


def follow(
    runtime: FakeRuntime,
    *,
    registry: PodRegistry,
    kube: PodLookups | None = None,
    pod: str = "rt-1",
) -> tuple[AttemptEnd, list[JobStatus], float]:
    progress: list[JobStatus] = []

    async def on_progress(status: JobStatus) -> None:
        progress.append(status)

    async def go() -> AttemptEnd:
        client = RuntimeClient(token=None, timeout=1, transport=runtime.transport())
        tracker = Tracker(
            settings=FAST,
            runtime=client,
            pods=registry,
            kube=kube or PodLookups(),  # type: ignore[arg-type]
        )
        try:
            return await tracker.follow("uid-1", pod, on_progress)
        finally:
            await client.close()

    start = time.monotonic()
    end = asyncio.run(go())
    return end, progress, time.monotonic() - start


def known(*names: str, deleting: bool = False) -> PodRegistry:
    registry = PodRegistry(namespace="rt", default_port=8080)
    for name in names:
        registry.observe("ADDED", pod_body(name, deleting=deleting))
    return registry


def test_progress_is_reported_until_the_job_finishes() -> None:
    running = status_answer(job_status("uid-1", JobState.RUNNING, stage="render", progress=0.5))
    done = status_answer(job_status("uid-1", JobState.SUCCEEDED, progress=1.0))
    end, progress, _ = follow(FakeRuntime(reads=[running, running, done]), registry=known("rt-1"))
    assert end.ending is Ending.FINISHED
    assert end.status is not None
    assert end.status.state is JobState.SUCCEEDED
    assert [s.stage for s in progress] == ["render", "render"]


def test_a_pod_that_forgot_the_job_has_lost_it() -> None:
    end, _, _ = follow(FakeRuntime(reads=[]), registry=known("rt-1"))
    assert end.ending is Ending.LOST
    assert "does not know the job" in end.reason


def test_a_silent_pod_is_lost_after_its_budget_and_not_before() -> None:
    refused = httpx.ConnectError("connection refused")
    end, _, took = follow(FakeRuntime(reads=[refused]), registry=known("rt-1"))
    assert end.ending is Ending.LOST
    assert "stopped answering" in end.reason
    assert FAST.pod_lost_seconds <= took < FAST.pod_lost_seconds + 1.0


def test_a_pod_back_after_a_blink_keeps_its_job() -> None:
    refused = httpx.ConnectError("connection refused")
    done = status_answer(job_status("uid-1", JobState.SUCCEEDED))
    end, _, _ = follow(FakeRuntime(reads=[refused, refused, done]), registry=known("rt-1"))
    assert end.ending is Ending.FINISHED


def test_a_pod_too_busy_for_another_long_poll_keeps_its_job_however_long_it_is_busy() -> None:
    busy = httpx.Response(
        429,
        json={"error": {"code": "TooManyLongPolls", "message": "full", "retriable": True}},
        headers={"Retry-After": "0.05"},
    )
    done = status_answer(job_status("uid-1", JobState.SUCCEEDED))
    reads: list[httpx.Response | Exception] = [*([busy] * 10), done]
    end, _, took = follow(FakeRuntime(reads=reads), registry=known("rt-1"))
    assert end.ending is Ending.FINISHED
    assert took > FAST.pod_lost_seconds  # busy for longer than a silent pod would be allowed


def test_a_deleted_pod_that_no_longer_answers_is_lost_at_once() -> None:
    refused = httpx.ConnectError("connection refused")
    end, _, took = follow(FakeRuntime(reads=[refused]), registry=known("rt-1", deleting=True))
    assert end.ending is Ending.LOST
    assert "is gone" in end.reason
    assert took < FAST.pod_lost_seconds


def test_a_pod_the_watch_has_not_shown_yet_is_looked_up() -> None:
    """After a restart, an adopted job's pod may be named before the pod watch lists it."""
    done = status_answer(job_status("uid-1", JobState.SUCCEEDED))
    kube = PodLookups({"rt-9": pod_body("rt-9")})
    end, _, _ = follow(FakeRuntime(reads=[done]), registry=known(), kube=kube, pod="rt-9")
    assert end.ending is Ending.FINISHED
    assert kube.asked == ["rt-9"]


def test_a_pod_that_does_not_exist_is_lost_at_once() -> None:
    end, _, took = follow(FakeRuntime(), registry=known(), pod="rt-9")
    assert end.ending is Ending.LOST
    assert "is gone" in end.reason
    assert took < FAST.pod_lost_seconds
