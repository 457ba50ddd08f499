"""Exactly once: a video a pod finished is never rendered again, whoever died after.

The case that used to render twice, reproduced on purpose: the operator is down
while a pod finishes a job, and the pod is SIGKILLed before any operator has read
the result. Only the dead pod's memory knew; now the job's record beside its
outputs does. Everything is real: the dev cluster, the runtime pods, ``kopf run``.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from avatar_devcluster.waiting import wait_until
from tests.system.conftest import _system
from tests.system.system import VERY_LONG_TEXT, System


@pytest.fixture(scope="module")
def two_pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    yield from _system(tmp_path_factory, "recovery", replicas=2, slots=1)


def _pod_log(system: System, pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    path = system.root / "cluster" / "pods" / f"{meta['namespace']}_{meta['name']}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_video_finished_on_a_pod_that_died_unread_is_not_rendered_again(
    two_pods: System,
) -> None:
    system = two_pods
    system.apply(system.video("unread", text=VERY_LONG_TEXT))  # renders for seconds
    uid = system.get("unread")["metadata"]["uid"]

    def taken() -> dict[str, Any] | None:
        """The pod that has the job (its own API says so), before it can have finished."""
        status = system.get("unread").get("status") or {}
        if status.get("phase") != "Running" or not status.get("runtimePod"):
            return None
        pod = system.pod_named(status["runtimePod"])
        with system.runtime(pod) as client:
            return pod if client.get(f"/v1/jobs/{uid}").status_code == 200 else None

    first: dict[str, Any] = wait_until(
        taken,
        timeout=60,
        what=lambda: f"a pod to take the job; now: {system.get('unread').get('status')}",
    )
    system.operator.kill()  # nobody reads the result

    out = system.local("gs://demo/out/default/unread/")
    record, video = out / "manifest.json", out / "video.mp4"
    wait_until(record.is_file, timeout=120, what="the job's record beside its outputs")
    written = video.stat().st_mtime_ns
    os.kill(system.pod_pid(first), signal.SIGKILL)  # and now nobody can
    system.operator.start()

    status = system.wait_phase("unread", ["Succeeded", "Failed"], timeout=120)["status"]
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] == 2  # the first pod was lost; the second found the record
    second = system.pod_named(status["runtimePod"])
    assert second["metadata"]["name"] != first["metadata"]["name"]
    assert "finished by an earlier attempt" in _pod_log(system, second)
    assert video.stat().st_mtime_ns == written  # never written again
    assert hashlib.sha256(video.read_bytes()).hexdigest() == status["outputs"]["video"]["sha256"]
    assert not [p.name for p in out.iterdir() if ".partial-" in p.name]
