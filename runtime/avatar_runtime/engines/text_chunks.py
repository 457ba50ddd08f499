"""Long text cut into pieces a TTS model takes in one go, at sentence boundaries.

XTTS-v2 refuses more than 400 tokens at once and its quality drops well before
that (its tokenizer warns past ~250 characters in English), so text is spoken
a chunk at a time: whole sentences packed up to a character limit, a sentence
longer than the limit cut at its last comma or space before it. Each chunk is
also the unit the job can be stopped between, and the unit audio streams in.
"""

from __future__ import annotations

import re
import textwrap

# A sentence ends at . ! ? … and any closing quotes or brackets, then a space; or at a CJK
# full stop, which needs no space after it.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|[。！？]+[”’」』)]*\s*")
_CLAUSE_END = re.compile(r"(?<=[,;:，；、])\s*")
_SPEAKABLE = re.compile(r"\w")


def sentences(text: str) -> list[str]:
    out, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        out.append(text[start : end.end()].strip())
        start = end.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def speakable(text: str) -> bool:
    """Whether anything in ``text`` can be said: letters or digits, not only punctuation."""
    return _SPEAKABLE.search(text) is not None


def chunks(text: str, *, limit: int) -> list[str]:
    """Whole sentences packed into chunks of at most ``limit`` characters, in order."""
    out: list[str] = []
    for sentence in sentences(" ".join(text.split())):
        for piece in _cut(sentence, limit):
            if out and len(out[-1]) + 1 + len(piece) <= limit:
                out[-1] = f"{out[-1]} {piece}"
            else:
                out.append(piece)
    return [c for c in out if speakable(c)]


def _cut(sentence: str, limit: int) -> list[str]:
    """A sentence over the limit: at clause marks first, then between words."""
    if len(sentence) <= limit:
        return [sentence]
    pieces: list[str] = []
    for clause in (c.strip() for c in _CLAUSE_END.split(sentence)):
        if not clause:
            continue
        if pieces and len(pieces[-1]) + 1 + len(clause) <= limit:
            pieces[-1] = f"{pieces[-1]} {clause}"
        elif len(clause) <= limit:
            pieces.append(clause)
        else:
            pieces.extend(textwrap.wrap(clause, width=limit, break_on_hyphens=False))
    return pieces
