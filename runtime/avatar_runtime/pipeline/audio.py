"""Sample-rate conversion and padding, through FFmpeg's resampler (PyAV).

Speech arrives at the TTS engine's rate (22.05 kHz for Piper) or the rate a
recording was decoded at; Whisper wants 16 kHz; the video needs the audio to
end exactly where the last frame ends.
"""

from __future__ import annotations

import av
import numpy as np

from avatar_runtime.engines.base import AudioArray


def resample(samples: AudioArray, *, from_rate: int, to_rate: int) -> AudioArray:
    """Mono float32 at ``to_rate``, band-limited (no aliasing, unlike interpolation)."""
    if from_rate == to_rate or len(samples) == 0:
        return samples
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
    )
    frame.sample_rate = from_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)
    pieces = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(pieces).astype(np.float32) if pieces else samples[:0]


def fit_to_length(samples: AudioArray, length: int) -> AudioArray:
    """Pad with silence (or trim) to exactly ``length`` samples."""
    if len(samples) >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - len(samples), dtype=np.float32)])
