"""Which pods a scale-down removes (idle ones only), and the annotations pods carry."""

from __future__ import annotations

from typing import Any

from avatar_operator.pools.deployments import Capacity
from avatar_operator.pools.resource import PoolSpec
from avatar_operator.pools.victims import (
    DELETION_COST,
    SAFE_TO_EVICT,
    VICTIM_COST,
    PoolPod,
    annotation_patch,
    plan,
)

OD, SPOT = Capacity.ON_DEMAND, Capacity.SPOT


def _spec(**spec: Any) -> PoolSpec:
    return PoolSpec.model_validate({"image": "i", "maxReplicas": 10, **spec})


def _pod(name: str, capacity: Capacity = OD, *, busy: bool = False, **kw: Any) -> PoolPod:
    return PoolPod(name, capacity, busy=busy, ready=kw.get("ready", True),
                   idle_since=kw.get("idle_since"), exists=kw.get("exists", True))  # fmt: skip


def test_the_policys_victims_go_and_the_replicas_drop_by_as_many() -> None:
    pods = [_pod("a", busy=True), _pod("b", idle_since=5.0), _pod("c", idle_since=1.0)]
    result = plan(_spec(), target=2, current={OD: 3}, pods=pods, preferred=("c",))
    assert result.replicas == {OD: 2}
    assert result.victims == ("c",)


def test_a_busy_pod_is_never_a_victim_even_when_the_target_asks_for_it() -> None:
    pods = [_pod("a", busy=True), _pod("b", busy=True), _pod("c", idle_since=3.0)]
    result = plan(_spec(), target=1, current={OD: 3}, pods=pods)
    assert result.victims == ("c",)
    assert result.replicas == {OD: 2}  # the busy ones stay until they are idle


def test_without_preferences_starting_pods_go_first_then_the_longest_idle() -> None:
    pods = [
        _pod("idle-late", idle_since=9.0),
        _pod("idle-early", idle_since=2.0),
        _pod("starting", ready=False),
    ]
    result = plan(_spec(), target=0, current={OD: 3}, pods=pods)
    assert result.victims == ("starting", "idle-early", "idle-late")


def test_scale_up_fills_the_on_demand_floor_before_spot() -> None:
    spec = _spec(spot={"enabled": True, "onDemandFloor": 2})
    result = plan(spec, target=5, current={OD: 0, SPOT: 0}, pods=[])
    assert result.replicas == {OD: 2, SPOT: 3}
    assert result.victims == ()


def test_scale_down_with_spot_removes_spot_pods_above_the_split() -> None:
    spec = _spec(spot={"enabled": True, "onDemandFloor": 1})
    pods = [
        _pod("od-1", idle_since=1.0),
        _pod("spot-1", SPOT, busy=True),
        _pod("spot-2", SPOT, idle_since=4.0),
    ]
    result = plan(spec, target=2, current={OD: 1, SPOT: 2}, pods=pods, preferred=("od-1",))
    # The policy offered the on-demand pod, but the floor keeps it: an idle spot pod goes.
    assert result.victims == ("spot-2",)
    assert result.replicas == {OD: 1, SPOT: 1}


def test_a_spot_deployment_left_from_before_shrinks_to_zero_idle_first() -> None:
    spec = _spec()  # spot turned off since
    pods = [_pod("od-1", busy=True), _pod("spot-1", SPOT, idle_since=1.0)]
    result = plan(spec, target=2, current={OD: 1, SPOT: 1}, pods=pods)
    assert result.replicas == {OD: 2, SPOT: 0}
    assert result.victims == ("spot-1",)


def test_a_pod_not_created_yet_can_be_a_victim_by_replicas_alone() -> None:
    pods = [_pod("a", idle_since=1.0), _pod("dep/pending-1", ready=False, exists=False)]
    result = plan(_spec(), target=1, current={OD: 2}, pods=pods)
    assert result.victims == ("dep/pending-1",)
    assert result.replicas == {OD: 1}


def test_busy_pods_are_kept_from_the_autoscaler_and_victims_get_the_lowest_cost() -> None:
    assert annotation_patch({}, busy=True, victim=False) == {SAFE_TO_EVICT: "false"}
    assert annotation_patch({SAFE_TO_EVICT: "false"}, busy=True, victim=False) == {}
    assert annotation_patch({SAFE_TO_EVICT: "false"}, busy=False, victim=False) == {
        SAFE_TO_EVICT: None
    }
    assert annotation_patch({}, busy=False, victim=True) == {DELETION_COST: VICTIM_COST}
    # A victim that was not removed gets its cost back to the default.
    assert annotation_patch({DELETION_COST: VICTIM_COST}, busy=False, victim=False) == {
        DELETION_COST: None
    }
    # A cost someone else set is theirs.
    assert annotation_patch({DELETION_COST: "7"}, busy=False, victim=False) == {}
