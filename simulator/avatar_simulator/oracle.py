"""The oracle: a fleet planned in advance from every future arrival and service time.

It is what the policy would be with perfect knowledge and the same physics: it pays the
same provisioning lag (each node's own, known in advance), the same billing and the same
linger of empty nodes, but never guesses. Precisely:

1. **Starts.** Videos are taken in arrival order by slots that each run one video at a
   full pod's per-slot rate (service time x slots / speed-up). A video takes the slot
   that frees first if that is within ``max_wait_s`` of its arrival, else a new slot is
   opened for it at its arrival. With ``max_wait_s = 0`` no video ever waits.
2. **Demand.** ``demand(t)`` = ceil(videos running at t / slots per pod): the pods that
   schedule needs at each instant.
3. **Levels.** The k-th pod is needed while ``demand(t) >= k``; a level keeps its pod
   through an idle gap shorter than the node linger plus the median billed start (boot,
   driver, image, models), because releasing and re-buying would cost more than waiting.
4. **Pods.** Each level's pod is asked for exactly its own lag before its level starts
   (never before the run starts, so the first videos may wait for the first nodes) and
   removed, idle, when its level ends.

Spot preemptions are not foreseen: the Deployment replaces a preempted pod, and its
interrupted video waits for a free pod like any other.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Sequence

from avatar_simulator import fleet, service
from avatar_simulator.control import Command, View


def planned_starts(
    arrivals: Sequence[float], durations: Sequence[float], *, max_wait_s: float
) -> list[float]:
    """When each video starts (step 1): FIFO over slots, a new slot when the wait would
    exceed ``max_wait_s``."""
    free: list[float] = []  # when each slot opened so far frees (a heap)
    starts = []
    for arrival, duration in zip(arrivals, durations, strict=True):
        if free and free[0] <= arrival + max_wait_s:
            begin = max(arrival, heapq.heappop(free))
        else:
            begin = arrival
        starts.append(begin)
        heapq.heappush(free, begin + duration)
    return starts


def level_intervals(
    starts: Sequence[float], durations: Sequence[float], *, slots: int, bridge_s: float
) -> list[tuple[float, float]]:
    """The pods' intervals (steps 2 and 3)."""
    steps = sorted(
        [(s, 1) for s in starts] + [(s + d, -1) for s, d in zip(starts, durations, strict=True)]
    )
    levels: list[list[list[float]]] = []  # per level, its [begin, end] intervals
    open_levels = running = 0
    for t, change in steps:
        running += change
        demand = math.ceil(running / slots) if running > 0 else 0
        while open_levels < demand:
            if open_levels == len(levels):
                levels.append([])
            intervals = levels[open_levels]
            if intervals and t - intervals[-1][1] < bridge_s:
                intervals[-1][1] = math.inf  # the pod stayed through the gap
            else:
                intervals.append([t, math.inf])
            open_levels += 1
        while open_levels > demand:
            open_levels -= 1
            levels[open_levels][-1][1] = t
    return [(b, e) for intervals in levels for b, e in intervals]


class Oracle:
    def __init__(
        self,
        *,
        arrivals: Sequence[float],
        works: Sequence[float],
        service_model: service.ServiceModel,
        fleet_model: fleet.FleetModel,
        start: float,
        seed: int,
        max_wait_s: float = 0.0,
        interval_s: float = 10.0,
    ) -> None:
        slots = service_model.slots
        stretch = slots / service_model.speedup[slots - 1]
        durations = [w * stretch for w in works]
        starts = planned_starts(arrivals, durations, max_wait_s=max_wait_s)
        lag_model = fleet_model.lag
        rng = random.Random(f"oracle-{seed}")
        billed = sorted(
            lag.billed + lag.pod_start for lag in (lag_model.draw(rng) for _ in range(2001))
        )
        self.bridge_s = fleet_model.linger_s + billed[len(billed) // 2]
        plan = []
        for begin, end in level_intervals(starts, durations, slots=slots, bridge_s=self.bridge_s):
            lag = lag_model.draw(rng)
            plan.append((max(start, begin - lag.total), end, lag))
        plan.sort(key=lambda p: p[0])
        self._creates = [p[0] for p in plan]
        self._lags = [p[2] for p in plan]
        self._ends = sorted(p[1] for p in plan)
        self._given = 0
        self._interval_s = interval_s

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def planned(self, now: float) -> int:
        """Pods the plan has asked for and not yet released at ``now``."""
        return bisect.bisect_right(self._creates, now) - bisect.bisect_right(self._ends, now)

    def _command(self, view: View) -> Command:
        now, current = view.now, view.pod_count
        upto = bisect.bisect_right(self._creates, now)
        lags = tuple(self._lags[self._given : upto])
        self._given = max(self._given, upto)
        target = self.planned(now)
        if target >= current:
            return Command(replicas=target, victims=(), lags=lags)
        victims = tuple(view.idle_pods()[: current - target])
        return Command(replicas=current - len(victims), victims=victims, lags=lags)

    def start(self, view: View) -> Command:
        return self._command(view)

    def control(self, view: View) -> Command:
        return self._command(view)

    def on_empty_arrival(self, view: View) -> None:
        return None

    def wake_times(self) -> tuple[float, ...]:
        return tuple(sorted({*self._creates, *(e for e in self._ends if e < math.inf)}))
