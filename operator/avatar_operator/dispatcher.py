"""The heart of the operator: queued AvatarVideos meet runtime pods with free slots.

One dispatcher per operator process holds every unfinished job in memory, but
nothing only in memory: each step is written to the resource's status first
(the pod a job was sent to, the attempts so far), so a restarted operator
rebuilds the same picture from the resources (``admit`` on resume) and picks
up the jobs still running on their pods instead of sending them again.

A job's life: admitted → queued (per pool, fair: ``queue``) → dispatched to a
pod with a free slot that runs its engines (``pods``) → one attempt, sent and
followed (``attempts``) → succeeded, failed, or back to the queue. Deadlines and
deletes cancel the runtime job (``timers``); what the user sees is written by
``reporting``. This module owns the intake (``noticed``, ``admit``, ``forget``,
``pod_event``), the per-pool queues, the dispatch loop and a job's ending.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from avatar_operator import status as st
from avatar_operator.attempts import Attempts, Failed, Outcome, Retry, Succeeded
from avatar_operator.background import Background
from avatar_operator.estimate import BacklogEstimator
from avatar_operator.jobs import Job, Persisted, Phase, job_log
from avatar_operator.kube import Kube
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.pods import CapacityReader, PodRegistry
from avatar_operator.queue import Entry, FairQueue
from avatar_operator.reporting import Reporter
from avatar_operator.resource import AvatarVideoSpec, Ref, parse_time, ref_of
from avatar_operator.runtime_client import RuntimeClient
from avatar_operator.settings import OperatorSettings
from avatar_operator.timers import Timers
from avatar_operator.tracking import Tracker
from avatar_runtime.api.errors import ErrorCode
from avatar_runtime.api.schemas import ErrorInfo, JobStatus

log = logging.getLogger(__name__)

_ENDED_KEPT = 100_000  # uids of ended jobs remembered (~10 MB); older ones are long settled


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
        self.background = Background()
        self.pods = PodRegistry(
            namespace=settings.runtime.namespace, default_port=settings.runtime.port
        )
        self.capacity = CapacityReader(
            pods=self.pods,
            runtime=runtime,
            refresh_seconds=settings.tracking.capacity_refresh_seconds,
            on_read=self._wake_up,
        )
        self.tracker = Tracker(
            settings=settings.tracking, runtime=runtime, pods=self.pods, kube=kube
        )
        self.reporter = Reporter(
            kube=kube,
            metrics=metrics,
            settings=settings.status,
            background=self.background,
            on_gone=lambda job: self.background.spawn(
                self.forget(job.ref.body()), f"forget-{job.uid}"
            ),
        )
        self.attempts = Attempts(
            runtime=runtime,
            tracker=self.tracker,
            pods=self.pods,
            capacity=self.capacity,
            reporter=self.reporter,
            metrics=metrics,
            retries=settings.retries,
            cancel_timeout=settings.runtime.cancel_timeout_seconds,
        )
        self.timers = Timers(kube=kube, background=self.background)
        estimates = settings.estimates
        self.estimator = BacklogEstimator(
            chars_per_second=estimates.chars_per_second,
            default_rate=estimates.default_chars_per_second,
            audio_prior=estimates.audio_prior_seconds,
        )
        self.jobs: dict[str, Job] = {}
        # Jobs this process ended (finished or deleted), newest last. kopf may hand a
        # resource over again with an old body (its consistency timeout passed before
        # its own patch came back on the watch): such a body must not queue it again.
        self._ended_uids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.queues: dict[str, FairQueue] = {}
        self._arrivals: dict[str, int] = {}
        self._arrival_seq = itertools.count(1)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.on_queued: Callable[[str], None] = lambda pool: None
        """Called with the pool of each job queued (the scaling loop wakes a pool at zero)."""
        metrics.watch_pools(self.pool_figures, self.oldest_waiting)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self.capacity.run(), name="capacity"),
            asyncio.create_task(self._positions_loop(), name="positions"),
        ]

    async def stop(self) -> None:
        """Stop following jobs; they keep running on their pods for the next operator."""
        for job in self.jobs.values():
            if job.handles.task is not None:
                job.handles.task.cancel()
            Timers.cancel_deadline(job)
        self.timers.stop()
        tasks = [*self._tasks, *(j.handles.task for j in self.jobs.values() if j.handles.task)]
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.background.stop()

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
        phase = Phase.of(status.get("phase"))
        try:
            spec = AvatarVideoSpec.model_validate(dict(body.get("spec") or {}))
        except ValidationError as exc:  # not what the CRD lets through: an older or bent object
            if not phase.finished:
                self._refuse(ref, exc)
            return
        if phase.finished:
            completion = parse_time(status.get("completionTime")) or st.now()
            self.timers.ttl(ref, spec, completion)
            return
        job = Job(
            ref=ref,
            spec=spec,
            generation=int(meta.get("generation") or 1),
            created=parse_time(meta.get("creationTimestamp")) or st.now(),
            seen=time.monotonic(),
            estimate=self.estimator.seconds(spec),
            arrival=arrival,
            persisted=Persisted(
                phase=phase,
                attempts=int(status.get("attempts") or 0),
                platform_retries=int(status.get("platformRetries") or 0),
                gpu_seconds=float(status.get("gpuSeconds") or 0.0),
                started=parse_time(status.get("startTime")),
                conditions={
                    c["type"]: dict(c) for c in status.get("conditions") or [] if "type" in c
                },
            ),
        )
        self.jobs[ref.uid] = job
        self.timers.deadline(job, self._expire)
        pod = status.get("runtimePod")
        if phase is Phase.RUNNING and pod:
            job.log.info("adopting the job on runtime pod %s", pod)
            job.persisted.pod = pod
            self.pods.reserve(pod, job.uid)
            job.accepted_once = True
            job.handles.task = asyncio.create_task(self._attempt(job, pod, adopted=True))
            return
        next_attempt = parse_time(status.get("nextAttemptTime"))
        delay = (next_attempt - st.now()).total_seconds() if next_attempt else 0.0
        self._enqueue(job, delay=max(0.0, delay), write=phase is not Phase.QUEUED)

    def _refuse(self, ref: Ref, exc: ValidationError) -> None:
        """A resource whose spec cannot be read fails at once, saying why; nothing is queued."""
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem.get("loc", ()))
        error = ErrorInfo(
            code=ErrorCode.INVALID_REQUEST,
            message=f"spec.{field}: {problem.get('msg')}",
            field=f"spec.{field}",
            retriable=False,
        )
        job_log(ref).warning("refused: %s", error.message)
        self._remember_ended(ref.uid)
        patch = st.failed(error, finished=st.now())
        self.background.spawn(self.kube.patch_status(ref, patch), f"refuse-{ref.uid}")

    async def forget(self, body: Mapping[str, Any]) -> None:
        """The resource is being deleted: stop its job on the runtime before it goes."""
        ref = ref_of(body)
        self._arrivals.pop(ref.uid, None)
        self._remember_ended(ref.uid)
        job = self.jobs.pop(ref.uid, None)
        self.timers.cancel_ttl(ref.uid)
        pod = (body.get("status") or {}).get("runtimePod")
        if job is not None:
            job.closed = True
            Timers.cancel_deadline(job)
            self._queue(job).remove(job.uid)
            pod = job.persisted.pod
            await _stop_following(job)
        phase = (body.get("status") or {}).get("phase")
        if pod and (job is not None or phase == Phase.RUNNING):
            await self.attempts.cancel(ref, pod)
            self.pods.release(pod, ref.uid)
            self._wake_up()

    def pod_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if self.pods.observe(event_type, body) is not None:
            self.capacity.wanted()

    def _wake_up(self) -> None:
        self._wake.set()

    def _queue(self, job: Job) -> FairQueue:
        return self.queues.setdefault(job.spec.pool, FairQueue())

    def _enqueue(
        self,
        job: Job,
        *,
        delay: float,
        write: bool,
        error: ErrorInfo | None = None,
        platform: bool = False,
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
        job.persisted.phase, job.persisted.pod = Phase.QUEUED, None
        self._wake_up()
        self.on_queued(job.spec.pool)
        if write:
            self.reporter.queued(
                job, position=queue.position(job.uid), delay=delay, error=error, platform=platform
            )

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
                job.persisted.pod, job.persisted.phase = pod.name, Phase.RUNNING
                job.handles.task = asyncio.create_task(self._attempt(job, pod.name, adopted=False))
            for entry, job in reversed(waiting_for_engines):
                queue.unpop(entry)
                self._note_unserved(job)

    def _note_unserved(self, job: Job) -> None:
        spec = job.spec
        if self.pods.offered(spec.pool, tts=spec.tts, renderer=spec.renderer):
            return
        wanted = ", ".join(
            f"{k}={v}" for k, v in (("tts", spec.tts), ("renderer", spec.renderer)) if v
        )
        message = f"No ready runtime pod in pool {spec.pool!r} runs {wanted}; waiting for one."
        self.reporter.unserved(job, message)

    async def _attempt(self, job: Job, pod_name: str, *, adopted: bool) -> None:
        try:
            result = await self.attempts.run(job, pod_name, adopted=adopted)
        finally:
            self.pods.release(pod_name, job.uid)
            self._wake_up()
            # Its share of the pod's time in this attempt (usage): the status and the bill.
            seconds = self.pods.usage.take(job.uid)
            job.persisted.gpu_seconds += seconds
            self.metrics.gpu_seconds.labels(job.spec.pool, job.ref.namespace).inc(seconds)
        if not job.closed:
            await self._settle(job, result)

    async def _settle(self, job: Job, result: Outcome) -> None:
        match result:
            case Succeeded(status):
                await self._finish_succeeded(job, status)
            case Failed(error, phase):
                await self._finish_failed(job, error, phase=phase)
            case Retry(delay, error, platform):
                if platform:
                    job.persisted.platform_retries += 1
                if error is not None:
                    cause = "platform" if platform else "job"
                    self.metrics.retries.labels(error.code, cause).inc()
                    job.log.info("retrying in %.1f s after %s (%s)", delay, error.code, cause)
                self._enqueue(job, delay=delay, write=True, error=error, platform=platform)

    async def _finish_succeeded(self, job: Job, status: JobStatus) -> None:
        finished = st.now()
        if status.video_seconds:
            self.metrics.estimate_ratio.observe(status.video_seconds / max(job.estimate, 1e-3))
            self.estimator.learn(job.spec, status.video_seconds)
        self._close(job, Phase.SUCCEEDED, finished)
        await self.reporter.succeeded(job, status, finished=finished)
        self.timers.ttl(job.ref, job.spec, finished)

    async def _finish_failed(
        self, job: Job, error: ErrorInfo, *, phase: Phase = Phase.FAILED
    ) -> None:
        finished = st.now()
        self._close(job, phase, finished)
        if phase is Phase.FAILED:
            self.metrics.failures.labels(job.spec.pool, str(error.code)).inc()
        await self.reporter.failed(job, error, finished=finished, phase=phase)
        self.timers.ttl(job.ref, job.spec, finished)

    def _remember_ended(self, uid: str) -> None:
        self._ended_uids[uid] = None
        while len(self._ended_uids) > _ENDED_KEPT:
            self._ended_uids.popitem(last=False)

    def _close(self, job: Job, phase: Phase, finished: dt.datetime) -> None:
        self._remember_ended(job.uid)
        job.closed = True
        job.persisted.phase = phase
        Timers.cancel_deadline(job)
        self._queue(job).remove(job.uid)
        self.jobs.pop(job.uid, None)
        outcome = phase.lower()
        self.metrics.jobs.labels(outcome).inc()
        self.metrics.job_seconds.observe(max(0.0, (finished - job.created).total_seconds()))
        job.log.info("%s after %d attempt(s)", outcome, job.persisted.attempts)

    async def _expire(self, job: Job) -> None:
        if job.closed:
            return
        job.log.warning("deadline of %d s exceeded", job.spec.deadline_seconds or 0)
        job.closed = True  # no attempt's ending may write after this
        self._queue(job).remove(job.uid)
        pod = job.persisted.pod
        await _stop_following(job)
        if pod and job.persisted.phase is Phase.RUNNING:
            await self.attempts.cancel(job.ref, pod)
        message = f"not finished within deadlineSeconds={job.spec.deadline_seconds}"
        if job.reported.pool_missing:  # what it waited for all along
            message += f": pool {job.spec.pool!r} does not exist"
        error = ErrorInfo(code=ErrorCode.DEADLINE_EXCEEDED, message=message, retriable=False)
        job.closed = False
        await self._finish_failed(job, error)

    async def _positions_loop(self) -> None:
        """Move the front of each queue's positions forward, in a bounded number of writes.

        Positions change with every dispatch; writing them all each time would be a
        write storm with a long queue. The first ``queue_positions_top`` of each pool
        are brought up to date every ``queue_positions_seconds``; the rest keep the
        position they were queued at until they come near the front.
        """
        settings = self.settings.status
        while True:
            await asyncio.sleep(settings.queue_positions_seconds)
            for queue in list(self.queues.values()):
                front = queue.ordered()[: settings.queue_positions_top]
                for position, entry in enumerate(front):
                    job = self.jobs.get(entry.uid)
                    if job is None or job.closed or job.reported.position == position:
                        continue
                    if entry.uid not in queue:  # dispatched while we were writing
                        continue
                    await self.reporter.position(job, position)

    def oldest_waiting(self) -> dict[str, float]:
        """Per pool: seconds the longest-waiting video has waited (0: none waits)."""
        now = time.time()
        figures = dict.fromkeys(self.pods.pools(), 0.0)
        for pool, queue in self.queues.items():
            waiting = queue.waiting()
            figures[pool] = max(0.0, now - min(e.created for e in waiting)) if waiting else 0.0
        return figures

    def pool_figures(self) -> dict[str, tuple[int, float, int]]:
        """Per pool: jobs waiting, their estimated video seconds, jobs on pods (the gauges)."""
        figures: dict[str, tuple[int, float, int]] = dict.fromkeys(self.pods.pools(), (0, 0.0, 0))
        for pool, queue in self.queues.items():
            waiting = queue.waiting()
            seconds = sum(j.estimate for e in waiting if (j := self.jobs.get(e.uid)) is not None)
            figures[pool] = (len(waiting), seconds, 0)
        for job in self.jobs.values():
            if job.persisted.phase is Phase.RUNNING:
                depth, seconds, running = figures.get(job.spec.pool, (0, 0.0, 0))
                figures[job.spec.pool] = (depth, seconds, running + 1)
        return figures


async def _stop_following(job: Job) -> None:
    """End the task that follows the job's attempt, and wait until it has."""
    if job.handles.task is not None:
        job.handles.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job.handles.task
