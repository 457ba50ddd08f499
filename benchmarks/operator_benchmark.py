"""The operator's own cost: a burst of AvatarVideos created at once, dispatched to idle slots.

The runtime pods here render nothing (``benchmarks.noop_runtime``: the real runtime
HTTP app and job board, each job a short sleep), so what is measured is the
operator: kopf, queueing, dispatch, long-poll tracking, status writes and Events.
The operator is the real ``kopf run`` process pinned to one core (CPU 0); the dev
cluster (its own process), the runtime pods (the dev cluster's children) and this
script share the other core (CPU 1).

Before the measured burst, one warm-up resource per slot goes through, so the
operator has read every pod's capacity and holds open connections. Then the
resources are POSTed to the API, ``--concurrency`` at a time, and the script
waits until every one has ended. Measured:

- dispatch latency from creation (the POST answered) to a runtime pod accepting
  the job, p50/p99;
- dispatch latency after a slot frees: the k-th job a pod accepts fills that pod's
  k-th vacancy (its slots at the start, then each job's finish in time order);
  the latency is the acceptance minus the later of the vacancy and the creation;
- dispatches per second (first to last acceptance) and the time until all succeeded;
- CPU seconds of each process (operator, dev cluster, pods, this script, the rest
  of the machine) from ``/proc``, for the whole run and while dispatching;
- the operator's own metrics and the API requests each client made.

- the operator's peak resident memory, and its resident memory each second.

Targets: p50 latency after a slot frees under 100 ms, p99 under 1 s (up to a
backlog of 10,000: ``--resources 10000``); at least 50 dispatches per second on
one core. Three whole runs (``--runs``), each on a fresh system; the report is
the median run by dispatches per second, with every run's headline figures. A
burst that does not end within ``--timeout`` (by default 240 s, more for a
larger burst) is still reported, with a note.

The system is ``avatar_devcluster.local_system``'s, as in ``make demo`` and the
end-to-end tests: pinned, with the dev cluster in memory; the CPU sampling is in
``benchmarks.cpu_sampling``, the figures in ``benchmarks.operator_analysis``.

    .venv/bin/python -m benchmarks.operator_benchmark [--resources 1000] [--runs 3]
        [--report PATH] [--keep DIR] [--profile FILE] [--operator-env NAME=VALUE]

A burst of 10,000 takes about five minutes a run; write it to its own report
(``--report benchmarks/reports/operator-10000.json``), not over the 1,000's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from avatar_devcluster import stack
from avatar_devcluster.local_system import LocalSystem, Pinning
from avatar_devcluster.waiting import wait_until
from benchmarks.cpu_sampling import Sampler, peak_rss_mb
from benchmarks.operator_analysis import Run, analyse, brief, finite

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "benchmarks" / "reports" / "operator.json"
TOKEN = "operator-benchmark"  # a shared secret of a throwaway cluster
VIDEOS = "/apis/avatar.dev/v1alpha1/namespaces/default/avatarvideos"
FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})
OPERATOR_CPU, REST_CPU = 0, 1
PACKAGES = (
    *("kopf", "kubernetes", "aiohttp", "httpx", "httpcore", "anyio", "sniffio", "fastapi"),
    *("uvicorn", "pydantic", "prometheus-client"),
)


def _noop_deployment(
    buckets: Path, record: Path, *, pods: int, slots: int, job_seconds: float
) -> dict[str, Any]:
    """The runtime Deployment of ``make demo`` (labels, port, token, probe), noop pods inside."""
    manifest = stack.build_runtime_deployment(
        buckets=buckets, replicas=pods, slots=slots, env={"PYTHONPATH": str(REPO)}
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-m", "benchmarks.noop_runtime"]
    container["args"] = [
        *("--host", "$(POD_IP)", "--port", str(stack.RUNTIME_PORT), "--slots", str(slots)),
        *("--job-seconds", str(job_seconds), "--record", str(record)),
    ]
    return manifest


def video(name: str) -> dict[str, Any]:
    """A valid AvatarVideo; the noop pods never fetch the portrait nor write the output."""
    return {
        "apiVersion": "avatar.dev/v1alpha1",
        "kind": "AvatarVideo",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "portrait": "gs://bench/portrait.png",
            "text": "A short line for the benchmark.",
            "output": f"gs://bench/out/{name}/",
        },
    }


async def create_all(url: str, names: Sequence[str], concurrency: int) -> dict[str, float]:
    """POST every resource, ``concurrency`` at a time; name -> when its POST was answered."""
    created: dict[str, float] = {}
    limit = asyncio.Semaphore(concurrency)
    transport = httpx.AsyncHTTPTransport(retries=0)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, timeout=120, transport=transport, limits=limits
    ) as client:

        async def one(name: str) -> None:
            async with limit:
                response = await client.post(VIDEOS, json=video(name))
                created[name] = time.time()
                response.raise_for_status()

        await asyncio.gather(*(one(n) for n in names))
    return created


def records(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """The noop pods' job records: pod address -> jobs."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.jsonl")):
        out[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


def finished_renders(directory: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in directory.glob("*.jsonl"))


def default_timeout(count: int) -> float:
    """Seconds a burst may take: 240, or 50 ms a resource (20/s, well under the target's
    50/s) for a burst larger than 4,800."""
    return max(240.0, 0.05 * count)


def list_every(count: int) -> float:
    """How often to list every resource while waiting for their ends: each list is the
    whole collection (~3 KB a resource) served by the dev cluster on the shared core, so
    a larger burst is listed less often."""
    return max(0.5, count / 5000)


def _all_ended(api: httpx.Client, prefix: str, count: int) -> bool:
    items = api.get(VIDEOS).json()["items"]
    ended = [
        v
        for v in items
        if v["metadata"]["name"].startswith(prefix)
        and (v.get("status") or {}).get("phase") in FINISHED
    ]
    return len(ended) >= count


def run_system(
    root: Path,
    *,
    count: int,
    pods: int,
    slots: int,
    job_seconds: float,
    concurrency: int,
    timeout: float,
    profile: Path | None,
    operator_env: dict[str, str],
) -> Run:
    os.sched_setaffinity(0, {REST_CPU})  # this script, beside the dev cluster and its pods
    record = root / "records"
    notes: list[str] = []
    system = LocalSystem(
        root,
        token=TOKEN,
        operator_env=operator_env,
        operator_profile=profile,
        pinning=Pinning(operator=OPERATOR_CPU, rest=REST_CPU),
        in_memory=True,
    )
    with system:
        api = system.api
        system.create(
            _noop_deployment(
                system.buckets, record, pods=pods, slots=slots, job_seconds=job_seconds
            )
        )
        system.wait_for_runtime_pods(pods, timeout=120)
        system.operator.start()
        # One resource per slot first: the operator has read every pod's capacity and
        # holds open connections before the clock starts.
        warm = pods * slots
        asyncio.run(create_all(system.url, [f"warmup-{i:02d}" for i in range(warm)], concurrency))
        wait_until(
            lambda: _all_ended(api, "warmup-", warm),
            timeout=120,
            every=0.25,
            what="the warm-up resources",
        )
        time.sleep(2)  # the warm-up's Events and writes settle
        # The pods' processes as they are now: one that failed to start was replaced.
        pod_pids = [system.pod_pid(p) for p in system.runtime_pods()]
        sampler = Sampler(
            {
                "operator": [system.operator.pid],
                "devcluster": [system.cluster.pid],
                "runtime_pods": pod_pids,
                "benchmark": [os.getpid()],
            }
        )
        sampler.sample()
        sampler.start()
        before = system.operator_metrics()
        names = [f"bench-{i:0{len(str(count - 1))}d}" for i in range(count)]
        began = time.time()
        created = asyncio.run(create_all(system.url, names, concurrency))
        create_seconds = time.time() - began
        all_rendered = all_ended = None
        try:
            wait_until(
                lambda: finished_renders(record) >= warm + count,
                timeout=began + timeout - time.time(),
                every=0.1,
                what="every job to finish on the runtime pods",
            )
            all_rendered = time.time()
            wait_until(
                lambda: _all_ended(api, "bench-", count),
                timeout=max(1.0, began + timeout - time.time()),
                every=list_every(count),
                what="every resource to end",
            )
            all_ended = time.time()
        except TimeoutError as exc:
            notes.append(
                f"incomplete run: not every resource ended within {timeout:.0f} s of the"
                f" first POST ({exc}); the figures cover what was done by then"
            )
        after = system.operator_metrics()
        sampler.stop()
        rss = peak_rss_mb(system.operator.pid)
        videos: list[dict[str, Any]] = api.get(VIDEOS).json()["items"]
    return Run(
        count=count,
        pods=pods,
        slots=slots,
        job_seconds=job_seconds,
        concurrency=concurrency,
        warm=warm,
        began=began,
        created=created,
        create_seconds=create_seconds,
        all_rendered=all_rendered,
        all_ended=all_ended,
        videos=videos,
        jobs=records(record),
        sampler=sampler,
        metrics_before=before,
        metrics_after=after,
        verbs=system.client_verbs(),
        operator_rss_mb=rss,
        operator_log=system.operator.log,
        notes=notes,
    )


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**20, 1),
        "platform": platform.platform(),
        "load_average_before": list(os.getloadavg()),
        "versions": versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="whole runs; the median is reported")
    parser.add_argument("--pods", type=int, default=4)
    parser.add_argument("--slots", type=int, default=4, help="slots per runtime pod")
    parser.add_argument("--job-seconds", type=float, default=0.05, help="each noop job's sleep")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight at once")
    parser.add_argument(
        "--timeout", type=float, help="seconds the burst may take (default: default_timeout)"
    )
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--keep", type=Path, help="put logs and records under this directory")
    parser.add_argument("--profile", type=Path, help="cProfile the operator into this file")
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an operator setting (AVATAR_OPERATOR_...) to try; repeatable",
    )
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        parser.error("needs two CPUs: one for the operator, one for everything else")
    operator_env = dict(item.split("=", 1) for item in args.operator_env)
    about = machine()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="operator-bench-", dir=args.keep)).resolve()
        run = run_system(
            root,
            count=args.resources,
            pods=args.pods,
            slots=args.slots,
            job_seconds=args.job_seconds,
            concurrency=args.concurrency,
            timeout=args.timeout or default_timeout(args.resources),
            profile=args.profile,
            operator_env=operator_env,
        )
        results = analyse(run)
        busy = results["cpu_whole_run"]["cpu_seconds"]["rest_of_machine"]
        busy /= results["cpu_whole_run"]["wall_seconds"]
        if busy > 0.15:
            run.notes.append(
                f"the machine was busy with other work during the run ({busy:.2f} cores on"
                " average outside this benchmark's processes): the figures are pessimistic"
            )
        results |= {"notes": run.notes, "logs": str(root)}
        runs.append(results)
        print(f"run {i + 1} of {args.runs}: {json.dumps(brief(results))}", flush=True)
    median = sorted(runs, key=lambda r: float(r["dispatches_per_second"]))[len(runs) // 2]
    report = {
        "what": (
            f"{args.resources} AvatarVideos created at once ({args.concurrency} POSTs in flight)"
            f" against the dev cluster; {args.pods} runtime pods x {args.slots} slots whose"
            f" renderer does nothing (each job sleeps {args.job_seconds} s), to isolate the"
            " operator's own cost. The operator (the real kopf run) is pinned to CPU"
            f" {OPERATOR_CPU}; the dev cluster, the pods and this script share CPU {REST_CPU}."
        ),
        "date": dt.date.today().isoformat(),
        "machine": about,
        "settings": {
            "resources": args.resources,
            "runs": args.runs,
            "pods": args.pods,
            "slots_per_pod": args.slots,
            "job_seconds": args.job_seconds,
            "create_concurrency": args.concurrency,
            "warm_up_resources": args.pods * args.slots,
            "operator_cpu": OPERATOR_CPU,
            "rest_cpu": REST_CPU,
            "operator_env": operator_env or "defaults (only the token and metrics port set)",
        },
        "targets": {
            "p50_after_slot_free_seconds": 0.1,
            "p99_after_slot_free_seconds": 1.0,
            "dispatches_per_second_one_core": 50,
        },
        "figures_from": f"the median of {args.runs} runs by dispatches per second",
        "runs": [brief(r) for r in runs],
        **median,
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(finite(report), indent=2, allow_nan=False) + "\n")
    print(json.dumps({k: report[k] for k in ("runs", "met")}, indent=2))
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
