"""AvatarVideos through the real operator onto real runtime pods (2 pods x 2 slots).

The operator is a ``kopf run`` process, the runtime pods are ``avatar-runtime
serve`` processes the dev cluster started from a Deployment, and kubectl is
the real one. Only GCS is local (a directory the runtime serves gs:// from).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avatar_devcluster.waiting import wait_until
from tests.system.system import LONG_TEXT, REPO, VERY_LONG_TEXT, System, load_yaml, metric

pytestmark = pytest.mark.slow


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hello_example_renders_a_video_with_captions_and_thumbnail(two_pods: System) -> None:
    system = two_pods
    (system.buckets / "avatar-demo").mkdir(exist_ok=True)
    shutil.copy(system.buckets / "demo" / "portrait.png", system.buckets / "avatar-demo")
    system.kubectl("apply", "-f", str(REPO / "examples" / "hello.yaml"))

    done = system.wait_phase("hello", ["Succeeded", "Failed"])
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] == 1
    assert status["progress"] == 100
    assert status["videoSeconds"] > 1
    assert status["realtimeFactor"] > 0
    assert set(status["stageSeconds"]) >= {"fetch", "tts", "asr", "render", "encode", "upload"}
    for kind in ("video", "captions", "thumbnail"):
        output = status["outputs"][kind]
        path = system.local(output["url"])
        assert path.is_file(), output
        assert path.stat().st_size == output["sizeBytes"]
        assert _sha256(path) == output["sha256"]
    assert status["outputs"]["video"]["url"].startswith("gs://avatar-demo/videos/hello/")
    assert status["outputs"]["video"]["durationSeconds"] == pytest.approx(
        status["videoSeconds"], abs=0.1
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Complete"]["status"] == "True"
    assert conditions["Running"]["status"] == "False"
    assert status["startTime"] <= status["completionTime"]
    assert status["runtimePod"] in {p["metadata"]["name"] for p in system.runtime_pods()}

    reasons = [e["reason"] for e in system.events("hello")]
    assert {"Queued", "Dispatched", "Succeeded"} <= set(reasons), reasons
    described = system.kubectl("describe", "avatarvideo", "hello").stdout
    events = described[described.index("Events:") :]
    for reason in ("Queued", "Dispatched", "Succeeded"):
        assert reason in events, described
    # kubectl's own table and wait work on the resource.
    table = system.kubectl("get", "avatarvideos").stdout
    assert "hello" in table
    assert "Succeeded" in table
    system.kubectl("wait", "--for=condition=Complete", "avatarvideo/hello", "--timeout=5s")

    metrics = system.operator_metrics()
    assert metric(metrics, "avatar_operator_jobs_total", 'outcome="succeeded"') >= 1
    assert metric(metrics, "avatar_operator_dispatch_latency_seconds_count") >= 1
    assert metric(metrics, "avatar_operator_job_seconds_count") >= 1
    assert 'avatar_operator_queue_depth{pool="default"} 0.0' in metrics


def test_twenty_videos_share_four_slots_and_all_succeed(two_pods: System) -> None:
    system = two_pods
    names = [f"batch-{i:02d}" for i in range(20)]
    system.apply(*(system.video(n) for n in names))
    pods = system.runtime_pods()
    assert len(pods) == 2
    most_busy, most_on_a_pod = 0, 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        busy = 0
        for pod in pods:
            with system.runtime(pod) as client:
                capacity = client.get("/v1/capacity").json()
            busy += capacity["slots_busy"]
            # A job sent the moment a slot frees may wait a few ms for the slot's thread to
            # take it; what must never happen is a pod holding more jobs than its slots.
            on_pod = capacity["slots_busy"] + capacity["queue_length"]
            most_on_a_pod = max(most_on_a_pod, on_pod)
        most_busy = max(most_busy, busy)
        phases = {
            v["metadata"]["name"]: (v.get("status") or {}).get("phase")
            for v in system.all("default")
        }
        assert sum(p == "Running" for p in phases.values()) <= 4, phases
        if all(phases.get(n) == "Succeeded" for n in names):
            break
        time.sleep(0.3)
    finished = {v["metadata"]["name"]: v["status"] for v in system.all("default")}
    assert all(finished[n]["phase"] == "Succeeded" for n in names), {
        n: finished[n].get("phase") for n in names
    }
    assert most_busy == 4, "the four slots were never all in use"
    assert most_on_a_pod <= 2, "the operator sent a pod more jobs than its 2 slots"
    assert {finished[n]["runtimePod"] for n in names} == {p["metadata"]["name"] for p in pods}
    assert metric(system.operator_metrics(), "avatar_operator_queue_depth", 'pool="default"') == 0


def test_a_video_for_engines_no_pod_runs_waits_and_says_why(two_pods: System) -> None:
    system = two_pods
    system.apply(system.video("gpu-only", tts="xtts", renderer="ditto"))
    system.apply(system.video("cpu-ok", tts="piper", renderer="embedded"))
    assert system.wait_phase("cpu-ok", ["Succeeded", "Failed"])["status"]["phase"] == "Succeeded"
    status = system.get("gpu-only")["status"]
    assert status["phase"] == "Queued"
    assert "runs tts=xtts, renderer=ditto" in status["message"]
    assert "NoPodForEngines" in [e["reason"] for e in system.events("gpu-only")]
    system.kubectl("delete", "avatarvideo", "gpu-only", "--timeout=30s")


def test_a_portrait_without_a_face_fails_at_once(two_pods: System) -> None:
    system = two_pods
    system.apply(system.video("faceless", portrait="gs://demo/blank.png"))
    status = system.wait_phase("faceless", ["Failed", "Succeeded"])["status"]
    assert status["phase"] == "Failed"
    assert status["attempts"] == 1
    assert status["error"]["code"] == "FaceNotFound"
    assert status["error"]["retriable"] is False
    assert {c["type"]: c["status"] for c in status["conditions"]}["Failed"] == "True"
    assert "FaceNotFound" in [e["reason"] for e in system.events("faceless")]


class FlakyServer(http.server.ThreadingHTTPServer):
    """Answers 503 to the first ``failures`` requests, then serves the portrait."""

    def __init__(self, portrait: bytes, failures: int) -> None:
        self.portrait, self.failures, self.times = portrait, failures, list[float]()
        super().__init__(("127.0.0.1", 0), _Flaky)


class _Flaky(http.server.BaseHTTPRequestHandler):
    server: FlakyServer

    def do_GET(self) -> None:
        self.server.times.append(time.monotonic())
        if len(self.server.times) <= self.server.failures:
            self.send_error(503, "try again later")
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.server.portrait)))
        self.end_headers()
        self.wfile.write(self.server.portrait)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky(two_pods: System) -> Iterator[FlakyServer]:
    server = FlakyServer((two_pods.buckets / "demo" / "portrait.png").read_bytes(), failures=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_a_retriable_error_is_retried_with_backoff(two_pods: System, flaky: FlakyServer) -> None:
    system = two_pods
    url = f"http://127.0.0.1:{flaky.server_address[1]}/portrait.png"
    system.apply(system.video("flaky", portrait=url))
    status = system.wait_phase("flaky", ["Succeeded", "Failed"])["status"]
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] == 3
    assert len(flaky.times) == 3
    first_wait, second_wait = (b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False))
    assert first_wait >= 0.5  # AVATAR_OPERATOR_RETRIES__BASE_SECONDS in these tests
    assert second_wait >= 1.0  # doubled
    (retrying,) = [e for e in system.events("flaky") if e["reason"] == "Retrying"]
    assert retrying["count"] == 2  # one Event, counted again: kubectl shows "(x2 over ...)"
    assert "DownloadFailed" in retrying["message"] or "503" in retrying["message"]


def test_retries_stop_at_max_retries(two_pods: System, flaky: FlakyServer) -> None:
    system = two_pods
    flaky.failures = 100
    url = f"http://127.0.0.1:{flaky.server_address[1]}/portrait.png"
    system.apply(system.video("hopeless", portrait=url, maxRetries=1))
    status = system.wait_phase("hopeless", ["Succeeded", "Failed"])["status"]
    assert status["phase"] == "Failed"
    assert status["attempts"] == 2
    assert status["error"]["code"] == "DownloadFailed"
    assert "gave up after 2 attempts" in status["error"]["message"]


def _running_on(system: System, name: str) -> dict[str, Any]:
    def rendering() -> dict[str, Any] | None:
        status = system.get(name).get("status") or {}
        ok = status.get("phase") == "Running" and status.get("stage") not in (None, "dispatched")
        return status if ok else None

    status: dict[str, Any] = wait_until(rendering, timeout=60, what=f"{name} rendering")
    return status


def test_deleting_a_running_video_cancels_its_runtime_job(two_pods: System) -> None:
    system = two_pods
    system.apply(system.video("doomed", text=VERY_LONG_TEXT))
    status = _running_on(system, "doomed")
    pod = system.pod_named(status["runtimePod"])
    uid = system.get("doomed")["metadata"]["uid"]

    system.kubectl("delete", "avatarvideo", "doomed", "--timeout=30s")  # waits for the finalizer
    with system.runtime(pod) as client:
        job = client.get(f"/v1/jobs/{uid}").json()
    assert job["state"] == "cancelled", job
    assert not system.local("gs://demo/out/default/doomed/").exists() or not any(
        system.local("gs://demo/out/default/doomed/").iterdir()
    )


def test_a_deadline_fails_the_video_and_stops_its_job(two_pods: System) -> None:
    system = two_pods
    system.apply(system.video("late", text=VERY_LONG_TEXT, deadlineSeconds=4))
    status = system.wait_phase("late", ["Failed", "Succeeded"])["status"]
    assert status["phase"] == "Failed", status
    assert status["error"]["code"] == "DeadlineExceeded"
    assert status["error"]["retriable"] is False
    uid = system.get("late")["metadata"]["uid"]
    pod = system.pod_named(status["runtimePod"]) if status.get("runtimePod") else None
    if pod is not None:
        with system.runtime(pod) as client:
            assert client.get(f"/v1/jobs/{uid}").json()["state"] == "cancelled"


def test_the_operator_restarting_mid_job_neither_loses_nor_repeats_it(two_pods: System) -> None:
    system = two_pods
    renders_before = system.runtime_jobs_total()
    system.apply(system.video("survivor", text=" ".join([LONG_TEXT] * 3)))
    _running_on(system, "survivor")
    system.operator.kill()
    system.operator.start()
    status = system.wait_phase("survivor", ["Succeeded", "Failed"], timeout=120)["status"]
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] == 1
    assert system.runtime_jobs_total() == renders_before + 1  # rendered once, not twice
    assert "adopting the job" in system.operator.log_text()


def test_a_deleted_runtime_pod_s_interrupted_job_finishes_on_the_other(two_pods: System) -> None:
    """Deleting a pod drains it: past its grace the job is interrupted and runs elsewhere."""
    system = two_pods
    system.apply(system.video("evicted", text=" ".join([LONG_TEXT] * 3)))
    status = _running_on(system, "evicted")
    victim = status["runtimePod"]
    system.kubectl("delete", "pod", victim, "--wait=false")

    status = system.wait_phase("evicted", ["Succeeded", "Failed"], timeout=120)["status"]
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] == 2
    assert status["runtimePod"] != victim
    assert status["platformRetries"] == 1  # the platform's doing, not the user's retry
    requeued = [e["message"] for e in system.events("evicted") if e["reason"] == "Requeued"]
    assert any("Interrupted" in m or "shut down" in m for m in requeued), requeued
    system.wait_for_runtime_pods(2)  # the Deployment replaced it


def test_a_killed_runtime_pod_s_job_finishes_on_the_other(two_pods: System) -> None:
    system = two_pods
    system.apply(system.video("orphan", text=" ".join([LONG_TEXT] * 3)))
    status = _running_on(system, "orphan")
    victim = system.pod_named(status["runtimePod"])
    os.kill(system.pod_pid(victim), signal.SIGKILL)

    status = system.wait_phase("orphan", ["Succeeded", "Failed"], timeout=120)["status"]
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] == 2
    assert status["runtimePod"] != victim["metadata"]["name"]
    reasons = [e["reason"] for e in system.events("orphan")]
    assert "Retrying" in reasons
    # The Deployment replaces the dead pod, as a ReplicaSet does.
    system.wait_for_runtime_pods(2)


def test_finished_videos_go_after_their_ttl(two_pods: System) -> None:
    system = two_pods
    system.apply(system.video("brief", ttlSecondsAfterFinished=1))
    system.wait_phase("brief", ["Succeeded"])
    wait_until(
        lambda: system.kubectl("get", "avatarvideo", "brief", check=False).returncode != 0,
        timeout=30,
        what="the TTL delete",
    )


def test_the_example_the_api_refuses(two_pods: System) -> None:
    [bad] = load_yaml(REPO / "examples" / "invalid-text-and-audio.yaml")
    example = REPO / "examples" / "invalid-text-and-audio.yaml"
    refused = two_pods.kubectl("apply", "-f", str(example), check=False)
    assert refused.returncode != 0
    assert "exactly one of text and audio" in refused.stderr
    assert two_pods.kubectl("get", "avatarvideo", bad["metadata"]["name"], check=False).returncode
