"""What a scaling controller sees of the simulated pool, and what it may ask for.

The policy under test and every baseline talk to the engine through these two types
only, so they are compared on the same fleet: a controller reads a ``View`` and answers
with a ``Command`` (the Deployment's replicas, and optionally which pods go, as the
operator's victims annotation does; without victims the ReplicaSet picks, as it does
under the HPA and KEDA, busy pods included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from avatar_operator.scaling import policy
from avatar_simulator import fleet


@dataclass(frozen=True)
class Command:
    replicas: int
    victims: tuple[str, ...] | None = None
    """Pods to remove (idle ones); None lets the ReplicaSet choose."""
    lags: tuple[fleet.Lag, ...] = ()
    """The starts of the nodes this command's new pods will need, where the controller
    knows them in advance (the oracle); otherwise each is drawn from the lag model."""


class View(Protocol):
    @property
    def now(self) -> float: ...

    @property
    def queued(self) -> int:
        """Videos waiting for a slot."""
        ...

    @property
    def running(self) -> int:
        """Videos rendering."""
        ...

    @property
    def pod_count(self) -> int:
        """Pods starting or serving (not terminating)."""
        ...

    def signals(self) -> policy.PoolSignals:
        """What the operator would read now (backlog, arrivals, pods)."""
        ...

    def idle_pods(self) -> list[str]:
        """Idle pods, starting ones first, then the longest idle."""
        ...


class Controller(Protocol):
    @property
    def interval_s(self) -> float | None:
        """How often ``control`` runs; None for never (a static fleet)."""
        ...

    def start(self, view: View) -> Command:
        """The fleet at the start of the run."""
        ...

    def control(self, view: View) -> Command | None:
        """Every ``interval_s``: the replicas wanted now (None: no change)."""
        ...

    def on_empty_arrival(self, view: View) -> Command | None:
        """A video arrived at a pool without pods (the operator decides at once)."""
        ...

    def wake_times(self) -> tuple[float, ...]:
        """Extra times ``control`` must run at (a plan made in advance)."""
        ...
