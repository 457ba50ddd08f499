"""How much video arrives at each pool: the policy's arrival rate, in video seconds per second.

The dispatcher knows every job; this module notes each new one once, at the time it
was created (an operator that restarts sees its backlog as having arrived when it did,
not all at once), and forgets it after the throughput window. The rate comes with its
standard error, from the same videos, so that the policy can tell a burst from noise.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
from collections.abc import Iterable, Mapping

from avatar_operator.jobs import Job


class Arrivals:
    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._seen: set[str] = set()
        self._recent: dict[str, collections.deque[tuple[float, float]]] = {}
        """Per pool: (monotonic time, estimated video seconds) of recent videos."""

    def note(
        self, jobs: Mapping[str, Job], pools: Iterable[str], *, now: float, wall: dt.datetime
    ) -> None:
        """Take the jobs not seen before (for the pools sized), and drop what is too old."""
        sized = set(pools)
        for pool in list(self._recent):
            if pool not in sized:
                del self._recent[pool]
        for uid in jobs.keys() - self._seen:
            job = jobs[uid]
            age = (wall - job.created).total_seconds()
            if job.spec.pool in sized and age <= self.window:
                recent = self._recent.setdefault(job.spec.pool, collections.deque())
                recent.append((now - max(0.0, age), job.estimate))
        self._seen = set(jobs)
        for recent in self._recent.values():
            while recent and recent[0][0] < now - self.window:
                recent.popleft()

    def rate(self, pool: str, now: float) -> float:
        recent = self._recent.get(pool, ())
        return sum(seconds for at, seconds in recent if at >= now - self.window) / self.window

    def rate_error(self, pool: str, now: float) -> float:
        """The standard error of ``rate``, as a Poisson count of the window's videos gives
        it: sqrt(the sum of their video seconds squared) / window (0 for none)."""
        recent = self._recent.get(pool, ())
        squares = sum(seconds * seconds for at, seconds in recent if at >= now - self.window)
        return math.sqrt(squares) / self.window
