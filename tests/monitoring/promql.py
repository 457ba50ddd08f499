"""The metric names a PromQL expression reads, and the queries the chart ships.

Prometheus 2.42 (Debian's) has no parse endpoint, so names are taken from the text: label
matchers, strings, durations and grouping clauses are removed, then every identifier that
is not a function, keyword or aggregation is a metric name. The tests below the helpers
check it on the expressions' shapes the chart uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "avatar-video"
ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARDS = CHART / "files" / "dashboards"

GPU_ONLY = {
    "avatar_runtime_gpu_memory_used_bytes",
    "avatar_runtime_gpu_memory_total_bytes",
    "avatar_runtime_torch_memory_allocated_bytes",
}
"""Exported only where NVML or CUDA is (tests/unit/runtime/test_metrics.py shows they are):
no CPU scrape has them, so no query on them is expected to return data here."""

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?")


def metric_names(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def alert_rules() -> Iterator[tuple[str, str]]:
    """(alert name, expression) of every rule the chart ships."""
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """("dashboard / panel / legend", expression) of every query the chart's dashboards run."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                yield (
                    f"{board['title']} / {panel['title']} / {target['legendFormat']}",
                    target["expr"],
                )


def for_prometheus(expr: str, *, rate_interval: str = "30s") -> str:
    """A dashboard query as Grafana sends it: its variables replaced (every pool)."""
    return expr.replace("$__rate_interval", rate_interval).replace('"$pool"', '".*"')
