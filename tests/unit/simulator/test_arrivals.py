"""Arrivals: each pattern's rate is the one configured, and video lengths stay in range."""

from __future__ import annotations

import random
import statistics

import pytest

from avatar_simulator import arrivals

DAY = arrivals.DAY


def _day(pattern: arrivals.Pattern, *, seed: int = 5) -> arrivals.Trace:
    return arrivals.generate(
        pattern, start=0.0, end=DAY, lengths=arrivals.VideoLengths(), rng=random.Random(seed)
    )


def _count(trace: arrivals.Trace, start: float, end: float) -> int:
    return sum(1 for t in trace.times if start <= t < end)


def test_steady_arrivals_are_poisson_at_the_configured_rate() -> None:
    trace = _day(arrivals.Steady(per_hour=1000))
    assert len(trace) == pytest.approx(24_000, abs=4 * 155)  # four standard deviations
    gaps = [b - a for a, b in zip(trace.times, trace.times[1:], strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(3.6, rel=0.03)
    assert statistics.stdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.04)
    assert list(trace.times) == sorted(trace.times)


def test_the_diurnal_curve_peaks_at_14h_and_falls_to_a_tenth_at_2h() -> None:
    trace = _day(arrivals.Diurnal(per_hour=2000))
    peak = _count(trace, 13.5 * 3600, 14.5 * 3600)
    trough = _count(trace, 1.5 * 3600, 2.5 * 3600)
    assert peak == pytest.approx(2000, rel=0.08)
    assert peak / trough == pytest.approx(10, rel=0.25)
    assert len(trace) == pytest.approx(0.55 * 24 * 2000, rel=0.03)  # the curve's mean


def test_bursts_are_ten_times_the_base_rate_for_ten_minutes() -> None:
    pattern = arrivals.Bursts.spread(3600, seed=2)
    assert len(pattern.starts) == 6
    trace = _day(pattern)
    inside = sum(_count(trace, s, s + pattern.duration_s) for s in pattern.starts)
    burst_s = len(pattern.starts) * pattern.duration_s
    outside = len(trace) - inside
    ratio = (inside / burst_s) / (outside / (DAY - burst_s))
    assert inside / burst_s == pytest.approx(1.0, rel=0.08)  # 3,600 an hour in a burst
    assert ratio == pytest.approx(10, rel=0.12)


def test_video_lengths_stay_within_5_to_120_s_around_a_30_s_median() -> None:
    lengths = arrivals.VideoLengths()
    rng = random.Random(11)
    drawn = [lengths.draw(rng) for _ in range(20_000)]
    assert min(drawn) >= 5.0
    assert max(drawn) <= 120.0
    assert statistics.median(drawn) == pytest.approx(30.0, rel=0.04)


def test_the_same_seed_draws_the_same_arrivals() -> None:
    pattern = arrivals.Diurnal(per_hour=500)
    assert _day(pattern, seed=3) == _day(pattern, seed=3)
    assert _day(pattern, seed=3) != _day(pattern, seed=4)
