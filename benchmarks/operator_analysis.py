"""The operator benchmark's figures, from what one run left behind.

Pure code over a finished ``Run``: the pods' job records (acceptance, start and
finish of every job), the creation times, the operator's log (when kopf admitted
each resource, when the operator saw each job finished), its metrics before and
after, the CPU samples and the API requests per client. The definitions (the
k-th job a pod accepts fills its k-th vacancy; quantiles as numpy's and
PromQL's) are in the functions that compute them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.cpu_sampling import Sampler


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
        row["operator_rss_mb"] = round(sampler.at(min(start + 1, end), "operator.rss_mb"), 1)
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
    p99_after = percentile([x for _, x in after_free], 0.99)
    # Once the last POST was answered every video is queued in the API server: what is left
    # is the operator's own latency. While the burst is still being created, the dev
    # cluster shares its one core with the script's own POSTs (see the docstring).
    created_end = max(run.created.values()) if run.created else run.began
    queued = [x for t, x in after_free if t >= created_end]
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
        "once_all_created": {
            "from_s": created_end - run.began,
            "dispatches": len(queued),
            "after_slot_free_p50_ms": round(1000 * percentile(queued, 0.5), 1) if queued else None,
            "after_slot_free_p99_ms": round(1000 * percentile(queued, 0.99), 1) if queued else None,
        },
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
            "p99_after_slot_free_under_1_s": p99_after < 1.0,
            "at_least_50_dispatches_per_second": rate >= 50,
        },
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
        "once_all_created_p50_ms": results["once_all_created"]["after_slot_free_p50_ms"],
        "once_all_created_p99_ms": results["once_all_created"]["after_slot_free_p99_ms"],
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
        "operator_peak_rss_mb": finite(results["operator_peak_rss_mb"]),
    }
