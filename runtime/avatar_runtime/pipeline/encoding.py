"""MP4 (H.264 + AAC, fast start) and the JPEG thumbnail, through PyAV.

Frames are encoded as the renderer yields them, with the audio interleaved in
step, so rendering and encoding overlap (x264 runs its own threads outside the
GIL) and the file streams well: ``+faststart`` moves the index to the front.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from avatar_runtime.engines.base import AudioArray, Frame
from avatar_runtime.pipeline.audio import resample
from avatar_runtime.settings import VideoSettings

# AAC takes a limited set of sample rates; everything else is resampled to 48 kHz.
_AAC_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})


class Mp4Writer:
    """Write frames one at a time; the audio track is laid alongside as frames arrive.

    The audio is added with ``add_audio``: whole before the first frame, or as it is
    made when rendering follows a streaming TTS; either way it is sent in step with
    the frames and ends with the last one.
    """

    def __init__(
        self,
        path: Path,
        *,
        size: int,
        fps: int,
        sample_rate: int,
        settings: VideoSettings,
    ) -> None:
        self._source_rate = sample_rate
        if sample_rate not in _AAC_RATES:
            sample_rate = 48_000
        self._container = av.open(str(path), "w", options={"movflags": "+faststart"})
        self._video = self._container.add_stream(
            "libx264",
            rate=fps,
            options={"preset": settings.preset, "crf": str(settings.crf)},
        )
        self._video.width = size
        self._video.height = size
        self._video.pix_fmt = "yuv420p"
        self._video.thread_count = settings.encoder_threads or max(1, (os.cpu_count() or 1) // 2)
        self._audio = self._container.add_stream("aac", rate=sample_rate, layout="mono")
        self._audio.bit_rate = settings.audio_bitrate
        self._sample_rate = sample_rate
        self._samples = np.zeros(0, dtype=np.float32)
        self._fps = fps
        self._frames = 0
        self._audio_sent = 0

    def add_audio(self, samples: AudioArray) -> None:
        """More of the soundtrack (at the rate given at start)."""
        if len(samples) == 0:  # called for every frame; most bring no new speech
            return
        if self._source_rate != self._sample_rate:
            samples = resample(samples, from_rate=self._source_rate, to_rate=self._sample_rate)
        self._samples = np.concatenate([self._samples, np.asarray(samples, dtype=np.float32)])

    def write(self, frame: Frame) -> None:
        yuv = np.asarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), np.uint8)
        video_frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        video_frame.pts = self._frames
        video_frame.time_base = Fraction(1, self._fps)
        self._container.mux(self._video.encode(video_frame))
        self._frames += 1
        self._send_audio(until=round(self._frames * self._sample_rate / self._fps))

    def _send_audio(self, *, until: int) -> None:
        until = min(until, len(self._samples))
        if until <= self._audio_sent:
            return
        chunk = self._samples[self._audio_sent : until].reshape(1, -1)
        audio_frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        audio_frame.sample_rate = self._sample_rate
        audio_frame.pts = self._audio_sent
        audio_frame.time_base = Fraction(1, self._sample_rate)
        self._container.mux(self._audio.encode(audio_frame))
        self._audio_sent = until

    def close(self) -> None:
        """Flush both encoders and write the index. Call once, after the last frame.

        The soundtrack ends with the last frame: cut there, or padded with silence.
        """
        end = round(self._frames * self._sample_rate / self._fps)
        if len(self._samples) < end:
            self._samples = np.pad(self._samples, (0, end - len(self._samples)))
        self._send_audio(until=end)
        self._container.mux(self._video.encode(None))
        self._container.mux(self._audio.encode(None))
        self._container.close()

    def abort(self) -> None:
        """Close without flushing; the caller deletes the file."""
        self._container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_thumbnail(frame: Frame, path: Path, *, quality: int = 90) -> None:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    path.write_bytes(data.tobytes())
