"""Speech sounds to mouth shapes (visemes).

Lips follow the words, not the loudness: a /p/ closes them in the middle of a
loud word, an /o/ rounds them, an /a/ drops the jaw. Piper reports the phonemes
it spoke with their timings; for recorded audio the ASR's word timings plus
espeak-ng's phonemes of each word (Piper ships espeak-ng) stand in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from avatar_runtime.engines.base import TimedPhone, TimedWord


@dataclass(frozen=True)
class Viseme:
    """Mouth target: ``opening`` 0 (lips together) to 1 (jaw dropped); ``spread``
    negative for rounded lips, positive for wide."""

    opening: float
    spread: float


REST = Viseme(0.0, 0.0)
CLOSED = Viseme(0.0, -0.05)

_TABLE: dict[str, Viseme] = {}


def _define(symbols: str, viseme: Viseme) -> None:
    for symbol in symbols.split():
        _TABLE[symbol] = viseme


_define("p b m", CLOSED)
_define("f v", Viseme(0.12, 0.05))
_define("θ ð", Viseme(0.22, 0.08))
_define("t d n l s z ɾ ɫ", Viseme(0.25, 0.1))
_define("k ɡ g ŋ x", Viseme(0.35, 0.0))
_define("ʃ ʒ tʃ dʒ ʧ ʤ", Viseme(0.3, -0.3))
_define("ɹ r ɚ ɝ", Viseme(0.3, -0.25))
_define("j", Viseme(0.25, 0.25))
_define("w", Viseme(0.2, -0.5))
_define("h", Viseme(0.45, 0.0))
_define("i ɪ", Viseme(0.3, 0.3))
_define("e ɛ eɪ", Viseme(0.55, 0.2))
_define("æ", Viseme(0.8, 0.2))
_define("a ɑ ɐ ʌ aɪ aʊ", Viseme(1.0, 0.05))
_define("ə ɜ ᵻ", Viseme(0.45, 0.0))
_define("ɔ ɒ ɔɪ", Viseme(0.7, -0.35))
_define("o oʊ", Viseme(0.55, -0.4))
_define("u ʊ", Viseme(0.3, -0.5))
# Punctuation Piper speaks as pauses: the mouth rests.
_define('. , ; : ! ? — … "', REST)

# Stress marks belong to the next sound, length marks to the one before.
_STRESS = frozenset({"ˈ", "ˌ"})
_LENGTH = frozenset({"ː", "ˑ"})
# A word gap this long is a real pause; shorter ones are carried through.
_PAUSE_SECONDS = 0.15


def viseme_for(symbol: str) -> Viseme | None:
    """The shape for an IPA symbol; None for a sound that takes its neighbours' shape."""
    if symbol in _TABLE:
        return _TABLE[symbol]
    base = symbol.rstrip("ʰʲʷ̩̃ ")
    return _TABLE.get(base)


def merge_marks(phones: list[TimedPhone]) -> list[TimedPhone]:
    """Fold stress and length marks into the sounds they modify."""
    out: list[TimedPhone] = []
    pending_start: float | None = None
    for phone in phones:
        if phone.symbol in _STRESS:
            pending_start = phone.start if pending_start is None else pending_start
            continue
        if phone.symbol in _LENGTH and out:
            last = out[-1]
            out[-1] = TimedPhone(last.symbol, last.start, phone.end)
            continue
        start = phone.start if pending_start is None else pending_start
        pending_start = None
        out.append(TimedPhone(phone.symbol, start, phone.end))
    return out


def keyframes(phones: list[TimedPhone]) -> list[tuple[float, float, Viseme]]:
    """(start, end, shape) spans; unknown sounds and short word gaps hold the last shape."""
    spans: list[tuple[float, float, Viseme]] = []
    current = REST
    for phone in merge_marks(phones):
        if phone.symbol.strip() == "":
            shape = REST if phone.end - phone.start >= _PAUSE_SECONDS else current
        else:
            shape = viseme_for(phone.symbol) or current
        spans.append((phone.start, phone.end, shape))
        current = shape
    return spans


_VOWELS = frozenset(viseme_for(v) for v in ["i", "e", "æ", "a", "ə", "ɔ", "o", "u"])


class WordPhonemizer:
    """espeak-ng through Piper's bridge; one global espeak instance, hence the lock."""

    _lock = threading.Lock()

    def __init__(self, voice: str = "en-us") -> None:
        from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer

        self._voice = voice
        self._espeak = EspeakPhonemizer(ESPEAK_DATA_DIR)

    def phones(self, words: list[TimedWord]) -> list[TimedPhone]:
        """Spread each word's phonemes over its time span, vowels twice as long."""
        out: list[TimedPhone] = []
        for word in words:
            with self._lock:
                sentences = self._espeak.phonemize(self._voice, word.text)
            # Keep sounds only: marks and punctuation carry no time of their own here.
            symbols = [
                s for sentence in sentences for s in sentence if viseme_for(s) not in (None, REST)
            ]
            if not symbols:
                continue
            weights = [2.0 if viseme_for(s) in _VOWELS else 1.0 for s in symbols]
            step = (word.end - word.start) / sum(weights)
            t = word.start
            for symbol, weight in zip(symbols, weights, strict=True):
                out.append(TimedPhone(symbol, t, t + step * weight))
                t += step * weight
        return out
