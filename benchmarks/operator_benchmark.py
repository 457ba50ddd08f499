"""The operator's own cost: 1,000 AvatarVideos created at once, dispatched to idle slots.

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

Targets: p50 latency after a slot frees under 100 ms; at least 50 dispatches per
second on one core. Three whole runs (``--runs``), each on a fresh system; the
report is the median run by dispatches per second, with every run's headline
figures. A burst that does not end within ``--timeout`` is still reported, with a note.

    .venv/bin/python -m benchmarks.operator_benchmark [--resources 1000] [--runs 3]
        [--report PATH] [--keep DIR] [--profile FILE] [--operator-env NAME=VALUE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from avatar_devcluster import kubeconfig, running, stack

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "benchmarks" / "reports" / "operator.json"
TOKEN = "operator-benchmark"  # a shared secret of a throwaway cluster
VIDEOS = "/apis/avatar.dev/v1alpha1/namespaces/default/avatarvideos"
PODS_URL = "/api/v1/namespaces/default/pods"
FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})
OPERATOR_CPU, REST_CPU = 0, 1
TICKS = os.sysconf("SC_CLK_TCK")
PACKAGES = (
    *("kopf", "kubernetes", "aiohttp", "httpx", "httpcore", "anyio", "sniffio", "fastapi"),
    *("uvicorn", "pydantic", "prometheus-client"),
)


# -- the dev cluster as a process of its own (so its CPU is counted apart) -----------------


def serve_cluster(port: int, verbs: Path, pod_logs: Path) -> None:
    """The dev cluster, in memory, until SIGTERM; then the API requests per client to ``verbs``."""
    from avatar_devcluster import app
    from avatar_devcluster.store import Store

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with app.serving(
            Store(None), host="127.0.0.1", port=port, pod_logs=pod_logs
        ) as runner:
            await stop.wait()
            counts = runner.app[app.CLUSTER].client_verbs
            rows = [
                {"client": c, "verb": v, "target": t, "requests": n}
                for (c, v, t), n in sorted(counts.items())
            ]
            verbs.write_text(json.dumps(rows, indent=1))

    asyncio.run(main())


# -- /proc ------------------------------------------------------------------------------------


def _stat_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a live process (all its threads); NaN once it is gone."""
    try:
        return _stat_seconds(Path(f"/proc/{pid}/stat"))
    except OSError:
        return math.nan


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process's main thread: in kopf, its event loop (kopf, the
    dispatcher, the runtime HTTP client); the other threads are mostly the kubernetes
    client's pool (status writes, Events). NaN once it is gone."""
    try:
        return _stat_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))
    except OSError:
        return math.nan


def machine_cpus() -> dict[str, float]:
    """Busy and total seconds of each CPU since boot (``/proc/stat``)."""
    out: dict[str, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
        busy = user + nice + system + irq + softirq + steal
        out[f"{name}_busy"] = busy / TICKS
        out[f"{name}_total"] = (busy + idle + iowait) / TICKS
    return out


def peak_rss_mb(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


class Sampler(threading.Thread):
    """Reads the processes' and the CPUs' counters every ``every`` seconds."""

    def __init__(self, pids: dict[str, list[int]], every: float = 0.2) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.pids = pids
        self.every = every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._done = threading.Event()

    def sample(self) -> None:
        values = machine_cpus()
        for name, pids in self.pids.items():
            values[name] = sum(cpu_seconds(p) for p in pids)
        values["operator.event_loop"] = main_thread_cpu_seconds(self.pids["operator"][0])
        self.samples.append((time.time(), values))

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()

    def at(self, when: float, key: str) -> float:
        """The counter at ``when``, linearly between the samples around it."""
        points = [(t, v[key]) for t, v in self.samples if not math.isnan(v[key])]
        before = [p for p in points if p[0] <= when] or points[:1]
        after = [p for p in points if p[0] >= when] or points[-1:]
        (t0, v0), (t1, v1) = before[-1], after[0]
        return v0 if t1 == t0 else v0 + (v1 - v0) * (when - t0) / (t1 - t0)

    def window(self, start: float, end: float) -> dict[str, Any]:
        """CPU seconds of each process and CPU between two times, and busy fractions."""
        wall = end - start
        keys = self.samples[0][1].keys()
        delta = {k: self.at(end, k) - self.at(start, k) for k in keys}
        cpus = sorted({k.rsplit("_", 1)[0] for k in keys if k.endswith("_busy")})
        ours = sum(delta[name] for name in self.pids)
        machine_busy = sum(delta[f"{c}_busy"] for c in cpus)
        loop = delta["operator.event_loop"]
        return {
            "wall_seconds": wall,
            "cpu_seconds": {name: delta[name] for name in self.pids}
            | {"rest_of_machine": max(0.0, machine_busy - ours)},
            "operator_threads_cpu_seconds": {
                "event_loop": loop,
                "other_threads": delta["operator"] - loop,
            },
            "busy_fraction_of_one_core": {name: delta[name] / wall for name in self.pids},
            "cpu_busy_fraction": {c: delta[f"{c}_busy"] / delta[f"{c}_total"] for c in cpus},
        }


# -- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile, linearly between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
    }


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a Prometheus histogram: upper bound -> count."""
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return {
                float(s.labels["le"]): s.value for s in family.samples if s.name.endswith("_bucket")
            }
    return {}


def sample_value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """As PromQL's histogram_quantile: linear within the bucket the quantile falls in."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return math.nan
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if math.isinf(bound):
                return lower
            inside = buckets[bound] - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, buckets[bound]
    return lower


# -- the system -------------------------------------------------------------------------------


def _pin(cpu: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {cpu})  # affinity only: no locks taken


def _noop_deployment(record: Path, *, pods: int, slots: int, job_seconds: float) -> dict[str, Any]:
    """The runtime Deployment of ``make demo`` (labels, port, token, probe), noop pods inside."""
    manifest: dict[str, Any] = json.loads(
        stack.runtime_deployment(
            buckets=record.parent / "buckets",
            replicas=pods,
            slots=slots,
            env={"PYTHONPATH": str(REPO)},
        )
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-m", "benchmarks.noop_runtime"]
    container["args"] = [
        *("--host", "$(POD_IP)", "--port", "8080", "--slots", str(slots)),
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


@dataclass
class Run:
    """What one run leaves behind, for the analysis."""

    count: int
    pods: int
    slots: int
    job_seconds: float
    concurrency: int
    warm: int
    began: float
    created: dict[str, float]
    create_seconds: float
    all_rendered: float | None
    all_ended: float | None
    videos: list[dict[str, Any]]
    jobs: dict[str, list[dict[str, Any]]]
    sampler: Sampler
    metrics_before: str
    metrics_after: str
    verbs: list[dict[str, Any]]
    operator_rss_mb: float | None
    operator_log: Path
    notes: list[str] = field(default_factory=list)


def _wait(check: Callable[[], Any], *, timeout: float, every: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


def _ready_pods(api: httpx.Client) -> dict[str, dict[str, Any]]:
    items = api.get(PODS_URL, params={"labelSelector": stack.POOL_LABEL}).json()["items"]
    return {p["metadata"]["name"]: p for p in items if stack.pod_ready(p)}


def _all_ended(api: httpx.Client, prefix: str, count: int) -> bool:
    items = api.get(VIDEOS).json()["items"]
    ended = [
        v
        for v in items
        if v["metadata"]["name"].startswith(prefix)
        and (v.get("status") or {}).get("phase") in FINISHED
    ]
    return len(ended) >= count


def _healthy(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def _process(
    argv: Sequence[str], *, log: Path, cpu: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process pinned to one CPU; SIGINT (a clean stop for kopf and the cluster) at exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_pin(cpu)
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
    os.sched_setaffinity(0, {REST_CPU})  # this script; the dev cluster and its pods follow
    record = root / "records"
    port = running.free_port()
    url = f"http://127.0.0.1:{port}"
    config = kubeconfig.write(root / "kubeconfig", server=url)
    verbs_path = root / "verbs.json"
    cluster_argv = [
        sys.executable,
        "-m",
        "benchmarks.operator_benchmark",
        "--serve-cluster",
        str(port),
        "--verbs",
        str(verbs_path),
        "--pod-logs",
        str(root / "pods"),
    ]
    notes: list[str] = []
    with (
        _process(cluster_argv, log=root / "devcluster.log", cpu=REST_CPU) as cluster,
        httpx.Client(base_url=url, timeout=60) as api,
    ):
        _wait(lambda: _healthy(api), timeout=30, every=0.1, what="the dev cluster")
        crd = yaml.safe_load((REPO / "crds" / "avatarvideos.avatar.dev.yaml").read_text())
        for path, body in (
            ("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd),
            ("/api/v1/namespaces/default/secrets", json.loads(stack.token_secret(TOKEN))),
            (
                "/apis/apps/v1/namespaces/default/deployments",
                _noop_deployment(record, pods=pods, slots=slots, job_seconds=job_seconds),
            ),
        ):
            api.post(path, json=body).raise_for_status()
        ready: dict[str, dict[str, Any]] = _wait(
            lambda: (p := _ready_pods(api)) and len(p) >= pods and p,
            timeout=120,
            every=0.25,
            what=f"{pods} ready runtime pods",
        )
        pod_pids = [
            int(str(p["status"]["containerStatuses"][0]["containerID"]).split("://")[1])
            for p in ready.values()
        ]
        metrics_port = running.free_port()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        env = stack.operator_env(
            kubeconfig=config, token=TOKEN, metrics_port=metrics_port, extra=operator_env
        )
        argv = stack.operator_command()
        if profile is not None:  # the event loop's thread only: kopf and the dispatcher
            argv = [sys.executable, "-m", "cProfile", "-o", str(profile), *argv]
        with _process(argv, log=root / "operator.log", cpu=OPERATOR_CPU, env=env) as operator:
            # One resource per slot first: the operator has read every pod's capacity and
            # holds open connections before the clock starts.
            warm = pods * slots
            asyncio.run(create_all(url, [f"warmup-{i:02d}" for i in range(warm)], concurrency))
            _wait(
                lambda: _all_ended(api, "warmup-", warm),
                timeout=120,
                every=0.25,
                what="the warm-up resources",
            )
            time.sleep(2)  # the warm-up's Events and writes settle
            sampler = Sampler(
                {
                    "operator": [operator.pid],
                    "devcluster": [cluster.pid],
                    "runtime_pods": pod_pids,
                    "benchmark": [os.getpid()],
                }
            )
            sampler.sample()
            sampler.start()
            before = httpx.get(metrics_url).text
            names = [f"bench-{i:04d}" for i in range(count)]
            began = time.time()
            created = asyncio.run(create_all(url, names, concurrency))
            create_seconds = time.time() - began
            all_rendered = all_ended = None
            try:
                _wait(
                    lambda: finished_renders(record) >= warm + count,
                    timeout=began + timeout - time.time(),
                    every=0.1,
                    what="every job to finish on the runtime pods",
                )
                all_rendered = time.time()
                _wait(
                    lambda: _all_ended(api, "bench-", count),
                    timeout=max(1.0, began + timeout - time.time()),
                    every=0.5,
                    what="every resource to end",
                )
                all_ended = time.time()
            except TimeoutError as exc:
                notes.append(
                    f"incomplete run: not every resource ended within {timeout:.0f} s of the"
                    f" first POST ({exc}); the figures cover what was done by then"
                )
            after = httpx.get(metrics_url).text
            sampler.stop()
            rss = peak_rss_mb(operator.pid)
            videos: list[dict[str, Any]] = api.get(VIDEOS).json()["items"]
    verbs = json.loads(verbs_path.read_text()) if verbs_path.exists() else []
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
        verbs=verbs,
        operator_rss_mb=rss,
        operator_log=root / "operator.log",
        notes=notes,
    )


# -- the analysis -----------------------------------------------------------------------------


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


_LOG_LINE = re.compile(
    r"^\[(?P<time>[^]]+)\] (?P<logger>\S+) +\[INFO +\] \[[^/]+/(?P<name>[^] ]+)[^]]*\]"
    r" (?P<message>Handler 'admit' succeeded|succeeded after)"
)


def operator_log_times(log: Path) -> tuple[dict[str, list[float]], dict[str, float]]:
    """From the operator's log: when kopf ran the create handler for each resource (every
    time), and when the operator first saw each job finished (before its status write)."""
    admitted: dict[str, list[float]] = {}
    seen_finished: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        if (m := _LOG_LINE.match(line)) is None:
            continue
        when = dt.datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local
        if m["message"].startswith("Handler"):
            admitted.setdefault(m["name"], []).append(when)
        else:
            seen_finished.setdefault(m["name"], when)
    return admitted, seen_finished


def analyse(run: Run) -> dict[str, Any]:
    uid_name = {v["metadata"]["uid"]: v["metadata"]["name"] for v in run.videos}
    accepted: dict[str, float] = {}
    after_free: list[tuple[float, float]] = []  # (acceptance, latency after a slot freed)
    renders: Counter[str] = Counter()
    calls, seen_finished = operator_log_times(run.operator_log)
    noticed: list[float] = []  # a slot freed -> the operator saw the job in it finished
    refilled: list[float] = []  # -> the pod accepted the next job (status write, POST)
    for jobs in run.jobs.values():
        # The k-th job a pod accepts fills its k-th vacancy: a slot free from the start,
        # then each job's finish, in time order.
        finishes = sorted((float(j["finished"]), uid_name.get(j["id"], "")) for j in jobs)
        vacancies = [(-math.inf, "")] * run.slots + finishes
        for k, job in enumerate(sorted(jobs, key=lambda j: float(j["accepted"]))):
            name = uid_name.get(job["id"], "")
            renders[name] += 1
            if name not in run.created:
                continue
            accepted[name] = min(accepted.get(name, math.inf), job["accepted"])
            vacancy, freed_by = vacancies[k]
            after_free.append((job["accepted"], job["accepted"] - max(run.created[name], vacancy)))
            if vacancy > run.created[name] and freed_by in seen_finished:
                noticed.append(seen_finished[freed_by] - vacancy)
                refilled.append(job["accepted"] - seen_finished[freed_by])
    after_free.sort()
    from_creation = [accepted[n] - run.created[n] for n in accepted]
    order = sorted(accepted.values())
    n = len(order)
    rate = (n - 1) / (order[-1] - order[0]) if n > 1 else math.nan
    lo, hi = n // 10, n * 9 // 10
    middle_rate = (hi - lo) / (order[hi] - order[lo]) if n >= 10 else math.nan
    tenths = []
    for i in range(10):
        part = after_free[i * n // 10 : (i + 1) * n // 10]
        if len(part) < 2:
            continue
        first, last = part[0][0], part[-1][0]
        tenths.append(
            {
                "accepted_from_s": round(first - run.began, 2),
                "accepted_to_s": round(last - run.began, 2),
                "dispatches_per_second": round((len(part) - 1) / (last - first), 1),
                "after_slot_free_p50_ms": round(1000 * percentile([x for _, x in part], 0.5), 1),
                "after_slot_free_p99_ms": round(1000 * percentile([x for _, x in part], 0.99), 1),
            }
        )

    bench = [v for v in run.videos if v["metadata"]["name"] in run.created]
    phases = Counter((v.get("status") or {}).get("phase", "") for v in bench)
    retried = sum(int((v.get("status") or {}).get("attempts") or 0) > 1 for v in bench)
    completions = [
        t for v in bench if (t := _parse_time((v.get("status") or {}).get("completionTime")))
    ]
    end = run.all_ended or run.sampler.samples[-1][0]

    sampler = run.sampler
    whole = sampler.window(run.began, end)
    dispatching = sampler.window(order[0], order[-1]) if n > 1 else {}
    handler_calls = {k: t for k, t in calls.items() if k in run.created}
    admitted = {k: min(t) for k, t in handler_calls.items()}
    all_admitted = max(admitted.values()) if admitted else run.began

    def phase(start: float, stop: float) -> dict[str, Any]:
        """Dispatches and CPU between two times: intake (kopf admitting) vs. dispatch only."""
        done = sum(start <= t <= stop for t in order)
        cpu = sampler.window(start, stop)
        spent = cpu["cpu_seconds"]["operator"]
        return {
            "from_s": start - run.began,
            "to_s": stop - run.began,
            "admitted": sum(start < t <= stop for t in admitted.values()),
            "dispatches": done,
            "dispatches_per_second": done / (stop - start) if stop > start else math.nan,
            "operator_cpu_seconds": spent,
            "operator_cpu_seconds_per_dispatch": spent / done if done else math.nan,
            "busy_fraction_of_one_core": cpu["busy_fraction_of_one_core"],
            "cpu_busy_fraction": cpu["cpu_busy_fraction"],
        }

    timeline = []
    for second in range(math.ceil(end - run.began)):
        start = run.began + second
        cpu = sampler.window(start, min(start + 1, end))
        row: dict[str, Any] = {
            "s": second,
            "created": sum(start <= t < start + 1 for t in run.created.values()),
            "admitted": sum(start <= t < start + 1 for t in admitted.values()),
            "dispatched": sum(start <= t < start + 1 for t in order),
        }
        row |= {k: round(v, 2) for k, v in cpu["busy_fraction_of_one_core"].items()}
        row["rest_of_machine"] = round(
            cpu["cpu_seconds"]["rest_of_machine"] / cpu["wall_seconds"], 2
        )
        row |= {k: round(v, 2) for k, v in cpu["cpu_busy_fraction"].items()}
        timeline.append(row)
    operator_cpu = whole["cpu_seconds"]["operator"]
    dispatch_cpu = dispatching["cpu_seconds"]["operator"] if dispatching else math.nan

    buckets_after = histogram(run.metrics_after, "avatar_operator_dispatch_latency_seconds")
    buckets_before = histogram(run.metrics_before, "avatar_operator_dispatch_latency_seconds")
    buckets = {le: c - buckets_before.get(le, 0.0) for le, c in buckets_after.items()}

    def delta(name: str, **labels: str) -> float:
        return sample_value(run.metrics_after, name, **labels) - sample_value(
            run.metrics_before, name, **labels
        )

    writes = delta("avatar_operator_status_writes_total")
    requests: Counter[str] = Counter()
    for row in run.verbs:
        kind = row["target"].split("/")[-1] if "/" in row["target"] else row["target"]
        requests[f"{row['client']} {row['verb']} {kind}"] += row["requests"]
    resources_seen = run.count + run.warm
    p50_after = percentile([x for _, x in after_free], 0.5)
    return {
        "resources": run.count,
        "succeeded": phases.get("Succeeded", 0),
        "phases": dict(phases),
        "all_succeeded": phases.get("Succeeded", 0) == run.count,
        "retried": retried,
        "renders": sum(renders[name] for name in run.created),
        "rendered_more_than_once": sum(renders[name] > 1 for name in run.created),
        "create_handler_calls": sum(len(t) for t in handler_calls.values()),
        "create_handler_called_more_than_once": sum(len(t) > 1 for t in handler_calls.values()),
        "create_seconds": run.create_seconds,
        "creates_per_second": run.count / run.create_seconds,
        "dispatch_latency_after_slot_free_seconds": summary([x for _, x in after_free]),
        "after_slot_free_parts_seconds": {
            "slot_freed_to_operator_saw_it": summary(noticed),
            "operator_saw_it_to_next_job_accepted": summary(refilled),
            "jobs": len(noticed),
        },
        "dispatch_latency_from_creation_seconds": summary(from_creation),
        "dispatches_per_second": rate,
        "dispatches_per_second_middle_80_percent": middle_rate,
        "first_dispatch_after_first_create_seconds": order[0] - run.began if n else math.nan,
        "dispatch_span_seconds": order[-1] - order[0] if n > 1 else math.nan,
        "all_rendered_seconds": (run.all_rendered or math.nan) - run.began,
        "all_succeeded_seconds": (run.all_ended or math.nan) - run.began,
        "last_completion_time_seconds": max(completions) - run.began if completions else None,
        "admission_latency_seconds": summary([admitted[k] - run.created[k] for k in admitted]),
        "all_admitted_seconds": all_admitted - run.began,
        "while_admitting": phase(run.began - 1e-3, all_admitted) if n > 1 else {},
        "after_admitting": phase(all_admitted, order[-1]) if n > 1 else {},
        "by_tenth_of_dispatches": tenths,
        "operator_cpu_seconds": operator_cpu,
        "operator_cpu_seconds_per_resource": operator_cpu / run.count,
        "operator_cpu_seconds_per_resource_by_thread": {
            k: v / run.count for k, v in whole["operator_threads_cpu_seconds"].items()
        },
        "operator_cpu_seconds_while_dispatching": dispatch_cpu,
        "operator_cpu_seconds_per_dispatch_while_dispatching": dispatch_cpu / max(1, n - 1),
        "dispatches_per_operator_cpu_second": run.count / operator_cpu,
        "operator_peak_rss_mb": run.operator_rss_mb,
        "cpu_whole_run": whole,
        "cpu_while_dispatching": dispatching,
        "operator_metrics": {
            "dispatch_latency_seconds_buckets": {str(le): c for le, c in sorted(buckets.items())},
            "dispatch_latency_seconds_p50_estimate": histogram_quantile(buckets, 0.5),
            "dispatch_latency_seconds_p99_estimate": histogram_quantile(buckets, 0.99),
            "status_writes_total": writes,
            "status_writes_per_resource": writes / run.count,
            "jobs_succeeded_total": delta("avatar_operator_jobs_total", outcome="succeeded"),
        },
        "timeline_per_second": timeline,
        "api_requests_per_resource": {
            k: round(v / resources_seen, 3)
            for k, v in sorted(requests.items(), key=lambda kv: -kv[1])
            if v >= resources_seen / 10
        },
        "met": {
            "p50_after_slot_free_under_100_ms": p50_after < 0.1,
            "at_least_50_dispatches_per_second": rate >= 50,
        },
    }


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


def finite(value: Any) -> Any:
    """NaN and infinities as null: the report stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def brief(results: dict[str, Any]) -> dict[str, Any]:
    """One run's headline figures."""
    whole = results["cpu_whole_run"]
    after_free = results["dispatch_latency_after_slot_free_seconds"]
    from_creation = results["dispatch_latency_from_creation_seconds"]
    return {
        "succeeded": results["succeeded"],
        "dispatches_per_second": round(results["dispatches_per_second"], 1),
        "after_slot_free_p50_ms": round(1000 * after_free["p50"], 1),
        "after_slot_free_p99_ms": round(1000 * after_free["p99"], 1),
        "from_creation_p50_s": round(from_creation["p50"], 2),
        "from_creation_p99_s": round(from_creation["p99"], 2),
        "all_succeeded_seconds": round(results["all_succeeded_seconds"], 2),
        "operator_cpu_ms_per_resource": round(
            1000 * results["operator_cpu_seconds_per_resource"], 2
        ),
        "rest_of_machine_cores": round(
            whole["cpu_seconds"]["rest_of_machine"] / whole["wall_seconds"], 2
        ),
        "rendered_more_than_once": results["rendered_more_than_once"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="whole runs; the median is reported")
    parser.add_argument("--pods", type=int, default=4)
    parser.add_argument("--slots", type=int, default=4, help="slots per runtime pod")
    parser.add_argument("--job-seconds", type=float, default=0.05, help="each noop job's sleep")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight at once")
    parser.add_argument("--timeout", type=float, default=240, help="seconds the burst may take")
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
    parser.add_argument("--serve-cluster", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--verbs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pod-logs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_cluster:
        serve_cluster(args.serve_cluster, args.verbs, args.pod_logs)
        return
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
            timeout=args.timeout,
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
        "targets": {"p50_after_slot_free_seconds": 0.1, "dispatches_per_second_one_core": 50},
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
