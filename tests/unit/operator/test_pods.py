"""The operator's view of runtime pods: readiness from watch events, slots counted locally."""

from __future__ import annotations

from typing import Any

from avatar_operator.pods import PodRegistry
from avatar_runtime.api.schemas import Capacity, EngineNames


def _pod(
    name: str,
    *,
    phase: str = "Running",
    ready: bool = True,
    pool: str = "default",
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "rt",
        "labels": {"avatar.dev/runtime-pool": pool},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 9000}]}]},
        "status": {
            "phase": phase,
            "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _capacity(slots: int, *, accepting: bool = True) -> Capacity:
    engines = EngineNames(tts="piper", asr="whisper", renderer="embedded", languages=["en"])
    return Capacity(slots_total=slots, slots_busy=0, queue_length=0, queue_limit=4,
                    accepting=accepting, draining=not accepting, engines=engines)  # fmt: skip


def test_a_pod_has_free_slots_once_ready_and_sized() -> None:
    pods = PodRegistry(namespace="rt", default_port=8080)
    assert pods.observe("ADDED", _pod("p1", ready=False)) is None
    assert pods.pick("default") is None
    became_ready = pods.observe("MODIFIED", _pod("p1"))
    assert became_ready is not None
    assert became_ready.url == "http://10.0.0.1:9000"
    assert pods.pick("default") is None  # capacity unknown yet
    pods.set_capacity("p1", _capacity(2))
    assert pods.pick("default") is not None
    pods.reserve("p1", "job-1")
    pods.reserve("p1", "job-2")
    assert pods.pick("default") is None  # both slots taken by the operator's own sends
    pods.release("p1", "job-1")
    picked = pods.pick("default")
    assert picked is not None
    assert picked.free == 1


def test_pods_of_other_pools_namespaces_or_shutting_down_take_nothing() -> None:
    pods = PodRegistry(namespace="rt", default_port=8080)
    pods.observe("ADDED", _pod("gpu", pool="l4"))
    pods.set_capacity("gpu", _capacity(3))
    assert pods.pick("default") is None
    assert pods.pick("l4") is not None
    other = _pod("elsewhere")
    other["metadata"]["namespace"] = "other"
    assert pods.observe("ADDED", other) is None
    assert pods.get("elsewhere") is None
    pods.observe("MODIFIED", _pod("gpu", pool="l4", deleting=True))
    assert pods.pick("l4") is None
    assert not pods.get("gpu").gone  # type: ignore[union-attr]
    pods.observe("MODIFIED", _pod("gpu", pool="l4", phase="Failed", ready=False))
    assert pods.get("gpu").gone  # type: ignore[union-attr]


def test_the_pick_spreads_jobs_and_skips_pods_not_accepting() -> None:
    pods = PodRegistry(namespace="rt", default_port=8080)
    for name in ("a", "b"):
        pods.observe("ADDED", _pod(name))
        pods.set_capacity(name, _capacity(2))
    pods.reserve("a", "j1")
    assert pods.pick("default").name == "b"  # type: ignore[union-attr]
    pods.set_capacity("b", _capacity(2, accepting=False))
    assert pods.pick("default").name == "a"  # type: ignore[union-attr]


def test_a_deleted_pod_is_forgotten_once_its_jobs_are_released() -> None:
    pods = PodRegistry(namespace="rt", default_port=8080)
    pods.observe("ADDED", _pod("p"))
    pods.reserve("p", "job")
    pods.observe("DELETED", _pod("p"))
    assert pods.get("p") is not None
    pods.release("p", "job")
    assert pods.get("p") is None


def test_a_job_that_asks_for_engines_only_goes_to_pods_that_run_them() -> None:
    pods = PodRegistry(namespace="rt", default_port=8080)
    pods.observe("ADDED", _pod("cpu"))
    pods.set_capacity("cpu", _capacity(2))  # piper + embedded
    assert pods.pick("default", tts="xtts") is None
    assert not pods.offered("default", tts="xtts", renderer=None)
    assert pods.pick("default", tts="piper", renderer="embedded") is not None
    gpu = _capacity(3).model_copy(
        update={
            "engines": EngineNames(tts="xtts", asr="whisper", renderer="ditto", languages=["en"])
        }
    )
    pods.observe("ADDED", _pod("gpu"))
    pods.set_capacity("gpu", gpu)
    assert pods.pick("default", tts="xtts").name == "gpu"  # type: ignore[union-attr]
    assert pods.pick("default", renderer="embedded").name == "cpu"  # type: ignore[union-attr]
