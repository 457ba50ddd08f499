"""Decode a user's portrait into the upright RGB array the renderer expects.

Image decoders are a classic attack surface and a tiny file can claim billions of
pixels, so this accepts only PNG, JPEG and WebP (sniffed from the bytes, not the
name), checks the pixel count from the header before decoding anything, and
applies the EXIF orientation phones write instead of rotating the pixels.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import Frame
from avatar_runtime.settings import Limits

MIN_SIDE = 64
"""Smallest width or height accepted: below this there is no face to animate."""

_FORMATS = ("PNG", "JPEG", "WEBP")
_NOT_AN_IMAGE = "not a PNG, JPEG or WebP image"


def sniff_image_format(data: bytes) -> str | None:
    """The Pillow format name of ``data`` if it is PNG, JPEG or WebP, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_portrait(data: bytes, *, limits: Limits, field: str | None = "portrait") -> Frame:
    """Decode ``data`` to an upright ``uint8`` RGB array of shape (height, width, 3).

    Raises ``JobError`` IMAGE_TOO_LARGE (bytes or pixels over ``limits``) or
    IMAGE_UNREADABLE (not PNG/JPEG/WebP, corrupt, truncated, or under 64 px a side).
    """

    def fail(code: ErrorCode, message: str) -> JobError:
        return JobError(code, f"portrait: {message}", field=field)

    if len(data) > limits.max_image_bytes:
        raise fail(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the file is {len(data)} bytes; the limit is {limits.max_image_bytes}",
        )
    fmt = sniff_image_format(data)
    if fmt is None:
        raise fail(ErrorCode.IMAGE_UNREADABLE, _NOT_AN_IMAGE)
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns above ~89 MP; our limit below is the one that counts.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[fmt])  # reads the header only
        except Image.DecompressionBombError:
            raise fail(
                ErrorCode.IMAGE_TOO_LARGE,
                f"the image claims more than {limits.max_image_pixels} pixels",
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise fail(ErrorCode.IMAGE_UNREADABLE, f"{_NOT_AN_IMAGE} (or a corrupt one)") from None
    with image:
        width, height = image.size
        if width * height > limits.max_image_pixels:
            raise fail(
                ErrorCode.IMAGE_TOO_LARGE,
                f"{width}x{height} is {width * height} pixels; the limit is"
                f" {limits.max_image_pixels}",
            )
        if min(width, height) < MIN_SIDE:
            raise fail(
                ErrorCode.IMAGE_UNREADABLE,
                f"{width}x{height} is too small; need at least {MIN_SIDE} px on each side",
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise fail(
                ErrorCode.IMAGE_UNREADABLE, f"the {fmt} image is truncated or corrupt ({exc})"
            ) from None
        return _to_rgb(_upright(image))


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF raises all sorts; the pixels are still fine
        return image


def _to_rgb(image: Image.Image) -> Frame:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit grey PNG
        grey = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if image.mode != "F" else 255.0
        grey8 = np.clip(grey * scale + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        # Transparent backgrounds become white, not whatever colour hides under alpha 0.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.array(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)
