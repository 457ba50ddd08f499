"""What a pod's process sees of its volumes and its service account, on this machine.

A process cannot see a mount at ``/etc/avatar/token``: the kubelet writes each Secret and
ConfigMap volume of the pod's first container into a directory of its own under ``root``
(with the volume's ``items`` and ``defaultMode``) and points the container's paths at it:
every env value and argument that starts with a ``mountPath`` has that prefix replaced
(``mapped``). Other volumes (emptyDir, PVCs, CSI) are left to the process's own filesystem.

A pod that mounts its service account's token (``automountServiceAccountToken`` unset or
true, as by default) gets ``KUBECONFIG``: a kubeconfig for the dev cluster whose token
names the service account (``system:serviceaccount:NS:NAME``), so the dev cluster counts
the pod's requests under that identity, as the API server authenticates a pod's token.
A pod that does not mount it gets no way to the API, as on GKE.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

from avatar_devcluster import kubeconfig
from avatar_devcluster.store import Store

Obj = dict[str, Any]
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def volumes(store: Store, pod: Obj, container: Obj, root: Path) -> dict[str, Path]:
    """Write the container's Secret and ConfigMap volumes; {mountPath: local directory}."""
    meta = pod["metadata"]
    namespace = meta.get("namespace", "")
    declared = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    base = root / f"{namespace}_{meta['name']}"
    shutil.rmtree(base, ignore_errors=True)
    out: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        volume = declared.get(mount.get("name")) or {}
        if "secret" in volume:
            source, plural, ref = volume["secret"], "secrets", "secretName"
        elif "configMap" in volume:
            source, plural, ref = volume["configMap"], "configmaps", "name"
        else:
            continue
        obj = store.get(("", plural, namespace, source.get(ref, ""))) or {}
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data |= {k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()}
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        directory = base / mount["name"]
        directory.mkdir(parents=True, exist_ok=True)
        for item in items:
            if item.get("key") not in data:
                continue
            path = directory / item.get("path", item["key"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[item["key"]])
            path.chmod(int(item.get("mode", source.get("defaultMode", 0o644))) | 0o600)
        out[mount["mountPath"].rstrip("/")] = directory
    return out


def mapped(text: str, mounts: dict[str, Path]) -> str:
    """``text`` with a leading mount path replaced by its local directory."""
    for mount_path, directory in mounts.items():
        if text == mount_path or text.startswith(mount_path + "/"):
            return str(directory) + text[len(mount_path) :]
    return text


def service_account_kubeconfig(pod: Obj, root: Path, server: str | None) -> Path | None:
    """The kubeconfig a pod's process uses for the API (None: it mounts no token)."""
    spec = pod.get("spec") or {}
    if server is None or spec.get("automountServiceAccountToken") is False:
        return None
    namespace = pod["metadata"].get("namespace", "")
    account = spec.get("serviceAccountName") or "default"
    token = f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{account}"
    path = root / f"{namespace}_{account}.kubeconfig"
    return kubeconfig.write(path, server=server, token=token, namespace=namespace)
