"""From runs to what a reader checks: figures per controller, the JSON, tables and plots.

The figures are the issue's (GPU-hours, dollars, p50/p95/p99 queue wait, videos lost)
plus what explains them: videos interrupted and the GPU time they threw away, the GPU
time spent rendering (what any fleet must pay at least), nodes started and the longest
wait. Plots are PNGs (matplotlib's Agg backend, no display needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from avatar_simulator import engine, scenarios

COLOURS = {
    "policy": "#1f77b4",
    "static": "#7f7f7f",
    "queue_length": "#d62728",
    "queue_length_idle": "#ff7f0e",
    "oracle": "#2ca02c",
}


@dataclass(frozen=True)
class Figures:
    gpu_hours: float
    dollars: float
    p50_wait_s: float
    p95_wait_s: float
    p99_wait_s: float
    lost_jobs: int
    interrupted_jobs: int
    wasted_gpu_hours: float
    """GPU time of interrupted attempts (billed, thrown away)."""
    busy_gpu_hours: float
    """Pods busy rendering (sampled each minute): the least any fleet pays."""
    max_wait_s: float
    videos: int
    nodes: int
    mean_pods: float
    wall_s: float


def percentile(ordered: tuple[float, ...], q: float) -> float:
    """Nearest rank; 0 for no values."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def figures(run: scenarios.Run) -> Figures:
    result = run.result
    counted = [s for s in result.samples if 0 <= s.t < result.end]
    step = 60.0 if len(result.samples) < 2 else result.samples[1].t - result.samples[0].t
    return Figures(
        gpu_hours=round(result.bill.gpu_hours, 1),
        dollars=round(result.bill.dollars, 1),
        p50_wait_s=round(percentile(result.waits, 0.50), 1),
        p95_wait_s=round(percentile(result.waits, 0.95), 1),
        p99_wait_s=round(percentile(result.waits, 0.99), 1),
        lost_jobs=result.lost,
        interrupted_jobs=result.interrupted,
        wasted_gpu_hours=round(result.wasted_gpu_s / 3600, 1),
        busy_gpu_hours=round(sum(s.busy for s in counted) * step / 3600, 1),
        max_wait_s=round(result.waits[-1] if result.waits else 0.0, 1),
        videos=result.counted,
        nodes=result.bill.nodes,
        mean_pods=round(sum(s.pods for s in counted) / len(counted), 1) if counted else 0.0,
        wall_s=round(run.wall_s, 2),
    )


def table(runs: Mapping[str, Figures]) -> dict[str, dict[str, Any]]:
    """The figures for the JSON: all but the run's wall time, so that the same seed
    writes the same file."""
    return {name: {k: v for k, v in asdict(f).items() if k != "wall_s"} for name, f in runs.items()}


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")


def markdown(rows: Mapping[str, Mapping[str, Figures]], *, first: str) -> str:
    """One table: a row per (key, controller)."""
    lines = [
        f"| {first} | controller | GPU-h | $ | p50 s | p95 s | p99 s | lost | interrupted"
        " | busy GPU-h | nodes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, runs in rows.items():
        for name, f in runs.items():
            lines.append(
                f"| {key} | {name} | {f.gpu_hours:,.0f} | {f.dollars:,.0f} | {f.p50_wait_s:.0f}"
                f" | {f.p95_wait_s:.0f} | {f.p99_wait_s:.0f} | {f.lost_jobs}"
                f" | {f.interrupted_jobs:,} | {f.busy_gpu_hours:,.0f} | {f.nodes:,} |"
            )
    return "\n".join(lines)


def plot(path: Path, *, title: str, runs: Mapping[str, scenarios.Run]) -> None:
    """Pods and queued videos over the day for each controller, and the wait distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (pods, queue, waits) = plt.subplots(3, 1, figsize=(10, 10), constrained_layout=True)
    for name, run in runs.items():
        colour = COLOURS.get(name)
        samples = [s for s in run.result.samples if s.t >= 0]
        hours = [s.t / 3600 for s in samples]
        pods.plot(hours, [s.pods for s in samples], label=name, color=colour, linewidth=0.9)
        queue.plot(hours, [s.queued for s in samples], label=name, color=colour, linewidth=0.9)
        ordered = run.result.waits
        if ordered:
            n = len(ordered)
            waits.step(
                [max(w, 0.1) for w in ordered],
                [1 - i / n for i in range(n)],
                where="post",
                label=name,
                color=colour,
            )
    first, run = next(iter(runs.items()))
    busy = [s for s in run.result.samples if s.t >= 0]
    pods.plot(
        [s.t / 3600 for s in busy],
        [s.busy for s in busy],
        ":",
        color="black",
        label=f"busy ({first})",
    )
    pods.set(title=f"{title}: pods (starting and serving)", xlabel="hour", ylabel="pods")
    queue.set(title="videos waiting", xlabel="hour", ylabel="videos")
    waits.set(
        title="wait distribution: share of videos waiting longer than x",
        xlabel="wait (s; no wait is drawn at 0.1 s)",
        ylabel="share",
        xscale="log",
        yscale="log",
        ylim=(1e-4, 1.05),
    )
    for axes in (pods, queue, waits):
        axes.legend(loc="upper right", fontsize="small")
        axes.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_sensitivity(path: Path, rows: Mapping[str, Mapping[str, Mapping[str, Figures]]]) -> None:
    """GPU-hours and p95 wait against the median provisioning lag, per pattern."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(rows), 2, figsize=(10, 3.5 * len(rows)), squeeze=False)
    for row, (pattern, by_lag) in enumerate(rows.items()):
        lags = [float(lag) for lag in by_lag]
        names = list(next(iter(by_lag.values())))
        for name in names:
            colour = COLOURS.get(name)
            axes[row][0].plot(
                lags, [by_lag[k][name].gpu_hours for k in by_lag], "o-", label=name, color=colour
            )
            axes[row][1].plot(
                lags, [by_lag[k][name].p95_wait_s for k in by_lag], "o-", label=name, color=colour
            )
        axes[row][0].set(title=f"{pattern}: GPU-hours", xlabel="median lag (s)")
        axes[row][1].set(title=f"{pattern}: p95 wait (s)", xlabel="median lag (s)")
        for a in axes[row]:
            a.legend(fontsize="small")
            a.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def engine_result_summary(result: engine.Result) -> str:
    waits = result.waits
    return (
        f"{result.bill.gpu_hours:,.0f} GPU-h, p95 {percentile(waits, 0.95):.0f} s,"
        f" lost {result.lost}, interrupted {result.interrupted}"
    )
