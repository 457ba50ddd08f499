"""The GKE L4 nodes under the pods: how long one takes to appear, when spot takes it back,
and what it costs.

One runtime pod asks for one L4, and a g2-standard-8 has one, so every pod has a node
of its own. A pod that finds no empty node waits for the cluster autoscaler to create
one: the VM is created (not billed until it runs), boots, installs the NVIDIA driver
(~30 s), pulls the image (30 s with GKE image streaming, ~3 min cold for a multi-GB CUDA
image) and the pod loads its models. The sum is a distribution with a long tail
(stockouts, slow driver installs: one GKE report took 9 minutes; the autoscaler allows
15 minutes for a GPU to appear). A node whose pod is removed stays, billed, until the
autoscaler finds it unneeded (``--scale-down-unneeded-time``, 10 minutes by default);
a new pod in that time starts on it with its image cached.

Spot nodes are preempted with 30 s notice, of which the pod gets ~15 s; an on-demand
floor keeps the first nodes on demand. Billing is per second with a one-minute minimum
per node, at list prices given as parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage of a node's start: log-normal around its median."""

    median_s: float
    sigma: float = 0.3

    def draw(self, rng: random.Random, scale: float) -> float:
        return scale * self.median_s * math.exp(rng.gauss(0.0, self.sigma))


@dataclass(frozen=True)
class Lag:
    """One node's start: ``unbilled`` (until the VM runs), ``billed`` (boot, driver, image),
    then ``pod_start`` (the pod loads its models)."""

    unbilled: float
    billed: float
    pod_start: float

    @property
    def total(self) -> float:
        return self.unbilled + self.billed + self.pod_start


@dataclass(frozen=True)
class LagModel:
    create: Stage = Stage(25.0, 0.4)
    """The autoscaler notices the pending pod and GCE creates the VM (not billed)."""
    boot: Stage = Stage(40.0, 0.3)
    driver: Stage = Stage(30.0, 0.2)
    pull: Stage = Stage(30.0, 0.3)
    """With GKE image streaming; ``Stage(180.0)`` for a cold pull."""
    load: Stage = Stage(30.0, 0.3)
    """The pod's models from the model volume (Ditto 7 s, XTTS-v2 13 s measured) and warm-up."""
    tail_probability: float = 0.05
    tail_s: tuple[float, float] = (120.0, 780.0)
    """A slow node's extra wait, uniform in this range (not billed: no VM yet)."""
    cap_s: float = 900.0
    """The autoscaler's max-node-provision-time: no node takes longer."""
    scale: float = 1.0
    """Stretches every stage (``with_median``)."""

    def draw(self, rng: random.Random) -> Lag:
        k = self.scale
        unbilled = self.create.draw(rng, k)
        if rng.random() < self.tail_probability:
            unbilled += rng.uniform(*self.tail_s)
        billed = self.boot.draw(rng, k) + self.driver.draw(rng, k) + self.pull.draw(rng, k)
        pod_start = self.load.draw(rng, k)
        over = unbilled + billed + pod_start - self.cap_s
        if over > 0:
            unbilled = max(0.0, unbilled - over)
        return Lag(unbilled=unbilled, billed=billed, pod_start=pod_start)

    def warm_start(self, rng: random.Random) -> float:
        """A pod on a node that is already up, image cached: its models only."""
        return self.load.draw(rng, self.scale)

    def median(self, samples: int = 20_001) -> float:
        rng = random.Random("lag-median")
        totals = sorted(self.draw(rng).total for _ in range(samples))
        return totals[samples // 2]

    def with_median(self, median_s: float) -> LagModel:
        """The same shape, stretched so that the whole start's median is ``median_s``."""
        return _stretched(self, median_s)


@functools.cache
def _stretched(model: LagModel, median_s: float) -> LagModel:
    """``LagModel.with_median``, once per model and median (each try draws 20,000 lags)."""
    for _ in range(4):
        model = dataclasses.replace(model, scale=model.scale * median_s / model.median())
    return model


@dataclass(frozen=True)
class Prices:
    """Dollars per node-hour: g2-standard-8 (1 L4), us-central1 list prices."""

    on_demand: float = 0.854
    spot: float = 0.341
    minimum_s: float = 60.0


@dataclass(frozen=True)
class Spot:
    on_demand_floor: int = 2
    """The first nodes alive are on demand; the rest are spot."""
    mean_lifetime_s: float = 6 * 3600.0
    """Mean time from a spot node's start to its preemption (exponential; GCE publishes
    no rate, so this is an assumption)."""
    notice_s: float = 30.0
    pod_notice_s: float = 15.0


@dataclass(frozen=True)
class FleetModel:
    lag: LagModel = LagModel()
    prices: Prices = Prices()
    spot: Spot | None = None
    linger_s: float = 600.0
    """An empty node's life before the cluster autoscaler removes it."""
    grace_s: float = 30.0
    """terminationGracePeriodSeconds: what a busy pod removed by a ReplicaSet gets."""


PROVISIONING, EMPTY, OCCUPIED, GONE = range(4)


class Node:
    __slots__ = ("billing_start", "end", "index", "lag", "pod", "ready_at", "spot", "state")

    def __init__(self, index: int, *, spot: bool, now: float, lag: Lag) -> None:
        self.index = index
        self.spot = spot
        self.lag = lag
        self.billing_start = now + lag.unbilled
        self.ready_at = self.billing_start + lag.billed
        self.end: float | None = None
        self.pod: object | None = None
        self.state = PROVISIONING


@dataclass(frozen=True)
class Bill:
    gpu_hours: float
    dollars: float
    spot_hours: float
    nodes: int


class Fleet:
    """The nodes and their states; the engine schedules what their times say."""

    def __init__(self, model: FleetModel, rng: random.Random) -> None:
        self.model = model
        self.rng = rng
        self.nodes: list[Node] = []
        self.empty: dict[Node, float] = {}
        """Ready nodes without a pod, and when each became empty (oldest first)."""
        self.unbound: dict[Node, None] = {}
        """Nodes still starting whose pod went away."""
        self._on_demand_live = 0

    def request(self, now: float, lag: Lag | None = None) -> Node:
        spot = self.model.spot
        on_spot = spot is not None and self._on_demand_live >= spot.on_demand_floor
        node = Node(
            len(self.nodes), spot=on_spot, now=now, lag=lag or self.model.lag.draw(self.rng)
        )
        if not on_spot:
            self._on_demand_live += 1
        self.nodes.append(node)
        return node

    def reusable(self) -> Node | None:
        """A node a new pod can take at once: the newest empty one, else one still starting."""
        if self.empty:
            node = next(reversed(self.empty))
            del self.empty[node]
            return node
        if self.unbound:
            node = next(iter(self.unbound))
            del self.unbound[node]
            return node
        return None

    def vacate(self, node: Node, now: float) -> bool:
        """The node's pod is gone; True when it became empty now (its linger starts)."""
        node.pod = None
        if node.state == PROVISIONING:
            self.unbound[node] = None
            return False
        node.state = EMPTY
        self.empty[node] = now
        return True

    def remove(self, node: Node, now: float) -> None:
        if node.state == GONE:
            return
        self.empty.pop(node, None)
        self.unbound.pop(node, None)
        node.state = GONE
        node.end = max(now, node.billing_start)
        node.pod = None
        if not node.spot:
            self._on_demand_live -= 1

    def preemption_after(self) -> float | None:
        spot = self.model.spot
        return None if spot is None else self.rng.expovariate(1 / spot.mean_lifetime_s)

    def bill(self, *, start: float, end: float) -> Bill:
        """What the nodes cost within ``[start, end]``: per second, one minute at least."""
        prices = self.model.prices
        hours = dollars = spot_hours = 0.0
        count = 0
        for node in self.nodes:
            node_end = min(end, node.end if node.end is not None else end)
            if node.billing_start >= end:
                continue
            seconds = node_end - max(start, node.billing_start)
            if node.billing_start >= start:
                seconds = max(seconds, prices.minimum_s)
            if seconds <= 0:
                continue
            count += 1
            hours += seconds / 3600
            dollars += seconds / 3600 * (prices.spot if node.spot else prices.on_demand)
            if node.spot:
                spot_hours += seconds / 3600
        return Bill(gpu_hours=hours, dollars=dollars, spot_hours=spot_hours, nodes=count)
