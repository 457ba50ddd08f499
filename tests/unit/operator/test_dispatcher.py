"""The dispatcher's bookkeeping, without a cluster: a finished job is never queued again.

kopf can hand a resource over twice, the second time with an old body (when
its consistency timeout passes before its own patch comes back on the watch;
seen in the operator benchmark with 1,000+ resources at once). The Kubernetes
API is replaced by a recorder here and the runtime pod by an httpx
``MockTransport``, because the behaviour under test is what the dispatcher does
with such a body, not the API or the pod (the end-to-end tests run both for real).
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from avatar_operator.dispatcher import Dispatcher
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.resource import Ref
from avatar_operator.runtime_client import RuntimeClient
from avatar_operator.settings import OperatorSettings
from avatar_runtime.api.schemas import JobState
from tests.unit.operator.fake_runtime import FakeRuntime, job_status, pod_body, status_answer


class RecordingKube:
    """Stands in for the Kubernetes API: records status writes and Events."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.events: list[str] = []

    async def patch_status(self, ref: Ref, status: dict[str, Any]) -> bool:
        self.statuses.append(status)
        return True

    async def event(self, ref: Ref, *, type_: str, reason: str, message: str) -> None:
        self.events.append(reason)

    async def delete(self, ref: Ref) -> None:
        pass


def _body(phase: str | None, uid: str = "uid-1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": uid,
            "namespace": "ns",
            "uid": uid,
            "generation": 1,
            "creationTimestamp": "2026-11-25T00:00:00Z",
        },
        "spec": {"portrait": "gs://b/p.png", "text": "Hi", "output": "gs://b/o/"},
        "status": {"phase": phase} if phase else {},
    }


def _dispatcher(runtime: FakeRuntime | None = None) -> tuple[Dispatcher, RecordingKube]:
    kube = RecordingKube()
    settings = OperatorSettings.model_validate({"runtime": {"namespace": "rt"}})
    transport = (runtime or FakeRuntime()).transport()
    dispatcher = Dispatcher(
        settings=settings,
        kube=kube,  # type: ignore[arg-type]
        runtime=RuntimeClient(token=None, timeout=1, transport=transport),
        metrics=OperatorMetrics(CollectorRegistry()),
    )
    return dispatcher, kube


async def _until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def test_a_stale_body_of_a_finished_job_does_not_queue_it_again() -> None:
    runtime = FakeRuntime(
        submits=[status_answer(job_status("uid-1", JobState.QUEUED), 202)],
        reads=[status_answer(job_status("uid-1", JobState.SUCCEEDED, progress=1.0))],
    )

    async def scenario() -> tuple[Dispatcher, RecordingKube]:
        dispatcher, kube = _dispatcher(runtime)
        dispatcher.start()
        dispatcher.pod_event("ADDED", pod_body("rt-1"))
        dispatcher.admit(_body(None))
        await _until(lambda: any(s.get("phase") == "Succeeded" for s in kube.statuses))
        dispatcher.admit(_body("Queued"))  # kopf again, with the body from before
        await asyncio.sleep(0.1)
        await dispatcher.stop()
        await dispatcher.runtime.close()
        return dispatcher, kube

    dispatcher, kube = asyncio.run(scenario())
    assert "uid-1" not in dispatcher.jobs
    assert "uid-1" not in dispatcher.queues["default"]
    assert kube.statuses[-1]["phase"] == "Succeeded"  # nothing written after the end
    assert [r.method for r in runtime.requests if r.url.path == "/v1/jobs"] == ["POST"]


def test_resources_created_in_one_second_wait_in_the_order_the_watch_brought_them() -> None:
    """creationTimestamp has whole seconds, and kopf admits each resource after its
    own finalizer patch, in whatever order those come back."""

    async def scenario() -> list[str]:
        dispatcher, _ = _dispatcher()
        watched = [f"uid-{i}" for i in range(6)]
        for uid in watched:
            dispatcher.noticed(_body(None, uid))
        for uid in ["uid-5", "uid-2", "uid-0", "uid-4", "uid-1", "uid-3"]:
            dispatcher.admit(_body(None, uid))
        await asyncio.sleep(0)
        await dispatcher.background.stop()
        await dispatcher.runtime.close()
        return [e.uid for e in dispatcher.queues["default"].ordered()]

    assert asyncio.run(scenario()) == [f"uid-{i}" for i in range(6)]
