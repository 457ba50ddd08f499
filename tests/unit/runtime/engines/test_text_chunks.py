"""Text cut for a TTS model at sentence boundaries, never losing or reordering words."""

from __future__ import annotations

from avatar_runtime.engines.text_chunks import chunks, sentences


def test_sentences_end_at_stops_and_keep_their_closing_quotes() -> None:
    text = 'She said "yes." Then left! Did she? 你好。世界！ The end'
    assert sentences(text) == [
        'She said "yes."',
        "Then left!",
        "Did she?",
        "你好。",
        "世界！",
        "The end",
    ]


def test_sentences_are_packed_up_to_the_limit_and_keep_every_word_in_order() -> None:
    text = "One two three. Four five. Six seven eight nine. Ten."
    out = chunks(text, limit=30)
    assert out == ["One two three. Four five.", "Six seven eight nine. Ten."]
    assert " ".join(out).split() == text.split()


def test_a_sentence_over_the_limit_is_cut_at_clauses_then_between_words() -> None:
    text = "first part here, second part here, " + "word " * 20 + "end."
    out = chunks(text, limit=40)
    assert all(len(c) <= 40 for c in out)
    assert out[0] == "first part here, second part here,"
    assert " ".join(out).split() == text.split()


def test_nothing_speakable_makes_no_chunks() -> None:
    assert chunks(" ... !? -- ", limit=50) == []
