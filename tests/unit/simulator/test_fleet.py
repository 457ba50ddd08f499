"""Nodes: what they cost (per second, one minute at least) and how long they take to come."""

from __future__ import annotations

import random

import pytest

from avatar_simulator import fleet

HOUR = 3600.0


def _node(nodes: fleet.Fleet, *, asked: float, unbilled: float, gone: float) -> fleet.Node:
    node = nodes.request(asked, fleet.Lag(unbilled=unbilled, billed=0.0, pod_start=0.0))
    nodes.remove(node, gone)
    return node


def test_a_node_is_billed_per_second_with_a_one_minute_minimum() -> None:
    nodes = fleet.Fleet(fleet.FleetModel(), random.Random(1))
    _node(nodes, asked=0.0, unbilled=10.0, gone=40.0)  # runs 30 s: billed 60 s
    _node(nodes, asked=0.0, unbilled=0.0, gone=90.5)  # 90.5 s: not rounded to minutes
    bill = nodes.bill(start=0.0, end=1000.0)
    assert bill.gpu_hours == pytest.approx((60.0 + 90.5) / HOUR)
    assert bill.dollars == pytest.approx((60.0 + 90.5) / HOUR * 0.854)
    assert (bill.nodes, bill.spot_hours) == (2, 0.0)


def test_only_the_window_is_billed_and_a_vm_not_yet_created_costs_nothing() -> None:
    nodes = fleet.Fleet(fleet.FleetModel(), random.Random(1))
    _node(nodes, asked=-100.0, unbilled=0.0, gone=20.0)  # 20 s of it within the window
    nodes.request(95.0, fleet.Lag(unbilled=10.0, billed=30.0, pod_start=5.0))  # VM at 105 s
    bill = nodes.bill(start=0.0, end=100.0)
    assert bill.gpu_hours == pytest.approx(20.0 / HOUR)
    assert bill.nodes == 1


def test_spot_nodes_beyond_the_on_demand_floor_cost_the_spot_price() -> None:
    nodes = fleet.Fleet(fleet.FleetModel(spot=fleet.Spot(on_demand_floor=1)), random.Random(1))
    lag = fleet.Lag(unbilled=0.0, billed=0.0, pod_start=0.0)
    first, second = nodes.request(0.0, lag), nodes.request(0.0, lag)
    assert (first.spot, second.spot) == (False, True)
    nodes.remove(first, 3600.0)
    nodes.remove(second, 3600.0)
    bill = nodes.bill(start=0.0, end=3600.0)
    assert bill.dollars == pytest.approx(0.854 + 0.341)
    assert bill.spot_hours == pytest.approx(1.0)
    # With the on-demand node gone, the next one keeps the floor: on demand again.
    assert not nodes.request(3600.0, lag).spot


def _totals(model: fleet.LagModel, count: int = 20_000) -> list[float]:
    rng = random.Random(7)
    return sorted(model.draw(rng).total for _ in range(count))


@pytest.mark.parametrize("median_s", [60.0, 180.0, 420.0])
def test_the_provisioning_lag_has_the_median_asked_for(median_s: float) -> None:
    totals = _totals(fleet.LagModel().with_median(median_s))
    assert totals[len(totals) // 2] == pytest.approx(median_s, rel=0.03)


def test_the_provisioning_lag_has_a_long_tail_up_to_the_autoscalers_15_minutes() -> None:
    totals = _totals(fleet.LagModel().with_median(180.0))
    slow = sum(1 for t in totals if t > 600.0) / len(totals)
    assert 0.01 < slow < 0.05  # a few nodes in a hundred take over 10 minutes
    assert totals[-1] <= 900.0 + 1e-6  # the cluster autoscaler's max-node-provision-time
    assert totals[int(0.999 * len(totals))] > 780.0


def test_a_pod_on_a_node_already_up_only_loads_its_models() -> None:
    model = fleet.LagModel()
    rng = random.Random(3)
    warm = sorted(model.warm_start(rng) for _ in range(2001))
    assert warm[1000] == pytest.approx(model.load.median_s, rel=0.05)
    assert warm[1000] < model.median() / 3
