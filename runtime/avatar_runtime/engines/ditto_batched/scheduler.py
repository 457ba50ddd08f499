"""Which work of which running job goes into the next GPU batch: fair, in order, bounded.

One copy of Ditto's networks serves every job on the GPU, so the engine's one
driver thread repeatedly asks this scheduler for a batch and runs it. There
are two kinds of batch, one per network chain:

- a *motion* batch: motion-diffusion windows (LMDM), at most one per job (a
  job's next window is conditioned on the end of its previous one, so a job
  never has two ready), up to ``max_windows``;
- a *frames* batch: frames whose driving keypoints are known, to be warped and
  decoded, up to ``max_frames``.

Guarantees (each has a test in ``tests/runtime/engines/test_ditto_batched_scheduler.py``):

- **In order.** A job's frames leave in the order they were offered (FIFO per
  job), so the engine can stream each job's frames to its encoder as batches
  finish.
- **Fair.** A frames batch shares its capacity equally among the jobs that have
  frames (water-filling: a job with fewer frames than its share gives the rest
  to the others), and the remainder after an equal split goes to the jobs next
  in a rotating order, so no job is favoured batch after batch. A long job
  therefore cannot starve a short one: each gets the same frames per batch.
- **First frames first.** A job that has run dry of frames (fewer than
  ``low_water``) gets its pending window diffused before more frames are
  rendered for the others, so a job that has just started waits one motion
  batch for its first frames, not for the other jobs' backlogs.
- **Bounded look-ahead.** A job already holding ``high_water`` frames or more
  gets no more windows diffused until it has rendered some, so one job's motion
  cannot run far ahead of its frames (memory stays bounded).
- **Held jobs wait.** A job the engine holds (its reader is behind: ``hold``)
  gets nothing into any batch until it is released, so frames made for a slow
  reader cannot pile up; the other jobs' batches go on without it.
- **Paced, when asked.** With ``Limits.frames_per_second`` set, no job has more
  frames rendered than that rate allows (a token bucket per job, a batch deep,
  full when the job starts, so its first frames are not delayed). A lone job
  then leaves part of the GPU idle, and its time depends less on how many
  others run: the price of a predictable latency. ``ready_at`` says when the
  next paced frames may go. Motion windows are not paced: they are diffused
  while paced frames wait, within the look-ahead bound.

Pure bookkeeping: no torch, no threads, no clock of its own (the engine passes
its clock's reading to ``next_batch``). The engine holds its lock around every
call.
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

JobKey = TypeVar("JobKey", bound=Hashable)
Window = TypeVar("Window")
FrameWork = TypeVar("FrameWork")


class BatchKind(enum.Enum):
    MOTION = "motion"
    FRAMES = "frames"


@dataclass(frozen=True)
class Limits:
    """How large a batch may be and how far ahead of its frames a job's motion may run."""

    max_windows: int = 8
    """Motion windows (one per job) in one LMDM batch."""
    max_frames: int = 8
    """Frames in one warp + decode batch, across jobs."""
    low_water: int = 8
    """Below this many frames waiting, a job's pending window goes before more frames."""
    high_water: int = 140
    """From this many frames waiting, a job's next window waits (two Ditto windows' worth)."""
    frames_per_second: float = 0.0
    """Most frames one job may have rendered per second, over any stretch longer than a
    batch (0: unpaced, as fast as the GPU goes)."""

    def __post_init__(self) -> None:
        if self.max_windows < 1 or self.max_frames < 1:
            raise ValueError("a batch holds at least one item")
        if not 0 <= self.low_water <= self.high_water:
            raise ValueError("low_water must lie between 0 and high_water")
        if not (math.isfinite(self.frames_per_second) and self.frames_per_second >= 0):
            raise ValueError("frames_per_second must be 0 (unpaced) or a positive rate")


@dataclass
class Batch(Generic[JobKey, Window, FrameWork]):
    """One batch to run: windows (a motion batch) or frames (a frames batch), each with its
    job, in the order the engine must hand the results back."""

    kind: BatchKind
    windows: list[tuple[JobKey, Window]] = field(default_factory=list)
    frames: list[tuple[JobKey, FrameWork]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.windows) if self.kind is BatchKind.MOTION else len(self.frames)


@dataclass
class _Job(Generic[Window, FrameWork]):
    window: Window | None = None
    frames: collections.deque[FrameWork] = field(default_factory=collections.deque)
    held: bool = False
    tokens: float = 0.0  # frames it may have rendered now, when paced
    stamp: float | None = None  # the clock when ``tokens`` was last topped up


def fair_shares(counts: Sequence[int], capacity: int, *, start: int = 0) -> list[int]:
    """How many of each job's waiting items go into a batch of ``capacity``.

    Water-filling: every job gets the same share, a job with fewer items than the
    share gives its unused part to the others, and units left after the equal split
    go one each to the jobs from ``start`` on (round-robin), so the remainder
    rotates. Never more than a job has; the total is ``min(capacity, sum(counts))``.
    """
    shares = [0] * len(counts)
    left = min(capacity, sum(counts))
    hungry = [i for i, count in enumerate(counts) if count > 0]
    while left > 0 and hungry:
        each = left // len(hungry)
        if each == 0:  # fewer units than jobs: one each, in rotating order
            order = sorted(hungry, key=lambda i: (i - start) % len(counts))
            for i in order[:left]:
                shares[i] += 1
            break
        for i in hungry:
            take = min(each, counts[i] - shares[i])
            shares[i] += take
            left -= take
        hungry = [i for i in hungry if shares[i] < counts[i]]
    return shares


class BatchScheduler(Generic[JobKey, Window, FrameWork]):
    """The running jobs' pending work, and the rule that picks each next batch."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._jobs: dict[JobKey, _Job[Window, FrameWork]] = {}
        self._turn = 0  # rotates the round-robin start, batch after batch

    def __contains__(self, job: JobKey) -> bool:
        return job in self._jobs

    @property
    def jobs(self) -> list[JobKey]:
        return list(self._jobs)

    def add_job(self, job: JobKey) -> None:
        if job in self._jobs:
            raise ValueError(f"job {job!r} is running already")
        self._jobs[job] = _Job(tokens=float(self.limits.max_frames))

    def remove_job(self, job: JobKey) -> None:
        """Forget a job and whatever of it still waits (it ended, or was cancelled)."""
        self._jobs.pop(job, None)

    def offer_window(self, job: JobKey, window: Window) -> None:
        state = self._jobs[job]
        if state.window is not None:
            raise ValueError(f"job {job!r} already has a window waiting")
        state.window = window

    def offer_frames(self, job: JobKey, frames: Sequence[FrameWork]) -> None:
        self._jobs[job].frames.extend(frames)

    def hold(self, job: JobKey) -> None:
        """Leave the job's work out of every batch until ``release``."""
        self._jobs[job].held = True

    def release(self, job: JobKey) -> None:
        self._jobs[job].held = False

    def waiting(self, job: JobKey) -> tuple[bool, int]:
        """Whether the job has a window waiting, and how many of its frames wait."""
        state = self._jobs[job]
        return state.window is not None, len(state.frames)

    def idle(self) -> bool:
        return all(s.window is None and not s.frames for s in self._jobs.values())

    def next_batch(self, now: float | None = None) -> Batch[JobKey, Window, FrameWork] | None:
        """The next batch to run, taken out of the pending work; None when nothing may run.

        ``now``: the engine's clock, in seconds, for pacing; None ignores pacing (a
        closing engine finishes what waits).
        """
        keys = [k for k, state in self._jobs.items() if not state.held]
        if not keys:
            return None
        start = self._turn % len(keys)
        order = keys[start:] + keys[:start]
        self._turn += 1
        limits = self.limits
        paced = limits.frames_per_second > 0 and now is not None
        if paced:
            assert now is not None
            for key in order:
                self._top_up(self._jobs[key], now)
        share = self._paced_share() if paced else 0
        counts = [self._may_render(self._jobs[k], paced, share) for k in order]
        windows = [k for k in order if self._jobs[k].window is not None]
        starving = [k for k in windows if len(self._jobs[k].frames) < limits.low_water]
        have_frames = any(self._jobs[k].frames for k in order)
        if starving or (windows and not any(counts)):
            # Diffuse the starving jobs' windows first, then any other that is not too
            # far ahead, so the batch is as full as it can usefully be.
            ahead = [k for k in windows if k not in starving]
            ahead = [k for k in ahead if len(self._jobs[k].frames) < limits.high_water]
            chosen = (starving + ahead)[: limits.max_windows]
            if not chosen and not have_frames:  # low_water 0, and nothing to render
                chosen = windows[: limits.max_windows]
            if chosen:
                batch: Batch[JobKey, Window, FrameWork] = Batch(BatchKind.MOTION)
                for key in chosen:
                    window = self._jobs[key].window
                    assert window is not None
                    batch.windows.append((key, window))
                    self._jobs[key].window = None
                return batch
        if not any(counts):
            return None  # nothing waits, or every waiting frame waits for its job's pace
        shares = fair_shares(counts, limits.max_frames)
        batch = Batch(BatchKind.FRAMES)
        for key, share in zip(order, shares, strict=True):
            state = self._jobs[key]
            batch.frames.extend((key, state.frames.popleft()) for _ in range(share))
            if paced:
                state.tokens -= share
        return batch

    def ready_at(self) -> float | None:
        """When, on the clock given to ``next_batch``, a paced job's frames may go next;
        None when no frames wait for their pace (then wait for new work)."""
        rate = self.limits.frames_per_second
        if rate <= 0:
            return None
        times = []
        share = self._paced_share()
        for state in self._jobs.values():
            if state.held or not state.frames or state.stamp is None:
                continue
            need = min(len(state.frames), share)
            times.append(state.stamp + max(0.0, need - state.tokens) / rate)
        return min(times, default=None)

    def _top_up(self, state: _Job[Window, FrameWork], now: float) -> None:
        if state.stamp is not None:
            earned = max(0.0, now - state.stamp) * self.limits.frames_per_second
            state.tokens = min(float(self.limits.max_frames), state.tokens + earned)
        state.stamp = now

    def _paced_share(self) -> int:
        """A job's equal part of a frames batch among the jobs with frames to render."""
        jobs = sum(1 for state in self._jobs.values() if state.frames and not state.held)
        return -(-self.limits.max_frames // max(1, jobs))

    def _may_render(self, state: _Job[Window, FrameWork], paced: bool, share: int) -> int:
        """How many of the job's frames a batch may take now. Paced, a job waits until it
        may send its equal part of a batch (or all it has), so pacing does not shrink the
        batches: a lone job's frames go a whole batch at a time, not one by one."""
        waiting = len(state.frames)
        if not paced or waiting == 0:
            return waiting
        if state.tokens + _SLACK < min(waiting, share):
            return 0
        return min(waiting, int(state.tokens + _SLACK))


# Rounding must not cost a frame: in the token arithmetic, and in the clock's own
# reading (perf_counter counts seconds since boot: at 1e6 s one step of a float is
# 1.2e-10 s, 3e-7 frames at 2500 frames/s, so a far smaller slack left ``ready_at``
# naming a time at which the frames still may not go, again and again). A thousandth
# of a frame lets no job run measurably ahead of its pace.
_SLACK = 1e-3
