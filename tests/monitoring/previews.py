"""PNG previews of the chart's dashboards, plotted with matplotlib from a real Prometheus.

Grafana cannot run here, so these are previews, not screenshots: each panel's queries as
Grafana would send them (range queries, ``$pool`` = every pool), drawn as lines with the
panel's legends. tests/system/test_monitoring.py writes them from its run (real operator,
real runtime pods, videos rendered, one failed, one retried) when
``AVATAR_DASHBOARD_PREVIEWS`` names a directory:

    AVATAR_DASHBOARD_PREVIEWS=charts/avatar-video/docs \
        .venv/bin/pytest tests/system/test_monitoring.py
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import httpx

from tests.monitoring.promql import DASHBOARDS, for_prometheus


def _series(url: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{url}/api/v1/query_range",
        params={"query": for_prometheus(expr), "start": start, "end": end, "step": 1},
        timeout=30,
    ).json()
    result: list[dict[str, Any]] = answer["data"]["result"] if answer["status"] == "success" else []
    return result


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def write(url: str, *, start: float, end: float, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        panels = board["panels"]
        rows = math.ceil(len(panels) / 2)
        figure, axes = plt.subplots(rows, 2, figsize=(12, 2.6 * rows), squeeze=False)
        for ax, panel in zip(axes.flat, panels, strict=False):
            ax.set_title(panel["title"], fontsize=9, loc="left")
            ax.tick_params(labelsize=7)
            drawn = 0
            for target in panel["targets"]:
                for series in _series(url, target["expr"], start, end):
                    points = [(float(t) - start, float(v)) for t, v in series["values"]]
                    points = [(t, v) for t, v in points if math.isfinite(v)]
                    if points:
                        xs, ys = zip(*points, strict=True)
                        label = _legend(target["legendFormat"], series["metric"])
                        ax.plot(xs, ys, linewidth=1.2, label=label or None)
                        drawn += 1
            if drawn:
                ax.legend(fontsize=6, loc="upper left")
            else:
                ax.text(0.5, 0.5, "no data (GPU pods only)", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8, color="grey")  # fmt: skip
            ax.set_xlabel("seconds", fontsize=7)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        figure.suptitle(
            f"{board['title']} (preview: matplotlib from a real Prometheus)", fontsize=11
        )
        figure.tight_layout()
        target_path = out / f"dashboard-{path.stem}.png"
        figure.savefig(target_path, dpi=80)
        plt.close(figure)
        written.append(target_path)
    return written
