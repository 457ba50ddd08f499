"""GPU time per video: each pod's wall time split among the jobs running on it."""

from __future__ import annotations

import pytest

from avatar_operator.usage import GpuTime


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_pod_shared_by_two_jobs_charges_each_half_while_they_overlap() -> None:
    clock = Clock()
    usage = GpuTime(clock)
    usage.start("pod-a", "one")
    clock.now = 10.0  # alone for 10 s
    usage.start("pod-a", "two")
    clock.now = 30.0  # 20 s together: 10 s each
    usage.stop("pod-a", "one")
    clock.now = 35.0  # alone again for 5 s
    usage.stop("pod-a", "two")
    assert usage.take("one") == pytest.approx(20.0)
    assert usage.take("two") == pytest.approx(15.0)
    assert usage.take("one") == 0.0  # taken once
    clock.now = 100.0  # idle time is nobody's
    usage.start("pod-a", "three")
    clock.now = 101.0
    usage.stop("pod-a", "three")
    assert usage.take("three") == pytest.approx(1.0)


def test_pods_are_charged_apart_and_by_their_gpu_count() -> None:
    clock = Clock()
    usage = GpuTime(clock)
    usage.start("big", "one", gpus=2)
    usage.start("small", "two")
    clock.now = 4.0
    assert usage.running("one")
    usage.stop("big", "one")
    usage.stop("small", "two")
    usage.stop("small", "two")  # a second release changes nothing
    assert not usage.running("one")
    assert usage.take("one") == pytest.approx(8.0)
    assert usage.take("two") == pytest.approx(4.0)
