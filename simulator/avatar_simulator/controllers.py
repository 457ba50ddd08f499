"""The policy under test, driving the simulated pool as the operator drives a real one.

No copy: this calls ``avatar_operator.scaling.policy.decide`` itself, every 10 s (the
operator's ``scaling.interval_seconds``) and at
once when a video reaches a pool with no pods, keeps the returned memory, sets the
replicas and removes exactly the victims it names (the operator marks them with
``controller.kubernetes.io/pod-deletion-cost`` so that the ReplicaSet takes those).
"""

from __future__ import annotations

from avatar_operator import settings
from avatar_operator.scaling import policy
from avatar_simulator.control import Command, View


class PolicyController:
    def __init__(
        self,
        pool_policy: policy.PoolPolicy,
        *,
        interval_s: float = settings.ScalingSettings().interval_seconds,
    ) -> None:
        self.policy = pool_policy
        self.memory = policy.PolicyMemory()
        self._interval_s = interval_s
        self.decisions = 0

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def start(self, view: View) -> Command:
        return Command(replicas=self.policy.min_replicas, victims=())

    def control(self, view: View) -> Command:
        decision = policy.decide(view.signals(), self.policy, self.memory)
        self.memory = decision.memory
        self.decisions += 1
        return Command(replicas=decision.replicas, victims=decision.victims)

    def on_empty_arrival(self, view: View) -> Command:
        return self.control(view)

    def wake_times(self) -> tuple[float, ...]:
        return ()
