"""Prometheus series of a runtime pod, read back through the text exposition.

Dashboards and the operator's scaling policy parse this text, so the tests
parse it too (prometheus_client's own parser) instead of poking at objects.
"""

from __future__ import annotations

import sys
import types

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from avatar_runtime import gpu
from avatar_runtime.api.jobs import JobResult
from avatar_runtime.metrics import STAGES, RuntimeMetrics
from tests.monitoring.promql import GPU_ONLY
from tests.unit.runtime.factories import STAGE_SECONDS, job_result


def _result() -> JobResult:
    return job_result(wall_seconds=5.0, video_seconds=12.5)


def _samples(metrics: RuntimeMetrics) -> list[Sample]:
    text = generate_latest(metrics.registry).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(metrics: RuntimeMetrics, name: str, **labels: str) -> float | None:
    for sample in _samples(metrics):
        if sample.name == name and sample.labels == labels:
            return sample.value
    return None


def test_a_succeeded_job_counts_its_outcome_and_video_seconds() -> None:
    metrics = RuntimeMetrics()
    metrics.job_finished("succeeded", _result())
    assert _value(metrics, "avatar_runtime_jobs_total", outcome="succeeded") == 1.0
    assert _value(metrics, "avatar_runtime_video_seconds_total") == 12.5
    text = generate_latest(metrics.registry).decode()
    assert 'avatar_runtime_jobs_total{outcome="succeeded"} 1.0' in text


def test_every_outcome_starts_at_zero() -> None:
    """rate() over a series that appears only on the first failure misses that failure."""
    metrics = RuntimeMetrics()
    for outcome in ("succeeded", "failed", "cancelled", "interrupted"):
        assert _value(metrics, "avatar_runtime_jobs_total", outcome=outcome) == 0.0


def test_a_succeeded_job_observes_duration_realtime_factor_and_stages() -> None:
    metrics = RuntimeMetrics()
    metrics.job_finished("succeeded", _result())
    assert _value(metrics, "avatar_runtime_job_duration_seconds_count") == 1.0
    assert _value(metrics, "avatar_runtime_job_duration_seconds_sum") == 5.0
    assert _value(metrics, "avatar_runtime_realtime_factor_count") == 1.0
    assert _value(metrics, "avatar_runtime_realtime_factor_bucket", le="0.3") == 0.0
    assert _value(metrics, "avatar_runtime_realtime_factor_bucket", le="0.5") == 1.0
    for stage in STAGES:
        assert _value(metrics, "avatar_runtime_stage_duration_seconds_count", stage=stage) == 1.0
        assert _value(metrics, "avatar_runtime_stage_duration_seconds_sum", stage=stage) == getattr(
            STAGE_SECONDS, stage
        )


def test_a_failed_job_only_counts() -> None:
    """A failure has no video, so it must not drag down throughput or durations."""
    metrics = RuntimeMetrics()
    metrics.job_finished("failed")
    assert _value(metrics, "avatar_runtime_jobs_total", outcome="failed") == 1.0
    assert _value(metrics, "avatar_runtime_job_duration_seconds_count") == 0.0
    assert _value(metrics, "avatar_runtime_video_seconds_total") == 0.0


def test_board_gauges_follow_the_board_at_scrape_time() -> None:
    board = {"busy": 0, "queued": 0}
    metrics = RuntimeMetrics()
    metrics.track_board(slots=3, busy=lambda: board["busy"], queued=lambda: board["queued"])
    assert _value(metrics, "avatar_runtime_slots", state="busy") == 0.0
    assert _value(metrics, "avatar_runtime_slots", state="idle") == 3.0
    board.update(busy=2, queued=4)
    assert _value(metrics, "avatar_runtime_slots", state="busy") == 2.0
    assert _value(metrics, "avatar_runtime_slots", state="idle") == 1.0
    assert _value(metrics, "avatar_runtime_queue_depth") == 4.0


def test_no_gpu_series_without_a_gpu() -> None:
    """On this GPU-less machine GPU memory is absent, never a misleading zero."""
    metrics = RuntimeMetrics()
    metrics.job_finished("succeeded", _result())
    assert not [s for s in _samples(metrics) if s.name.startswith("avatar_runtime_gpu_memory")]
    assert "avatar_runtime_gpu_memory" not in generate_latest(metrics.registry).decode()


def test_every_required_series_is_exported_after_one_job() -> None:
    """The names are an interface: dashboards and the scaling policy query them."""
    metrics = RuntimeMetrics()
    metrics.track_board(slots=1, busy=lambda: 1, queued=lambda: 0)
    metrics.model_load.labels("tts").set(1.5)
    metrics.ready.set(1)
    metrics.job_finished("succeeded", _result())
    text = generate_latest(metrics.registry).decode()
    families = list(text_string_to_metric_families(text))
    names = {f.name for f in families} | {s.name for f in families for s in f.samples}
    for name in (
        "avatar_runtime_jobs_total",
        "avatar_runtime_job_duration_seconds",
        "avatar_runtime_stage_duration_seconds",
        "avatar_runtime_video_seconds_total",
        "avatar_runtime_realtime_factor",
        "avatar_runtime_slots",
        "avatar_runtime_queue_depth",
        "avatar_runtime_model_load_seconds",
        "avatar_runtime_ready",
    ):
        assert name in names, name
    assert _value(metrics, "avatar_runtime_model_load_seconds", model="tts") == 1.5
    assert _value(metrics, "avatar_runtime_ready") == 1.0


def test_two_pods_in_one_process_do_not_share_series() -> None:
    """Each RuntimeMetrics has its own registry (tests, several pods in one process)."""
    first, second = RuntimeMetrics(), RuntimeMetrics()
    first.job_finished("failed")
    assert _value(second, "avatar_runtime_jobs_total", outcome="failed") == 0.0


def test_a_gpu_pod_exports_the_gpu_series_the_dashboards_and_alerts_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No GPU here: NVML and torch's CUDA are stood in for, the collector is the real one.
    These are the names tests/monitoring may use without a CPU scrape showing them."""

    class Cuda:
        @staticmethod
        def is_available() -> bool:
            return True

        @staticmethod
        def device_count() -> int:
            return 1

        @staticmethod
        def memory_allocated(index: int) -> int:
            return 5 * 2**30

    monkeypatch.setattr(
        gpu, "memory", lambda: [gpu.GpuMemory(0, "NVIDIA L4", 9 * 2**30, 24 * 2**30)]
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=Cuda))
    metrics = RuntimeMetrics()
    assert _value(metrics, "avatar_runtime_gpu_memory_used_bytes", gpu="0") == 9 * 2**30
    assert _value(metrics, "avatar_runtime_gpu_memory_total_bytes", gpu="0") == 24 * 2**30
    assert _value(metrics, "avatar_runtime_torch_memory_allocated_bytes", gpu="0") == 5 * 2**30
    names = {s.name for s in _samples(metrics)}
    assert names >= GPU_ONLY
