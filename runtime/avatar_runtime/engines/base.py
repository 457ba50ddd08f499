"""The engine interfaces every stage is written against.

The pipeline only knows these protocols, so the GPU engines (XTTS-v2, Ditto,
faster-whisper on CUDA) slot in by configuration without touching it. Engines
are loaded once per process and shared; each says whether it is safe to call
from several threads at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

AudioArray = npt.NDArray[np.float32]
"""Mono samples in [-1, 1]."""

Frame = npt.NDArray[np.uint8]
"""One RGB video frame, shape (height, width, 3)."""


@dataclass(frozen=True)
class TimedPhone:
    """One speech sound (IPA symbol) and when it is heard, in seconds."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True)
class TimedWord:
    text: str
    start: float
    end: float
    probability: float = 1.0


@dataclass
class Speech:
    """Audio to lip-sync, with whatever timing the stages before knew about it."""

    samples: AudioArray
    sample_rate: int
    phones: list[TimedPhone] | None = None
    """Phoneme timings from the TTS engine, when it reports them."""
    words: list[TimedWord] = field(default_factory=list)
    """Word timings from the ASR engine, when it ran before rendering."""

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class VoiceSample:
    """A recording of the voice to clone, decoded and checked (``inputs/voice.py``)."""

    samples: AudioArray
    sample_rate: int
    digest: str
    """sha256 of the file as fetched: what cloned voices are cached by."""

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


Voice = str | VoiceSample
"""A named voice the engine ships, or a sample to clone."""


@dataclass(frozen=True)
class Transcript:
    text: str
    words: list[TimedWord]
    language: str


class TTSEngine(Protocol):
    """Text to speech. One loaded model serves every job slot of a pod."""

    name: str
    languages: frozenset[str]
    clones_voices: bool
    """Whether a voice sample changes the voice (the pipeline fetches one only then)."""

    def synthesize(
        self,
        text: str,
        *,
        language: str,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Speech:
        """Speak ``text``; when ``stop`` is set, give up between sentences (JobError Cancelled)."""
        ...


@runtime_checkable
class StreamingTTS(Protocol):
    """A TTS that can hand its speech on a chunk at a time (XTTS-v2)."""

    sample_rate: int

    def stream(
        self,
        text: str,
        *,
        language: str,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[AudioArray]:
        """Each chunk's audio as soon as it exists; input errors are raised before the first."""
        ...


class ASREngine(Protocol):
    """Speech to timed words, for captions and the intelligibility check."""

    name: str
    languages: frozenset[str]
    sample_rate: int

    def transcribe(self, speech: Speech, *, language: str) -> Transcript: ...


@runtime_checkable
class PreparedAvatar(Protocol):
    """A portrait analysed once per job (face found, geometry cached)."""

    size: int
    poster: Frame
    """The framed portrait at rest: the video's thumbnail."""


@runtime_checkable
class WarnedAvatar(Protocol):
    """A prepared avatar with something the user should know, though the job goes on (the
    embedded renderer: which of several faces speaks, a small face enlarged)."""

    warnings: tuple[str, ...]


AvatarT = TypeVar("AvatarT", bound=PreparedAvatar)


class Renderer(Protocol[AvatarT]):
    """Portrait + speech to frames. Each job slot owns its renderer, unless it is a
    ``SharedRenderer``."""

    name: str
    follows_words: bool
    """Whether the lips follow word timings when the TTS gives no phoneme timings (then the
    ASR runs before rendering); an audio-driven renderer (Ditto) needs neither."""

    def prepare(self, portrait: Frame, *, size: int) -> AvatarT:
        """Find the face and get the portrait ready; raises FaceNotFound."""
        ...

    def frames(self, avatar: AvatarT, speech: Speech, *, fps: int) -> Iterator[Frame]:
        """Yield exactly ``frame_count(speech.duration, fps)`` RGB frames of ``size``."""
        ...


@runtime_checkable
class SharedRenderer(Protocol):
    """A renderer that serves every slot of a pod at once (the batched Ditto engine): the
    pod gives all its slots this one instance instead of building one per slot."""

    serves_every_slot: bool


def frame_count(duration: float, fps: int) -> int:
    """Frames that cover ``duration``: the video is never shorter than the audio."""
    return max(1, int(np.ceil(duration * fps - 1e-6)))


@runtime_checkable
class StreamingRenderer(Protocol):
    """A renderer that can start on the first chunk of speech (Ditto's online mode)."""

    streams_audio: bool

    def stream(
        self, avatar: Any, audio: Iterator[AudioArray], *, sample_rate: int, fps: int
    ) -> Iterator[Frame]:
        """Frames as the speech arrives; ``frame_count(total, fps)`` of them in all."""
        ...
