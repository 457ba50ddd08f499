"""How many runtime pods a pool should have: a pure function of its signals and its memory.

GPUs are the bill, and a GPU costs the same idle as busy. The signals are the ones
that say how much work there is and how fast a pod does it, not how hot the GPU
runs (one request nearly saturates a GPU, so utilisation says little):

- the backlog, in seconds of video waiting (the operator's estimate), and the
  arrival rate, in seconds of video arriving per second (over the operator's
  throughput window, 300 s) with its standard error, which the policy averages further
  unless it moves further than its noise explains (``smoothed_arrivals``: noise is
  averaged away, a burst is not);
- each pod's measured throughput, in video seconds per second while busy
  (``rate(avatar_runtime_video_seconds_total)``): measured, not slots, because
  independent slots were measured to add almost no throughput on a GPU;
- which pods are busy, and which are still starting (they count as capacity on
  the way: not counting them is what makes KEDA's ScaledJob start duplicates), and
  how many slots a pod has (a waiting video needs a slot, not a pod).

The rules (each a property ``tests/unit/operator/scaling/test_policy.py`` checks):

- **within bounds:** ``min_replicas <= replicas <= max_replicas``, except that a busy pod
  is never removed to honour a lowered maximum (it goes once it is idle);
- **up at once:** enough pods to keep up with (smoothed) arrivals, plus a slot for each
  waiting video that their spare slots do not hold (no more than drain the backlog within
  ``target_wait_seconds``), counting starting pods; no stabilisation upwards;
- **down slowly:** the largest recommendation of the last ``scale_down_delay_seconds``
  wins, so a lull does not remove pods a burst will need again (the HPA's rule); a
  fresh memory (a new pool, an operator restart) counts the current size as a
  recommendation made now, so nothing goes before a whole window has been seen;
- **never below the busy pods:** a pod rendering a video is never a victim, and the
  victims are idle pods, starting ones first, then the longest idle;
- **to zero only after ``idle_before_zero_seconds`` without any work**, and back to at
  least one pod as soon as a video waits;
- **no flapping:** the same signals give the same decision, and repeating them changes
  nothing further.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PodSignal:
    name: str
    ready: bool
    """Serving: readiness passed and not being deleted."""
    busy_slots: int = 0
    slots: int = 1
    throughput: float | None = None
    """Measured video seconds per second while busy; None until measured."""
    idle_since: float | None = None
    """When the pod last had no busy slot (the clock of ``PoolSignals.now``); None if busy."""
    gpu_memory_used_bytes: float | None = None
    gpu_memory_total_bytes: float | None = None

    @property
    def busy(self) -> bool:
        return self.busy_slots > 0

    @property
    def starting(self) -> bool:
        return not self.ready


@dataclass(frozen=True, slots=True)
class PoolSignals:
    """One pool, now. Times are seconds on one monotonic clock."""

    now: float
    backlog_seconds: float
    """Seconds of video waiting for a slot."""
    queued: int
    """Videos waiting for a slot."""
    arrival_rate: float = 0.0
    """Seconds of video arriving per second, over the caller's window (the operator's
    ``scaling.throughput_window_seconds``)."""
    pods: tuple[PodSignal, ...] = ()
    arrival_rate_error: float = 0.0
    """The standard error of ``arrival_rate`` as a Poisson count of the window's videos
    would give it: sqrt(sum of their video seconds squared) / window. 0 for an empty
    window, or unknown (then every change of the rate is taken as it is)."""


@dataclass(frozen=True)
class PoolPolicy:
    """A pool's knobs (from its AvatarRuntimePool spec)."""

    min_replicas: int = 0
    max_replicas: int = 10
    target_wait_seconds: float = 120.0
    """The backlog is drained within this time (the wait a video should not exceed)."""
    scale_down_delay_seconds: float = 300.0
    idle_before_zero_seconds: float = 600.0
    headroom: float = 0.3
    """Square-root staffing: ``headroom * sqrt(load / slots)`` pods beyond the load (in
    pods), so small pools, where arrivals are lumpy, keep relatively more spare than large
    ones. Staffed in slots (a video waits for a slot, and a pod's slots share its
    throughput, so they are ``slots`` times as many servers at a ``slots``-th of the speed
    each): more slots absorb more of the lumps, and one slot is the pod rule."""
    arrival_smoothing_seconds: float = 900.0
    """The arrival rate is averaged over about this long (exponentially, in the memory).
    A rate over a few minutes is noisy (about 13% at 1,000 videos/h over 300 s), and the
    pool would follow its peaks for a whole scale-down window. 0: the rate as given."""
    arrival_jump: float = 4.0
    """A rate this many standard errors above or below the average is taken as it is: a
    burst or its end is no noise to average away. The noise is the window's own (a
    five-minute rate is about 4% noisy at 10,000 videos/h, 42% at 100), so a large pool
    follows a burst within seconds of its start, and a small one is not moved by a lumpy
    few minutes. Both knobs were chosen with the fleet simulator (``simulator/``,
    docs/scaling.md)."""
    prior_throughput: float = 0.18
    """Video seconds per second a pod is assumed to do until one has been measured
    (the seed's L4: XTTS-v2 0.71 + Ditto 4.8 = 5.51 s of GPU per video second)."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.target_wait_seconds <= 0 or self.prior_throughput <= 0:
            raise ValueError("target_wait_seconds and prior_throughput must be positive")
        if (
            self.scale_down_delay_seconds < 0
            or self.idle_before_zero_seconds < 0
            or self.arrival_smoothing_seconds < 0
        ):
            raise ValueError("delays cannot be negative")
        if self.arrival_jump <= 0:
            raise ValueError("arrival_jump must be positive")


@dataclass(frozen=True)
class PolicyMemory:
    """What the policy remembers between decisions (the caller keeps it, per pool)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, replicas wanted) within the scale-down window that could still be its
    largest: each is larger than every later one, so the first is the window's maximum."""
    last_work: float | None = None
    """The last time the pool had a video waiting or rendering."""
    arrival_rate: float | None = None
    """The smoothed arrival rate at the last decision (``smoothed_arrivals``)."""
    decided_at: float | None = None
    """When the last decision was made."""
    started: float | None = None
    """The first decision's time; None for a fresh memory (a new pool, a restart)."""
    arrival_noise: float | None = None
    """The arrival rate's variance per unit of rate, from the last window with videos
    (``arrival_noise``)."""
    throughput: float | None = None
    """The last measured throughput per pod: a pool at zero keeps what its pods did."""
    slots: int | None = None
    """The last known slots per pod, likewise."""


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    NONE = "none"


@dataclass(frozen=True)
class Decision:
    replicas: int
    direction: Direction
    reason: str
    """A stable word for the metric label (backlog, arrivals, busy, stabilising, idle,
    minimum, maximum, steady)."""
    message: str
    """The decision with its inputs, for the pool's status and the log."""
    victims: tuple[str, ...] = ()
    """Pods to remove for a scale-down: idle ones only, starting first, then the longest idle."""
    throughput_per_pod: float = 0.0
    memory: PolicyMemory = field(default_factory=PolicyMemory)
    wanted: int = 0
    """The replicas the load asks for now, before stabilisation and bounds."""


def _measured(signals: PoolSignals) -> list[float]:
    return sorted(p.throughput for p in signals.pods if p.throughput and p.throughput > 0)


def throughput_per_pod(
    signals: PoolSignals, policy: PoolPolicy, memory: PolicyMemory | None = None
) -> float:
    """The median measured throughput of the pool's pods; while none is measured (a pool
    at zero, its new pods), the last one measured (``memory``), else the prior."""
    measured = _measured(signals)
    if not measured:
        if memory is not None and memory.throughput is not None:
            return memory.throughput
        return policy.prior_throughput
    middle = len(measured) // 2
    if len(measured) % 2:
        return measured[middle]
    return (measured[middle - 1] + measured[middle]) / 2


def slots_per_pod(signals: PoolSignals, memory: PolicyMemory | None = None) -> int:
    """The most slots a pod of the pool reports; for a pool without pods, the last known
    (``memory``), else 1."""
    if signals.pods:
        return max(1, max(p.slots for p in signals.pods))
    return memory.slots if memory is not None and memory.slots else 1


def arrival_noise(signals: PoolSignals, memory: PolicyMemory) -> float | None:
    """The variance of the window's rate per unit of rate (error² / rate: a Poisson count's
    variance grows with its rate), from the caller's standard error when videos arrived in
    the window, else the last one seen; None when none has been."""
    if signals.arrival_rate > 0 and signals.arrival_rate_error > 0:
        return signals.arrival_rate_error**2 / signals.arrival_rate
    return memory.arrival_noise


def smoothed_arrivals(signals: PoolSignals, policy: PoolPolicy, memory: PolicyMemory) -> float:
    """An exponential average of the given arrival rate with time constant
    ``arrival_smoothing_seconds``, from the last decision's; the given rate itself for a
    fresh memory or when it is ``arrival_jump`` standard errors above or below the average.

    The standard error is a Poisson count's (``arrival_noise``), at the larger of the two
    rates, so that a jump is a change that neither the window's count nor the average's
    explains: a burst, or its end. An empty window is such a change only where the
    average expects many videos in it; at a few videos an hour it is no news, and the
    average decays (the pool still goes to zero by ``idle_before_zero_seconds``). With no
    error known (none given yet), every change is taken as it is."""
    given = max(signals.arrival_rate, 0.0)
    last, at = memory.arrival_rate, memory.decided_at
    if policy.arrival_smoothing_seconds <= 0 or last is None or at is None:
        return given
    noise = arrival_noise(signals, memory)
    error = 0.0 if noise is None else math.sqrt(max(given, last) * noise)
    if abs(given - last) > policy.arrival_jump * error:
        return given
    weight = 1 - math.exp(-max(0.0, signals.now - at) / policy.arrival_smoothing_seconds)
    return last + weight * (given - last)


def decide(signals: PoolSignals, policy: PoolPolicy, memory: PolicyMemory) -> Decision:
    """The pool's replicas now (see the module for the rules)."""
    now, pods = signals.now, signals.pods
    current = len(pods)
    rate = throughput_per_pod(signals, policy, memory)
    slots = slots_per_pod(signals, memory)
    busy = sum(1 for p in pods if p.busy_slots > 0)
    has_work = signals.queued > 0 or signals.backlog_seconds > 0 or busy > 0
    if has_work:
        last_work = now
    elif memory.last_work is not None:
        last_work = memory.last_work
    else:  # nothing remembered (a restart): the pods' own idle clocks, else idle from now
        last_work = max((p.idle_since for p in pods if p.idle_since is not None), default=now)

    # Pods to keep up with arrivals: their load and a square-root headroom, in slots.
    arrivals = smoothed_arrivals(signals, policy, memory)
    load = arrivals / rate
    sustain = max(0.0, load + policy.headroom * math.sqrt(load / slots))
    # Slots for the videos waiting. A waiting video needs one slot, no more (a pod does
    # not go faster for the videos behind it), and the work waiting needs no more slots
    # than drain it within the target wait.
    drain = max(signals.backlog_seconds, 0.0) / (rate * policy.target_wait_seconds) * slots
    waiting = min(float(signals.queued), drain) if signals.queued > 0 else drain
    # Waiting videos take the slots that the arrivals' pods hold beyond the videos rendering
    # first: they are among the arrivals the average counts, and adding them on top
    # counted them twice (a video reaching an idle pool started two pods). The rest, and
    # all of them while the pool is busier than the arrivals explain, ask for more pods.
    free = max(0.0, sustain * slots - sum(p.busy_slots for p in pods))
    beyond = max(0.0, waiting - free) / slots
    wanted = max(math.ceil(sustain + beyond - 1e-9), busy, 1 if signals.queued > 0 else 0)
    if beyond > 0 and beyond >= sustain:
        reason = "backlog"
    else:
        reason = "arrivals" if sustain > 0 else "busy"
    gone_idle = not has_work and now - last_work >= policy.idle_before_zero_seconds
    if gone_idle and signals.arrival_rate <= 0:
        # No video waited or rendered for the idle time, and none arrived in the window:
        # the average of arrivals is of videos long done, no reason to stay.
        wanted = 0
    elif wanted == 0 and not has_work:
        wanted, reason = min(current, 1), "idle"  # warm until the idle time passes

    if gone_idle and wanted == 0:
        recommendations: tuple[tuple[float, int], ...] = ()
        target, reason = 0, "idle"
    else:
        # Down slowly: the largest recommendation within the window wins.
        window_start = now - policy.scale_down_delay_seconds
        # A fresh memory has seen no window: the current size counts as a recommendation
        # made now, so nothing goes before a whole window has passed.
        seen = memory.recommendations if memory.started is not None else ((now, current),)
        kept = tuple((t, r) for t, r in seen if t > window_start)
        recommendations = (*((t, r) for t, r in kept if r > wanted), (now, wanted))
        if wanted >= current:
            target = wanted  # up (or hold) at once
        else:
            target = min(current, max(r for _, r in recommendations))
            if target > wanted:
                reason = "stabilising"
    if target < policy.min_replicas:
        target, reason = policy.min_replicas, "minimum"
    capped = target > policy.max_replicas
    if capped:
        # Up to the cap keeps its cause (the backlog still asks for more); down to it is
        # the cap's doing (a lowered maxReplicas).
        target = policy.max_replicas
        if target < current:
            reason = "maximum"

    victims: tuple[str, ...] = ()
    if target < current:
        victims = tuple(p.name for p in _idle_first(pods)[: current - target])
    replicas = target if target >= current else current - len(victims)
    direction = (
        Direction.UP
        if replicas > current
        else Direction.DOWN
        if replicas < current
        else Direction.NONE
    )
    if direction is Direction.NONE:
        reason = "steady"
    message = (
        f"{replicas} replicas ({direction}, {reason}): backlog {signals.backlog_seconds:.0f} s of"
        f" video in {signals.queued} videos, arrivals {signals.arrival_rate:.2f} s/s"
        f" (smoothed {arrivals:.2f}),"
        f" {busy} busy of {current} pods, {rate:.3f} video s/s per pod"
        + (f" ({slots} slots)" if slots > 1 else "")
        + (f"; {wanted} wanted, capped at maxReplicas {policy.max_replicas}" if capped else "")
    )
    return Decision(
        replicas=replicas,
        direction=direction,
        reason=reason,
        message=message,
        victims=victims,
        throughput_per_pod=rate,
        memory=PolicyMemory(
            recommendations=recommendations,
            last_work=last_work,
            started=now if memory.started is None else memory.started,
            arrival_rate=arrivals,
            decided_at=now,
            arrival_noise=arrival_noise(signals, memory),
            throughput=rate if any(p.throughput for p in pods) else memory.throughput,
            slots=slots if pods else memory.slots,
        ),
        wanted=wanted,
    )


def _idle_first(pods: Iterable[PodSignal]) -> list[PodSignal]:
    """Idle pods in the order they should go: starting ones, then the longest idle."""
    idle = (p for p in pods if p.busy_slots <= 0)
    return sorted(idle, key=lambda p: (p.ready, math.inf if p.idle_since is None else p.idle_since))


def slots_for(
    pods: Iterable[PodSignal], *, per_slot_bytes: float, margin_bytes: float, max_slots: int
) -> int | None:
    """Slots per pod for ``slots: auto``, from the pods' measured GPU memory: each pod's
    loaded slots plus as many more renderers as its free memory holds beside a margin,
    capped; the pool takes the smallest (the runtime's ``slots_after_load`` rule, seen
    from the operator). None until a pod has reported its memory.

    More slots do not change the replicas: the policy counts measured throughput, and
    independent slots add almost none; they let short videos overtake long ones.
    """
    fits = [
        max(1, min(max_slots, p.slots + int((total - used - margin_bytes) // per_slot_bytes)))
        for p in pods
        if (total := p.gpu_memory_total_bytes) is not None
        and (used := p.gpu_memory_used_bytes) is not None
    ]
    return min(fits) if fits else None
