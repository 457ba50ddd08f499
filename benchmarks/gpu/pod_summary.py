"""The whole-pod benchmark's reports: a short table per part, and the issue's keys.

``whole_pod`` writes one report per device call; ``combine`` merges them (later
calls win, part by part) and turns the result into the keys issue 18 asks for,
merged into ``docs/benchmarks/gpu-batched.json``: the renderer-only figures
already there stay, under ``renderer_`` names where the whole pod's share
their names, so the file says both what the renderer alone does and what a pod
does around it.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any


def brief(record: dict[str, Any]) -> dict[str, Any]:
    """Per part: throughput, latency and first frame per job count (the tail of the log)."""
    out: dict[str, Any] = {}
    for label in ("unbatched", "eager", "compiled"):
        part_ = record.get(label)
        if not part_:
            continue
        if "error" in part_ or "ready_seconds" not in part_:
            out[label] = part_.get("error", "unfinished")[-600:]
            continue
        out[label] = {
            "ready_seconds": round(part_["ready_seconds"], 1),
            "one_worker": part_.get("one_worker_video_seconds_per_second"),
            **{
                n: [round(r["video_seconds_per_second"], 3), round(max(r["job_seconds"]), 2)]
                for n, r in part_.get("runs", {}).items()
            },
        }
    return out


RENDERER_KEYS = (
    "max_latency_ratio_vs_solo",
    "solo_realtime_factor",
    "first_frame_seconds",
    "peak_gpu_memory_bytes",
    "independent_workers_ratio",
    "variant",
    "seconds_per_job",
    "measured_through",
    "one_worker_frames_per_second",
    "report",
)
NOT_MEASURED = [
    "real weights (none can be downloaded here): random-weight XTTS-v2 chunks are capped at"
    " --tokens, random-weight Whisper decodes no words (whisper_volume), Ditto's HuBERT and face"
    " helpers are the volume's ONNX stand-ins on the CPU",
    "faster-whisper on the GPU: CTranslate2's wheels need CUDA 12's libcublas.so.12 and the"
    " device has CUDA 13, so the ASR ran on the CPU (int8; its workers and threads as"
    " pod_settings_tried says, else one worker of half the cores)",
    "an L4 (none is lent): the figures are an H200's",
]


def latency_ratios(runs: dict[str, Any]) -> dict[str, float]:
    """Per job count, the slowest job's time against the solo job's ({} without a solo run)."""
    if "1" not in runs:
        return {}
    solo_job = max(runs["1"]["job_seconds"])
    return {n: max(r["job_seconds"]) / solo_job for n, r in runs.items()}


def summary(record: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The issue's keys for the whole pod, merged into the renderer-only summary."""
    out = dict(previous)
    if not previous.get("whole_pod"):
        for key in RENDERER_KEYS:
            if key in out:
                out[f"renderer_{key}"] = out.pop(key)
    base = record["unbatched"]["one_worker_video_seconds_per_second"]
    solo = {
        label: record[label]["runs"]["1"]["seconds_per_video_second"]
        for label in ("eager", "compiled")
        if "1" in record.get(label, {}).get("runs", {})
    }
    best = "compiled" if "compiled" in solo else "eager"

    def ratios(label: str) -> dict[str, float]:
        runs = record.get(label, {}).get("runs", {})
        return {n: r["video_seconds_per_second"] / base for n, r in runs.items()}

    def latency(label: str) -> dict[str, float]:
        return latency_ratios(record.get(label, {}).get("runs", {}))

    runs = record[best]["runs"]
    one_worker = record["unbatched"]["one_worker_runs"]
    out.update({
        "whole_pod": True,
        "measured_through": "a real `avatar-runtime serve` on the GPU, jobs over HTTP: XTTS-v2"
        " (full size, random weights), faster-whisper (Whisper small's size, random weights, "
        f"{record['asr']['device']} {record['asr']['compute_type']}), Ditto (ditto_batched), PyAV"
        " encoding, upload to a local gs:// bucket (benchmarks/gpu/whole_pod.py)",
        "whole_pod_seconds_per_job": statistics.mean(
            runs["1"]["job_video_seconds"]
        ),
        "one_worker_video_seconds_per_second": base,
        "throughput_ratio_vs_one_worker": ratios("eager"),
        "throughput_ratio_compiled_vs_one_worker": ratios("compiled"),
        "independent_workers_ratio": ratios("unbatched"),
        "max_latency_ratio_vs_solo": latency(best),
        "max_latency_ratio_vs_solo_eager": latency("eager"),
        "solo_realtime_factor": solo[best],
        "solo_realtime_factor_eager": solo.get("eager"),
        "first_frame_seconds": {n: max(r["first_frame_seconds"]) for n, r in runs.items()},
        "one_worker_solo_realtime_factor": statistics.median(
            r["seconds_per_video_second"] for r in one_worker
        ),
        "one_worker_first_frame_seconds": statistics.median(
            max(r["first_frame_seconds"]) for r in one_worker
        ),
        "peak_gpu_memory_bytes": {n: r["peak_nvml_bytes"] for n, r in runs.items()},
        "peak_gpu_memory_bytes_independent_workers": {
            n: r["peak_nvml_bytes"] for n, r in record["unbatched"]["runs"].items()
        },
        "peak_gpu_memory_measured_by": "NVML, the whole device, sampled every 50 ms during each"
        " batch (the pod is the only process on the GPU; it includes what torch's allocator"
        " keeps cached, compiling's included)",
        "peak_torch_allocator_bytes": {n: r["peak_torch_bytes"] for n, r in runs.items()},
        "peak_torch_allocator_bytes_independent_workers": {
            n: r["peak_torch_bytes"] for n, r in record["unbatched"]["runs"].items()
        },
        "variant": best,
        "pod_settings_tried": record.get("env", []),
        "whole_pod_report": "benchmarks/reports/gpu-whole-pod.json",
    })  # fmt: skip
    out["software"] = {**record.get("software", {}), **out.get("software", {})}
    if "software_carried" in record:
        out["software"]["carried_to_the_device"] = record["software_carried"]
    out["not_measured"] = NOT_MEASURED
    return out


def combine(paths: list[Path], out: Path, summary_path: Path | None) -> None:
    """The parts of several calls as one report (later calls win), and the summary."""
    record: dict[str, Any] = {}
    for path in paths:
        record.update(json.loads(path.read_text()))
    out.write_text(json.dumps(record, indent=2) + "\n")
    if summary_path is not None:
        previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        summary_path.write_text(json.dumps(summary(record, previous), indent=2) + "\n")


def paced(paths: list[Path], unpaced: Path, chosen: str) -> dict[str, Any]:
    """The compiled pod with ``engines.ditto_job_max_speed`` set, one report per value,
    beside the same machine's uncapped pod: what a cap on one job's speed buys (the 3-job
    latency against the solo one's) and costs (the solo job's time)."""

    def one(record: dict[str, Any]) -> dict[str, Any]:
        runs = record["compiled"]["runs"]
        return {
            "video_seconds_per_second": {n: r["video_seconds_per_second"] for n, r in runs.items()},
            "max_latency_ratio_vs_solo": latency_ratios(runs),
            "slowest_job_seconds": {n: max(r["job_seconds"]) for n, r in runs.items()},
            "solo_realtime_factor": runs["1"]["seconds_per_video_second"],
            "first_frame_seconds": {n: max(r["first_frame_seconds"]) for n, r in runs.items()},
            "peak_gpu_memory_bytes": {n: r["peak_nvml_bytes"] for n, r in runs.items()},
            "date": record["date"],
            "device": record["device"],
        }

    def speed(record: dict[str, Any]) -> str:
        name = "AVATAR_RUNTIME_ENGINES__DITTO_JOB_MAX_SPEED="
        values = [s.removeprefix(name) for s in record.get("env", []) if s.startswith(name)]
        return values[-1] if values else "0"

    records = [json.loads(path.read_text()) for path in paths]
    by_speed = {speed(r): one(r) for r in records}
    return {
        "setting": "engines.ditto_job_max_speed (AVATAR_RUNTIME_ENGINES__DITTO_JOB_MAX_SPEED)",
        "chosen": chosen,
        **by_speed[chosen],
        "by_speed": by_speed,
        "uncapped_same_machine": one(json.loads(unpaced.read_text())),
        "reports": [str(p) for p in paths] + [str(unpaced)],
    }
