"""The AvatarRuntimePool CRD as a user meets it: the real kubectl against the dev cluster.

What kubectl accepts, refuses and prints here is what it does on GKE with the same
crds/avatarruntimepools.avatar.dev.yaml (the dev cluster admits custom resources as
kube-apiserver does: structural schema, defaults, CEL rules).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import yaml

from avatar_devcluster.admission import admit
from avatar_devcluster.kubectl import Kubectl
from avatar_operator.pools import status as pool_status
from avatar_operator.pools.deployments import Capacity
from avatar_operator.pools.victims import Plan
from avatar_operator.scaling.policy import Decision, Direction, PodSignal, PoolSignals
from tests.crds.conftest import EXAMPLES, POOL_CRD

MINIMAL: dict[str, Any] = {
    "image": "runtime-cpu:1",
    "engines": {"tts": "piper", "renderer": "embedded"},
}


def pool(name: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "avatar.dev/v1alpha1",
            "kind": "AvatarRuntimePool",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl("get", "arp", name, "-o", "json").stdout)
    return found


def schema() -> dict[str, Any]:
    crd = yaml.safe_load(POOL_CRD.read_text())
    (version,) = crd["spec"]["versions"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return found


def words(text: str) -> str:
    return " ".join(text.split())


def test_a_minimal_pool_reads_back_with_every_default(kubectl: Kubectl) -> None:
    manifest = pool("cpu", image="runtime-gpu:1", modelVolume={"gcsBucket": "models"})
    applied = kubectl("apply", "-f", "-", stdin=manifest)
    assert applied.stdout.strip() == "avatarruntimepool.avatar.dev/cpu created"
    spec = get(kubectl, "cpu")["spec"]
    assert spec == {
        "image": "runtime-gpu:1",
        "engines": {"tts": "xtts", "renderer": "ditto"},
        "gpu": {"accelerator": "nvidia-l4", "count": 1},
        "spot": {"enabled": False},
        "modelVolume": {"gcsBucket": "models", "mountPath": "/models"},
        "minReplicas": 0,
        "maxReplicas": 4,
        "slotsPerPod": "auto",
        "targetQueueWaitSeconds": 120,
        "scaleDownDelaySeconds": 300,
        "idleBeforeZeroSeconds": 600,
    }


def test_the_l4_example_applies_with_spot_and_a_floor(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "pool-l4.yaml"))
    spec = get(kubectl, "l4")["spec"]
    assert spec["spot"] == {"enabled": True, "onDemandFloor": 2}
    assert spec["maxReplicas"] == 8
    assert spec["podTemplate"]["resources"]["requests"] == {"cpu": "6", "memory": "24Gi"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {**MINIMAL, "minReplicas": 5, "maxReplicas": 2},
            'spec: Invalid value: "object": minReplicas must not exceed maxReplicas',
            id="min-above-max",
        ),
        pytest.param(
            {**MINIMAL, "maxReplicas": 2, "spot": {"enabled": True, "onDemandFloor": 3}},
            "spot.onDemandFloor must not exceed maxReplicas",
            id="floor-above-max",
        ),
        pytest.param(
            {**MINIMAL, "spot": {"onDemandFloor": 1}},
            'spec.spot: Invalid value: "object": onDemandFloor applies to spot pools only:'
            " set enabled: true",
            id="floor-without-spot",
        ),
        pytest.param(
            {"image": "runtime-gpu:1"},
            "xtts and ditto read their weights from a model volume: set modelVolume",
            id="gpu-engines-without-models",
        ),
        pytest.param(
            {**MINIMAL, "modelVolume": {"gcsBucket": "m", "persistentVolumeClaim": "m"}},
            "give exactly one of persistentVolumeClaim and gcsBucket",
            id="two-model-volumes",
        ),
        pytest.param(
            {**MINIMAL, "slotsPerPod": 0},
            "slotsPerPod is auto or a number from 1 to 8",
            id="zero-slots",
        ),
        pytest.param(
            {**MINIMAL, "slotsPerPod": "many"},
            "slotsPerPod is auto or a number from 1 to 8",
            id="slots-word",
        ),
        pytest.param(
            {**MINIMAL, "gpu": {"count": 9}},
            "spec.gpu.count in body should be less than or equal to 8",
            id="nine-gpus",
        ),
        pytest.param(
            {**MINIMAL, "minReplicas": -1},
            "spec.minReplicas in body should be greater than or equal to 0",
            id="negative-min",
        ),
        pytest.param(
            {**MINIMAL, "engines": {"tts": "espeak", "renderer": "embedded"}},
            'spec.engines.tts: Unsupported value: "espeak"',
            id="unknown-engine",
        ),
        pytest.param({"engines": MINIMAL["engines"]}, "spec.image: Required value", id="no-image"),
        pytest.param(
            {**MINIMAL, "replicas": 3},
            'strict decoding error: unknown field "spec.replicas"',
            id="unknown-field",
        ),
    ],
)
def test_inconsistent_pools_are_refused(
    kubectl: Kubectl, spec: dict[str, Any], expected: str
) -> None:
    refused = kubectl("apply", "-f", "-", stdin=pool("bad", **spec), check=False)
    assert refused.returncode != 0
    assert expected in refused.stderr
    assert kubectl("get", "arp", "-o", "name").stdout == ""


def test_a_pool_name_must_be_what_a_video_can_name(kubectl: Kubectl) -> None:
    refused = kubectl("apply", "-f", "-", stdin=pool("gpu.pool", **MINIMAL), check=False)
    assert refused.returncode != 0
    assert "a pool's name is what AvatarVideo.spec.pool names: a DNS label" in refused.stderr


def _status() -> dict[str, Any]:
    """What the operator writes after a decision, made by the operator's own code."""
    at = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
    pods = (
        PodSignal(name="avatar-runtime-l4-7f-a", ready=True, busy_slots=1, slots=2,
                  throughput=0.21, gpu_memory_used_bytes=9e9, gpu_memory_total_bytes=2.4e10),
        PodSignal(name="avatar-runtime-l4-7f-b", ready=False),
    )  # fmt: skip
    decision = Decision(
        replicas=3,
        direction=Direction.UP,
        reason="backlog",
        message="3 replicas (up, backlog): backlog 90 s of video in 4 videos",
        throughput_per_pod=0.21,
    )
    return pool_status.decided(
        generation=2,
        decision=decision,
        plan=Plan(replicas={Capacity.ON_DEMAND: 1, Capacity.SPOT: 2}, victims=("old-pod",)),
        signals=PoolSignals(now=1.0, backlog_seconds=90.0, queued=4, arrival_rate=0.1, pods=pods),
        pods=[(pods[0], Capacity.ON_DEMAND, True), (pods[1], Capacity.SPOT, True)],
        source="prometheus",
        at=at,
        scaled_at=at,
    )


def test_every_status_field_the_operator_writes_is_kept_and_valid() -> None:
    """Admission prunes what a strict schema does not name: all of it must be named."""
    status = _status()
    obj = {
        "apiVersion": "avatar.dev/v1alpha1",
        "kind": "AvatarRuntimePool",
        "metadata": {"name": "l4", "namespace": "default"},
        "spec": dict(MINIMAL),
        "status": status,
    }
    stored = admit(obj, schema=schema(), old=None, kind="AvatarRuntimePool", group="avatar.dev")
    assert stored["status"] == status
    assert status["pods"][0]["gpuMemoryTotalBytes"] == 2.4e10
    assert status["lastDecision"]["inputs"]["startingPods"] == 1  # capacity on its way
    assert status["lastScale"] == status["lastDecision"]  # an up decision is a scale


def test_status_shows_in_the_printer_columns(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=pool("l4", **MINIMAL, minReplicas=1, maxReplicas=6))
    status = _status()
    kubectl("patch", "arp", "l4", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}))  # fmt: skip
    header, row = kubectl("get", "avatarruntimepools").stdout.splitlines()
    assert header.split() == ["NAME", "DESIRED", "READY", "STARTING", "LAST-SCALE", "AGE"]
    assert row.split()[:4] == ["l4", "3", "1", "2"]
    header, row = kubectl("get", "arp", "-o", "wide").stdout.splitlines()
    assert header.split() == [
        "NAME", "DESIRED", "READY", "STARTING", "MIN", "MAX", "REASON", "LAST-SCALE", "AGE"
    ]  # fmt: skip
    assert row.split()[:7] == ["l4", "3", "1", "2", "1", "6", "backlog"]


def test_every_field_is_documented() -> None:
    undocumented: list[str] = []

    def visit(node: dict[str, Any], path: str) -> None:
        if path not in (".metadata",) and not node.get("description"):
            undocumented.append(path or "<root>")
        for name, child in (node.get("properties") or {}).items():
            visit(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict) and node["items"].get("properties"):
            visit(node["items"], f"{path}[]")

    visit(schema(), "")
    assert undocumented == []


def test_short_name_category_and_explain(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=pool("cpu", **MINIMAL))
    for name in ("arp", "avatarruntimepool", "avatarruntimepools.avatar.dev"):
        assert kubectl("get", name, "-o", "name").stdout.split() == [
            "avatarruntimepool.avatar.dev/cpu"
        ], name
    assert "avatarruntimepool.avatar.dev/cpu" in kubectl("get", "avatar", "-o", "name").stdout
    floor = words(kubectl("explain", "arp.spec.spot.onDemandFloor").stdout)
    assert "FIELD: onDemandFloor <integer>" in floor
    assert "a wave of preemptions cannot take every pod" in floor
    spec = words(kubectl("explain", "avatarruntimepool.spec").stdout)
    assert "image <string> -required-" in spec
    assert "slotsPerPod" in spec
    decision = words(kubectl("explain", "arp.status.lastDecision").stdout)
    assert "with its inputs and reason" in decision
    scale = words(kubectl("explain", "arp.status.lastScale").stdout)
    assert "The last decision that changed the replicas" in scale
    assert "inputs <Object>" in scale  # the same fields as lastDecision
