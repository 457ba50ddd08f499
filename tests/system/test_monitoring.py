"""The chart's dashboards and alert rules against a real Prometheus that scraped the real
operator and runtime pods while videos rendered, failed and were retried.

Prometheus is Debian's, scraping the operator (job ``avatar-operator``) and the pool's
runtime pods (job ``avatar-runtime``, labelled ``namespace``, ``pod`` and ``pool`` as the
chart's PodMonitor labels them) every second. The work: videos that succeed, one without a
face (FaceNotFound), one whose pod is deleted under it (a platform retry), on an
AvatarRuntimePool the operator sizes. Then every dashboard query must return data, every
rule must evaluate, and every metric either reads must be one the scrape has (GPU-only
series aside: tests/unit/runtime/test_metrics.py shows a GPU pod exports them).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from avatar_devcluster import stack
from avatar_devcluster.local_system import RUNTIME_NAMESPACE
from avatar_devcluster.waiting import wait_until
from avatar_operator import settings
from tests.monitoring.previews import write as write_previews
from tests.monitoring.promql import (
    GPU_ONLY,
    alert_rules,
    dashboard_queries,
    for_prometheus,
    metric_names,
)
from tests.runtime.server.prometheus import prometheus_scraping, query
from tests.system.monitoring import PodDiscovery
from tests.system.system import LONG_TEXT, System, env_for_tests

pytestmark = pytest.mark.timeout(300)


class PoolDiscovery(PodDiscovery):
    """The runtime pods with their pool as a label, as the PodMonitor relabels them."""

    def poll(self, api: httpx.Client) -> None:
        answer = api.get(f"/api/v1/namespaces/{RUNTIME_NAMESPACE}/pods",
                         params={"labelSelector": settings.POOL_LABEL})  # fmt: skip
        groups = [
            {
                "targets": [f"{pod['status']['podIP']}:{stack.RUNTIME_PORT}"],
                "labels": {
                    "namespace": RUNTIME_NAMESPACE,
                    "pod": pod["metadata"]["name"],
                    "pool": pod["metadata"]["labels"][settings.POOL_LABEL],
                },
            }
            for pod in answer.raise_for_status().json()["items"]
            if (pod.get("status") or {}).get("podIP")
        ]
        text = json.dumps(groups, sort_keys=True)
        if text != self.targets.read_text():
            partial = self.targets.with_suffix(".tmp")
            partial.write_text(text)
            partial.replace(self.targets)


@dataclass
class Scraped:
    url: str
    names: set[str]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    root = tmp_path_factory.mktemp("monitoring")
    # A deleted pod interrupts its jobs in 2 s (as a spot preemption's notice does).
    drain = {"AVATAR_OPERATOR_POOLS__DRAIN_SECONDS": "2"}
    with System(root / "system", operator_env=drain) as system:
        targets = root / "targets.json"
        discovery = PoolDiscovery(system.url, targets)
        discovery.start()
        scrape = (
            "  - job_name: avatar-runtime\n    file_sd_configs:\n"
            f"      - files: ['{targets}']\n        refresh_interval: 1s\n"
            "  - job_name: avatar-operator\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{system.metrics_port}']\n"
        )
        (root / "prometheus").mkdir()
        with prometheus_scraping(root / "prometheus", scrape) as url:
            try:
                started = time.time()
                _work(system)
                time.sleep(3)  # a few more scrapes after the last change
                if previews := os.environ.get("AVATAR_DASHBOARD_PREVIEWS"):
                    write_previews(url, start=started, end=time.time(), out=Path(previews))
                names = set(
                    httpx.get(f"{url}/api/v1/label/__name__/values", timeout=10).json()["data"]
                )
                yield Scraped(url=url, names=names)
            finally:
                discovery.stop()


def _work(system: System) -> None:
    pool = stack.build_runtime_pool(
        buckets=system.buckets, min_replicas=1, max_replicas=2, slots=1, env=env_for_tests(),
        scaling={"scaleDownDelaySeconds": 5, "idleBeforeZeroSeconds": 5},
    )  # fmt: skip
    system.create(pool)
    system.operator.start()
    system.wait_for_runtime_pods(1, timeout=120)
    # Long enough that what is left of it once it renders outlasts the pod's 2 s of grace.
    system.apply(system.video("long", text=" ".join([LONG_TEXT] * 3)))
    for name in ("first", "second"):
        system.apply(system.video(name))
    system.apply(system.video("faceless", portrait="gs://demo/blank.png"))
    wait_until(
        lambda: (system.get("long").get("status") or {}).get("stage") == "render",
        timeout=90,
        what="the long video to render",
    )
    pod = system.get("long")["status"]["runtimePod"]
    system.kubectl("delete", "pod", pod, "--wait=false")  # a platform retry, not the user's
    for name in ("long", "first", "second", "faceless"):
        system.wait_phase(name, ["Succeeded", "Failed"], timeout=180)
    assert system.get("faceless")["status"]["error"]["code"] == "FaceNotFound"
    assert system.get("long")["status"]["phase"] == "Succeeded"
    assert system.get("long")["status"].get("platformRetries") == 1


def test_every_dashboard_query_returns_data(scraped: Scraped) -> None:
    empty = []
    for where, expr in dashboard_queries():
        if metric_names(expr) <= GPU_ONLY:
            continue  # no GPU here: these read NVML and CUDA
        if not query(scraped.url, for_prometheus(expr)):
            empty.append(f"{where}: {expr}")
    assert empty == [], "queries without data:\n" + "\n".join(empty)


def test_every_alert_rule_evaluates_and_none_fires_on_a_healthy_system(scraped: Scraped) -> None:
    for name, expr in alert_rules():
        result = query(scraped.url, expr)  # a parse error fails inside query()
        if name != "AvatarVideosFailing":  # one FaceNotFound in four videos: it may
            assert result == [], f"{name} would fire: {result}"


def test_every_metric_a_query_or_rule_reads_is_exported(scraped: Scraped) -> None:
    read = {n for _, expr in [*dashboard_queries(), *alert_rules()] for n in metric_names(expr)}
    missing = read - scraped.names - GPU_ONLY
    assert missing == set(), f"read but never scraped: {sorted(missing)}"
    assert "avatar_operator_failures_total" in scraped.names
    assert "avatar_operator_retries_total" in scraped.names


def test_the_failures_panel_shows_the_code_and_the_retries_panel_the_cause(
    scraped: Scraped,
) -> None:
    failures = query(scraped.url, "sum by (pool, code) (avatar_operator_failures_total)")
    assert [(r["metric"]["pool"], r["metric"]["code"]) for r in failures] == [
        ("default", "FaceNotFound")
    ]
    retries = query(scraped.url, "sum by (cause) (avatar_operator_retries_total)")
    assert {r["metric"]["cause"] for r in retries} == {"platform"}
