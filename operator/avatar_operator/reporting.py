"""What the operator tells about a job: status writes in order, conditions, Events.

``status`` says what each step looks like (pure patches); this module sends them.
A job's status writes go out one at a time, in the order they were made, so a late
progress write can never overwrite the final phase. Events are worth a try and
never fail a job; one that repeats counts on the last (``events``). Unchanged
progress and writes more often than ``progress_interval_seconds`` are skipped: the
API server's load is the cost.
"""

from __future__ import annotations

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

    def queued(
        self, job: Job, *, position: int | None, delay: float, error: ErrorInfo | None
    ) -> None:
        """Back in (or first in) the queue: status, condition and Event, in the background."""
        next_attempt = st.now() + dt.timedelta(seconds=delay) if delay > 0 else None
        reason = "Retrying" if error is not None else "Queued"
        message = (
            f"Waiting {delay:.0f} s after {error.code}; attempt {job.persisted.attempts + 1} next."
            if error is not None
            else f"Waiting for a free slot in pool {job.spec.pool!r}."
        )
        job.reported.position = position
        patch = st.queued(
            pool=job.spec.pool,
            position=position,
            attempts=job.persisted.attempts,
            generation=job.generation,
            next_attempt=next_attempt,
            error=error,
        )
        self.condition(job, "Running", False, reason, message)
        self.background.spawn(self.write(job, patch, conditions=True), f"queued-{job.uid}")
        if error is None:
            self.event(job, "Normal", reason="Queued", message=message)
        else:
            self.event(job, "Warning", reason="Retrying", message=f"{error.message} {message}")

    async def dispatched(self, job: Job, *, pod: str, first_start: bool) -> None:
        """Before the runtime hears of it, so a restarted operator finds the job there."""
        patch = st.dispatched(
            pod=pod,
            attempts=job.persisted.attempts,
            start=job.persisted.started if first_start else None,
            generation=job.generation,
        )
        self.condition(job, "Running", True, "Dispatched", f"On runtime pod {pod}.")
        job.reported.progress = None
        await self.write(job, patch, conditions=True)

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
        await self.write(job, patch)

    async def position(self, job: Job, position: int) -> None:
        job.reported.position = position
        await self.write(job, {"queuePosition": position})

    def unserved(self, job: Job, message: str) -> None:
        """Say once, on the resource, why the job waits with free slots in its pool."""
        if job.reported.unserved_noted:
            return
        job.reported.unserved_noted = True
        job.log.warning("%s", message)
        self.background.spawn(self.write(job, {"message": message}), f"unserved-{job.uid}")
        self.event(job, "Warning", reason="NoPodForEngines", message=message)

    async def succeeded(self, job: Job, status: JobStatus, *, finished: dt.datetime) -> None:
        self.condition(job, "Running", False, "Finished", "The video is ready.")
        self.condition(job, "Complete", True, "Rendered", "Video, captions and thumbnail written.")
        await self.write(job, st.succeeded(status, finished=finished), conditions=True)
        self.event(
            job,
            "Normal",
            reason="Succeeded",
            message=f"Rendered {status.video_seconds or 0:.1f} s of video on {job.persisted.pod}.",
        )

    async def failed(
        self, job: Job, error: ErrorInfo, *, finished: dt.datetime, phase: Phase
    ) -> None:
        self.condition(job, "Running", False, phase, error.message)
        if phase is Phase.FAILED:
            self.condition(job, "Failed", True, error.code, error.message)
        await self.write(job, st.failed(error, finished=finished, phase=phase), conditions=True)
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
        """Status writes of one job go out one at a time, in order."""
        if conditions:
            patch = {**patch, "conditions": st.conditions_list(job.persisted.conditions)}
        async with job.handles.lock:
            job.reported.at = time.monotonic()
            self.metrics.status_writes.inc()
            try:
                exists = await self.kube.patch_status(job.ref, patch)
            except Exception:
                job.log.exception("status write failed")
                return
        if not exists and not job.closed:
            # Deleted without our finalizer's handler (e.g. force-removed): stop the job too.
            job.log.info("the resource is gone; forgetting the job")
            self._on_gone(job)
