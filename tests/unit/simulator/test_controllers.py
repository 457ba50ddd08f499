"""The controllers: the policy is the operator's own code, the baselines do what they say."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import pytest

from avatar_operator.scaling import policy
from avatar_simulator import (
    baselines,
    controllers,
    engine,
    fleet,
    oracle,
    report,
    scenarios,
    service,
)
from tests.unit.simulator.helpers import REALTIME, exact_lag, run, trace

SHORT = engine.RunConfig(start=-1800.0, end=4 * 3600.0)


def _short(pattern: str, level: int, *, seed: int = 1) -> scenarios.Scenario:
    return dataclasses.replace(scenarios.scenario(pattern, level, seed=seed), config=SHORT)


def test_the_policy_controller_calls_the_operators_decide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[policy.PoolSignals] = []
    real = policy.decide

    def spy(
        signals: policy.PoolSignals, knobs: policy.PoolPolicy, memory: policy.PolicyMemory
    ) -> policy.Decision:
        calls.append(signals)
        return real(signals, knobs, memory)

    monkeypatch.setattr(policy, "decide", spy)
    controller = controllers.PolicyController(policy.PoolPolicy(max_replicas=4))
    result = run(trace([10.0, 20.0], [30.0, 30.0]), controller, end=300.0)
    assert result.lost == 0
    assert len(calls) == controller.decisions > 0
    # The first video found no pod: the policy was asked at once, and saw it waiting.
    assert any(s.now == 10.0 and s.queued == 1 for s in calls)


def test_changing_the_pool_policy_changes_the_fleet() -> None:
    base = _short("diurnal", 1000)
    most = 2 * 57
    knobs = scenarios.pool_defaults(base, most)
    lean = scenarios.run(dataclasses.replace(base, pool_policy=knobs), ("policy",))["policy"]
    warm = dataclasses.replace(knobs, min_replicas=60)
    floor = scenarios.run(dataclasses.replace(base, pool_policy=warm), ("policy",))["policy"]
    assert min(s.pods for s in floor.result.samples if s.t > 0) >= 60
    assert min(s.pods for s in lean.result.samples if s.t > 0) < 60
    assert floor.result.bill.gpu_hours > lean.result.bill.gpu_hours


def test_the_pool_defaults_are_the_crds_through_the_operators_pool_spec() -> None:
    knobs = scenarios.pool_defaults(scenarios.scenario("steady", 100), 9)
    assert (knobs.min_replicas, knobs.max_replicas) == (0, 9)
    assert knobs.target_wait_seconds == 120.0
    assert knobs.scale_down_delay_seconds == 300.0
    assert knobs.idle_before_zero_seconds == 600.0


def test_the_same_seed_gives_the_same_figures_and_another_seed_others() -> None:
    def figures(seed: int) -> dict[str, report.Figures]:
        runs = scenarios.run(_short("bursts", 1000, seed=seed), ("policy", "queue_length"))
        return {n: dataclasses.replace(report.figures(r), wall_s=0.0) for n, r in runs.items()}

    assert figures(4) == figures(4)
    assert figures(4) != figures(5)


@dataclass
class _View:
    now: float
    queued: int
    running: int
    pod_count: int

    def signals(self) -> policy.PoolSignals:
        raise NotImplementedError

    def idle_pods(self) -> list[str]:
        return [f"idle-{i}" for i in range(self.pod_count - self.running)]


def test_the_queue_length_rule_is_keda_on_an_hpa() -> None:
    rule = baselines.QueueLength(target=1, min_replicas=0, max_replicas=50)
    assert rule.interval_s == 30.0
    # Activation: one pod for the first message, the HPA takes it from there.
    assert rule.control(_View(0.0, queued=9, running=0, pod_count=0)).replicas == 1
    # ceil(queue / target), at most double (or +4) per step.
    assert rule.control(_View(30.0, queued=9, running=1, pod_count=1)).replicas == 5
    assert rule.control(_View(60.0, queued=5, running=5, pod_count=5)).replicas == 10
    # Within the 10% tolerance: no change.
    assert rule.control(_View(90.0, queued=0, running=10, pod_count=10)).replicas == 10
    # Down only to the largest recommendation of the last 300 s.
    assert rule.control(_View(120.0, queued=0, running=3, pod_count=10)).replicas == 10
    assert rule.control(_View(400.0, queued=0, running=3, pod_count=10)).replicas == 3
    # To zero only after the 300 s cooldown without messages.
    assert rule.control(_View(430.0, queued=0, running=0, pod_count=3)).replicas >= 1
    assert rule.control(_View(730.0, queued=0, running=0, pod_count=3)).replicas == 0


def test_the_queue_length_rule_lets_the_replica_set_choose_unless_told_idle_victims() -> None:
    view = _View(0.0, queued=0, running=1, pod_count=3)
    keda = baselines.QueueLength(target=1, min_replicas=0, max_replicas=5, stabilisation_s=0)
    assert keda.control(view).victims is None
    idle = baselines.QueueLength(
        target=1, min_replicas=0, max_replicas=5, stabilisation_s=0, idle_victims=True
    )
    command = idle.control(view)
    assert (command.replicas, command.victims) == (1, ("idle-0", "idle-1"))


def test_a_static_fleet_is_sized_by_erlang_c() -> None:
    """One video a second, one second each (a = 1): Erlang C is 1/3 with two servers and
    0.045 with three; P(wait > t) = C e^-(c - a)t."""

    def pods(target_wait_s: float) -> int:
        return baselines.erlang_c_pods(
            arrivals_per_s=1.0, mean_work_s=1.0, service_model=REALTIME, target_wait_s=target_wait_s
        )

    assert pods(2.0) == 2  # (1/3) e^-2 = 0.045 <= 5%
    assert pods(1.0) == 3  # (1/3) e^-1 = 0.12 > 5%


def test_the_oracles_plan_never_waits_longer_than_allowed() -> None:
    rng = random.Random(9)
    times = sorted(rng.uniform(0, 3600) for _ in range(2000))
    durations = [rng.uniform(20, 300) for _ in times]
    for allowed in (0.0, 60.0, 120.0):
        starts = oracle.planned_starts(times, durations, max_wait_s=allowed)
        waits = [s - t for s, t in zip(starts, times, strict=True)]
        assert min(waits) >= 0.0
        assert max(waits) <= allowed + 1e-9
    none = oracle.planned_starts(times, durations, max_wait_s=0.0)
    assert none == times


def test_a_wait_budget_never_makes_the_oracle_pay_more_pod_time() -> None:
    rng = random.Random(10)
    times = sorted(rng.uniform(0, 3600) for _ in range(1500))
    durations = [rng.uniform(20, 300) for _ in times]

    def pod_seconds(allowed: float) -> float:
        starts = oracle.planned_starts(times, durations, max_wait_s=allowed)
        levels = oracle.level_intervals(starts, durations, slots=1, bridge_s=0.0)
        return sum(end - begin for begin, end in levels)

    assert pod_seconds(120.0) <= pod_seconds(0.0)
    # With no wait allowed the pods' time is exactly the rendering time.
    assert pod_seconds(0.0) == pytest.approx(sum(durations))


def test_the_oracle_with_no_wait_budget_starts_every_video_on_arrival() -> None:
    """Each pod is asked for its own known lag before its video: nobody waits."""
    rng = random.Random(12)
    times = sorted(rng.uniform(0, 1800) for _ in range(60))
    videos = [rng.uniform(5, 60) for _ in times]
    model = service.works(videos, REALTIME, seed=1)
    fleet_model = fleet.FleetModel(lag=exact_lag(3.0))
    planner = oracle.Oracle(
        arrivals=times,
        works=model,
        service_model=REALTIME,
        fleet_model=fleet_model,
        start=-600.0,
        seed=1,
        max_wait_s=0.0,
    )
    result = run(trace(times, videos), planner, fleet_model=fleet_model, start=-600.0, end=2400.0)
    assert result.lost == 0
    assert max(result.waits) == pytest.approx(0.0, abs=1e-6)
