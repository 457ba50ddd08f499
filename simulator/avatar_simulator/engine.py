"""The event loop: videos queue, pods render them, a controller sizes the pool.

One pool, one queue (oldest first; an interrupted video goes back to the front, as the
operator retries it before younger ones), pods with slots (processor sharing at the
measured speed-up), nodes from ``fleet``. Events sit on a ``heapq`` in time order; the
arrival trace is merged in rather than pushed, and a pod's finish event is replaced, not
searched for, when its jobs change (each carries the pod's version). The controller is
called every ``interval_s`` and at once when a video reaches a pool with no pods.

What counts: every video's wait (queued seconds, over all its attempts), the videos
never finished (lost), those interrupted (a busy pod removed or preempted) and the GPU
time they threw away, and the nodes' bill. Videos arriving in the warm-up (before 0)
load the fleet but are not counted, and billing starts at 0.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass

from avatar_operator import settings
from avatar_operator.scaling import policy
from avatar_simulator import control, fleet, service
from avatar_simulator.arrivals import Trace

FINISH, NODE_READY, POD_READY, KILL, EXPIRE, PREEMPT, TICK, WAKE, SAMPLE = range(9)


@dataclass(frozen=True)
class RunConfig:
    start: float = -3600.0
    """The warm-up begins (negative: before the day that counts)."""
    end: float = 86_400.0
    drain_limit_s: float = 6 * 3600.0
    """After ``end``, how long to wait for the last videos before calling them lost."""
    sample_s: float = 60.0
    arrival_window_s: float = settings.ScalingSettings().throughput_window_seconds
    """The arrival rate the policy reads is measured over this window (the operator's)."""


@dataclass(frozen=True)
class Sample:
    t: float
    pods: int
    ready: int
    busy: int
    queued: int
    backlog_s: float


@dataclass(frozen=True)
class Result:
    waits: tuple[float, ...]
    """Counted videos' waits, sorted."""
    counted: int
    lost: int
    interrupted: int
    wasted_gpu_s: float
    bill: fleet.Bill
    samples: tuple[Sample, ...]
    end: float


class Job:
    __slots__ = (
        "arrival", "interruptions", "queued_at", "remaining", "video", "waited", "wasted", "work",
    )  # fmt: skip

    def __init__(self, arrival: float, video: float, work: float) -> None:
        self.arrival = self.queued_at = arrival
        self.video = video
        self.work = self.remaining = work
        self.waited = self.wasted = 0.0
        self.interruptions = 0


class Pod:
    __slots__ = (
        "busy_since", "busy_time", "created", "idle_since", "jobs", "name", "node", "preempted",
        "rate", "ready", "ready_at", "removed", "signal", "throughput", "updated", "version",
        "video_done",
    )  # fmt: skip

    def __init__(self, name: str, node: fleet.Node, now: float) -> None:
        self.name = name
        self.node = node
        self.created = self.updated = now
        self.ready = self.removed = self.preempted = False
        self.ready_at = 0.0
        self.jobs: list[Job] = []
        self.rate = 1.0
        self.version = 0
        self.busy_since = self.busy_time = self.video_done = 0.0
        self.idle_since: float | None = None
        self.throughput: float | None = None
        self.signal: policy.PodSignal | None = None


class Engine:
    def __init__(
        self,
        *,
        trace: Trace,
        service_model: service.ServiceModel,
        fleet_model: fleet.FleetModel,
        controller: control.Controller,
        config: RunConfig,
        seed: int,
    ) -> None:
        works = service.works(trace.videos, service_model, seed=seed)
        self.jobs = [Job(t, v, w) for t, v, w in zip(trace.times, trace.videos, works, strict=True)]
        self.service = service_model
        self.slots = service_model.slots
        self.fleet = fleet.Fleet(fleet_model, random.Random(f"fleet-{seed}"))
        self.lag = fleet_model.lag
        self.controller = controller
        self.config = config
        self.now = config.start
        self.queue: deque[Job] = deque()
        self.backlog = 0.0
        self.running = 0
        self.pods: dict[str, Pod] = {}
        self.free: list[dict[Pod, None]] = [{} for _ in range(self.slots)]
        self.desired = 0
        self.completed = 0
        self.waits: list[float] = []
        self.samples: list[Sample] = []
        self._arrived: deque[tuple[float, float]] = deque()
        self._arrived_sum = 0.0
        self._arrived_squares = 0.0
        self._events: list[tuple[float, int, int, object, object]] = []
        self._seq = itertools.count()
        self._names = itertools.count()
        self._last_finish = config.start
        self._lags: deque[fleet.Lag] = deque()

    # -- the view controllers read ------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self.queue)

    @property
    def pod_count(self) -> int:
        return len(self.pods)

    def signals(self) -> policy.PoolSignals:
        self._forget_arrivals()
        pods = tuple(p.signal or self._signal(p) for p in self.pods.values())
        return policy.PoolSignals(
            now=self.now,
            backlog_seconds=self.backlog if self.queue else 0.0,
            queued=len(self.queue),
            arrival_rate=max(0.0, self._arrived_sum) / self.config.arrival_window_s,
            arrival_rate_error=math.sqrt(max(0.0, self._arrived_squares))
            / self.config.arrival_window_s,
            pods=pods,
        )

    def _forget_arrivals(self) -> None:
        """Drop arrivals older than the window from the running sums (of video seconds, and
        of their squares for the rate's standard error); an empty window sums to exactly 0
        (as the operator's fresh sum does), not to a rounding residue that a policy would
        read as a video arriving."""
        horizon = self.now - self.config.arrival_window_s
        arrived = self._arrived
        while arrived and arrived[0][0] < horizon:
            video = arrived.popleft()[1]
            self._arrived_sum -= video
            self._arrived_squares -= video * video
        if not arrived:
            self._arrived_sum = self._arrived_squares = 0.0

    def idle_pods(self) -> list[str]:
        idle = [p for p in self.pods.values() if not p.jobs]
        idle.sort(key=lambda p: (p.ready, p.idle_since if p.idle_since is not None else 1e18))
        return [p.name for p in idle]

    def _signal(self, pod: Pod) -> policy.PodSignal:
        pod.signal = policy.PodSignal(
            name=pod.name,
            ready=pod.ready,
            busy_slots=len(pod.jobs),
            slots=self.slots,
            throughput=pod.throughput,
            idle_since=pod.idle_since,
        )
        return pod.signal

    # -- the loop -----------------------------------------------------------------------

    def _push(self, t: float, kind: int, obj: object = None, token: object = None) -> None:
        heapq.heappush(self._events, (t, next(self._seq), kind, obj, token))

    def run(self) -> Result:
        config, jobs = self.config, self.jobs
        self._apply(self.controller.start(self))
        interval = self.controller.interval_s
        if interval is not None:
            self._push(config.start + interval, TICK)
        for t in self.controller.wake_times():
            self._push(t, WAKE)
        self._push(config.start, SAMPLE)
        events, index, total = self._events, 0, len(jobs)
        stop_at = config.end + config.drain_limit_s
        handlers = {
            FINISH: self._on_finish,
            NODE_READY: self._on_node_ready,
            POD_READY: self._on_pod_ready,
            KILL: self._on_kill,
            EXPIRE: self._on_expire,
            PREEMPT: self._on_preempt,
        }
        while True:
            next_arrival = jobs[index].arrival if index < total else float("inf")
            if events and events[0][0] <= next_arrival:
                t, _, kind, obj, token = heapq.heappop(events)
            else:
                t, kind, obj, token = next_arrival, -1, jobs[index], None
                index += 1
            if t > stop_at or (self.completed == total and t >= config.end):
                break
            self.now = t
            if kind == -1:
                assert isinstance(obj, Job)
                self._on_arrival(obj)
            elif kind == TICK:
                self._apply(self.controller.control(self))
                assert interval is not None
                self._push(t + interval, TICK)
            elif kind == WAKE:
                self._apply(self.controller.control(self))
            elif kind == SAMPLE:
                self._sample()
                self._push(t + config.sample_s, SAMPLE)
            else:
                handlers[kind](obj, token)
        end = max(config.end, self._last_finish)
        counted = [j for j in jobs if 0 <= j.arrival < config.end]
        return Result(
            waits=tuple(sorted(self.waits)),
            counted=len(counted),
            lost=total - self.completed,
            interrupted=sum(1 for j in jobs if j.interruptions),
            wasted_gpu_s=sum(j.wasted for j in jobs),
            bill=self.fleet.bill(start=0.0, end=end),
            samples=tuple(self.samples),
            end=end,
        )

    def _sample(self) -> None:
        pods = self.pods.values()
        self.samples.append(
            Sample(
                t=self.now,
                pods=len(self.pods),
                ready=sum(1 for p in pods if p.ready),
                busy=sum(1 for p in pods if p.jobs),
                queued=len(self.queue),
                backlog_s=self.backlog if self.queue else 0.0,
            )
        )

    # -- videos -------------------------------------------------------------------------

    def _on_arrival(self, job: Job) -> None:
        self._arrived.append((self.now, job.video))
        self._arrived_sum += job.video
        self._arrived_squares += job.video * job.video
        self._forget_arrivals()
        self._enqueue(job, front=False)
        if not self.pods:
            self._apply(self.controller.on_empty_arrival(self))
        self._dispatch()

    def _enqueue(self, job: Job, *, front: bool) -> None:
        job.queued_at = self.now
        if front:
            self.queue.appendleft(job)
        else:
            self.queue.append(job)
        self.backlog += job.video

    def _dispatch(self) -> None:
        queue, free = self.queue, self.free
        while queue:
            pod = None
            for bucket in free:
                if bucket:
                    pod = next(reversed(bucket))  # the most recently freed: idle ones stay idle
                    break
            if pod is None:
                return
            job = queue.popleft()
            self.backlog -= job.video
            self._start(job, pod)
        self.backlog = 0.0

    def _start(self, job: Job, pod: Pod) -> None:
        now = self.now
        job.waited += now - job.queued_at
        self._advance(pod)
        self._unlist(pod)
        if not pod.jobs:
            pod.busy_since = now
            pod.idle_since = None
        pod.jobs.append(job)
        self.running += 1
        self._list(pod)
        self._reschedule(pod)
        pod.signal = None

    def _advance(self, pod: Pod) -> None:
        elapsed = self.now - pod.updated
        if elapsed > 0 and pod.jobs:
            done = elapsed * pod.rate
            for job in pod.jobs:
                job.remaining -= done
        pod.updated = self.now

    def _reschedule(self, pod: Pod) -> None:
        pod.version += 1
        if pod.jobs:
            pod.rate = self.service.job_rate(len(pod.jobs))
            soonest = min(j.remaining for j in pod.jobs)
            self._push(self.now + max(0.0, soonest) / pod.rate, FINISH, pod, pod.version)

    def _on_finish(self, pod: object, version: object) -> None:
        assert isinstance(pod, Pod)
        if version != pod.version:
            return
        self._advance(pod)
        self._unlist(pod)
        finished = [j for j in pod.jobs if j.remaining <= 1e-6]
        pod.jobs = [j for j in pod.jobs if j.remaining > 1e-6]
        for job in finished:
            self.running -= 1
            self.completed += 1
            self._last_finish = self.now
            pod.video_done += job.video
            if 0 <= job.arrival < self.config.end:
                self.waits.append(job.waited)
        busy_time = pod.busy_time + (self.now - pod.busy_since)
        pod.throughput = pod.video_done / busy_time if busy_time > 0 else None
        if not pod.jobs:
            pod.busy_time = busy_time
            pod.idle_since = self.now
        else:
            pod.busy_time, pod.busy_since = busy_time, self.now
        pod.signal = None
        self._reschedule(pod)
        if pod.removed:
            if not pod.jobs:
                self._exit(pod)
        else:
            self._list(pod)
        self._dispatch()

    # -- the pool's free slots ----------------------------------------------------------

    def _list(self, pod: Pod) -> None:
        if pod.ready and not pod.removed and len(pod.jobs) < self.slots:
            self.free[len(pod.jobs)][pod] = None

    def _unlist(self, pod: Pod) -> None:
        if len(pod.jobs) < self.slots:
            self.free[len(pod.jobs)].pop(pod, None)

    # -- pods and nodes -----------------------------------------------------------------

    def _apply(self, command: control.Command | None) -> None:
        if command is None:
            return
        self.desired = max(0, command.replicas)
        self._lags = deque(command.lags)
        if command.victims is not None:
            for name in command.victims:
                pod = self.pods.get(name)
                if pod is not None and not pod.jobs:
                    self._remove(pod)
        self._reconcile(replica_set_chooses=command.victims is None)
        self._lags.clear()

    def _reconcile(self, *, replica_set_chooses: bool) -> None:
        """The Deployment: new pods up to the replicas; with no victims named, the
        ReplicaSet removes the surplus: unscheduled, then starting, then the most
        recently ready pods, busy or not (no deletion cost is set)."""
        for _ in range(self.desired - len(self.pods)):
            self._create()
        surplus = len(self.pods) - self.desired
        if surplus > 0 and replica_set_chooses:
            ranked = sorted(
                self.pods.values(),
                key=lambda p: (
                    p.ready,
                    p.node.state != fleet.PROVISIONING,
                    -p.ready_at,
                    -p.created,
                ),
            )
            for pod in ranked[:surplus]:
                self._remove(pod)

    def _create(self) -> None:
        now = self.now
        node = self.fleet.reusable()
        if node is None:
            node = self.fleet.request(now, self._lags.popleft() if self._lags else None)
            self._push(node.ready_at, NODE_READY, node)
        pod = Pod(f"pod-{next(self._names)}", node, now)
        node.pod = pod
        if node.state == fleet.EMPTY:
            node.state = fleet.OCCUPIED
            self._push(now + self.lag.warm_start(self.fleet.rng), POD_READY, pod)
        self.pods[pod.name] = pod

    def _on_node_ready(self, node: object, _: object) -> None:
        assert isinstance(node, fleet.Node)
        if node.state == fleet.GONE:
            return
        after = self.fleet.preemption_after() if node.spot else None
        if after is not None:
            self._push(self.now + after, PREEMPT, node)
        if isinstance(node.pod, Pod):
            node.state = fleet.OCCUPIED
            self.fleet.unbound.pop(node, None)
            self._push(self.now + node.lag.pod_start, POD_READY, node.pod)
        else:  # its pod went while it started: empty now, until the autoscaler removes it
            self.fleet.unbound.pop(node, None)
            node.state = fleet.OCCUPIED
            self._vacate(node)

    def _on_pod_ready(self, pod: object, _: object) -> None:
        assert isinstance(pod, Pod)
        if pod.removed:
            return
        pod.ready = True
        pod.ready_at = pod.idle_since = self.now
        pod.signal = None
        self._list(pod)
        self._dispatch()

    def _vacate(self, node: fleet.Node) -> None:
        if self.fleet.vacate(node, self.now):
            self._push(self.now + self.fleet.model.linger_s, EXPIRE, node, self.now)

    def _on_expire(self, node: object, since: object) -> None:
        assert isinstance(node, fleet.Node)
        if self.fleet.empty.get(node) == since:
            self.fleet.remove(node, self.now)

    def _remove(self, pod: Pod, *, grace: float | None = None) -> None:
        """The pod is deleted: at once when idle; a busy one is told to stop and killed
        after its grace (its videos finish only if they can in that time)."""
        if pod.removed:
            return
        pod.removed = True
        self.pods.pop(pod.name, None)
        self._unlist(pod)
        if not pod.jobs:
            self._exit(pod)
            return
        wait = self.fleet.model.grace_s if grace is None else grace
        self._push(self.now + wait, KILL, pod)

    def _on_kill(self, pod: object, _: object) -> None:
        assert isinstance(pod, Pod)
        if not pod.jobs:
            return
        self._advance(pod)
        for job in pod.jobs:
            self.running -= 1
            job.interruptions += 1
            job.wasted += job.work - job.remaining
            job.remaining = job.work
            self._enqueue(job, front=True)
        pod.jobs = []
        pod.version += 1
        self._exit(pod)
        self._dispatch()

    def _exit(self, pod: Pod) -> None:
        node = pod.node
        if node.pod is pod and node.state != fleet.GONE:
            self._vacate(node)

    def _on_preempt(self, node: object, _: object) -> None:
        assert isinstance(node, fleet.Node)
        if node.state == fleet.GONE:
            return
        spot = self.fleet.model.spot
        assert spot is not None
        pod = node.pod
        self.fleet.remove(node, self.now + spot.notice_s)
        if isinstance(pod, Pod) and not pod.removed:
            pod.preempted = True
            self._remove(pod, grace=spot.pod_notice_s)
            self._reconcile(replica_set_chooses=False)  # the Deployment replaces it
