"""Speech to Ditto's audio condition, as it arrives: HuBERT windows, features, condition rows.

Ditto conditions its motion diffusion on, per 25 fps frame, 1024 HuBERT
features and the portrait's constant condition values (emotion, eye openness,
eye-ball position, source keypoints: 79 more with Ditto's configuration, 1103
in all; ``ConditionHandler``). Its offline feature step
(``Wav2FeatHubert.wav2feat``) runs HuBERT over windows of 6480 samples at 16 kHz
(3 + 5 + 2 feature frames of 640 samples, plus 80), one every 5 frames, over the
speech with 2000 samples of silence before it and a window's worth after, and
keeps from each window's 20 HuBERT frames (50 per second) rows 6 to 15,
averaged in pairs: 5 features at 25 fps. ``FeatureWindows`` does the same on
speech that comes in pieces, so a job's first motion window can start while
the TTS still speaks; the frame count is Ditto's, ``ceil(samples / 16000 * 25)``.

``AudioEncoder`` is the HuBERT model. Ditto ships it as an ONNX export with a
fixed key/value cache, batch 1 (``OnnxHubert``); an encoder that takes a batch
gets all the windows a piece of speech completes in one call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

RATE = 16_000
CHUNK = (3, 5, 2)  # feature frames of context before, kept, and after, per window
WINDOW = int(sum(CHUNK) * 0.04 * RATE) + 80  # 6480 samples
STEP = CHUNK[1] * 640  # 3200 samples: 5 frames at 25 fps
LEAD = WINDOW - int(sum(CHUNK[1:]) * 0.04 * RATE)  # 2000 samples of silence first
FEATURES = 1024
EMOTIONS = 8

Floats = npt.NDArray[np.float32]


class AudioEncoder(Protocol):
    """HuBERT: windows (n, 6480) at 16 kHz to encodings (n, 20, 1024); safe to call from
    several threads at once."""

    def encode(self, windows: Floats) -> Floats: ...


def frames_for(samples: int) -> int:
    """Ditto's frame count for ``samples`` of 16 kHz speech (its own float expression)."""
    return math.ceil(samples / RATE * 25)


def kept_features(encoding: Floats) -> Floats:
    """One window's (20, 1024) encoding to its 5 features at 25 fps (Ditto's rows)."""
    start, stop = -sum(CHUNK[1:]) * 2, -CHUNK[2] * 2
    kept: Floats = encoding[start:stop].reshape(CHUNK[1], 2, -1).mean(axis=1)
    return kept


class FeatureWindows:
    """One job's speech, 16 kHz, to HuBERT features at 25 fps, piece by piece.

    ``add`` takes more speech and returns the features now known to be in the video
    (frames the speech so far already covers); ``finish`` returns the rest, the last
    windows padded with silence, cut to Ditto's frame count. Not thread-safe."""

    def __init__(self, encoder: AudioEncoder) -> None:
        self._encoder = encoder
        self._buffer = np.zeros(LEAD, dtype=np.float32)  # from the next window's start
        self._samples = 0
        self._held: list[Floats] = []  # features made but not yet known to be in the video
        self._held_rows = 0
        self._given = 0  # features handed out
        self._width = FEATURES

    @property
    def samples(self) -> int:
        return self._samples

    def add(self, speech: Floats) -> Floats:
        self._samples += len(speech)
        self._buffer = np.concatenate([self._buffer, speech.astype(np.float32, copy=False)])
        count = 0 if len(self._buffer) < WINDOW else (len(self._buffer) - WINDOW) // STEP + 1
        self._encode(count)
        return self._release(frames_for(self._samples))

    def finish(self) -> Floats:
        total = frames_for(self._samples)
        self._buffer = np.concatenate([self._buffer, np.zeros(WINDOW, dtype=np.float32)])
        made = self._given + self._held_rows
        self._encode(max(0, math.ceil((total - made) / CHUNK[1])))
        return self._release(total)

    def _encode(self, count: int) -> None:
        if count <= 0:
            return
        windows = np.stack([self._buffer[i * STEP : i * STEP + WINDOW] for i in range(count)])
        encodings = self._encoder.encode(windows)
        for encoding in encodings:
            self._width = encoding.shape[-1]
            self._held.append(kept_features(np.asarray(encoding, dtype=np.float32)))
            self._held_rows += CHUNK[1]
        self._buffer = self._buffer[count * STEP :]

    def _release(self, known: int) -> Floats:
        take = max(0, min(known - self._given, self._held_rows))
        if not self._held:
            return np.zeros((0, self._width), dtype=np.float32)
        held = np.concatenate(self._held)
        out, rest = held[:take], held[take:]
        self._held = [rest] if len(rest) else []
        self._held_rows = len(rest)
        self._given += take
        return out


class OnnxHubert:
    """Ditto's HuBERT ONNX export (``aux_models/hubert_streaming_fix_kv.onnx``): one window a
    call where its input has a fixed batch of 1 (Ditto's does), else all in one."""

    def __init__(self, path: str, *, device: str = "cpu") -> None:
        import onnxruntime  # type: ignore[import-untyped]

        available = set(onnxruntime.get_available_providers())
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        self._session: Any = onnxruntime.InferenceSession(path, providers=providers)
        first = self._session.get_inputs()[0]
        self._input = first.name
        self.batched = not isinstance(first.shape[0], int) or first.shape[0] != 1
        self.providers: Sequence[str] = self._session.get_providers()

    def encode(self, windows: Floats) -> Floats:
        if self.batched:
            batch: Floats = self._session.run(None, {self._input: windows})[0]
            return batch
        out = [self._session.run(None, {self._input: w[None]})[0] for w in windows]
        return np.stack(out).astype(np.float32, copy=False)


@dataclass(frozen=True)
class ConditionLayout:
    """Which of the portrait's values follow the features in each condition row (Ditto's
    ``use_emo`` and the rest, from its configuration), and the emotion label."""

    emotion: bool = True
    eye_open: bool = True
    eye_ball: bool = True
    keypoints: bool = True
    label: int = 4
    """Ditto's default emotion, 'Neutral'."""

    @classmethod
    def of(cls, cfg: dict[str, Any]) -> ConditionLayout:
        """From Ditto's configuration pickle (``audio2motion_cfg``, ``default_kwargs``)."""
        a2m, defaults = cfg.get("audio2motion_cfg", {}), cfg.get("default_kwargs", {})
        label = defaults.get("emo", 4)
        if not isinstance(label, int):
            raise ValueError(f"only one emotion label is supported, not {label!r}")
        return cls(
            emotion=bool(a2m.get("use_emo", True)),
            eye_open=bool(a2m.get("use_eye_open", True)),
            eye_ball=bool(a2m.get("use_eye_ball", True)),
            keypoints=bool(a2m.get("use_sc", True)),
            label=label,
        )

    def tail(self, info: dict[str, Any]) -> Floats:
        """A still portrait's constant condition values, from Ditto's registration (its
        ``source_info``): what ``ConditionHandler`` appends to every frame's features."""
        parts: list[Floats] = []
        if self.emotion:
            logits = np.zeros(EMOTIONS, dtype=np.float32)
            logits[self.label] = 8
            weights = np.exp(logits - logits.max())
            parts.append((weights / weights.sum()).astype(np.float32))
        if self.eye_open:
            parts.append(np.concatenate(info["eye_open_lst"], 0)[0].astype(np.float32))
        if self.eye_ball:
            parts.append(np.concatenate(info["eye_ball_lst"], 0)[0].astype(np.float32))
        if self.keypoints:
            parts.append(np.asarray(info["sc"], dtype=np.float32).reshape(-1))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
