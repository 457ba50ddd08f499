"""The batched Ditto engine's scheduler and buckets: fair, in order, bounded (pure, no torch)."""

from __future__ import annotations

import random

import pytest

from avatar_runtime.engines.ditto_batched import buckets
from avatar_runtime.engines.ditto_batched.scheduler import (
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
