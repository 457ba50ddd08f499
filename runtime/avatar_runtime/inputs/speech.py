"""Validate what the avatar will say: text to synthesise, or a recording to decode.

Text and recordings come straight from users. Text is normalised so the TTS and
the intelligibility check see the same characters; recordings are decoded with
FFmpeg (through PyAV) from a short list of audio containers, resampled to the
engines' rate, and cut off as soon as they pass the length limit, so a ten-hour
file costs no more than the limit to refuse.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterator

import av
import av.error
import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import AudioArray
from avatar_runtime.inputs import characters
from avatar_runtime.settings import Limits

SILENCE_PEAK = 1e-3
"""Peak amplitude below which a recording counts as silent (-60 dBFS)."""

_KEEP_FORMAT_CHARS = frozenset({"\u200c", "\u200d"})  # ZWNJ/ZWJ change spelling in some scripts
_AUDIO_FORMATS = "WAV, MP3, FLAC, Ogg, M4A/MP4, WebM/Matroska or AAC"


def check_text(text: str, *, field: str | None = "text") -> None:
    """Refuse text that holds code points which are no characters, with TEXT_INVALID.

    A lone UTF-16 surrogate (``"\\ud800"`` in JSON) or a non-character (U+FFFE, the
    mark of text decoded in the wrong byte order) means the text broke before it
    got here: speaking around it would say something other than what was meant, and
    a surrogate cannot even be encoded to hash or log the request. A server checks
    this at admission; ``clean_text`` checks it again.
    """
    bad = characters.unusable(text, controls=False)
    if bad is not None:
        raise JobError(
            ErrorCode.TEXT_INVALID,
            f"text holds {bad}, which is not a character; send the text as valid UTF-8",
            field=field,
        )


def clean_text(text: str, *, limits: Limits, field: str | None = "text") -> str:
    """Return ``text`` NFC-normalised, without control characters, whitespace collapsed.

    Raises ``JobError`` TEXT_INVALID (``check_text``), TEXT_EMPTY (nothing
    speakable: no letter or digit) or TEXT_TOO_LONG (more than
    ``limits.max_text_chars`` after cleaning).
    """
    check_text(text, field=field)
    normal = unicodedata.normalize("NFC", text)
    kept = []
    for char in normal:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char)[0] != "C" or char in _KEEP_FORMAT_CHARS:
            kept.append(char)
    cleaned = " ".join("".join(kept).split())
    if not any(unicodedata.category(char)[0] in "LN" for char in cleaned):
        raise JobError(
            ErrorCode.TEXT_EMPTY,
            "text has nothing to speak (it is empty, blank or only punctuation)",
            field=field,
        )
    if len(cleaned) > limits.max_text_chars:
        raise JobError(
            ErrorCode.TEXT_TOO_LONG,
            f"text is {len(cleaned)} characters; the limit is {limits.max_text_chars}",
            field=field,
        )
    return cleaned


def sniff_audio_format(data: bytes) -> str | None:
    """The FFmpeg demuxer for ``data`` if it is an accepted audio container, else None.

    FFmpeg can probe hundreds of formats, some of which (playlists, concat
    scripts) open further files or URLs; naming the demuxer ourselves keeps
    FFmpeg to plain media containers.
    """
    head = data[:12]
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mov"  # mp4, m4a, mov
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"  # also webm
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0b11
        return "mp3" if layer else "aac"  # MPEG audio frame vs. ADTS (layer bits 00)
    return None


def decode_audio(
    data: bytes,
    *,
    sample_rate: int,
    limits: Limits,
    field: str | None = "audio",
    what: str = "audio",
) -> AudioArray:
    """Decode a recording to mono ``float32`` samples in [-1, 1] at ``sample_rate``.

    Raises ``JobError`` DOWNLOAD_TOO_LARGE (more than ``limits.max_audio_bytes``),
    AUDIO_UNREADABLE (not an accepted container, no audio stream, corrupt, or no
    samples), AUDIO_TOO_LONG (over ``limits.max_audio_seconds``; decoding stops
    there) or AUDIO_SILENT (peak below -60 dBFS).
    """

    def fail(code: ErrorCode, message: str) -> JobError:
        return JobError(code, f"{what}: {message}", field=field)

    if len(data) > limits.max_audio_bytes:
        raise fail(
            ErrorCode.DOWNLOAD_TOO_LARGE,
            f"the file is {len(data)} bytes; the limit is {limits.max_audio_bytes}",
        )
    fmt = sniff_audio_format(data)
    if fmt is None:
        raise fail(ErrorCode.AUDIO_UNREADABLE, f"not a {_AUDIO_FORMATS} file")
    max_samples = int(limits.max_audio_seconds * sample_rate)
    chunks: list[AudioArray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format=fmt) as container:
            if not container.streams.audio:
                raise fail(ErrorCode.AUDIO_UNREADABLE, "the file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in _frames_then_flush(container, stream):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    total += samples.size
                    if total > max_samples:
                        raise fail(
                            ErrorCode.AUDIO_TOO_LONG,
                            f"longer than the limit of {limits.max_audio_seconds:g} s",
                        )
                    chunks.append(samples)
    except JobError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, EOFError, RuntimeError) as exc:
        raise fail(
            ErrorCode.AUDIO_UNREADABLE, f"cannot decode the {fmt} file: {_first_line(exc)}"
        ) from None
    if total == 0:
        raise fail(ErrorCode.AUDIO_UNREADABLE, "the file contains no audio samples")
    audio = np.nan_to_num(np.concatenate(chunks), nan=0.0, posinf=1.0, neginf=-1.0)
    np.clip(audio, -1.0, 1.0, out=audio)
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise fail(ErrorCode.AUDIO_SILENT, "the recording is silent")
    return audio


def _frames_then_flush(
    container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[av.AudioFrame | None]:
    """Decoded frames one at a time, then None (which flushes the resampler)."""
    yield from container.decode(stream)
    yield None


def _first_line(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)  # FFmpeg errors: the reason without errno noise
    text = (strerror if isinstance(strerror, str) and strerror else str(exc)).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
