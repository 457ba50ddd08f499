"""Where the batched Ditto renderer's GPU memory goes, phase by phase, on the GPU.

The whole pod's NVML peak is the number the issue's memory target reads, and the
torch allocator's own peak leaves out what CUDA graphs keep: a graph's private
pool holds every block its capture used, freed or not. So this loads the
batched renderer (``engines/ditto_batched/renderer.load``) as a pod does and
reads, after each phase of the load (Ditto's networks, the FFT mask's spectrum,
LMDM's graphs, warp + decode compiled and graphed), NVML's used memory, the
allocator's reserved and allocated bytes, and the allocator's segments grouped
by pool (the default pool against the graphs' pool); then renders one job and
``--jobs`` jobs at once with NVML sampled every 20 ms, for the peak and the
frames per second that the configuration buys. One configuration per process
(graph pools are only freed with their graphs), so compare configurations by
running it once each, with the same ``--model-dir``:

    python -m benchmarks.gpu.ditto_memory --ditto-code .fetched/ditto --model-dir /tmp/m \
        --out memory.json [--buckets 1,2,4,8] [--spectral-mask] [--lmdm-half]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.gpu import ditto_volume
from benchmarks.gpu.ditto_adapter import load_portrait
from benchmarks.gpu.ditto_pod import FPS, _drain, _jobs, _speech, _versions


def _nvml_used() -> int | None:
    from avatar_runtime import gpu

    gpus = gpu.memory()
    return gpus[0].used_bytes if gpus else None


@contextmanager
def _nvml_peak(every: float = 0.02) -> Iterator[dict[str, int | None]]:
    """``{"peak": bytes}``: NVML's used memory, its highest sample while the block ran."""
    seen: dict[str, int | None] = {"peak": _nvml_used()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            used = _nvml_used()
            if used is not None:
                seen["peak"] = max(seen["peak"] or 0, used)
            stop.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def pools() -> dict[str, dict[str, int]]:
    """The allocator's segments by pool: reserved (segment sizes) and allocated bytes.
    ``default`` is the ordinary pool; any other is a CUDA graph pool."""
    import torch

    out: dict[str, dict[str, int]] = {}
    for segment in torch.cuda.memory._snapshot()["segments"]:
        pool = tuple(segment.get("segment_pool_id", (0, 0)))
        name = "default" if pool == (0, 0) else f"graph pool {pool[0]}.{pool[1]}"
        entry = out.setdefault(name, {"reserved": 0, "allocated": 0, "segments": 0})
        entry["reserved"] += int(segment["total_size"])
        entry["allocated"] += int(segment["allocated_size"])
        entry["segments"] += 1
    return out


def reading(label: str, began: float) -> dict[str, Any]:
    import torch

    torch.cuda.synchronize()
    return {
        "phase": label,
        "seconds": time.perf_counter() - began,
        "nvml_used_bytes": _nvml_used(),
        "reserved_bytes": int(torch.cuda.memory_reserved()),
        "allocated_bytes": int(torch.cuda.memory_allocated()),
        "pools": pools(),
    }


def _after(owner: Any, name: str, label: str, phases: list[dict[str, Any]], began: float) -> None:
    """Wrap ``owner.name`` (a function or class) so a reading follows each call."""
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        phases.append(reading(label, began))
        return result

    setattr(owner, name, wrapped)


def module_peaks(model_dir: Path, batch: int, spectral_mask: bool) -> list[dict[str, Any]]:
    """Warp + decode eager at ``batch`` (fp16 autocast, as the engine runs it): for each of
    the warp's, its dense-motion network's and the decoder's modules two levels down, the
    allocator's peak above what was allocated when the module began, and what it left
    allocated. The modules whose intermediates make a graph's pool large."""
    import torch

    from avatar_runtime.engines.ditto_batched import networks, spectral

    nets = networks.load(model_dir, device="cuda")
    if spectral_mask:
        spectral.swap_mask(nets.warp.dense_motion_network)
    out: list[dict[str, Any]] = []
    stack: list[list[int]] = []  # per open module: [allocated at entry, peak so far]

    def fold() -> None:
        """The peak since the last reset into every open module's, then a fresh interval."""
        torch.cuda.synchronize()
        peak = int(torch.cuda.max_memory_allocated())
        for entry in stack:
            entry[1] = max(entry[1], peak)
        torch.cuda.reset_peak_memory_stats()

    def before(_module: Any, _args: Any) -> None:
        fold()
        allocated = int(torch.cuda.memory_allocated())
        stack.append([allocated, allocated])

    def after(name: str) -> Any:
        def hook(_module: Any, _args: Any, _result: Any) -> None:
            fold()
            start, peak = stack.pop()
            out.append({
                "module": name,
                "peak_above_entry_bytes": peak - start,
                "left_bytes": int(torch.cuda.memory_allocated()) - start,
            })  # fmt: skip

        return hook

    roots = {"warp": nets.warp, "decoder": nets.decoder}
    for root_name, root in roots.items():
        for name, module in root.named_modules():
            if name.count(".") > 1:
                continue
            label = f"{root_name}.{name}" if name else root_name
            module.register_forward_pre_hook(before)
            module.register_forward_hook(after(label))
    feature = torch.randn(batch, 32, 16, 64, 64, device="cuda")
    kp_s = torch.randn(batch, 21, 3, device="cuda") * 0.1
    kp_d = torch.randn(batch, 21, 3, device="cuda") * 0.1
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        for _ in range(2):  # the second pass's figures: the first one's include cuDNN's setup
            out.clear()
            nets.decoder(nets.warp(feature, kp_s, kp_d))
    return out


def main() -> None:
    from avatar_runtime.engines.ditto_batched.engine import EngineSettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ditto-code", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--buckets", default="1,2,4,8")
    parser.add_argument("--spectral-mask", action="store_true")
    parser.add_argument("--lmdm-half", action="store_true")
    parser.add_argument("--eager", action="store_true", help="not compiled nor graphed")
    parser.add_argument("--decoder-rows", type=int, default=EngineSettings.decoder_rows)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--module-peaks", type=int, metavar="BATCH", help="only the per-module peaks, eager"
    )
    args = parser.parse_args()
    import torch

    from avatar_runtime.engines.ditto_batched import diffusion, frames, networks, spectral
    from avatar_runtime.engines.ditto_batched import renderer as batched

    buckets = tuple(int(b) for b in args.buckets.split(","))
    compiled = not args.eager
    settings = EngineSettings(
        buckets=buckets,
        compiled=compiled,
        graphed=compiled,
        spectral_mask=args.spectral_mask,
        lmdm_half=args.lmdm_half,
        decoder_rows=args.decoder_rows,
    )
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "software": _versions(),
        "engine_options": {
            "buckets": list(buckets),
            "compiled": compiled,
            "spectral_mask": args.spectral_mask,
            "lmdm_half": args.lmdm_half,
            "decoder_rows": args.decoder_rows,
        },
    }

    def save() -> None:
        args.out.write_text(json.dumps(record, indent=2))

    if not (args.model_dir / "ditto").exists():
        ditto_volume.build(args.model_dir, args.ditto_code, device="cuda")
    if args.module_peaks:
        record["module_peaks"] = module_peaks(args.model_dir, args.module_peaks, args.spectral_mask)
        save()
        for row in record["module_peaks"]:
            print(f"{row['module']:50s} {row['peak_above_entry_bytes'] / 1e9:7.3f} GB peak"
                  f" {row['left_bytes'] / 1e9:7.3f} GB left")  # fmt: skip
        return
    torch.zeros(1, device="cuda")
    began = time.perf_counter()
    phases: list[dict[str, Any]] = [reading("CUDA context", began)]
    record["phases"] = phases
    _after(networks, "load", "Ditto's networks", phases, began)
    _after(spectral, "swap_mask", "the mask's spectrum", phases, began)
    _after(diffusion, "FoldedSampler", "LMDM's sampler (graphed per bucket)", phases, began)
    _after(frames, "FrameRenderer", "warp + decode (compiled, graphed per bucket)", phases, began)
    renderer = batched.load(args.model_dir, device="cuda", settings=settings)
    phases.append(reading("loaded (the engine's empty_cache)", began))
    save()

    avatar = renderer.prepare(load_portrait(), size=512)
    _drain(renderer.frames(avatar, _speech(1.0, seed=9), fps=FPS), time.perf_counter())
    phases.append(reading("portrait registered, one warm-up job", began))
    runs: dict[str, Any] = {}
    for count in sorted({1, args.jobs}):
        speeches = [_speech(args.seconds, seed=i) for i in range(count)]
        with _nvml_peak() as nvml:
            run = _jobs([renderer] * count, [avatar] * count, speeches, "cuda", keep=False)
        run.pop("_kept")
        run["peak_nvml_bytes"] = nvml["peak"]
        run["reserved_after_bytes"] = int(torch.cuda.memory_reserved())
        runs[str(count)] = run
        record["runs"] = runs
        save()
    phases.append(reading("after the runs", began))
    renderer.engine.close()
    save()
    keys = ("phase", "nvml_used_bytes", "reserved_bytes", "allocated_bytes")
    print(json.dumps([{k: p[k] for k in keys} for p in phases], indent=1))
    print(json.dumps({n: {k: r[k] for k in ("frames_per_second", "peak_nvml_bytes")}
                      for n, r in runs.items()}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
