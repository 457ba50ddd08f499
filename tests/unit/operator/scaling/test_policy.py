"""The scaling policy's rules as properties (hypothesis), and a few cases a person checks.

``decide`` is a pure function, so every rule the module states is checked over random
pools, signals and memories: the bounds, never below the busy pods, victims only idle,
monotone in the backlog, enough pods to drain within the target wait, starting pods
count as capacity, down only after the stabilisation window, to zero only after the idle
time, back to at least one pod on the first queued video, and no flapping under a
constant load. Then the cases: the arrival rate's average follows a move beyond the
window's noise (a burst) and not one within it, slots staff the queue, waiting videos
take the free slots of the pods the arrivals need first, and a pool at zero
keeps what its pods measured.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from avatar_operator.scaling.policy import (
    Decision,
    Direction,
    PodSignal,
    PolicyMemory,
    PoolPolicy,
    PoolSignals,
    decide,
    slots_for,
    slots_per_pod,
    smoothed_arrivals,
    throughput_per_pod,
)

NOW = 10_000.0
GIB = 1024**3


@st.composite
def policies(draw: st.DrawFn) -> PoolPolicy:
    low = draw(st.integers(0, 4))
    return PoolPolicy(
        min_replicas=low,
        max_replicas=draw(st.integers(low, 12)),
        target_wait_seconds=draw(st.sampled_from([5.0, 60.0, 120.0, 300.0])),
        scale_down_delay_seconds=draw(st.sampled_from([0.0, 30.0, 300.0, 600.0])),
        idle_before_zero_seconds=draw(st.sampled_from([0.0, 60.0, 600.0])),
        headroom=draw(st.sampled_from([0.0, 0.3, 1.0])),
    )


@st.composite
def pod_lists(draw: st.DrawFn, *, max_size: int = 8) -> tuple[PodSignal, ...]:
    count = draw(st.integers(0, max_size))
    pods = []
    for i in range(count):
        ready = draw(st.booleans())
        busy = draw(st.integers(0, 2)) if ready else 0
        pods.append(
            PodSignal(
                name=f"pod-{i}",
                ready=ready,
                busy_slots=busy,
                slots=2,
                throughput=draw(st.none() | st.floats(0.05, 2.0)),
                idle_since=None if busy else NOW - draw(st.floats(0, 2000)),
            )
        )
    return tuple(pods)


@st.composite
def signals(draw: st.DrawFn) -> PoolSignals:
    queued = draw(st.integers(0, 500))
    backlog = 0.0 if queued == 0 else draw(st.floats(1.0, 30.0)) * queued
    return PoolSignals(
        now=NOW,
        backlog_seconds=backlog,
        queued=queued,
        arrival_rate=draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, 5.0])),
        pods=draw(pod_lists()),
    )


@st.composite
def memories(draw: st.DrawFn) -> PolicyMemory:
    """A memory as ``decide`` leaves it: strictly decreasing replicas, oldest first."""
    ages = sorted(draw(st.lists(st.floats(1, 900), max_size=4, unique=True)), reverse=True)
    wanted = sorted(draw(st.lists(st.integers(0, 12), min_size=len(ages), max_size=len(ages),
                                  unique=True)), reverse=True)  # fmt: skip
    last_work = draw(st.none() | st.floats(0, 2000).map(lambda age: NOW - age))
    return PolicyMemory(
        recommendations=tuple((NOW - age, r) for age, r in zip(ages, wanted, strict=True)),
        last_work=last_work,
    )


def _busy(s: PoolSignals) -> int:
    return sum(1 for p in s.pods if p.busy)


def _has_work(s: PoolSignals) -> bool:
    return s.queued > 0 or _busy(s) > 0


@settings(max_examples=400, database=None, deadline=None)
@given(signals(), policies(), memories())
def test_every_decision_keeps_the_rules(s: PoolSignals, p: PoolPolicy, m: PolicyMemory) -> None:
    d = decide(s, p, m)
    current, busy = len(s.pods), _busy(s)
    busy_names = {pod.name for pod in s.pods if pod.busy}
    # Bounds: never above the maximum except to keep busy pods; never below the minimum.
    assert p.min_replicas <= d.replicas <= max(p.max_replicas, busy)
    # Never below the busy pods (a rendering pod is never a victim), only idle victims.
    assert d.replicas >= busy
    assert not set(d.victims) & busy_names
    assert set(d.victims) <= {pod.name for pod in s.pods}
    assert len(set(d.victims)) == len(d.victims)
    # The direction, the victims and the count agree.
    if d.direction is Direction.DOWN:
        assert d.replicas == current - len(d.victims) < current
    else:
        assert d.victims == ()
        assert (d.replicas > current) == (d.direction is Direction.UP)
    # Enough pods to drain the backlog within the target wait (a waiting video uses one
    # slot: the queue fills queued / slots pods).
    rate = throughput_per_pod(s, p, m)
    drain = min(s.backlog_seconds / (rate * p.target_wait_seconds), s.queued / slots_per_pod(s))
    assert d.replicas >= min(p.max_replicas, math.ceil(drain - 1e-9))
    # Back to at least one pod on the first queued video.
    if s.queued:
        assert d.replicas >= min(1, p.max_replicas)
    # To zero only with no work for the idle time.
    if d.replicas == 0 and current > 0 and p.max_replicas > 0:
        assert not _has_work(s)
        assert d.reason == "idle"
        if m.last_work is not None:
            assert NOW - m.last_work >= p.idle_before_zero_seconds
    assert d.reason in {"backlog", "arrivals", "busy", "stabilising", "idle", "minimum",
                        "maximum", "steady"}  # fmt: skip
    assert d.message.startswith(f"{d.replicas} replicas ({d.direction}")


@settings(max_examples=300, database=None, deadline=None)
@given(signals(), policies(), memories(), st.integers(0, 400), st.floats(1.0, 4.0))
def test_more_backlog_never_means_fewer_pods(
    s: PoolSignals, p: PoolPolicy, m: PolicyMemory, more: int, longer: float
) -> None:
    queued = s.queued + more
    backlog = s.backlog_seconds * longer + 20.0 * more
    assume(queued > 0)
    bigger = dataclasses.replace(s, queued=queued, backlog_seconds=backlog)
    assert decide(bigger, p, m).replicas >= decide(s, p, m).replicas


@settings(max_examples=300, database=None, deadline=None)
@given(signals(), policies(), memories(), st.data())
def test_starting_pods_count_as_capacity(
    s: PoolSignals, p: PoolPolicy, m: PolicyMemory, data: st.DataObject
) -> None:
    """An idle pod still starting counts as much as a serving one: nothing extra asked for
    (what makes KEDA's ScaledJob start duplicates)."""
    idle = [pod for pod in s.pods if pod.ready and not pod.busy]
    assume(idle)
    pod = data.draw(st.sampled_from(idle))
    starting = dataclasses.replace(pod, ready=False)
    other = dataclasses.replace(s, pods=tuple(starting if q is pod else q for q in s.pods))
    assert decide(other, p, m).replicas == decide(s, p, m).replicas


def _run(
    p: PoolPolicy,
    *,
    replicas: int,
    queued: int,
    backlog: float,
    arrivals: float,
    steps: int,
    every: float = 10.0,
    start: float = NOW,
) -> list[Decision]:
    """Decisions every ``every`` seconds under a constant load, the pool following each."""
    memory, decisions = PolicyMemory(), []
    for step in range(steps):
        now = start + step * every
        pods = tuple(
            PodSignal(name=f"pod-{i}", ready=True, idle_since=start)  # the prior's throughput
            for i in range(replicas)
        )
        d = decide(PoolSignals(now, backlog, queued, arrivals, pods), p, memory)
        memory, replicas = d.memory, d.replicas
        decisions.append(d)
    return decisions


@settings(max_examples=200, database=None, deadline=None)
@given(
    policies(),
    st.integers(0, 12),
    st.integers(0, 200),
    st.sampled_from([0.0, 0.2, 1.0, 3.0]),
)
def test_no_flapping_under_constant_load(
    p: PoolPolicy, replicas: int, queued: int, arrivals: float
) -> None:
    """A constant load moves the pool one way (up, or down as windows pass), never back."""
    backlog = 30.0 * queued
    counts = [d.replicas for d in _run(p, replicas=replicas, queued=queued, backlog=backlog,
                                       arrivals=arrivals, steps=150)]  # fmt: skip
    moves = {(b > a) - (b < a) for a, b in zip([replicas, *counts], counts, strict=False)} - {0}
    assert len(moves) <= 1, counts
    # Once settled, repeating the same signals changes nothing further.
    assert counts[-1] == counts[-2] == counts[-3]


def test_up_at_once_down_only_after_the_window() -> None:
    p = PoolPolicy(max_replicas=20, target_wait_seconds=60, scale_down_delay_seconds=300,
                   idle_before_zero_seconds=900, headroom=0.0)  # fmt: skip
    burst = _run(p, replicas=1, queued=100, backlog=100 * 30.0, arrivals=0.0, steps=1)[0]
    # 3,000 s of video at 0.18 s/s per pod within 60 s: 278 pods wanted, 20 at once.
    assert (burst.replicas, burst.direction, burst.reason) == (20, Direction.UP, "backlog")
    assert "capped at maxReplicas 20" in burst.message
    memory, t = burst.memory, NOW
    pods = tuple(PodSignal(f"pod-{i}", ready=True, throughput=0.5, busy_slots=1) for i in range(4))
    pods += tuple(
        PodSignal(f"idle-{i}", ready=True, throughput=0.5, idle_since=NOW) for i in range(16)
    )
    # The burst is taken: 4 pods still render; the 16 idle ones stay for the window.
    while t < NOW + 290:
        t += 10
        d = decide(PoolSignals(t, 0.0, 0, 0.0, pods), p, memory)
        memory = d.memory
        assert d.replicas == 20, (t, d.message)
        assert d.reason in ("stabilising", "steady")
    t = NOW + 310
    d = decide(PoolSignals(t, 0.0, 0, 0.0, pods), p, memory)
    assert (d.replicas, d.direction) == (4, Direction.DOWN)
    assert sorted(d.victims) == sorted(f"idle-{i}" for i in range(16))


def test_to_zero_only_after_the_idle_time_and_back_on_the_first_video() -> None:
    p = PoolPolicy(scale_down_delay_seconds=60, idle_before_zero_seconds=600)
    pods = (PodSignal("pod-0", ready=True, throughput=0.5, idle_since=NOW),)
    memory = PolicyMemory(last_work=NOW)
    for after in (60, 300, 599):
        d = decide(PoolSignals(NOW + after, 0.0, 0, 0.0, pods), p, memory)
        assert d.replicas == 1, after  # warm until the idle time passes
    d = decide(PoolSignals(NOW + 600, 0.0, 0, 0.0, pods), p, memory)
    assert (d.replicas, d.reason, d.victims) == (0, "idle", ("pod-0",))
    back = decide(PoolSignals(NOW + 700, 25.0, 1, 0.0, ()), p, d.memory)
    assert (back.replicas, back.direction) == (1, Direction.UP)


def test_a_restarted_operator_waits_a_whole_window_before_removing_pods() -> None:
    """No memory (the operator restarted): the current size counts as a recommendation."""
    p = PoolPolicy(scale_down_delay_seconds=300, idle_before_zero_seconds=3600)
    pods = tuple(PodSignal(f"pod-{i}", ready=True, idle_since=NOW - 10) for i in range(5))
    first = decide(PoolSignals(NOW, 0.0, 0, 0.0, pods), p, PolicyMemory())
    assert first.replicas == 5
    later = decide(PoolSignals(NOW + 301, 0.0, 0, 0.0, pods), p, first.memory)
    assert later.replicas < 5


def test_victims_are_starting_pods_first_then_the_longest_idle() -> None:
    p = PoolPolicy(scale_down_delay_seconds=0, idle_before_zero_seconds=3600)
    pods = (
        PodSignal("busy", ready=True, busy_slots=1),
        PodSignal("idle-long", ready=True, idle_since=NOW - 500),
        PodSignal("idle-short", ready=True, idle_since=NOW - 5),
        PodSignal("starting", ready=False),
    )
    d = decide(PoolSignals(NOW, 0.0, 0, 0.0, pods), p, PolicyMemory(last_work=NOW))
    assert d.replicas == 1
    assert d.victims == ("starting", "idle-long", "idle-short")


def test_a_lowered_maximum_keeps_busy_pods_until_idle() -> None:
    p = PoolPolicy(max_replicas=1, scale_down_delay_seconds=0)
    pods = tuple(PodSignal(f"pod-{i}", ready=True, busy_slots=1) for i in range(3))
    d = decide(PoolSignals(NOW, 0.0, 0, 0.0, pods), p, PolicyMemory())
    assert (d.replicas, d.victims) == (3, ())


def test_measured_throughput_replaces_the_prior() -> None:
    p = PoolPolicy(prior_throughput=0.2)
    unmeasured = PoolSignals(NOW, 0.0, 0, pods=(PodSignal("a", ready=True),))
    assert throughput_per_pod(unmeasured, p) == 0.2
    measured = PoolSignals(
        NOW,
        0.0,
        0,
        pods=tuple(
            PodSignal(n, True, throughput=t)
            for n, t in (("a", 0.1), ("b", 0.4), ("c", 3.0), ("d", 0.6))
        ),
    )
    assert throughput_per_pod(measured, p) == pytest.approx(0.5)  # the median, not the mean


def test_auto_slots_from_measured_gpu_memory() -> None:
    pods = [
        PodSignal(
            "a", True, slots=1, gpu_memory_used_bytes=10 * GIB, gpu_memory_total_bytes=24 * GIB
        ),
        PodSignal("b", True, slots=1),  # not reported yet
    ]
    # 14 GiB free, 2 GiB kept aside, 4 GiB a renderer: 3 more beside the loaded one.
    assert slots_for(pods, per_slot_bytes=4 * GIB, margin_bytes=2 * GIB, max_slots=8) == 4
    assert slots_for(pods, per_slot_bytes=4 * GIB, margin_bytes=2 * GIB, max_slots=2) == 2
    assert slots_for(pods[1:], per_slot_bytes=4 * GIB, margin_bytes=2 * GIB, max_slots=8) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
        ({"target_wait_seconds": 0}, "positive"),
        ({"scale_down_delay_seconds": -1}, "negative"),
        ({"arrival_jump": 0}, "positive"),
    ],
)
def test_impossible_policies_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PoolPolicy(**kwargs)  # type: ignore[arg-type]


def _error(rate: float, video_s: float = 30.0, window_s: float = 300.0) -> float:
    """The standard error of a window's rate of videos of one length (a Poisson count)."""
    return math.sqrt(rate * window_s / video_s * video_s**2) / window_s


def _rate_after(rates: list[float], p: PoolPolicy, every: float = 10.0) -> list[float]:
    """The smoothed arrival rate the policy uses at each of successive decisions."""
    memory, used = PolicyMemory(), []
    for step, rate in enumerate(rates):
        s = PoolSignals(NOW + step * every, 0.0, 0, rate, (), _error(rate))
        used.append(smoothed_arrivals(s, p, memory))
        memory = decide(s, p, memory).memory
    return used


def test_a_constant_arrival_rate_is_taken_as_it_is() -> None:
    assert _rate_after([2.0] * 30, PoolPolicy()) == pytest.approx([2.0] * 30)


def test_a_jump_in_arrivals_is_taken_at_once_a_wobble_is_smoothed() -> None:
    p = PoolPolicy(arrival_smoothing_seconds=900, arrival_jump=4)
    # 10 s/s over 300 s of 30 s videos: 100 videos in the window, a standard error of 1 s/s.
    burst = _rate_after([10.0] * 10 + [15.0], p)
    assert burst[-1] == 15.0  # five standard errors up: a burst, not noise
    wobble = _rate_after([10.0] * 10 + [12.0], p)
    assert 10.0 < wobble[-1] < 10.1  # two: noise, 10 s of a 900 s average
    ended = _rate_after([10.0] * 10 + [0.0], p)
    assert ended[-1] == 0.0  # nothing arriving where 100 videos were due: it stopped


def test_the_same_rise_is_a_burst_for_a_large_pool_and_noise_for_a_small_one() -> None:
    """A factor says nothing of noise: 50% more is 5 standard errors at 100 videos per
    window and half of one at one video per window. (A fixed factor took both or neither.)"""
    p = PoolPolicy(arrival_smoothing_seconds=900, arrival_jump=4)
    assert _rate_after([10.0] * 10 + [15.0], p)[-1] == 15.0
    small = _rate_after([0.1] * 10 + [0.15], p)[-1]
    assert 0.1 < small < 0.101
    # An empty window where one video in three windows is due is no news either: the
    # average decays, it does not drop to zero (the idle time still takes the pool there).
    quiet = _rate_after([0.1] * 10 + [0.0], p)[-1]
    assert 0.098 < quiet < 0.1


def test_a_pool_idle_for_the_idle_time_goes_to_zero_whatever_the_average_says() -> None:
    p = PoolPolicy(scale_down_delay_seconds=60, idle_before_zero_seconds=600)
    pods = (PodSignal("pod-0", ready=True, throughput=0.5, idle_since=NOW),)
    # An average of arrivals still remembered (an empty window at a few videos an hour
    # only decays it), but no video has waited or rendered for 600 s, and none arrived in
    # the window: the average is of videos long done, no reason to stay.
    memory = PolicyMemory(last_work=NOW, arrival_rate=0.05, decided_at=NOW + 590,
                          arrival_noise=0.1, started=NOW)  # fmt: skip
    d = decide(PoolSignals(NOW + 600, 0.0, 0, 0.0, pods), p, memory)
    assert (d.replicas, d.reason, d.victims) == (0, "idle", ("pod-0",))


def test_slots_staff_the_queue_a_waiting_video_needs_a_slot_not_a_pod() -> None:
    p = PoolPolicy(max_replicas=20, headroom=0.3, idle_before_zero_seconds=3600)
    starting = tuple(PodSignal(f"pod-{i}", ready=False, slots=3) for i in range(2))
    # Six videos waiting, 60 s of video each: throughput would drain them with 6 pods
    # (360 s / (0.5 s/s * 120 s)), but six videos fill the two starting pods' slots.
    memory = PolicyMemory(throughput=0.5)
    d = decide(PoolSignals(NOW, 360.0, 6, 0.0, starting), p, memory)
    assert (d.replicas, d.reason) == (2, "steady")  # one pod per video: 6
    assert "(3 slots)" in d.message
    one = tuple(dataclasses.replace(q, slots=1) for q in starting)
    assert decide(PoolSignals(NOW, 360.0, 6, 0.0, one), p, memory).replicas == 6
    # Square-root staffing in slots: at 4.5 pods' load, 3 slots each keep 0.3 * sqrt(4.5 / 3)
    # = 0.37 of a pod spare (5 pods), one slot each 0.3 * sqrt(4.5) = 0.64 (6 pods).
    busy = tuple(
        PodSignal(f"pod-{i}", ready=True, busy_slots=1, slots=3, throughput=0.5) for i in range(2)
    )
    d = decide(PoolSignals(NOW, 0.0, 0, 2.25, busy), p, PolicyMemory())
    single = tuple(dataclasses.replace(q, slots=1) for q in busy)
    d1 = decide(PoolSignals(NOW, 0.0, 0, 2.25, single), p, PolicyMemory())
    assert (d.replicas, d1.replicas) == (5, 6)


def test_waiting_videos_take_the_free_slots_of_the_pods_the_arrivals_need() -> None:
    """The video waiting is one of the arrivals the average counts: a video reaching an
    idle pool starts one pod, not one for the arrivals and one for itself."""
    p = PoolPolicy(max_replicas=20, headroom=0.3)
    # 0.1 s/s of video at 0.18 s/s a pod: 0.56 pods' load, 0.71 with headroom, in two slots.
    memory = PolicyMemory(throughput=0.18, slots=2, arrival_rate=0.1, decided_at=NOW - 10)
    one = decide(PoolSignals(NOW, 35.0, 1, 0.1), p, memory)
    assert (one.replicas, one.reason) == (1, "arrivals")  # the sum of the two asked for 2
    # Three waiting: the arrivals' 1.4 free slots hold some, the other 1.6 ask for a pod.
    assert decide(PoolSignals(NOW, 105.0, 3, 0.1), p, memory).replicas == 2
    # A pool busier than its arrivals explain has no free slots: each waiting video asks
    # for its own, on top of the pods the arrivals need.
    full = tuple(
        PodSignal(f"pod-{i}", ready=True, busy_slots=2, slots=2, throughput=0.18) for i in range(2)
    )
    d = decide(PoolSignals(NOW, 4 * 35.0, 4, 0.1, full), p, memory)
    assert (d.replicas, d.reason) == (3, "backlog")  # 0.71 + 4 / 2 slots


def test_a_pool_at_zero_keeps_its_measured_throughput_and_slots() -> None:
    """The prior is for a pool never measured; one that went to zero still knows what its
    pods did (the prior would have asked for three times the pods for the first video)."""
    p = PoolPolicy(prior_throughput=0.18, idle_before_zero_seconds=0, scale_down_delay_seconds=0)
    pods = (PodSignal("pod-0", ready=True, slots=3, throughput=0.54, idle_since=NOW),)
    gone = decide(PoolSignals(NOW, 0.0, 0, 0.0, pods), p, PolicyMemory())
    assert gone.replicas == 0
    back = PoolSignals(NOW + 3600, 180.0, 3, 0.0, ())
    d = decide(back, p, gone.memory)
    assert d.throughput_per_pod == 0.54
    assert d.replicas == 1  # three 60 s videos fill one pod's three slots
    fresh = decide(back, p, PolicyMemory())
    assert (fresh.throughput_per_pod, fresh.replicas) == (0.18, 3)
