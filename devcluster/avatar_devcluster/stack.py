"""The product's manifests and commands for this machine: what ``local_system`` starts.

The local Kubernetes API stands in for GKE; runtime pods are real
``avatar-runtime serve`` processes that the dev cluster starts from a
Deployment, labelled so the operator finds them as on GKE; the operator is a
real ``kopf run`` process. A runtime pool (``build_runtime_pool``) is the same pods
with the operator running and sizing their Deployment, as on GKE; a bare Deployment
(``build_runtime_deployment``) is pods the operator only dispatches to. What differs
from GKE is said here, in one place: the pods run on loopback addresses as local
processes (no GPU, so no GPU placement), and ``gs://`` is a local directory.

Pure functions (``build_*``) returning plain data: callers serialise them, or
change them before applying (the operator benchmark swaps the runtime's
program for one that renders nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avatar_operator import settings

# Shared by the operator (client) and the runtime pods (server) through a Secret.
TOKEN_SECRET = "avatar-runtime-token"  # noqa: S105 - a Secret's name, not a secret
RUNTIME_PORT = 8080


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def build_token_secret(token: str, *, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TOKEN_SECRET, "namespace": namespace},
        "stringData": {"token": token},
    }


def _local_env(buckets: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    return {
        # No GCS here: gs://BUCKET/OBJECT is BUCKETS_DIR/BUCKET/OBJECT on this machine.
        "AVATAR_RUNTIME_STORAGE__LOCAL_BUCKETS": str(buckets),
        # Each pod process may use one core: several share this machine's few.
        "AVATAR_RUNTIME_ENGINES__CPU_THREADS": "1",
        "AVATAR_RUNTIME_VIDEO__ENCODER_THREADS": "1",
        **(env or {}),
    }


def build_runtime_pool(
    *,
    buckets: Path,
    name: str = "default",
    min_replicas: int = 0,
    max_replicas: int = 2,
    slots: int = 1,
    namespace: str = "default",
    env: Mapping[str, str] | None = None,
    scaling: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """An AvatarRuntimePool whose pods the dev cluster runs as local processes.

    The operator builds its Deployment (``avatar_operator.pools.deployments``); what this
    adds is the local part: the process annotation, the virtualenv's ``avatar-runtime``,
    CPU pods with the embedded engines, local buckets. ``scaling`` holds more of the
    spec's scaling fields (``targetQueueWaitSeconds``, ``scaleDownDelaySeconds``,
    ``idleBeforeZeroSeconds``), e.g. short windows for tests.
    """
    variables = [{"name": k, "value": v} for k, v in _local_env(buckets, env).items()]
    return {
        "apiVersion": f"{settings.GROUP}/{settings.VERSION}",
        "kind": settings.POOL_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "avatar-runtime:cpu",
            "engines": {"tts": "piper", "renderer": "embedded"},
            "gpu": {"count": 0},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "slotsPerPod": slots,
            **(scaling or {}),
            "podTemplate": {
                "annotations": {"devcluster.avatar.dev/process": "true"},
                "command": [_bin("avatar-runtime"), "serve"],
                "env": variables,
            },
        },
    }


def build_runtime_deployment(
    *,
    buckets: Path,
    name: str = "avatar-runtime",
    pool: str = "default",
    replicas: int = 1,
    slots: int = 2,
    namespace: str = "default",
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A runtime Deployment whose pods the dev cluster runs as local processes."""
    variables: list[dict[str, Any]] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {
            "name": "AVATAR_RUNTIME_SERVER__TOKEN",
            "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token"}},
        },
    ]
    variables += [{"name": k, "value": v} for k, v in _local_env(buckets, env).items()]
    labels = {"app.kubernetes.io/name": "avatar-runtime", "app.kubernetes.io/instance": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": {**labels, settings.POOL_LABEL: pool},
                    "annotations": {"devcluster.avatar.dev/process": "true"},
                },
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "runtime",
                            "image": "avatar-runtime:cpu",
                            "command": [_bin("avatar-runtime"), "serve"],
                            "args": [
                                *("--host", "$(POD_IP)", "--port", str(RUNTIME_PORT)),
                                *("--slots", str(slots)),
                            ],
                            "env": variables,
                            "ports": [{"name": "http", "containerPort": RUNTIME_PORT}],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                        }
                    ],
                },
            },
        },
    }


CHART = Path(__file__).resolve().parents[2] / "charts" / "avatar-video"
CHART_VALUES = CHART / "values-devcluster.yaml"
"""The chart's overlay for the dev cluster: pods as local processes, embedded engines."""


def build_chart_values(
    *,
    buckets: Path,
    metrics_port: int,
    health_port: int,
    env: Mapping[str, str] | None = None,
    pool: Mapping[str, Any] | None = None,
    operator_settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """What this machine adds to ``CHART_VALUES``: the operator's ports (its process binds
    them on every address, so they must be free here), the pods' local buckets, more of
    the pool's values (``pool``) and operator settings by group (``operator_settings``)."""
    variables = [{"name": k, "value": v} for k, v in _local_env(buckets, env).items()]
    return {
        "operator": {
            "metricsPort": metrics_port,
            "healthPort": health_port,
            "settings": {k: dict(v) for k, v in (operator_settings or {}).items()},
        },
        "pool": {"env": variables, **(pool or {})},
    }


def build_operator_command(namespaces: Sequence[str] = ()) -> list[str]:
    """``kopf run`` of the operator, as its container runs it (all namespaces by default)."""
    scope = [f"--namespace={n}" for n in namespaces] or ["--all-namespaces"]
    return [_bin("kopf"), "run", "--standalone", *scope, "-m", "avatar_operator.handlers"]


def build_operator_env(
    *,
    kubeconfig: Path,
    token: str,
    metrics_port: int,
    runtime_namespace: str = "default",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The operator's own variables, as its container gets them (not the rest of a process's).

    Names as ``avatar_operator.settings`` reads them: a group, ``__``, a field.
    """
    return {
        "KUBECONFIG": str(kubeconfig),
        "AVATAR_OPERATOR_RUNTIME__TOKEN": token,
        "AVATAR_OPERATOR_RUNTIME__NAMESPACE": runtime_namespace,
        "AVATAR_OPERATOR_METRICS__PORT": str(metrics_port),
        **(extra or {}),
    }
