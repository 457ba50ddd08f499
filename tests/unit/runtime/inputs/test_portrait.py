"""Portrait decoding with real PNG, JPEG and WebP files made by Pillow and OpenCV."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs.portrait import decode_portrait
from avatar_runtime.settings import Limits

LIMITS = Limits()


def _gradient(width: int = 120, height: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 2 % 256, y * 3 % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG signature + IHDR + IEND with no pixel data at all."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _code(data: bytes, limits: Limits = LIMITS) -> ErrorCode:
    with pytest.raises(JobError) as excinfo:
        decode_portrait(data, limits=limits)
    assert excinfo.value.field == "portrait"
    return excinfo.value.code


def test_lossless_round_trips() -> None:
    pixels = _gradient()
    png = _encode(Image.fromarray(pixels), "PNG")
    webp = _encode(Image.fromarray(pixels), "WEBP", lossless=True)
    for data in (png, webp):
        out = decode_portrait(data, limits=LIMITS)
        assert out.dtype == np.uint8
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, pixels)


def test_jpeg_from_opencv_comes_out_rgb() -> None:
    pixels = np.zeros((80, 120, 3), np.uint8)
    pixels[..., 0] = 220  # red, in RGB order
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    assert ok
    out = decode_portrait(encoded.tobytes(), limits=LIMITS)
    assert out.shape == (80, 120, 3)
    assert np.abs(out.astype(int) - pixels).max() < 8


def test_exif_orientation_is_applied() -> None:
    upright = np.zeros((120, 80, 3), np.uint8)
    upright[:20] = (255, 0, 0)  # red band at the top
    # Stored sideways, with EXIF Orientation 6 ("rotate 90° clockwise to view").
    stored = Image.fromarray(upright).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(stored, "JPEG", exif=exif.tobytes(), quality=95)
    out = decode_portrait(data, limits=LIMITS)
    assert out.shape == (120, 80, 3)
    assert out[:10, :, 0].mean() > 200
    assert out[:10, :, 1].mean() < 40
    assert out[-10:, :, 0].mean() < 40


def test_grey_palette_alpha_and_16_bit_become_rgb() -> None:
    rgb = Image.fromarray(_gradient())
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: becomes white
    grey16 = Image.fromarray((np.arange(80 * 120).reshape(80, 120) * 6).astype(np.uint16))
    for image in (rgb.convert("L"), rgb.convert("P"), rgba, grey16):
        out = decode_portrait(_encode(image, "PNG"), limits=LIMITS)
        assert out.shape == (80, 120, 3)
        assert out.dtype == np.uint8
    assert (decode_portrait(_encode(rgba, "PNG"), limits=LIMITS) == 255).all()
    out16 = decode_portrait(_encode(grey16, "PNG"), limits=LIMITS)
    assert out16.max() > 200  # scaled from 16 bits, not clipped to white or black
    assert out16.min() < 10


@pytest.mark.parametrize(
    "data",
    [
        b"hello, I am a text file\n" * 10,
        b"",
        _encode(Image.fromarray(_gradient()), "GIF"),  # a real image, not an accepted format
        _encode(Image.fromarray(_gradient()), "BMP"),
    ],
)
def test_not_a_png_jpeg_or_webp(data: bytes) -> None:
    with pytest.raises(JobError) as excinfo:
        decode_portrait(data, limits=LIMITS)
    assert excinfo.value.code == ErrorCode.IMAGE_UNREADABLE
    assert "not a PNG, JPEG or WebP image" in excinfo.value.message


def test_truncated_files_are_unreadable() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG", "WEBP"):
        data = _encode(Image.fromarray(noise), fmt)
        assert _code(data[: len(data) // 2]) == ErrorCode.IMAGE_UNREADABLE, fmt


def test_tiny_image_is_too_small() -> None:
    with pytest.raises(JobError) as excinfo:
        decode_portrait(_encode(Image.new("RGB", (200, 32)), "PNG"), limits=LIMITS)
    assert excinfo.value.code == ErrorCode.IMAGE_UNREADABLE
    assert "too small" in excinfo.value.message


@pytest.mark.parametrize("side", [8_000, 20_000])
def test_huge_dimensions_are_refused_from_the_header(side: int) -> None:
    # No pixel data at all: had the decoder run, this would be IMAGE_UNREADABLE.
    data = _png_header_only(side, side)
    assert len(data) < 100
    with pytest.raises(JobError) as excinfo:
        decode_portrait(data, limits=LIMITS)
    assert excinfo.value.code == ErrorCode.IMAGE_TOO_LARGE


def test_pixel_limit_is_the_configured_one() -> None:
    data = _encode(Image.new("RGB", (200, 200)), "PNG")
    assert _code(data, Limits(max_image_pixels=199 * 200)) == ErrorCode.IMAGE_TOO_LARGE
    assert decode_portrait(data, limits=Limits(max_image_pixels=200 * 200)).shape == (200, 200, 3)


def test_too_many_bytes() -> None:
    data = _encode(Image.fromarray(_gradient()), "PNG")
    with pytest.raises(JobError) as excinfo:
        decode_portrait(data, limits=Limits(max_image_bytes=len(data) - 1))
    assert excinfo.value.code == ErrorCode.IMAGE_TOO_LARGE
    assert str(len(data)) in excinfo.value.message
