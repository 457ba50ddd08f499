"""What the policy is measured against: a static fleet, KEDA's queue-length rule, an oracle.

- **static**: the pods that the peak needs, all day: the fewest for which an M/M/c queue
  at the pattern's peak rate waits at most the target wait for 95% of videos (Erlang C).
- **queue_length**: KEDA as it is usually configured on a Deployment: the metric is the
  queue's message count (waiting plus in flight, RabbitMQ's ``messages``), replicas =
  ceil(metric / target) with target = slots per pod, polled every 30 s; the HPA's
  defaults (10% tolerance, at most double per step, scale-down stabilised over 300 s);
  KEDA's 300 s cooldown before zero; the ReplicaSet picks the pods to remove, busy or not.
  ``idle_victims`` gives it the operator's victim choice instead (idle pods only), to show
  how much of the difference to the policy is the victims and how much the rule.

The oracle, which knows the future, has a module of its own (``oracle``).
"""

from __future__ import annotations

import math
from collections import deque

from avatar_simulator import service
from avatar_simulator.control import Command, View


def erlang_c_pods(
    *,
    arrivals_per_s: float,
    mean_work_s: float,
    service_model: service.ServiceModel,
    target_wait_s: float,
    quantile: float = 0.95,
) -> int:
    """Pods for which M/M/c waits at most ``target_wait_s`` with probability ``quantile``;
    a pod's slots are its servers, each at the measured per-slot rate of a full pod."""
    slots = service_model.slots
    per_server_s = mean_work_s / service_model.job_rate(slots)
    load = arrivals_per_s * per_server_s
    servers = max(1, math.floor(load) + 1)
    while True:
        blocking = 1.0
        for n in range(1, servers + 1):
            blocking = load * blocking / (n + load * blocking)
        waiting = servers * blocking / (servers - load * (1 - blocking))
        late = waiting * math.exp(-(servers - load) * target_wait_s / per_server_s)
        if late <= 1 - quantile:
            return math.ceil(servers / slots)
        servers += 1


class Static:
    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    @property
    def interval_s(self) -> None:
        return None

    def start(self, view: View) -> Command:
        return Command(replicas=self.replicas)

    def control(self, view: View) -> None:
        return None

    def on_empty_arrival(self, view: View) -> None:
        return None

    def wake_times(self) -> tuple[float, ...]:
        return ()


class QueueLength:
    def __init__(
        self,
        *,
        target: int,
        min_replicas: int,
        max_replicas: int,
        polling_s: float = 30.0,
        stabilisation_s: float = 300.0,
        cooldown_s: float = 300.0,
        tolerance: float = 0.1,
        idle_victims: bool = False,
    ) -> None:
        self.target = target
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.polling_s = polling_s
        self.stabilisation_s, self.cooldown_s = stabilisation_s, cooldown_s
        self.tolerance = tolerance
        self.idle_victims = idle_victims
        self._recommendations: deque[tuple[float, int]] = deque()
        self._last_active: float | None = None

    @property
    def interval_s(self) -> float:
        return self.polling_s

    def start(self, view: View) -> Command:
        return Command(replicas=self.min_replicas)

    def control(self, view: View) -> Command:
        replicas = self._replicas(view)
        current = view.pod_count
        if not self.idle_victims or replicas >= current:
            return Command(replicas=replicas)
        victims = tuple(view.idle_pods()[: current - replicas])
        return Command(replicas=current - len(victims), victims=victims)

    def _replicas(self, view: View) -> int:
        now, current = view.now, view.pod_count
        metric = view.queued + view.running
        if metric > 0:
            self._last_active = now
        if current == 0:  # KEDA itself: activate on the first message, else stay
            return max(self.min_replicas, 1 if metric > 0 else 0)
        if metric == 0 and (
            self._last_active is None or now - self._last_active >= self.cooldown_s
        ):
            self._recommendations.clear()
            return self.min_replicas
        ratio = metric / (self.target * current)
        wanted = current if abs(ratio - 1) <= self.tolerance else math.ceil(metric / self.target)
        wanted = min(wanted, max(2 * current, current + 4))  # HPA: at most double per step
        wanted = max(1, min(self.max_replicas, wanted))
        recommendations = self._recommendations
        while recommendations and recommendations[0][0] <= now - self.stabilisation_s:
            recommendations.popleft()
        recommendations.append((now, wanted))
        if wanted < current:
            wanted = min(current, max(r for _, r in recommendations))
        return max(self.min_replicas, wanted)

    def on_empty_arrival(self, view: View) -> None:
        return None  # KEDA notices at its next poll

    def wake_times(self) -> tuple[float, ...]:
        return ()
