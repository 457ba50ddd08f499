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

import httpx
from prometheus_client import CollectorRegistry

from avatar_operator.dispatcher import Dispatcher
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.resource import Ref
from avatar_operator.runtime_client import RuntimeClient
from avatar_operator.settings import OperatorSettings
from avatar_runtime.api.schemas import JobState
from tests.unit.operator.fake_runtime import (
    FakeRuntime,
    error_body,
    job_status,
    pod_body,
    status_answer,
)


class RecordingKube:
    """Stands in for the Kubernetes API: records status writes and Events."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.events: dict[str, dict[str, Any]] = {}  # name -> reason, count, message, uid

    async def patch_status(self, ref: Ref, status: dict[str, Any], *, urgent: bool = False) -> bool:
        self.statuses.setdefault(ref.uid, []).append(status)
        return True

    async def event(self, ref: Ref, *, type_: str, reason: str, message: str) -> str:
        name = f"{ref.name}.{len(self.events)}"
        self.events[name] = {"uid": ref.uid, "reason": reason, "count": 1, "message": message}
        return name

    async def repeat_event(self, ref: Ref, *, name: str, count: int, message: str) -> bool:
        self.events[name].update(count=count, message=message)
        return True

    def phase(self, uid: str) -> str | None:
        phases = [s["phase"] for s in self.statuses.get(uid, []) if "phase" in s]
        return phases[-1] if phases else None

    def reasons(self, uid: str) -> dict[str, int]:
        return {e["reason"]: e["count"] for e in self.events.values() if e["uid"] == uid}

    async def delete(self, ref: Ref) -> None:
        pass


def _body(phase: str | None, uid: str = "uid-1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": uid,
            "namespace": "ns",
            "uid": uid,
            "generation": 1,
            "creationTimestamp": "2026-11-25T00:00:00Z",
        },
        "spec": {"portrait": "gs://b/p.png", "text": "Hi", "output": "gs://b/o/", **spec},
        "status": {"phase": phase} if phase else {},
    }


def _dispatcher(runtime: FakeRuntime | None = None) -> tuple[Dispatcher, RecordingKube]:
    kube = RecordingKube()
    settings = OperatorSettings.model_validate(
        {"runtime": {"namespace": "rt"}, "retries": {"base_seconds": 0.05, "max_seconds": 0.2}}
    )
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
        await _until(lambda: kube.phase("uid-1") == "Succeeded")
        dispatcher.admit(_body("Queued"))  # kopf again, with the body from before
        await asyncio.sleep(0.1)
        await dispatcher.stop()
        await dispatcher.runtime.close()
        return dispatcher, kube

    dispatcher, kube = asyncio.run(scenario())
    assert "uid-1" not in dispatcher.jobs
    assert "uid-1" not in dispatcher.queues["default"]
    assert kube.statuses["uid-1"][-1]["phase"] == "Succeeded"  # nothing written after the end
    assert [r.method for r in runtime.requests if r.url.path == "/v1/jobs"] == ["POST"]


def test_a_video_that_rendered_with_warnings_shows_them_in_its_status_and_an_event() -> None:
    note = "The portrait shows 2 faces; the largest front-facing one speaks."
    done = job_status("uid-1", JobState.SUCCEEDED, progress=1.0, warnings=[note])
    runtime = FakeRuntime(
        submits=[status_answer(job_status("uid-1", JobState.QUEUED), 202)],
        reads=[status_answer(done)],
    )

    async def scenario() -> RecordingKube:
        dispatcher, kube = _dispatcher(runtime)
        dispatcher.start()
        dispatcher.pod_event("ADDED", pod_body("rt-1"))
        dispatcher.admit(_body(None))
        await _until(lambda: kube.reasons("uid-1").get("RenderNote") == 1)
        await dispatcher.stop()
        await dispatcher.runtime.close()
        return kube

    kube = asyncio.run(scenario())
    final = kube.statuses["uid-1"][-1]
    assert (final["phase"], final["warnings"]) == ("Succeeded", [note])
    (event,) = [e for e in kube.events.values() if e["reason"] == "RenderNote"]
    assert event["message"] == note


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


def test_a_video_its_pods_fail_on_ends_failed_with_their_code_and_blocks_no_other() -> None:
    """The poison video: every submission answered 500. It used to go back to the queue
    at once, for ever (hundreds of 500s and Queued Events a minute); now each is an
    attempt with backoff, it fails after maxRetries, and the Events are counted, not
    repeated. A healthy video sent meanwhile succeeds."""
    crash = error_body("InternalError", "KeyError: 'x'", retriable=True)
    poison = FakeRuntime(submits=[httpx.Response(500, json=crash)])
    healthy = FakeRuntime(
        submits=[status_answer(job_status("good", JobState.QUEUED), 202)],
        reads=[status_answer(job_status("good", JobState.SUCCEEDED, progress=1.0))],
    )
    runtime = FakeRuntime(by_job={"poison": poison, "good": healthy})

    async def scenario() -> RecordingKube:
        dispatcher, kube = _dispatcher(runtime)
        dispatcher.start()
        dispatcher.pod_event("ADDED", pod_body("rt-1"))
        dispatcher.admit(_body(None, "poison", maxRetries=2))
        dispatcher.admit(_body(None, "good"))
        await _until(lambda: kube.phase("poison") == "Failed" and kube.phase("good"))
        await asyncio.sleep(0.1)
        await dispatcher.stop()
        await dispatcher.runtime.close()
        return kube

    kube = asyncio.run(scenario())
    assert kube.phase("good") == "Succeeded"
    final = kube.statuses["poison"][-1]
    assert final["error"]["code"] == "InternalError"
    assert "gave up after 3 attempts" in final["error"]["message"]
    assert len(poison.requests) == 3  # one POST per attempt, no more
    reasons = kube.reasons("poison")
    assert reasons["Retrying"] == 2  # one Event, counted twice
    assert reasons["InternalError"] == 1
    assert sum(1 for e in kube.events.values() if e["uid"] == "poison") == len(reasons)


def test_a_spec_the_operator_cannot_read_fails_at_once_and_is_not_queued() -> None:
    """The CRD refuses such a spec; an object written before a rule existed may not be."""

    async def scenario() -> tuple[Dispatcher, RecordingKube]:
        dispatcher, kube = _dispatcher()
        body = _body(None, "bent")
        del body["spec"]["portrait"]
        dispatcher.admit(body)
        await dispatcher.background.stop()
        await dispatcher.runtime.close()
        return dispatcher, kube

    dispatcher, kube = asyncio.run(scenario())
    assert "bent" not in dispatcher.jobs
    assert "bent" not in dispatcher.queues.get("default", {})
    (status,) = kube.statuses["bent"]
    assert status["phase"] == "Failed"
    assert status["error"]["code"] == "InvalidRequest"
    assert status["error"]["field"] == "spec.portrait"


def test_a_spec_the_runtime_contract_refuses_fails_without_being_sent() -> None:
    runtime = FakeRuntime()

    async def scenario() -> RecordingKube:
        dispatcher, kube = _dispatcher(runtime)
        dispatcher.start()
        dispatcher.pod_event("ADDED", pod_body("rt-1"))
        dispatcher.admit(_body(None, "long-tag", language="en-" + "-".join(["abcdefgh"] * 3)))
        await _until(lambda: kube.phase("long-tag") == "Failed")
        await dispatcher.stop()
        await dispatcher.runtime.close()
        return kube

    kube = asyncio.run(scenario())
    error = kube.statuses["long-tag"][-1]["error"]
    assert error["code"] == "InvalidRequest"
    assert "language" in error["message"]
    assert not [r for r in runtime.requests if r.method == "POST"]
