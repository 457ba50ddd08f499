"""The scaling loop: each AvatarRuntimePool sized every few seconds, and at once at zero.

One task for every pool. Each round it reads the pools' Deployments (one list call)
and creates or updates them from the pools' specs, reads every pool pod's figures from
one source (Prometheus, or the pods themselves: ``scaling.signals``), and for each pool
asks the pure policy (``scaling.policy.decide``) how many pods it needs, keeping the
policy's memory per pool. A scale-down's victims are idle pods, removed in an order
that cannot take another: no more jobs to them (``PodRegistry.retire``), the lowest
deletion cost on them, then the lower replicas (``victims``). The decision goes to the
pool's status, a log line and the pool metrics.

A video queued at a pool with no pods wakes the loop at once: the first pod of a
pool at zero is minutes away on a GPU node, and a 10 s tick should not add to that.
A video whose pool has no AvatarRuntimePool and no pods says so in its status.

A pool that cannot be run as written says why in its status (``message``): a spec the
operator cannot read (one stored before the CRD's rules), a pool outside the runtime
namespace, or a Deployment the API server refuses (a bad resource quantity, a name
another Deployment has). A refused update of a running pool's template keeps sizing
the Deployment it has, and says so until the spec is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from avatar_operator import status as st
from avatar_operator.dispatcher import Dispatcher
from avatar_operator.kube import Kube
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.pods import PodRecord
from avatar_operator.pools import rollout
from avatar_operator.pools import status as pool_status
from avatar_operator.pools import victims as vic
from avatar_operator.pools.arrivals import Arrivals
from avatar_operator.pools.deployments import (
    CAPACITY_LABEL,
    MANAGED_BY,
    Capacity,
    deployment_name,
)
from avatar_operator.pools.missing import MissingPools
from avatar_operator.pools.resource import Pool, pool_of
from avatar_operator.scaling.policy import Direction, PodSignal, PolicyMemory, PoolSignals, decide
from avatar_operator.scaling.signals import (
    PodFigures,
    PodTarget,
    SignalsError,
    SignalSource,
    pod_signal,
)
from avatar_operator.settings import POOL_LABEL, OperatorSettings

log = logging.getLogger(__name__)

INSTANCE = "app.kubernetes.io/instance"


@dataclass
class PoolState:
    """What the loop keeps per pool between rounds."""

    pool: Pool
    memory: PolicyMemory = field(default_factory=PolicyMemory)
    victims: dict[str, float] = field(default_factory=dict)
    """Pods chosen for removal, and when (monotonic)."""
    pods: int = 0
    """Pods counted in the last round (starting ones too)."""
    written: dict[str, Any] | None = None
    scaled_at: Any = None
    logged: tuple[int, str] | None = None
    spec_problem: str = ""
    """Why the pool's latest spec was not taken (the previous one is still run)."""
    deployment_problem: str = ""
    """Why the API server refused the pool's Deployment (its creation, or its template)."""

    @property
    def problems(self) -> str:
        return "; ".join(p for p in (self.spec_problem, self.deployment_problem) if p)


class Scaler:
    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        kube: Kube,
        metrics: OperatorMetrics,
        settings: OperatorSettings,
        source: SignalSource,
    ) -> None:
        self.dispatcher = dispatcher
        self.kube = kube
        self.metrics = metrics
        self.settings = settings
        self.source = source
        self.namespace = settings.runtime.namespace
        self.pools: dict[str, PoolState] = {}
        self._refused: dict[tuple[str, str], int] = {}  # pools elsewhere, or unreadable
        self.arrivals = Arrivals(settings.scaling.throughput_window_seconds)
        self.missing = MissingPools(dispatcher, namespace=self.namespace, started=time.monotonic())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        dispatcher.pods.on_busy = self._shield

    # Intake: the pool watch, and the dispatcher's hook.

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        if event_type == "DELETED":
            if namespace == self.namespace and self.pools.pop(name, None) is not None:
                log.info("pool %s/%s deleted: its Deployments go with it", namespace, name)
                self.metrics.forget_pool(name)
            return
        generation = int(meta.get("generation") or 1)
        if namespace != self.namespace:
            self._refuse(
                namespace,
                name,
                generation,
                f"Not run: the operator runs runtime pods in namespace {self.namespace!r};"
                f" create the pool there (videos in any namespace can name it).",
            )
            return
        state = self.pools.get(name)
        try:
            pool = pool_of(body)
            pool.spec.policy()  # its bounds and delays, as the policy checks them
        except (ValidationError, ValueError) as exc:  # not what the CRD lets through
            problem = f"Spec generation {generation} not taken: {pool_status.spec_errors(exc)}."
            if state is not None:
                problem += f" Still running generation {state.pool.generation}."
                state.spec_problem = problem
                state.written = None  # say it at the next round
            self._refuse(namespace, name, generation, problem)
            return
        self._refused.pop((namespace, name), None)
        if state is None:
            log.info("pool %s: sizing it (min %d, max %d)", pool, pool.spec.min_replicas,
                     pool.spec.max_replicas)  # fmt: skip
            self.pools[name] = PoolState(pool=pool)
            self._wake.set()
        elif state.pool != pool:
            state.pool, state.spec_problem = pool, ""
            self._wake.set()

    def _refuse(self, namespace: str, name: str, generation: int, message: str) -> None:
        if self._refused.get((namespace, name)) == generation:
            return
        self._refused[(namespace, name)] = generation
        log.warning("pool %s/%s: %s", namespace, name, message)
        patch = pool_status.refused(generation=generation, message=message)
        self.dispatcher.background.spawn(
            self.kube.patch_pool_status(namespace, name, patch), f"pool-refused-{name}"
        )

    def _shield(self, record: PodRecord) -> None:
        """A pool's pod that just got a job is marked not safe to evict at once, not at the
        next round (a render outlasts any eviction notice). The round clears it when idle."""
        if record.labels.get("app.kubernetes.io/managed-by") != MANAGED_BY or record.gone:
            return
        if record.annotations.get(vic.SAFE_TO_EVICT) == "false":
            return
        record.annotations[vic.SAFE_TO_EVICT] = "false"  # once, though the write is on its way
        patch: dict[str, str | None] = {vic.SAFE_TO_EVICT: "false"}
        self.dispatcher.background.spawn(
            self.kube.annotate_pod(self.namespace, record.name, patch), f"shield-{record.name}"
        )

    def queued(self, pool: str) -> None:
        """A video was queued at ``pool``: size the pool now if it has no pod at all."""
        state = self.pools.get(pool)
        if state is not None and state.pods == 0:
            self._wake.set()

    # The loop.

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scaling")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.scaling.interval_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("sizing the pools failed; trying again")

    async def tick(self) -> None:
        """One round: every pool's Deployments, figures, decision, replicas and status."""
        self._wake.clear()
        now, wall = time.monotonic(), st.now()
        self.arrivals.note(self.dispatcher.jobs, self.pools, now=now, wall=wall)
        self.missing.note(self.pools, now=now, grace_seconds=self.settings.scaling.interval_seconds)
        states = list(self.pools.values())
        if not states:
            return
        found = await self.kube.deployments(
            self.namespace, selector=f"app.kubernetes.io/managed-by={MANAGED_BY}"
        )
        replicas: dict[str, dict[Capacity, int]] = {}
        for state in states:
            mine = {
                Capacity(d["metadata"]["labels"].get(CAPACITY_LABEL, Capacity.ON_DEMAND)): d
                for d in found
                if (d["metadata"].get("labels") or {}).get(INSTANCE) == state.pool.name
            }
            try:
                got, problem = await rollout.sync(
                    self.kube,
                    state.pool,
                    mine,
                    namespace=self.namespace,
                    settings=self.settings.pools,
                    said=state.deployment_problem,
                )
                state.deployment_problem = problem
            except Exception:
                log.exception("pool %s: its Deployments could not be brought up to date",
                              state.pool)  # fmt: skip
                continue
            if got is not None:
                replicas[state.pool.name] = got
            elif state.deployment_problem:  # nothing to size: say why, once
                self._blocked(state)
        targets = [
            PodTarget(name=r.name, url=r.url)
            for state in states
            for r in self._records(state.pool)
            if not r.retiring
        ]
        note = ""
        try:
            figures = await self.source.read(self.namespace, targets)
        except SignalsError as exc:
            figures, note = {}, f"no pod figures from {self.source.name}: {exc}"
            log.warning("%s", note)
        backlog = self.dispatcher.pool_figures()
        for state in states:
            if state.pool.name in replicas and self.pools.get(state.pool.name) is state:
                try:
                    await self._size(
                        state,
                        current=replicas[state.pool.name],
                        figures=figures,
                        backlog=backlog.get(state.pool.name, (0, 0.0, 0)),
                        note=note,
                    )
                except Exception:
                    log.exception("pool %s: sizing failed", state.pool)

    def _blocked(self, state: PoolState) -> None:
        """A pool with no Deployment to size: its status says why (once per reason)."""
        patch = pool_status.refused(generation=state.pool.generation, message=state.problems)
        if patch == state.written:
            return
        state.written = patch
        self.dispatcher.background.spawn(
            self.kube.patch_pool_status(state.pool.namespace, state.pool.name, patch),
            f"pool-blocked-{state.pool.name}",
        )

    def _records(self, pool: Pool) -> list[PodRecord]:
        """The pool's own pods the operator knows, not being deleted."""
        return [
            r
            for r in self.dispatcher.pods.all()
            if r.labels.get("app.kubernetes.io/managed-by") == MANAGED_BY
            and r.labels.get(INSTANCE) == pool.name
            and r.labels.get(POOL_LABEL) == pool.name
            and not r.terminating
            and not r.gone
        ]

    async def _size(
        self,
        state: PoolState,
        *,
        current: dict[Capacity, int],
        figures: Mapping[str, PodFigures],
        backlog: tuple[int, float, int],
        note: str,
    ) -> None:
        pool, now, wall = state.pool, time.monotonic(), st.now()
        records = self._records(pool)
        self._release_survivors(state, records, now)
        seen: list[tuple[PodSignal, Capacity, bool]] = []
        for capacity in sorted(current):
            mine = [r for r in records if not r.retiring and _capacity(r) is capacity]
            for r in sorted(mine, key=lambda r: r.name):
                signal = pod_signal(
                    r.name,
                    ready=r.ready,
                    jobs=len(r.jobs),
                    idle_since=r.idle_since,
                    figures=figures.get(r.name),
                )
                seen.append((signal, capacity, True))
            name = deployment_name(pool.name, capacity)
            for i in range(current[capacity] - len(mine)):  # asked for, not created yet
                pending = PodSignal(name=f"{name}/pending-{i + 1}", ready=False)
                seen.append((pending, capacity, False))
            # Pods beyond the replicas (a rollout's surge pod, a pod on its way out) are the
            # Deployment's to remove: counting them would retire a new pod as surplus.
        waiting, seconds, _ = backlog
        signals = PoolSignals(
            now=now,
            backlog_seconds=seconds,
            queued=waiting,
            arrival_rate=self.arrivals.rate(pool.name, now),
            arrival_rate_error=self.arrivals.rate_error(pool.name, now),
            pods=tuple(signal for signal, _, _ in seen),
        )
        decision = decide(signals, pool.spec.policy(), state.memory)
        state.memory = decision.memory
        plan = vic.plan(
            pool.spec,
            target=decision.replicas,
            current=current,
            pods=[
                vic.PoolPod(
                    s.name, c, busy=s.busy, ready=s.ready, idle_since=s.idle_since, exists=exists
                )
                for s, c, exists in seen
            ],
            preferred=decision.victims,
        )
        # No await since the signals were built: no job can have been sent to a victim.
        known = {r.name for r in records}
        for victim in plan.victims:
            if victim in known:
                self.dispatcher.pods.retire(victim)
                state.victims[victim] = now
        busy = {s.name for s, _, _ in seen if s.busy}
        for r in records:  # the victims' low cost lands before their replicas are lowered
            patch = vic.annotation_patch(
                r.annotations, busy=r.name in busy or bool(r.jobs), victim=r.name in state.victims
            )
            if patch and await self.kube.annotate_pod(self.namespace, r.name, patch):
                for key, value in patch.items():
                    if value is None:
                        r.annotations.pop(key, None)
                    else:
                        r.annotations[key] = value
        for capacity, count in plan.replicas.items():
            if count != current.get(capacity):
                await self.kube.patch_deployment(
                    self.namespace,
                    deployment_name(pool.name, capacity),
                    {"spec": {"replicas": count}},
                )
        held = {_capacity(r) for r in records}
        await rollout.retire(self.kube, pool, plan.replicas, held=held, namespace=self.namespace)
        before, after = sum(current.values()), plan.total
        if after != before:
            state.scaled_at = wall
            direction = Direction.UP if after > before else Direction.DOWN
            self.metrics.scale_events.labels(pool.name, str(direction), decision.reason).inc()
        state.pods = len(seen)
        self._report(state, decision=decision, plan=plan, signals=signals, seen=seen, note=note)

    def _release_survivors(self, state: PoolState, records: list[PodRecord], now: float) -> None:
        """Victims still there after the grace (the Deployment removed another) serve again."""
        present = {r.name: r for r in self.dispatcher.pods.all()}
        grace = self.settings.scaling.victim_grace_seconds
        for name, marked in list(state.victims.items()):
            record = present.get(name)
            if record is None or record.gone:
                del state.victims[name]
            elif not record.terminating and now - marked > grace:
                log.warning("pool %s: pod %s was not removed; it serves again", state.pool, name)
                self.dispatcher.pods.retire(name, False)
                del state.victims[name]

    def _report(
        self,
        state: PoolState,
        *,
        decision: Any,
        plan: vic.Plan,
        signals: PoolSignals,
        seen: list[tuple[PodSignal, Capacity, bool]],
        note: str,
    ) -> None:
        pool = state.pool
        note = "; ".join(part for part in (state.problems, note) if part)
        patch = pool_status.decided(
            generation=pool.generation,
            decision=decision,
            plan=plan,
            signals=signals,
            pods=seen,
            source=self.source.name,
            at=st.now(),
            scaled_at=state.scaled_at,
            note=note,
        )
        self.metrics.pool_desired.labels(pool.name).set(decision.replicas)
        self.metrics.pool_target_wait.labels(pool.name).set(pool.spec.target_queue_wait_seconds)
        self.metrics.pool_ready.labels(pool.name).set(patch["readyReplicas"])
        self.metrics.pool_starting.labels(pool.name).set(patch["startingReplicas"])
        key = (decision.replicas, decision.reason)
        level = logging.INFO if key != state.logged or plan.victims else logging.DEBUG
        state.logged = key
        log.log(level, "pool %s: %s", pool, patch["message"],
                extra={"pool": pool.name, "victims": list(plan.victims)})  # fmt: skip
        # The same status but for the decision's time: not worth a write.
        unchanged = dict(patch)
        for stamped in ("lastDecision", "lastScale"):
            if stamped in patch:
                unchanged[stamped] = {**patch[stamped], "time": None}
        if unchanged == state.written:
            return
        state.written = unchanged
        self.dispatcher.background.spawn(
            self.kube.patch_pool_status(pool.namespace, pool.name, patch),
            f"pool-status-{pool.name}",
        )


def _capacity(record: PodRecord) -> Capacity:
    try:
        return Capacity(record.labels.get(CAPACITY_LABEL, Capacity.ON_DEMAND))
    except ValueError:
        return Capacity.ON_DEMAND
