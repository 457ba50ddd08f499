"""The requested text timed by the ASR's words: the user's spelling, the ASR's clock."""

from __future__ import annotations

import itertools

import pytest

from avatar_runtime.engines.base import TimedWord
from avatar_runtime.pipeline.alignment import align, normal


def heard(*spec: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(t, a, b) for t, a, b in spec]


def test_a_misheard_word_keeps_the_users_spelling_and_the_heard_time() -> None:
    # As the bundled tiny.en heard "Father parked his car far apart" (issue 17).
    asr = heard(("Father", 0.1, 0.5), ("Park", 0.5, 0.8), ("is", 0.8, 0.9), ("far", 1.0, 1.2),
                ("far", 1.2, 1.4), ("apart.", 1.5, 2.0))  # fmt: skip
    words = align("Father parked his car far apart.", asr, duration=2.5)
    assert [w.text for w in words] == ["Father", "parked", "his", "car", "far", "apart."]
    assert (words[0].start, words[0].end) == (0.1, 0.5)
    assert (words[-1].start, words[-1].end) == (1.5, 2.0)
    # "parked his car" said where "Park is far" was heard, in order, inside that span.
    middle = words[1:4]
    assert middle[0].start == 0.5
    assert middle[-1].end <= 1.4
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(words))


@pytest.mark.parametrize(
    ("text", "asr_words"),
    [
        ("Our plans start at $19.99 per month.", ["Our", "plans", "start", "at", "$19", ".99",
                                                   "per", "month."]),
        ("Growth was 12.5% this year.", ["Growth", "was", "12", ".5", "%", "this", "year."]),
        ("Meet me at the café.", ["Meet", "me", "at", "the", "cafe."]),
    ],
)  # fmt: skip
def test_numbers_prices_and_accents_appear_as_typed(text: str, asr_words: list[str]) -> None:
    asr = [TimedWord(w, i * 0.4, i * 0.4 + 0.35) for i, w in enumerate(asr_words)]
    words = align(text, asr, duration=len(asr_words) * 0.4)
    assert [w.text for w in words] == text.split()
    assert words[0].start == 0.0
    assert words[-1].end == pytest.approx(asr[-1].end)


def test_words_the_asr_missed_are_placed_in_the_silence_between_their_neighbours() -> None:
    words = align("one two three", heard(("one", 0.0, 0.3), ("three", 1.0, 1.3)), duration=2.0)
    assert [w.text for w in words] == ["one", "two", "three"]
    assert 0.3 <= words[1].start < words[1].end <= 1.0


def test_with_nothing_heard_the_words_are_spread_over_the_speech() -> None:
    words = align("a longer word", [], duration=3.0)
    assert [w.text for w in words] == ["a", "longer", "word"]
    assert words[0].start == 0.0
    assert words[-1].end == pytest.approx(3.0)
    assert words[1].end - words[1].start > words[0].end - words[0].start  # by length


def test_the_normal_form_folds_case_accents_and_edge_punctuation() -> None:
    assert normal("Café,") == normal("cafe") == "cafe"
    assert normal("$19.99") == "$19.99"


def test_a_word_the_asr_ran_into_its_neighbour_shares_that_neighbours_time() -> None:
    asr = heard(("Far", 0.3, 0.6), ("apart,", 0.6, 1.1), ("father", 1.2, 1.6), ("the", 1.6, 1.8))
    words = align("Far apart, father parked the", asr, duration=2.0)
    assert [w.text for w in words] == ["Far", "apart,", "father", "parked", "the"]
    father, parked = words[2], words[3]
    assert father.start == 1.2
    assert parked.end == pytest.approx(1.6)
    assert father.end - father.start > 0.1
    assert parked.end - parked.start > 0.1
