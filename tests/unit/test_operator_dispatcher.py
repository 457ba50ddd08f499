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


def _body(phase: str | None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "v",
            "namespace": "ns",
            "uid": "uid-1",
            "generation": 1,
            "creationTimestamp": "2026-11-25T00:00:00Z",
        },
        "spec": {"portrait": "gs://b/p.png", "text": "Hi", "output": "gs://b/o/"},
        "status": {"phase": phase} if phase else {},
    }


def test_a_stale_body_of_a_finished_job_does_not_queue_it_again() -> None:
    async def scenario() -> Dispatcher:
        kube = RecordingKube()
        dispatcher = Dispatcher(
            settings=OperatorSettings(),
            kube=kube,  # type: ignore[arg-type]
            runtime=RuntimeClient(token=None, timeout=1),
            metrics=OperatorMetrics(CollectorRegistry()),
        )
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
