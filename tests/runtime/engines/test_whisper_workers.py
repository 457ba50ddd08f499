"""The ASR's workers: jobs that finish speaking together are transcribed together, not in turn.

Real faster-whisper (the bundled tiny.en) on real Piper speech. Whether two
transcriptions are inside the model at once is seen by a barrier both must
reach inside the model's ``transcribe``: with one worker the second waits
outside, and the barrier breaks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from avatar_runtime.engines.base import Speech
from avatar_runtime.engines.piper_tts import PiperTTS
from avatar_runtime.engines.whisper_asr import WHISPER_SAMPLE_RATE, WhisperASR
from avatar_runtime.pipeline import audio
from avatar_runtime.settings import EngineSettings

SENTENCES = (
    "The quarterly report is ready for everyone to read.",
    "Please bring your questions to the meeting on Friday.",
)


@pytest.fixture(scope="module")
def clips() -> list[Speech]:
    piper = PiperTTS()
    out = []
    for sentence in SENTENCES:
        said = piper.synthesize(sentence, language="en")
        samples = audio.resample(said.samples, from_rate=said.sample_rate, to_rate=16_000)
        out.append(Speech(samples=samples, sample_rate=WHISPER_SAMPLE_RATE))
    return out


def _meeting_inside(asr: WhisperASR, parties: int) -> threading.Barrier:
    """Make each call wait inside the model for ``parties`` calls in all (5 s at most)."""
    barrier = threading.Barrier(parties, timeout=5)
    model = asr._model
    transcribe = model.transcribe

    def meeting(*args: Any, **kwargs: Any) -> Any:
        segments, info = transcribe(*args, **kwargs)

        def decoded() -> Iterator[Any]:
            barrier.wait()
            yield from segments

        return decoded(), info

    model.transcribe = meeting
    return barrier


def _both(asr: WhisperASR, clips: list[Speech]) -> list[str]:
    with ThreadPoolExecutor(max_workers=len(clips)) as pool:
        return [t.text for t in pool.map(lambda c: asr.transcribe(c, language="en"), clips)]


def test_two_workers_transcribe_two_jobs_at_once_and_hear_the_same_words(
    clips: list[Speech],
) -> None:
    asr = WhisperASR(threads=1, workers=2)
    alone = [asr.transcribe(clip, language="en").text for clip in clips]
    assert "report" in alone[0].lower()  # heard, not noise
    assert "friday" in alone[1].lower()
    _meeting_inside(asr, 2)
    together = _both(asr, clips)  # the barrier breaks unless both are inside at once
    assert together == alone


def test_one_worker_transcribes_one_job_at_a_time(clips: list[Speech]) -> None:
    asr = WhisperASR(threads=1, workers=1)
    barrier = _meeting_inside(asr, 2)
    with pytest.raises(threading.BrokenBarrierError):
        _both(asr, clips)
    assert barrier.broken


def test_the_pod_setting_reaches_the_asr() -> None:
    from avatar_runtime.engines import registry

    settings = EngineSettings(whisper_workers=3, cpu_threads=1)
    asr = registry._whisper(settings)
    assert isinstance(asr, WhisperASR)
    assert asr.workers == 3


def test_no_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        WhisperASR(threads=1, workers=0)
    with pytest.raises(ValueError, match="whisper_workers"):
        EngineSettings(whisper_workers=0)
