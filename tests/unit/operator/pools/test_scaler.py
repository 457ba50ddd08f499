"""The scaling loop's rounds in memory: what it writes to the Kubernetes API, in which order.

The Kubernetes API is a recorder here and the pods' figures a fixed source, because
the behaviour under test is the order of the loop's own calls (a victim stops getting
jobs and carries the lowest deletion cost *before* its replicas are lowered) and what
the pool's status says. ``tests/system/test_pools.py`` runs it all for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from avatar_operator import status as st
from avatar_operator.dispatcher import Dispatcher
from avatar_operator.kube import RefusedError
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.pools.deployments import CAPACITY_LABEL, MANAGED_BY
from avatar_operator.pools.scaler import Scaler
from avatar_operator.pools.victims import DELETION_COST, SAFE_TO_EVICT, VICTIM_COST
from avatar_operator.resource import Ref, format_time
from avatar_operator.runtime_client import RuntimeClient
from avatar_operator.scaling.policy import PolicyMemory
from avatar_operator.scaling.signals import PodFigures, PodTarget
from avatar_operator.settings import POOL_LABEL, OperatorSettings
from tests.unit.operator.fake_runtime import FakeRuntime

POOL_UID = "pool-uid"


class Kube:
    """The Kubernetes API as the loop and the dispatcher call it, recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.pool_statuses: list[dict[str, Any]] = []
        self.statuses_of: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.video_statuses: dict[str, list[dict[str, Any]]] = {}
        self.refuse: RefusedError | None = None
        """What the API server answers every Deployment write with, when set."""

    async def deployments(self, namespace: str, *, selector: str) -> list[dict[str, Any]]:
        return list(self.objects.values())

    async def create_deployment(self, namespace: str, body: dict[str, Any]) -> None:
        self.calls.append(("create", body["metadata"]["name"]))
        if self.refuse is not None:
            raise self.refuse
        self.objects[body["metadata"]["name"]] = body

    async def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.calls.append(("replicas", (name, patch["spec"]["replicas"])))
        self.objects[name]["spec"]["replicas"] = patch["spec"]["replicas"]

    async def replace_template(self, namespace: str, name: str, **_: Any) -> None:
        self.calls.append(("template", name))
        if self.refuse is not None:
            raise self.refuse

    async def delete_deployment(self, namespace: str, name: str) -> None:
        self.calls.append(("delete", name))

    async def annotate_pod(self, namespace: str, name: str, annotations: dict[str, Any]) -> bool:
        self.calls.append(("annotate", (name, annotations)))
        return True

    async def patch_pool_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        self.pool_statuses.append(status)
        self.statuses_of.setdefault((namespace, name), []).append(status)
        return True

    async def patch_status(self, ref: Ref, status: dict[str, Any], **_: Any) -> bool:
        self.video_statuses.setdefault(ref.uid, []).append(status)
        return True

    async def event(self, ref: Ref, *, type_: str, reason: str, message: str) -> str:
        return f"{ref.name}.{reason}"

    async def repeat_event(self, ref: Ref, *, name: str, count: int, message: str) -> bool:
        return True


class Figures:
    name = "scrape"

    def __init__(self) -> None:
        self.figures: dict[str, PodFigures] = {}

    async def read(self, namespace: str, pods: Sequence[PodTarget]) -> dict[str, PodFigures]:
        return {p.name: self.figures[p.name] for p in pods if p.name in self.figures}

    async def close(self) -> None:
        pass


def _pool(
    name: str = "gpu", *, namespace: str = "rt", generation: int = 1, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": POOL_UID,
                     "generation": generation},
        "spec": {"image": "runtime:1", "engines": {"tts": "piper", "renderer": "embedded"},
                 "scaleDownDelaySeconds": 1, "idleBeforeZeroSeconds": 0, **spec},
    }  # fmt: skip


def _pod(name: str, *, ready: bool = True) -> dict[str, Any]:
    labels = {
        POOL_LABEL: "gpu",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/instance": "gpu",
        CAPACITY_LABEL: "on-demand",
    }
    return {
        "metadata": {"name": name, "namespace": "rt", "labels": labels},
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {
            "phase": "Running",
            "podIP": f"10.0.0.{len(name)}",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _video(uid: str, pool: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": uid, "namespace": "team", "uid": uid, "generation": 1,
                     "creationTimestamp": format_time(st.now())},
        "spec": {"portrait": "gs://b/p.png", "text": "Hello there.", "output": "gs://b/o/",
                 "pool": pool, **spec},
    }  # fmt: skip


def _scaler() -> tuple[Scaler, Dispatcher, Kube, Figures]:
    kube = Kube()
    settings = OperatorSettings.model_validate(
        {"runtime": {"namespace": "rt"}, "scaling": {"interval_seconds": 0.01}}
    )
    metrics = OperatorMetrics(CollectorRegistry())
    dispatcher = Dispatcher(
        settings=settings,
        kube=kube,  # type: ignore[arg-type]
        runtime=RuntimeClient(token=None, timeout=1, transport=FakeRuntime().transport()),
        metrics=metrics,
    )
    figures = Figures()
    scaler = Scaler(dispatcher=dispatcher, kube=kube, metrics=metrics,  # type: ignore[arg-type]
                    settings=settings, source=figures)  # fmt: skip
    dispatcher.on_queued = scaler.queued
    return scaler, dispatcher, kube, figures


def test_a_video_at_a_pool_with_no_pods_creates_its_deployment_and_a_pod_at_once() -> None:
    async def scenario() -> Kube:
        scaler, dispatcher, kube, _ = _scaler()
        scaler.observe("ADDED", _pool(minReplicas=0, maxReplicas=3))
        await scaler.tick()  # nothing waits: the Deployment, at 0
        assert kube.calls == [("create", "avatar-runtime-gpu")]
        assert not scaler._wake.is_set()
        dispatcher.admit(_video("v1", "gpu"))
        assert scaler._wake.is_set()  # a pool at zero is sized at once, not at the next tick
        await scaler.tick()
        await dispatcher.background.stop()
        return kube

    kube = asyncio.run(scenario())
    assert kube.calls[-1] == ("replicas", ("avatar-runtime-gpu", 1))
    status = kube.pool_statuses[-1]
    assert status["desiredReplicas"] == 1
    assert status["startingReplicas"] == 1  # asked for: counted as capacity on its way
    assert status["readyReplicas"] == 0
    assert status["lastDecision"]["direction"] == "up"
    assert status["lastDecision"]["reason"] in ("backlog", "arrivals")
    assert status["lastDecision"]["inputs"]["queued"] == 1
    assert status["lastScaleTime"]
    owner = kube.objects["avatar-runtime-gpu"]["metadata"]["ownerReferences"][0]
    assert owner["uid"] == POOL_UID


_Calls = list[tuple[str, Any]]


def test_a_scale_down_retires_marks_and_only_then_removes_the_idle_pod() -> None:
    async def scenario() -> tuple[Kube, Dispatcher, _Calls, _Calls, dict[str, Any]]:
        scaler, dispatcher, kube, figures = _scaler()
        scaler.observe("ADDED", _pool(minReplicas=0, maxReplicas=3))
        await scaler.tick()
        # As an operator restarted beside a pool of 2 finds it: no memory of its decisions.
        kube.objects["avatar-runtime-gpu"]["spec"]["replicas"] = 2
        scaler.pools["gpu"].memory = PolicyMemory()
        for name in ("busy-pod", "idle-pod"):
            dispatcher.pod_event("ADDED", _pod(name))
            figures.figures[name] = PodFigures(busy_slots=0, slots=1, throughput=0.25)
        dispatcher.pods.reserve("busy-pod", "some-job")  # the operator sent it a job
        # Down slowly: the lower recommendation must hold for scaleDownDelaySeconds.
        for _ in range(2):
            await scaler.tick()
            await asyncio.sleep(0.6)
        before = list(kube.calls)
        kube.calls.clear()
        await scaler.tick()
        await dispatcher.background.stop()  # the status written
        down = list(kube.calls)
        status = kube.pool_statuses[-1]
        dispatcher.pods.release("busy-pod", "some-job")  # its video finished
        kube.calls.clear()
        await scaler.tick()
        await dispatcher.background.stop()
        return kube, dispatcher, before, down, status

    kube, dispatcher, before, down, status = asyncio.run(scenario())
    assert down == [
        ("annotate", ("idle-pod", {DELETION_COST: VICTIM_COST})),
        ("replicas", ("avatar-runtime-gpu", 1)),
    ]
    # The busy pod was kept from the cluster autoscaler in the rounds before; the idle
    # one never was, and the busy one is no longer once its video is done.
    annotated = [args for call, args in before if call == "annotate"]
    assert ("busy-pod", {SAFE_TO_EVICT: "false"}) in annotated
    assert not [a for name, a in annotated if name == "idle-pod" and SAFE_TO_EVICT in a]
    (done,) = [a for call, (name, a) in kube.calls if call == "annotate" and name == "busy-pod"]
    assert done[SAFE_TO_EVICT] is None
    idle = dispatcher.pods.get("idle-pod")
    assert idle is not None
    assert idle.retiring  # nothing more is dispatched to it
    assert idle.free == 0
    assert status["lastDecision"]["victims"] == ["idle-pod"]
    assert status["lastDecision"]["direction"] == "down"
    assert {p["name"]: p["throughput"] for p in status["pods"]} == {
        "busy-pod": 0.25,
        "idle-pod": 0.25,
    }


def test_a_rollouts_surge_pod_is_not_taken_for_a_surplus_pod_and_retired() -> None:
    """A template change (``helm upgrade``) makes the Deployment run a new pod beside the old
    one for a while: 2 pods at replicas 1. Neither is the scaler's to remove."""

    async def scenario() -> tuple[Kube, Dispatcher]:
        scaler, dispatcher, kube, figures = _scaler()
        scaler.observe("ADDED", _pool(minReplicas=1, maxReplicas=3))
        await scaler.tick()
        for name in ("old-pod", "new-pod"):
            dispatcher.pod_event("ADDED", _pod(name))
            figures.figures[name] = PodFigures(busy_slots=0, slots=1, throughput=0.25)
        kube.calls.clear()
        for _ in range(3):
            await scaler.tick()
            await asyncio.sleep(0.6)  # past scaleDownDelaySeconds
        await dispatcher.background.stop()
        return kube, dispatcher

    kube, dispatcher = asyncio.run(scenario())
    assert kube.objects["avatar-runtime-gpu"]["spec"]["replicas"] == 1
    assert not [a for call, (_, a) in kube.calls if call == "annotate" and DELETION_COST in a]
    assert not any(p.retiring for p in dispatcher.pods.all())
    assert kube.pool_statuses[-1]["lastDecision"]["victims"] == []


def test_a_pod_is_shielded_from_eviction_when_it_gets_a_job_not_at_the_next_round() -> None:
    async def scenario() -> Kube:
        scaler, dispatcher, kube, _ = _scaler()
        scaler.observe("ADDED", _pool(minReplicas=0, maxReplicas=3))
        await scaler.tick()
        dispatcher.pod_event("ADDED", _pod("pod-a"))
        kube.calls.clear()
        dispatcher.pods.reserve("pod-a", "job-1")  # sent a job: no scaling round runs
        dispatcher.pods.reserve("pod-a", "job-2")  # already shielded: no second write
        await dispatcher.background.stop()
        return kube

    kube = asyncio.run(scenario())
    assert kube.calls == [("annotate", ("pod-a", {SAFE_TO_EVICT: "false"}))]


def _messages(kube: Kube, uid: str) -> list[str]:
    return [s["message"] for s in kube.video_statuses.get(uid, []) if "message" in s]


def test_a_video_whose_pool_does_not_exist_says_so_and_waits_until_it_does() -> None:
    async def scenario() -> tuple[Kube, list[str]]:
        scaler, dispatcher, kube, _ = _scaler()
        scaler.missing.started -= 10  # the pool watch has listed every pool by now
        dispatcher.admit(_video("v1", "nowhere"))
        await scaler.tick()
        await scaler.tick()  # said once
        await dispatcher.background.stop()
        before = _messages(kube, "v1")
        assert "v1" in dispatcher.jobs  # still waiting, not failed
        assert len(dispatcher.queues["nowhere"]) == 1
        scaler.observe("ADDED", _pool("nowhere"))  # someone creates the pool
        await scaler.tick()
        await dispatcher.background.stop()
        return kube, before

    kube, before = asyncio.run(scenario())
    missing = [m for m in before if "does not exist" in m]
    assert len(missing) == 1
    assert "Pool 'nowhere' does not exist" in missing[0]
    assert "deadlineSeconds still applies" in missing[0]
    said = next(s for s in kube.video_statuses["v1"] if "does not exist" in s.get("message", ""))
    (running,) = [c for c in said["conditions"] if c["type"] == "Running"]
    assert (running["status"], running["reason"]) == ("False", "PoolNotFound")
    # Once the pool exists the video says what it waits for now, and the pool sizes for it.
    assert _messages(kube, "v1")[-1] == "Waiting for a free slot in pool 'nowhere'."
    assert kube.calls[-1] == ("replicas", ("avatar-runtime-nowhere", 1))


def test_a_video_whose_pool_never_appears_fails_after_its_deadline_saying_why() -> None:
    async def scenario() -> Kube:
        scaler, dispatcher, kube, _ = _scaler()
        scaler.missing.started -= 10
        dispatcher.admit(_video("v1", "nowhere", deadlineSeconds=1))
        await scaler.tick()
        await asyncio.sleep(1.3)
        await dispatcher.background.stop()
        assert "v1" not in dispatcher.jobs
        return kube

    kube = asyncio.run(scenario())
    final = kube.video_statuses["v1"][-1]
    assert final["phase"] == "Failed"
    assert final["error"]["code"] == "DeadlineExceeded"
    assert final["error"]["message"] == (
        "not finished within deadlineSeconds=1: pool 'nowhere' does not exist"
    )
    assert kube.calls == []  # nothing created for a pool nobody declared


def test_pools_the_operator_cannot_run_say_why_in_their_status() -> None:
    async def scenario() -> Kube:
        scaler, dispatcher, kube, _ = _scaler()
        scaler.observe("ADDED", _pool("elsewhere", namespace="team"))
        # Objects stored before the CRD had its rules: the operator reads them anyway.
        scaler.observe("ADDED", _pool("words", slotsPerPod="many"))
        scaler.observe("ADDED", _pool("upside-down", minReplicas=5, maxReplicas=2))
        await scaler.tick()
        await dispatcher.background.stop()
        return kube

    kube = asyncio.run(scenario())
    (elsewhere,) = kube.statuses_of[("team", "elsewhere")]
    assert elsewhere["message"].startswith(
        "Not run: the operator runs runtime pods in namespace 'rt'"
    )
    (words,) = kube.statuses_of[("rt", "words")]
    assert words["message"].startswith("Spec generation 1 not taken: spec.slotsPerPod")
    (upside_down,) = kube.statuses_of[("rt", "upside-down")]
    assert "need 0 <= min_replicas <= max_replicas" in upside_down["message"]
    assert kube.calls == []  # none of them got a Deployment


def test_a_deployment_the_api_server_refuses_is_explained_in_the_pools_status() -> None:
    async def scenario() -> Kube:
        scaler, dispatcher, kube, _ = _scaler()
        kube.refuse = RefusedError(
            422,
            'Deployment.apps "avatar-runtime-gpu" is invalid: spec.template.spec.containers'
            '[0].resources.requests[cpu]: Invalid value: "lots": quantities must match'
            " the regular expression",
        )
        scaler.observe("ADDED", _pool(podTemplate={"resources": {"requests": {"cpu": "lots"}}}))
        dispatcher.admit(_video("v1", "gpu"))
        await scaler.tick()
        await scaler.tick()  # said once
        await dispatcher.background.stop()
        kube.refuse = RefusedError(409, 'deployments.apps "avatar-runtime-gpu" already exists')
        await scaler.tick()
        await dispatcher.background.stop()
        return kube

    kube = asyncio.run(scenario())
    invalid, taken = kube.pool_statuses
    assert invalid["message"].startswith(
        "The API server refused creating Deployment avatar-runtime-gpu: Deployment.apps"
    )
    assert 'resources.requests[cpu]: Invalid value: "lots"' in invalid["message"]
    assert "desiredReplicas" not in invalid  # nothing was sized
    assert taken["message"] == (
        "A Deployment named avatar-runtime-gpu exists and the operator does not manage it"
        " (no label app.kubernetes.io/managed-by=avatar-operator): rename or delete it"
    )


def test_a_refused_template_update_keeps_the_pool_sized_and_says_so() -> None:
    async def scenario() -> Kube:
        scaler, dispatcher, kube, _ = _scaler()
        scaler.observe("ADDED", _pool())
        dispatcher.admit(_video("v1", "gpu"))
        await scaler.tick()
        kube.refuse = RefusedError(422, "spec.template: Invalid value")
        scaler.observe("MODIFIED", _pool(generation=2, image="runtime:2"))
        await scaler.tick()
        await dispatcher.background.stop()
        return kube

    kube = asyncio.run(scenario())
    assert ("template", "avatar-runtime-gpu") in kube.calls
    status = kube.pool_statuses[-1]
    assert status["desiredReplicas"] == 1  # the video still gets its pod
    assert (
        "The API server refused updating the pod template of Deployment avatar-runtime-gpu:"
        " spec.template: Invalid value" in status["message"]
    )
