"""The embedded Piper voice pauses like a reader: longer at a full stop than at a comma."""

from __future__ import annotations

import numpy as np

from avatar_runtime.engines.base import Speech
from avatar_runtime.engines.registry import Engines

_WINDOW_SECONDS = 0.01


def silent_gap_around(speech: Speech, moment: float) -> float:
    """Seconds of the quiet stretch (10 ms windows under 3 % of the loudest) holding
    ``moment``; 0 when the voice is sounding then."""
    n = round(speech.sample_rate * _WINDOW_SECONDS)
    windows = len(speech.samples) // n
    rms = np.sqrt(np.mean(speech.samples[: windows * n].reshape(windows, n) ** 2, axis=1))
    quiet = rms < 0.03 * rms.max()
    at = min(int(moment / _WINDOW_SECONDS), windows - 1)
    if not quiet[at]:
        return 0.0
    start, end = at, at
    while start > 0 and quiet[start - 1]:
        start -= 1
    while end < windows - 1 and quiet[end + 1]:
        end += 1
    return (end - start + 1) * _WINDOW_SECONDS


def test_a_full_stop_pauses_longer_than_a_comma(engines: Engines) -> None:
    speech = engines.tts.synthesize(
        "One two three, four five six. Seven eight nine.", language="en"
    )
    assert speech.phones is not None
    # Piper times its punctuation marks: the pause is where the mark is said.
    comma = next(p for p in speech.phones if p.symbol == ",")
    stop = next(p for p in speech.phones if p.symbol == ".")
    comma_gap = silent_gap_around(speech, (comma.start + comma.end) / 2)
    stop_gap = silent_gap_around(speech, stop.end + 0.05)
    assert 0.15 < comma_gap < 0.45
    assert 0.5 <= stop_gap <= 0.8
    assert stop_gap > comma_gap + 0.15


def test_the_sentence_pause_shifts_the_next_sentences_phonemes(engines: Engines) -> None:
    """The silence put between sentences moves the phoneme timings with the audio."""
    speech = engines.tts.synthesize("Seven. Eight.", language="en")
    assert speech.phones is not None
    stop = next(p for p in speech.phones if p.symbol == ".")
    later = [p for p in speech.phones if p.start >= stop.end and p.symbol.strip()]
    assert later, "the second sentence has phonemes"
    assert later[0].start - stop.end >= 0.4
    assert speech.phones[-1].end <= speech.duration + 1e-6
