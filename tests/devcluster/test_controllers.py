"""The Deployment controller as a scaler relies on it: who goes on a scale-down, and owners.

An operator that removes idle pods only marks them with the lowest
``controller.kubernetes.io/pod-deletion-cost`` and lowers the replicas; the ReplicaSet
controller must then remove exactly those. And a Deployment owned by a custom resource
(a runtime pool) must go, with its pods' processes, when its owner is deleted.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from avatar_devcluster.controllers import DELETION_COST, deletion_rank
from avatar_devcluster.kubectl import Kubectl
from avatar_devcluster.waiting import wait_until
from tests.devcluster.test_processes import DEPLOYMENT, alive, pid_of, pods


def _pod(name: str, *, phase: str = "Running", ready: bool = True, **extra: Any) -> dict[str, Any]:
    created = extra.get("created", "2026-12-01T12:00:00Z")
    return {
        "metadata": {"name": name, "creationTimestamp": created,
                     "annotations": extra.get("annotations") or {}},
        "status": {"phase": phase,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }  # fmt: skip


def test_a_scale_down_ranks_pods_as_the_replicaset_controller_does() -> None:
    cheap = _pod("cheap", annotations={DELETION_COST: "-100"})
    costly = _pod("costly", annotations={DELETION_COST: "50"})
    plain_old = _pod("plain-old", created="2026-12-01T11:00:00Z")
    plain_new = _pod("plain-new", created="2026-12-01T12:30:00Z")
    starting = _pod("starting", ready=False, annotations={DELETION_COST: "1000"})
    pending = _pod("pending", phase="Pending", ready=False)
    ranked = sorted([costly, plain_old, cheap, plain_new, starting, pending], key=deletion_rank)
    assert [p["metadata"]["name"] for p in ranked] == [
        "pending",  # not running yet
        "starting",  # running, not ready: before any ready pod, whatever its cost
        "cheap",  # the lowest cost among the ready
        "plain-new",  # equal cost: the newer first
        "plain-old",
        "costly",
    ]


def _ready_pods(kubectl: Kubectl, count: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        found = pods(kubectl)
        ok = len(found) == count and all(
            p["status"].get("containerStatuses", [{}])[0].get("ready") for p in found
        )
        return found if ok else None

    found: list[dict[str, Any]] = wait_until(ready, timeout=60, what=f"{count} ready pods")
    return found


def test_the_pod_with_the_lowest_deletion_cost_is_the_one_removed(kubectl: Kubectl) -> None:
    kubectl.apply(DEPLOYMENT.replace("replicas: 0", "replicas: 3"))
    before = _ready_pods(kubectl, 3)
    newest = max(before, key=lambda p: p["metadata"]["creationTimestamp"])["metadata"]["name"]
    victim = sorted(p["metadata"]["name"] for p in before if p["metadata"]["name"] != newest)[0]
    victim_pid = pid_of(next(p for p in before if p["metadata"]["name"] == victim))
    kubectl("annotate", "pod", victim, f"{DELETION_COST}=-1000")

    kubectl("scale", "deployment", "web", "--replicas=2")
    wait_until(lambda: len(pods(kubectl)) == 2, timeout=30, what="one pod to go")
    left = {p["metadata"]["name"] for p in pods(kubectl)}
    assert victim not in left
    assert left == {p["metadata"]["name"] for p in before} - {victim}
    wait_until(lambda: not alive(victim_pid), timeout=30, what="the victim's process to end")


OWNER_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: pools.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: pools, singular: pool, kind: Pool}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def test_deleting_the_owner_of_a_deployment_takes_it_its_pods_and_their_processes(
    kubectl: Kubectl,
) -> None:
    kubectl.apply(OWNER_CRD)
    kubectl.apply("apiVersion: example.com/v1\nkind: Pool\nmetadata: {name: gpu}\n")
    owner = json.loads(kubectl("get", "pool", "gpu", "-o", "json").stdout)["metadata"]
    deployment = yaml.safe_load(DEPLOYMENT.replace("replicas: 0", "replicas: 2"))
    deployment["metadata"]["ownerReferences"] = [
        {"apiVersion": "example.com/v1", "kind": "Pool", "name": "gpu", "uid": owner["uid"],
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    kubectl.apply(json.dumps(deployment))
    pids = [pid_of(p) for p in _ready_pods(kubectl, 2)]

    kubectl("delete", "pool", "gpu")
    wait_until(
        lambda: kubectl("get", "deployments", "-o", "name").stdout == "",
        timeout=30,
        what="the owned Deployment to be collected",
    )
    wait_until(lambda: pods(kubectl) == [], timeout=30, what="its pods to go")
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30, what="their processes")


def _rollout_samples(
    kubectl: Kubectl, *, until_hash_changes_from: set[str], deleting_too: bool = False
) -> list[list[Any]]:
    """Each pod's (template hash, ready) every 0.1 s until all pods are new and ready; pods
    being deleted only with ``deleting_too`` (Kubernetes counts them against neither the
    surge nor the replicas)."""
    samples: list[list[Any]] = []

    def done() -> bool:
        now = pods(kubectl)
        samples.append([(_template(p), _ready(p)) for p in now
                        if deleting_too or not p["metadata"].get("deletionTimestamp")])  # fmt: skip
        return len(now) == 2 and all(
            _template(p) not in until_hash_changes_from and _ready(p) for p in now
        )

    wait_until(done, timeout=60, every=0.1, what="the new template's pods to be ready")
    return samples


def _template(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["labels"]["pod-template-hash"])


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_a_template_change_rolls_out_without_fewer_ready_pods_than_replicas(
    kubectl: Kubectl,
) -> None:
    """RollingUpdate, Kubernetes' defaults: 25% surge rounds up to 1, 25% unavailable down to
    0 at 2 replicas, so a new pod is ready before each old one goes."""
    kubectl.apply(DEPLOYMENT.replace("replicas: 0", "replicas: 2"))
    old = {_template(p) for p in _ready_pods(kubectl, 2)}
    kubectl("set", "env", "deployment/web", "VERSION=2")
    samples = _rollout_samples(kubectl, until_hash_changes_from=old)
    assert min(sum(ready for _, ready in sample) for sample in samples) >= 2
    assert max(len(sample) for sample in samples) <= 3  # at most one surge pod at a time
    assert any(any(h not in old for h, _ in s) and any(h in old for h, _ in s) for s in samples)


def test_recreate_starts_new_pods_only_once_every_old_one_is_gone(kubectl: Kubectl) -> None:
    """The operator's Deployment is Recreate: two operators must never run at once."""
    doc = yaml.safe_load(DEPLOYMENT.replace("replicas: 0", "replicas: 2"))
    doc["spec"]["strategy"] = {"type": "Recreate"}
    kubectl.apply(json.dumps(doc))
    old = {_template(p) for p in _ready_pods(kubectl, 2)}
    kubectl("set", "env", "deployment/web", "VERSION=2")
    samples = _rollout_samples(kubectl, until_hash_changes_from=old, deleting_too=True)
    mixed = [s for s in samples if {h in old for h, _ in s} == {True, False}]
    assert mixed == []
