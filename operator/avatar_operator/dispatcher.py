"""The heart of the operator: queued AvatarVideos meet runtime pods with free slots.

One dispatcher per operator process holds every unfinished job in memory, but
nothing only in memory: each step is written to the resource's status first
(the pod a job was sent to, the attempts so far), so a restarted operator
rebuilds the same picture from the resources (``admit`` on resume) and picks
up the jobs still running on their pods instead of sending them again.

A job's life: admitted → queued (per pool, fair) → dispatched to a pod (status
first, then ``POST /v1/jobs``; the job id is the resource's uid, so a repeated
send never renders twice) → followed until it ends → succeeded, failed, or back
to the queue (a retriable error after a backoff; a lost or drained pod at once)
until ``maxRetries`` is spent. Deadlines and deletes cancel the runtime job.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from avatar_operator import status as st
from avatar_operator.estimate import BacklogEstimator
from avatar_operator.kube import Kube
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.pods import PodRegistry, RuntimePod
from avatar_operator.queue import Entry, FairQueue
from avatar_operator.resource import (
    AvatarVideoSpec,
    Ref,
    job_request,
    parse_time,
    ref_of,
)
from avatar_operator.runtime_client import (
    JobRejectedError,
    PodRefusedError,
    PodUnreachableError,
    RuntimeCallError,
    RuntimeClient,
)
from avatar_operator.settings import OperatorSettings
from avatar_operator.tracking import AttemptEnd, Ending, Tracker
from avatar_runtime.api.schemas import ErrorInfo, JobState, JobStatus

log = logging.getLogger(__name__)

DEADLINE_EXCEEDED = "DeadlineExceeded"
_ENDED_KEPT = 100_000  # uids of ended jobs remembered (~10 MB); older ones are long settled
RUNTIME_LOST = "RuntimeLost"


@dataclass(eq=False)
class Job:
    ref: Ref
    spec: AvatarVideoSpec
    generation: int
    created: dt.datetime
    seen: float
    """Monotonic time the operator first saw it (dispatch latency starts here)."""
    estimate: float
    arrival: int = 0
    """Watch order among resources created in the same second (see ``noticed``)."""
    attempts: int = 0
    phase: str = "Pending"
    pod: str | None = None
    started: dt.datetime | None = None
    accepted_once: bool = False
    conditions: st.Conditions = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    deadline: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_progress: tuple[str | None, int] | None = None
    position: int | None = None
    """The queue position last written to the status."""
    last_write: float = 0.0
    unserved_noted: bool = False
    closed: bool = False
    """Finished, deleted or expired: nothing more is written or sent for it."""

    @property
    def uid(self) -> str:
        return self.ref.uid


class JobLog(logging.LoggerAdapter[logging.Logger]):
    """Every line about a job names it and its uid (the runtime's job id)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"[{extra.get('resource')} job_id={extra.get('job_id')}] {msg}", kwargs


def job_log(job: Job) -> JobLog:
    return JobLog(log, {"job_id": job.uid, "resource": str(job.ref)})


class Dispatcher:
    def __init__(
        self,
        *,
        settings: OperatorSettings,
        kube: Kube,
        runtime: RuntimeClient,
        metrics: OperatorMetrics,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.runtime = runtime
        self.metrics = metrics
        self.pods = PodRegistry(
            namespace=settings.runtime_namespace, default_port=settings.runtime_port
        )
        self.tracker = Tracker(settings=settings, runtime=runtime, pods=self.pods, kube=kube)
        self.estimator = BacklogEstimator(
            chars_per_second=settings.chars_per_second,
            default_rate=settings.default_chars_per_second,
            audio_prior=settings.audio_prior_seconds,
        )
        self.jobs: dict[str, Job] = {}
        # Jobs this process ended (finished or deleted), newest last. kopf may hand a
        # resource over again with an old body (its consistency timeout passed before
        # its own patch came back on the watch): such a body must not queue it again.
        self._ended_uids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.queues: dict[str, FairQueue] = {}
        self._arrivals: dict[str, int] = {}
        self._arrival_seq = itertools.count(1)
        self._ttl: dict[str, asyncio.TimerHandle] = {}
        self._wake = asyncio.Event()
        self._capacity_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        metrics.watch_pools(self.pool_figures)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._capacity_loop(), name="capacity"),
            asyncio.create_task(self._positions_loop(), name="positions"),
        ]

    async def stop(self) -> None:
        """Stop following jobs; they keep running on their pods for the next operator."""
        for job in self.jobs.values():
            if job.task is not None:
                job.task.cancel()
            if job.deadline is not None:
                job.deadline.cancel()
        for handle in self._ttl.values():
            handle.cancel()
        tasks = [*self._tasks, *(j.task for j in self.jobs.values() if j.task)]
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- resources ------------------------------------------------------------------------

    def noticed(self, body: Mapping[str, Any]) -> None:
        """A new resource came on the watch: remember its place in the stream.

        kopf admits resources concurrently (each after its own finalizer patch), so
        admission order is not creation order; the watch's order is.
        """
        uid = ref_of(body).uid
        if (body.get("status") or {}).get("phase") or uid in self.jobs or uid in self._ended_uids:
            return
        self._arrivals.setdefault(uid, next(self._arrival_seq))

    def admit(self, body: Mapping[str, Any]) -> None:
        """A resource created, or found at start: queue it, follow it, or wait for its TTL."""
        ref = ref_of(body)
        arrival = self._arrivals.pop(ref.uid, 0)
        if ref.uid in self.jobs or ref.uid in self._ended_uids:
            return
        meta, status = body["metadata"], body.get("status") or {}
        spec = AvatarVideoSpec.model_validate(dict(body.get("spec") or {}))
        phase = status.get("phase") or "Pending"
        if phase in st.FINISHED_PHASES:
            completion = parse_time(status.get("completionTime")) or st.now()
            self._schedule_ttl(ref, spec, completion)
            return
        created = parse_time(meta.get("creationTimestamp")) or st.now()
        job = Job(
            ref=ref,
            spec=spec,
            generation=int(meta.get("generation") or 1),
            created=created,
            seen=time.monotonic(),
            estimate=self.estimator.seconds(spec),
            arrival=arrival,
            attempts=int(status.get("attempts") or 0),
            phase=phase,
            started=parse_time(status.get("startTime")),
            conditions={c["type"]: dict(c) for c in status.get("conditions") or [] if "type" in c},
        )
        self.jobs[ref.uid] = job
        self._schedule_deadline(job)
        pod = status.get("runtimePod")
        if phase == st.RUNNING and pod:
            job_log(job).info("adopting the job on runtime pod %s", pod)
            job.pod = pod
            self.pods.reserve(pod, job.uid)
            job.accepted_once = True
            job.task = asyncio.create_task(self._attempt(job, pod, adopted=True))
            return
        next_attempt = parse_time(status.get("nextAttemptTime"))
        delay = (next_attempt - st.now()).total_seconds() if next_attempt else 0.0
        self._enqueue(job, delay=max(0.0, delay), write=phase != st.QUEUED)

    async def forget(self, body: Mapping[str, Any]) -> None:
        """The resource is being deleted: stop its job on the runtime before it goes."""
        ref = ref_of(body)
        self._arrivals.pop(ref.uid, None)
        self._remember_ended(ref.uid)
        job = self.jobs.pop(ref.uid, None)
        handle = self._ttl.pop(ref.uid, None)
        if handle is not None:
            handle.cancel()
        pod = (body.get("status") or {}).get("runtimePod")
        if job is not None:
            job.closed = True
            self._close_timers(job)
            self._queue(job).remove(job.uid)
            pod = job.pod
            await _stop_following(job)
        phase = (body.get("status") or {}).get("phase")
        if pod and (job is not None or phase == st.RUNNING):
            await self._cancel_on_pod(ref, pod)
            self.pods.release(pod, ref.uid)
            self._wake.set()

    def pod_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if self.pods.observe(event_type, body) is not None:
            self._capacity_wanted.set()

    # -- queue and dispatch -------------------------------------------------------------------

    def _queue(self, job: Job) -> FairQueue:
        return self.queues.setdefault(job.spec.pool, FairQueue())

    def _enqueue(
        self, job: Job, *, delay: float, write: bool, error: ErrorInfo | None = None
    ) -> None:
        queue = self._queue(job)
        queue.push(
            Entry(
                uid=job.uid,
                namespace=job.ref.namespace,
                priority=job.spec.priority,
                created=job.created.timestamp(),
                arrival=job.arrival,
                not_before=time.monotonic() + delay,
            )
        )
        job.phase, job.pod = st.QUEUED, None
        self._wake.set()
        if not write:
            return
        next_attempt = st.now() + dt.timedelta(seconds=delay) if delay > 0 else None
        reason = "Retrying" if error is not None else "Queued"
        message = (
            f"Waiting {delay:.0f} s after {error.code}; attempt {job.attempts + 1} next."
            if error is not None
            else f"Waiting for a free slot in pool {job.spec.pool!r}."
        )
        job.position = queue.position(job.uid)
        patch = st.queued(
            pool=job.spec.pool,
            position=job.position,
            attempts=job.attempts,
            generation=job.generation,
            next_attempt=next_attempt,
            error=error,
        )
        self._condition(job, "Running", False, reason, message)
        self._spawn(self._write(job, patch, conditions=True), f"queued-{job.uid}")
        if error is None:
            self._event(job, "Normal", reason="Queued", message=message)
        else:
            self._event(job, "Warning", reason="Retrying", message=f"{error.message} {message}")

    async def _dispatch_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                self._dispatch_ready()
            except Exception:
                log.exception("dispatching failed; trying again")
            dues = [d for q in self.queues.values() if (d := q.next_due()) is not None]
            timeout = max(0.0, min(dues) - time.monotonic()) if dues else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _dispatch_ready(self) -> None:
        now = time.monotonic()
        for pool, queue in self.queues.items():
            waiting_for_engines: list[tuple[Entry, Job]] = []
            while len(queue) and self.pods.has_free(pool):
                entry = queue.pop(now)
                if entry is None:
                    break
                job = self.jobs.get(entry.uid)
                if job is None or job.closed:
                    continue
                spec = job.spec
                pod = self.pods.pick(pool, tts=spec.tts, renderer=spec.renderer)
                if pod is None:  # free slots, but not on a pod with the engines it asks for
                    waiting_for_engines.append((entry, job))
                    continue
                self.pods.reserve(pod.name, job.uid)
                job.pod, job.phase = pod.name, st.RUNNING
                job.task = asyncio.create_task(self._attempt(job, pod.name, adopted=False))
            for entry, job in reversed(waiting_for_engines):
                queue.unpop(entry)
                self._note_unserved(job)

    def _note_unserved(self, job: Job) -> None:
        """Say once, on the resource, that no pod of its pool runs the engines it asks for."""
        spec = job.spec
        if job.unserved_noted or self.pods.offered(spec.pool, tts=spec.tts, renderer=spec.renderer):
            return
        job.unserved_noted = True
        wanted = ", ".join(
            f"{k}={v}" for k, v in (("tts", spec.tts), ("renderer", spec.renderer)) if v
        )
        message = f"No ready runtime pod in pool {spec.pool!r} runs {wanted}; waiting for one."
        job_log(job).warning("%s", message)
        self._spawn(self._write(job, {"message": message}), f"unserved-{job.uid}")
        self._event(job, "Warning", reason="NoPodForEngines", message=message)

    # -- one attempt ----------------------------------------------------------------------

    async def _attempt(self, job: Job, pod_name: str, *, adopted: bool) -> None:
        jlog = job_log(job)
        try:
            if not adopted and not await self._send(job, pod_name):
                return
            end = await self.tracker.follow(
                job.uid, pod_name, lambda status: self._progress(job, status)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            jlog.exception("attempt on %s failed unexpectedly", pod_name)
            end = AttemptEnd(Ending.LOST, reason=f"operator error: {exc!r}")
        finally:
            self.pods.release(pod_name, job.uid)
            self._wake.set()
        if not job.closed:
            await self._ended(job, end)

    async def _send(self, job: Job, pod_name: str) -> bool:
        """Status first (so a restart finds the job), then the runtime; False if not accepted."""
        jlog = job_log(job)
        job.attempts += 1
        first_start = job.started is None
        if first_start:
            job.started = st.now()
        patch = st.dispatched(
            pod=pod_name,
            attempts=job.attempts,
            start=job.started if first_start else None,
            generation=job.generation,
        )
        self._condition(job, "Running", True, "Dispatched", f"On runtime pod {pod_name}.")
        job.last_progress = None
        await self._write(job, patch, conditions=True)
        pod = self.pods.get(pod_name)
        try:
            if pod is None or pod.url is None:
                raise PodUnreachableError(f"runtime pod {pod_name} has no address")
            await self.runtime.submit(pod.url, job_request(job.uid, job.spec))
        except JobRejectedError as exc:
            if exc.error.code == "EngineUnavailable":  # the pod changed engines: ask again
                return self._not_taken(job, pod, exc)
            jlog.warning("runtime pod %s rejected the job: %s", pod_name, exc)
            await self._finish_failed(job, exc.error)
            return False
        except RuntimeCallError as exc:
            return self._not_taken(job, pod, exc)
        if not job.accepted_once:
            job.accepted_once = True
            self.metrics.dispatch_latency.observe(time.monotonic() - job.seen)
        jlog.info("runtime pod %s accepted attempt %d", pod_name, job.attempts)
        self._event(
            job,
            "Normal",
            reason="Dispatched",
            message=f"Runtime pod {pod_name} accepted attempt {job.attempts}.",
        )
        return True

    def _not_taken(self, job: Job, pod: RuntimePod | None, exc: RuntimeCallError) -> bool:
        """Full, draining, unreachable or changed: not the job's fault; no attempt counted."""
        job_log(job).info("runtime pod %s did not take the job: %s", job.pod, exc)
        if pod is not None:
            pod.capacity = None  # read it again before sending it more
            self._capacity_wanted.set()
        job.attempts -= 1
        retry_after = exc.retry_after if isinstance(exc, PodRefusedError) else None
        self._enqueue(job, delay=min(retry_after or 0.0, 1.0), write=True)
        return False

    async def _progress(self, job: Job, status: JobStatus) -> None:
        patch = st.progress(status)
        key = (patch["stage"], patch["progress"])
        now = time.monotonic()
        if key == job.last_progress or now - job.last_write < self.settings.status_interval_seconds:
            return
        job.last_progress = key
        await self._write(job, patch)

    async def _ended(self, job: Job, end: AttemptEnd) -> None:
        status = end.status
        if end.ending is Ending.LOST or status is None:
            job_log(job).warning("attempt %d lost: %s", job.attempts, end.reason)
            error = ErrorInfo(code=RUNTIME_LOST, message=end.reason, retriable=True)
            await self._retry_or_fail(job, error, backoff=False)
        elif status.state is JobState.SUCCEEDED:
            await self._finish_succeeded(job, status)
        elif status.state is JobState.CANCELLED:
            error = status.error or ErrorInfo(
                code="Cancelled", message="cancelled", retriable=False
            )
            await self._finish_failed(job, error, phase=st.CANCELLED)
        else:
            error = status.error or ErrorInfo(
                code="InternalError", message=f"job ended {status.state}", retriable=True
            )
            if error.retriable:
                # A drained pod's interruption is not the job's fault: no wait before the next.
                await self._retry_or_fail(
                    job, error, backoff=status.state is not JobState.INTERRUPTED
                )
            else:
                await self._finish_failed(job, error)

    async def _retry_or_fail(self, job: Job, error: ErrorInfo, *, backoff: bool) -> None:
        if job.attempts > job.spec.max_retries:
            final = error.model_copy(
                update={"message": f"{error.message} (gave up after {job.attempts} attempts)"}
            )
            await self._finish_failed(job, final)
            return
        delay = 0.0
        if backoff:
            delay = min(
                self.settings.retry_base_seconds * 2 ** max(0, job.attempts - 1),
                self.settings.retry_max_seconds,
            )
        self.metrics.retries.labels(error.code).inc()
        job_log(job).info("retrying in %.1f s after %s", delay, error.code)
        self._enqueue(job, delay=delay, write=True, error=error)

    # -- endings ----------------------------------------------------------------------------

    async def _finish_succeeded(self, job: Job, status: JobStatus) -> None:
        finished = st.now()
        if status.video_seconds:
            self.metrics.estimate_ratio.observe(status.video_seconds / max(job.estimate, 1e-3))
            self.estimator.learn(job.spec, status.video_seconds)
        self._condition(job, "Running", False, "Finished", "The video is ready.")
        self._condition(job, "Complete", True, "Rendered", "Video, captions and thumbnail written.")
        self._close(job, "succeeded", finished)
        await self._write(job, st.succeeded(status, finished=finished), conditions=True)
        self._event(
            job,
            "Normal",
            reason="Succeeded",
            message=f"Rendered {status.video_seconds or 0:.1f} s of video on {job.pod}.",
        )
        self._schedule_ttl(job.ref, job.spec, finished)

    async def _finish_failed(self, job: Job, error: ErrorInfo, *, phase: str = st.FAILED) -> None:
        finished = st.now()
        self._condition(job, "Running", False, phase, error.message)
        if phase == st.FAILED:
            self._condition(job, "Failed", True, error.code, error.message)
        self._close(job, phase.lower(), finished)
        await self._write(job, st.failed(error, finished=finished, phase=phase), conditions=True)
        self._event(
            job,
            "Warning",
            reason=phase if phase != st.FAILED else error.code,
            message=error.message,
        )
        self._schedule_ttl(job.ref, job.spec, finished)

    def _remember_ended(self, uid: str) -> None:
        self._ended_uids[uid] = None
        while len(self._ended_uids) > _ENDED_KEPT:
            self._ended_uids.popitem(last=False)

    def _close(self, job: Job, outcome: str, finished: dt.datetime) -> None:
        self._remember_ended(job.uid)
        job.closed = True
        job.phase = outcome.capitalize()
        self._close_timers(job)
        self._queue(job).remove(job.uid)
        self.jobs.pop(job.uid, None)
        self.metrics.jobs.labels(outcome).inc()
        self.metrics.job_seconds.observe(max(0.0, (finished - job.created).total_seconds()))
        job_log(job).info("%s after %d attempt(s)", outcome, job.attempts)

    def _close_timers(self, job: Job) -> None:
        if job.deadline is not None:
            job.deadline.cancel()
            job.deadline = None

    # -- deadlines and TTL -----------------------------------------------------------------

    def _schedule_deadline(self, job: Job) -> None:
        if job.spec.deadline_seconds is None:
            return
        due = job.created + dt.timedelta(seconds=job.spec.deadline_seconds)
        delay = max(0.0, (due - st.now()).total_seconds())
        job.deadline = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._expire(job), f"deadline-{job.uid}")
        )

    async def _expire(self, job: Job) -> None:
        if job.closed:
            return
        job_log(job).warning("deadline of %d s exceeded", job.spec.deadline_seconds or 0)
        job.closed = True  # no attempt's ending may write after this
        self._queue(job).remove(job.uid)
        pod = job.pod
        await _stop_following(job)
        if pod and job.phase == st.RUNNING:
            await self._cancel_on_pod(job.ref, pod)
        error = ErrorInfo(
            code=DEADLINE_EXCEEDED,
            message=f"not finished within deadlineSeconds={job.spec.deadline_seconds}",
            retriable=False,
        )
        job.closed = False
        await self._finish_failed(job, error)

    def _schedule_ttl(self, ref: Ref, spec: AvatarVideoSpec, finished: dt.datetime) -> None:
        if spec.ttl_seconds_after_finished is None or ref.uid in self._ttl:
            return
        due = finished + dt.timedelta(seconds=spec.ttl_seconds_after_finished)
        delay = max(0.0, (due - st.now()).total_seconds())

        async def delete() -> None:
            self._ttl.pop(ref.uid, None)
            log.info(
                "[%s] deleting: finished more than %d s ago", ref, spec.ttl_seconds_after_finished
            )
            await self.kube.delete(ref)

        self._ttl[ref.uid] = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(delete(), f"ttl-{ref.uid}")
        )

    # -- runtime pods -------------------------------------------------------------------------

    async def _cancel_on_pod(self, ref: Ref, pod_name: str) -> None:
        """Ask the pod to stop the job and wait (bounded) until it has."""
        try:
            url = await self.tracker.url(pod_name)
            if url is None:
                return
            answer = await self.runtime.cancel(url, ref.uid)
            if not answer.state.finished:
                await self.runtime.read(url, ref.uid, wait=self.settings.cancel_timeout_seconds)
            log.info("[%s job_id=%s] cancelled on runtime pod %s", ref, ref.uid, pod_name)
        except RuntimeCallError as exc:
            log.info("[%s job_id=%s] nothing to cancel on %s: %s", ref, ref.uid, pod_name, exc)

    async def _positions_loop(self) -> None:
        """Move the front of each queue's positions forward, in a bounded number of writes.

        Positions change with every dispatch; writing them all each time would be a
        write storm with a long queue. The first ``queue_status_top`` of each pool
        are brought up to date every ``queue_status_seconds``; the rest keep the
        position they were queued at until they come near the front.
        """
        while True:
            await asyncio.sleep(self.settings.queue_status_seconds)
            for queue in list(self.queues.values()):
                front = queue.ordered()[: self.settings.queue_status_top]
                for position, entry in enumerate(front):
                    job = self.jobs.get(entry.uid)
                    if job is None or job.closed or job.position == position:
                        continue
                    if entry.uid not in queue:  # dispatched while we were writing
                        continue
                    job.position = position
                    await self._write(job, {"queuePosition": position})

    async def _capacity_loop(self) -> None:
        """Read each ready pod's capacity: at once when it becomes ready, then now and then."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._capacity_wanted.wait(), 1.0)
            self._capacity_wanted.clear()
            now = time.monotonic()
            stale = [
                p
                for p in self.pods.all()
                if p.ready
                and p.url
                and (
                    p.capacity is None
                    or now - p.capacity_read > self.settings.capacity_refresh_seconds
                )
            ]
            results = await asyncio.gather(
                *(self.runtime.capacity(p.url) for p in stale if p.url), return_exceptions=True
            )
            for pod, result in zip(stale, results, strict=True):
                if isinstance(result, BaseException):
                    log.info("runtime pod %s: no capacity: %s", pod.name, result)
                    self.pods.set_capacity(pod.name, None)
                else:
                    self.pods.set_capacity(pod.name, result)
            if stale:
                self._wake.set()

    # -- status ---------------------------------------------------------------------------

    def _event(self, job: Job, type_: str, *, reason: str, message: str) -> None:
        """A Kubernetes Event on the resource, posted in the background."""

        async def post() -> None:
            try:
                await self.kube.event(job.ref, type_=type_, reason=reason, message=message)
            except Exception as exc:  # an Event is worth a try, never a failed job
                job_log(job).info("could not post the %s event: %s", reason, exc)

        self._spawn(post(), f"event-{job.uid}")

    def _condition(self, job: Job, type_: str, value: bool, reason: str, message: str) -> None:
        st.set_condition(
            job.conditions,
            type_,
            value,
            reason,
            message,
            generation=job.generation,
            at=st.now(),
        )

    async def _write(self, job: Job, patch: dict[str, Any], *, conditions: bool = False) -> None:
        """Status writes of one job go out one at a time, in order."""
        if conditions:
            patch = {**patch, "conditions": st.conditions_list(job.conditions)}
        async with job.lock:
            job.last_write = time.monotonic()
            self.metrics.status_writes.inc()
            try:
                exists = await self.kube.patch_status(job.ref, patch)
            except Exception:
                job_log(job).exception("status write failed")
                return
        if not exists and not job.closed:
            # Deleted without our finalizer's handler (e.g. force-removed): stop the job too.
            job_log(job).info("the resource is gone; forgetting the job")
            self._spawn(self.forget(job.ref.body()), f"forget-{job.uid}")

    # -- metrics --------------------------------------------------------------------------

    def pool_figures(self) -> dict[str, tuple[int, float, int]]:
        figures: dict[str, tuple[int, float, int]] = dict.fromkeys(self.pods.pools(), (0, 0.0, 0))
        for pool, queue in self.queues.items():
            waiting = queue.waiting()
            seconds = sum(j.estimate for e in waiting if (j := self.jobs.get(e.uid)) is not None)
            figures[pool] = (len(waiting), seconds, 0)
        for job in self.jobs.values():
            if job.phase == st.RUNNING:
                depth, seconds, running = figures.get(job.spec.pool, (0, 0.0, 0))
                figures[job.spec.pool] = (depth, seconds, running + 1)
        return figures


async def _stop_following(job: Job) -> None:
    """End the task that follows the job's attempt, and wait until it has."""
    if job.task is not None:
        job.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job.task
