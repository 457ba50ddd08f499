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
    """Frames as decoded; durations as players take them, from the MP4's index.

    Decoded AAC always comes in whole 1024-sample frames (46 ms at 22.05 kHz), so
    counting decoded samples overstates the track; the container's edit list
    records the true length, and that is what players show and stop at.
    """
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.average_rate is not None
        assert video.duration is not None
        assert audio.duration is not None
        assert audio.time_base is not None
        fps = float(video.average_rate)
        audio_seconds = float(audio.duration * audio.time_base)
        video_codec, audio_codec = video.codec_context.name, audio.codec_context.name
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return Decoded(
        frames=frames,
        fps=fps,
        video_seconds=len(frames) / fps,
        audio_seconds=audio_seconds,
        audio_codec=audio_codec,
        video_codec=video_codec,
    )


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


def speech_span(path: Path, *, threshold: float = 0.02) -> tuple[float, float]:
    """When speech starts and ends in the MP4's audio (10 ms RMS above ``threshold``)."""
    with av.open(str(path)) as container:
        chunks = [f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)]
        rate = container.streams.audio[0].sample_rate
    samples = np.concatenate(chunks)
    hop = rate // 100
    rms = np.sqrt(np.convolve(samples.astype(np.float64) ** 2, np.ones(hop) / hop, "valid"))
    loud = np.flatnonzero(rms > threshold)
    return float(loud[0] / rate), float((loud[-1] + hop) / rate)
