"""WebVTT captions: valid, word-timed, in order and inside the audio."""

import re

from avatar_runtime.engines.base import TimedWord
from avatar_runtime.pipeline.captions import webvtt

CUE = re.compile(r"^(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)$")


def seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def words(*spec: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(t, a, b) for t, a, b in spec]


def test_document_is_webvtt_with_word_timestamps() -> None:
    doc = webvtt(words(("Hello", 0.0, 0.4), ("world.", 0.5, 0.9)), duration=1.0)
    assert doc.startswith("WEBVTT\n\n")
    assert "00:00:00.000 --> 00:00:00.900\nHello <00:00:00.500>world." in doc


def cues(doc: str) -> list[tuple[float, float, list[float]]]:
    """(start, end, word stamps) of every cue."""
    out = []
    blocks = doc.split("\n\n")[1:]
    for block in filter(None, (b.strip() for b in blocks)):
        header, text = block.split("\n", 1)
        start, end = (seconds(s) for s in CUE.match(header).groups())  # type: ignore[union-attr]
        out.append((start, end, [seconds(s) for s in re.findall(r"<([\d:.]+)>", text)]))
    return out


def test_cues_break_at_sentence_ends_and_pauses() -> None:
    doc = webvtt(words(("One.", 0.0, 0.3), ("Two", 0.4, 0.6), ("three", 2.0, 2.3)), duration=3.0)
    assert [(a, b) for a, b, _ in cues(doc)] == [(0.0, 0.3), (0.4, 0.6), (2.0, 2.3)]


def test_times_are_monotonic_and_clamped_to_the_audio() -> None:
    # ASR output can overlap and run past the end of the audio.
    raw = words(("a", 0.0, 0.5), ("b", 0.4, 0.9), ("c", 0.8, 1.6), ("d", 1.9, 2.5))
    parsed = cues(webvtt(raw, duration=1.5))
    previous_end = 0.0
    for start, end, stamps in parsed:
        assert previous_end <= start < end <= 1.5
        assert all(start <= t <= end for t in stamps)
        assert stamps == sorted(stamps)
        previous_end = end
    assert len(parsed) == 1
    assert len(parsed[0][2]) == 2


def test_nothing_heard_gives_an_empty_but_valid_file() -> None:
    assert webvtt([], duration=2.0) == "WEBVTT\n"
