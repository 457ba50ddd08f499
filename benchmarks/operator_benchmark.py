"""The operator's own cost: 1,000 AvatarVideos created at once, dispatched to idle slots.

The runtime pods here render nothing (``benchmarks.noop_runtime``: the real
runtime API and job board, each job a short sleep), so what is measured is the
operator: kopf, queueing, dispatch, tracking, status writes and Events. The
operator is the real ``kopf run`` process, pinned to one core (CPU 0); the dev
cluster, the runtime pods and this script share the other core.

Measured: dispatch latency from creation to a pod accepting (p50/p99), latency
after a slot frees (from the later of the job's creation and the moment the
slot it took became free), dispatches per second, and the operator's CPU
seconds per resource. Targets: p50 latency after a slot frees under 100 ms;
at least 50 dispatches per second on one core.

    .venv/bin/python -m benchmarks.operator_benchmark [--resources 1000] [--report PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from avatar_devcluster import running, stack
from benchmarks.pipeline_benchmark import machine
from tests.operator.system import metric

REPO = Path(__file__).resolve().parents[1]
PODS, SLOTS, JOB_SECONDS = 4, 4, 0.05
TICKS = os.sysconf("SC_CLK_TCK")
PLURAL = "/apis/avatar.dev/v1alpha1/namespaces/default/avatarvideos"


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _noop_deployment(record: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(
        stack.runtime_deployment(buckets=record, replicas=PODS, slots=SLOTS)
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-m", "benchmarks.noop_runtime"]
    container["args"] = [
        *("--host", "$(POD_IP)", "--port", "8080", "--slots", str(SLOTS)),
        *("--job-seconds", str(JOB_SECONDS), "--record", str(record)),
    ]
    return manifest


def _video(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "avatar.dev/v1alpha1",
        "kind": "AvatarVideo",
        "metadata": {"name": name},
        "spec": {
            "portrait": "gs://bench/portrait.png",
            "text": "A short line for the benchmark.",
            "output": f"gs://bench/out/{name}/",
        },
    }


async def _create_all(url: str, count: int) -> dict[str, float]:
    """POST every resource, 32 at a time; returns name -> wall time it existed."""
    created: dict[str, float] = {}
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(i: int) -> None:
            name = f"bench-{i:04d}"
            async with limit:
                response = await client.post(PLURAL, json=_video(name))
                response.raise_for_status()
                created[name] = time.time()

        await asyncio.gather(*(one(i) for i in range(count)))
    return created


def _phases(url: str) -> tuple[dict[str, str], dict[str, str]]:
    items = httpx.get(url + PLURAL, timeout=60).json()["items"]
    phases = {v["metadata"]["name"]: (v.get("status") or {}).get("phase", "") for v in items}
    uids = {v["metadata"]["uid"]: v["metadata"]["name"] for v in items}
    return phases, uids


def run(count: int) -> dict[str, Any]:
    os.sched_setaffinity(0, {1})  # this script, the dev cluster and the runtime pods: CPU 1
    root = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    record = root / "records"
    with running.in_thread(kubeconfig_path=root / "kubeconfig", state=None) as cluster:
        kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig)]
        subprocess.run([*kubectl, "apply", "-f", str(REPO / "crds")], check=True,
                       capture_output=True)  # fmt: skip
        docs = [json.loads(stack.token_secret("bench")), _noop_deployment(record)]
        subprocess.run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump_all(docs),
                       text=True, check=True, capture_output=True)  # fmt: skip
        metrics_port = running.free_port()
        env = stack.operator_env(kubeconfig=cluster.kubeconfig, token="bench",
                                 metrics_port=metrics_port)  # fmt: skip
        log = (root / "operator.log").open("wb")
        operator = subprocess.Popen(
            stack.operator_command(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}),  # affinity only: no locks held
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                pods = httpx.get(cluster.url + "/api/v1/namespaces/default/pods").json()["items"]
                ready = [p for p in pods if (p.get("status") or {}).get("podIP")
                         and any(c.get("type") == "Ready" and c.get("status") == "True"
                                 for c in p["status"].get("conditions") or [])]  # fmt: skip
                if len(ready) == PODS:
                    break
                time.sleep(0.5)
            time.sleep(3)  # the operator has read every pod's capacity
            cpu_before = _cpu_seconds(operator.pid)
            began = time.time()
            created = asyncio.run(_create_all(cluster.url, count))
            create_seconds = time.time() - began
            while True:
                phases, uids = _phases(cluster.url)
                done = sum(p in ("Succeeded", "Failed") for p in phases.values())
                if done >= count or time.time() - began > 600:
                    break
                time.sleep(1)
            finished = time.time() - began
            cpu = _cpu_seconds(operator.pid) - cpu_before
            operator_metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        finally:
            operator.terminate()
            operator.wait(30)
    jobs = [json.loads(line) for f in record.glob("*.jsonl") for line in f.read_text().splitlines()]
    by_pod_slot: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for f in record.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            job = json.loads(line)
            by_pod_slot.setdefault((f.stem, job["slot"]), []).append(job)
    after_free: list[float] = []
    for slot_jobs in by_pod_slot.values():
        slot_jobs.sort(key=lambda j: j["started"])
        free_since = 0.0
        for job in slot_jobs:
            name = uids.get(job["id"])
            if name in created:
                after_free.append(job["accepted"] - max(created[name], free_since))
            free_since = job["finished"]
    from_creation = [j["accepted"] - created[uids[j["id"]]] for j in jobs if j["id"] in uids]
    accepted = sorted(j["accepted"] for j in jobs)
    succeeded = sum(p == "Succeeded" for p in phases.values())
    rate = (len(accepted) - 1) / (accepted[-1] - accepted[0]) if len(accepted) > 1 else 0.0
    writes = metric(operator_metrics, "avatar_operator_status_writes_total")
    return {
        "what": (
            f"{count} AvatarVideos created at once against the dev cluster; {PODS} runtime pods"
            f" x {SLOTS} slots whose renderer does nothing (each job sleeps {JOB_SECONDS} s),"
            " to isolate the operator's own cost; the operator (real kopf run) pinned to one core"
        ),
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "versions": {"kopf": _version("kopf"), "python": sys.version.split()[0]},
        "resources": count,
        "succeeded": succeeded,
        "renders": len(jobs),
        "create_seconds": create_seconds,
        "all_finished_seconds": finished,
        "dispatches_per_second": rate,
        "dispatch_latency_from_creation": {
            "p50": _percentile(from_creation, 0.5),
            "p99": _percentile(from_creation, 0.99),
        },
        "dispatch_latency_after_slot_free": {
            "p50": _percentile(after_free, 0.5),
            "p99": _percentile(after_free, 0.99),
            "mean": statistics.fmean(after_free),
        },
        "operator_cpu_seconds": cpu,
        "operator_cpu_seconds_per_resource": cpu / count,
        "status_writes_per_resource": writes / count,
        "targets": {
            "p50_after_slot_free_seconds": 0.1,
            "dispatches_per_second_one_core": 50,
        },
        "met": {
            "p50_after_slot_free": _percentile(after_free, 0.5) < 0.1,
            "dispatches_per_second": rate >= 50,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks/reports/operator.json")
    args = parser.parse_args()
    report = run(args.resources)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
