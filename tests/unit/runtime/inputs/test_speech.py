"""Text cleaning, and audio decoding of real WAV/MP3/FLAC files encoded here with PyAV."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt
import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs.speech import check_text, clean_text, decode_audio
from avatar_runtime.settings import Limits

LIMITS = Limits()
RATE = 16_000


def _sine(
    seconds: float, rate: int, *, freq: float = 440.0, amp: float = 0.5
) -> npt.NDArray[np.float32]:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _encode(channels: list[npt.NDArray[np.float32]], *, rate: int, fmt: str, codec: str) -> bytes:
    """Encode planar float channels to ``fmt`` (PyAV converts to the codec's sample format)."""
    layout = "mono" if len(channels) == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(np.stack(channels), format="fltp", layout=layout)
        frame.rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def _wav(seconds: float = 1.0, *, rate: int = 44_100, amp: float = 0.5) -> bytes:
    return _encode([_sine(seconds, rate, amp=amp)], rate=rate, fmt="wav", codec="pcm_s16le")


def _error(data: bytes, limits: Limits = LIMITS) -> JobError:
    with pytest.raises(JobError) as excinfo:
        decode_audio(data, sample_rate=RATE, limits=limits)
    assert excinfo.value.field == "audio"
    return excinfo.value


# -- text ---------------------------------------------------------------------------------


def test_clean_text_normalises() -> None:
    raw = "  Cafe\u0301\tis\n\n open\u200b\u202e\x07 \u00a0now!  "
    assert clean_text(raw, limits=LIMITS) == "Café is open now!"
    assert clean_text("می\u200cخواهم", limits=LIMITS) == "می\u200cخواهم"  # ZWNJ is spelling


@pytest.mark.parametrize("text", ["", "   \n\t ", "?!... --", "\x00\x01", "\u200b"])
def test_nothing_to_speak(text: str) -> None:
    with pytest.raises(JobError) as excinfo:
        clean_text(text, limits=LIMITS)
    assert excinfo.value.code == ErrorCode.TEXT_EMPTY
    assert excinfo.value.field == "text"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("Hi \ud800 there", "U+D800 (a lone UTF-16 surrogate) at character 4"),
        ("Hi \udfff", "U+DFFF (a lone UTF-16 surrogate) at character 4"),
        ("\ufeffHi\ufffe", "U+FFFE (a Unicode non-character) at character 4"),
        ("Hi \uffff", "U+FFFF (a Unicode non-character)"),
        ("Hi \ufdd0", "U+FDD0 (a Unicode non-character)"),
        ("Hi \U0010ffff", "U+10FFFF (a Unicode non-character)"),
    ],
)
def test_broken_text_is_refused_not_spoken_around(text: str, said: str) -> None:
    """Cleaning would silently drop these; the user should learn their text broke on the way."""
    with pytest.raises(JobError) as checked:
        check_text(text, field="inputs.text")  # at admission
    with pytest.raises(JobError) as cleaned:
        clean_text(text, limits=LIMITS, field="inputs.text")  # in the pipeline (the CLI's way)
    for error in (checked.value, cleaned.value):
        assert (error.code, error.field) == (ErrorCode.TEXT_INVALID, "inputs.text")
        assert said in error.message
        error.message.encode()  # the message itself is valid text


def test_control_characters_in_text_are_cleaned_not_refused() -> None:
    check_text("Line one.\n\tLine two.\x00\x1b", field="inputs.text")
    assert clean_text("Line one.\n\tLine two.\x00", limits=LIMITS) == "Line one. Line two."


def test_text_too_long_gives_both_numbers() -> None:
    limits = Limits(max_text_chars=10)
    assert clean_text("0123456789", limits=limits) == "0123456789"
    assert clean_text("  0123    6789  ", limits=limits) == "0123 6789"  # counted after cleaning
    with pytest.raises(JobError) as excinfo:
        clean_text("0123456789A", limits=limits)
    assert excinfo.value.code == ErrorCode.TEXT_TOO_LONG
    assert "11" in excinfo.value.message
    assert "10" in excinfo.value.message


# -- audio --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "codec", "tolerance"),
    [("wav", "pcm_s16le", 0.005), ("flac", "flac", 0.005), ("mp3", "libmp3lame", 0.06)],
)
def test_decodes_and_resamples(fmt: str, codec: str, tolerance: float) -> None:
    data = _encode([_sine(1.0, 44_100)], rate=44_100, fmt=fmt, codec=codec)
    audio = decode_audio(data, sample_rate=RATE, limits=LIMITS)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert abs(len(audio) / RATE - 1.0) <= tolerance
    assert 0.4 < float(np.abs(audio).max()) <= 1.0
    # Still a 440 Hz tone after resampling.
    spectrum = np.abs(np.fft.rfft(audio[: RATE // 2]))
    assert abs(np.argmax(spectrum) * RATE / (RATE // 2) - 440) < 5


def test_stereo_is_downmixed() -> None:
    left = _sine(1.0, 48_000, amp=0.8)
    data = _encode([left, left], rate=48_000, fmt="flac", codec="flac")
    audio = decode_audio(data, sample_rate=RATE, limits=LIMITS)
    assert audio.ndim == 1
    assert abs(len(audio) - RATE) <= 2
    assert float(np.abs(audio).max()) > 0.3


def test_too_long_audio() -> None:
    error = _error(_wav(1.0), Limits(max_audio_seconds=0.5))
    assert error.code == ErrorCode.AUDIO_TOO_LONG
    assert "0.5 s" in error.message


def test_too_many_bytes() -> None:
    data = _wav(0.2)
    assert _error(data, Limits(max_audio_bytes=len(data) - 1)).code == ErrorCode.DOWNLOAD_TOO_LARGE


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"definitely not audio " * 100,
        b"#EXTM3U\n#EXTINF:1,\nhttp://169.254.169.254/x.wav\n",  # a playlist: never opened
        b"RIFF\x24\x00\x00\x00WAVEfmt garbage garbage garbage",  # a broken WAV header
        _wav(0.5)[:44],  # a WAV header with no samples
    ],
)
def test_unreadable_audio(data: bytes) -> None:
    assert _error(data).code == ErrorCode.AUDIO_UNREADABLE


def test_video_without_audio_is_unreadable() -> None:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    error = _error(buffer.getvalue())
    assert error.code == ErrorCode.AUDIO_UNREADABLE
    assert "no audio stream" in error.message


def test_silence() -> None:
    assert _error(_wav(0.5, amp=0.0)).code == ErrorCode.AUDIO_SILENT
    assert _error(_wav(0.5, amp=0.0002)).code == ErrorCode.AUDIO_SILENT
    assert decode_audio(_wav(0.5, amp=0.01), sample_rate=RATE, limits=LIMITS).size > 0
