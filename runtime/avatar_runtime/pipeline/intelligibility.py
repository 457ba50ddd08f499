"""Did the speech say what was asked? The transcript against the text, as ASR evaluation
compares them.

A TTS engine can mumble, skip or hallucinate (XTTS-v2 does on short or odd
input); a video with the wrong words is worse than a failed job, so text jobs
whose transcript strays too far fail with IntelligibilityLow.

Both sides are first brought to one notation, the way ASR benchmarks do: Whisper's
own English normaliser (``whisper-normalizer``: numbers, currency, percentages,
ordinals, contractions, British/American spelling) for English, a basic one for
every other language; accents are folded everywhere (``café`` = ``cafe``). Before
that, the pieces Whisper's word timings split a number into are joined again
(``$19 .99`` → ``$19.99``, ``12 .5 %`` → ``12.5%``).

The decision is length-aware. The word error rate alone cannot judge a short
sentence: the bundled ``tiny.en`` mishears ``parked`` as ``park`` or ``car`` as
``Corps``, and six words cannot absorb three such slips. So the speech passes when
*either* its words are close enough (WER ≤ ``max_wer``) *or* its letters are (the
character error rate on the letters and digits alone, ≤ ``max_cer``, with at least
one character's slack). A near-miss spelling costs a character or two; a
different sentence, noise (Whisper's ``you``), silence (nothing heard) or another
language costs most of them (0.64 and up in our samples), and still fails, not
retriable. Between the two, a second chance: past ``max_cer`` but within
``retriable_cer`` is most likely a small model mishearing a short sentence (tiny.en
heard one of eleven renditions of "Far apart, father parked the car." as "Power Park,
Father Park the Corps.", 0.42), so the failure is retriable; Piper speaks each attempt
anew, and the operator's next attempt is heard afresh. So is any failure of a text of
under 12 letters where something of it was heard: there a mishearing scores like
anything else ("café" alone heard as "If a", 0.75). Silence is never retriable.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import jiwer

from avatar_runtime.api.errors import ErrorCode, JobError

# Whisper's word timings cut "$19.99" into "$19" ".99" and "12.5%" into "12" ".5" "%".
_SPLIT_NUMBER = (
    (re.compile(r"(\d)\s+(?=[.,]\d)"), r"\1"),  # 19 .99, 1 ,500
    (re.compile(r"(\d)\s+(?=%)"), r"\1"),  # 12.5 %
    (re.compile(r"([$€£¢])\s+(?=\d)"), r"\1"),  # $ 3
)
# Where the currency word goes is notation, not speech: "dollar 3.40" is "$3.40" said.
_CURRENCY_WORDS = re.compile(r"\b(?:dollars?|euros?|cents?)\b")
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
# Under this many letters a mishearing and another text score alike: tiny.en heard
# four of ten renditions of "café" alone as "f a" or "If a" (0.75).
_SHORT_TEXT_CHARS = 12


@dataclass(frozen=True)
class Score:
    """How far the transcript is from the text, each side normalised."""

    wer: float
    """Word error rate: edits over the text's words (their letters and digits)."""
    cer: float
    """Character error rate on the letters and digits alone (spaces, punctuation aside)."""
    char_edits: int
    """The edits behind ``cer``."""
    chars: int
    """The text's letters and digits after normalising."""


def normalise(text: str, *, language: str) -> str:
    """``text`` in the notation ASR evaluation compares: lower case, no punctuation,
    accents folded; for English also numbers, currency, spellings as Whisper's normaliser
    writes them."""
    for pattern, joined in _SPLIT_NUMBER:
        text = pattern.sub(joined, text)
    return " ".join(_normaliser(language.split("-")[0].lower())(text).split())


def score(reference: str, heard: str, *, language: str) -> Score:
    """The transcript ``heard`` against the ``reference`` text; nothing heard is a
    complete miss."""
    ref = _words(normalise(reference, language=language))
    hyp = _words(normalise(heard, language=language))
    ref_chars, hyp_chars = "".join(ref), "".join(hyp)
    if not ref_chars:
        # Nothing to say (the TTS refuses such text first): anything heard is extra.
        extra = len(hyp_chars)
        return Score(wer=float(extra > 0), cer=float(extra > 0), char_edits=extra, chars=0)
    if not hyp_chars:
        return Score(wer=1.0, cer=1.0, char_edits=len(ref_chars), chars=len(ref_chars))
    edits = jiwer.process_characters(ref_chars, hyp_chars)
    char_edits = edits.substitutions + edits.deletions + edits.insertions
    return Score(
        wer=float(jiwer.wer(" ".join(ref), " ".join(hyp))),
        cer=char_edits / len(ref_chars),
        char_edits=char_edits,
        chars=len(ref_chars),
    )


def word_error_rate(reference: str, heard: str, *, language: str = "en") -> float:
    """WER after both sides are normalised; 1.0 when nothing was heard."""
    return score(reference, heard, language=language).wer


def check(
    reference: str,
    heard: str,
    *,
    language: str,
    max_wer: float,
    max_cer: float,
    retriable_cer: float,
) -> float:
    """The WER, or IntelligibilityLow when both the words and the letters are over their
    limits: retriable while the letters are within ``retriable_cer`` (see the module's
    docstring)."""
    result = score(reference, heard, language=language)
    if result.wer <= max_wer:
        return result.wer
    # One slip is always allowed (a 4-letter word cannot take 0.4 of one), unless the
    # limit is 0: exact speech wanted.
    allowed = math.floor(max_cer * result.chars + 1e-9)
    if max_cer > 0:
        allowed = max(allowed, 1)
    if result.char_edits <= allowed:
        return result.wer
    short = result.chars < _SHORT_TEXT_CHARS and result.char_edits < result.chars
    misheard = result.cer <= retriable_cer or short
    raise JobError(
        ErrorCode.INTELLIGIBILITY_LOW,
        f"The speech does not match the text: word error rate {result.wer:.2f} is over the"
        f" limit {max_wer:.2f}, and character error rate {result.cer:.2f} over"
        f" {max_cer:.2f} (heard: {heard[:200]!r})."
        + (
            f" Close enough ({retriable_cer:.2f}) to be the recogniser mishearing: a retry"
            " speaks it anew."
            if misheard
            else ""
        ),
        retriable=misheard,
    )


def _words(normalised: str) -> list[str]:
    """The words as letters and digits alone ("$3.40" → "340"), currency words dropped."""
    words = (_NOT_ALPHANUMERIC.sub("", w) for w in _CURRENCY_WORDS.sub(" ", normalised).split())
    return [w for w in words if w]


@functools.cache
def _normaliser(language: str) -> Callable[[str], str]:
    """Whisper's English normaliser for English; elsewhere case, symbols and accents."""
    # Imported here: the operator image has neither, and only text jobs need them.
    from whisper_normalizer.basic import BasicTextNormalizer
    from whisper_normalizer.english import EnglishTextNormalizer

    normaliser: Callable[[str], str] = (
        EnglishTextNormalizer() if language == "en" else BasicTextNormalizer(remove_diacritics=True)
    )
    return normaliser
