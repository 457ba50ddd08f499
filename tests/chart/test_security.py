"""Restricted pod security on every pod the chart renders, and a NetworkPolicy that admits
only the operator and Prometheus to the runtime pods (checked against the labels the
operator's own code gives those pods)."""

from __future__ import annotations

from typing import Any

from tests.chart import helm
from tests.chart.test_manifests import operator_deployments

RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_pod_runs_restricted_with_a_writable_tmp_only(rendered: helm.Rendered) -> None:
    pods = rendered.pod_templates()
    assert pods, "the chart renders no pod"
    for name, pod in pods:
        spec = pod["spec"]
        assert spec["securityContext"].items() >= RESTRICTED_POD.items(), name
        assert spec["securityContext"].get("runAsUser", 1) != 0, name
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in _containers(pod):
            where = f"{name} container {container['name']}"
            assert container["securityContext"] == RESTRICTED_CONTAINER, where
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp, f"{where}: nothing at /tmp"
            assert tmp[0]["name"] in empty_dirs, where


def test_every_container_has_requests_limits_and_probes(rendered: helm.Rendered) -> None:
    for name, pod in rendered.pod_templates():
        for container in pod["spec"]["containers"]:
            where = f"{name} container {container['name']}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert {"cpu", "memory"} <= resources["limits"].keys(), where
            if name.startswith("Job/"):
                continue  # it runs to completion: nothing to probe, its exit code says
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] in [
                    p["name"] for p in container["ports"]
                ], where


def test_the_runtime_pods_the_operator_builds_meet_the_restricted_pod_security_level(
    rendered: helm.Rendered,
) -> None:
    """Pod Security's `restricted` level (what a namespace label can enforce)."""
    for built in operator_deployments(rendered):
        pod = built["spec"]["template"]
        assert pod["spec"]["securityContext"].items() >= RESTRICTED_POD.items()
        for container in _containers(pod):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert {"readinessProbe", "livenessProbe"} <= container.keys()


def test_the_runtime_pods_have_a_read_only_root_and_an_empty_dir_tmp(
    renderings: dict[str, helm.Rendered],
) -> None:
    (built,) = operator_deployments(renderings["default"])
    pod = built["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"].get("readOnlyRootFilesystem") is True
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
        }[operator]
        if not ok:
            return False
    return True


def test_only_the_operator_and_prometheus_reach_the_runtime_pods(
    renderings: dict[str, helm.Rendered],
) -> None:
    rendered = renderings["gke-l4"]
    policy = rendered.one("NetworkPolicy")["spec"]
    operator = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for built in operator_deployments(rendered):
        runtime = built["spec"]["template"]["metadata"]["labels"]
        assert _matches(policy["podSelector"], runtime)
        assert not _matches(policy["podSelector"], operator)
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": "http"}]
    by_operator, by_prometheus = rule["from"]
    assert by_operator.keys() == {"podSelector"}  # the release namespace alone
    assert _matches(by_operator["podSelector"], operator)
    assert by_prometheus["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }
    assert by_prometheus["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}


def test_without_prometheus_only_the_operator_is_admitted(
    renderings: dict[str, helm.Rendered],
) -> None:
    (rule,) = renderings["cpu-pool"].one("NetworkPolicy")["spec"]["ingress"]
    assert [peer.keys() for peer in rule["from"]] == [{"podSelector": None}.keys()]
