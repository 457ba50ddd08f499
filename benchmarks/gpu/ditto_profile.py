"""What limits the batched Ditto renderer on the GPU: where its time goes, batch by batch.

``ditto_pod`` says how fast the renderer is; this says why. It loads the
renderer as a pod does (compiled and graphed, through the runtime's renderer
interface: HuBERT stand-in, registration, put-back, copies to the host), and
for each cap on a frames batch (``--caps``, each at most the largest of
``--buckets``) runs one job and then ``--jobs`` jobs at once, timing on the GPU
(CUDA events around each call) and on the driver thread:

- LMDM (``sampler.sample``), warp + decode (``renderer.render``) and the rest of
  a frames batch (put-back, copies to the host) apart: GPU seconds of each;
- the driver thread's own seconds per batch (Python, launches, waiting for the
  lock), against the GPU's: where the driver takes longer, the GPU waits on it;
- how busy the GPU was: GPU seconds of all batches over the run's wall time.

Then, unless ``--no-profile``, one more run of the most jobs at the best cap
under ``torch.profiler``: the kernels that take the most GPU time, and the
trace (``--trace``, gzipped Chrome JSON) for a closer look.

    python -m benchmarks.gpu.ditto_profile --ditto-code .fetched/ditto --model-dir /tmp/m \
        --out profile.json [--buckets 1,2,4,8,16] [--caps 8,16] [--jobs 8] [--trace t.json.gz]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gzip
import json
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu import ditto_volume
from benchmarks.gpu.ditto_adapter import load_portrait
from benchmarks.gpu.ditto_batched import histogram
from benchmarks.gpu.ditto_pod import FPS, _drain, _jobs, _speech, _versions


class _Tally:
    """GPU and driver seconds by part, from events recorded around the engine's calls
    (a profiling tool: it wraps the engine's own methods on the instance)."""

    PARTS = ("lmdm", "warp_decode", "frames_batch", "motion_batch")

    def __init__(self, engine: Any, *, cuda: bool = True) -> None:
        self._cuda = cuda
        self._events: dict[str, list[tuple[Any, Any]]] = collections.defaultdict(list)
        self._driver: dict[str, float] = collections.defaultdict(float)
        self._lock = threading.Lock()
        sampler, renderer = engine.sampler, engine.renderer
        sampler.sample = self._wrap("lmdm", sampler.sample)
        renderer.render = self._wrap("warp_decode", renderer.render)
        engine._run_frames = self._wrap("frames_batch", engine._run_frames)
        engine._run_motion = self._wrap("motion_batch", engine._run_motion)

    def _wrap(self, part: str, fn: Any) -> Any:
        import torch

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            if not self._cuda:  # a CPU smoke run: driver seconds only
                out = fn(*args, **kwargs)
                with self._lock:
                    self._driver[part] += time.perf_counter() - began
                return out
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn(*args, **kwargs)
            end.record()
            with self._lock:
                self._events[part].append((start, end))
                self._driver[part] += time.perf_counter() - began
            return out

        return timed

    def reset(self) -> None:
        with self._lock:
            self._events.clear()
            self._driver.clear()

    def read(self, wall: float) -> dict[str, Any]:
        import torch

        if self._cuda:
            torch.cuda.synchronize()
        out: dict[str, Any] = {}
        for part in self.PARTS:
            pairs = self._events.get(part, [])
            gpu = sum(a.elapsed_time(b) for a, b in pairs) / 1000
            out[part] = {
                "calls": len(pairs),
                "gpu_seconds": gpu,
                "driver_seconds": self._driver.get(part, 0.0),
                "gpu_ms_per_call": 1000 * gpu / len(pairs) if pairs else None,
            }
        busy = out["frames_batch"]["gpu_seconds"] + out["motion_batch"]["gpu_seconds"]
        out["gpu_busy_share"] = busy / wall if wall else None
        out["driver_busy_share"] = (
            out["frames_batch"]["driver_seconds"] + out["motion_batch"]["driver_seconds"]
        ) / wall
        return out


def _kernels(prof: Any, top: int) -> list[dict[str, Any]]:
    rows = []
    for item in prof.key_averages():
        device = getattr(item, "self_device_time_total", None)
        if device is None:
            device = getattr(item, "self_cuda_time_total", 0)
        if device:
            rows.append({"name": item.key[:160], "calls": item.count, "gpu_ms": device / 1000})
    rows.sort(key=lambda r: -r["gpu_ms"])
    return rows[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ditto-code", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--buckets", default="1,2,4,8,16")
    parser.add_argument("--caps", default="8,16")
    parser.add_argument("--lmdm-half", action="store_true", help="LMDM in fp16 (not Ditto's)")
    parser.add_argument(
        "--spectral-mask", action="store_true", help="the mask convolution via FFTs"
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-seconds", type=float, default=3.0, help="per job, profiled")
    parser.add_argument("--device", default="cuda", help="cpu: an eager smoke run of the script")
    parser.add_argument("--trace", type=Path, help="the profiled run's Chrome trace, gzipped")
    args = parser.parse_args()
    import torch

    from avatar_runtime.engines.ditto_batched import renderer as batched
    from avatar_runtime.engines.ditto_batched.engine import EngineSettings

    cuda = args.device.startswith("cuda")
    buckets = tuple(int(b) for b in args.buckets.split(","))
    caps = [int(c) for c in args.caps.split(",")]
    record: dict[str, Any] = {
        "benchmark": "ditto_profile",
        "device": torch.cuda.get_device_name() if cuda else args.device,
        "software": _versions(),
        "seconds_per_job": args.seconds,
        "buckets": list(buckets),
        "lmdm_half": args.lmdm_half,
        "spectral_mask": args.spectral_mask,
    }

    def save() -> None:
        args.out.write_text(json.dumps(record, indent=2, default=str))

    ditto_volume.build(args.model_dir, args.ditto_code, device=args.device)
    settings = EngineSettings(
        buckets=buckets,
        compiled=cuda,
        graphed=cuda,
        lmdm_half=args.lmdm_half,
        spectral_mask=args.spectral_mask,
    )
    began = time.perf_counter()
    renderer = batched.load(args.model_dir, device=args.device, settings=settings)
    engine = renderer.engine
    record["load_seconds"] = time.perf_counter() - began
    record["prepare_seconds"] = engine.prepare_seconds
    record["frames_prepare_seconds"] = dict(getattr(engine.renderer, "prepare_seconds", {}))
    avatar = renderer.prepare(load_portrait(), size=512)
    _drain(renderer.frames(avatar, _speech(1.0, seed=9), fps=FPS), time.perf_counter())
    tally = _Tally(engine, cuda=cuda)
    speeches = [_speech(args.seconds, seed=i) for i in range(args.jobs)]
    record["runs"] = {}
    best: tuple[float, int] = (0.0, caps[0])
    for cap in caps:
        # The cap on a frames batch, below the largest bucket: one compile for every cap.
        engine._scheduler.limits = dataclasses.replace(
            engine._scheduler.limits, max_frames=cap, max_windows=min(cap, max(buckets))
        )
        for count in sorted({1, args.jobs}):
            for counter in engine.batches.values():
                counter.clear()
            tally.reset()
            run = _jobs([renderer] * count, [avatar] * count, speeches[:count], args.device, False)
            run.pop("_kept")
            run["frame_batch_sizes"] = histogram(engine.batches["frames"])
            run["motion_batch_sizes"] = histogram(engine.batches["motion"])
            run["time"] = tally.read(run["wall_seconds"])
            record["runs"][f"cap{cap}-jobs{count}"] = run
            if count == args.jobs and run["frames_per_second"] > best[0]:
                best = (run["frames_per_second"], cap)
            save()
            print(cap, count, round(run["frames_per_second"], 1), flush=True)
    record["best_cap"] = best[1]

    if cuda and not args.no_profile:
        cap = best[1]
        engine._scheduler.limits = dataclasses.replace(
            engine._scheduler.limits, max_frames=cap, max_windows=min(cap, max(buckets))
        )
        activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        short = [_speech(args.profile_seconds, seed=i) for i in range(args.jobs)]
        with torch.profiler.profile(activities=activities) as prof:
            run = _jobs([renderer] * args.jobs, [avatar] * args.jobs, short, args.device, False)
        run.pop("_kept")
        record["profiled"] = {
            "cap": cap,
            "frames_per_second": run["frames_per_second"],
            "wall_seconds": run["wall_seconds"],
            "top_kernels": _kernels(prof, 25),
        }
        if args.trace is not None:
            raw = args.trace.with_suffix("")
            prof.export_chrome_trace(str(raw))
            with raw.open("rb") as src, gzip.open(args.trace, "wb") as dst:
                dst.write(src.read())
            raw.unlink()
    engine.close()
    save()


if __name__ == "__main__":
    main()
