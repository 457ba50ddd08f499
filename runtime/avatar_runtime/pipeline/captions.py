"""Word-timed WebVTT captions from the ASR's words.

Cues are short lines (what a viewer reads at a glance) that break at sentence
ends and pauses; inside each cue every word carries its own timestamp, so
players that support it highlight words as they are spoken.
"""

from __future__ import annotations

from collections.abc import Iterable

from avatar_runtime.engines.base import TimedWord

_MAX_CHARS = 42  # one line of broadcast captions
_MAX_WORDS = 8
_PAUSE = 0.6  # seconds of silence that start a new cue


def _timestamp(seconds: float) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _cues(words: list[TimedWord]) -> Iterable[list[TimedWord]]:
    cue: list[TimedWord] = []
    for word in words:
        if cue:
            text_len = sum(len(w.text) + 1 for w in cue) + len(word.text)
            if (
                text_len > _MAX_CHARS
                or len(cue) >= _MAX_WORDS
                or word.start - cue[-1].end > _PAUSE
                or cue[-1].text.endswith((".", "!", "?"))
            ):
                yield cue
                cue = []
        cue.append(word)
    if cue:
        yield cue


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
    """A complete WebVTT document; an empty one (header only) when nothing was heard."""
    lines = ["WEBVTT", ""]
    for cue in _cues(clean_words(words, duration=duration)):
        start, end = cue[0].start, max(cue[-1].end, cue[0].start + 0.001)
        parts = [cue[0].text]
        parts += [f"<{_timestamp(w.start)}>{w.text}" for w in cue[1:]]
        lines += [f"{_timestamp(start)} --> {_timestamp(end)}", " ".join(parts), ""]
    return "\n".join(lines)
