"""The batched Ditto engine's scheduler and buckets: fair, in order, bounded (pure, no torch)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest

from avatar_runtime.engines.ditto_batched import buckets
from avatar_runtime.engines.ditto_batched.scheduler import (
    Batch,
    BatchKind,
    BatchScheduler,
    Limits,
    fair_shares,
)

Scheduler = BatchScheduler[str, str, int]


def _scheduler(**limits: int) -> Scheduler:
    return BatchScheduler(Limits(**limits))


def test_fair_shares_split_evenly_and_give_what_a_small_job_leaves_to_the_others() -> None:
    assert fair_shares([10, 10, 10, 10], 8) == [2, 2, 2, 2]
    assert fair_shares([1, 10, 10], 8) == [1, 4, 3]  # the small job's unused share spreads
    assert fair_shares([0, 5], 8) == [0, 5]
    assert fair_shares([3, 2], 8) == [3, 2]  # never more than a job has
    assert fair_shares([], 8) == []


def test_fair_shares_hand_the_remainder_round_robin_from_the_start() -> None:
    assert fair_shares([5, 5, 5], 4) == [2, 1, 1]
    assert fair_shares([5, 5, 5], 4, start=1) == [1, 2, 1]
    assert fair_shares([5, 5, 5], 4, start=2) == [1, 1, 2]


def test_fair_shares_fill_the_batch_whenever_enough_is_waiting() -> None:
    rng = random.Random(3)
    for _ in range(500):
        counts = [rng.randint(0, 12) for _ in range(rng.randint(1, 9))]
        capacity = rng.randint(1, 20)
        shares = fair_shares(counts, capacity, start=rng.randint(0, len(counts) - 1))
        assert sum(shares) == min(capacity, sum(counts))
        assert all(0 <= s <= c for s, c in zip(shares, counts, strict=True))
        # equal split: two jobs that both had more than they got differ by at most one
        short = [s for s, c in zip(shares, counts, strict=True) if s < c]
        assert not short or max(short) - min(short) <= 1


def test_each_jobs_frames_leave_in_the_order_they_were_offered() -> None:
    rng = random.Random(7)
    scheduler = _scheduler(max_frames=5, low_water=0)
    offered = dict.fromkeys("abc", 0)
    seen: dict[str, list[int]] = {job: [] for job in "abc"}
    for job in offered:
        scheduler.add_job(job)
    for _ in range(200):
        job = rng.choice("abc")
        count = rng.randint(0, 4)
        scheduler.offer_frames(job, list(range(offered[job], offered[job] + count)))
        offered[job] += count
        if rng.random() < 0.6 and (batch := scheduler.next_batch()) is not None:
            assert batch.kind is BatchKind.FRAMES
            assert len(batch) <= 5
            for key, index in batch.frames:
                seen[key].append(index)
    while (batch := scheduler.next_batch()) is not None:
        for key, index in batch.frames:
            seen[key].append(index)
    assert seen == {job: list(range(count)) for job, count in offered.items()}


def test_a_long_job_does_not_starve_a_short_one() -> None:
    scheduler = _scheduler(max_frames=8, low_water=0)
    scheduler.add_job("long")
    scheduler.offer_frames("long", list(range(1000)))
    scheduler.add_job("short")
    scheduler.offer_frames("short", list(range(40)))
    batches = 0
    while scheduler.waiting("short")[1]:
        batch = scheduler.next_batch()
        assert batch is not None
        batches += 1
        assert sum(1 for key, _ in batch.frames if key == "short") == 4  # half of each batch
    assert batches == 10  # 40 frames at 4 a batch: as if it shared the GPU with one equal


def test_the_remainder_of_an_uneven_split_rotates_between_jobs() -> None:
    scheduler = _scheduler(max_frames=2, low_water=0)
    for job in "abc":
        scheduler.add_job(job)
        scheduler.offer_frames(job, list(range(30)))
    taken = dict.fromkeys("abc", 0)
    for _ in range(30):
        batch = scheduler.next_batch()
        assert batch is not None
        for key, _ in batch.frames:
            taken[key] += 1
    assert taken == {"a": 20, "b": 20, "c": 20}


def test_a_job_without_frames_gets_its_window_diffused_before_more_frames() -> None:
    scheduler = _scheduler(low_water=8)
    scheduler.add_job("busy")
    scheduler.offer_frames("busy", list(range(100)))
    scheduler.add_job("new")
    scheduler.offer_window("new", "new-0")
    batch = scheduler.next_batch()
    assert batch is not None
    assert batch.kind is BatchKind.MOTION
    assert batch.windows == [("new", "new-0")]
    assert scheduler.waiting("new") == (False, 0)
    following = scheduler.next_batch()
    assert following is not None
    assert following.kind is BatchKind.FRAMES  # nothing else to diffuse: frames again


def test_a_motion_batch_takes_every_window_that_is_not_too_far_ahead() -> None:
    scheduler = _scheduler(max_windows=8, low_water=8, high_water=140)
    for job, frames in (("dry", 0), ("some", 70), ("full", 140)):
        scheduler.add_job(job)
        scheduler.offer_frames(job, list(range(frames)))
        scheduler.offer_window(job, f"{job}-w")
    batch = scheduler.next_batch()
    assert batch is not None
    assert batch.kind is BatchKind.MOTION
    assert sorted(key for key, _ in batch.windows) == ["dry", "some"]  # "full" waits
    assert scheduler.waiting("full") == (True, 140)


def test_a_motion_batch_holds_at_most_max_windows_starving_jobs_first() -> None:
    scheduler = _scheduler(max_windows=2, low_water=8)
    for job, frames in (("a", 50), ("b", 0), ("c", 0), ("d", 0)):
        scheduler.add_job(job)
        scheduler.offer_frames(job, list(range(frames)))
        scheduler.offer_window(job, job)
    batch = scheduler.next_batch()
    assert batch is not None
    assert len(batch.windows) == 2
    assert "a" not in {key for key, _ in batch.windows}


def test_windows_are_diffused_even_when_every_job_is_far_ahead_but_none_has_frames() -> None:
    scheduler = _scheduler(low_water=0, high_water=0)
    scheduler.add_job("a")
    scheduler.offer_window("a", "a-0")
    batch = scheduler.next_batch()
    assert batch is not None
    assert batch.windows == [("a", "a-0")]
    assert scheduler.next_batch() is None
    assert scheduler.idle()


def test_a_job_has_one_window_waiting_at_a_time() -> None:
    scheduler = _scheduler()
    scheduler.add_job("a")
    scheduler.offer_window("a", "a-0")
    with pytest.raises(ValueError, match="already has a window"):
        scheduler.offer_window("a", "a-1")
    with pytest.raises(ValueError, match="running already"):
        scheduler.add_job("a")


def test_a_removed_job_leaves_nothing_behind() -> None:
    scheduler = _scheduler()
    scheduler.add_job("a")
    scheduler.offer_frames("a", [1, 2, 3])
    scheduler.offer_window("a", "a-0")
    scheduler.remove_job("a")
    assert "a" not in scheduler
    assert scheduler.next_batch() is None


def test_a_held_job_waits_while_the_others_run_and_goes_on_when_released() -> None:
    scheduler = _scheduler(max_frames=4, low_water=0)
    scheduler.add_job("a")
    scheduler.add_job("b")
    scheduler.offer_frames("a", [1, 2, 3, 4])
    scheduler.offer_frames("b", [5, 6, 7, 8])
    scheduler.offer_window("a", "a-0")
    scheduler.hold("a")
    batch = scheduler.next_batch()
    assert batch is not None
    assert [key for key, _ in batch.frames] == ["b"] * 4  # all of the batch to the other
    assert scheduler.next_batch() is None  # only the held job's work is left
    scheduler.release("a")
    batch = scheduler.next_batch()
    assert batch is not None
    assert batch.frames == [("a", 1), ("a", 2), ("a", 3), ("a", 4)]


def test_limits_refuse_empty_batches_and_inverted_water_marks() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Limits(max_frames=0)
    with pytest.raises(ValueError, match="low_water"):
        Limits(low_water=10, high_water=5)


def _paced(rate: float, **limits: int) -> Scheduler:
    return BatchScheduler(Limits(frames_per_second=rate, **limits))


def _drive(scheduler: Scheduler, now: float) -> list[tuple[float, Batch[str, str, int]]]:
    """Every batch until nothing waits, each with the clock reading it went at, on a
    simulated clock that jumps to ``ready_at`` whenever nothing may run (no sleeping):
    at that reading a batch must go."""
    out: list[tuple[float, Batch[str, str, int]]] = []
    jumped = False
    while True:
        batch = scheduler.next_batch(now)
        if batch is not None:
            out.append((now, batch))
            jumped = False
            continue
        assert not jumped, f"nothing may run at ready_at() = {now!r}"
        wake = scheduler.ready_at()
        if wake is None:
            return out
        assert wake > now
        now, jumped = wake, True


def _keeps_pace(
    batches: list[tuple[float, Batch[str, str, int]]], job: str, rate: float, burst: int
) -> None:
    """The job has at most ``burst + rate * (t1 - t0)`` frames in the batches from t0 to
    t1, over every stretch, not only from its start."""
    sent = [(t, sum(1 for key, _ in batch.frames if key == job)) for t, batch in batches]
    sent = [(t, n) for t, n in sent if n]
    for i, (t0, _) in enumerate(sent):
        total = 0
        for t1, n in sent[i:]:
            total += n
            assert total <= burst + rate * (t1 - t0) + 1e-2, (job, t0, t1, total)


@pytest.mark.parametrize("start", [0.0, 30 * 86_400.0 + 0.123])
@pytest.mark.parametrize("rate", [20.0, 33.3, 2500.0])
def test_a_lone_paced_job_keeps_to_its_rate_in_full_batches_in_order(
    start: float, rate: float
) -> None:
    """``start``: the engine's clock is ``perf_counter``, seconds since boot, so a month's
    uptime must not make ``ready_at`` name a time at which the frames still may not go."""
    scheduler = _paced(rate, max_frames=8, low_water=0)
    scheduler.add_job("a")
    scheduler.offer_frames("a", list(range(61)))
    now, batches = start, []
    while scheduler.waiting("a")[1]:
        batch = scheduler.next_batch(now)
        if batch is None:  # ahead of its pace: it may go exactly at ready_at, not before
            wake = scheduler.ready_at()
            assert wake is not None
            assert wake > now
            assert scheduler.next_batch(wake - 0.01 / rate) is None  # a hundredth of a frame early
            now = wake
            batch = scheduler.next_batch(now)
            assert batch is not None
        batches.append((now, batch))
    assert scheduler.ready_at() is None  # nothing waits
    assert [len(batch) for _, batch in batches] == [8] * 7 + [5]
    assert [i for _, batch in batches for _, i in batch.frames] == list(range(61))
    _keeps_pace(batches, "a", rate, burst=8)
    # and no slower than the pace: after the first batch, each goes once it has earned its frames
    assert batches[-1][0] - start == pytest.approx((61 - 8) / rate)


def test_unpaced_or_without_a_clock_every_frame_goes_back_to_back() -> None:
    def frames_at_one_reading(
        scheduler: Scheduler, now: float | None
    ) -> list[list[tuple[str, int]]]:
        for job in "abc":
            scheduler.add_job(job)
            scheduler.offer_frames(job, list(range(30)))
        out = []
        while (batch := scheduler.next_batch(now)) is not None:
            out.append(batch.frames)
        assert scheduler.idle()
        return out

    unpaced = frames_at_one_reading(_scheduler(max_frames=8, low_water=0), 5.0)
    assert [len(frames) for frames in unpaced] == [8] * 11 + [2]
    assert _scheduler().ready_at() is None  # unpaced: never a time to wait for
    # a closing engine passes no clock: a paced scheduler then gives the same batches
    assert frames_at_one_reading(_paced(1.0, max_frames=8, low_water=0), None) == unpaced


def test_a_new_jobs_first_frames_are_not_delayed() -> None:
    scheduler = _paced(10.0, max_frames=8, low_water=0)
    scheduler.add_job("old")
    scheduler.offer_frames("old", list(range(100)))
    assert scheduler.next_batch(0.0) is not None
    assert scheduler.next_batch(0.0) is None  # the old job has spent its bucket
    scheduler.add_job("new")
    scheduler.offer_frames("new", list(range(20)))
    batch = scheduler.next_batch(0.0)  # the same reading: its bucket starts full
    assert batch is not None
    assert batch.frames == [("new", i) for i in range(8)]


@pytest.mark.parametrize("polled", [False, True])
def test_after_a_long_idle_spell_a_job_gets_one_batchs_burst_not_the_idle_times_worth(
    polled: bool,
) -> None:
    """``polled``: whether the scheduler was asked for batches while the job had nothing
    (other jobs running) or not at all (an idle engine sleeps)."""
    rate = 10.0
    scheduler = _paced(rate, max_frames=8, low_water=0)
    scheduler.add_job("a")
    scheduler.offer_frames("a", list(range(16)))
    before = _drive(scheduler, 0.0)
    assert [t for t, _ in before] == [0.0, pytest.approx(0.8)]
    if polled:
        for t in range(1, 100):
            assert scheduler.next_batch(float(t)) is None
    scheduler.offer_frames("a", list(range(16, 80)))
    after = _drive(scheduler, 100.0)
    assert [len(batch) for _, batch in after] == [8] * 8
    assert [t for t, _ in after] == [pytest.approx(100 + 0.8 * k) for k in range(8)]
    _keeps_pace(after, "a", rate, burst=8)


def test_a_job_ahead_of_its_pace_does_not_keep_the_others_out_of_a_batch() -> None:
    scheduler = _paced(10.0, max_frames=8, low_water=0)
    for job in "ab":
        scheduler.add_job(job)
    scheduler.offer_frames("a", list(range(100)))
    first = scheduler.next_batch(0.0)
    assert first is not None
    assert len(first) == 8  # "a" alone: its whole bucket
    scheduler.offer_frames("b", list(range(100)))
    batch = scheduler.next_batch(0.1)  # "a" has earned 1 frame of the 4 it waits for
    assert batch is not None
    assert batch.frames == [("b", i) for i in range(8)]  # so "b" fills the batch
    assert scheduler.next_batch(0.1) is None
    assert scheduler.ready_at() == pytest.approx(0.4)  # "a" has its 4 then; "b" at 0.9


def test_several_paced_jobs_each_keep_their_pace_and_order_whatever_the_others_do() -> None:
    rng = random.Random(11)
    rate = 25.0
    scheduler = _paced(rate, max_frames=8, low_water=0)
    offered = dict.fromkeys("abc", 0)
    for job in offered:
        scheduler.add_job(job)
    now = 0.0
    batches: list[tuple[float, Batch[str, str, int]]] = []
    for _ in range(400):
        job = rng.choice("abc")
        count = rng.choice([0, 0, 1, 5, 20])
        scheduler.offer_frames(job, list(range(offered[job], offered[job] + count)))
        offered[job] += count
        now += rng.choice([0.0, 0.0, 0.01, 0.05, 0.3])
        if (batch := scheduler.next_batch(now)) is not None:
            batches.append((now, batch))
    batches += _drive(scheduler, now)
    assert scheduler.idle()
    for job, count in offered.items():
        assert [i for _, b in batches for key, i in b.frames if key == job] == list(range(count))
        _keeps_pace(batches, job, rate, burst=8)
    assert all(len(batch) <= 8 for _, batch in batches)


Simulated = list[tuple[BatchKind, list[tuple[str, str]], list[tuple[str, int]]]]


def _three_jobs(scheduler: Scheduler, clock: Callable[[int], float | None]) -> Simulated:
    """Three jobs of 2, 3 and 1 windows of 13 frames, each next window offered when the
    one before is diffused (as the engine does); the batches, the clock at ``clock(k)``
    for the k-th."""
    windows = {"a": 2, "b": 3, "c": 1}
    made = dict.fromkeys(windows, 0)
    for job in windows:
        scheduler.add_job(job)
        scheduler.offer_window(job, f"{job}0")
    out: Simulated = []
    for step in itertools.count():
        batch = scheduler.next_batch(clock(step))
        if batch is None:
            break
        out.append((batch.kind, list(batch.windows), list(batch.frames)))
        for job, _ in batch.windows:
            scheduler.offer_frames(job, list(range(made[job], made[job] + 13)))
            made[job] += 13
            if made[job] < 13 * windows[job]:
                scheduler.offer_window(job, f"{job}{made[job] // 13}")
    assert scheduler.idle()
    return out


@pytest.mark.parametrize("rate", [64.0, 1000.0])
def test_a_pace_that_does_not_bind_gives_the_unpaced_batches(rate: float) -> None:
    """A batch every 0.125 s: at 64 frames/s a job earns a whole batch (8) between two,
    the least rate that never holds a frame back."""
    limits = {"max_windows": 8, "max_frames": 8, "low_water": 8, "high_water": 40}
    unpaced = _three_jobs(_scheduler(**limits), lambda step: 0.125 * step)
    paced = _three_jobs(_paced(rate, **limits), lambda step: 0.125 * step)
    assert paced == unpaced
    assert {kind for kind, _, _ in unpaced} == {BatchKind.MOTION, BatchKind.FRAMES}


def test_while_paced_frames_wait_windows_are_diffused_within_the_look_ahead_bound() -> None:
    scheduler = _paced(10.0, max_frames=8, low_water=8, high_water=40)
    scheduler.add_job("under")
    scheduler.offer_frames("under", list(range(20)))
    scheduler.add_job("full")
    scheduler.offer_frames("full", list(range(48)))
    for _ in range(2):  # 4 + 4 frames a batch: both spend their buckets
        batch = scheduler.next_batch(0.0)
        assert batch is not None
        assert batch.kind is BatchKind.FRAMES
    assert scheduler.waiting("under") == (False, 12)  # not starving (low_water 8)
    assert scheduler.waiting("full") == (False, 40)  # at high_water
    scheduler.offer_window("under", "under-w")
    scheduler.offer_window("full", "full-w")
    batch = scheduler.next_batch(0.0)
    assert batch is not None
    assert batch.kind is BatchKind.MOTION
    assert batch.windows == [("under", "under-w")]  # the GPU diffuses while frames wait
    assert scheduler.next_batch(0.0) is None  # "full" is far enough ahead: its window waits
    assert scheduler.waiting("full") == (True, 40)
    assert scheduler.ready_at() == pytest.approx(0.4)


def test_a_held_job_is_left_out_of_ready_at() -> None:
    scheduler = _paced(10.0, max_frames=8, low_water=0)
    for job in "ab":
        scheduler.add_job(job)
    scheduler.offer_frames("a", list(range(100)))
    assert scheduler.next_batch(0.0) is not None  # "a" alone: 8 frames, its bucket empty
    scheduler.offer_frames("b", list(range(100)))
    while scheduler.next_batch(0.5) is not None:  # 4 + 4, then 4 of "b"
        pass
    assert scheduler.ready_at() == pytest.approx(0.8)  # "a" has 1 of the 4 it waits for
    scheduler.hold("a")
    assert scheduler.ready_at() == pytest.approx(1.3)  # "b", alone now, waits for a whole 8
    scheduler.hold("b")
    assert scheduler.ready_at() is None
    scheduler.release("a")
    scheduler.release("b")
    assert scheduler.ready_at() == pytest.approx(0.8)


@pytest.mark.parametrize("rate", [-1.0, -1e-9, math.nan, math.inf])
def test_limits_refuse_a_negative_or_non_finite_pace(rate: float) -> None:
    with pytest.raises(ValueError, match="frames_per_second"):
        Limits(frames_per_second=rate)


def test_a_batch_runs_in_the_smallest_bucket_that_holds_it() -> None:
    sizes = buckets.checked([8, 1, 4, 2])
    assert sizes == (1, 2, 4, 8)
    assert [buckets.bucket_for(n, sizes) for n in (1, 2, 3, 5, 8)] == [1, 2, 4, 8, 8]
    with pytest.raises(ValueError, match="exceeds"):
        buckets.bucket_for(9, sizes)
    with pytest.raises(ValueError, match="distinct"):
        buckets.checked([1, 1, 2])
    assert buckets.padding_index(3, 8) == [0, 1, 2, 2, 2, 2, 2, 2]
    assert buckets.padding_index(4, 4) == [0, 1, 2, 3]


def test_graphs_are_captured_largest_bucket_first() -> None:
    # A shared pool serves a small capture from a large one's freed blocks, not the reverse.
    assert buckets.capture_order((1, 2, 4, 8)) == (8, 4, 2, 1)
    assert buckets.capture_order([3, 1, 2]) == (3, 2, 1)
