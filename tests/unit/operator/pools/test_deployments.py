"""A pool's Deployments, built without a cluster: GKE L4 placement, spot and its floor."""

from __future__ import annotations

from typing import Any

from avatar_operator.pools.deployments import (
    Capacity,
    build_deployments,
    split_replicas,
    template_hash,
)
from avatar_operator.pools.resource import Pool, PoolSpec
from avatar_operator.settings import POOL_LABEL, PoolSettings

SETTINGS = PoolSettings()


def _pool(name: str = "l4", **spec: Any) -> Pool:
    body = {"image": "runtime-gpu:1", **spec}
    return Pool(namespace="avatar", name=name, uid="uid-7", generation=1,
                spec=PoolSpec.model_validate(body))  # fmt: skip


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(deployment)["env"]}


def test_an_l4_pool_is_one_deployment_on_l4_nodes_owned_by_the_pool() -> None:
    volume = {"persistentVolumeClaim": "avatar-models"}
    (deployment,) = build_deployments(_pool(modelVolume=volume), settings=SETTINGS)
    meta = deployment["metadata"]
    assert meta["name"] == "avatar-runtime-l4"
    assert meta["namespace"] == "avatar"
    assert meta["ownerReferences"][0]["uid"] == "uid-7"
    assert meta["ownerReferences"][0]["kind"] == "AvatarRuntimePool"
    assert deployment["spec"]["replicas"] == 0
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"][POOL_LABEL] == "l4"  # what the operator dispatches by
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        spec["tolerations"]
    )
    assert "affinity" not in spec
    container = _container(deployment)
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert container["image"] == "runtime-gpu:1"
    assert container["command"] == ["avatar-runtime", "serve"]
    assert container["args"][:6] == ["--host", "$(POD_IP)", "--port", "8080", "--slots", "auto"]
    env = _env(deployment)
    assert env["AVATAR_RUNTIME_ENGINES__TTS"] == "xtts"
    assert env["AVATAR_RUNTIME_ENGINES__RENDERER"] == "ditto"
    assert env["AVATAR_RUNTIME_ENGINES__MODEL_DIR"] == "/models"
    assert env["AVATAR_RUNTIME_SERVER__TOKEN"] == {
        "secretKeyRef": {"name": "avatar-runtime-token", "key": "token"}
    }
    claim = {"claimName": "avatar-models", "readOnly": True}
    assert spec["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}},  # the root filesystem is read-only
        {"name": "models", "persistentVolumeClaim": claim},
    ]
    assert container["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "models", "mountPath": "/models", "readOnly": True},
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["terminationGracePeriodSeconds"] > SETTINGS.drain_seconds
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_spot_makes_two_deployments_the_floor_kept_off_spot_nodes() -> None:
    pool = _pool(spot={"enabled": True, "onDemandFloor": 1}, maxReplicas=6)
    on_demand, spot = build_deployments(
        pool, settings=SETTINGS, replicas={Capacity.ON_DEMAND: 1, Capacity.SPOT: 3}
    )
    assert on_demand["metadata"]["name"] == "avatar-runtime-l4"
    assert spot["metadata"]["name"] == "avatar-runtime-l4-spot"
    assert (on_demand["spec"]["replicas"], spot["spec"]["replicas"]) == (1, 3)
    spot_pod = spot["spec"]["template"]["spec"]
    assert spot_pod["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "cloud.google.com/gke-spot": "true",
    }
    assert {
        "key": "cloud.google.com/gke-spot",
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    } in spot_pod["tolerations"]
    floor_pod = on_demand["spec"]["template"]["spec"]
    affinity = floor_pod["affinity"]["nodeAffinity"]
    required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "cloud.google.com/gke-spot", "operator": "DoesNotExist"}]}
    ]
    # Their selectors never overlap: each ReplicaSet counts only its own pods.
    a = on_demand["spec"]["selector"]["matchLabels"]
    b = spot["spec"]["selector"]["matchLabels"]
    assert a != b
    assert a.keys() == b.keys()


def test_replicas_fill_the_on_demand_floor_first_then_spot() -> None:
    spec = _pool(spot={"enabled": True, "onDemandFloor": 2}, maxReplicas=9).spec
    assert split_replicas(spec, 0) == {Capacity.ON_DEMAND: 0, Capacity.SPOT: 0}
    assert split_replicas(spec, 1) == {Capacity.ON_DEMAND: 1, Capacity.SPOT: 0}
    assert split_replicas(spec, 5) == {Capacity.ON_DEMAND: 2, Capacity.SPOT: 3}
    all_spot = _pool(spot={"enabled": True}).spec
    assert split_replicas(all_spot, 3) == {Capacity.ON_DEMAND: 0, Capacity.SPOT: 3}
    no_spot = _pool(maxReplicas=4).spec
    assert split_replicas(no_spot, 3) == {Capacity.ON_DEMAND: 3}


def test_a_cpu_pool_has_no_gpu_placement_and_takes_the_local_overrides() -> None:
    pool = _pool(
        "local",
        image="avatar-runtime:cpu",
        engines={"tts": "piper", "renderer": "embedded"},
        gpu={"count": 0},
        slotsPerPod=1,
        podTemplate={
            "annotations": {"devcluster.avatar.dev/process": "true"},
            "labels": {"team": "ml", POOL_LABEL: "not-this"},
            "command": ["/venv/bin/avatar-runtime", "serve"],
            "args": ["--queue-limit", "2"],
            "env": [
                {"name": "AVATAR_RUNTIME_STORAGE__LOCAL_BUCKETS", "value": "/tmp/b"},
                {"name": "AVATAR_RUNTIME_ENGINES__TTS", "value": "piper"},
            ],
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        },
    )
    (deployment,) = build_deployments(pool, settings=SETTINGS)
    template = deployment["spec"]["template"]
    spec = template["spec"]
    assert "nodeSelector" not in spec
    assert "tolerations" not in spec
    container = _container(deployment)
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}}
    assert container["command"] == ["/venv/bin/avatar-runtime", "serve"]
    assert container["args"][-2:] == ["--queue-limit", "2"]
    assert "--slots" in container["args"]
    assert container["args"][container["args"].index("--slots") + 1] == "1"
    assert template["metadata"]["annotations"] == {"devcluster.avatar.dev/process": "true"}
    labels = template["metadata"]["labels"]
    assert labels["team"] == "ml"
    assert labels[POOL_LABEL] == "local"  # the operator's labels win
    env = _env(deployment)
    assert env["AVATAR_RUNTIME_STORAGE__LOCAL_BUCKETS"] == "/tmp/b"
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names))  # the pool's own variables replace, not repeat
    assert [v["name"] for v in spec["volumes"]] == ["tmp"]  # no model volume


def test_a_gcs_model_volume_mounts_through_the_gcs_fuse_driver() -> None:
    (deployment,) = build_deployments(
        _pool(modelVolume={"gcsBucket": "my-models", "mountPath": "/weights"}),
        settings=SETTINGS,
    )
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "models"]
    assert volume["csi"]["driver"] == "gcsfuse.csi.storage.gke.io"
    assert volume["csi"]["volumeAttributes"] == {"bucketName": "my-models"}
    assert _env(deployment)["AVATAR_RUNTIME_ENGINES__MODEL_DIR"] == "/weights"


def test_the_template_hash_follows_the_spec_not_the_replicas() -> None:
    pool = _pool()
    one = build_deployments(pool, settings=SETTINGS, replicas={Capacity.ON_DEMAND: 1})[0]
    three = build_deployments(pool, settings=SETTINGS, replicas={Capacity.ON_DEMAND: 3})[0]
    assert one["metadata"]["annotations"] == three["metadata"]["annotations"]
    other = build_deployments(_pool(image="runtime-gpu:2"), settings=SETTINGS)[0]
    assert template_hash(other["spec"]["template"]) != template_hash(one["spec"]["template"])
