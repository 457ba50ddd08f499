"""The dispatcher's bookkeeping, without a cluster: a finished job is never queued again.

kopf can hand a resource over twice, the second time with an old body (when
its consistency timeout passes before its own patch comes back on the watch;
seen in the operator benchmark with 1,000+ resources at once). The Kubernetes
API is replaced by a recorder here, because the behaviour under test is what
the dispatcher does with such a body, not the API.
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


class RecordingKube:
    """Stands in for the Kubernetes API: records status writes and Events."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    async def patch_status(self, ref: Ref, status: dict[str, Any]) -> bool:
        self.statuses.append(status)
        return True

    async def event(self, ref: Ref, *, type_: str, reason: str, message: str) -> None:
        pass

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


def _dispatcher() -> Dispatcher:
    return Dispatcher(
        settings=OperatorSettings(),
        kube=RecordingKube(),  # type: ignore[arg-type]
        runtime=RuntimeClient(token=None, timeout=1),
        metrics=OperatorMetrics(CollectorRegistry()),
    )


def test_a_stale_body_of_a_finished_job_does_not_queue_it_again() -> None:
    async def scenario() -> Dispatcher:
        dispatcher = _dispatcher()
        dispatcher.admit(_body(None))
        job = dispatcher.jobs["uid-1"]
        assert "uid-1" in dispatcher.queues["default"]
        dispatcher._close(job, "succeeded", job.created)  # it ran and finished
        dispatcher.admit(_body("Queued"))  # kopf again, with the body from before
        await asyncio.sleep(0)
        await dispatcher.runtime.close()
        return dispatcher

    dispatcher = asyncio.run(scenario())
    assert "uid-1" not in dispatcher.jobs
    assert "uid-1" not in dispatcher.queues["default"]


def test_resources_created_in_one_second_wait_in_the_order_the_watch_brought_them() -> None:
    """creationTimestamp has whole seconds, and kopf admits each resource after its
    own finalizer patch, in whatever order those come back."""

    async def scenario() -> list[str]:
        dispatcher = _dispatcher()
        watched = [f"uid-{i}" for i in range(6)]
        for uid in watched:
            dispatcher.noticed(_body(None, uid))
        for uid in ["uid-5", "uid-2", "uid-0", "uid-4", "uid-1", "uid-3"]:
            dispatcher.admit(_body(None, uid))
        await asyncio.sleep(0)
        await dispatcher.runtime.close()
        return [e.uid for e in dispatcher.queues["default"].ordered()]

    assert asyncio.run(scenario()) == [f"uid-{i}" for i in range(6)]
