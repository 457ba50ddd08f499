"""The chart's alert rules and dashboards: what it renders is what the repository tests.

The PrometheusRule carries files/alerts.yaml's groups unchanged (tests/monitoring runs
promtool on that file), each dashboard ConfigMap one JSON file of files/dashboards/
unchanged (tests/monitoring runs their queries against a real Prometheus), and the jobs the
rules select are the ones the chart's monitors name.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from avatar_operator.pools.deployments import Capacity, selector_labels
from tests.chart import helm

FILES = helm.CHART / "files"


def test_the_prometheus_rule_is_the_tested_rule_file(renderings: dict[str, helm.Rendered]) -> None:
    assert renderings["default"].of_kind("PrometheusRule") == []  # behind its flag
    rule = renderings["gke-l4"].one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]


def test_each_dashboard_is_a_configmap_for_grafanas_sidecar(
    renderings: dict[str, helm.Rendered],
) -> None:
    assert renderings["default"].of_kind("ConfigMap") == []
    maps = renderings["gke-l4"].of_kind("ConfigMap")
    shipped = {p.name: json.loads(p.read_text()) for p in (FILES / "dashboards").glob("*.json")}
    assert {name for m in maps for name in m["data"]} == set(shipped) == {
        "overview.json", "gpu.json", "scaling.json"
    }  # fmt: skip
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = config_map["data"].items()
        assert json.loads(text) == shipped[name]


def test_the_rules_select_the_jobs_the_monitors_name(renderings: dict[str, helm.Rendered]) -> None:
    rendered = renderings["gke-l4"]
    rules = (FILES / "alerts.yaml").read_text()
    jobs = set(re.findall(r'job="([^"]+)"', rules))
    assert jobs == {"avatar-operator", "avatar-runtime"}
    service_monitor = rendered.one("ServiceMonitor")["spec"]
    service = next(
        s for s in rendered.of_kind("Service") if s["metadata"]["name"].endswith("-metrics")
    )
    assert service["metadata"]["labels"][service_monitor["jobLabel"]] == "avatar-operator"
    pod_monitor = rendered.one("PodMonitor")["spec"]
    (pool,) = rendered.of_kind("AvatarRuntimePool")
    labels = selector_labels(pool["metadata"]["name"], Capacity.ON_DEMAND)
    assert labels[pod_monitor["jobLabel"]] == "avatar-runtime"


def test_the_dashboards_are_current() -> None:
    """scripts/dashboards.py writes them: an edit by hand, or a panel not written out, fails."""
    done = subprocess.run(
        [sys.executable, str(helm.REPO / "scripts" / "dashboards.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
