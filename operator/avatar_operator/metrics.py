"""The operator's Prometheus metrics. Names are an interface: dashboards and scaling read them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)


class PoolGauges(Collector):
    """Queue depth and backlog, read from the dispatcher when Prometheus scrapes."""

    def __init__(
        self,
        read: Callable[[], Mapping[str, tuple[int, float, int]]],
        oldest: Callable[[], Mapping[str, float]],
    ) -> None:
        self._read = read
        self._oldest = oldest

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "avatar_operator_queue_depth", "AvatarVideos waiting for a slot.", labels=["pool"]
        )
        backlog = GaugeMetricFamily(
            "avatar_operator_backlog_video_seconds",
            "Estimated seconds of video waiting to be rendered (from text length and language).",
            labels=["pool"],
        )
        running = GaugeMetricFamily(
            "avatar_operator_running_jobs", "AvatarVideos on a runtime pod now.", labels=["pool"]
        )
        for pool, (waiting, seconds, on_pods) in sorted(self._read().items()):
            depth.add_metric([pool], waiting)
            backlog.add_metric([pool], seconds)
            running.add_metric([pool], on_pods)
        oldest = GaugeMetricFamily(
            "avatar_operator_oldest_waiting_seconds",
            "How long the longest-waiting AvatarVideo of the pool has waited for a slot"
            " (0 when none waits): the queue wait an alert compares with the pool's target.",
            labels=["pool"],
        )
        for pool, seconds in sorted(self._oldest().items()):
            oldest.add_metric([pool], seconds)
        yield depth
        yield backlog
        yield running
        yield oldest


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.dispatch_latency = Histogram(
            "avatar_operator_dispatch_latency_seconds",
            "From the operator first seeing an AvatarVideo to a runtime pod accepting it.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.jobs = Counter(
            "avatar_operator_jobs",
            "Finished AvatarVideos by outcome (succeeded, failed, cancelled).",
            ["outcome"],
            registry=registry,
        )
        self.job_seconds = Histogram(
            "avatar_operator_job_seconds",
            "From an AvatarVideo's creation to its end (any outcome).",
            buckets=_JOB_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "avatar_operator_failures",
            "Failed AvatarVideos by pool and error code (the stable codes of the status).",
            ["pool", "code"],
            registry=registry,
        )
        self.retries = Counter(
            "avatar_operator_retries",
            "Attempts that ended and will be tried again, by error code and cause: job (counts"
            " against maxRetries) or platform (a pod drained, preempted or removed: free).",
            ["code", "cause"],
            registry=registry,
        )
        self.gpu_seconds = Counter(
            "avatar_operator_gpu_seconds",
            "GPU seconds of runtime pods charged to AvatarVideos: each pod's wall time split"
            " among the videos running on it (for charge-back), by pool and namespace.",
            ["pool", "namespace"],
            registry=registry,
        )
        self.pool_desired = Gauge(
            "avatar_pool_desired_replicas",
            "Runtime pods the scaling policy wants, per AvatarRuntimePool.",
            ["pool"],
            registry=registry,
        )
        self.pool_ready = Gauge(
            "avatar_pool_ready_replicas",
            "Runtime pods serving, per AvatarRuntimePool.",
            ["pool"],
            registry=registry,
        )
        self.pool_starting = Gauge(
            "avatar_pool_starting_replicas",
            "Runtime pods on their way (no node yet, pulling, loading), per AvatarRuntimePool.",
            ["pool"],
            registry=registry,
        )
        self.pool_target_wait = Gauge(
            "avatar_pool_target_queue_wait_seconds",
            "The pool's targetQueueWaitSeconds: what the queue wait is sized for.",
            ["pool"],
            registry=registry,
        )
        self.scale_events = Counter(
            "avatar_pool_scale_events",
            "Changes of a pool's replicas, by direction (up, down) and the policy's reason.",
            ["pool", "direction", "reason"],
            registry=registry,
        )
        self.estimate_ratio = Histogram(
            "avatar_operator_estimate_ratio",
            "Rendered video seconds / the backlog estimate made before rendering.",
            buckets=(0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2, 4),
            registry=registry,
        )
        self.status_writes = Counter(
            "avatar_operator_status_writes",
            "Status patches sent to the Kubernetes API.",
            registry=registry,
        )

    def watch_pools(
        self,
        read: Callable[[], Mapping[str, tuple[int, float, int]]],
        oldest: Callable[[], Mapping[str, float]],
    ) -> None:
        self.registry.register(PoolGauges(read, oldest))

    def forget_pool(self, pool: str) -> None:
        """A deleted pool's gauges go (its counters stay: they are history)."""
        for gauge in (self.pool_desired, self.pool_ready, self.pool_starting,
                      self.pool_target_wait):  # fmt: skip
            with contextlib.suppress(KeyError):
                gauge.remove(pool)
