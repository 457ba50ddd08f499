"""What an AvatarRuntimePool's status says after each decision (a pure JSON merge patch).

The status explains the pool as a person asks about it: how many pods it wants, has
ready and has starting, when it last changed, and the last decision with every input
it was made from (so "why 3 pods?" is answered by ``kubectl get arp -o yaml``), and
each pod's measured throughput and GPU memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from avatar_operator.kube import RefusedError
from avatar_operator.pools.deployments import MANAGED_BY, Capacity
from avatar_operator.pools.victims import Plan
from avatar_operator.resource import format_time
from avatar_operator.scaling.policy import Decision, Direction, PodSignal, PoolSignals

Patch = dict[str, Any]


def decided(
    *,
    generation: int,
    decision: Decision,
    plan: Plan,
    signals: PoolSignals,
    pods: Sequence[tuple[PodSignal, Capacity, bool]],
    source: str,
    at: dt.datetime,
    scaled_at: dt.datetime | None,
    note: str = "",
) -> Patch:
    """The status after a decision; ``pods`` are (signal, capacity, exists) of each pod."""
    real = [(signal, capacity) for signal, capacity, exists in pods if exists]
    gone = set(plan.victims)
    ready = sum(1 for signal, _ in real if signal.ready and signal.name not in gone)
    starting = max(0, plan.total - ready)  # asked for, not serving yet (no node, loading)
    busy = sum(1 for signal, _, _ in pods if signal.busy)
    message = decision.message
    if plan.total > decision.replicas:
        message += f"; {plan.total - decision.replicas} busy pod(s) kept until idle"
    if note:
        message += f" ({note})"
    last = {
        "time": format_time(at),
        "replicas": decision.replicas,
        "direction": str(decision.direction),
        "reason": decision.reason,
        "message": message,
        "signals": source,
        "victims": list(plan.victims),
        "inputs": {
            "backlogSeconds": round(signals.backlog_seconds, 3),
            "queued": signals.queued,
            "arrivalRate": round(signals.arrival_rate, 4),
            "pods": len(signals.pods),
            "startingPods": sum(1 for signal in signals.pods if signal.starting),
            "busyPods": busy,
            "throughputPerPod": round(decision.throughput_per_pod, 4),
        },
    }
    # A merge patch: without the key, the last scale stays as it was.
    scaled = {"lastScale": last} if decision.direction is not Direction.NONE else {}
    return {
        "observedGeneration": generation,
        "desiredReplicas": decision.replicas,
        "spotReplicas": plan.replicas.get(Capacity.SPOT, 0),
        "readyReplicas": ready,
        "startingReplicas": starting,
        "lastScaleTime": format_time(scaled_at) if scaled_at else None,
        "lastDecision": last,
        **scaled,
        "pods": [_pod(signal, capacity) for signal, capacity in real],
        "message": message,
    }


def _pod(signal: PodSignal, capacity: Capacity) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": signal.name,
        "capacity": str(capacity),
        "ready": signal.ready,
        "busySlots": signal.busy_slots,
        "slots": signal.slots,
    }
    if signal.throughput is not None:
        out["throughput"] = round(signal.throughput, 4)
    if signal.gpu_memory_used_bytes is not None:
        out["gpuMemoryUsedBytes"] = signal.gpu_memory_used_bytes
    if signal.gpu_memory_total_bytes is not None:
        out["gpuMemoryTotalBytes"] = signal.gpu_memory_total_bytes
    return out


def refused(*, generation: int, message: str) -> Patch:
    """A pool the operator cannot run (its spec, or its namespace): says why."""
    return {"observedGeneration": generation, "message": message}


def spec_errors(exc: Exception) -> str:
    """What is wrong with a spec, field by field, as a person reads it."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"spec.{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg')}"
            for error in exc.errors()
        )
    return str(exc)


def refusal(name: str, exc: RefusedError, *, creating: bool) -> str:
    """Why the API server refused a pool's Deployment, and what to do about a taken name."""
    if creating and exc.status == 409:
        return (
            f"A Deployment named {name} exists and the operator does not manage it (no label"
            f" app.kubernetes.io/managed-by={MANAGED_BY}): rename or delete it"
        )
    verb = "creating" if creating else "updating the pod template of"
    return f"The API server refused {verb} Deployment {name}: {exc.message}"
