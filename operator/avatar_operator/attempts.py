"""One attempt of a job on one runtime pod: send it, follow it (or cancel it), decide what follows.

An attempt is written to the status before the pod hears of it (so a restarted
operator finds it there), then sent (the job id is the resource's uid, so a
repeated send never renders twice), then followed until it ends. What happens
next is decided by :func:`outcome`, a pure function of how the attempt ended and
the attempts spent, so the rule can be read (and tested) in one place:

- the runtime's success is ``Succeeded``; a cancellation is ``Failed`` as ``Cancelled``;
- a non-retriable error is ``Failed`` with the runtime's code;
- a retriable error, or a lost pod, is ``Retry``, after a backoff doubling from
  ``retries.base_seconds`` (none when the pod was lost or drained: not the job's
  fault), until ``maxRetries`` further attempts are spent, then ``Failed``;
- an attempt the platform ended (the pod drained, so the job was ``Interrupted``, or
  the pod was deleted, preempted or evicted under it) is a ``Retry(platform=True)`` at
  once that spends none of ``maxRetries``: the user did nothing wrong. Only
  ``retries.max_platform_retries`` of those end in ``Failed``, so a video cannot go
  round for ever on a platform that keeps failing.

A pod that does not take the job (full, draining, unreachable, engines changed)
costs no attempt: the job goes back to the queue at once. A pod that answers the
submission with an error of its own (``failed_send``) may be failing because of
the job, so that costs an attempt, with the same backoff, and a job that keeps
failing pods ends ``Failed`` with the pod's code (or ``DispatchFailed``) instead of
going round for ever. A submission whose answer was lost may have been taken: it is
followed on that pod like any other, and if the pod does not know it, it is lost.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pydantic import ValidationError

from avatar_operator import status as st
from avatar_operator.jobs import Job, Phase, job_log
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.pods import CapacityReader, PodRecord, PodRegistry
from avatar_operator.reporting import Reporter
from avatar_operator.resource import Ref, job_request
from avatar_operator.runtime_client import (
    JobRejectedError,
    NoAnswerError,
    PodFailedError,
    PodRefusedError,
    PodUnreachableError,
    RuntimeCallError,
    RuntimeClient,
)
from avatar_operator.settings import RetrySettings
from avatar_operator.tracking import AttemptEnd, Ending, Tracker
from avatar_runtime.api.errors import ErrorCode
from avatar_runtime.api.schemas import ErrorInfo, JobState, JobStatus


@dataclass(frozen=True)
class Succeeded:
    status: JobStatus


@dataclass(frozen=True)
class Failed:
    error: ErrorInfo
    phase: Phase = Phase.FAILED


@dataclass(frozen=True)
class Retry:
    delay: float
    """Seconds before the job may be dispatched again."""
    error: ErrorInfo | None = None
    """Why the attempt failed; None when the pod did not take the job (no attempt spent)."""
    platform: bool = False
    """The platform ended the attempt (a pod drained, preempted or removed): not the user's."""


Outcome = Succeeded | Failed | Retry


def outcome(
    end: AttemptEnd,
    *,
    attempts: int,
    max_retries: int,
    retries: RetrySettings,
    platform_retries: int = 0,
) -> Outcome:
    """What follows an attempt that ended.

    ``attempts`` are the user's (this one included, the platform's left out: they spend
    no ``maxRetries``); ``platform_retries`` the platform's before this one.
    """
    status = end.status
    if end.ending is Ending.LOST or status is None:
        lost = ErrorInfo(code=ErrorCode.RUNTIME_LOST, message=end.reason, retriable=True)
        if end.platform:
            return _platform_retry(lost, platform_retries=platform_retries, retries=retries)
        return _retry_or_fail(lost, attempts=attempts, max_retries=max_retries, delay=0.0)
    if status.state is JobState.SUCCEEDED:
        return Succeeded(status)
    if status.state is JobState.CANCELLED:
        cancelled = ErrorInfo(code=ErrorCode.CANCELLED, message="cancelled", retriable=False)
        return Failed(status.error or cancelled, phase=Phase.CANCELLED)
    error = status.error or ErrorInfo(
        code=ErrorCode.INTERNAL, message=f"job ended {status.state}", retriable=True
    )
    if status.state is JobState.INTERRUPTED:  # the pod drained: the platform's doing
        return _platform_retry(error, platform_retries=platform_retries, retries=retries)
    if not error.retriable:
        return Failed(error)
    delay = backoff(attempts, retries)
    return _retry_or_fail(error, attempts=attempts, max_retries=max_retries, delay=delay)


def failed_send(
    error: ErrorInfo, *, attempts: int, max_retries: int, retries: RetrySettings
) -> Outcome:
    """What follows a submission the pod answered with an error (``attempts`` counts it)."""
    if not error.retriable:
        return Failed(error)
    delay = backoff(attempts, retries)
    return _retry_or_fail(error, attempts=attempts, max_retries=max_retries, delay=delay)


def backoff(attempts: int, retries: RetrySettings) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling, capped."""
    doubled: float = retries.base_seconds * 2.0 ** max(0, attempts - 1)
    return min(doubled, retries.max_seconds)


def _platform_retry(error: ErrorInfo, *, platform_retries: int, retries: RetrySettings) -> Outcome:
    """At once and free of the user's retries, up to the platform's own cap."""
    if platform_retries + 1 > retries.max_platform_retries:
        message = f"{error.message} (gave up after {platform_retries + 1} platform interruptions)"
        return Failed(error.model_copy(update={"message": message}))
    return Retry(delay=0.0, error=error, platform=True)


def _retry_or_fail(error: ErrorInfo, *, attempts: int, max_retries: int, delay: float) -> Outcome:
    if attempts > max_retries:
        message = f"{error.message} (gave up after {attempts} attempts)"
        return Failed(error.model_copy(update={"message": message}))
    return Retry(delay=delay, error=error)


class Attempts:
    def __init__(
        self,
        *,
        runtime: RuntimeClient,
        tracker: Tracker,
        pods: PodRegistry,
        capacity: CapacityReader,
        reporter: Reporter,
        metrics: OperatorMetrics,
        retries: RetrySettings,
        cancel_timeout: float,
    ) -> None:
        self.runtime = runtime
        self.tracker = tracker
        self.pods = pods
        self.capacity = capacity
        self.reporter = reporter
        self.metrics = metrics
        self.retries = retries
        self.cancel_timeout = cancel_timeout

    async def run(self, job: Job, pod_name: str, *, adopted: bool) -> Outcome:
        """Send (unless adopted after a restart: it runs there already) and follow."""
        try:
            if not adopted and (not_sent := await self._send(job, pod_name)) is not None:
                return not_sent
            end = await self.tracker.follow(
                job.uid, pod_name, lambda status: self.reporter.progress(job, status)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            job.log.exception("attempt on %s failed unexpectedly", pod_name)
            end = AttemptEnd(Ending.LOST, reason=f"operator error: {exc!r}")
        if end.ending is Ending.LOST:
            job.log.warning("attempt %d lost: %s", job.persisted.attempts, end.reason)
        return outcome(
            end,
            attempts=job.persisted.user_attempts,
            max_retries=job.spec.max_retries,
            retries=self.retries,
            platform_retries=job.persisted.platform_retries,
        )

    async def _send(self, job: Job, pod_name: str) -> Outcome | None:
        """Status first (so a restart finds the job), then the runtime; None if accepted."""
        try:
            request = job_request(job.uid, job.spec)
        except ValidationError as exc:  # the CRD let through what the runtime's contract refuses
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem.get("loc", ()))
            message = f"the spec cannot be sent to a runtime pod: {field}: {problem.get('msg')}"
            return Failed(
                ErrorInfo(code=ErrorCode.INVALID_REQUEST, message=message, retriable=False)
            )
        job.persisted.attempts += 1
        first_start = job.persisted.started is None
        if first_start:
            job.persisted.started = st.now()
        await self.reporter.dispatched(job, pod=pod_name, first_start=first_start)
        pod = self.pods.get(pod_name)
        try:
            if pod is None or pod.url is None:
                raise PodUnreachableError(f"runtime pod {pod_name} has no address")
            await self.runtime.submit(pod.url, request)
        except JobRejectedError as exc:
            if exc.error.code is ErrorCode.ENGINE_UNAVAILABLE:  # the pod changed engines
                return self._not_taken(job, pod, exc)
            job.log.warning("runtime pod %s rejected the job: %s", pod_name, exc)
            return Failed(exc.error)
        except PodFailedError as exc:
            job.log.warning("runtime pod %s failed on the job: %s", pod_name, exc)
            return failed_send(
                exc.error,
                attempts=job.persisted.user_attempts,
                max_retries=job.spec.max_retries,
                retries=self.retries,
            )
        except NoAnswerError as exc:  # it may have been taken: follow it there
            job.log.info(
                "no answer from runtime pod %s; following the job there: %s", pod_name, exc
            )
            return None
        except RuntimeCallError as exc:
            return self._not_taken(job, pod, exc)
        if not job.accepted_once:
            job.accepted_once = True
            self.metrics.dispatch_latency.observe(time.monotonic() - job.seen)
        self.reporter.accepted(job, pod=pod_name)
        return None

    async def cancel(self, ref: Ref, pod_name: str) -> None:
        """Ask the pod to stop the job and wait (bounded) until it has."""
        jlog = job_log(ref)
        try:
            url = await self.tracker.url(pod_name)
            if url is None:
                return
            answer = await self.runtime.cancel(url, ref.uid)
            if not answer.state.finished:
                await self.runtime.read(url, ref.uid, wait=self.cancel_timeout)
            jlog.info("cancelled on runtime pod %s", pod_name)
        except RuntimeCallError as exc:
            jlog.info("nothing to cancel on %s: %s", pod_name, exc)

    def _not_taken(self, job: Job, pod: PodRecord | None, exc: RuntimeCallError) -> Retry:
        """Full, draining, unreachable or changed: not the job's fault; no attempt counted."""
        job.log.info("runtime pod %s did not take the job: %s", job.persisted.pod, exc)
        if pod is not None:
            pod.capacity = None  # read it again before sending it more
            self.capacity.wanted()
        job.persisted.attempts -= 1
        retry_after = exc.retry_after if isinstance(exc, PodRefusedError) else None
        return Retry(delay=min(retry_after or 0.0, 1.0))
