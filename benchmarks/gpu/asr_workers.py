"""The ASR with several jobs at once: ``WhisperASR`` workers and threads, on the pod's CPU.

In the whole pod on the GPU machine (16 cores, CTranslate2 on the CPU: the
device's CUDA 13 lacks the libcublas 12 it needs), each job's transcription
starts when its speech is complete, and with one worker the jobs that finish
speaking together queue: at 3 jobs the ASR stage took 2.3 s a job against 1.3 s
alone, and set the jobs' latency. This times the runtime's own ``WhisperASR``
(a random-weight Whisper of small.en's size, ``whisper_volume``) transcribing
``--jobs`` clips at once and one alone, for each ``workers x threads`` pair.

    python -m benchmarks.gpu.asr_workers --work /tmp/asr --out asr.json \
        --tokenizer .pod/whisper-en [--grid 1x8,3x8,3x4] [--jobs 3] [--seconds 8.76]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from avatar_runtime.engines.whisper_asr import WHISPER_SAMPLE_RATE, WhisperASR
from benchmarks.gpu import whisper_volume
from benchmarks.gpu.ditto_adapter import syllable_noise


def _at_once(asr: WhisperASR, clips: list[Any]) -> dict[str, Any]:
    seconds: list[float] = [0.0] * len(clips)
    words: list[int] = [0] * len(clips)

    def run(i: int) -> None:
        began = time.perf_counter()
        words[i] = len(asr.transcribe(clips[i], language="en").words)
        seconds[i] = time.perf_counter() - began

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clips))]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "wall_seconds": time.perf_counter() - began,
        "call_seconds": seconds,
        "words": words,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument("--size", default="small", choices=("tiny", "small"))
    parser.add_argument("--grid", default="1x8,3x8,3x4,2x8", help="workers x threads pairs")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.76)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model = args.work / f"whisper-{args.size}-random"
    if not (model / "model.bin").exists():
        whisper_volume.build(model, size=args.size, tokenizer=args.tokenizer)
    clips = [syllable_noise(args.seconds, seed=i, rate=WHISPER_SAMPLE_RATE) for i in range(8)]
    record: dict[str, Any] = {
        "benchmark": "asr_workers",
        "cpu_count": os.cpu_count(),
        "model": f"random-weight Whisper, {args.size}.en's size (whisper_volume)",
        "clip_seconds": args.seconds,
        "jobs": args.jobs,
        "runs": {},
    }
    for pair in args.grid.split(","):
        workers, threads = (int(n) for n in pair.split("x"))
        asr = WhisperASR(model=str(model), threads=threads, workers=workers)
        alone = [_at_once(asr, clips[:1]) for _ in range(args.repeats)]
        together = [_at_once(asr, clips[: args.jobs]) for _ in range(args.repeats)]
        record["runs"][pair] = {
            "workers": workers,
            "threads": threads,
            "alone_seconds": statistics.median(r["wall_seconds"] for r in alone),
            "together_wall_seconds": statistics.median(r["wall_seconds"] for r in together),
            "together_slowest_call_seconds": statistics.median(
                max(r["call_seconds"]) for r in together
            ),
            "alone": alone,
            "together": together,
        }
        args.out.write_text(json.dumps(record, indent=2))
        run = record["runs"][pair]
        print(pair, round(run["alone_seconds"], 2), round(run["together_wall_seconds"], 2))
        del asr


if __name__ == "__main__":
    main()
