"""When videos arrive and how long they are: the load a fleet has to follow.

Every pattern is a non-homogeneous Poisson process whose rate never exceeds the load
level (its peak, "up to N videos an hour"): **steady** at the level all day;
**diurnal**, a day's raised-cosine curve peaking at the level at 14:00 and falling to a
tenth of it at 02:00; **bursts**, a tenth of the level with bursts to the level (10x)
for 10 minutes at spread-out times. Arrivals are drawn by thinning (Lewis and Shedler),
from one seeded generator, so a run is reproducible.

Video lengths are log-normal (median 30 s, sigma 0.6), kept within 5-120 s: the issue's
range and median; the product has no traffic to fit yet.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

DAY = 86_400.0


class Pattern(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def peak_per_second(self) -> float: ...

    def rate(self, t: float) -> float:
        """Videos per second at time ``t`` (seconds from midnight; negative is the warm-up)."""
        ...


@dataclass(frozen=True)
class Steady:
    per_hour: float
    name: str = "steady"

    @property
    def peak_per_second(self) -> float:
        return self.per_hour / 3600

    def rate(self, t: float) -> float:
        return self.per_hour / 3600


@dataclass(frozen=True)
class Diurnal:
    per_hour: float
    """The peak."""
    trough_ratio: float = 0.1
    peak_hour: float = 14.0
    name: str = "diurnal"

    @property
    def peak_per_second(self) -> float:
        return self.per_hour / 3600

    def rate(self, t: float) -> float:
        phase = 2 * math.pi * (t / 3600 - self.peak_hour) / 24
        shape = self.trough_ratio + (1 - self.trough_ratio) * (1 + math.cos(phase)) / 2
        return self.per_hour / 3600 * shape


@dataclass(frozen=True)
class Bursts:
    per_hour: float
    """The bursts' rate; between them, ``base_ratio`` of it."""
    starts: tuple[float, ...]
    base_ratio: float = 0.1
    duration_s: float = 600.0
    name: str = "bursts"

    @classmethod
    def spread(
        cls, per_hour: float, *, count: int = 6, duration_s: float = 600.0, seed: int = 0
    ) -> Bursts:
        """``count`` bursts, one at a random time in each equal part of the day."""
        rng = random.Random(f"bursts-{seed}")
        part = DAY / count
        starts = tuple(i * part + rng.uniform(0, part - duration_s) for i in range(count))
        return cls(per_hour=per_hour, starts=starts, duration_s=duration_s)

    @property
    def peak_per_second(self) -> float:
        return self.per_hour / 3600

    def rate(self, t: float) -> float:
        in_burst = any(s <= t < s + self.duration_s for s in self.starts)
        return self.per_hour / 3600 * (1.0 if in_burst else self.base_ratio)


@dataclass(frozen=True)
class VideoLengths:
    median_s: float = 30.0
    sigma: float = 0.6
    shortest_s: float = 5.0
    longest_s: float = 120.0

    def draw(self, rng: random.Random) -> float:
        while True:
            length = rng.lognormvariate(math.log(self.median_s), self.sigma)
            if self.shortest_s <= length <= self.longest_s:
                return length


@dataclass(frozen=True)
class Trace:
    """Arrival times (ascending) and video lengths, in seconds."""

    times: tuple[float, ...]
    videos: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.times)


def generate(
    pattern: Pattern,
    *,
    start: float,
    end: float,
    lengths: VideoLengths,
    rng: random.Random,
) -> Trace:
    """Arrivals in ``[start, end)``, by thinning a Poisson process at the peak rate."""
    peak = pattern.peak_per_second
    times: list[float] = []
    videos: list[float] = []
    if peak <= 0:
        return Trace(times=(), videos=())
    t = start
    expovariate, uniform, rate = rng.expovariate, rng.random, pattern.rate
    while True:
        t += expovariate(peak)
        if t >= end:
            break
        if uniform() * peak < rate(t):
            times.append(t)
            videos.append(lengths.draw(rng))
    return Trace(times=tuple(times), videos=tuple(videos))
