"""What the operator tells about a job: status writes in order, conditions, Events.

``status`` says what each step looks like (pure patches); this module sends them.
A job's status writes go out one at a time, in the order they were made, so a late
progress write can never overwrite the final phase. Events are worth a try and
never fail a job; one that repeats counts on the last (``events``). Unchanged
progress and writes more often than ``progress_interval_seconds`` are skipped: the
API server's load is the cost.

Two lanes. What a dispatch waits on (the Running status before the POST, the final
phase) is sent at once on the API client's urgent threads. Everything else (Queued,
positions, progress, messages) merges into the job's outbox and is sent by a few bulk
writers, each taking the next job and sending its newest outbox: a burst of 10,000
videos queues 10,000 jobs to write, not 10,000 calls in front of the next dispatch,
and a job dispatched before its Queued write went out sends one merged patch.
"""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from avatar_operator import status as st
from avatar_operator.background import Background
from avatar_operator.events import Events
from avatar_operator.jobs import Job, Phase
from avatar_operator.kube import Kube
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.settings import StatusSettings
from avatar_runtime.api.schemas import ErrorInfo, JobStatus

BULK_WRITERS = 4
"""Enough to keep up with a burst's intake; more only crowd the API server in front of
the urgent writes (measured: 8 gave a p50 after a slot frees of ~105 ms at 1,000
queued, 4 gave ~80 ms; docs/benchmarks.md)."""


class Reporter:
    def __init__(
        self,
        *,
        kube: Kube,
        metrics: OperatorMetrics,
        settings: StatusSettings,
        background: Background,
        on_gone: Callable[[Job], None],
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.settings = settings
        self.background = background
        self.events = Events(kube=kube, background=background)
        self._on_gone = on_gone
        self._bulk: collections.deque[Job] = collections.deque()
        self._writers = 0
        self.bulk_writers = BULK_WRITERS

    def queued(
        self,
        job: Job,
        *,
        position: int | None,
        delay: float,
        error: ErrorInfo | None,
        platform: bool = False,
    ) -> None:
        """Back in (or first in) the queue: status, condition and Event, in the background."""
        next_attempt = st.now() + dt.timedelta(seconds=delay) if delay > 0 else None
        reason = "Requeued" if platform else "Retrying" if error is not None else "Queued"
        if error is not None and platform:
            message = (
                f"The platform ended attempt {job.persisted.attempts} ({error.code}: a pod"
                " drained, preempted or removed); queued again at once, not counted against"
                " maxRetries."
            )
        elif error is not None:
            message = (
                f"Waiting {delay:.0f} s after {error.code};"
                f" attempt {job.persisted.attempts + 1} next."
            )
        else:
            message = f"Waiting for a free slot in pool {job.spec.pool!r}."
        job.reported.position = position
        patch = st.queued(
            pool=job.spec.pool,
            position=position,
            attempts=job.persisted.attempts,
            generation=job.generation,
            next_attempt=next_attempt,
            error=error,
            platform_retries=job.persisted.platform_retries,
            gpu_seconds=job.persisted.gpu_seconds,
        )
        self.condition(job, "Running", False, reason, message)
        self.send(job, patch, conditions=True)
        if error is None:
            self.event(job, "Normal", reason="Queued", message=message)
        else:
            self.event(job, "Warning", reason=reason, message=f"{error.message} {message}")

    async def dispatched(self, job: Job, *, pod: str, first_start: bool) -> None:
        """Before the runtime hears of it, so a restarted operator finds the job there."""
        job.reported.pool_missing = False  # it has a pod: the pool exists
        patch = st.dispatched(
            pod=pod,
            attempts=job.persisted.attempts,
            start=job.persisted.started if first_start else None,
            generation=job.generation,
        )
        self.condition(job, "Running", True, "Dispatched", f"On runtime pod {pod}.")
        job.reported.progress = None
        await self.write(job, patch, conditions=True)  # urgent: the POST waits on it

    def accepted(self, job: Job, *, pod: str) -> None:
        attempts = job.persisted.attempts
        job.log.info("runtime pod %s accepted attempt %d", pod, attempts)
        message = f"Runtime pod {pod} accepted attempt {attempts}."
        self.event(job, "Normal", reason="Dispatched", message=message)

    async def progress(self, job: Job, status: JobStatus) -> None:
        patch = st.progress(status)
        key = (patch["stage"], patch["progress"])
        now = time.monotonic()
        if (
            key == job.reported.progress
            or now - job.reported.at < self.settings.progress_interval_seconds
        ):
            return
        job.reported.progress = key
        job.reported.at = now
        self.send(job, patch)

    async def position(self, job: Job, position: int) -> None:
        job.reported.position = position
        self.send(job, {"queuePosition": position})

    def unserved(self, job: Job, message: str) -> None:
        """Say once, on the resource, why the job waits with free slots in its pool."""
        if job.reported.unserved_noted:
            return
        job.reported.unserved_noted = True
        job.log.warning("%s", message)
        self.send(job, {"message": message})
        self.event(job, "Warning", reason="NoPodForEngines", message=message)

    def pool_missing(self, job: Job, message: str) -> None:
        """Say once, on the resource, that its pool does not exist (it waits for one)."""
        if job.reported.pool_missing:
            return
        job.reported.pool_missing = True
        job.log.warning("%s", message)
        self.condition(job, "Running", False, "PoolNotFound", message)
        self.send(job, {"message": message}, conditions=True)
        self.event(job, "Warning", reason="PoolNotFound", message=message)

    def pool_found(self, job: Job) -> None:
        """The pool the job waited for exists now: the status says what it waits for."""
        if not job.reported.pool_missing:
            return
        job.reported.pool_missing = False
        message = f"Waiting for a free slot in pool {job.spec.pool!r}."
        self.condition(job, "Running", False, "Queued", message)
        self.send(job, {"message": message}, conditions=True)

    async def succeeded(self, job: Job, status: JobStatus, *, finished: dt.datetime) -> None:
        self.condition(job, "Running", False, "Finished", "The video is ready.")
        self.condition(job, "Complete", True, "Rendered", "Video, captions and thumbnail written.")
        patch = st.succeeded(status, finished=finished, gpu_seconds=job.persisted.gpu_seconds)
        await self.write(job, patch, conditions=True)
        self.event(
            job,
            "Normal",
            reason="Succeeded",
            message=f"Rendered {status.video_seconds or 0:.1f} s of video on {job.persisted.pod}.",
        )
        if status.warnings:  # one Event: repeats of a reason are counted on the first
            self.event(job, "Warning", reason="RenderNote", message=" ".join(status.warnings))

    async def failed(
        self, job: Job, error: ErrorInfo, *, finished: dt.datetime, phase: Phase
    ) -> None:
        self.condition(job, "Running", False, phase, error.message)
        if phase is Phase.FAILED:
            self.condition(job, "Failed", True, error.code, error.message)
        patch = st.failed(
            error, finished=finished, phase=phase, gpu_seconds=job.persisted.gpu_seconds
        )
        await self.write(job, patch, conditions=True)
        reason = phase if phase is not Phase.FAILED else error.code
        self.event(job, "Warning", reason=reason, message=error.message)

    def condition(self, job: Job, type_: str, value: bool, reason: str, message: str) -> None:
        st.set_condition(
            job.persisted.conditions,
            type_,
            value,
            reason,
            message,
            generation=job.generation,
            at=st.now(),
        )

    def event(self, job: Job, type_: str, *, reason: str, message: str) -> None:
        """A Kubernetes Event on the resource, posted in the background (repeats counted)."""
        self.events.post(job, type_, reason=reason, message=message)

    async def write(self, job: Job, patch: dict[str, Any], *, conditions: bool = False) -> None:
        """Send now, on the urgent lane, with whatever the outbox held; return once it landed."""
        _merge(job.handles.outbox.patch, patch)
        job.handles.outbox.conditions |= conditions
        await self._flush(job, urgent=True)

    def send(self, job: Job, patch: dict[str, Any], *, conditions: bool = False) -> None:
        """Send soon, on the bulk lane: merged with the job's later writes until it goes."""
        box = job.handles.outbox
        _merge(box.patch, patch)
        box.conditions |= conditions
        if box.scheduled:
            return
        box.scheduled = True
        self._bulk.append(job)
        if self._writers < self.bulk_writers:
            self._writers += 1
            self.background.spawn(self._drain(), "status-writer")

    async def _drain(self) -> None:
        try:
            while self._bulk:
                job = self._bulk.popleft()
                job.handles.outbox.scheduled = False
                await self._flush(job, urgent=False)
        finally:
            self._writers -= 1

    async def _flush(self, job: Job, *, urgent: bool) -> None:
        async with job.handles.lock:  # one write of a job at a time: the order they were made
            box = job.handles.outbox
            if not box.patch and not box.conditions:
                return  # an earlier flush took it along
            patch, conditions = box.patch, box.conditions
            box.patch, box.conditions = {}, False
            if conditions:
                patch["conditions"] = st.conditions_list(job.persisted.conditions)
            job.reported.at = time.monotonic()
            self.metrics.status_writes.inc()
            try:
                exists = await self.kube.patch_status(job.ref, patch, urgent=urgent)
            except Exception:
                job.log.exception("status write failed")
                return
        if not exists and not job.closed:
            # Deleted without our finalizer's handler (e.g. force-removed): stop the job too.
            job.log.info("the resource is gone; forgetting the job")
            self._on_gone(job)


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    """Fold a later JSON merge patch into an earlier one: applying the result is applying
    both in turn (objects merge key by key; a value or a null replaces)."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:  # a copy: a later fold must not change the caller's patch
            into[key] = _copy(value)


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value
