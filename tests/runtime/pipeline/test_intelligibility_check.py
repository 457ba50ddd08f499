"""The intelligibility check on whole jobs: real Piper, real faster-whisper (tiny.en).

Correct speech in the notations the check used to refuse (prices, decimals,
percentages, accents) passes; speech that is another sentence, noise or silence
fails with IntelligibilityLow, not retriable, and leaves no output. Small videos
(128 px) keep each job to a second or two. ("café" alone is left to the unit tests:
tiny.en hears four of ten of Piper's renditions of it as "f a", a retriable failure.)
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobSpec
from avatar_runtime.engines.base import Speech, TTSEngine, Voice
from avatar_runtime.engines.registry import Engines
from avatar_runtime.pipeline.runner import Pipeline
from avatar_runtime.settings import RuntimeSettings

_RATE = 22_050


def job(portrait: Path, out: Path, text: str) -> JobSpec:
    return JobSpec(portrait=str(portrait), text=text, output=str(out), resolution=128)


@pytest.mark.parametrize(
    "text",
    [
        "Our plans start at $19.99 per month.",
        "The rate is 12.5%, or $3.40 a day.",
        "We met at the café on March 3rd, 2024.",
        "$3.40",
    ],
)
def test_prices_decimals_percentages_dates_and_accents_are_heard_as_said(
    pipeline: Pipeline, portrait_png: Path, tmp_path: Path, text: str
) -> None:
    result = pipeline.run(job(portrait_png, tmp_path / "out", text))
    assert result.wer is not None
    assert (tmp_path / "out" / "video.mp4").is_file()


class _SaysOtherwise:
    """A TTS that speaks something other than the text: another sentence (through the
    real Piper), hiss, or nothing."""

    name = "says-otherwise"
    languages = frozenset({"en"})
    clones_voices = False

    def __init__(self, speak: Speech | str, *, piper: TTSEngine) -> None:
        self._speak = speak
        self._piper = piper

    def synthesize(
        self,
        text: str,
        *,
        language: str,
        voice: Voice | None = None,
        stop: threading.Event | None = None,
    ) -> Speech:
        if isinstance(self._speak, Speech):
            return self._speak
        return self._piper.synthesize(self._speak, language=language, stop=stop)


_NOISE = Speech(
    samples=(0.3 * np.random.default_rng(7).standard_normal(3 * _RATE)).astype(np.float32),
    sample_rate=_RATE,
)
_SILENCE = Speech(samples=np.zeros(3 * _RATE, np.float32), sample_rate=_RATE)


@pytest.mark.parametrize(
    "speak",
    ["The quick brown fox jumps over the lazy dog.", _NOISE, _SILENCE],
    ids=["another-sentence", "noise", "silence"],
)
def test_speech_that_is_not_the_text_fails_for_good(
    engines: Engines, portrait_png: Path, tmp_path: Path, speak: Speech | str
) -> None:
    liar = _SaysOtherwise(speak, piper=engines.tts)
    runner = Pipeline(replace(engines, tts=liar), RuntimeSettings())
    out = tmp_path / "out"
    try:
        with pytest.raises(JobError) as caught:
            runner.run(job(portrait_png, out, "Our plans start at $19.99 per month."))
    finally:
        runner.close()
    assert caught.value.code is ErrorCode.INTELLIGIBILITY_LOW
    assert caught.value.retriable is False
    assert not out.exists() or list(out.iterdir()) == []
