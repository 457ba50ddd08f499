"""Did the speech say what was asked? Word error rate of the transcript vs. the text.

A TTS engine can mumble, skip or hallucinate (XTTS-v2 does on short or odd
input); a video with the wrong words is worse than a failed job, so text jobs
whose transcript strays too far fail with IntelligibilityLow.
"""

from __future__ import annotations

import jiwer

from avatar_runtime.api.errors import ErrorCode, JobError

_NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.SubstituteRegexes({r"[\u2019`]": "'", r"[-\u2013\u2014]": " "}),
        jiwer.RemovePunctuation(),  # type: ignore[no-untyped-call]
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def word_error_rate(reference: str, heard: str) -> float:
    """WER after case and punctuation are set aside; 1.0 when nothing was heard."""
    if not heard.strip():
        return 1.0
    return float(
        jiwer.wer(reference, heard, reference_transform=_NORMALISE, hypothesis_transform=_NORMALISE)
    )


def check(reference: str, heard: str, *, max_wer: float) -> float:
    """The WER, or IntelligibilityLow when it is over ``max_wer``."""
    wer = word_error_rate(reference, heard)
    if wer > max_wer:
        raise JobError(
            ErrorCode.INTELLIGIBILITY_LOW,
            f"The speech does not match the text: word error rate {wer:.2f} is over the"
            f" limit {max_wer:.2f} (heard: {heard[:200]!r}).",
            retriable=False,
        )
    return wer
