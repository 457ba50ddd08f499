"""A scenario (load level, arrival pattern, fleet, service figures) and one run of it
under each controller: the same arrivals and service times for all of them.

The bounds every controller gets are the same: at least 0 pods, at most twice what the
static fleet needs for the peak. Slots per pod come from the policy's own ``slots_for``
on an L4's memory as the runtime measured it, so the runtime scenario runs the slots
``slots: auto`` would pick.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
from dataclasses import dataclass, field

from avatar_operator.pools import resource
from avatar_operator.scaling import policy
from avatar_simulator import (
    arrivals,
    baselines,
    control,
    controllers,
    engine,
    fleet,
    oracle,
    service,
)

CONTROLLERS = ("policy", "static", "queue_length", "oracle")
"""What every scenario runs; ``queue_length_idle`` (the rule with the operator's idle-only
victims) is a check on the comparison, run where the cli asks for it."""
PATTERNS = ("steady", "diurnal", "bursts", "spot")
"""``spot`` is the diurnal load on a spot fleet (preemptions, an on-demand floor)."""

L4_MEMORY_BYTES = 23_034 * 2**20
"""What NVML reports for an L4 (24 GB card)."""
LOADED_BYTES = 2.38e9 + 3.39e9 + 1.73e9
"""XTTS-v2 (NVML after load), Whisper large-v3 (peak, fp16) and one Ditto slot (peak),
as the runtime's GPU benchmarks measured them."""
PER_SLOT_BYTES = 3.83e9 - 1.73e9
"""A second Ditto slot's measured peak increment (1.73 GB with one, 3.83 GB with two)."""


@dataclass(frozen=True)
class Scenario:
    pattern: str
    level: int
    """Videos per hour at the peak."""
    service_model: service.ServiceModel = service.SEED_L4
    fleet_model: fleet.FleetModel = field(default_factory=fleet.FleetModel)
    lengths: arrivals.VideoLengths = field(default_factory=arrivals.VideoLengths)
    pool_policy: policy.PoolPolicy | None = None
    """The policy's knobs; None for a pool with the CRD's defaults and this scenario's bounds."""
    min_replicas: int = 0
    """The floor every autoscaler gets (0: scale to zero)."""
    target_wait_s: float = 120.0
    """The p95 wait the static fleet is sized for."""
    oracle_wait_s: float = 120.0
    """The longest wait the oracle plans for: the target wait (0: none at all)."""
    seed: int = 1
    config: engine.RunConfig = field(default_factory=engine.RunConfig)


@dataclass(frozen=True)
class Run:
    controller: str
    result: engine.Result
    wall_s: float


def auto_slots() -> int:
    pod = policy.PodSignal(
        name="l4",
        ready=True,
        gpu_memory_total_bytes=L4_MEMORY_BYTES,
        gpu_memory_used_bytes=LOADED_BYTES,
    )
    slots = policy.slots_for([pod], per_slot_bytes=PER_SLOT_BYTES, margin_bytes=1.5e9, max_slots=3)
    assert slots is not None
    return slots


def service_model(name: str) -> service.ServiceModel:
    if name == "seed":
        return service.SEED_L4
    return dataclasses.replace(service.RUNTIME_H100, slots=auto_slots())


def fleet_model(*, lag_median_s: float | None = 180.0, spot: bool = False) -> fleet.FleetModel:
    lag = fleet.LagModel()
    if lag_median_s is not None:
        lag = lag.with_median(lag_median_s)
    return fleet.FleetModel(lag=lag, spot=fleet.Spot() if spot else None)


def pattern_for(name: str, level: int, *, seed: int) -> arrivals.Pattern:
    if name == "steady":
        return arrivals.Steady(per_hour=level)
    if name in ("diurnal", "spot"):
        return arrivals.Diurnal(per_hour=level)
    if name == "bursts":
        return arrivals.Bursts.spread(level, seed=seed)
    raise ValueError(f"unknown pattern {name!r}")


def scenario(
    pattern: str,
    level: int,
    *,
    service_name: str = "seed",
    lag_median_s: float = 180.0,
    seed: int = 1,
    min_replicas: int = 0,
    oracle_wait_s: float = 120.0,
) -> Scenario:
    return Scenario(
        pattern=pattern,
        level=level,
        service_model=service_model(service_name),
        fleet_model=fleet_model(lag_median_s=lag_median_s, spot=pattern == "spot"),
        min_replicas=min_replicas,
        oracle_wait_s=oracle_wait_s,
        seed=seed,
    )


def pool_defaults(scene: Scenario, most: int) -> policy.PoolPolicy:
    """The knobs of an AvatarRuntimePool with the CRD's defaults and this scenario's bounds,
    through the operator's own ``PoolSpec.policy`` (target wait 120 s, scale-down delay
    300 s, idle before zero 600 s)."""
    spec = resource.PoolSpec.model_validate(
        {"image": "simulated", "minReplicas": scene.min_replicas, "maxReplicas": most}
    )
    return spec.policy()


def run(scene: Scenario, names: tuple[str, ...] = CONTROLLERS) -> dict[str, Run]:
    """Each controller on the same arrivals, service times and node lags."""
    config = scene.config
    pattern = pattern_for(scene.pattern, scene.level, seed=scene.seed)
    trace = arrivals.generate(
        pattern,
        start=config.start,
        end=config.end,
        lengths=scene.lengths,
        rng=random.Random(f"arrivals-{scene.seed}"),
    )
    works = service.works(trace.videos, scene.service_model, seed=scene.seed)
    static_pods = baselines.erlang_c_pods(
        arrivals_per_s=pattern.peak_per_second,
        mean_work_s=statistics.fmean(works) if works else 1.0,
        service_model=scene.service_model,
        target_wait_s=scene.target_wait_s,
    )
    most = max(2, 2 * static_pods)
    runs: dict[str, Run] = {}
    for name in names:
        started = time.perf_counter()
        chosen = _controller(
            name, scene=scene, trace=trace, works=works, static_pods=static_pods, most=most
        )
        result = engine.Engine(
            trace=trace,
            service_model=scene.service_model,
            fleet_model=scene.fleet_model,
            controller=chosen,
            config=config,
            seed=scene.seed,
        ).run()
        runs[name] = Run(controller=name, result=result, wall_s=time.perf_counter() - started)
    return runs


def _controller(
    name: str,
    *,
    scene: Scenario,
    trace: arrivals.Trace,
    works: list[float],
    static_pods: int,
    most: int,
) -> control.Controller:
    if name == "policy":
        return controllers.PolicyController(scene.pool_policy or pool_defaults(scene, most))
    if name == "static":
        return baselines.Static(static_pods)
    if name in ("queue_length", "queue_length_idle"):
        return baselines.QueueLength(
            target=scene.service_model.slots,
            min_replicas=scene.min_replicas,
            max_replicas=most,
            idle_victims=name == "queue_length_idle",
        )
    if name == "oracle":
        return oracle.Oracle(
            arrivals=trace.times,
            works=works,
            service_model=scene.service_model,
            fleet_model=scene.fleet_model,
            start=scene.config.start,
            seed=scene.seed,
            max_wait_s=scene.oracle_wait_s,
        )
    raise ValueError(f"unknown controller {name!r}")
