"""GPU time per video, for charge-back: each pod's wall time split among the jobs on it.

A GPU costs the same busy or idle, and jobs that share a pod share its GPU, so a
video's cost is its share of its pod's time while it ran there: every second of a pod
with *n* jobs running is 1/*n* second for each of them (times the pod's GPUs when it
has more than one). Time a pod spends idle is nobody's: it is the pool's overhead, what
scaling keeps small. The accounting follows the operator's own reservations (a job
counts from the moment it is sent to its pod to the moment its attempt ends), so it needs
no clock of the pod's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _PodClock:
    since: float
    gpus: int = 1
    jobs: set[str] = field(default_factory=set)


class GpuTime:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pods: dict[str, _PodClock] = {}
        self._seconds: dict[str, float] = {}

    def start(self, pod: str, uid: str, *, gpus: int = 1) -> None:
        """The job begins running on the pod (sent, or adopted after a restart)."""
        now = self._clock()
        clock = self._pods.setdefault(pod, _PodClock(since=now))
        self._advance(clock, now)
        clock.gpus = max(1, gpus)
        clock.jobs.add(uid)
        self._seconds.setdefault(uid, 0.0)

    def stop(self, pod: str, uid: str) -> None:
        """The job's attempt on the pod ended: its share stops growing."""
        clock = self._pods.get(pod)
        if clock is None or uid not in clock.jobs:
            return
        self._advance(clock, self._clock())
        clock.jobs.discard(uid)
        if not clock.jobs:
            del self._pods[pod]

    def take(self, uid: str) -> float:
        """The seconds the job accrued on pods since the last take (stopped attempts)."""
        return self._seconds.pop(uid, 0.0)

    def running(self, uid: str) -> bool:
        return any(uid in clock.jobs for clock in self._pods.values())

    def _advance(self, clock: _PodClock, now: float) -> None:
        if clock.jobs:
            share = (now - clock.since) * clock.gpus / len(clock.jobs)
            for uid in clock.jobs:
                self._seconds[uid] = self._seconds.get(uid, 0.0) + share
        clock.since = now
