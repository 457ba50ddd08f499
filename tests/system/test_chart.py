"""The Helm chart installed for real: ``helm install``, a video, ``helm upgrade`` while a video
renders, ``helm uninstall``; and the operator's API calls against the RBAC it was given.

The real helm (Helm 4, server-side apply) installs charts/avatar-video with the dev
cluster's overlay (values-devcluster.yaml: pods as local processes, the embedded engines)
into the local Kubernetes API: the CRDs, the operator's Deployment (its pod a real
``kopf run``, authenticated as its ServiceAccount), RBAC, the runtime token, the default
pool, whose runtime pods the operator creates. What GKE adds and this cannot run: nodes,
GPUs, the model volume, enforcement of RBAC and NetworkPolicy (the dev cluster records
every call with the caller's identity instead, and the last test checks those calls
against the rendered roles).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from avatar_devcluster.waiting import wait_until
from avatar_operator import settings
from tests.chart.test_rbac import OWNER_CHECK, kube_calls
from tests.system.system import LONG_TEXT, System

pytestmark = pytest.mark.timeout(600)

RELEASE = "avatar"
ACCOUNT = f"system:serviceaccount:default:{RELEASE}-avatar-video-operator"
TOKEN_SECRET = f"{RELEASE}-avatar-video-runtime-token"
POOL = {"minReplicas": 1, "maxReplicas": 2, "slotsPerPod": 1}
Grant = tuple[str, str, str]  # API group, resource, verb


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = System(tmp_path_factory.mktemp("chart"), chart=True)
    system.start()
    try:
        system.install_chart(
            pool=POOL,
            operator_settings={"retries": {"baseSeconds": 0.5}, "scaling": {"intervalSeconds": 2}},
        )
        yield system
    finally:
        system.stop()


def _token(system: System) -> str:
    out = system.kubectl("get", "secret", TOKEN_SECRET, "-o", "json").stdout
    return base64.b64decode(json.loads(out)["data"]["token"]).decode()


def _pool_pods(system: System) -> list[dict[str, Any]]:
    return [
        p for p in system.runtime_pods(ready=False) if not p["metadata"].get("deletionTimestamp")
    ]


def test_install_runs_the_operator_as_its_deployment_and_a_video_renders(
    installed: System,
) -> None:
    (operator,) = wait_until(
        lambda: [p for p in installed.operator_pods() if p["status"].get("phase") == "Running"],
        timeout=60,
        what="the chart's operator pod",
    )
    assert operator["spec"]["serviceAccountName"] == f"{RELEASE}-avatar-video-operator"
    installed.wait_for_runtime_pods(1, timeout=120)  # the operator made the pool's Deployment
    installed.apply(installed.video("first", ttlSecondsAfterFinished=2))
    done = installed.wait_phase("first", ["Succeeded", "Failed"], timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert installed.local(done["status"]["outputs"]["video"]["url"]).stat().st_size > 1000
    wait_until(  # the TTL: the operator deletes the resource, the files stay
        lambda: "first" not in {v["metadata"]["name"] for v in installed.all("default")},
        timeout=30,
        what="the finished video's TTL",
    )


def test_upgrade_keeps_the_token_and_a_running_video_finishes(installed: System) -> None:
    token = _token(installed)
    (old_pod,) = _pool_pods(installed)
    # About a minute of speech: still on its pod while helm upgrades (LONG_TEXT alone had
    # finished, or was past "render" in its status, before a busy CI machine looked).
    installed.apply(installed.video("during-upgrade", text=" ".join([LONG_TEXT] * 2)))

    def status() -> dict[str, Any]:
        return installed.get("during-upgrade").get("status") or {}

    wait_until(  # speaking and rendering overlap: either says it is on its pod
        lambda: (
            status().get("phase") == "Running"
            and status().get("stage") in ("tts", "asr", "render", "encode")
        ),
        timeout=60,
        what=lambda: f"the video to run on its pod (its status: {status()})",
    )
    # A value the pods depend on: the operator rolls the pool's Deployment to 2 slots a pod.
    installed.install_chart(pool={**POOL, "slotsPerPod": 2}, upgrade=True,
                            extra_args=["--reuse-values"])  # fmt: skip
    assert _token(installed) == token

    def rolled() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in installed.runtime_pods()
            if p["metadata"]["name"] != old_pod["metadata"]["name"]
        ]
        return pods or None

    (new_pod,) = wait_until(rolled, timeout=120, what="a pod of the new template")
    args = new_pod["spec"]["containers"][0]["args"]
    assert args[args.index("--slots") + 1] == "2"
    done = installed.wait_phase("during-upgrade", ["Succeeded", "Failed"], timeout=180)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["runtimePod"] == old_pod["metadata"]["name"]  # it drained, not moved
    assert not done["status"].get("platformRetries")
    wait_until(
        lambda: (
            old_pod["metadata"]["name"]
            not in {p["metadata"]["name"] for p in _pool_pods(installed)}
        ),
        timeout=90,
        what="the old pod to go once it drained",
    )
    new = installed.runtime(new_pod)
    new.headers["Authorization"] = f"Bearer {token}"
    assert new.get("/v1/capacity").raise_for_status().json()["slots_total"] == 2


def test_uninstall_leaves_the_crds_and_the_users_videos(installed: System) -> None:
    manifest = installed.helm("get", "manifest", RELEASE, "--namespace", "default")
    (installed.root / "installed-manifest.yaml").write_text(manifest)  # for the RBAC test
    installed.apply(installed.video("kept", text="Still here after the uninstall."))
    installed.wait_phase("kept", ["Succeeded"], timeout=90)
    installed.helm("uninstall", RELEASE, "--namespace", "default")
    crds = installed.kubectl("get", "crd", "-o", "name").stdout.split()
    assert (
        f"customresourcedefinition.apiextensions.k8s.io/{settings.PLURAL}.{settings.GROUP}" in crds
    )
    assert (
        f"customresourcedefinition.apiextensions.k8s.io/{settings.POOL_PLURAL}.{settings.GROUP}"
        in crds
    )
    assert {v["metadata"]["name"] for v in installed.all("default")} >= {"kept", "during-upgrade"}
    wait_until(lambda: not installed.operator_pods(), timeout=60, what="the operator to go")
    wait_until(lambda: not _pool_pods(installed), timeout=90, what="the pool's pods to go")
    assert installed.kubectl("get", "avatarruntimepools", "-o", "name").stdout == ""


def _grants(manifest: str) -> dict[str, set[Grant]]:
    """What the operator's ServiceAccount may do, by namespace ("" : cluster-wide)."""
    objects = [d for d in yaml.safe_load_all(manifest) if d]
    roles = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace", "")): o["rules"]
             for o in objects if o["kind"] in ("Role", "ClusterRole")}  # fmt: skip
    out: dict[str, set[Grant]] = {}
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(ACCOUNT.endswith(f":{s['namespace']}:{s['name']}") for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        where = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        rules = roles[(ref["kind"], ref["name"], "" if ref["kind"] == "ClusterRole" else where)]
        out.setdefault(where, set()).update(
            (g, r, v) for rule in rules for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]
        )  # fmt: skip
    return out


def test_every_call_the_operator_made_is_granted_and_every_grant_is_used(
    installed: System,
) -> None:
    """Needs the three tests above first (their calls are what is checked)."""
    manifest_file = installed.root / "installed-manifest.yaml"
    if not manifest_file.exists():
        pytest.skip("the lifecycle tests above did not run")
    installed.stop()  # the dev cluster writes what it recorded as it stops
    calls = [r for r in installed.client_verbs() if r["user"] == ACCOUNT]
    assert calls, "the operator's pod made no call as its ServiceAccount"
    grants = _grants(manifest_file.read_text())
    cluster_wide = grants.get("", set())
    denied = [
        c
        for c in calls
        if (c["group"], c["target"], c["verb"])
        not in cluster_wide | grants.get(c["namespace"], set())
    ]
    assert denied == [], f"calls the chart's RBAC does not grant: {denied}"
    made = {(c["group"], c["target"], c["verb"]) for c in calls}
    granted = set().union(*grants.values())
    # What this run never needed must at least be a call the code makes (kube.py, read by
    # tests/chart/test_rbac.py) or the owner check the API server makes for it.
    unused = granted - made - kube_calls() - OWNER_CHECK
    assert unused == set(), f"granted, but nothing calls it: {sorted(unused)}"
    Path(installed.root / "operator-calls.json").write_text(json.dumps(sorted(made), indent=1))
