"""The job board: every job the pod knows, the queue in front of the slots, admission.

One lock guards it all, so admission (is there room?), idempotency (same id,
same body) and state changes are decided together. Slot threads take work
from it; the HTTP layer only reads and submits. Finished jobs stay readable
for the retention time, so an operator that restarted can still collect them,
but only as what their status needs (the inputs are dropped), and within a byte
budget, the oldest forgotten first.

Long polls wait on the event loop, not on a thread: a waiter leaves a callback on
its job, which the job's end (a slot thread, under the lock) hands to the loop with
``call_soon_threadsafe``. The lock is never held while anything is awaited.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
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


Waiter = Callable[[JobStatus], None]
"""Told a job's final status, under the board's lock; must only hand it on (never block)."""


@dataclass
class JobRecord:
    """One job's life on this pod while it is queued or running. Mutated only under the
    board's lock; once the job finishes the board keeps a ``FinishedJob`` instead."""

    id: str
    fingerprint: str
    spec: JobSpec
    state: JobState = JobState.QUEUED
    stage: str | None = None
    progress: float = 0.0
    created_at: dt.datetime = field(default_factory=_now)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    result: JobResult | None = None
    error: JobError | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: StopReason | None = None
    waiters: list[Waiter] = field(default_factory=list)

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
            warnings=result.warnings if result else [],
            error=ErrorInfo(**error.to_dict()) if error else None,
        )


# What a finished job costs beyond its status's JSON: the Python objects of a JobStatus, its
# outputs, the record and its dict entry. Measured with tracemalloc (CPython 3.11): 3.4 KB a
# job with two outputs, 0.8 KB of it the JSON; so a job is charged a little more than it takes.
_FINISHED_OVERHEAD_BYTES = 3072


@dataclass(frozen=True)
class FinishedJob:
    """What stays of a job once it has finished: its final status, and the fingerprint a
    resubmission is compared with. The inputs (text, URLs) and the transcript are gone."""

    fingerprint: str
    status: JobStatus
    finished_monotonic: float
    size: int
    """Bytes charged against the board's budget for finished jobs (an estimate)."""

    @classmethod
    def of(cls, record: JobRecord, *, now: float) -> FinishedJob:
        status = record.status(queue_position=None)
        size = len(status.model_dump_json()) + len(record.fingerprint) + _FINISHED_OVERHEAD_BYTES
        return cls(fingerprint=record.fingerprint, status=status, finished_monotonic=now, size=size)


def _may_run_again(job: FinishedJob) -> bool:
    """A retry: the same job submitted after it failed for a passing reason runs anew.

    Everything else that is resubmitted (queued, running, succeeded, failed for
    good, cancelled) answers with what exists and never renders twice.
    """
    status = job.status
    if status.state is JobState.INTERRUPTED:
        return True
    return status.state is JobState.FAILED and status.error is not None and status.error.retriable


def _settle(future: asyncio.Future[JobStatus], status: JobStatus) -> None:
    if not future.done():  # a waiter that timed out or was cancelled has gone
        future.set_result(status)


class JobBoard:
    """Jobs, the wait queue and the slots' occupancy, behind one lock."""

    def __init__(
        self,
        *,
        slots: int,
        queue_limit: int,
        retention_seconds: float,
        finished_budget_bytes: int = 32 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slots = slots
        self.queue_limit = queue_limit
        self.retention_seconds = retention_seconds
        self.finished_budget_bytes = finished_budget_bytes
        self._clock = clock
        self._lock = threading.Condition()
        self._live: dict[str, JobRecord] = {}  # queued and running
        self._finished: collections.OrderedDict[str, FinishedJob] = collections.OrderedDict()
        self._finished_bytes = 0  # the sum of the finished jobs' sizes
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

    def finished(self) -> tuple[int, int]:
        """Finished jobs kept, and the bytes they are charged (at most the budget)."""
        with self._lock:
            self._expire()
            return len(self._finished), self._finished_bytes

    def status(self, job_id: str) -> JobStatus | None:
        with self._lock:
            self._expire()
            return self._current(job_id)

    async def wait_finished(self, job_id: str, timeout: float) -> JobStatus | None:
        """The job's status once it has finished, or after ``timeout`` seconds if sooner.

        A long poll: the operator learns at once that a job ended (and refills the
        slot) while asking only every few seconds. It holds no thread and no lock while
        it waits, so any number of them cost the event loop nothing. Returns early when
        the board closes; None for an unknown job.
        """
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[JobStatus] = loop.create_future()

        def wake(status: JobStatus) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, ended, status)

        with self._lock:
            self._expire()
            record = self._live.get(job_id)
            if record is None or self._closed:
                return self._current(job_id)
            record.waiters.append(wake)
        try:
            async with asyncio.timeout(timeout):
                return await ended
        except TimeoutError:
            pass
        finally:
            with self._lock:
                if wake in record.waiters:
                    record.waiters.remove(wake)
        with self._lock:
            return self._status(record)

    def _current(self, job_id: str) -> JobStatus | None:
        record = self._live.get(job_id)
        if record is not None:
            return self._status(record)
        finished = self._finished.get(job_id)
        return None if finished is None else finished.status

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
            live = self._live.get(request.id)
            finished = self._finished.get(request.id)
            existing: tuple[str, JobStatus] | None = None
            if live is not None:
                existing = live.fingerprint, self._status(live)
            elif finished is not None and not _may_run_again(finished):
                existing = finished.fingerprint, finished.status
            if existing is not None:
                same = existing[0] == fingerprint
                return (Admission.EXISTING if same else Admission.CONFLICT), existing[1]
            if not self._accepting:
                return Admission.DRAINING, None
            if len(self._running) + len(self._queue) >= self.slots + self.queue_limit:
                return Admission.FULL, None
            if finished is not None:  # a retry: the new attempt replaces the old one
                self._forget(request.id)
            record = JobRecord(id=request.id, fingerprint=fingerprint, spec=spec)
            self._live[record.id] = record
            self._queue.append(record.id)
            self._lock.notify_all()
            return Admission.CREATED, self._status(record)

    def cancel(self, job_id: str) -> JobStatus | None:
        """Cancel a queued job at once, a running one at its next frame; finished: no-op."""
        with self._lock:
            record = self._live.get(job_id)
            if record is None:
                return self._current(job_id)
            if record.state is JobState.QUEUED:
                self._queue.remove(job_id)
                self._finish(
                    record,
                    JobState.CANCELLED,
                    error=JobError(ErrorCode.CANCELLED, "Cancelled before it started."),
                )
                return record.status(queue_position=None)
            if record.stop_reason is None:
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
            record = self._live[self._queue.popleft()]
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
        """The job ends: its record gives way to what status needs, and its waiters hear."""
        record.state = state
        record.error = error
        record.finished_at = _now()
        self._running.discard(record.id)
        finished = FinishedJob.of(record, now=self._clock())
        del self._live[record.id]
        self._finished[record.id] = finished
        self._finished_bytes += finished.size
        for wake in record.waiters:
            wake(finished.status)
        record.waiters.clear()
        self._evict()
        self._lock.notify_all()

    def _expire(self) -> None:
        """Forget finished jobs past the retention time (the oldest finished come first)."""
        horizon = self._clock() - self.retention_seconds
        while self._finished:
            job_id, oldest = next(iter(self._finished.items()))
            if oldest.finished_monotonic >= horizon:
                return
            self._forget(job_id)

    def _evict(self) -> None:
        """Forget the oldest finished jobs until the rest fit in the byte budget."""
        while self._finished_bytes > self.finished_budget_bytes and self._finished:
            self._forget(next(iter(self._finished)))

    def _forget(self, job_id: str) -> None:
        self._finished_bytes -= self._finished.pop(job_id).size

    # -- draining ----------------------------------------------------------------------

    def begin_drain(self) -> int:
        """Stop admitting; jobs still waiting are interrupted (they can run elsewhere)."""
        with self._lock:
            self._accepting = False
            waiting = [self._live[j] for j in self._queue]
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
                record = self._live[job_id]
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
        """No more work: wakes idle slots (``take`` returns None) and long polls, which
        answer with the status as it is."""
        with self._lock:
            self._closed = True
            for record in self._live.values():
                status = self._status(record)
                for wake in record.waiters:
                    wake(status)
                record.waiters.clear()
            self._lock.notify_all()
