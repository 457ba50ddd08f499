"""Throughput of a runtime server with 1, 2 and 3 slots, and its overhead.

Each configuration starts a real ``avatar-runtime serve`` process, submits the
same batch of jobs at once over HTTP and times first submit to last finish.
Throughput is video-seconds produced per wall second. The overhead is how much
longer a job takes through a one-slot server (submit over HTTP, poll until
done) than the same job through the pipeline called in this process, from
pairs of jobs run in turn (target < 5%).

    .venv/bin/python benchmarks/server_benchmark.py [--jobs 6] [--report PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import data

from avatar_runtime.api.jobs import JobSpec
from avatar_runtime.engines import registry
from avatar_runtime.pipeline.runner import Pipeline
from avatar_runtime.settings import RuntimeSettings
from benchmarks.pipeline_benchmark import machine
from tests.runtime.server.harness import Runtime, job_body, start_runtime, wait_for

TEXT = (
    "Thank you for joining this short update. The numbers look good this month, and the"
    " team is ready for the next release."
)
RESOLUTION = 512


Batch = tuple[float, float]  # (video seconds, wall seconds)


def _summary(batches: list[Batch]) -> dict[str, Any]:
    """Median batch by throughput; (video seconds, wall seconds) per batch."""
    rates = sorted(video / wall for video, wall in batches)
    return {
        "batches": len(batches),
        "throughput": statistics.median(rates),
        "throughput_batches": rates,
    }


def _direct_pipeline() -> Pipeline:
    settings = RuntimeSettings()
    return Pipeline(registry.load(settings.engines), settings)


def _direct_batch(pipeline: Pipeline, portrait: Path, out: Path, ids: list[str]) -> Batch:
    """The pipeline called in a loop, in this process: the baseline with no server."""
    start = time.perf_counter()
    video = sum(
        pipeline.run(JobSpec(portrait=str(portrait), text=TEXT, output=str(out / i))).video_seconds
        for i in ids
    )
    return video, time.perf_counter() - start


def _served_batch(runtime: Runtime, portrait: Path, ids: list[str]) -> Batch:
    """Jobs submitted at once over HTTP; first submit to last finish."""
    with runtime.client() as api:
        start = time.perf_counter()
        for job_id in ids:
            body = job_body(job_id, portrait, runtime.out, TEXT)
            body["options"]["resolution"] = RESOLUTION
            api.post("/v1/jobs", json=body).raise_for_status()
        finals = [wait_for(api, job_id, states={"succeeded", "failed"}) for job_id in ids]
        wall = time.perf_counter() - start
    failed = [f["id"] for f in finals if f["state"] != "succeeded"]
    if failed:
        raise RuntimeError(f"jobs failed: {failed}")
    return sum(f["video_seconds"] for f in finals), wall


def measure(
    portrait: Path, tmp: Path, *, jobs: int, rounds: int, pairs: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The server's overhead from paired single jobs, then throughput per slot count."""
    pipeline = _direct_pipeline()
    pipeline.run(JobSpec(portrait=str(portrait), text=TEXT, output=str(tmp / "warm-up")))
    throughput = []
    overhead: dict[str, Any] = {}
    try:
        for slots in (1, 2, 3):
            runtime = start_runtime(tmp / f"slots-{slots}", slots=slots, queue_limit=jobs)
            try:
                if slots == 1:
                    overhead = _paired(pipeline, runtime, portrait, tmp, pairs=pairs)
                batches = []
                for r in range(rounds):
                    ids = [f"s{slots}-r{r}-{i}" for i in range(jobs)]
                    batches.append(_served_batch(runtime, portrait, ids))
                throughput.append({"slots": slots, **_summary(batches)})
                print(f"{slots} slot(s): {throughput[-1]['throughput']:.2f} video-s/s", flush=True)
            finally:
                runtime.stop()
    finally:
        pipeline.close()
    return overhead, throughput


def _served_job(runtime: Runtime, portrait: Path, job_id: str) -> float:
    """Seconds a job costs through the server: the POST's round trip plus the server's
    own created-to-finished time. Polling granularity does not count, and polling is
    gentle (4 Hz) so it does not load the server as an operator's backoff would not."""
    body = job_body(job_id, portrait, runtime.out, TEXT)
    body["options"]["resolution"] = RESOLUTION
    with runtime.client() as api:
        start = time.perf_counter()
        api.post("/v1/jobs", json=body).raise_for_status()
        post = time.perf_counter() - start
        final = wait_for(api, job_id, states={"succeeded", "failed"}, interval=0.25)
    if final["state"] != "succeeded":
        raise RuntimeError(f"job failed: {final['error']}")
    created = dt.datetime.fromisoformat(final["created_at"])
    finished = dt.datetime.fromisoformat(final["finished_at"])
    return post + (finished - created).total_seconds()


def _paired(
    pipeline: Pipeline, runtime: Runtime, portrait: Path, tmp: Path, *, pairs: int
) -> dict[str, Any]:
    """One job direct, the same job through the server, in turn: drift on a shared
    machine (2x between minutes here) hits both sides of a pair alike."""
    ratios, direct_s, served_s = [], [], []
    for i in range(pairs):
        _, direct_wall = _direct_batch(pipeline, portrait, tmp / "direct", [f"pair-{i}"])
        served_wall = _served_job(runtime, portrait, f"pair-{i}")
        direct_s.append(direct_wall)
        served_s.append(served_wall)
        ratios.append(served_wall / direct_wall)
    ratio = statistics.median(ratios)
    print(f"server overhead: {ratio - 1:+.1%} (median of {pairs} pairs)", flush=True)
    return {
        "pairs": pairs,
        "median_ratio": ratio,
        "overhead": ratio - 1,
        "ratios": ratios,
        "direct_seconds": direct_s,
        "served_seconds": served_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=6, help="jobs per batch")
    parser.add_argument("--rounds", type=int, default=3, help="batches per configuration")
    parser.add_argument("--pairs", type=int, default=12, help="direct/served job pairs")
    parser.add_argument("--report", type=Path, default=Path("benchmarks/reports/server.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        portrait = tmp / "portrait.png"
        Image.fromarray(np.asarray(data.astronaut())).save(portrait)
        overhead, runs = measure(
            portrait, tmp, jobs=args.jobs, rounds=args.rounds, pairs=args.pairs
        )

    report = {
        "benchmark": "server",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "resolution": RESOLUTION,
        "fps": 25,
        "overhead": overhead,
        "served": runs,
        "speedup_vs_one_slot": {
            str(r["slots"]): r["throughput"] / runs[0]["throughput"] for r in runs
        },
        "server_overhead": overhead["overhead"],
        "targets": {"server_overhead_max": 0.05},
        "meets_targets": overhead["overhead"] < 0.05,
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"server overhead vs direct: {overhead['overhead']:+.1%}")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
