"""Voice samples judged before any model sees them, from real files encoded with PyAV."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs.voice import (
    VOICE_RATE,
    check_name,
    decode_voice,
    is_sample,
    sound_seconds,
)
from avatar_runtime.settings import Limits
from tests.unit.runtime.inputs.test_speech import _encode, _sine

LIMITS = Limits()


def _wav(samples: np.ndarray, rate: int = 16_000) -> bytes:
    return _encode([samples.astype(np.float32)], rate=rate, fmt="wav", codec="pcm_s16le")


def _talk(seconds: float, *, pause: float = 0.0) -> np.ndarray:
    """``seconds`` of sound in half-second bursts, ``pause`` s of silence after each."""
    burst, gap = _sine(0.5, 16_000), np.zeros(int(pause * 16_000), np.float32)
    return np.concatenate([np.concatenate([burst, gap]) for _ in range(int(seconds / 0.5))])


def test_a_good_sample_is_decoded_at_xtts_rate_and_named_by_its_bytes() -> None:
    data = _wav(_talk(5))
    sample = decode_voice(data, limits=LIMITS)
    assert sample.sample_rate == VOICE_RATE == 22_050
    assert sample.duration == pytest.approx(5, abs=0.05)
    assert sample.digest == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (_wav(np.zeros(16_000 * 5)), ErrorCode.VOICE_SILENT),
        (b"RIFF" + bytes(500), ErrorCode.VOICE_UNREADABLE),
        (_wav(_talk(2)), ErrorCode.VOICE_TOO_SHORT),
        # Ten seconds long, but only 2.5 s of it is sound: too little voice to learn from.
        (_wav(_talk(2.5, pause=1.5)), ErrorCode.VOICE_TOO_SHORT),
        (_wav(_talk(61)), ErrorCode.VOICE_TOO_LONG),
    ],
    ids=["silent", "undecodable", "short", "mostly-pauses", "long"],
)
def test_bad_samples_fail_with_their_own_code_on_the_voice_field(
    data: bytes, code: ErrorCode
) -> None:
    with pytest.raises(JobError) as raised:
        decode_voice(data, limits=LIMITS)
    assert raised.value.code == code
    assert raised.value.field == "voice"
    assert not raised.value.retriable


def test_an_oversized_file_is_refused_before_decoding() -> None:
    with pytest.raises(JobError) as raised:
        decode_voice(_wav(_talk(5)), limits=Limits(max_voice_bytes=1000))
    assert raised.value.code == ErrorCode.VOICE_TOO_LONG  # the voice's own code, as documented


def test_sound_is_counted_in_frames_above_the_noise_floor() -> None:
    quiet = _sine(2, 16_000, amp=0.001)  # -60 dBFS: room noise
    assert sound_seconds(np.concatenate([_sine(3, 16_000), quiet]), 16_000) == pytest.approx(3)


def test_a_quiet_recording_counts_as_much_sound_as_a_loud_one() -> None:
    """Speech recorded 30 dB down (peaks near -36 dBFS) is still 4 s of speech."""
    loud = _talk(4, pause=0.5)
    quiet = (loud * 0.03).astype(np.float32)
    assert sound_seconds(quiet, 16_000) == pytest.approx(sound_seconds(loud, 16_000))
    assert sound_seconds(loud, 16_000) == pytest.approx(4, abs=0.05)


def test_urls_and_paths_are_samples_anything_else_a_voice_name() -> None:
    assert is_sample("gs://b/voice.wav")
    assert is_sample("/data/voice.wav")
    assert not is_sample("Claribel Dervla")


@pytest.mark.parametrize(
    "name", ["Claribel\x00Dervla", "Claribel\tDervla", "Ana \ud800", "Ana\x85"]
)
def test_a_voice_name_with_control_characters_names_no_voice(name: str) -> None:
    with pytest.raises(JobError) as excinfo:
        check_name(name, field="inputs.voice")
    assert (excinfo.value.code, excinfo.value.field) == (ErrorCode.VOICE_UNKNOWN, "inputs.voice")
    assert "a voice name cannot hold U+" in excinfo.value.message
    excinfo.value.message.encode()


def test_ordinary_voice_names_pass() -> None:
    for name in ("Claribel Dervla", "Ana Florence", "en_US-amy", "Zoë"):
        check_name(name, field="inputs.voice")
