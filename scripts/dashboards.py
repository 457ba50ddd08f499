"""Write the chart's Grafana dashboards (charts/avatar-video/files/dashboards/*.json) from
the panels below, or check that they are current (``--check``, run by the tests).

Hand-written Grafana JSON is thousands of lines nobody reviews; here each panel is one
line of intent (title, unit, queries) and the JSON follows. Every query is run against a
real Prometheus that scraped the real operator and runtime pods while videos rendered
(tests/monitoring/test_dashboards.py), so a panel on a metric the code does not export
fails there. Queries may use ``$pool`` (a dashboard variable) and Grafana's
``$__rate_interval``.

    python scripts/dashboards.py          # write
    python scripts/dashboards.py --check  # exit 1 if a file differs
"""

# ruff: noqa: E501 - one line per query reads better than a wrapped one

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "charts" / "avatar-video" / "files" / "dashboards"
RATE = "$__rate_interval"
POOL = 'pool=~"$pool"'


@dataclass(frozen=True)
class Panel:
    title: str
    queries: dict[str, str]  # legend -> PromQL
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"
    width: int = 12
    gpu_only: bool = False
    """Its metrics exist only where NVML or CUDA does (no data on a CPU runtime)."""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


def _quantiles(metric: str, by: str = "", selector: str = "") -> dict[str, str]:
    group = f"le{', ' + by if by else ''}"
    legend = f"{{{{{by}}}}} " if by else ""
    return {
        f"{legend}p{int(q * 100)}": f"histogram_quantile({q}, sum by ({group}) "
        f"(rate({metric}_bucket{{{selector}}}[{RATE}])))"
        for q in (0.5, 0.95)
    }


OVERVIEW = Dashboard(
    uid="avatar-video-overview",
    title="Avatar video / Overview",
    description="Videos made, how long they wait and take, what fails, and who uses the GPUs.",
    panels=[
        Panel(
            "Videos finished per hour",
            {"{{outcome}}": f"sum by (outcome) (rate(avatar_operator_jobs_total[{RATE}])) * 3600"},
            "short",
            "By outcome: succeeded, failed, cancelled.",
        ),
        Panel(
            "Video seconds rendered per second",
            {
                "{{pool}}": f"sum by (pool) (rate(avatar_runtime_video_seconds_total{{{POOL}}}[{RATE}]))"
            },
            "short",
            "Above 1: faster than real time, all pods together.",
        ),
        Panel(
            "Queue depth",
            {
                "{{pool}} waiting": f"sum by (pool) (avatar_operator_queue_depth{{{POOL}}})",
                "{{pool}} running": f"sum by (pool) (avatar_operator_running_jobs{{{POOL}}})",
            },
            "short",
        ),
        Panel(
            "Queue wait",
            {
                "{{pool}} longest waiting": f"max by (pool) (avatar_operator_oldest_waiting_seconds{{{POOL}}})",
                "{{pool}} target": f"max by (pool) (avatar_pool_target_queue_wait_seconds{{{POOL}}})",
                **_quantiles("avatar_operator_dispatch_latency_seconds"),
            },
            "s",
            "The longest wait now, the pool's target, and the time from an AvatarVideo's creation to a pod taking it.",
        ),
        Panel(
            "Realtime factor",
            _quantiles("avatar_runtime_realtime_factor", selector=POOL),
            "short",
            "Render time / video length: below 1 is faster than real time.",
        ),
        Panel(
            "Failures by code, per hour",
            {
                "{{pool}} {{code}}": f"sum by (pool, code) (rate(avatar_operator_failures_total{{{POOL}}}[{RATE}])) * 3600"
            },
            "short",
            "The stable error codes of the AvatarVideos' status.",
        ),
        Panel(
            "End-to-end time",
            _quantiles("avatar_operator_job_seconds"),
            "s",
            "From an AvatarVideo's creation to its end (any outcome).",
        ),
        Panel(
            "GPUs in use by namespace",
            {
                "{{namespace}}": f"sum by (namespace) (rate(avatar_operator_gpu_seconds_total{{{POOL}}}[{RATE}]))"
            },
            "short",
            "GPU seconds charged to each namespace's videos per second: the GPUs its videos keep busy (charge-back).",
        ),
    ],
)

GPU = Dashboard(
    uid="avatar-video-gpu",
    title="Avatar video / GPU",
    description="Each runtime pod's GPU memory, slots, TTS batching and model loading.",
    panels=[
        Panel(
            "GPU memory used / total",
            {
                "{{pod}} used": f"max by (pod) (avatar_runtime_gpu_memory_used_bytes{{{POOL}}})",
                "{{pod}} total": f"max by (pod) (avatar_runtime_gpu_memory_total_bytes{{{POOL}}})",
            },
            "bytes",
            "NVML's figures per pod.",
            gpu_only=True,
        ),
        Panel(
            "torch's allocator",
            {"{{pod}}": f"max by (pod) (avatar_runtime_torch_memory_allocated_bytes{{{POOL}}})"},
            "bytes",
            "What the models and live tensors hold.",
            gpu_only=True,
        ),
        Panel(
            "Busy slots",
            {
                "{{pod}} busy": f'sum by (pod) (avatar_runtime_slots{{state="busy",{POOL}}})',
                "{{pod}} slots": f"sum by (pod) (avatar_runtime_slots{{{POOL}}})",
            },
            "short",
        ),
        Panel(
            "Jobs waiting in the pods",
            {"{{pod}}": f"sum by (pod) (avatar_runtime_queue_depth{{{POOL}}})"},
            "short",
        ),
        Panel(
            "TTS batch size",
            {
                "mean": f"sum(rate(avatar_runtime_tts_batch_size_sum{{{POOL}}}[{RATE}])) / sum(rate(avatar_runtime_tts_batch_size_count{{{POOL}}}[{RATE}]))",
                **_quantiles("avatar_runtime_tts_batch_size", selector=POOL),
            },
            "short",
            "Sentences the shared TTS model generates at once (XTTS-v2 batches across slots).",
        ),
        Panel(
            "Model load time",
            {
                "{{pod}} {{model}}": f"max by (pod, model) (avatar_runtime_model_load_seconds{{{POOL}}})"
            },
            "s",
            "Per model at pod start (counted in readiness, not in jobs).",
        ),
        Panel(
            "Model memory",
            {
                "{{pod}} {{model}}": f"max by (pod, model) (avatar_runtime_model_gpu_memory_bytes{{{POOL}}})"
            },
            "bytes",
            "GPU memory each model took as it loaded (0 on CPU).",
        ),
        Panel(
            "Stage time, p95",
            _quantiles("avatar_runtime_stage_duration_seconds", by="stage", selector=POOL),
            "s",
            "fetch, tts, asr, render, encode, upload.",
        ),
    ],
)

SCALING = Dashboard(
    uid="avatar-video-scaling",
    title="Avatar video / Scaling",
    description="What each AvatarRuntimePool wants, has and is starting, and why it changed.",
    panels=[
        Panel(
            "Replicas: desired, ready, starting",
            {
                "{{pool}} desired": f"max by (pool) (avatar_pool_desired_replicas{{{POOL}}})",
                "{{pool}} ready": f"max by (pool) (avatar_pool_ready_replicas{{{POOL}}})",
                "{{pool}} starting": f"max by (pool) (avatar_pool_starting_replicas{{{POOL}}})",
            },
            "short",
            width=24,
        ),
        Panel(
            "Scale events",
            {
                "{{pool}} {{direction}} ({{reason}})": f"sum by (pool, direction, reason) (increase(avatar_pool_scale_events_total{{{POOL}}}[{RATE}]))"
            },
            "short",
            "Each change of a pool's replicas with the policy's reason (kubectl get arp -o yaml: the full decision).",
        ),
        Panel(
            "Backlog",
            {"{{pool}}": f"sum by (pool) (avatar_operator_backlog_video_seconds{{{POOL}}})"},
            "s",
            "Estimated seconds of video waiting: what the policy drains.",
        ),
        Panel(
            "Throughput per pod",
            {
                "{{pod}}": f"sum by (pod) (rate(avatar_runtime_video_seconds_total{{{POOL}}}[{RATE}]))"
            },
            "short",
            "Video seconds per second each pod renders: the measured capacity the policy divides the backlog by.",
        ),
        Panel(
            "Retries by cause",
            {
                "{{cause}} {{code}}": f"sum by (cause, code) (rate(avatar_operator_retries_total[{RATE}])) * 3600"
            },
            "short",
            "Per hour; platform: a pod drained, preempted or removed (not counted against maxRetries).",
        ),
    ],
)

DASHBOARDS = (OVERVIEW, GPU, SCALING)


def _panel(panel: Panel, index: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description
        + (" GPU pods only: no data on a CPU runtime." if panel.gpu_only else ""),
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (legend, expr) in enumerate(panel.queries.items())
        ],
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for index, panel in enumerate(dashboard.panels):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel(panel, index, x, y))
        x += panel.width
    pool_query = "label_values(avatar_operator_queue_depth, pool)"
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["avatar-video"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                },
                {
                    "name": "pool",
                    "type": "query",
                    "label": "Pool",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {"query": pool_query, "refId": "pools"},
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }


def files() -> dict[Path, str]:
    return {
        OUT / f"{d.uid.removeprefix('avatar-video-')}.json": json.dumps(render(d), indent=2) + "\n"
        for d in DASHBOARDS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is not current")
    args = parser.parse_args()
    stale = [p for p, text in files().items() if not p.exists() or p.read_text() != text]
    if args.check:
        if stale:
            sys.exit(f"not current (run python scripts/dashboards.py): {[str(p) for p in stale]}")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in files().items():
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
