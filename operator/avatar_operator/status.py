"""What the resource's status says at each step: phase, conditions, progress, results.

Each function returns a JSON merge patch for ``.status``; None removes a field.
Conditions follow the Kubernetes convention (one entry per type, the transition
time kept while the status does not change), so ``kubectl wait
--for=condition=Complete`` works.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from avatar_operator.jobs import Conditions, Phase
from avatar_operator.resource import format_time
from avatar_runtime.api.jobs import OutputFile
from avatar_runtime.api.schemas import ErrorInfo, JobStatus

Patch = dict[str, Any]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def set_condition(
    conditions: Conditions,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    at: dt.datetime,
) -> None:
    value = "True" if status else "False"
    previous = conditions.get(type_)
    changed = previous is None or previous.get("status") != value
    conditions[type_] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(at)
        if changed
        else previous.get("lastTransitionTime", format_time(at)),  # type: ignore[union-attr]
        "observedGeneration": generation,
    }


def conditions_list(conditions: Conditions) -> list[dict[str, Any]]:
    order = ("Running", "Complete", "Failed")
    return sorted(
        conditions.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else 9
    )


def _file(output: OutputFile | None) -> dict[str, Any] | None:
    if output is None:
        return None
    return {
        "url": output.url,
        "sizeBytes": output.size_bytes,
        "sha256": output.sha256,
        "contentType": output.content_type,
        "durationSeconds": output.duration_seconds,
    }


def queued(
    *,
    pool: str,
    position: int | None,
    attempts: int,
    generation: int,
    next_attempt: dt.datetime | None = None,
    error: ErrorInfo | None = None,
    platform_retries: int = 0,
    gpu_seconds: float = 0.0,
) -> Patch:
    if next_attempt is not None and error is not None:
        message = f"Retrying after {error.code}: {error.message}"
    else:
        message = f"Waiting for a free slot in pool {pool!r}."
    extra: Patch = {}
    if platform_retries:
        extra["platformRetries"] = platform_retries
    if gpu_seconds:
        extra["gpuSeconds"] = _seconds(gpu_seconds)
    return {
        "phase": Phase.QUEUED,
        "observedGeneration": generation,
        "stage": None,
        "progress": 0,
        "queuePosition": position,
        "attempts": attempts,
        "runtimePod": None,
        "nextAttemptTime": format_time(next_attempt) if next_attempt else None,
        "error": _error(error),
        "message": message,
        **extra,
    }


def _seconds(value: float) -> float:
    return round(value, 3)


def dispatched(*, pod: str, attempts: int, start: dt.datetime | None, generation: int) -> Patch:
    patch: Patch = {
        "phase": Phase.RUNNING,
        "observedGeneration": generation,
        "stage": "dispatched",
        "progress": 0,
        "queuePosition": None,
        "nextAttemptTime": None,
        "attempts": attempts,
        "runtimePod": pod,
        "message": f"Sent to runtime pod {pod} (attempt {attempts}).",
    }
    if start is not None:
        patch["startTime"] = format_time(start)
    return patch


def progress(job: JobStatus) -> Patch:
    return {
        "stage": job.stage or ("queued" if job.queue_position is not None else None),
        "progress": round(job.progress * 100),
    }


def succeeded(job: JobStatus, *, finished: dt.datetime, gpu_seconds: float = 0.0) -> Patch:
    outputs = job.outputs
    stages = job.stages.model_dump() if job.stages else None
    return {
        "phase": Phase.SUCCEEDED,
        "stage": "done",
        "progress": 100,
        "completionTime": format_time(finished),
        "videoSeconds": job.video_seconds,
        "realtimeFactor": job.realtime_factor,
        "wer": job.wer,
        "stageSeconds": stages,
        "outputs": None
        if outputs is None
        else {
            "video": _file(outputs.video),
            "thumbnail": _file(outputs.thumbnail),
            "captions": _file(outputs.captions),
        },
        "error": None,
        "nextAttemptTime": None,
        "gpuSeconds": _seconds(gpu_seconds),
        "warnings": [w[:512] for w in job.warnings[:8]] or None,
        "message": f"Rendered {job.video_seconds or 0:.1f} s of video.",
    }


def _error(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    out: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "retriable": error.retriable,
    }
    if error.field:
        out["field"] = error.field
    return out


def failed(
    error: ErrorInfo,
    *,
    finished: dt.datetime,
    phase: Phase = Phase.FAILED,
    gpu_seconds: float = 0.0,
) -> Patch:
    return {
        "phase": phase,
        "gpuSeconds": _seconds(gpu_seconds),
        "completionTime": format_time(finished),
        "queuePosition": None,
        "nextAttemptTime": None,
        "error": _error(error),
        "message": f"{error.code}: {error.message}",
    }
