"""The batched Ditto renderer (``engines/ditto_batched/renderer.py``) as a pod runs it, on the GPU.

Where ``benchmarks/gpu/ditto_batched.py`` drives the engine with random audio
conditions and takes 512 x 512 crops, this goes through the runtime's renderer
interface, as a pod with ``engines.ditto_batched`` does: one renderer for all
jobs; each job's speech through Ditto's HuBERT helper (the volume's ONNX
stand-in, on the CPU) and the condition values of its registration, Ditto's
registrar (once per portrait, cached), put-back into the whole portrait on the
GPU, every frame copied to the host as the encoder takes it. Everything in one
process on one GPU, Ditto's real network classes at full size with random
weights (``benchmarks/gpu/ditto_volume.py``; Ditto's code is never committed):

1. one worker as shipped: the runtime's ``DittoRenderer`` (Ditto's ``StreamSDK``),
   online mode, one job at a time, ``--baseline-runs`` times (the median counts);
2. 2 and 3 independent workers (today's slots), one job each, at once;
3. the batched renderer, eager, then compiled + graphed, at each job count.

Also: each job's latency against its solo latency, first frames, peak GPU
memory, load and compile time, HuBERT's CPU time, the put-back against Ditto's
own (its Cython blend) on the registered portrait and both put-backs' cost, and
one job's frames among the most jobs against the same job alone.

    python -m benchmarks.gpu.ditto_pod --ditto-code .fetched/ditto --model-dir /tmp/m \
        --out report.json [--summary docs/benchmarks/gpu-batched.json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from avatar_runtime.engines.base import Frame, Speech
from avatar_runtime.engines.ditto_renderer import DittoRenderer
from benchmarks.gpu import ditto_volume
from benchmarks.gpu.ditto_adapter import load_portrait, syllable_noise
from benchmarks.gpu.ditto_batched import histogram, latency

FPS = 25
RATE = 16_000


def _speech(seconds: float, seed: int = 0) -> Speech:
    return syllable_noise(seconds, seed, rate=RATE)


def _cuda(device: str) -> bool:
    return device.startswith("cuda")


def _peak_reset(device: str) -> None:
    import torch

    if _cuda(device):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> int:
    import torch

    if not _cuda(device):
        return 0
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def _drain(frames: Any, began: float, keep: list[Frame] | None = None) -> dict[str, Any]:
    first = None
    count = 0
    shape: tuple[int, ...] = ()
    for frame in frames:
        if first is None:
            first = time.perf_counter() - began
        if keep is not None:
            keep.append(frame)
        count += 1
        shape = frame.shape
    return {
        "frames": count,
        "first_frame_seconds": first,
        "wall_seconds": time.perf_counter() - began,
        "frame_shape": list(shape),
    }


def _jobs(
    renderers: list[Any], avatars: list[Any], speeches: list[Speech], device: str, keep: bool
) -> dict[str, Any]:
    """One job per (renderer, avatar, speech), all at once, each in its own thread (a slot)."""
    results: list[dict[str, Any]] = [{} for _ in speeches]
    kept: list[Frame] = []

    def run(i: int) -> None:
        frames = renderers[i].frames(avatars[i], speeches[i], fps=FPS)
        results[i] = _drain(frames, began, kept if keep and i == 0 else None)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(speeches))]
    _peak_reset(device)
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    frames = sum(r["frames"] for r in results)
    video = sum(s.duration for s in speeches)
    return {
        "jobs": len(speeches),
        "wall_seconds": wall,
        "frames": frames,
        "all_frames_made": all(
            r["frames"] == round(s.duration * FPS) for r, s in zip(results, speeches, strict=True)
        ),
        "frames_per_second": frames / wall,
        "seconds_per_video_second": wall / video,
        "job_seconds": [r["wall_seconds"] for r in results],
        "first_frame_seconds": [r["first_frame_seconds"] for r in results],
        "frame_shape": results[0].get("frame_shape"),
        "peak_gpu_memory_bytes": _peak(device),
        "_kept": kept,
    }


class _TimedEncoder:
    """Counts HuBERT's calls, windows and CPU-side seconds (all jobs together)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.windows = 0
        self.calls = 0
        self._lock = threading.Lock()

    def encode(self, windows: Any) -> Any:
        began = time.perf_counter()
        out = self.inner.encode(windows)
        with self._lock:
            self.seconds += time.perf_counter() - began
            self.windows += len(windows)
            self.calls += 1
        return out


def _image_diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {
        "mean_abs_uint8": float(diff.mean()),
        "max_abs_uint8": int(diff.max()),
        "share_over_2": float((diff > 2).mean()),
    }


def _put_back_check(renderer: Any, model_dir: Path, device: str) -> dict[str, Any]:
    """The GPU put-back against Ditto's ``PutBack`` (its Cython blend) for the registered
    portrait and a random crop; and what each costs a frame."""
    import importlib

    import cv2
    import torch

    from benchmarks.gpu.cuda_timing import mean_seconds

    portrait, _, image = next(iter(renderer._avatars.values()))
    backdrop = portrait.backdrop
    m_c2o = backdrop.matrix
    rng = np.random.default_rng(3)
    crop = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    crop = np.asarray(cv2.resize(crop, (512, 512)), dtype=np.float32)
    ditto = importlib.import_module("core.atomic_components.putback").PutBack()
    theirs = ditto(image, crop, m_c2o)
    crop_gpu = torch.as_tensor(crop.astype(np.uint8), device=device)[None]
    ours = backdrop.paste(crop_gpu)[0].cpu().numpy()
    began = time.perf_counter()
    for _ in range(20):
        ditto(image, crop, m_c2o)
    ditto_ms = (time.perf_counter() - began) / 20 * 1000
    out: dict[str, Any] = {
        "portrait_shape": list(image.shape),
        "vs_ditto_putback": _image_diff(ours, theirs),
        "ditto_putback_cpu_ms_per_frame": ditto_ms,
    }
    if _cuda(device):
        for rows in (1, 8):
            batch = crop_gpu.expand(rows, -1, -1, -1).contiguous()

            def paste(b: Any = batch) -> Any:
                return backdrop.paste(b)

            seconds = mean_seconds(paste)
            out[f"gpu_putback_ms_per_frame_batch_{rows}"] = seconds / rows * 1000
    return out


def _versions() -> dict[str, str]:
    """The GPU driver and the libraries the measured path runs on."""
    import importlib.metadata
    import subprocess

    out: dict[str, str] = {}
    names = ("torch", "onnxruntime", "opencv-python-headless", "numpy", "transformers")
    pod = ("coqui-tts", "faster-whisper", "ctranslate2", "av", "fastapi", "uvicorn")
    for name in names + pod:  # the pod's packages where they are installed (whole_pod)
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        out["nvidia_driver"] = subprocess.run(
            query, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _ratios(runs: dict[str, Any], base: float) -> dict[str, float]:
    return {n: run["frames_per_second"] / base for n, run in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ditto-code", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", type=Path, help="the issue's keys, as JSON")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--jobs", default="1,2,3,4,8")
    parser.add_argument("--parts", default="adapter,workers,eager,compiled")
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="short clips, 1-2 jobs, eager")
    parser.add_argument(
        "--spectral-mask", action="store_true", help="batched: the mask convolution via FFTs"
    )
    parser.add_argument("--lmdm-half", action="store_true", help="batched: LMDM in fp16")
    args = parser.parse_args()
    import torch

    from avatar_runtime.engines.ditto_batched import renderer as batched
    from avatar_runtime.engines.ditto_batched.engine import EngineSettings

    device = args.device
    seconds = 2.0 if args.smoke else args.seconds
    job_counts = [1, 2] if args.smoke else [int(n) for n in args.jobs.split(",")]
    parts = {"adapter", "eager"} if args.smoke else set(args.parts.split(","))
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if _cuda(device) else device,
        "torch": torch.__version__,
        "software": _versions(),
        "seconds_per_job": seconds,
        "fps": FPS,
        "job_counts": job_counts,
        "smoke": args.smoke,
        "engine_options": {
            "spectral_mask": args.spectral_mask,
            "lmdm_half": args.lmdm_half,
            "decoder_rows": EngineSettings.decoder_rows,
        },
    }

    def save() -> None:
        public = json.loads(json.dumps(record, default=lambda o: None))
        args.out.write_text(json.dumps(public, indent=2))

    began = time.perf_counter()
    ditto_volume.build(args.model_dir, args.ditto_code, device=device)
    record["volume_build_seconds"] = time.perf_counter() - began
    image = load_portrait()
    speeches = [_speech(seconds, seed=i) for i in range(max(job_counts))]

    if "adapter" in parts:
        began = time.perf_counter()
        first = DittoRenderer(args.model_dir, scratch=args.model_dir / "avatars", online=True)
        record["adapter_load_seconds"] = time.perf_counter() - began
        renderers, avatars = [first], [first.prepare(image, size=512)]
        _drain(first.frames(avatars[0], _speech(1.0, seed=9), fps=FPS), time.perf_counter())
        runs = []
        for _ in range(1 if args.smoke else args.baseline_runs):
            run = _jobs(renderers, avatars, speeches[:1], device, keep=False)
            run.pop("_kept")
            runs.append(run)
        record["one_worker_runs"] = runs
        record["one_worker_frames_per_second"] = statistics.median(
            r["frames_per_second"] for r in runs
        )
        save()
        if "workers" in parts:
            record["independent_workers"] = {}
            for count in (2, 3):
                while len(renderers) < count:
                    extra = DittoRenderer(
                        args.model_dir, scratch=args.model_dir / "avatars", online=True
                    )
                    avatars.append(extra.prepare(image, size=512))
                    _drain(extra.frames(avatars[-1], _speech(1.0, 9), fps=FPS), time.perf_counter())
                    renderers.append(extra)
                run = _jobs(renderers, avatars, speeches[:count], device, keep=False)
                run.pop("_kept")
                record["independent_workers"][str(count)] = run
                save()
        del renderers, avatars, first
        if _cuda(device):
            torch.cuda.empty_cache()

    for label, compiled in (("eager", False), ("compiled", True)):
        if label not in parts:
            continue
        _peak_reset(device)
        began = time.perf_counter()
        settings = EngineSettings(
            compiled=compiled,
            graphed=compiled,
            spectral_mask=args.spectral_mask,
            lmdm_half=args.lmdm_half,
        )
        renderer = batched.load(args.model_dir, device=device, settings=settings)
        record[f"{label}_load_seconds"] = time.perf_counter() - began
        record[f"{label}_compile_seconds"] = renderer.engine.prepare_seconds
        record[f"{label}_load_peak_gpu_memory_bytes"] = _peak(device)
        if _cuda(device):  # what the node's NVML sees of the renderer, less the context
            record[f"{label}_reserved_after_load_bytes"] = torch.cuda.memory_reserved()
        timed = _TimedEncoder(renderer._encoder)
        renderer._encoder = timed
        began = time.perf_counter()
        avatar = renderer.prepare(image, size=512)
        record[f"{label}_registration_seconds"] = time.perf_counter() - began
        began = time.perf_counter()
        renderer.prepare(image, size=512)
        record[f"{label}_cached_registration_seconds"] = time.perf_counter() - began
        _drain(renderer.frames(avatar, _speech(1.0, seed=9), fps=FPS), time.perf_counter())
        runs_by_count: dict[str, Any] = {}
        alone: list[Frame] = []
        for count in job_counts:
            for counter in renderer.engine.batches.values():
                counter.clear()
            timed.seconds, timed.windows, timed.calls = 0.0, 0, 0
            run = _jobs([renderer] * count, [avatar] * count, speeches[:count], device, keep=True)
            kept = run.pop("_kept")
            if count == 1:
                alone = kept
            elif count == max(job_counts) and alone:
                run["job0_frames_vs_alone"] = _image_diff(np.stack(kept), np.stack(alone))
            run["motion_batch_sizes"] = histogram(renderer.engine.batches["motion"])
            run["frame_batch_sizes"] = histogram(renderer.engine.batches["frames"])
            run["hubert"] = {
                "cpu_seconds": timed.seconds,
                "windows": timed.windows,
                "calls": timed.calls,
            }
            runs_by_count[str(count)] = run
            record[f"batched_{label}"] = runs_by_count
            save()
        try:
            record[f"{label}_put_back"] = _put_back_check(renderer, args.model_dir, device)
        except Exception as exc:  # a check, not the measurement: say why and go on
            record[f"{label}_put_back"] = {"error": repr(exc)}
        renderer.engine.close()
        del renderer
        if _cuda(device):
            torch.cuda.empty_cache()
        save()

    base = record.get("one_worker_frames_per_second")
    if base:
        record["throughput_ratio_vs_one_worker"] = {
            "independent_workers": _ratios(record.get("independent_workers", {}), base),
            "batched_eager": _ratios(record.get("batched_eager", {}), base),
            "batched_compiled": _ratios(record.get("batched_compiled", {}), base),
        }
    record["max_latency_ratio_vs_solo"] = {
        label: latency(record.get(f"batched_{label}", {})) for label in ("eager", "compiled")
    }
    save()
    if args.summary is not None:
        args.summary.write_text(json.dumps(summary(record), indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if "ratio" in k}, indent=2))


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The issue's keys, where measured (the renderer alone through its interface: no key
    here claims the whole pod)."""
    ratios = record.get("throughput_ratio_vs_one_worker", {})
    best = "compiled" if record.get("batched_compiled") else "eager"
    runs = record.get(f"batched_{best}", {})
    out: dict[str, Any] = {
        "gpu": record["device"],
        "torch": record["torch"],
        "software": record.get("software", {}),
        "whole_pod": False,
        "measured_through": "the runtime's renderer interface (BatchedDittoRenderer), HuBERT"
        " stand-in and put-back included; no TTS, ASR, encoding or HTTP",
        "seconds_per_job": record["seconds_per_job"],
        "one_worker_frames_per_second": record.get("one_worker_frames_per_second"),
    }
    if ratios.get("batched_compiled"):
        out["renderer_throughput_ratio_compiled_vs_one_worker"] = ratios["batched_compiled"]
    if ratios.get("batched_eager"):
        out["renderer_throughput_ratio_vs_one_worker"] = ratios["batched_eager"]
    if ratios.get("independent_workers"):
        out["independent_workers_ratio"] = ratios["independent_workers"]
    latency = record.get("max_latency_ratio_vs_solo", {}).get(best)
    if latency:
        out["max_latency_ratio_vs_solo"] = latency
    if "1" in runs:
        out["solo_realtime_factor"] = runs["1"]["seconds_per_video_second"]
        out["first_frame_seconds"] = {n: max(r["first_frame_seconds"]) for n, r in runs.items()}
        out["peak_gpu_memory_bytes"] = {n: r["peak_gpu_memory_bytes"] for n, r in runs.items()}
    out["variant"] = best
    return out


if __name__ == "__main__":
    main()
