"""The intelligibility gate compares words, not punctuation or case."""

import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.pipeline.intelligibility import check, word_error_rate


def test_case_and_punctuation_do_not_count() -> None:
    assert word_error_rate("Hello, world! It's me.", "hello world it's me") == 0.0


def test_one_wrong_word_in_four() -> None:
    assert word_error_rate("my lips follow words", "my lets follow words") == pytest.approx(0.25)


def test_nothing_heard_is_a_complete_miss() -> None:
    assert word_error_rate("hello", "") == 1.0


def test_over_the_limit_fails_with_a_stable_code() -> None:
    with pytest.raises(JobError) as caught:
        check("the quick brown fox", "a slow green dog", max_wer=0.3)
    assert caught.value.code is ErrorCode.INTELLIGIBILITY_LOW
    assert caught.value.retriable is False
    assert "1.00" in caught.value.message
