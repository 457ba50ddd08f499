"""Ditto batched across jobs (``engines/ditto_batched``) against the adapter as shipped, on the GPU.

Everything runs in one process on one GPU, with Ditto's real network classes at
full size and random weights, from a model volume written around Ditto's
fetched code (``benchmarks/gpu/ditto_volume.py``; the code is never committed):

1. one worker as shipped: the runtime's ``DittoRenderer`` (Ditto's own
   ``StreamSDK`` and threads), online mode, one job at a time;
2. 2 and 3 independent workers (today's slots): one ``DittoRenderer`` each,
   one job each, at once;
3. the batched engine, eager: 1, 2, 3, 4 and 8 jobs at once;
4. the batched engine compiled (``torch.compile``) and graphed (CUDA graphs
   per bucket), the same job counts.

The renderer alone: the engine's jobs get their audio condition (HuBERT
features + Ditto's condition values, 1103 wide) as random tensors on the GPU,
where the adapter runs its HuBERT stand-in (one convolution, on the CPU) and
its condition handler; the engine leaves the frames as 512 x 512 crops (put-back
into the portrait is not in it yet), where the adapter blends each into the
portrait on the CPU. Both hand each frame to the host. The portrait's
registration is Ditto's own (through the adapter, with the volume's stand-in
face helpers), reused by the engine's jobs.

Also measured: each job's latency against its solo latency, time to first
frame, peak GPU memory, load / compile time, and numerics on the GPU: the
folded, batched LMDM against Ditto's ``ddim_sample`` (same seed), the batched
warp + decode against Ditto's modules one frame at a time, a job's frames
rendered among 8 jobs against the same job alone, and the capture stand-ins
against Ditto's helpers.

    python -m benchmarks.gpu.ditto_batched --ditto-code .fetched/ditto --model-dir /tmp/m \
        --out report.json [--smoke] [--parts adapter,compiled] [--lmdm-both]

``--parts`` picks what runs (the adapter's one worker always loads: the engine
reuses its registration of the portrait); ``--lmdm-both`` also runs the compiled
engine with LMDM's denoiser in fp16 autocast, which Ditto does not do.
"""

from __future__ import annotations

import argparse
import collections
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avatar_runtime.engines.base import Speech
from avatar_runtime.engines.ditto_renderer import DittoRenderer
from benchmarks.gpu import ditto_volume
from benchmarks.gpu.ditto_adapter import drain, load_portrait, syllable_noise

FPS = 25
RATE = 16_000
AUDIO_WIDTH = ditto_volume.AUDIO_COND_DIM


def _speech(seconds: float, seed: int = 0) -> Speech:
    return syllable_noise(seconds, seed, rate=RATE)


def _peak_reset() -> None:
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()


def _peak() -> int:
    import torch

    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def _workers(renderers: list[DittoRenderer], avatars: list[Any], speech: Speech) -> dict[str, Any]:
    """One job per worker, all at once (threads, as a pod's slots)."""
    results: list[dict[str, Any]] = [{} for _ in renderers]

    def run(i: int) -> None:
        results[i] = drain(renderers[i].frames(avatars[i], speech, fps=FPS), began)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(renderers))]
    _peak_reset()
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    frames = sum(r["frames"] for r in results)
    return {
        "jobs": len(renderers),
        "wall_seconds": wall,
        "frames": frames,
        "frames_per_second": frames / wall,
        "seconds_per_video_second": wall / (len(renderers) * speech.duration),
        "job_seconds": [r["wall_seconds"] for r in results],
        "first_frame_seconds": [r["first_frame_seconds"] for r in results],
        "peak_gpu_memory_bytes": _peak(),
    }


def _conds(jobs: int, frames: int, device: str) -> list[Any]:
    import torch

    generator = torch.Generator(device=device).manual_seed(1234)
    return [
        0.5 * torch.randn(frames, AUDIO_WIDTH, device=device, generator=generator)
        for _ in range(jobs)
    ]


def _engine_run(
    engine: Any, portrait: Any, conds: list[Any], *, keep: int | None = None
) -> dict[str, Any]:
    """All jobs at once; each reader takes its frames on the host, as an encoder would (the
    engine copies each batch out; ``.cpu()`` is there for an engine that did not)."""
    handles = []
    kept: list[Any] = []
    stats: list[dict[str, Any]] = [{} for _ in conds]
    _peak_reset()
    began = time.perf_counter()
    for i, cond in enumerate(conds):
        handle = engine.open_job(portrait, seed=100 + i)
        handle.feed(cond)
        handle.end()
        handles.append(handle)

    def read(i: int) -> None:
        first = None
        count = 0
        for frame in handles[i].frames():
            host = frame.cpu()
            if first is None:
                first = time.perf_counter() - began
            if keep is not None and i == keep:
                kept.append(host)
            count += 1
        stats[i] = {
            "frames": count,
            "first_frame_seconds": first,
            "wall_seconds": time.perf_counter() - began,
        }

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(conds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    frames = sum(s["frames"] for s in stats)
    video = sum(c.shape[0] for c in conds) / FPS
    return {
        "jobs": len(conds),
        "wall_seconds": wall,
        "frames": frames,
        "all_frames_made": all(
            s["frames"] == c.shape[0] for s, c in zip(stats, conds, strict=True)
        ),
        "frames_per_second": frames / wall,
        "seconds_per_video_second": wall / video,
        "job_seconds": [s["wall_seconds"] for s in stats],
        "first_frame_seconds": [s["first_frame_seconds"] for s in stats],
        "peak_gpu_memory_bytes": _peak(),
        "_kept": kept,
    }


def _relative(a: Any, b: Any) -> float:
    import torch

    a, b = a.double(), b.double()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _image_diff(a: Any, b: Any) -> dict[str, float]:
    diff = (a.int() - b.int()).abs()
    return {
        "mean_abs_uint8": float(diff.float().mean()),
        "max_abs_uint8": int(diff.max()),
        "share_over_2": float((diff > 2).float().mean()),
    }


def _frames_diff(alone: list[Any], among: list[Any]) -> dict[str, Any]:
    import torch

    if len(alone) != len(among) or not alone:
        return {"error": f"{len(alone)} frames alone, {len(among)} among others"}
    return _image_diff(torch.stack(among), torch.stack(alone))


def _lmdm_numerics(networks: Any, sampler: Any, device: str) -> dict[str, Any]:
    """The folded, batched sampler against Ditto's own ``ddim_sample`` for one window."""
    import torch

    lmdm = networks.lmdm
    generator = torch.Generator(device=device).manual_seed(7)
    rows = min(8, sampler.max_batch)
    kp = 0.3 * torch.randn(rows, lmdm.motion_feat_dim, device=device, generator=generator)
    aud = 0.5 * torch.randn(rows, lmdm.seq_frames, AUDIO_WIDTH, device=device, generator=generator)
    torch.manual_seed(11)
    x0 = torch.randn((1, lmdm.seq_frames, lmdm.motion_feat_dim), device=device)
    noise = torch.randn(rows, lmdm.seq_frames, lmdm.motion_feat_dim, device=device)
    noise[0] = x0[0]
    torch.manual_seed(11)
    reference = lmdm.ddim_sample(kp[:1], aud[:1], sampler_steps(sampler))
    batched = sampler.sample(kp, aud, noise)
    alone = sampler.sample(kp[:1], aud[:1], noise[:1])
    return {
        "rows_in_batch": rows,
        "relative_error_batched_vs_ditto": _relative(batched[:1], reference),
        "relative_error_alone_vs_ditto": _relative(alone, reference),
        "relative_error_batched_vs_alone": _relative(batched[:1], alone),
        "graphed": sampler.graphed,
    }


def sampler_steps(sampler: Any) -> int:
    return int(sampler._lmdm.sampling_timesteps)


def _frame_numerics(networks: Any, renderer: Any, portrait: Any, device: str) -> dict[str, Any]:
    """A batch of 8 frames (or the largest bucket) through the engine's renderer, and the
    same frames through Ditto's modules one at a time in fp16 autocast (as Ditto runs
    them), each against the same modules in fp32: uint8 differences."""
    import torch

    rows = min(8, renderer.max_batch)
    generator = torch.Generator(device=device).manual_seed(5)
    feature = portrait.feature.expand(rows, -1, -1, -1, -1).contiguous()
    x_s = portrait.motion.x_s.expand(rows, -1, -1).contiguous()
    x_d = x_s + 0.02 * torch.randn(x_s.shape, device=device, generator=generator)
    batched = renderer.render(feature, x_s, x_d)

    def one_by_one(half: bool) -> Any:
        singles = []
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
            for i in range(rows):
                rows_i = slice(i, i + 1)
                out = networks.decoder(networks.warp(feature[rows_i], x_s[rows_i], x_d[rows_i]))
                scaled = out.float().permute(0, 2, 3, 1).clamp(0, 1) * 255
                singles.append(scaled.to(torch.uint8))
        return torch.cat(singles)

    ditto_fp16, fp32 = one_by_one(True), one_by_one(False)
    return {
        "rows": rows,
        "batched_vs_ditto_fp16_one_by_one": _image_diff(batched, ditto_fp16),
        "batched_vs_fp32": _image_diff(batched, fp32),
        "ditto_fp16_one_by_one_vs_fp32": _image_diff(ditto_fp16, fp32),
    }


def _profile(engine: Any, portrait: Any, device: str) -> dict[str, Any]:
    """GPU time of each batched stage by batch size (synchronised wall time, 10 runs)."""
    import torch

    from benchmarks.gpu.cuda_timing import mean_seconds

    sampler, renderer = engine.sampler, engine.renderer
    out: dict[str, Any] = {"warp_decode_ms_per_frame": {}, "lmdm_ms_per_window": {}}
    for rows in renderer.buckets:
        feature = portrait.feature.expand(rows, -1, -1, -1, -1).contiguous()
        x_s = portrait.motion.x_s.expand(rows, -1, -1).contiguous()
        x_d = x_s + 0.01

        def frames(f: Any = feature, s: Any = x_s, d: Any = x_d) -> Any:
            return renderer.render(f, s, d)

        out["warp_decode_ms_per_frame"][str(rows)] = 1000 * mean_seconds(frames) / rows
    for rows in sampler.buckets:
        kp = torch.zeros(rows, sampler.motion_dim, device=device)
        aud = torch.randn(rows, sampler.frames, AUDIO_WIDTH, device=device)
        noise = torch.randn(rows, sampler.frames, sampler.motion_dim, device=device)

        def windows(k: Any = kp, a: Any = aud, n: Any = noise) -> Any:
            return sampler.sample(k, a, n)

        out["lmdm_ms_per_window"][str(rows)] = 1000 * mean_seconds(windows, runs=3) / rows
    return out


def _capture_numerics(original_grid: Callable[..., Any], device: str) -> dict[str, Any]:
    import torch

    from avatar_runtime.engines.ditto_batched import capture

    ref = torch.randn(2, 21, 3, device=device)
    ours = capture.coordinate_grid((16, 64, 64), ref)
    theirs = original_grid((16, 64, 64), ref)
    return {"coordinate_grid_equal": bool(torch.equal(ours, theirs))}


def _ratios(record: dict[str, Any], key: str, base: float) -> dict[str, float]:
    runs = record.get(key, {})
    return {n: run["frames_per_second"] / base for n, run in runs.items()}


def latency(runs: dict[str, Any]) -> dict[str, float]:
    """Each job count's slowest job against the job alone."""
    if "1" not in runs:
        return {}
    solo = runs["1"]["job_seconds"][0]
    return {n: max(run["job_seconds"]) / solo for n, run in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ditto-code", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--jobs", default="1,2,3,4,8")
    parser.add_argument("--buckets", default="1,2,4,8")
    parser.add_argument("--parts", default="adapter,workers,eager,compiled")
    parser.add_argument("--smoke", action="store_true", help="short clips, few jobs: a dry run")
    parser.add_argument("--lmdm-half", action="store_true", help="LMDM's denoiser in fp16")
    parser.add_argument(
        "--lmdm-both", action="store_true", help="also the compiled frames with LMDM in fp16"
    )
    args = parser.parse_args()
    import torch

    from avatar_runtime.engines.ditto_batched import engine as engine_
    from avatar_runtime.engines.ditto_batched import keypoints, networks
    from avatar_runtime.engines.ditto_batched.diffusion import FoldedSampler

    device = "cuda"
    seconds = 3.0 if args.smoke else args.seconds
    job_counts = [int(n) for n in args.jobs.split(",")]
    buckets = tuple(int(b) for b in args.buckets.split(","))
    parts = set(args.parts.split(","))
    frames_per_job = round(seconds * FPS)
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "seconds_per_job": seconds,
        "frames_per_job": frames_per_job,
        "fps": FPS,
        "job_counts": job_counts,
        "buckets": list(buckets),
        "smoke": args.smoke,
        "lmdm_half": args.lmdm_half,
    }

    def save() -> None:
        public = json.loads(json.dumps(record, default=lambda o: None))
        args.out.write_text(json.dumps(public, indent=2))

    began = time.perf_counter()
    ditto_volume.build(args.model_dir, args.ditto_code, device=device)
    record["volume_build_seconds"] = time.perf_counter() - began
    portrait_image = load_portrait()
    speech = _speech(seconds)

    began = time.perf_counter()
    first = DittoRenderer(args.model_dir, scratch=args.model_dir / "avatars", online=True)
    record["adapter_load_seconds"] = time.perf_counter() - began
    avatar = first.prepare(portrait_image, size=512)
    drain(first.frames(avatar, _speech(2.0, seed=1), fps=FPS))  # warm-up
    if "adapter" in parts:
        record["one_worker"] = _workers([first], [avatar], speech)
        record["one_worker_runs"] = {"1": record["one_worker"]}
        save()
    renderers, avatars = [first], [avatar]
    if "workers" in parts:
        record["independent_workers"] = {}
        for count in (2, 3):
            while len(renderers) < count:
                extra = DittoRenderer(
                    args.model_dir, scratch=args.model_dir / "avatars", online=True
                )
                avatars.append(extra.prepare(portrait_image, size=512))
                drain(extra.frames(avatars[-1], _speech(2.0, seed=1), fps=FPS))
                renderers.append(extra)
            record["independent_workers"][str(count)] = _workers(renderers, avatars, speech)
            save()
    info = first._sdk.source_info
    feature_np, x_s_info = info["f_s_lst"][0], info["x_s_info_lst"][0]
    del renderers, avatars, first, avatar, info  # the engine's memory is measured alone
    torch.cuda.empty_cache()

    util = __import__("importlib").import_module("core.models.modules.util")
    original_grid = util.make_coordinate_grid
    began = time.perf_counter()
    nets = networks.load(args.model_dir, device=device)
    record["engine_networks_load_seconds"] = time.perf_counter() - began
    record["capture_numerics"] = _capture_numerics(original_grid, device)
    portrait = engine_.Portrait(
        feature=torch.as_tensor(np.asarray(feature_np), device=device).float(),
        motion=keypoints.PortraitMotion.of(x_s_info, device=device),
    )
    conds = _conds(max(job_counts), frames_per_job, device)

    for label, compiled in (("eager", False), ("compiled", True)):
        if label not in parts:
            continue
        settings = engine_.EngineSettings(
            buckets=buckets, compiled=compiled, graphed=compiled, lmdm_half=args.lmdm_half
        )
        began = time.perf_counter()
        engine = engine_.BatchedDittoEngine(nets, settings)
        torch.cuda.synchronize()
        record[f"{label}_prepare_seconds"] = time.perf_counter() - began
        record[f"{label}_prepare_seconds_by_bucket"] = engine.renderer.prepare_seconds
        variants = [(label, engine.sampler)]
        if args.lmdm_both and not args.lmdm_half:
            # the same compiled frames, LMDM's denoiser in fp16: a second sampler, swapped in
            half = FoldedSampler(nets.lmdm, buckets=buckets, graphed=compiled, half=True)
            variants.append((f"{label}_lmdm_fp16", half))
        for name, sampler in variants:
            engine.sampler = sampler
            _measure(engine, name, record, portrait, conds, job_counts, device, save)
        engine.close()
        save()

    base = record.get("one_worker", {}).get("frames_per_second")
    if base:
        record["throughput_ratio_vs_one_worker"] = {
            "independent_workers": _ratios(record, "independent_workers", base),
            "batched_eager": _ratios(record, "batched_eager", base),
            "batched_compiled": _ratios(record, "batched_compiled", base),
            "batched_compiled_lmdm_fp16": _ratios(record, "batched_compiled_lmdm_fp16", base),
        }
    record["max_latency_ratio_vs_solo"] = {
        label: latency(record.get(f"batched_{label}", {}))
        for label in ("eager", "compiled", "compiled_lmdm_fp16")
    }
    record["peak_gpu_memory_bytes"] = {
        label: {n: run["peak_gpu_memory_bytes"] for n, run in record.get(key, {}).items()}
        for label, key in (
            ("one_worker", "one_worker_runs"),
            ("independent_workers", "independent_workers"),
            ("batched_eager", "batched_eager"),
            ("batched_compiled", "batched_compiled"),
            ("batched_compiled_lmdm_fp16", "batched_compiled_lmdm_fp16"),
        )
    }
    save()
    print(json.dumps({k: v for k, v in record.items() if "ratio" in k or k == "device"}, indent=2))


def _measure(
    engine: Any,
    label: str,
    record: dict[str, Any],
    portrait: Any,
    conds: list[Any],
    job_counts: list[int],
    device: str,
    save: Callable[[], None],
) -> None:
    """Every job count through ``engine``, then its numerics and a profile, as ``label``."""
    _engine_run(engine, portrait, conds[:1])  # warm-up (eager: kernels, allocator)
    runs: dict[str, Any] = {}
    kept_alone: list[Any] = []
    for count in job_counts:
        for counts in engine.batches.values():
            counts.clear()
        run = _engine_run(engine, portrait, conds[:count], keep=0)
        kept = run.pop("_kept")
        if count == 1:
            kept_alone = kept
        elif count == max(job_counts):
            run["job0_frames_vs_alone"] = _frames_diff(kept_alone, kept)
        run["motion_batch_sizes"] = histogram(engine.batches["motion"])
        run["frame_batch_sizes"] = histogram(engine.batches["frames"])
        runs[str(count)] = run
        record[f"batched_{label}"] = runs
        save()
    nets = engine.networks
    record[f"{label}_lmdm_numerics"] = _lmdm_numerics(nets, engine.sampler, device)
    record[f"{label}_frame_numerics"] = _frame_numerics(nets, engine.renderer, portrait, device)
    record[f"{label}_profile"] = _profile(engine, portrait, device)
    save()


def histogram(sizes: collections.Counter[int]) -> dict[str, int]:
    return {str(size): count for size, count in sorted(sizes.items())}


if __name__ == "__main__":
    main()
