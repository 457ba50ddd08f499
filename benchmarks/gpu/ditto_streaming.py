"""XTTS-v2 streaming into Ditto's online mode on the GPU, against speaking first.

Both engines are the runtime's own (``XttsTTS``, ``DittoRenderer``) on
random-weight volumes (``tests/runtime/engines/xtts_volume.py`` at full size,
``benchmarks/gpu/ditto_volume.py`` around Ditto's fetched code). One job of
several sentences is made twice:

- in turn, as the runtime does without ``engines.ditto_online``: the whole
  speech first, then Ditto's offline mode;
- streamed, as ``engines.ditto_online`` does: each sentence chunk goes to
  Ditto's online mode as soon as XTTS has spoken it.

Measured: time from the job's start to its first frame, and wall time per
second of video. Random weights never stop speaking, so every chunk runs to the
token cap (``--tokens``; 110 tokens is about 5 s of audio).

    python -m benchmarks.gpu.ditto_streaming --ditto-code .fetched/ditto --work /tmp/w \\
        --out report.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from avatar_runtime.engines.base import AudioArray, Speech, frame_count
from avatar_runtime.engines.ditto_renderer import DittoRenderer
from avatar_runtime.engines.xtts_tts import XttsTTS
from benchmarks.gpu import ditto_volume
from benchmarks.gpu.ditto_adapter import FPS, drain, load_portrait
from tests.runtime.engines import xtts_volume

# About 650 characters: three chunks at XTTS's 250-character limit for English.
TEXT = (
    "Welcome to the quarterly update, and thank you for joining us today. Revenue grew in"
    " every region this year, and our margins improved for the third quarter in a row."
    " The new product line shipped on time, and early reviews from customers have been"
    " very positive. Support tickets fell by a fifth after the last release. Next quarter"
    " we will open two new offices and hire forty engineers. We will also invest in"
    " training, so that every team can use the new tools well. Finally, a word of thanks:"
    " none of this happens without the hard work of everyone here. Enjoy the rest of the"
    " week, and see you at the next update."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ditto-code", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=110)
    args = parser.parse_args()
    import torch

    record: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                              "tokens_per_chunk": args.tokens, "fps": FPS}  # fmt: skip
    xtts_volume.build(args.work, size="full")
    ditto_volume.build(args.work, args.ditto_code)
    tts = XttsTTS(args.work, max_audio_tokens=args.tokens)
    offline = DittoRenderer(args.work, scratch=args.work / "avatars")
    online = DittoRenderer(args.work, scratch=args.work / "avatars", online=True)
    portrait = load_portrait()
    avatar = offline.prepare(portrait, size=512)
    online.prepare(portrait, size=512)
    warm = Speech(tts.synthesize("Warming up.", language="en").samples, tts.sample_rate)
    list(offline.frames(avatar, warm, fps=FPS))  # CUDA kernels for both, before timing
    list(online.frames(avatar, warm, fps=FPS))

    for attempt in range(2):
        began = time.perf_counter()
        speech = tts.synthesize(TEXT, language="en")
        spoken = time.perf_counter() - began
        in_turn = drain(offline.frames(avatar, speech, fps=FPS), began)
        in_turn.update(speech_seconds=speech.duration, tts_seconds=spoken)

        chunks: list[float] = []
        samples = [0]
        began = time.perf_counter()

        def spoken_chunks(
            ready: list[float] = chunks, total: list[int] = samples, start: float = began
        ) -> Iterator[AudioArray]:
            for piece in tts.stream(TEXT, language="en"):
                ready.append(time.perf_counter() - start)
                total[0] += len(piece)
                yield piece

        streamed = drain(
            online.stream(avatar, spoken_chunks(), sample_rate=tts.sample_rate, fps=FPS), began
        )
        streamed["chunk_ready_seconds"] = chunks
        streamed["speech_seconds"] = samples[0] / tts.sample_rate
        for result in (in_turn, streamed):
            result["seconds_per_video_second"] = result["wall_seconds"] / result["speech_seconds"]
            result["frames_match_speech"] = result["frames"] == frame_count(
                result["speech_seconds"], FPS
            )
        record[f"attempt_{attempt}"] = {"in_turn": in_turn, "streamed": streamed}
        args.out.write_text(json.dumps(record, indent=2))
    record["peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated()
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
