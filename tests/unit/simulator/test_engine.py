"""The event loop as a user of the simulator sees it: waits, interruptions, preemptions.

Every case is small enough to work out by hand (exact lags, one second of work per
second of video), so a wrong wait, a lost video or a wrong bill shows as a number.
"""

from __future__ import annotations

import pytest

from avatar_simulator import baselines, control, fleet
from avatar_simulator.control import Command, View
from tests.unit.simulator.helpers import exact_lag, run, trace


@pytest.mark.parametrize(
    ("pods", "waits"),
    [(1, (0.0, 10.0, 20.0)), (2, (0.0, 0.0, 10.0)), (3, (0.0, 0.0, 0.0))],
)
def test_a_static_fleet_serves_in_arrival_order_as_worked_out_by_hand(
    pods: int, waits: tuple[float, ...]
) -> None:
    """Three 10 s videos at once on c pods (M/D/c with one batch): the k-th waits for
    the pods ahead of it."""
    result = run(trace([0.0, 0.0, 0.0], [10.0, 10.0, 10.0]), baselines.Static(pods))
    assert result.waits == pytest.approx(waits)
    assert (result.counted, result.lost, result.interrupted) == (3, 0, 0)
    # Static nodes run from before the day to its end (100 s): no minimum, per second.
    assert result.bill.gpu_hours == pytest.approx(pods * 100 / 3600)
    assert result.bill.nodes == pods


def test_a_video_before_the_day_loads_the_fleet_but_is_not_counted() -> None:
    result = run(trace([-1.0, 0.0], [10.0, 10.0]), baselines.Static(1), start=-10.0)
    assert result.counted == 1
    assert result.waits == pytest.approx((9.0,))  # the warm-up's video runs until 9 s


class _ScaleDownAt:
    """Two pods, then one from ``at``, the ReplicaSet choosing which (as under KEDA)."""

    interval_s = 1.0

    def __init__(self, at: float) -> None:
        self.at = at

    def start(self, view: View) -> Command:
        return Command(replicas=2)

    def control(self, view: View) -> Command | None:
        return Command(replicas=1) if view.now >= self.at else None

    def on_empty_arrival(self, view: View) -> None:
        return None

    def wake_times(self) -> tuple[float, ...]:
        return ()


def test_a_busy_pod_removed_requeues_its_video_at_the_front_as_interrupted() -> None:
    """Two 100 s videos run on two pods and a 10 s one waits; at 5 s the Deployment
    drops to one pod and the ReplicaSet removes a busy one: its video is killed at the
    end of the 30 s grace and goes back ahead of the one that waited since 1 s."""
    result = run(trace([0.0, 0.0, 1.0], [100.0, 100.0, 10.0]), _ScaleDownAt(5.0), end=300.0)
    assert (result.lost, result.interrupted) == (0, 1)
    assert result.wasted_gpu_s == pytest.approx(35.0)  # rendered from 0 to 35 s, thrown away
    # The survivor: the first video until 100 s, the interrupted one until 200 s, then the
    # short one. The interrupted video waited 100 - 35 s; the short one 1 s to 200 s.
    assert result.waits == pytest.approx((0.0, 65.0, 199.0))


@pytest.mark.parametrize(("length", "interrupted"), [(30.0, 0), (100.0, 1)])
def test_a_spot_preemption_gives_the_pod_15_s_then_requeues_its_video(
    monkeypatch: pytest.MonkeyPatch, length: float, interrupted: int
) -> None:
    """The node is ready at -1 s and preempted 20 s later (19 s): 30 s of notice for the
    node, 15 s for the pod (killed at 34 s). A 30 s video finishes in time; a 100 s one is
    interrupted and restarts at once on the replacement pod (asked for at 19 s, serving
    at 24 s), which the Deployment creates at the preemption."""
    preemptions = iter([20.0])
    monkeypatch.setattr(fleet.Fleet, "preemption_after", lambda self: next(preemptions, None))
    model = fleet.FleetModel(lag=exact_lag(), spot=fleet.Spot(on_demand_floor=0))
    result = run(trace([0.0], [length]), baselines.Static(1), fleet_model=model, end=50.0)
    assert (result.lost, result.interrupted) == (0, interrupted)
    assert result.waits == pytest.approx((0.0,))
    assert result.wasted_gpu_s == pytest.approx(34.0 * interrupted)
    # The preempted node is billed to the end of its notice (49 s); the replacement from
    # 20 s (billed a second after it was asked for) to the end of the run, 134 s, or to
    # 50 s, which its one-minute minimum makes 60 s.
    end = 134.0 if interrupted else 50.0
    assert result.end == pytest.approx(end)
    assert result.bill.spot_hours == pytest.approx((49.0 + max(60.0, end - 20.0)) / 3600)
    assert result.bill.dollars == pytest.approx(result.bill.spot_hours * fleet.Prices().spot)


class _Recorder:
    """Counts what a controller sees, to check when the engine asks it."""

    def __init__(self, inner: control.Controller) -> None:
        self.inner = inner
        self.empty_arrivals: list[float] = []

    @property
    def interval_s(self) -> float | None:
        return self.inner.interval_s

    def start(self, view: View) -> Command:
        return self.inner.start(view)

    def control(self, view: View) -> Command | None:
        return self.inner.control(view)

    def on_empty_arrival(self, view: View) -> Command | None:
        self.empty_arrivals.append(view.now)
        return self.inner.on_empty_arrival(view)

    def wake_times(self) -> tuple[float, ...]:
        return self.inner.wake_times()


def test_a_video_at_a_pool_without_pods_asks_the_controller_at_once() -> None:
    recorder = _Recorder(baselines.Static(0))
    result = run(trace([3.0], [10.0]), recorder, end=20.0)
    assert recorder.empty_arrivals == [3.0]
    assert result.lost == 1  # a static fleet of none never serves it: lost, and counted so


def test_the_policy_reads_the_arrival_rate_with_its_standard_error() -> None:
    """The rate over the window, and sqrt(sum of squares) / window, as the operator's; an
    empty window reads exactly 0 for both."""
    seen: list[tuple[float, float, float]] = []

    class Looking(_Recorder):
        def control(self, view: View) -> Command | None:
            s = view.signals()
            seen.append((view.now, s.arrival_rate, s.arrival_rate_error))
            return None

    class Every100(baselines.QueueLength):
        @property
        def interval_s(self) -> float:
            return 100.0

    looking = Looking(Every100(target=1, min_replicas=1, max_replicas=1))
    run(trace([10.0, 20.0], [30.0, 40.0]), looking, start=-5.0, end=1000.0)
    window = 300.0
    at = {round(t): (rate, error) for t, rate, error in seen}
    assert at[95] == pytest.approx((70.0 / window, 50.0 / window))  # sqrt(30² + 40²) = 50
    assert at[395] == (0.0, 0.0)
