"""Helpers to read back what the pipeline wrote, with PyAV, as a player would."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


@dataclass
class Decoded:
    frames: list[np.ndarray]
    fps: float
    video_seconds: float
    audio_seconds: float
    audio_codec: str
    video_codec: str


def decode_mp4(path: Path) -> Decoded:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert video.average_rate is not None
        fps = float(video.average_rate)
        video_codec, audio_codec = video.codec_context.name, audio.codec_context.name
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        rate = container.streams.audio[0].sample_rate
    return Decoded(
        frames=frames,
        fps=fps,
        video_seconds=len(frames) / fps,
        audio_seconds=samples / rate,
        audio_codec=audio_codec,
        video_codec=video_codec,
    )


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
