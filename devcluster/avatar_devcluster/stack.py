"""The whole product on this machine: what ``make demo`` and the end-to-end tests run.

The local Kubernetes API stands in for GKE; runtime pods are real
``avatar-runtime serve`` processes that the dev cluster starts from a
Deployment, labelled so the operator finds them as on GKE; the operator is a
real ``kopf run`` process. What differs from GKE is said here, in one place:
the pods run on loopback addresses, and ``gs://`` is a local directory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Re-exported: the demo, the end-to-end tests and the benchmarks wait on ready pods.
from avatar_devcluster.controllers import pod_ready as pod_ready

# Shared by the operator (client) and the runtime pods (server) through a Secret.
TOKEN_SECRET = "avatar-runtime-token"  # noqa: S105 - a Secret's name, not a secret
POOL_LABEL = "avatar.dev/runtime-pool"
REPO = Path(__file__).resolve().parents[2]


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def token_secret(token: str, namespace: str = "default") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": TOKEN_SECRET, "namespace": namespace},
            "stringData": {"token": token},
        }
    )


def runtime_deployment(
    *,
    buckets: Path,
    name: str = "avatar-runtime",
    pool: str = "default",
    replicas: int = 1,
    slots: int = 2,
    namespace: str = "default",
    env: Mapping[str, str] | None = None,
) -> str:
    """A runtime Deployment whose pods the dev cluster runs as local processes."""
    variables = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {
            "name": "AVATAR_RUNTIME_SERVER__TOKEN",
            "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token"}},
        },
        # No GCS here: gs://BUCKET/OBJECT is BUCKETS_DIR/BUCKET/OBJECT on this machine.
        {"name": "AVATAR_RUNTIME_STORAGE__LOCAL_BUCKETS", "value": str(buckets)},
        # Each pod process may use one core: several share this machine's few.
        {"name": "AVATAR_RUNTIME_ENGINES__CPU_THREADS", "value": "1"},
        {"name": "AVATAR_RUNTIME_VIDEO__ENCODER_THREADS", "value": "1"},
    ]
    variables += [{"name": k, "value": v} for k, v in (env or {}).items()]
    labels = {"app.kubernetes.io/name": "avatar-runtime", "app.kubernetes.io/instance": name}
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": {**labels, POOL_LABEL: pool},
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
                                *("--host", "$(POD_IP)", "--port", "8080"),
                                *("--slots", str(slots)),
                            ],
                            "env": variables,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                        }
                    ],
                },
            },
        },
    }
    return json.dumps(manifest)


def operator_command(*namespaces: str) -> list[str]:
    """``kopf run`` of the operator, as its container runs it."""
    scope = [f"--namespace={n}" for n in namespaces] or ["--all-namespaces"]
    return [_bin("kopf"), "run", "--standalone", *scope, "-m", "avatar_operator.handlers"]


def operator_env(
    *,
    kubeconfig: Path,
    token: str,
    metrics_port: int,
    runtime_namespace: str = "default",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "AVATAR_OPERATOR_RUNTIME_TOKEN": token,
        "AVATAR_OPERATOR_RUNTIME_NAMESPACE": runtime_namespace,
        "AVATAR_OPERATOR_METRICS_PORT": str(metrics_port),
        **(extra or {}),
    }
