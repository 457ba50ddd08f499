"""Runtime pools end to end: the operator sizes a pool from zero on a burst, and back to zero.

Everything is real: the operator (``kopf run``) reads the pods' figures from a real
Prometheus (Debian's, scraping the runtime pods' ``/metrics`` on loopback) or, without
one, scrapes the pods itself; it creates the pool's Deployment in the dev cluster and
sets its replicas, and the dev cluster starts and stops real ``avatar-runtime serve``
processes. The pool's windows are seconds instead of minutes so that a test takes
one. What is asserted is what the issue promises: the pool goes 0 → N → 0, its status
explains each step, only idle pods are removed, every video succeeds exactly once,
each carries its GPU seconds, and a pod removed under a video costs it no retry.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from avatar_devcluster import stack
from avatar_devcluster.waiting import wait_until
from avatar_operator.resource import parse_time
from tests.runtime.server.prometheus import query
from tests.system.monitoring import PodDiscovery, Recorder, prometheus
from tests.system.system import LONG_TEXT, System, env_for_tests, metric

pytestmark = pytest.mark.slow

POOL = "burst"
BURST = 6
TEXT = (
    "This short video says hello, talks about the weather for a moment, and then it says"
    " goodbye to everybody watching."
)
# Seconds, not minutes: drain any backlog within 5 s (so a burst asks for every pod),
# scale down after 3 s of lower recommendations, to zero after 8 s without work.
SCALING = {"targetQueueWaitSeconds": 5, "scaleDownDelaySeconds": 3, "idleBeforeZeroSeconds": 8}
OPERATOR = {
    "AVATAR_OPERATOR_SCALING__INTERVAL_SECONDS": "1",
    "AVATAR_OPERATOR_SCALING__THROUGHPUT_WINDOW_SECONDS": "20",
    "AVATAR_OPERATOR_SCALING__VICTIM_GRACE_SECONDS": "20",
    "AVATAR_OPERATOR_POOLS__DRAIN_SECONDS": "2",  # a deleted pod interrupts its jobs in 2 s
}


def _finished_lines(pods: Path) -> collections.Counter[str]:
    """``job finished`` lines of every runtime pod's log, per job id (one per render)."""
    counts: collections.Counter[str] = collections.Counter()
    for log in pods.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("job_id") and str(record.get("message", "")).startswith("job finished"):
                counts[record["job_id"]] += 1
    return counts


def _running_on_a_pod(system: System, name: str) -> str | None:
    """The pod rendering the video, once its runtime says it renders (not just sent)."""
    status = system.get(name).get("status") or {}
    if status.get("phase") != "Running" or status.get("stage") not in ("tts", "asr", "render"):
        return None
    pod: str | None = status.get("runtimePod")
    return pod


def _burst(system: System, *, source: str, interrupt: bool = False) -> None:
    system.create(
        stack.build_runtime_pool(
            buckets=system.buckets, name=POOL, min_replicas=0, max_replicas=2, slots=1,
            env=env_for_tests(), scaling=SCALING,
        )
    )  # fmt: skip
    recorder = Recorder(system.url, POOL)
    recorder.start()
    system.operator.start()
    try:
        wait_until(
            lambda: recorder.statuses and recorder.statuses[-1].get("desiredReplicas") == 0,
            timeout=60,
            what=lambda: f"the pool's first decision: {system.operator.log_text()[-2000:]}",
        )
        assert system.runtime_pods(ready=False) == []  # an idle pool at zero costs nothing
        names = [f"video-{i}" for i in range(BURST)]
        videos = [System.video(n, pool=POOL, text=TEXT) for n in names]
        if interrupt:  # first in the queue; no retry of its own to spend
            videos.append(
                System.video("preempted", pool=POOL, text=LONG_TEXT, maxRetries=0, priority=10)
            )
        system.apply(*videos)
        removed_by_test: set[str] = set()
        if interrupt:
            pod = wait_until(lambda: _running_on_a_pod(system, "preempted"), timeout=120,
                             what="the long video to render on a pod")  # fmt: skip
            system.kubectl("delete", "pod", pod, "--wait=false")  # as a spot preemption does
            removed_by_test.add(pod)
            names.append("preempted")
        done = {n: system.wait_phase(n, ["Succeeded", "Failed"], timeout=180) for n in names}
        wait_until(
            lambda: (
                (s := recorder.statuses[-1])["desiredReplicas"] == 0
                and s["readyReplicas"] == 0
                and system.runtime_pods(ready=False) == []
            ),
            timeout=90,
            what=lambda: f"the pool back at zero: {recorder.statuses[-1]}",
        )
    finally:
        recorder.stop()  # after a last poll: every pod's removal, the final status

    # Every video succeeded, exactly once, on the pool's pods.
    for name, video in done.items():
        assert video["status"]["phase"] == "Succeeded", (name, video["status"])
    uids = {video["metadata"]["uid"]: name for name, video in done.items()}
    renders = _finished_lines(system.root / "cluster" / "pods")
    assert {uids[uid]: n for uid, n in renders.items() if uid in uids} == dict.fromkeys(done, 1)
    pool_pods = set(recorder.pods)
    assert {v["status"]["runtimePod"] for v in done.values()} <= pool_pods

    # Only idle pods were removed: none went while a video ran on it, none was interrupted.
    for name, life in recorder.pods.items():
        assert life.deleted is not None, f"{name} was never removed"
        if name in removed_by_test:
            continue
        for title, obj in done.items():
            status = obj["status"]
            if status["runtimePod"] == name:
                finished = parse_time(status["completionTime"])
                assert finished is not None
                assert finished.timestamp() <= life.deleted + 0.25, (name, title)
    # Busy pods were kept from the cluster autoscaler (each rendered for seconds on end).
    rendered_on = {v["status"]["runtimePod"] for v in done.values()}
    assert all(recorder.pods[name].kept_from_autoscaler for name in rendered_on), rendered_on
    for name in set(done) - {"preempted"}:
        assert done[name]["status"]["attempts"] == 1, done[name]["status"]
        assert "platformRetries" not in done[name]["status"]

    # The pool went 0 -> 2 -> 0, each step explained.
    ups = [d for d in recorder.scales if d["direction"] == "up"]
    downs = [d for d in recorder.scales if d["direction"] == "down"]
    assert ups, recorder.scales
    assert ups[0]["reason"] in ("backlog", "arrivals")
    assert ups[0]["inputs"]["queued"] > 0
    assert max(d["replicas"] for d in recorder.scales) == 2  # maxReplicas
    assert downs[-1]["replicas"] == 0
    assert downs[-1]["reason"] == "idle"
    for decision in downs:
        assert decision["victims"], decision  # a scale-down names the pods it removed
    assert all(d["signals"] == source for d in recorder.decisions)
    final = recorder.statuses[-1]
    assert (final["desiredReplicas"], final["readyReplicas"], final["startingReplicas"]) == (
        0,
        0,
        0,
    )
    assert final["lastScaleTime"]
    assert "backlog 0 s of video in 0 videos" in final["lastDecision"]["message"]
    measured = [p for s in recorder.statuses for p in s.get("pods") or [] if p.get("throughput")]
    assert measured, "no pod's throughput was ever measured"
    assert all(p["slots"] == 1 for p in measured)
    assert max(s.get("startingReplicas", 0) for s in recorder.statuses) >= 1
    # Pods on their way are an input of the decisions (capacity that is coming).
    assert any(d["inputs"]["startingPods"] >= 1 for d in recorder.decisions)

    # Cost per video, and the pool metrics.
    metrics = system.operator_metrics()
    charged = [v["status"]["gpuSeconds"] for v in done.values()]
    assert all(seconds > 0 for seconds in charged)
    gpu_total = metric(metrics, "avatar_operator_gpu_seconds_total",
                       f'namespace="default",pool="{POOL}"')  # fmt: skip
    assert gpu_total == pytest.approx(sum(charged), abs=0.05)
    assert metric(metrics, "avatar_pool_desired_replicas", f'pool="{POOL}"') == 0
    assert metric(metrics, "avatar_pool_ready_replicas", f'pool="{POOL}"') == 0
    assert f'avatar_pool_starting_replicas{{pool="{POOL}"}}' in metrics
    up = 'direction="up",pool="{pool}",reason="{reason}"'
    ups_counted = sum(
        metric(metrics, "avatar_pool_scale_events_total", up.format(pool=POOL, reason=reason))
        for reason in ("backlog", "arrivals")
    )
    assert ups_counted >= 1
    idle_downs = f'direction="down",pool="{POOL}",reason="idle"'
    assert metric(metrics, "avatar_pool_scale_events_total", idle_downs) >= 1

    if interrupt:
        preempted = done["preempted"]["status"]
        assert preempted["platformRetries"] == 1
        assert preempted["attempts"] == 2  # with maxRetries 0: the platform's retry was free
        reasons = {e["reason"] for e in system.events("preempted")}
        assert "Requeued" in reasons
        platform = sum(
            metric(metrics, "avatar_operator_retries_total", f'cause="platform",code="{code}"')
            for code in ("Interrupted", "RuntimeLost")
        )
        assert platform == 1


def test_a_pool_scales_zero_to_n_and_back_reading_prometheus(tmp_path: Path) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    (tmp_path / "prometheus").mkdir()
    with prometheus(tmp_path / "prometheus", targets=targets) as url:
        env = {**OPERATOR, "AVATAR_OPERATOR_SCALING__PROMETHEUS_URL": url}
        with System(tmp_path / "system", operator_env=env) as system:
            discovery = PodDiscovery(system.url, targets)
            discovery.start()
            try:
                _burst(system, source="prometheus")
            finally:
                discovery.stop()
        # Prometheus scraped the pods the operator read: the same series, by pod.
        # The pods are gone (their series stale): what they last reported, by pod.
        series = 'avatar_runtime_video_seconds_total{namespace="default"}'
        made = query(url, f"sum by (pod) (last_over_time({series}[15m]))")
        assert sum(float(s["value"][1]) for s in made) > 0
        assert "avatar-runtime-burst" in made[0]["metric"]["pod"]


def test_without_prometheus_the_operator_scrapes_the_pods_and_a_removed_pod_costs_no_retry(
    tmp_path: Path,
) -> None:
    with System(tmp_path / "system", operator_env=OPERATOR) as system:
        _burst(system, source="scrape", interrupt=True)
