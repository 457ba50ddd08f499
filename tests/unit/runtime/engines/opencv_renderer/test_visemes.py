"""Phonemes to mouth shapes: the rules that make lips follow words, not loudness."""

from avatar_runtime.engines.base import TimedPhone, TimedWord
from avatar_runtime.engines.opencv_renderer import visemes


def phones(*spec: tuple[str, float, float]) -> list[TimedPhone]:
    return [TimedPhone(s, a, b) for s, a, b in spec]


def shape(symbol: str) -> visemes.Viseme:
    found = visemes.viseme_for(symbol)
    assert found is not None, symbol
    return found


def test_lips_close_for_p_b_m_and_open_for_a() -> None:
    assert shape("m").opening == 0.0
    assert shape("b").opening == 0.0
    assert shape("a").opening > 0.8
    assert shape("u").spread < 0 < shape("i").spread


def test_stress_and_length_marks_fold_into_their_vowels() -> None:
    merged = visemes.merge_marks(
        phones(("w", 0.0, 0.1), ("ˈ", 0.1, 0.15), ("ɜ", 0.15, 0.2), ("ː", 0.2, 0.3))
    )
    assert [(p.symbol, p.start, p.end) for p in merged] == [("w", 0.0, 0.1), ("ɜ", 0.1, 0.3)]


def test_short_word_gaps_hold_the_shape_long_ones_rest() -> None:
    spans = visemes.keyframes(
        phones(("a", 0.0, 0.2), (" ", 0.2, 0.25), ("a", 0.25, 0.4), (" ", 0.4, 0.8))
    )
    assert spans[1][2] == visemes.viseme_for("a")  # 50 ms between words: mouth stays
    assert spans[3][2] == visemes.REST  # 400 ms pause: mouth rests


def test_punctuation_is_a_pause() -> None:
    spans = visemes.keyframes(phones(("a", 0.0, 0.2), (".", 0.2, 0.5)))
    assert spans[-1][2] == visemes.REST


def test_words_from_a_recording_get_phonemes_inside_their_time() -> None:
    words = [TimedWord("mama", 1.0, 1.5), TimedWord("see", 2.0, 2.4)]
    out = visemes.WordPhonemizer().phones(words)
    assert out[0].symbol == "m"
    assert out[0].start == 1.0
    assert all(1.0 <= p.start < p.end <= 1.5 + 1e-9 for p in out if p.start < 1.9)
    assert any(p.symbol.startswith("i") for p in out if p.start >= 2.0)
