"""Ditto through the runtime's own adapter (``DittoRenderer``) on the GPU, random weights.

Ditto's code is fetched from its public repository into a git-ignored folder
(``--ditto-code``, never committed) and a model volume is written around it
with random weights (``benchmarks/gpu/ditto_volume.py``), then the adapter
loads it as a pod loads a real volume: Ditto's own ``StreamSDK``, config
pickle and checkpoint loaders, its threads for motion diffusion, stitching,
warping, decoding and put-back, on CUDA.

Measured, through the adapter: load; a portrait's registration and its cached
reuse; offline mode (time to first frame, realtime factor); online mode fed
speech in chunks at XTTS's measured pace (time to first frame); 2 and 3 slots
rendering at once, each with its own SDK (aggregate realtime factor); GPU
memory (each SDK's footprint, peak).

    python -m benchmarks.gpu.ditto_adapter --ditto-code .fetched/ditto --model-dir /tmp/m \
        --out report.json
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from avatar_runtime.engines.base import Frame, Speech, frame_count
from avatar_runtime.engines.ditto_renderer import DittoRenderer
from avatar_runtime.gpu import FootprintMeter
from benchmarks.gpu import ditto_volume

FPS = 25
RATE = 22_050
PORTRAIT = Path(__file__).parents[2] / "runtime/avatar_runtime/assets/warmup-portrait.jpg"
XTTS_PACE = 0.33  # seconds of GPU per second of speech, XTTS-v2 on an H100 (gpu-xtts.json)


def syllable_noise(seconds: float, seed: int = 0, *, rate: int = RATE) -> Speech:
    """Noise shaped like syllables (4 Hz envelope): Ditto only hears its HuBERT features."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return Speech((0.2 * envelope * rng.standard_normal(len(t))).astype(np.float32), rate)


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


def load_portrait() -> Frame:
    return np.asarray(Image.open(PORTRAIT).convert("RGB"), dtype=np.uint8)


def drain(frames: Iterator[Frame], began: float | None = None) -> dict[str, Any]:
    """Take every frame; times from ``began`` (default: now), first frame and whole."""
    began = time.perf_counter() if began is None else began
    first = None
    count = 0
    shape: tuple[int, ...] = ()
    means = []
    for frame in frames:
        if first is None:
            first = time.perf_counter() - began
        count += 1
        if count % 25 == 1:
            means.append(float(frame.mean()))
        shape = frame.shape
    return {
        "first_frame_seconds": first,
        "wall_seconds": time.perf_counter() - began,
        "frames": count,
        "frame_shape": list(shape),
        "frame_means_every_second": [round(m, 2) for m in means],
    }


def _chunks(speech: Speech, chunk_seconds: float, pace: float) -> Iterator[np.ndarray]:
    """Speech as a TTS streams it: a chunk at a time, each after ``pace`` x its length."""
    step = int(chunk_seconds * speech.sample_rate)
    for start in range(0, len(speech.samples), step):
        piece = speech.samples[start : start + step]
        time.sleep(pace * len(piece) / speech.sample_rate)
        yield piece


def _offline(renderer: DittoRenderer, portrait: Frame, speech: Speech) -> dict[str, Any]:
    avatar = renderer.prepare(portrait, size=512)
    result = drain(renderer.frames(avatar, speech, fps=FPS))
    result["expected_frames"] = frame_count(speech.duration, FPS)
    result["realtime_factor"] = result["wall_seconds"] / speech.duration
    return result


def _slots(renderers: list[DittoRenderer], portrait: Frame, speech: Speech) -> dict[str, Any]:
    results: list[dict[str, Any]] = [{} for _ in renderers]

    def run(index: int) -> None:
        results[index] = _offline(renderers[index], portrait, speech)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(renderers))]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {
        "slots": len(renderers),
        "wall_seconds": wall,
        "video_seconds": speech.duration * len(renderers),
        "realtime_factor": wall / (speech.duration * len(renderers)),
        "per_slot_wall_seconds": [r["wall_seconds"] for r in results],
        "all_frames_made": all(r["frames"] == r["expected_frames"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ditto-code", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    import torch

    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "speech_seconds": args.seconds,
        "fps": FPS,
    }

    def save() -> None:
        args.out.write_text(json.dumps(record, indent=2))

    began = time.perf_counter()
    ditto_volume.build(args.model_dir, args.ditto_code, device=args.device)
    record["volume_build_seconds"] = time.perf_counter() - began

    meter = FootprintMeter()
    began = time.perf_counter()
    renderer = DittoRenderer(args.model_dir, scratch=args.model_dir / "avatars")
    _sync()
    record["load_seconds"] = time.perf_counter() - began
    footprint = meter.read()
    record["footprint_after_load"] = {
        "torch_bytes": footprint.torch_bytes,
        "nvml_bytes": footprint.nvml_bytes,
    }
    save()

    portrait = load_portrait()
    began = time.perf_counter()
    renderer.prepare(portrait, size=512)
    record["register_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    renderer.prepare(portrait, size=512)
    record["register_cached_seconds"] = time.perf_counter() - began
    record["registrations_run"] = renderer.registrations

    speech = syllable_noise(args.seconds)
    _offline(renderer, portrait, syllable_noise(2.0, seed=1))  # warm-up: CUDA kernels, autotuning
    torch.cuda.reset_peak_memory_stats()
    record["offline"] = _offline(renderer, portrait, speech)
    record["offline"]["peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated()
    save()

    online = DittoRenderer(args.model_dir, scratch=args.model_dir / "avatars", online=True)
    avatar = online.prepare(portrait, size=512)
    for label, pace in (("all_at_once", 0.0), ("at_xtts_pace", XTTS_PACE)):
        stream = online.stream(
            avatar, _chunks(speech, 1.0, pace), sample_rate=speech.sample_rate, fps=FPS
        )
        result = drain(stream)
        result["expected_frames"] = frame_count(speech.duration, FPS)
        result["realtime_factor"] = result["wall_seconds"] / speech.duration
        result["tts_pace"] = pace
        record[f"online_{label}"] = result
        save()
    del online

    renderers = [renderer]
    for slots in (2, 3):
        while len(renderers) < slots:
            renderers.append(DittoRenderer(args.model_dir, scratch=args.model_dir / "avatars"))
        torch.cuda.reset_peak_memory_stats()
        result = _slots(renderers, portrait, speech)
        result["peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated()
        record[f"slots_{slots}"] = result
        save()
    record["peak_gpu_memory_bytes_3_slots"] = torch.cuda.max_memory_allocated()
    save()
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
