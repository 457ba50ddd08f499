"""A pool's Deployments, as pure functions of the pool: GKE L4 placement, spot and its floor.

Without spot a pool is one Deployment on on-demand GPU nodes. With spot it is two:
``avatar-runtime-<pool>`` required on on-demand nodes (``cloud.google.com/gke-spot``
absent) and ``avatar-runtime-<pool>-spot`` on spot nodes, and the operator splits the
replicas between them (the first ``onDemandFloor`` on-demand, the rest spot). One
Deployment with a spot *preference* cannot promise a floor: the scheduler would put
every pod on spot while spot nodes have room, and a wave of preemptions would then take
them all. Two Deployments keep the floor a fact, each scaled on its own, and their
selectors (by ``avatar.dev/capacity``) never overlap, so their ReplicaSets never fight.

Both are owned by the pool (``ownerReferences``): deleting the pool deletes them and
their pods. A hash of the pod template rides on each Deployment, so the operator sees
when a pool's spec changed and patches the template (never the replicas) to match.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Any

from avatar_operator.pools.resource import Pool, PoolSpec
from avatar_operator.settings import POOL_LABEL, PoolSettings

CAPACITY_LABEL = "avatar.dev/capacity"
TEMPLATE_HASH = "avatar.dev/template-hash"
ACCELERATOR = "cloud.google.com/gke-accelerator"
SPOT = "cloud.google.com/gke-spot"
GPU_RESOURCE = "nvidia.com/gpu"
MANAGED_BY = "avatar-operator"
SCRATCH_SIZE = "20Gi"
"""The pod's /tmp (an emptyDir): a few jobs' inputs and outputs at the runtime's size limits."""
RUNTIME_PORT = 8080


class Capacity(enum.StrEnum):
    """Which nodes a pod runs on: what it costs and whether it may be preempted."""

    ON_DEMAND = "on-demand"
    SPOT = "spot"


def deployment_name(pool_name: str, capacity: Capacity) -> str:
    base = f"avatar-runtime-{pool_name}"
    return base if capacity is Capacity.ON_DEMAND else f"{base}-spot"


def capacities(spec: PoolSpec) -> tuple[Capacity, ...]:
    """The Deployments a pool has: on-demand always, spot when enabled."""
    return (Capacity.ON_DEMAND, Capacity.SPOT) if spec.spot.enabled else (Capacity.ON_DEMAND,)


def split_replicas(spec: PoolSpec, replicas: int) -> dict[Capacity, int]:
    """The pool's replicas per Deployment: the on-demand floor first, the rest on spot."""
    on_demand = min(replicas, spec.on_demand_floor)
    split = {Capacity.ON_DEMAND: on_demand}
    if spec.spot.enabled:
        split[Capacity.SPOT] = replicas - on_demand
    return split


def selector_labels(pool_name: str, capacity: Capacity) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "avatar-runtime",
        "app.kubernetes.io/instance": pool_name,
        CAPACITY_LABEL: str(capacity),
    }


def owned_selector(pool_name: str) -> str:
    """A label selector for every Deployment and pod the operator runs for the pool."""
    return f"app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/instance={pool_name}"


def build_deployments(
    pool: Pool, *, settings: PoolSettings, replicas: dict[Capacity, int] | None = None
) -> list[dict[str, Any]]:
    """The pool's Deployments (``replicas`` per capacity; 0 where not given)."""
    return [
        build_deployment(
            pool, capacity=capacity, settings=settings, replicas=(replicas or {}).get(capacity, 0)
        )
        for capacity in capacities(pool.spec)
    ]


def build_deployment(
    pool: Pool, *, capacity: Capacity, settings: PoolSettings, replicas: int = 0
) -> dict[str, Any]:
    selector = selector_labels(pool.name, capacity)
    template = build_pod_template(pool, capacity=capacity, settings=settings)
    labels = {
        **selector,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        POOL_LABEL: pool.name,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(pool.name, capacity),
            "namespace": pool.namespace,
            "labels": labels,
            "annotations": {TEMPLATE_HASH: template_hash(template)},
            "ownerReferences": [pool.owner_reference()],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # A pod replaced by a template change must not drop a render: new pods first.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": template,
        },
    }


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def build_pod_template(pool: Pool, *, capacity: Capacity, settings: PoolSettings) -> dict[str, Any]:
    spec, extra = pool.spec, pool.spec.pod_template
    labels = {
        **((extra.labels if extra else None) or {}),
        **selector_labels(pool.name, capacity),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        POOL_LABEL: pool.name,
    }
    annotations = dict((extra.annotations if extra else None) or {})
    volume = spec.model_volume
    if volume is not None and volume.gcs_bucket:
        annotations["gke-gcsfuse/volumes"] = "true"  # the GCS FUSE CSI driver's sidecar
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": int(settings.drain_seconds) + 30,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(pool, settings=settings)],
    }
    if extra is not None and extra.service_account_name:
        pod["serviceAccountName"] = extra.service_account_name
    pod.update(_placement(spec, capacity))
    # The root filesystem is read-only: scratch (downloads, encoding, caches) is an emptyDir.
    pod["volumes"] = [{"name": "tmp", "emptyDir": {"sizeLimit": SCRATCH_SIZE}}]
    if volume is not None:
        pod["volumes"].append(_volume(spec))
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod}


def _placement(spec: PoolSpec, capacity: Capacity) -> dict[str, Any]:
    """GKE's GPU and spot node labels and taints; on-demand pods kept off spot nodes."""
    selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    placement: dict[str, Any] = {}
    if spec.gpu.count > 0:
        selector[ACCELERATOR] = spec.gpu.accelerator
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if capacity is Capacity.SPOT:
        selector[SPOT] = "true"
        tolerations.append(
            {"key": SPOT, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        )
    elif spec.spot.enabled:  # the floor: never on a spot node, whatever has room
        term = {"matchExpressions": [{"key": SPOT, "operator": "DoesNotExist"}]}
        placement["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
            }
        }
    if selector:
        placement["nodeSelector"] = selector
    if tolerations:
        placement["tolerations"] = tolerations
    return placement


def _volume(spec: PoolSpec) -> dict[str, Any]:
    volume = spec.model_volume
    assert volume is not None
    if volume.persistent_volume_claim:
        source: dict[str, Any] = {
            "persistentVolumeClaim": {"claimName": volume.persistent_volume_claim, "readOnly": True}
        }
    else:
        source = {
            "csi": {
                "driver": "gcsfuse.csi.storage.gke.io",
                "readOnly": True,
                "volumeAttributes": {"bucketName": str(volume.gcs_bucket)},
            }
        }
    return {"name": "models", **source}


def _container(pool: Pool, *, settings: PoolSettings) -> dict[str, Any]:
    spec, extra = pool.spec, pool.spec.pod_template
    env: dict[str, dict[str, Any]] = {
        "POD_IP": {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        # The container's own /tmp (an emptyDir), not this process's: caches must be writable.
        "XDG_CACHE_HOME": {"value": "/tmp/.cache"},  # noqa: S108
        "AVATAR_RUNTIME_SERVER__TOKEN": {
            "valueFrom": {
                "secretKeyRef": {"name": settings.token_secret, "key": settings.token_secret_key}
            }
        },
        "AVATAR_RUNTIME_ENGINES__TTS": {"value": spec.engines.tts},
        "AVATAR_RUNTIME_ENGINES__RENDERER": {"value": spec.engines.renderer},
    }
    if spec.model_volume is not None:
        env["AVATAR_RUNTIME_ENGINES__MODEL_DIR"] = {"value": spec.model_volume.mount_path}
    for variable in (extra.env if extra else None) or []:  # the pool's own win
        env[variable.name] = {"value": variable.value or ""}
    container: dict[str, Any] = {
        "name": "runtime",
        "image": spec.image,
        "command": list((extra.command if extra else None) or ["avatar-runtime", "serve"]),
        "args": [
            *("--host", "$(POD_IP)", "--port", str(RUNTIME_PORT)),
            *("--slots", str(spec.slots_per_pod), "--grace", f"{settings.drain_seconds:g}"),
            *((extra.args if extra else None) or []),
        ],
        "env": [{"name": name, **source} for name, source in env.items()],
        "ports": [{"name": "http", "containerPort": RUNTIME_PORT}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        # /healthz fails only when loading failed (a model file missing): restart and re-check.
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 (the pod's)
    }
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    if spec.model_volume is not None:
        container["volumeMounts"].append(
            {"name": "models", "mountPath": spec.model_volume.mount_path, "readOnly": True}
        )
    return container


def _resources(spec: PoolSpec) -> dict[str, Any]:
    extra = spec.pod_template.resources if spec.pod_template else None
    requests = dict((extra.requests if extra else None) or {})
    limits = dict((extra.limits if extra else None) or {})
    if spec.gpu.count > 0:
        limits[GPU_RESOURCE] = spec.gpu.count
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out
