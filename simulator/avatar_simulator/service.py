"""How long a video takes on a pod: measured realtime factors, and what extra slots add.

The seed study measured one worker on an L4 (XTTS-v2 0.71 and Ditto 4.8 seconds of GPU
per second of video); the runtime's own GPU benchmarks measured its engines on an H100
(`docs/benchmarks.md`), and independent Ditto slots on one GPU at 1.42 / 1.29 / 1.40 s of
GPU per video second for 1 / 2 / 3 slots: a measured speed-up of 1.10 at two slots and
1.01 at three, not the 2x and 3x a linear model would assume. A pod with ``k`` busy
slots therefore does ``speedup[k-1]`` seconds of one-slot work per second, shared equally
by its ``k`` jobs (processor sharing).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceModel:
    name: str
    seconds_per_video_second: float
    """GPU seconds one video second costs on a pod running one job."""
    slots: int = 1
    speedup: tuple[float, ...] = (1.0,)
    """Total work rate with 1, 2, ... busy slots, relative to one busy slot (measured)."""
    jitter: float = 0.1
    """Sigma of a job's log-normal service-time factor (texts, faces and portraits differ)."""
    source: str = ""

    def __post_init__(self) -> None:
        if self.slots < 1 or len(self.speedup) < self.slots:
            raise ValueError("need a measured speed-up for every slot")

    def work(self, video_seconds: float, rng: random.Random) -> float:
        """Seconds one job takes alone on a pod."""
        factor = math.exp(rng.gauss(0.0, self.jitter) - self.jitter**2 / 2) if self.jitter else 1
        return video_seconds * self.seconds_per_video_second * factor

    def job_rate(self, busy: int) -> float:
        """Seconds of one-slot work each job gets per second when ``busy`` slots are busy."""
        return self.speedup[busy - 1] / busy

    @property
    def pod_throughput(self) -> float:
        """Video seconds per second a full pod does."""
        return self.speedup[self.slots - 1] / self.seconds_per_video_second


SEED_L4 = ServiceModel(
    name="seed",
    seconds_per_video_second=0.71 + 4.80,
    source=(
        "seed study, one worker on an L4: 28.1 s of video in 154.75 s (XTTS-v2 0.71x,"
        " Ditto 4.8x realtime); one slot (its 2- and 3-worker figures are projections)"
    ),
)

# The runtime's whole job streamed (XTTS-v2 into Ditto online, one process):
# 27.8 s for 15.3 s of speech = 1.82 s per video second (benchmarks/reports/
# gpu-ditto-streaming.json), on an H100; slots from the adapter's measured 1.42 / 1.29 / 1.40.
RUNTIME_H100 = ServiceModel(
    name="runtime",
    seconds_per_video_second=1.82,
    speedup=(1.0, 1.42 / 1.29, 1.42 / 1.40),
    source=(
        "the runtime's GPU benchmarks (H100, random weights): a streamed job at 1.82 s per"
        " video second; 1 / 2 / 3 Ditto slots at 1.42 / 1.29 / 1.40 s of GPU per video"
        " second (speed-up 1.10 and 1.01); the slots come from `slots: auto` on an L4's memory"
    ),
)


def works(videos: Sequence[float], model: ServiceModel, *, seed: int) -> list[float]:
    """Every video's service time alone on a pod: the same for every controller of a run."""
    rng = random.Random(f"work-{seed}")
    return [model.work(v, rng) for v in videos]
