"""The job board: every job the pod knows, the queue in front of the slots, admission.

One lock guards it all, so admission (is there room?), idempotency (same id,
same body) and state changes are decided together. Slot threads take work
from it; the HTTP layer only reads and submits. Finished jobs stay readable
for the retention time, so an operator that restarted can still collect them.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobResult, JobSpec
from avatar_runtime.api.schemas import ErrorInfo, JobRequest, JobState, JobStatus


class Admission(enum.Enum):
    CREATED = "created"
    EXISTING = "existing"
    CONFLICT = "conflict"
    FULL = "full"
    DRAINING = "draining"


class StopReason(enum.Enum):
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class JobRecord:
    """One job's life on this pod. Mutated only under the board's lock."""

    id: str
    fingerprint: str
    spec: JobSpec
    state: JobState = JobState.QUEUED
    stage: str | None = None
    progress: float = 0.0
    created_at: dt.datetime = field(default_factory=_now)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    finished_monotonic: float | None = None
    result: JobResult | None = None
    error: JobError | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: StopReason | None = None

    def status(self, *, queue_position: int | None) -> JobStatus:
        result, error = self.result, self.error
        return JobStatus(
            id=self.id,
            state=self.state,
            stage=self.stage,
            progress=self.progress,
            queue_position=queue_position,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            stages=result.stages if result else None,
            video_seconds=result.video_seconds if result else None,
            realtime_factor=result.realtime_factor if result else None,
            wer=result.wer if result else None,
            outputs=result.outputs if result else None,
            error=ErrorInfo(**error.to_dict()) if error else None,
        )


def _may_run_again(record: JobRecord) -> bool:
    """A retry: the same job submitted after it failed for a passing reason runs anew.

    Everything else that is resubmitted (queued, running, succeeded, failed for
    good, cancelled) answers with what exists and never renders twice.
    """
    if record.state is JobState.INTERRUPTED:
        return True
    return record.state is JobState.FAILED and record.error is not None and record.error.retriable


class JobBoard:
    """Jobs, the wait queue and the slots' occupancy, behind one lock."""

    def __init__(
        self,
        *,
        slots: int,
        queue_limit: int,
        retention_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slots = slots
        self.queue_limit = queue_limit
        self.retention_seconds = retention_seconds
        self._clock = clock
        self._lock = threading.Condition()
        self._jobs: dict[str, JobRecord] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._running: set[str] = set()
        self._accepting = True
        self._closed = False
        self._recent_seconds: collections.deque[float] = collections.deque(maxlen=20)

    # -- reading -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def status(self, job_id: str) -> JobStatus | None:
        with self._lock:
            self._expire()
            record = self._jobs.get(job_id)
            return None if record is None else self._status(record)

    def wait_finished(self, job_id: str, timeout: float) -> JobStatus | None:
        """The job's status once it has finished, or after ``timeout`` seconds if sooner.

        A long poll: the operator learns at once that a job ended (and refills the
        slot) while asking only every few seconds. Returns early when the board
        closes; None for an unknown job.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._expire()
            record = self._jobs.get(job_id)
            if record is None:
                return None
            while not record.state.finished and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return self._status(record)

    def _status(self, record: JobRecord) -> JobStatus:
        position = self._queue.index(record.id) if record.state is JobState.QUEUED else None
        return record.status(queue_position=position)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: recent job time x jobs ahead / slots."""
        with self._lock:
            typical = (
                sum(self._recent_seconds) / len(self._recent_seconds)
                if self._recent_seconds
                else 30.0
            )
            ahead = len(self._queue) + 1
        return int(min(600, max(1, math.ceil(typical * ahead / max(1, self.slots)))))

    # -- the HTTP side -----------------------------------------------------------------

    def submit(self, request: JobRequest) -> tuple[Admission, JobStatus | None]:
        spec = request.to_spec()
        fingerprint = request.fingerprint()
        with self._lock:
            self._expire()
            existing = self._jobs.get(request.id)
            if existing is not None and not _may_run_again(existing):
                if existing.fingerprint != fingerprint:
                    return Admission.CONFLICT, self._status(existing)
                return Admission.EXISTING, self._status(existing)
            if not self._accepting:
                return Admission.DRAINING, None
            if len(self._running) + len(self._queue) >= self.slots + self.queue_limit:
                return Admission.FULL, None
            record = JobRecord(id=request.id, fingerprint=fingerprint, spec=spec)
            self._jobs[record.id] = record
            self._queue.append(record.id)
            self._lock.notify_all()
            return Admission.CREATED, self._status(record)

    def cancel(self, job_id: str) -> JobStatus | None:
        """Cancel a queued job at once, a running one at its next frame; finished: no-op."""
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return None
            if record.state is JobState.QUEUED:
                self._queue.remove(job_id)
                self._finish(
                    record,
                    JobState.CANCELLED,
                    error=JobError(ErrorCode.CANCELLED, "Cancelled before it started."),
                )
            elif record.state is JobState.RUNNING and record.stop_reason is None:
                record.stop_reason = StopReason.CANCELLED
                record.stop.set()
            return self._status(record)

    # -- the slots' side ---------------------------------------------------------------

    def take(self) -> JobRecord | None:
        """Block until a job is queued; None once the board is closed."""
        with self._lock:
            while not self._queue and not self._closed:
                self._lock.wait()
            if self._closed:
                return None
            record = self._jobs[self._queue.popleft()]
            record.state = JobState.RUNNING
            record.started_at = _now()
            self._running.add(record.id)
            return record

    def progress(self, record: JobRecord, stage: str, value: float) -> None:
        with self._lock:
            record.stage = stage
            record.progress = max(record.progress, min(1.0, value))

    def succeed(self, record: JobRecord, result: JobResult) -> None:
        with self._lock:
            record.result = result
            record.progress = 1.0
            self._recent_seconds.append(result.wall_seconds)
            self._finish(record, JobState.SUCCEEDED)

    def fail(self, record: JobRecord, error: JobError) -> JobState:
        """Record a failure; a stop we asked for becomes cancelled or interrupted."""
        with self._lock:
            if record.stop_reason is StopReason.INTERRUPTED:
                state = JobState.INTERRUPTED
                error = JobError(
                    ErrorCode.INTERRUPTED,
                    "The runtime pod shut down before the job finished; it can run elsewhere.",
                )
            elif record.stop_reason is StopReason.CANCELLED:
                state = JobState.CANCELLED
                error = JobError(ErrorCode.CANCELLED, "Cancelled while running.")
            else:
                state = JobState.FAILED
            self._finish(record, state, error=error)
            return state

    def _finish(self, record: JobRecord, state: JobState, *, error: JobError | None = None) -> None:
        record.state = state
        record.error = error
        record.finished_at = _now()
        record.finished_monotonic = self._clock()
        self._running.discard(record.id)
        self._lock.notify_all()

    def _expire(self) -> None:
        horizon = self._clock() - self.retention_seconds
        for job_id in [
            j.id
            for j in self._jobs.values()
            if j.finished_monotonic is not None and j.finished_monotonic < horizon
        ]:
            del self._jobs[job_id]

    # -- draining ----------------------------------------------------------------------

    def begin_drain(self) -> int:
        """Stop admitting; jobs still waiting are interrupted (they can run elsewhere)."""
        with self._lock:
            self._accepting = False
            waiting = [self._jobs[j] for j in self._queue]
            self._queue.clear()
            for record in waiting:
                record.stop_reason = StopReason.INTERRUPTED
                self._finish(
                    record,
                    JobState.INTERRUPTED,
                    error=JobError(
                        ErrorCode.INTERRUPTED,
                        "The runtime pod shut down before the job started; it can run elsewhere.",
                    ),
                )
            return len(waiting)

    def interrupt_running(self) -> int:
        with self._lock:
            for job_id in self._running:
                record = self._jobs[job_id]
                if record.stop_reason is None:  # a user's cancel stays a cancel
                    record.stop_reason = StopReason.INTERRUPTED
                record.stop.set()
            return len(self._running)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs; False if some still do after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def close(self) -> None:
        """No more work: wakes idle slots (``take`` returns None) and long polls."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
