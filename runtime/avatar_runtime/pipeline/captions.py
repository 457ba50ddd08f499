"""Word-timed WebVTT captions, cut where a viewer expects a new caption.

The words are the user's own text for a text job (``alignment`` times them by the ASR) and
the ASR's for an audio job. Cues follow broadcast practice: at most two lines of 42
characters, a new cue at each sentence end and each pause, at a phrase end (comma,
semicolon, colon) once a line is full, and none shown for less than 0.7 s (a short one is
held on into the silence after it, or joined to its neighbour). Inside each cue every word
carries its own timestamp, so players that support it highlight words as they are spoken.
"""

from __future__ import annotations

from collections.abc import Iterable

from avatar_runtime.engines.base import TimedWord

LINE_CHARS = 42  # one line of broadcast captions
MAX_LINES = 2
MIN_SECONDS = 0.7  # a caption shown for less cannot be read
_PAUSE = 0.6  # seconds of silence that start a new cue
_SENTENCE_END = (".", "!", "?", "…")
_PHRASE_END = (",", ";", ":", "—", "–")


def _timestamp(seconds: float) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _chars(words: list[TimedWord]) -> int:
    return sum(len(w.text) for w in words) + max(0, len(words) - 1)


def _cues(words: list[TimedWord]) -> Iterable[list[TimedWord]]:
    cue: list[TimedWord] = []
    for word in words:
        if cue:
            last = cue[-1].text
            if (
                _chars([*cue, word]) > LINE_CHARS * MAX_LINES
                or word.start - cue[-1].end > _PAUSE
                or last.endswith(_SENTENCE_END)
                or (last.endswith(_PHRASE_END) and _chars(cue) >= LINE_CHARS)
            ):
                yield cue
                cue = []
        cue.append(word)
    if cue:
        yield cue


def _readable(
    cues: list[list[TimedWord]], duration: float
) -> list[tuple[float, float, list[TimedWord]]]:
    """(start, end, words) of each cue, none shorter than MIN_SECONDS where time allows."""
    out: list[tuple[float, float, list[TimedWord]]] = []
    for index, cue in enumerate(cues):
        start, end = cue[0].start, max(cue[-1].end, cue[0].start + 0.001)
        if end - start < MIN_SECONDS and out:
            before_start, before_end, before = out[-1]
            if (
                start - before_end <= _PAUSE
                and _chars([*before, *cue]) <= LINE_CHARS * MAX_LINES
                and (index + 1 >= len(cues) or cues[index + 1][0].start - start >= MIN_SECONDS)
            ):
                out[-1] = (before_start, end, [*before, *cue])  # joined to the one before
                continue
        out.append((start, end, cue))
    held = []
    for index, (start, end, cue) in enumerate(out):
        limit = out[index + 1][0] if index + 1 < len(out) else duration
        held.append((start, max(end, min(start + MIN_SECONDS, limit)), cue))
    return held


def _lines(words: list[TimedWord]) -> list[list[TimedWord]]:
    """One line, or two split where their lengths are most alike."""
    if _chars(words) <= LINE_CHARS or len(words) < 2:
        return [words]
    best = min(
        range(1, len(words)),
        key=lambda k: (
            max(_chars(words[:k]), _chars(words[k:])) > LINE_CHARS,
            abs(_chars(words[:k]) - _chars(words[k:])),
        ),
    )
    return [words[:best], words[best:]]


def clean_words(words: list[TimedWord], *, duration: float) -> list[TimedWord]:
    """Words with times inside the audio, in order, none overlapping the next."""
    out: list[TimedWord] = []
    previous_end = 0.0
    for word in words:
        start = min(max(word.start, previous_end), duration)
        end = min(max(word.end, start), duration)
        if end <= start and start >= duration:
            break
        out.append(TimedWord(word.text, start, end, word.probability))
        previous_end = end
    return out


def webvtt(words: list[TimedWord], *, duration: float) -> str:
    """A complete WebVTT document; an empty one (header only) when nothing was said."""
    lines = ["WEBVTT", ""]
    cues = list(_cues(clean_words(words, duration=duration)))
    for start, end, cue in _readable(cues, duration):
        text = []
        for n, line in enumerate(_lines(cue)):
            stamped = [w.text if n == 0 and i == 0 else f"<{_timestamp(w.start)}>{w.text}"
                       for i, w in enumerate(line)]  # fmt: skip
            text.append(" ".join(stamped))
        lines += [f"{_timestamp(start)} --> {_timestamp(end)}", *text, ""]
    return "\n".join(lines)
