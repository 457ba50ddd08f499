"""The requested text's own words, timed by what the ASR heard.

Captions must show what the user typed ("$19.99", "café", "parked"), not what a small ASR
model wrote ("$19 .99", "cafe", "Park"), but only the ASR knows when each word is said. So
the text's words are matched to the heard words on a normal form (case, punctuation and
accents folded), in order (``difflib``'s longest matching blocks, as ``diff`` does): a
matched word takes its heard word's times; the text words between two matches share the
time of the heard words between them (or the silence there, when nothing was heard),
in proportion to their length. Words the ASR added are dropped. With nothing heard at
all, the words are spread over the speech.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

from avatar_runtime.engines.base import TimedWord

_MIN_WORD = 0.08  # seconds: shorter than any spoken word
_EDGE_PUNCTUATION = re.compile(r"^[^\w$€£¥%]+|[^\w$€£¥%]+$")


def normal(word: str) -> str:
    """A word as both sides are compared: lower case, no accents, no edge punctuation."""
    folded = unicodedata.normalize("NFKD", word.casefold())
    bare = "".join(c for c in folded if not unicodedata.combining(c))
    return _EDGE_PUNCTUATION.sub("", bare)


def align(text: str, heard: list[TimedWord], *, duration: float) -> list[TimedWord]:
    """Every word of ``text`` (as written), with times from ``heard``, in order."""
    words = text.split()
    if not words:
        return []
    if not heard:
        return _spread(words, 0.0, duration)
    mine = [normal(w) for w in words]
    theirs = [normal(w.text) for w in heard]
    matcher = difflib.SequenceMatcher(a=mine, b=theirs, autojunk=False)
    out: list[TimedWord] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out += [
                TimedWord(words[i], heard[j].start, heard[j].end, heard[j].probability)
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
        elif op in ("replace", "delete"):
            if op == "replace":
                start, end = heard[j1].start, heard[j2 - 1].end
            else:  # said, by the text, where the ASR heard nothing: the gap around it
                start = heard[j1 - 1].end if j1 > 0 else 0.0
                end = heard[j1].start if j1 < len(heard) else duration
                if end - start < _MIN_WORD * (i2 - i1) and out:
                    # No gap to put them in (the ASR ran them into the word before): share
                    # that word's time with it.
                    before = out.pop()
                    out += _spread([before.text, *words[i1:i2]], before.start, max(end, before.end))
                    continue
            out += _spread(words[i1:i2], start, max(start, end))
    return out


def _spread(words: list[str], start: float, end: float) -> list[TimedWord]:
    """Words over [start, end], each for a share as long as its letters."""
    weights = [len(w) + 1 for w in words]
    total, at, out = sum(weights), start, []
    for word, weight in zip(words, weights, strict=True):
        length = (end - start) * weight / total
        out.append(TimedWord(word, at, at + length, 0.0))
        at += length
    return out
