"""The metric-name reader the dashboard and alert tests rely on, on the shapes they use."""

from __future__ import annotations

import pytest

from tests.monitoring.promql import alert_rules, dashboard_queries, metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (pool) (rate(avatar_runtime_video_seconds_total{pool=~".*"}[30s]))',
         {"avatar_runtime_video_seconds_total"}),
        ("histogram_quantile(0.95, sum by (le, stage) (rate(a_bucket[5m])))", {"a_bucket"}),
        ("max by (pool) (x) > on (pool) max by (pool) (y)", {"x", "y"}),
        ('absent(up{job="avatar-operator"} == 1)', {"up"}),
        ("sum(rate(a_sum[1m])) / sum(rate(a_count[1m])) * 3600", {"a_sum", "a_count"}),
        ("(a / ignoring (pool, code) group_left sum(b)) > 0.1 and c >= 3", {"a", "b", "c"}),
        ("changes(process_start_time_seconds{job=\"r\"}[30m]) >= 3",
         {"process_start_time_seconds"}),
    ],
)  # fmt: skip
def test_metric_names_are_read_from_expressions(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_alert_and_dashboard_query_reads_at_least_one_metric() -> None:
    queries = [*alert_rules(), *dashboard_queries()]
    assert len(queries) >= 30
    for where, expr in queries:
        assert metric_names(expr), where
