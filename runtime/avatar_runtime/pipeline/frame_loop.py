"""Frames to MP4, one at a time: the loop a batch render and a streaming render share.

Either way the renderer yields frames and this loop hands each to the MP4 writer
as it comes, with the soundtrack laid in step, so rendering and encoding overlap
(x264 encodes on its own threads). The time spent waiting for the next frame is
the renderer's, the time spent handing it on the encoder's. What differs
between the paths is the soundtrack: whole from the start, or spoken while the
frames come (``Soundtrack``). The loop runs once a frame: nothing in it may
allocate or lock beyond what the writer and the soundtrack do themselves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from avatar_runtime.engines.base import AudioArray, Frame
from avatar_runtime.pipeline.context import JobContext
from avatar_runtime.pipeline.encoding import Mp4Writer, write_thumbnail
from avatar_runtime.settings import VideoSettings

_NO_AUDIO: AudioArray = np.zeros(0, dtype=np.float32)


class Soundtrack(Protocol):
    """The audio under the frames, as the loop asks for it."""

    sample_rate: int

    def take_new(self) -> AudioArray:
        """Audio not handed on yet: asked for before every frame and once after the last."""
        ...

    def frames_expected(self, written: int) -> int:
        """Frames the video will have in all, as far as known now (for progress)."""
        ...


class WholeSoundtrack:
    """Speech that exists in full before the first frame (a batch render)."""

    def __init__(self, samples: AudioArray, *, sample_rate: int, frames: int) -> None:
        self.sample_rate = sample_rate
        self._samples: AudioArray | None = samples
        self._frames = frames

    def take_new(self) -> AudioArray:
        samples, self._samples = self._samples, None
        return _NO_AUDIO if samples is None else samples

    def frames_expected(self, written: int) -> int:
        return self._frames


@dataclass(frozen=True)
class Video:
    """The encoded files, in the job's scratch directory, and how long the video is."""

    path: Path
    thumbnail: Path
    frames: int
    fps: int

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def files(self) -> dict[str, Path]:
        """Kind -> file, as ``OutputTarget.publish`` takes them."""
        return {"video": self.path, "thumbnail": self.thumbnail}


def encode(
    frames: Iterator[Frame],
    *,
    job: JobContext,
    poster: Frame,
    soundtrack: Soundtrack,
    settings: VideoSettings,
) -> Video:
    """Write the thumbnail (``poster``) and every frame ``frames`` yields, with the soundtrack.

    Checks for a stop before each frame and reports progress every half second of video;
    adds the time spent to the job's render and encode stages.
    """
    spec, timer = job.spec, job.timer
    video_path, thumb_path = job.scratch / "video.mp4", job.scratch / "thumbnail.jpg"
    write_thumbnail(poster, thumb_path)
    every = max(1, spec.fps // 2)
    written = 0
    job.rendered(0.0)
    with Mp4Writer(
        video_path,
        size=spec.resolution,
        fps=spec.fps,
        sample_rate=soundtrack.sample_rate,
        settings=settings,
    ) as writer:
        while True:
            job.check_stop()
            tick = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            tock = time.perf_counter()
            writer.add_audio(soundtrack.take_new())
            writer.write(frame)
            timer.add("render", tock - tick)
            timer.add("encode", time.perf_counter() - tock)
            written += 1
            if written % every == 0:
                job.rendered(written / soundtrack.frames_expected(written))
        writer.add_audio(soundtrack.take_new())
        tick = time.perf_counter()  # closing flushes the encoders
    timer.add("encode", time.perf_counter() - tick)
    return Video(path=video_path, thumbnail=thumb_path, frames=written, fps=spec.fps)
