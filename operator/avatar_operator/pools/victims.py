"""Which pods a scale-down removes, and what every pod's annotations say meanwhile (pure).

The HPA and KEDA cannot choose which pod goes, so they remove busy ones mid-render.
Here the operator chooses: the victims are idle pods (the policy's, the longest idle
first), they stop getting jobs, they carry the lowest
``controller.kubernetes.io/pod-deletion-cost``, and only then are their Deployments'
replicas lowered, so the ReplicaSet controller removes exactly them (it removes the
lowest cost first among pods alike in phase and readiness; the policy takes pods still
starting first, as the controller does). Busy pods carry
``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``, so the cluster autoscaler
never drains a node from under a render; idle pods lose it, so an idle node can go.

With spot, the replicas are split between the on-demand and the spot Deployment
(``deployments.split_replicas``) and each Deployment's victims are its own idle pods:
a Deployment above its share gives up idle pods, one below it grows. A Deployment
whose surplus pods are all busy keeps them until they are idle (the pool then runs a
pod more than the policy asked for a while, never removing a render).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from avatar_operator.pools.deployments import Capacity, capacities, split_replicas
from avatar_operator.pools.resource import PoolSpec

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
VICTIM_COST = "-1000000"
"""Lower than any cost a person would set: the operator's victims go first."""


@dataclass(frozen=True)
class PoolPod:
    """A pod of the pool as the plan sees it (``exists``: False for one not created yet)."""

    name: str
    capacity: Capacity
    busy: bool
    ready: bool
    idle_since: float | None = None
    exists: bool = True


@dataclass(frozen=True)
class Plan:
    replicas: dict[Capacity, int]
    """Each Deployment's replicas after the change."""
    victims: tuple[str, ...]
    """The pods removed (idle ones only), in the order they were chosen."""

    @property
    def total(self) -> int:
        return sum(self.replicas.values())


def plan(
    spec: PoolSpec,
    *,
    target: int,
    current: Mapping[Capacity, int],
    pods: Sequence[PoolPod],
    preferred: Sequence[str] = (),
) -> Plan:
    """Each Deployment's replicas for ``target`` in all, and the idle pods that go.

    ``current`` has every Deployment the pool has now (a spot one left from before spot
    was turned off shrinks to 0, idle pods first). ``preferred`` are the policy's
    victims: taken first where they belong to a Deployment that must shrink, then other
    idle pods of it by the policy's rule (pods still starting first, the longest idle).
    """
    want = split_replicas(spec, target)
    rank = {name: i for i, name in enumerate(preferred)}
    replicas: dict[Capacity, int] = {}
    victims: list[str] = []
    for capacity in sorted({*capacities(spec), *current}):
        have, wanted = current.get(capacity, 0), want.get(capacity, 0)
        if wanted >= have:
            replicas[capacity] = wanted
            continue
        idle = sorted(
            (p for p in pods if p.capacity is capacity and not p.busy),
            key=lambda p: (
                rank.get(p.name, math.inf),
                p.ready,
                p.idle_since if p.idle_since is not None else math.inf,
            ),
        )
        chosen = idle[: have - wanted]
        victims += [p.name for p in chosen]
        replicas[capacity] = have - len(chosen)
    return Plan(replicas=replicas, victims=tuple(victims))


def annotation_patch(
    current: Mapping[str, str], *, busy: bool, victim: bool
) -> dict[str, str | None]:
    """The annotations to set (a value) or remove (None) on a pod; empty when right already."""
    patch: dict[str, str | None] = {}
    if busy and current.get(SAFE_TO_EVICT) != "false":
        patch[SAFE_TO_EVICT] = "false"
    elif not busy and current.get(SAFE_TO_EVICT) == "false":
        patch[SAFE_TO_EVICT] = None
    if victim and current.get(DELETION_COST) != VICTIM_COST:
        patch[DELETION_COST] = VICTIM_COST
    elif not victim and current.get(DELETION_COST) == VICTIM_COST:
        patch[DELETION_COST] = None
    return patch
