"""A pool's Deployments brought to its spec: created when missing, their template updated.

Only the template is ever written here; the replicas are the scaler's. What the API
server refuses (a bad quantity, a name another Deployment has) is returned as a
sentence for the pool's status, and the Deployments the pool has keep being sized.
"""

from __future__ import annotations

import logging
from typing import Any

from avatar_operator.kube import Kube, RefusedError
from avatar_operator.pools import status as pool_status
from avatar_operator.pools.deployments import (
    TEMPLATE_HASH,
    Capacity,
    build_deployment,
    capacities,
    deployment_name,
)
from avatar_operator.pools.resource import Pool
from avatar_operator.settings import PoolSettings

log = logging.getLogger(__name__)


async def sync(
    kube: Kube,
    pool: Pool,
    found: dict[Capacity, dict[str, Any]],
    *,
    namespace: str,
    settings: PoolSettings,
    said: str = "",
) -> tuple[dict[Capacity, int] | None, str]:
    """Create or update the pool's Deployments: (their replicas now, what was refused).

    The replicas are None when there is nothing to size (a Deployment could not be
    created, or the ones found belong to a deleted pool of the same name). ``said`` is
    the refusal already logged, so that it is logged once, not every round.
    """
    replicas: dict[Capacity, int] = {}
    problems: list[str] = []
    for capacity in capacities(pool.spec):
        built = build_deployment(pool, capacity=capacity, settings=settings)
        existing = found.get(capacity)
        name = built["metadata"]["name"]
        if existing is None:
            log.info("pool %s: creating Deployment %s", pool, name)
            try:
                await kube.create_deployment(namespace, built)
            except RefusedError as exc:
                problems.append(pool_status.refusal(name, exc, creating=True))
                continue
            replicas[capacity] = 0
            continue
        meta = existing["metadata"]
        owners = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
        if pool.uid not in owners:  # a deleted pool's, not yet collected
            log.info("pool %s: Deployment %s belongs to an older pool", pool, meta["name"])
            return None, said
        wanted = built["metadata"]["annotations"][TEMPLATE_HASH]
        if (meta.get("annotations") or {}).get(TEMPLATE_HASH) != wanted:
            log.info("pool %s: updating the pod template of %s", pool, meta["name"])
            try:
                await kube.replace_template(
                    namespace,
                    meta["name"],
                    template=built["spec"]["template"],
                    annotation=(TEMPLATE_HASH, wanted),
                )
            except RefusedError as exc:  # its pods run the template before: keep sizing them
                problems.append(pool_status.refusal(meta["name"], exc, creating=False))
        replicas[capacity] = _replicas(existing)
    problem = "; ".join(problems)
    if problem and problem != said:
        log.warning("pool %s: %s", pool, problem)
    if any(capacity not in replicas for capacity in capacities(pool.spec)):
        return None, problem  # a Deployment could not be created: nothing to size yet
    for capacity, existing in found.items():  # a spot Deployment after spot was turned off
        replicas.setdefault(capacity, _replicas(existing))
    return replicas, problem


async def retire(
    kube: Kube, pool: Pool, replicas: dict[Capacity, int], *, held: set[Capacity], namespace: str
) -> None:
    """A Deployment the spec no longer has (spot turned off) goes once it has no pod."""
    for capacity, count in replicas.items():
        if capacity not in capacities(pool.spec) and not count and capacity not in held:
            await kube.delete_deployment(namespace, deployment_name(pool.name, capacity))


def _replicas(deployment: dict[str, Any]) -> int:
    return int((deployment.get("spec") or {}).get("replicas") or 0)
