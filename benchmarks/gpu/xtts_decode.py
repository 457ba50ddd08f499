"""XTTS-v2's decode on the GPU: transformers' ``generate`` against the static, graphed decoder.

A full-size XTTS-v2 volume with random weights (``tests/runtime/engines/xtts_volume.py``),
loaded by the runtime's ``XttsTTS`` as a pod loads it. Measured, in one process:

- a decode step per batch size, the static decoder eager and as a CUDA graph;
- the same greedy chunks through coqui-tts's own path (transformers' ``generate``),
  the static decoder eager and graphed: how many leading tokens agree, and the
  first step's largest logit difference (fp32 on both sides);
- a chunk of ``--tokens`` audio tokens through ``generate`` at batch 1, as coqui-tts runs it;
- vocoding one finished chunk: coqui-tts's latents pass (which the engine skips: the
  decoder keeps the same latents) against HiFi-GAN, and how far the two latents differ;
- one job of two chunks through the engine (chunks spoken ahead and one at a time),
  and ``--jobs`` jobs at once from as many threads: wall time against audio time.

    python -m benchmarks.gpu.xtts_decode --work /tmp/xtts --out result.json --tokens 94
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avatar_runtime.engines import xtts_batching
from avatar_runtime.engines.xtts_decode import Sampling, StaticDecoder
from avatar_runtime.engines.xtts_tts import XttsTTS
from benchmarks.gpu.cuda_timing import mean_seconds, timed
from tests.runtime.engines import xtts_volume

# Two sentences: two chunks, as in the whole-pod benchmark.
TEXT = (
    "Welcome to the quarterly update, where we look back at a year of hard work in every"
    " region and every team, and at the product line that shipped on time, again. Thank you"
    " all for the work that made this possible, and for the patience it took to see it through"
    " to the end, when the plans changed twice and the deadlines did not."
)
GREEDY = ["hello there, and welcome.", "a longer sentence, so that the prefixes differ.", "ok."]


def _greedy(
    decoder: StaticDecoder, model: Any, requests: list[Any], tokens: int
) -> list[list[int]]:
    codes = [
        [decoder.prefill(row, xtts_batching.prefix(model, r))] for row, r in enumerate(requests)
    ]
    while len(codes[0]) < tokens:
        for row, token in enumerate(decoder.step(len(requests))):
            codes[row].append(token)
    return codes


def _agree(a: list[int], b: list[int]) -> int:
    differ = (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    return next(differ, min(len(a), len(b)))


def _vocoder(
    decoder: StaticDecoder, model: Any, request: Any, codes: list[int]
) -> dict[str, float]:
    """A finished chunk's vocoding: coqui-tts's latents pass (which the engine no longer
    runs: the decoder kept the same latents as it spoke) against HiFi-GAN over them."""
    kept = decoder.latents(1, len(codes))

    def latents_pass() -> Any:
        return xtts_batching.latents_pass(model, request, codes)[0]

    speaker = request.speaker.to(decoder.device)

    def hifigan() -> Any:
        return model.hifigan_decoder(kept[None], g=speaker)

    return {
        "tokens": len(codes),
        "latents_pass_ms": round(1000 * mean_seconds(latents_pass, 5), 2),
        "hifigan_ms": round(1000 * mean_seconds(hifigan, 5), 2),
        "kept_vs_pass_max_abs": float((kept - latents_pass()).abs().max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=94)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--size", choices=["tiny", "full"], default="full", help="tiny: on a CPU")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    root = xtts_volume.build(args.work, size=args.size)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    engine = XttsTTS(root, max_audio_tokens=args.tokens, max_batch=args.jobs)
    load = time.perf_counter() - began
    model = engine._model
    latent, speaker = engine._conditioning(None)
    greedy = Sampling(do_sample=False)

    def build(**kwargs: bool) -> tuple[StaticDecoder, float]:
        rows = max(args.jobs, len(GREEDY))
        return timed(
            lambda: StaticDecoder(
                model.gpt, rows=rows, sampling=greedy, max_new_tokens=args.tokens, **kwargs
            )
        )

    eager, _ = build(graphs=False)
    graphed, capture = build()
    compiled, compile_seconds = build(compiled=True)

    # Steps per batch size.
    request = xtts_batching.Request(model.tokenizer.encode(GREEDY[1], lang="en"), latent, speaker)
    steps: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for decoder in (eager, graphed, compiled):
            for row in range(args.jobs):
                decoder.prefill(row, xtts_batching.prefix(model, request))
        for bucket in graphed.buckets:
            steps[str(bucket)] = {
                "eager_ms": round(1000 * mean_seconds(partial(eager.step, bucket), 20), 3),
                "graphed_ms": round(1000 * mean_seconds(partial(graphed.step, bucket), 50), 3),
                "compiled_ms": round(1000 * mean_seconds(partial(compiled.step, bucket), 50), 3),
            }

    # The same greedy chunks three ways.
    requests = [
        xtts_batching.Request(model.tokenizer.encode(t, lang="en"), latent, speaker) for t in GREEDY
    ]
    with torch.inference_mode():
        reference = [
            model.gpt.generate(
                latent.to(engine.device),
                torch.tensor([r.tokens], device=engine.device),
                do_sample=False,
                repetition_penalty=10.0,
                num_beams=1,
            )[0].tolist()
            for r in requests
        ]
        static_eager = _greedy(eager, model, requests, args.tokens)
        static_graphed = _greedy(graphed, model, requests, args.tokens)
        vocoder = _vocoder(graphed, model, requests[1], static_graphed[1])
        static_compiled = _greedy(compiled, model, requests, args.tokens)
    agreement = {
        "tokens_per_chunk": args.tokens,
        "eager_vs_generate": [_agree(a, b) for a, b in zip(static_eager, reference, strict=True)],
        "graphed_vs_eager": [
            _agree(a, b) for a, b in zip(static_graphed, static_eager, strict=True)
        ],
        "compiled_vs_eager": [
            _agree(a, b) for a, b in zip(static_compiled, static_eager, strict=True)
        ],
    }

    # coqui-tts's own path for one chunk, sampled, as Xtts.inference runs it.
    first = model.tokenizer.encode(TEXT.split(". ")[0].lower(), lang="en")
    tokens = torch.tensor([first], device=engine.device)
    with torch.inference_mode():
        generate = {
            "seconds": round(
                mean_seconds(
                    lambda: model.gpt.generate(
                        latent.to(engine.device),
                        tokens,
                        do_sample=True,
                        top_p=0.85,
                        top_k=50,
                        temperature=0.75,
                        repetition_penalty=10.0,
                        num_beams=1,
                    ),
                    3,
                ),
                3,
            ),
        }

    def one_job(ahead: int) -> dict[str, float]:
        engine._chunks_ahead = ahead
        speech, wall = timed(lambda: engine.synthesize(TEXT, language="en"))
        return {"audio_seconds": round(speech.duration, 2), "wall_seconds": round(wall, 3),
                "realtime_factor": round(wall / speech.duration, 3)}  # fmt: skip

    engine.synthesize("Warm up.", language="en")
    solo = {"ahead_1": one_job(1), "ahead_0": one_job(0)}
    engine._chunks_ahead = 1
    results: list[float] = []

    def job() -> None:
        results.append(engine.synthesize(TEXT, language="en").duration)

    def together() -> None:
        workers = [threading.Thread(target=job) for _ in range(args.jobs)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    _, wall = timed(together)
    report = {
        "what": "XTTS-v2's GPT decode: transformers' generate (coqui-tts) against the runtime's"
        " static KV cache decoder, eager and CUDA-graphed; full-size architecture, random"
        " weights, fp32; every chunk runs to --tokens (random weights never stop)",
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "size": args.size,
        "torch": torch.__version__,
        "load_seconds_with_capture": round(load, 2),
        "capture_seconds": round(capture, 2),
        "compile_and_capture_seconds": round(compile_seconds, 2),
        "compiled": compiled.compiled,
        "step_ms": steps,
        "greedy_agreement": agreement,
        "vocode_one_chunk": vocoder,
        "generate_one_chunk": {**generate, "tokens": args.tokens},
        "one_job_two_chunks": solo,
        "jobs_at_once": {
            "jobs": args.jobs,
            "wall_seconds": round(wall, 2),
            "audio_seconds": round(float(np.sum(results)), 2),
            "gpu_seconds_per_audio_second": round(wall / float(np.sum(results)), 4),
            "batches": engine.batcher.batches[-20:],
        },
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "cache_bytes_per_row": sum(k[0].numel() * k.element_size() * 2 for k in graphed._keys),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
