"""The chaos soak: a local system under load while its runtime pods are killed and its
operator restarted, then checked for lost, stuck, twice-rendered and half-written videos.

``make soak`` (five minutes; ``--seconds``, ``--resources`` vary it) runs on the
local system of ``make demo``: the dev cluster, three runtime pods (real
``avatar-runtime serve`` processes with the embedded engines) and the operator
(``kopf run``). AvatarVideos arrive over the first part of the run in three
namespaces and three priorities, in bursts of ten, with a few poison ones among
them (a portrait with no face, a recording that does not exist), while:

- a runtime pod is SIGKILLed every ``--pod-kill-every`` seconds (a ready one of the
  soak's own Deployment, by the pid the dev cluster gives it; the Deployment
  replaces it as a ReplicaSet does);
- the operator is SIGKILLed and started again every ``--operator-restart-every``
  seconds (the process the soak started, by its pid);
- ``kubectl get av -A`` is asked every two seconds.

Then, once every resource has ended or ``--settle`` seconds have passed, it checks:
every resource ended (Succeeded, or Failed with a code; each poison one Failed with
its code within a minute of its creation); no video completed twice (the pods' own
logs: one "job finished" line per job id at most; a job sent again after its pod
finished it and died is "finished by an earlier attempt", from its record); every
video decodes and lasts what its status says; no partial file is left in the buckets; kubectl always
answered. The report (``docs/benchmarks/soak.json``) counts kills, restarts,
resources, duplicates, lost, and the longest time from a kill to the recovery of
the videos it interrupted.

    .venv/bin/python -m benchmarks.soak [--seconds 300] [--resources 200] [--report PATH]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av

from avatar_devcluster import stack
from avatar_devcluster.local_system import LocalSystem
from avatar_devcluster.waiting import wait_until
from avatar_operator.resource import parse_time

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "benchmarks" / "soak.json"
NAMESPACES = ("soak-a", "soak-b", "soak-c")
PRIORITIES = (0, 10, 50)
# Three to six seconds of speech each: long enough that a killed pod is often rendering,
# short enough that two cores keep up with a video a second (the soak tests robustness,
# not capacity: a queue that only grows would measure the machine).
TEXTS = (
    "Hello there, and welcome. Today we look at the week ahead.",
    "Here is a short update: the new office opens on Monday.",
    "Thanks for watching. Write to us with any questions, and see you soon.",
)
# Poison: inputs that can never render, each with the code it must fail with.
POISON = (
    ({"portrait": "gs://soak/blank.png"}, "FaceNotFound"),
    ({"audio": "gs://soak/missing.wav", "text": None}, "InputNotFound"),
)
FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})


@dataclass(frozen=True)
class SoakPlan:
    seconds: float = 300.0
    """How long the chaos lasts; resources arrive over its first two thirds."""
    resources: int = 200
    poison: int = 4
    pods: int = 3
    slots: int = 2
    pod_kill_every: float = 20.0
    operator_restart_every: float = 60.0
    settle: float = 240.0
    """After the chaos, how long every resource may take to end."""
    burst: int = 10
    """Resources arrive this many at once."""
    seed: int = 1


@dataclass
class Chaos:
    """What the soak did to the system, and when (monotonic seconds since the start)."""

    kills: list[dict[str, Any]] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)
    kubectl_failures: list[str] = field(default_factory=list)
    kubectl_answers: int = 0
    kubectl_slowest_seconds: float = 0.0


def _manifest(
    name: str, namespace: str, *, priority: int, text: str, spec: dict[str, Any]
) -> dict[str, Any]:
    body = {
        "portrait": "gs://soak/portrait.png",
        "output": f"gs://soak/out/{namespace}/{name}/",
        "resolution": 128,
        "fps": 12,
        "priority": priority,
        "text": text,
    }
    body.update(spec)
    return {
        "apiVersion": "avatar.dev/v1alpha1",
        "kind": "AvatarVideo",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def _resources(plan: SoakPlan) -> list[tuple[dict[str, Any], str | None]]:
    """Every resource of the soak, in arrival order, with the code a poison one must fail with."""
    rng = random.Random(plan.seed)
    out: list[tuple[dict[str, Any], str | None]] = []
    for index in range(plan.resources):
        namespace, priority = rng.choice(NAMESPACES), rng.choice(PRIORITIES)
        manifest = _manifest(
            f"video-{index:04d}", namespace, priority=priority, text=rng.choice(TEXTS), spec={}
        )
        out.append((manifest, None))
    for index in range(plan.poison):
        spec, code = POISON[index % len(POISON)]
        manifest = _manifest(
            f"poison-{index:02d}",
            NAMESPACES[index % len(NAMESPACES)],
            priority=0,
            text=TEXTS[0],
            spec=dict(spec),
        )
        out.insert(rng.randrange(len(out) + 1), (manifest, code))
    return out


def _write_inputs(buckets: Path) -> None:
    from PIL import Image
    from skimage import data

    soak = buckets / "soak"
    soak.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).resize((256, 256)).save(soak / "portrait.png")
    Image.new("RGB", (256, 256), (128, 128, 128)).save(soak / "blank.png")


@dataclass
class _Run:
    plan: SoakPlan
    system: LocalSystem
    started: float = field(default_factory=time.monotonic)
    chaos: Chaos = field(default_factory=Chaos)
    stop: threading.Event = field(default_factory=threading.Event)

    def now(self) -> float:
        return time.monotonic() - self.started

    def videos(self) -> list[dict[str, Any]]:
        answer = self.system.api.get("/apis/avatar.dev/v1alpha1/avatarvideos")
        items: list[dict[str, Any]] = answer.raise_for_status().json()["items"]
        return items

    def chaos_loop(self) -> None:
        rng = random.Random(self.plan.seed + 1)
        next_kill, next_restart = self.plan.pod_kill_every, self.plan.operator_restart_every
        while not self.stop.wait(0.5):
            if self.now() >= next_kill:
                next_kill += self.plan.pod_kill_every
                self._kill_a_pod(rng)
            if self.now() >= next_restart:
                next_restart += self.plan.operator_restart_every
                self.system.operator.kill()
                self.system.operator.start()
                self.chaos.restarts.append(round(self.now(), 2))

    def _kill_a_pod(self, rng: random.Random) -> None:
        pods = self.system.runtime_pods()
        if not pods:
            return
        victim = rng.choice(pods)
        name = victim["metadata"]["name"]
        running = [
            (v["metadata"]["namespace"], v["metadata"]["name"])
            for v in self.videos()
            if (v.get("status") or {}).get("runtimePod") == name
            and (v.get("status") or {}).get("phase") == "Running"
        ]
        try:
            os.kill(LocalSystem.pod_pid(victim), signal.SIGKILL)
        except ProcessLookupError:
            return
        self.chaos.kills.append(
            {"at": round(self.now(), 2), "pod": name, "running": [f"{n}/{v}" for n, v in running]}
        )

    def kubectl_loop(self) -> None:
        while not self.stop.wait(2.0):
            began = time.monotonic()
            done = self.system.kubectl("get", "av", "-A", check=False)  # the short name
            took = time.monotonic() - began
            self.chaos.kubectl_slowest_seconds = max(self.chaos.kubectl_slowest_seconds, took)
            if done.returncode == 0:
                self.chaos.kubectl_answers += 1
            else:
                self.chaos.kubectl_failures.append(f"{self.now():.1f} s: {done.stderr[-300:]}")


def _threads(run: _Run) -> Iterator[threading.Thread]:
    for target in (run.chaos_loop, run.kubectl_loop):
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        yield thread


def run_soak(plan: SoakPlan, root: Path) -> dict[str, Any]:
    """Run the soak under ``root`` and return its report (see the module)."""
    operator_env = {
        "AVATAR_OPERATOR_RETRIES__BASE_SECONDS": "1",
        "AVATAR_OPERATOR_TRACKING__POD_LOST_SECONDS": "5",
    }
    with LocalSystem(root, operator_env=operator_env) as system:
        _write_inputs(system.buckets)
        for namespace in NAMESPACES:
            system.kubectl("create", "namespace", namespace)
        env = {
            "AVATAR_RUNTIME_SERVER__GRACE_SECONDS": "2",
            "AVATAR_RUNTIME_WORK_DIR": str(root / "work"),
        }
        system.create(
            stack.build_runtime_deployment(
                buckets=system.buckets, replicas=plan.pods, slots=plan.slots, env=env
            )
        )
        system.operator.start()
        system.wait_for_runtime_pods(plan.pods)
        run = _Run(plan=plan, system=system)
        threads = list(_threads(run))
        expected: dict[str, str | None] = {}
        created: dict[str, float] = {}
        resources = _resources(plan)
        arrive_within = plan.seconds * 2 / 3
        for index, (manifest, code) in enumerate(resources):
            # In bursts of ``burst``: the pods are busy when a kill comes more often.
            due = arrive_within * (index - index % plan.burst) / len(resources)
            time.sleep(max(0.0, due - run.now()))
            meta = manifest["metadata"]
            path = f"/apis/avatar.dev/v1alpha1/namespaces/{meta['namespace']}/avatarvideos"
            system.api.post(path, json=manifest).raise_for_status()
            key = f"{meta['namespace']}/{meta['name']}"
            expected[key], created[key] = code, run.now()
        time.sleep(max(0.0, plan.seconds - run.now()))
        run.stop.set()
        for thread in threads:
            thread.join(60)

        def all_ended() -> bool:
            return all((v.get("status") or {}).get("phase") in FINISHED for v in run.videos())

        with contextlib.suppress(TimeoutError):  # what has not ended is reported as lost
            wait_until(all_ended, timeout=plan.settle, every=2, what="every resource to end")
        videos = {f"{v['metadata']['namespace']}/{v['metadata']['name']}": v for v in run.videos()}
        report = _check(run, videos=videos, expected=expected, created=created)
    report["chaos"] = asdict(run.chaos)
    return report


def _pod_lines(pods: Path, message: str) -> collections.Counter[str]:
    """Lines of every runtime pod's own log starting with ``message``, per job id."""
    counts: collections.Counter[str] = collections.Counter()
    for log in pods.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if message not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("job_id") and str(record.get("message", "")).startswith(message):
                counts[record["job_id"]] += 1
    return counts


def _seconds(value: str | None) -> float | None:
    when = parse_time(value)
    return None if when is None else when.timestamp()


def _check(
    run: _Run,
    *,
    videos: dict[str, dict[str, Any]],
    expected: dict[str, str | None],
    created: dict[str, float],
) -> dict[str, Any]:
    system = run.system
    phases = collections.Counter((v.get("status") or {}).get("phase") for v in videos.values())
    failed_codes: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    lost = [key for key in expected if key not in videos]
    for key, code in expected.items():
        video = videos.get(key) or {}
        status = video.get("status") or {}
        phase = status.get("phase")
        if phase not in FINISHED:
            lost.append(key)
            continue
        if phase == "Failed":
            failed_codes[(status.get("error") or {}).get("code", "?")] += 1
        if code is None:
            if phase != "Succeeded":
                problems.append(f"{key}: {phase} {status.get('error')}")
            continue
        took = (_seconds(status.get("completionTime")) or 0) - (
            _seconds(video["metadata"]["creationTimestamp"]) or 0
        )
        if phase != "Failed" or (status.get("error") or {}).get("code") != code:
            problems.append(f"{key} (poison, {code}): {phase} {status.get('error')}")
        elif took > 60:
            problems.append(f"{key} (poison): failed after {took:.0f} s, not within a minute")
    renders = _pod_lines(system.root / "cluster" / "pods", "job finished")
    reused = _pod_lines(system.root / "cluster" / "pods", "finished by an earlier attempt")
    uids = {v["metadata"]["uid"]: key for key, v in videos.items()}
    duplicates = sorted(uids.get(uid, uid) for uid, n in renders.items() if n > 1)
    undecodable = []
    for key, video in videos.items():
        status = video.get("status") or {}
        if status.get("phase") != "Succeeded":
            continue
        path = system.local(status["outputs"]["video"]["url"])
        try:
            with av.open(str(path)) as container:
                frames = sum(1 for _ in container.decode(video=0))
        except (OSError, av.error.FFmpegError) as exc:
            undecodable.append(f"{key}: {exc}")
            continue
        if frames != round(status["videoSeconds"] * video["spec"].get("fps", 25)):
            undecodable.append(f"{key}: {frames} frames for {status['videoSeconds']} s")
    partials = sorted(str(p) for p in system.buckets.rglob("*.partial-*"))
    recovery = _recovery_seconds(run.chaos, videos, started_wall=time.time() - run.now())
    return {
        "what": "chaos soak: runtime pods SIGKILLed and the operator restarted under load",
        "date": dt.date.today().isoformat(),
        "plan": asdict(run.plan),
        "resources": len(expected),
        "poison": sum(1 for code in expected.values() if code),
        "phases": dict(phases),
        "failed_by_code": dict(failed_codes),
        "kills": len(run.chaos.kills),
        "restarts": len(run.chaos.restarts),
        "lost": sorted(set(lost)),
        "duplicates": duplicates,
        "renders_completed": sum(renders.values()),
        "finished_from_record": sum(reused.values()),
        "undecodable": undecodable,
        "partial_files": partials,
        "problems": problems,
        "kubectl_failures": len(run.chaos.kubectl_failures),
        "kubectl_answers": run.chaos.kubectl_answers,
        "kubectl_slowest_seconds": round(run.chaos.kubectl_slowest_seconds, 2),
        "max_recovery_seconds": recovery,
        "ok": not (lost or duplicates or undecodable or partials or problems)
        and not run.chaos.kubectl_failures,
    }


def _recovery_seconds(
    chaos: Chaos, videos: dict[str, dict[str, Any]], *, started_wall: float
) -> float | None:
    """The longest time from a pod's kill to the end of a video it was rendering."""
    longest: float | None = None
    for kill in chaos.kills:
        killed_at = started_wall + kill["at"]
        for key in kill["running"]:
            status = (videos.get(key) or {}).get("status") or {}
            done = _seconds(status.get("completionTime"))
            if done is not None:
                longest = max(longest or 0.0, round(done - killed_at, 2))
    return longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = SoakPlan()
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument("--resources", type=int, default=defaults.resources)
    parser.add_argument("--poison", type=int, default=defaults.poison)
    parser.add_argument("--pod-kill-every", type=float, default=defaults.pod_kill_every)
    parser.add_argument(
        "--operator-restart-every", type=float, default=defaults.operator_restart_every
    )
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--keep", type=Path, help="keep the system's files here")
    args = parser.parse_args()
    plan = SoakPlan(
        seconds=args.seconds,
        resources=args.resources,
        poison=args.poison,
        pod_kill_every=args.pod_kill_every,
        operator_restart_every=args.operator_restart_every,
    )
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        root = args.keep or Path(scratch)
        report = run_soak(plan, root)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "chaos"}, indent=2))
    print(f"report: {args.report}")
    if not report["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
