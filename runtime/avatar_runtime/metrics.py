"""Prometheus metrics of a runtime pod.

The names are an interface: dashboards, alert rules and the operator's scaling
policy read them. Counters end in ``_total``, durations are seconds, sizes bytes.
GPU series are absent, not zero, on a pod without a GPU, so "no data" never
reads as "no memory used".
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from avatar_runtime import gpu
from avatar_runtime.api.jobs import JobResult

# Whole jobs take seconds to minutes; realtime factors sit around 0.1-10.
_JOB_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_RTF_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
STAGES = ("fetch", "tts", "asr", "render", "encode", "upload")
REFUSALS = ("unauthorized", "body_too_large", "body_timeout", "long_polls_full")


class _GpuCollector(Collector):
    """Reads NVML (and torch's allocator, where torch is loaded) at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gpus = gpu.memory()
        if gpus:
            used = GaugeMetricFamily(
                "avatar_runtime_gpu_memory_used_bytes", "GPU memory in use (NVML).", labels=["gpu"]
            )
            total = GaugeMetricFamily(
                "avatar_runtime_gpu_memory_total_bytes", "GPU memory in all (NVML).", labels=["gpu"]
            )
            for g in gpus:
                used.add_metric([str(g.index)], g.used_bytes)
                total.add_metric([str(g.index)], g.total_bytes)
            yield used
            yield total
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            allocated = GaugeMetricFamily(
                "avatar_runtime_torch_memory_allocated_bytes",
                "GPU memory held by torch's allocator.",
                labels=["gpu"],
            )
            for index in range(torch.cuda.device_count()):
                allocated.add_metric([str(index)], torch.cuda.memory_allocated(index))
            yield allocated


class RuntimeMetrics:
    """Every series a runtime pod exports, on its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            # process_start_time_seconds: a pod's restarts show as its changes (an alert).
            ProcessCollector(registry=registry)
        self.registry = registry
        r = self.registry
        self.jobs = Counter(
            "avatar_runtime_jobs", "Jobs finished, by outcome.", ["outcome"], registry=r
        )
        self.job_duration = Histogram(
            "avatar_runtime_job_duration_seconds",
            "Wall time of a job, start to outputs published.",
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            "avatar_runtime_stage_duration_seconds",
            "Wall time of one stage of a job.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.video_seconds = Counter(
            "avatar_runtime_video_seconds",
            "Seconds of video produced; its rate is throughput.",
            registry=r,
        )
        self.realtime_factor = Histogram(
            "avatar_runtime_realtime_factor",
            "Processing seconds per second of video.",
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.slots = Gauge("avatar_runtime_slots", "Job slots by state.", ["state"], registry=r)
        self.tts_batch_size = Histogram(
            "avatar_runtime_tts_batch_size",
            "Speech chunks generated together by a batching TTS (XTTS-v2), per batch; a mean"
            " near 1 with busy slots means the slots rarely speak at once.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16),
            registry=r,
        )
        self.queue_depth = Gauge(
            "avatar_runtime_queue_depth", "Jobs waiting for a slot.", registry=r
        )
        self.model_load = Gauge(
            "avatar_runtime_model_load_seconds",
            "Time to load (and warm up) each model.",
            ["model"],
            registry=r,
        )
        self.model_gpu_memory = Gauge(
            "avatar_runtime_model_gpu_memory_bytes",
            "GPU memory each model took as it loaded (NVML, or torch's allocator if more);"
            " what 'auto' slots and the scaling policy size pods by.",
            ["model"],
            registry=r,
        )
        self.slot_gpu_memory = Gauge(
            "avatar_runtime_slot_gpu_memory_bytes",
            "GPU memory a further slot costs: another renderer's measured footprint, or one"
            " job's buffers beside a renderer that serves every slot; what 'auto' slots"
            " were sized by.",
            registry=r,
        )
        self.ready = Gauge(
            "avatar_runtime_ready", "1 when the pod takes jobs, 0 loading or draining.", registry=r
        )
        self.long_polls = Gauge(
            "avatar_runtime_long_polls",
            "Long polls (GET /v1/jobs/{id}?wait=) open now; at the cap, more are refused 429.",
            registry=r,
        )
        self.requests_refused = Counter(
            "avatar_runtime_requests_refused",
            "Requests refused before any work, by reason: unauthorized, body_too_large,"
            " body_timeout, long_polls_full.",
            ["reason"],
            registry=r,
        )
        self.internal_errors = Counter(
            "avatar_runtime_internal_errors",
            "Requests answered 500 InternalError: a bug, whose traceback is in the log.",
            registry=r,
        )
        self.finished_retained = Gauge(
            "avatar_runtime_finished_jobs_retained",
            "Finished jobs still readable (within the retention time and the byte budget).",
            registry=r,
        )
        self.finished_retained_bytes = Gauge(
            "avatar_runtime_finished_jobs_retained_bytes",
            "Memory charged for the finished jobs still readable, against the byte budget.",
            registry=r,
        )
        for outcome in ("succeeded", "failed", "cancelled", "interrupted"):
            self.jobs.labels(outcome)
        for reason in REFUSALS:
            self.requests_refused.labels(reason)
        r.register(_GpuCollector())

    def track_board(
        self, *, slots: int, busy: Callable[[], int], queued: Callable[[], int]
    ) -> None:
        self.slots.labels("busy").set_function(busy)
        self.slots.labels("idle").set_function(lambda: slots - busy())
        self.queue_depth.set_function(queued)

    def track_finished(self, finished: Callable[[], tuple[int, int]]) -> None:
        """Read the finished jobs kept, and their bytes, from ``finished`` at scrape time."""
        self.finished_retained.set_function(lambda: finished()[0])
        self.finished_retained_bytes.set_function(lambda: finished()[1])

    def job_finished(self, outcome: str, result: JobResult | None = None) -> None:
        """Count the outcome; a job that produced a video also adds its timings."""
        self.jobs.labels(outcome).inc()
        if result is None:
            return
        self.job_duration.observe(result.wall_seconds)
        self.video_seconds.inc(result.video_seconds)
        self.realtime_factor.observe(result.realtime_factor)
        for stage in STAGES:
            self.stage_duration.labels(stage).observe(getattr(result.stages, stage))
