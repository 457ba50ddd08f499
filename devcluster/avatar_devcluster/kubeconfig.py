"""A kubeconfig that points kubectl, kopf and the kubernetes client at the dev cluster."""

from __future__ import annotations

from pathlib import Path

import yaml


def write(
    path: Path,
    *,
    server: str,
    name: str = "devcluster",
    token: str = "devcluster",  # noqa: S107 - an identity the dev cluster counts, no secret
    namespace: str = "default",
) -> Path:
    """``token`` is the identity the dev cluster counts requests under (it checks none)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
