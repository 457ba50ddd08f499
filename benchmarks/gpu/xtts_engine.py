"""XTTS-v2's GPU cost through the runtime's own engine (``XttsTTS``), random weights.

No XTTS-v2 weights can be downloaded here, so a model volume is written with
the published architecture at full size and random weights
(``tests/runtime/engines/xtts_volume.py``), then loaded by the engine exactly as a pod
loads a real volume. Random weights never emit the stop token: every chunk runs
to the model's 605-token cap (about 28 s of audio), which makes each chunk the
longest a real one can be.

Measured: load time; a clone (conditioning latents) and a cached reuse; one
job's realtime factor and its first chunk's latency; 4 jobs through the shared
engine from 4 threads, taking turns (batches of 1) and batched as the engine
does; XTTS's GPT generating 1 to 8 jobs as one batch directly; peak GPU
memory (torch allocator and NVML).

    python -m benchmarks.gpu.xtts_engine --work /tmp/xtts --out result.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import torch

from avatar_runtime.engines.base import VoiceSample
from avatar_runtime.engines.xtts_batching import Batcher
from avatar_runtime.engines.xtts_tts import XttsTTS
from avatar_runtime.gpu import FootprintMeter
from avatar_runtime.gpu import memory as gpu_memory
from benchmarks.gpu.cuda_timing import timed
from tests.runtime.engines import xtts_volume

TEXT = (
    "Welcome to the quarterly update. Revenue grew in every region, and the new product line"
    " shipped on time. Thank you all for the hard work that made this possible."
)


def _voice(seed: int) -> VoiceSample:
    rng = np.random.default_rng(seed)
    samples = (0.1 * rng.standard_normal(22_050 * 8)).astype(np.float32)
    return VoiceSample(samples, 22_050, f"bench-{seed}")


def _nvml_used() -> int | None:
    gpus = gpu_memory()
    return gpus[0].used_bytes if gpus else None


def _batched(engine: XttsTTS, batch: int) -> tuple[float, float]:
    """``batch`` jobs (own voices, same text length) as one GPT generation, then decoding."""
    model = engine._model
    voices = [engine._cloned(_voice(100 + i)) for i in range(batch)]
    latents = torch.cat([v[0] for v in voices]).to(engine.device)
    tokens = torch.IntTensor(model.tokenizer.encode(TEXT.lower(), lang="en")).unsqueeze(0)
    tokens = tokens.to(engine.device).repeat(batch, 1)

    def run() -> float:
        with torch.inference_mode():
            codes = model.gpt.generate(
                cond_latents=latents, text_inputs=tokens, do_sample=True, top_p=0.85, top_k=50,
                temperature=0.75, num_return_sequences=1, repetition_penalty=10.0,
            )  # fmt: skip
            seconds = 0.0
            for i in range(batch):
                lengths = torch.tensor([codes.shape[-1] * model.gpt.code_stride_len])
                latent = model.gpt(
                    tokens[i : i + 1], torch.tensor([tokens.shape[-1]], device=engine.device),
                    codes[i : i + 1], lengths.to(engine.device), cond_latents=latents[i : i + 1],
                    return_attentions=False, return_latent=True,
                )  # fmt: skip
                wav = model.hifigan_decoder(latent, g=voices[i][1])
                seconds += wav.shape[-1] / engine.sample_rate
        return seconds

    audio, wall = timed(run)
    return wall, audio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--tokens", type=int, default=None, help="cap per chunk (a smoke run)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    began = time.perf_counter()
    root = xtts_volume.build(args.work, size=args.size)
    build_seconds = time.perf_counter() - began
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    meter = FootprintMeter()  # what the runtime's registry measures for every engine it loads
    engine, load_seconds = timed(lambda: XttsTTS(root, max_audio_tokens=args.tokens))
    footprint = meter.read()
    nvml_loaded = _nvml_used()
    engine.synthesize("Warm up.", language="en")

    _, clone_seconds = timed(lambda: engine._cloned(_voice(1)))
    _, cached_seconds = timed(lambda: engine._cloned(_voice(1)))

    speech, one_wall = timed(lambda: engine.synthesize(TEXT, language="en", voice=_voice(1)))
    chunks = engine.stream(TEXT + " " + TEXT, language="en", voice=_voice(1))
    with contextlib.closing(chunks):  # type: ignore[type-var]  # a generator, typed Iterator
        first, first_wall = timed(lambda: next(chunks))

    def through_engine(max_batch: int) -> tuple[float, float, list[int]]:
        """``args.jobs`` jobs from as many threads, as slots send them."""
        engine.batcher = Batcher(engine._model, max_batch=max_batch, window=0.01, lock=engine._lock)
        results: list[float] = []

        def job(seed: int) -> None:
            results.append(engine.synthesize(TEXT, language="en", voice=_voice(seed)).duration)

        def threads() -> None:
            workers = [threading.Thread(target=job, args=(10 + i,)) for i in range(args.jobs)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()

        _, wall = timed(threads)
        return wall, sum(results), engine.batcher.batches

    serial_wall, serial_audio, _ = through_engine(1)
    engine_wall, engine_audio, engine_batches = through_engine(args.jobs)
    batched = {b: _batched(engine, b) for b in (1, 2, 4, 8)}

    report = {
        "what": "XTTS-v2 through the runtime's XttsTTS engine, full-size architecture, random"
        " weights, fp32; every chunk runs to the 605-token cap (random weights never stop)",
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "size": args.size,
        "torch": torch.__version__,
        "volume_build_seconds": round(build_seconds, 1),
        "load_seconds": round(load_seconds, 2),
        "footprint_torch_bytes": footprint.torch_bytes,
        "footprint_nvml_bytes": footprint.nvml_bytes,
        "nvml_used_after_load_bytes": nvml_loaded,
        "clone_voice_seconds": round(clone_seconds, 3),
        "cached_voice_seconds": round(cached_seconds, 5),
        "one_job": {
            "audio_seconds": round(speech.duration, 2),
            "wall_seconds": round(one_wall, 2),
            "realtime_factor": round(one_wall / speech.duration, 3),
            "first_chunk_seconds": round(first_wall, 2),
            "first_chunk_audio_seconds": round(len(first) / engine.sample_rate, 2),
        },
        "serialised": {
            "jobs": args.jobs,
            "wall_seconds": round(serial_wall, 2),
            "audio_seconds": round(serial_audio, 2),
            "realtime_factor": round(serial_wall / serial_audio, 3),
        },
        "engine_batching": {
            "jobs": args.jobs,
            "batches": engine_batches,
            "wall_seconds": round(engine_wall, 2),
            "audio_seconds": round(engine_audio, 2),
            "realtime_factor": round(engine_wall / engine_audio, 3),
        },
        "batched": {
            str(b): {
                "wall_seconds": round(wall, 2),
                "audio_seconds": round(audio, 2),
                "realtime_factor": round(wall / audio, 3),
            }
            for b, (wall, audio) in batched.items()
        },
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "nvml_used_peak_bytes": _nvml_used(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
