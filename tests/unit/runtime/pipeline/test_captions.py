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
    doc = webvtt(
        words(("Hello", 0.0, 0.4), ("there.", 0.5, 0.9), ("How", 1.0, 1.3), ("are", 1.3, 1.5),
              ("you?", 1.5, 1.9), ("Fine", 3.0, 3.4), ("thanks.", 3.4, 3.9)),
        duration=4.0,
    )  # fmt: skip
    assert [(a, b) for a, b, _ in cues(doc)] == [(0.0, 0.9), (1.0, 1.9), (3.0, 3.9)]


def test_no_cue_is_shown_for_less_than_a_reading_moment() -> None:
    """A 0.3 s cue is joined to its neighbour, or held on into the silence after it."""
    doc = webvtt(words(("One.", 0.0, 0.3), ("Two", 0.4, 0.6), ("three", 2.0, 2.3)), duration=3.0)
    assert [(a, b) for a, b, _ in cues(doc)] == [(0.0, 0.7), (2.0, 2.7)]
    assert "One. <00:00:00.400>Two" in doc


def test_a_long_sentence_is_two_lines_cut_at_a_phrase_end() -> None:
    text = ("When the weather is fine, we walk along the river to the old mill, and then we"
            " have lunch by the water before we head home.")  # fmt: skip
    timed = [TimedWord(w, i * 0.3, i * 0.3 + 0.25) for i, w in enumerate(text.split())]
    doc = webvtt(timed, duration=10.0)
    blocks = [[line for line in b.split("\n")[1:] if line] for b in doc.split("\n\n")[1:] if b]
    for lines in blocks:
        assert 1 <= len(lines) <= 2
        assert all(len(re.sub(r"<[^>]+>", "", line)) <= 42 for line in lines), lines
    first = re.sub(r"<[^>]+>", "", " ".join(blocks[0]))
    assert first.endswith(("fine,", "mill,")), first  # a phrase end, not mid-phrase


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
