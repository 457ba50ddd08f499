"""What the chart renders is valid where it will be applied, checked offline.

Built-in kinds against Kubernetes 1.33's OpenAPI schemas in strict mode (kubernetes-validate:
an unknown field fails, as the API server's strict field validation would); the
AvatarRuntimePool against its CRD by the dev cluster's admission (schema, defaults, CEL
rules), then through the operator's own code to the Deployments it would create on GKE,
which are validated too. The Prometheus Operator's kinds have no schema here: their shape
is checked by hand.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from avatar_devcluster.admission import admit
from avatar_operator.pools import deployments
from avatar_operator.pools.resource import pool_of
from avatar_operator.settings import PoolSettings
from tests.chart import helm

# Custom resources: the pool passes its own CRD below; the rules are promtool-checked
# (tests/monitoring) and equal to the tested file (test_monitoring.py).
CUSTOM_KINDS = {"AvatarRuntimePool", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
POOL_CRD = helm.REPO / "crds" / "avatarruntimepools.avatar.dev.yaml"


def validate(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, helm.KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.path)
        name = f"{obj['kind']}/{obj['metadata'].get('name')}"
        pytest.fail(f"{name} at {where or '(top)'}: {exc.message}", pytrace=False)


def admitted_pool(pool: dict[str, Any]) -> dict[str, Any]:
    crd = yaml.safe_load(POOL_CRD.read_text())
    (version,) = crd["spec"]["versions"]
    stored = admit(
        pool,
        schema=version["schema"]["openAPIV3Schema"],
        old=None,
        kind="AvatarRuntimePool",
        group="avatar.dev",
    )
    stored["metadata"]["uid"] = "3f0e0a52-0000-4000-8000-000000000001"
    return stored


def operator_deployments(rendered: helm.Rendered) -> list[dict[str, Any]]:
    """The Deployments the operator makes from the chart's pool, as on GKE."""
    pool = pool_of(admitted_pool(rendered.one("AvatarRuntimePool")))
    operator_env = {
        e["name"]: e.get("value")
        for e in rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    settings = PoolSettings(
        token_secret=operator_env["AVATAR_OPERATOR_POOLS__TOKEN_SECRET"],
        token_secret_key=operator_env["AVATAR_OPERATOR_POOLS__TOKEN_SECRET_KEY"],
    )
    return deployments.build_deployments(pool, settings=settings, replicas={})


def test_every_builtin_object_is_valid_for_kubernetes_1_33(rendered: helm.Rendered) -> None:
    builtin = [obj for obj in rendered.objects if obj["kind"] not in CUSTOM_KINDS]
    assert len(builtin) >= 11
    for obj in builtin:
        validate(obj)


def test_every_object_is_namespaced_to_the_release_or_a_watched_namespace(
    rendered: helm.Rendered,
) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in rendered.objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            assert namespace is None
        elif obj["kind"] in ("Role", "RoleBinding"):
            assert namespace in (helm.NAMESPACE, "team-a", "team-b")
        else:
            assert namespace == helm.NAMESPACE, obj["metadata"]["name"]


def test_the_pool_passes_its_crd_with_the_gpu_placement_the_operator_builds(
    renderings: dict[str, helm.Rendered],
) -> None:
    rendered = renderings["default"]
    stored = admitted_pool(rendered.one("AvatarRuntimePool"))
    assert stored["spec"]["gpu"] == {"accelerator": "nvidia-l4", "count": 1}
    (built,) = operator_deployments(rendered)
    pod = built["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"] == {"cpu": "6", "memory": "24Gi"}
    assert pod["serviceAccountName"] == f"{helm.RELEASE}-avatar-video-runtime"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert volume["persistentVolumeClaim"] == {
        "claimName": f"{helm.RELEASE}-avatar-video-models",
        "readOnly": True,
    }
    token = next(e for e in container["env"] if e["name"] == "AVATAR_RUNTIME_SERVER__TOKEN")
    secret = rendered.one("Secret")["metadata"]["name"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "token"}


def test_gke_values_give_spot_beyond_an_on_demand_floor_and_a_read_only_bucket(
    renderings: dict[str, helm.Rendered],
) -> None:
    rendered = renderings["gke-l4"]
    on_demand, spot = operator_deployments(rendered)
    assert spot["metadata"]["name"].endswith("-spot")
    assert spot["spec"]["template"]["spec"]["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "cloud.google.com/gke-spot": "true",
    }
    floor = on_demand["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = floor["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [
        {"matchExpressions": [{"key": "cloud.google.com/gke-spot", "operator": "DoesNotExist"}]}
    ]
    pool = rendered.one("AvatarRuntimePool")["spec"]
    assert pool["spot"] == {"enabled": True, "onDemandFloor": 2}
    template = spot["spec"]["template"]
    assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "models"]
    assert volume["csi"] == {
        "driver": "gcsfuse.csi.storage.gke.io",
        "readOnly": True,
        "volumeAttributes": {"bucketName": "my-avatar-models"},
    }
    (account,) = [
        a for a in rendered.of_kind("ServiceAccount") if a["metadata"]["name"].endswith("-runtime")
    ]
    assert account["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "avatar-runtime@my-project.iam.gserviceaccount.com"
    }
    assert account["automountServiceAccountToken"] is False
    assert not rendered.of_kind("PersistentVolumeClaim")


def test_the_deployments_the_operator_builds_from_the_pool_are_valid(
    rendered: helm.Rendered,
) -> None:
    for built in operator_deployments(rendered):
        validate(built)


def test_monitors_select_the_operators_service_and_every_runtime_pod_with_their_labels(
    renderings: dict[str, helm.Rendered],
) -> None:
    assert not renderings["default"].of_kind("ServiceMonitor")
    assert not renderings["default"].of_kind("PodMonitor")
    rendered = renderings["gke-l4"]
    service_monitor, pod_monitor = rendered.one("ServiceMonitor"), rendered.one("PodMonitor")
    for monitor in (service_monitor, pod_monitor):
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [helm.NAMESPACE]}
    service = rendered.one("Service")
    assert service_monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert [e["port"] for e in service_monitor["spec"]["endpoints"]] == ["metrics"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    (built, _) = operator_deployments(rendered)
    labels = built["spec"]["template"]["metadata"]["labels"]
    selector = pod_monitor["spec"]["selector"]
    assert selector["matchLabels"].items() <= labels.items()
    assert [e["key"] for e in selector["matchExpressions"]] == ["avatar.dev/runtime-pool"]
    assert "avatar.dev/runtime-pool" in labels
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    ports = built["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert endpoint["port"] in [p["name"] for p in ports]
    assert endpoint["path"] == "/metrics"


def test_the_models_claim_is_kept_on_uninstall(renderings: dict[str, helm.Rendered]) -> None:
    claim = renderings["default"].one("PersistentVolumeClaim")
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_a_cpu_pool_without_a_model_volume_has_no_gpu_placement(
    renderings: dict[str, helm.Rendered],
) -> None:
    (built,) = operator_deployments(renderings["cpu-pool"])
    pod = built["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]  # scratch only, no model volume
    (container,) = pod["containers"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["command"] == ["/opt/venv/bin/avatar-runtime", "serve"]
    assert container["args"][-2:] == ["--queue-limit", "2"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"modelVolume": {"type": "gcsBucket"}}, "set modelVolume.gcsBucket.bucket"),
        ({"modelVolume": {"type": "none"}}, "xtts and ditto read their weights"),
        ({"pool": {"spot": {"enabled": True, "onDemandFloor": 9}}}, "onDemandFloor must not"),
        ({"pool": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas must not exceed"),
        (
            {
                "modelFetch": {"enabled": True},
                "modelVolume": {"type": "none"},
                "pool": {"engines": {"tts": "piper", "renderer": "embedded"}},
            },
            "the Job fills a model volume",
        ),
    ],
)
def test_values_that_cannot_work_fail_with_a_message(
    helm_binary: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        helm.template(set_json=values)


def test_notes_tell_the_next_step(helm_binary: str) -> None:
    """`helm template` leaves NOTES.txt out: a client-side dry run of the install shows it."""
    args = ["install", helm.RELEASE, str(helm.CHART), "-n", helm.NAMESPACE, "--dry-run=client"]
    out = helm.run(*args, "-f", str(helm.GKE_VALUES), env={"KUBECONFIG": "/nonexistent"})
    notes = out.split("\nNOTES:\n", 1)[1]
    assert "kubectl apply -f examples/hello.yaml" in notes
    assert "kubectl get av -w" in notes
    assert "gs://my-avatar-models" in notes


def test_the_model_fetch_job_writes_the_volume_the_pool_reads(
    renderings: dict[str, helm.Rendered],
) -> None:
    """`avatar-runtime fetch-models` into the same claim the pool mounts read-only, with the
    Hugging Face token from its Secret; no Job unless asked for."""
    assert renderings["default"].of_kind("Job") == []
    rendered = renderings["model-fetch"]
    job = rendered.one("Job")
    assert job["metadata"]["name"].endswith("-fetch-models-1")  # one per revision
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["avatar-runtime"]
    assert container["args"] == ["fetch-models", "--model-dir", "/models", "--whisper", "medium",
                                 "--ditto-trt"]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert env["HF_HOME"]["value"].startswith("/tmp/")  # the root filesystem is read-only
    claim = rendered.one("PersistentVolumeClaim")["metadata"]["name"]
    models = next(v for v in pod["volumes"] if v["name"] == "models")
    assert models["persistentVolumeClaim"] == {"claimName": claim}  # written, not read-only
    assert (
        rendered.one("AvatarRuntimePool")["spec"]["modelVolume"]["persistentVolumeClaim"] == claim
    )
    assert pod["automountServiceAccountToken"] is False


def test_the_model_fetch_job_on_a_bucket_gets_the_fuse_sidecar(
    renderings: dict[str, helm.Rendered],
) -> None:
    job = renderings["model-fetch-gcs"].one("Job")["spec"]["template"]
    assert job["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
    models = next(v for v in job["spec"]["volumes"] if v["name"] == "models")
    assert models["csi"]["driver"] == "gcsfuse.csi.storage.gke.io"
    assert models["csi"].get("readOnly") is not True
    assert "HF_TOKEN" not in {e["name"] for e in job["spec"]["containers"][0]["env"]}
