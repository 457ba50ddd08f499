"""The voice to clone: a named voice, or a sample fetched, decoded and checked.

A sample is judged before any model sees it, so a bad one fails the job at
once with a code of its own (the slot is free again in milliseconds) rather
than as a model error halfway through: it must decode, stay within the size
and length limits, not be silent, and hold enough sound to learn a voice from.
"""

from __future__ import annotations

import hashlib

import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import AudioArray, Voice, VoiceSample
from avatar_runtime.inputs import characters
from avatar_runtime.inputs.fetching import fetch_bytes
from avatar_runtime.inputs.speech import decode_audio
from avatar_runtime.settings import FetchSettings, Limits

VOICE_RATE = 22_050
"""XTTS-v2 conditions on 22.05 kHz audio; decoding straight to it saves a resample."""

SOUND_BELOW_PEAK = 10 ** (-35 / 20)
"""A 20 ms frame within 35 dB of the loudest counts as sound, not room noise or a pause:
relative, so a quietly recorded sample is judged as fairly as a loud one."""
SOUND_FLOOR = 10 ** (-60 / 20)

# decode_audio's codes, as a voice sample's: the user fixes a different field and file.
_AS_VOICE = {
    ErrorCode.AUDIO_UNREADABLE: ErrorCode.VOICE_UNREADABLE,
    ErrorCode.AUDIO_TOO_LONG: ErrorCode.VOICE_TOO_LONG,
    ErrorCode.DOWNLOAD_TOO_LARGE: ErrorCode.VOICE_TOO_LONG,  # "over 60 s (or 10 MiB)"
    ErrorCode.AUDIO_SILENT: ErrorCode.VOICE_SILENT,
}


def is_sample(voice: str) -> bool:
    """A URL or a path names a sample; anything else is the name of a voice."""
    return "://" in voice or "/" in voice


def check_name(voice: str, *, field: str | None = "voice") -> None:
    """Refuse a voice name no engine can have (control characters, surrogates): VOICE_UNKNOWN.

    Whether an engine has the voice is for the engine to say; a name that cannot
    even be encoded or printed is refused at once, before it reaches a log or a hash.
    """
    bad = characters.unusable(voice, controls=True)
    if bad is not None:
        raise JobError(ErrorCode.VOICE_UNKNOWN, f"a voice name cannot hold {bad}", field=field)


def resolve(voice: str | None, *, fetch: FetchSettings, limits: Limits) -> Voice | None:
    if voice is None or not is_sample(voice):
        return voice
    data = fetch_bytes(
        voice,
        settings=fetch,
        max_bytes=limits.max_voice_bytes,
        what="voice sample",
        field="voice",
        too_large=ErrorCode.VOICE_TOO_LONG,  # as decode_voice says it of bytes in hand
    )
    return decode_voice(data, limits=limits)


def decode_voice(data: bytes, *, limits: Limits) -> VoiceSample:
    voice_limits = limits.model_copy(
        update={
            "max_audio_bytes": limits.max_voice_bytes,
            "max_audio_seconds": limits.max_voice_seconds,
        }
    )
    try:
        samples = decode_audio(
            data, sample_rate=VOICE_RATE, limits=voice_limits, field="voice", what="voice sample"
        )
    except JobError as error:
        code = _AS_VOICE.get(error.code, error.code)
        raise JobError(code, error.message, field="voice") from None
    sound = sound_seconds(samples, VOICE_RATE)
    if sound < limits.min_voice_seconds:
        raise JobError(
            ErrorCode.VOICE_TOO_SHORT,
            f"voice sample: {sound:.1f} s of sound; at least {limits.min_voice_seconds:g} s of"
            " speech is needed to clone a voice",
            field="voice",
        )
    return VoiceSample(samples, VOICE_RATE, hashlib.sha256(data).hexdigest())


def sound_seconds(samples: AudioArray, sample_rate: int) -> float:
    """Seconds of the recording above the sound threshold, in 20 ms frames."""
    frame = sample_rate // 50
    count = len(samples) // frame
    if count == 0:
        return 0.0
    frames = samples[: count * frame].reshape(count, frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    threshold = max(SOUND_FLOOR, float(rms.max()) * SOUND_BELOW_PEAK)
    return float(np.count_nonzero(rms > threshold)) / 50
