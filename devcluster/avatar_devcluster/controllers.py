"""The Deployment controller: keep ``spec.replicas`` pods from the template, report status.

Simpler than Kubernetes' (no ReplicaSets: pods are owned by the Deployment directly,
labelled with their template's hash), but what the operator and ``helm upgrade`` rely on
behaves the same: scaling up creates pods from the template, ``status`` counts ready
replicas, and a template change rolls out as the Deployment's strategy says: ``Recreate``
deletes every old pod and creates new ones once they are gone; ``RollingUpdate`` (the
default) adds up to ``maxSurge`` new pods and removes old ones only while ``maxUnavailable``
allows, counting ready pods (``_rollout``). Scaling down picks the pods to delete
as the ReplicaSet controller ranks them (``deletion_rank``): pending before running,
not ready before ready, the lowest ``controller.kubernetes.io/pod-deletion-cost``
first, then the newest; so a scaler that marks its victims with a low cost gets
exactly those removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from typing import Any

from avatar_devcluster.cluster import Cluster, Target
from avatar_devcluster.store import Change

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _owned_by(pod: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])


def pod_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True (what kubectl's READY column and Deployments count)."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: Obj) -> tuple[int, int, int, float]:
    """Lower goes first, as client-go's ``ActivePodsWithRanks`` orders a scale-down.

    Pending < Unknown < Running, then not ready < ready, then the lower deletion cost,
    then the newer pod (of the real order, node placement and restart counts do not
    apply here: there are no nodes, and containers are not restarted).
    """
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    annotations = pod["metadata"].get("annotations") or {}
    try:
        cost = int(annotations.get(DELETION_COST, 0))
    except (TypeError, ValueError):
        cost = 0  # the API server refuses such a value on a real cluster
    created = str(pod["metadata"].get("creationTimestamp") or "")
    try:
        age = dt.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        age = 0.0
    return (_PHASE_ORDER.get(phase, 0), int(pod_ready(pod)), cost, -age)


def template_hash(deployment: Obj) -> str:
    """The pod template's hash, which every pod made from it carries as ``pod-template-hash``."""
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _hash_of(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get("pod-template-hash", ""))


def _bound(value: Any, replicas: int, *, up: bool) -> int:
    """``maxSurge``/``maxUnavailable``: a count, or a percentage of the replicas (surge
    rounds up, unavailability down, as Kubernetes does)."""
    if isinstance(value, str) and value.endswith("%"):
        share = replicas * int(value[:-1]) / 100
        return math.ceil(share) if up else math.floor(share)
    return int(value)


class Deployments:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def run(self) -> None:
        def relevant(change: Change) -> bool:
            return (change.group, change.plural) in (("apps", "deployments"), ("", "pods"))

        watcher = self.cluster.store.subscribe(relevant)
        try:
            self.reconcile_all()
            while True:
                await watcher.queue.get()
                while not watcher.queue.empty():  # one pass for a burst of changes
                    watcher.queue.get_nowait()
                self.reconcile_all()
        finally:
            self.cluster.store.unsubscribe(watcher)

    def reconcile_all(self) -> None:
        for deployment in self.cluster.store.objects("apps", "deployments"):
            try:
                self._reconcile(deployment)
            except Exception:  # one bad Deployment must not stop the others
                log.exception("reconciling deployment %s", deployment["metadata"]["name"])

    def _reconcile(self, deployment: Obj) -> None:
        meta = deployment["metadata"]
        namespace, uid = meta["namespace"], meta["uid"]
        if meta.get("deletionTimestamp"):
            return
        # As a ReplicaSet does: a pod whose process ended (Succeeded, Failed) is no longer
        # active and gets a replacement; it stays listed, as on a cluster, until deleted.
        pods = [
            p
            for p in self.cluster.store.objects("", "pods", namespace)
            if _owned_by(p, uid)
            and not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        spec = deployment.get("spec") or {}
        want = int(spec.get("replicas", 1))
        pods_rt = self.cluster.registry.get("", "v1", "pods")
        assert pods_rt is not None
        digest = template_hash(deployment)
        old = [p for p in pods if _hash_of(p) != digest]
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        if old or (
            recreate and any(_hash_of(p) != digest for p in self._terminating(namespace, uid))
        ):
            self._rollout(deployment, pods, want=want, digest=digest)
            return
        if len(pods) < want:
            for _ in range(want - len(pods)):
                self.cluster.create(pods_rt, self._pod(deployment), namespace)
        elif len(pods) > want:
            ranked = sorted(pods, key=deletion_rank)
            for pod in ranked[: len(pods) - want]:
                name = pod["metadata"]["name"]
                self.cluster.delete(Target(rt=pods_rt, namespace=namespace, name=name,
                                           subresource=""))  # fmt: skip
            pods = ranked[len(pods) - want :]
        self._status(deployment, pods, want=want, updated=len(pods))

    def _terminating(self, namespace: str, uid: str) -> list[Obj]:
        return [
            p
            for p in self.cluster.store.objects("", "pods", namespace)
            if _owned_by(p, uid) and p["metadata"].get("deletionTimestamp")
        ]

    def _rollout(self, deployment: Obj, pods: list[Obj], *, want: int, digest: str) -> None:
        """A template change under way: new pods in, old pods out, as the strategy says."""
        meta = deployment["metadata"]
        namespace = meta["namespace"]
        strategy = (deployment.get("spec") or {}).get("strategy") or {}
        new = [p for p in pods if _hash_of(p) == digest]
        old = [p for p in pods if _hash_of(p) != digest]
        if strategy.get("type") == "Recreate":
            for pod in old:
                self._delete_pod(namespace, pod)
            if not old and not self._terminating(namespace, meta["uid"]):
                self._create_pods(deployment, want - len(new))
            self._status(deployment, new, want=want, updated=len(new))
            return
        rolling = strategy.get("rollingUpdate") or {}
        surge = _bound(rolling.get("maxSurge", "25%"), want, up=True)
        unavailable = _bound(rolling.get("maxUnavailable", "25%"), want, up=False)
        if surge == 0 and unavailable == 0:
            surge = 1  # as the API server's validation demands of a real Deployment
        if len(new) < want:
            self._create_pods(deployment, min(want - len(new), want + surge - len(pods)))
        # Old pods go while enough pods stay ready: not-ready ones first, they serve nothing.
        ready = sum(pod_ready(p) for p in pods)
        for pod in sorted(old, key=deletion_rank):
            if pod_ready(pod):
                if ready - 1 < want - unavailable:
                    break
                ready -= 1
            self._delete_pod(namespace, pod)
        self._status(deployment, pods, want=want, updated=len(new))

    def _create_pods(self, deployment: Obj, count: int) -> None:
        pods_rt = self.cluster.registry.get("", "v1", "pods")
        assert pods_rt is not None
        for _ in range(max(0, count)):
            self.cluster.create(pods_rt, self._pod(deployment), deployment["metadata"]["namespace"])

    def _delete_pod(self, namespace: str, pod: Obj) -> None:
        pods_rt = self.cluster.registry.get("", "v1", "pods")
        assert pods_rt is not None
        target = Target(
            rt=pods_rt, namespace=namespace, name=pod["metadata"]["name"], subresource=""
        )
        self.cluster.delete(target)

    def _status(self, deployment: Obj, pods: list[Obj], *, want: int, updated: int) -> None:
        meta = deployment["metadata"]
        namespace = meta["namespace"]
        ready = sum(pod_ready(p) for p in pods)
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, want - ready),
        }
        if (deployment.get("status") or {}) != status:
            deploy_rt = self.cluster.registry.get("apps", "v1", "deployments")
            assert deploy_rt is not None
            written = {**deployment, "status": status}
            written["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
            target = Target(rt=deploy_rt, namespace=namespace, name=meta["name"],
                            subresource="status")  # fmt: skip
            self.cluster.update(target, written)

    def _pod(self, deployment: Obj) -> Obj:
        meta = deployment["metadata"]
        template = (deployment.get("spec") or {}).get("template") or {}
        digest = template_hash(deployment)
        template_meta = template.get("metadata") or {}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-{digest}-",
                "labels": {**(template_meta.get("labels") or {}), "pod-template-hash": digest},
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
