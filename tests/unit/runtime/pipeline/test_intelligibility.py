"""The intelligibility gate compares what was said, not how either side writes it.

The transcripts are the bundled tiny.en's own, heard from Piper speaking the text
(the same outputs, word for word, as the ASR gave in a run of the real pipeline).
"""

from __future__ import annotations

import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.pipeline.intelligibility import check, normalise, score, word_error_rate
from avatar_runtime.settings import QualitySettings

DEFAULTS = QualitySettings()


def verdict(reference: str, heard: str, *, language: str = "en") -> str:
    """'pass', 'retry' (IntelligibilityLow, retriable) or 'fail' (not retriable)."""
    try:
        check(
            reference,
            heard,
            language=language,
            max_wer=DEFAULTS.max_wer,
            max_cer=DEFAULTS.max_cer,
            retriable_cer=DEFAULTS.retriable_cer,
        )
    except JobError as error:
        if error.code is not ErrorCode.INTELLIGIBILITY_LOW:
            raise
        return "retry" if error.retriable else "fail"
    return "pass"


def passes(reference: str, heard: str, *, language: str = "en") -> bool:
    return verdict(reference, heard, language=language) == "pass"


def test_case_and_punctuation_do_not_count() -> None:
    assert word_error_rate("Hello, world! It's me.", "hello world it's me") == 0.0


def test_one_wrong_word_in_four() -> None:
    assert word_error_rate("my lips follow words", "my lets follow words") == pytest.approx(0.25)


def test_nothing_heard_is_a_complete_miss() -> None:
    assert word_error_rate("hello", "") == 1.0


@pytest.mark.parametrize(
    ("written", "heard"),
    [
        ("Our plans start at $19.99 per month.", "our plans start at $19 .99 per month"),
        ("12.5%", "12 .5 %"),
        ("12.5%", "12 .5 percent."),
        ("$3.40", "$3 .40."),
        ("About 1,500 people came.", "About 1 ,500 people came."),
        ("It's late.", "it is late"),
        ("The colour of the sky is grey.", "The color of the sky is gray."),
        ("Dr. Smith", "Doctor Smith"),
        ("café", "Cafe."),
        ("The fourth of July, 1776.", "The 4th of July 1776."),
    ],
)
def test_the_same_words_written_differently_are_the_same(written: str, heard: str) -> None:
    """Whisper's word timings split numbers ("$19" ".99"); both sides are normalised the
    way ASR evaluation normalises them."""
    assert normalise(written, language="en") == normalise(heard, language="en")
    assert score(written, heard, language="en").wer == 0.0


@pytest.mark.parametrize(
    ("text", "heard"),
    [
        ("Our plans start at $19.99 per month.", "Our plan started $19 .99 per month."),
        ("The rate is 12.5%.", "The rate is 12 .5%."),
        ("It costs $3.40.", "It cost dollar 3 .40."),
        ("$3.40", "dollar 3 .40."),
        ("We met at the café.", "We met at the cafe."),
        ("The meeting is on March 3rd, 2024.", "The meeting is on March 3rd, 2024."),
        ("It's 10:30 a.m. on 12/05/2024.", "It's 10 .30 AM on 12 .05 slash 2024."),
        ("Dr. Smith lives at 221B Baker Street.", "Doctor, sniff lives at 221B Baker Street."),
        # Short sentences tiny.en mishears: too few words to absorb the slips.
        ("Far apart, father parked the car.", "For a park, Father Park the Corps."),
        ("Far apart, father parked the car.", "Power Park, Father Park the car."),
        ("Far apart, father parked the car.", "Far apart, farther apart the car."),
        ("Father parked his car far apart.", "Father Park is far far apart"),
        ("Father parked his car far apart.", "Father Park is car for our park."),
        ("Yes.", "Yes."),
    ],
)
def test_correct_speech_misheard_by_a_small_model_passes(text: str, heard: str) -> None:
    assert passes(text, heard)


@pytest.mark.parametrize(
    ("text", "heard"),
    [
        # A different sentence.
        ("Our plans start at $19.99 per month.", "The quick brown fox jumps over the lazy dog."),
        ("Far apart, father parked the car.", "Father parked his car far apart."),
        ("The colour of the sky is grey.", "Hello there."),
        # Noise: Whisper's favourite hallucinations.
        ("Far apart, father parked the car.", "you"),
        ("Far apart, father parked the car.", "Thank you."),
        # Silence.
        ("Hello there.", ""),
        ("Hi.", "Thank you."),  # short, but nothing of it heard
        ("café", "   "),
        # Another language, heard by an English model.
        ("We met at the café.", "Nos vemos en la cafetería mañana."),
    ],
)
def test_garbage_fails_for_good(text: str, heard: str) -> None:
    assert verdict(text, heard) == "fail"


def test_a_worse_mishearing_of_a_short_sentence_gets_another_try() -> None:
    """One of eleven renditions of this sentence, as tiny.en heard it: 11 letters of 26
    off, past the limit, yet far closer than any other sentence."""
    assert verdict("Far apart, father parked the car.", "Power Park, Father Park the Corps.") == (
        "retry"
    )


@pytest.mark.parametrize(("text", "heard"), [("café", "If a."), ("café", "F a."), ("Yes.", "you")])
def test_a_short_text_misheard_gets_another_try(text: str, heard: str) -> None:
    """Four of ten renditions of "café" alone, as tiny.en heard them: too few letters to
    tell a mishearing from noise, and the next rendition is likely heard right."""
    assert verdict(text, heard) == "retry"


def test_silence_fails_for_good_however_short_the_text() -> None:
    assert verdict("café", "") == "fail"


def test_speech_that_lost_half_its_words_gets_another_try() -> None:
    """A TTS that skips (XTTS-v2 does now and then) may not skip the next time."""
    assert verdict("Our plans start at $19.99 per month.", "Our plans start.") == "retry"


def test_a_wrong_price_is_heard_as_wrong() -> None:
    """Normalising does not blur numbers away: a different price is different letters."""
    assert score("It costs $3.40.", "It costs $8.90.", language="en").char_edits == 2


def test_accents_fold_in_every_language_and_english_rules_stay_english() -> None:
    assert passes("Él está en el café.", "El esta en el cafe", language="es")
    assert passes("Ça coûte dix euros.", "ca coute dix euros", language="fr-FR")
    # English spellings are not applied to Spanish: "colour" stays "colour".
    assert normalise("colour", language="es") == "colour"
    assert normalise("colour", language="en-GB") == "color"


def test_text_without_spaces_is_judged_by_its_characters() -> None:
    """Chinese has no spaces between words: one word of four characters wrong in 12."""
    assert passes("我们的计划每月十九美元起", "我们的计化每月十九美元起", language="zh")
    assert verdict("我们的计划每月十九美元起", "今天天气很好", language="zh") == "fail"


def test_over_the_limits_fails_with_a_stable_code() -> None:
    with pytest.raises(JobError) as caught:
        check(
            "the quick brown fox",
            "a slow green dog",
            language="en",
            max_wer=0.3,
            max_cer=0.4,
            retriable_cer=0.6,
        )
    assert caught.value.code is ErrorCode.INTELLIGIBILITY_LOW
    assert caught.value.retriable is False
    assert "1.00" in caught.value.message
    assert "a slow green dog" in caught.value.message


def test_limits_of_zero_want_the_exact_words() -> None:
    with pytest.raises(JobError):
        check(
            "Zorblax fnargle quimpet.",
            "Zorblox, Fnargel, Quimpit.",
            language="en",
            max_wer=0,
            max_cer=0,
            retriable_cer=0,
        )
    exact = check(
        "Hello there.", "hello there", language="en", max_wer=0, max_cer=0, retriable_cer=0
    )
    assert exact == 0.0


def test_one_slip_is_allowed_however_short_the_text() -> None:
    assert passes("Yes.", "Yep.")  # 1 edit of 3 letters: over 0.4, but one slip
    assert verdict("Yes.", "Yeah.") == "retry"  # 2 edits of 3, yet something heard
