"""The arrival rate each pool's policy reads, and its standard error, from the jobs seen."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from avatar_operator.jobs import Job
from avatar_operator.pools.arrivals import Arrivals
from avatar_operator.resource import AvatarVideoSpec, Ref

SPEC = AvatarVideoSpec.model_validate(
    {"portrait": "gs://b/p.png", "text": "Hi", "output": "gs://b/o/", "pool": "team"}
)


def _job(uid: str, *, estimate: float, created: dt.datetime) -> Job:
    return Job(
        ref=Ref("ns", uid, uid), spec=SPEC, generation=1, created=created, seen=0,
        estimate=estimate,
    )  # fmt: skip


def test_the_rate_and_its_standard_error_over_the_window() -> None:
    wall = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    arrivals = Arrivals(300.0)
    jobs = {
        "a": _job("a", estimate=30.0, created=wall),
        "b": _job("b", estimate=40.0, created=wall),
    }
    arrivals.note(jobs, ["team"], now=1000.0, wall=wall)
    assert arrivals.rate("team", 1000.0) == pytest.approx(70.0 / 300)
    # A Poisson count of those videos: sqrt(30² + 40²) / 300.
    assert arrivals.rate_error("team", 1000.0) == pytest.approx(50.0 / 300)
    assert math.isclose(arrivals.rate_error("elsewhere", 1000.0), 0.0)
    arrivals.note(jobs, ["team"], now=1400.0, wall=wall + dt.timedelta(seconds=400))
    assert (arrivals.rate("team", 1400.0), arrivals.rate_error("team", 1400.0)) == (0.0, 0.0)
