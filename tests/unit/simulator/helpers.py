"""Small, exact fleets for the simulator's tests: lags without randomness, one-second work."""

from __future__ import annotations

from collections.abc import Sequence

from avatar_simulator import arrivals, control, engine, fleet, service

REALTIME = service.ServiceModel(name="realtime", seconds_per_video_second=1.0, jitter=0.0)
"""A video second takes one second of a pod, exactly."""


def exact_lag(step_s: float = 1.0) -> fleet.LagModel:
    """Every stage takes ``step_s``: a node is billed ``step_s`` after it is asked for,
    ready ``4 * step_s`` after, and its pod serves at ``5 * step_s``."""
    stage = fleet.Stage(step_s, sigma=0.0)
    return fleet.LagModel(
        create=stage, boot=stage, driver=stage, pull=stage, load=stage, tail_probability=0.0
    )


def trace(times: Sequence[float], videos: Sequence[float]) -> arrivals.Trace:
    return arrivals.Trace(times=tuple(times), videos=tuple(videos))


def run(
    videos: arrivals.Trace,
    controller: control.Controller,
    *,
    fleet_model: fleet.FleetModel | None = None,
    start: float = -5.0,
    end: float = 100.0,
) -> engine.Result:
    """One run; with the default start the first pods serve from 0."""
    return engine.Engine(
        trace=videos,
        service_model=REALTIME,
        fleet_model=fleet_model or fleet.FleetModel(lag=exact_lag()),
        controller=controller,
        config=engine.RunConfig(start=start, end=end),
        seed=1,
    ).run()
