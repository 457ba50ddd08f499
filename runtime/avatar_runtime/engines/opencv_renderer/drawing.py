"""Draw one frame: open the mouth, close the eyes, move the head.

Only small regions around the mouth and the eyes are warped per frame, with
``cv2.remap`` on grids prepared once per job, and one affine warp moves the whole
head; that keeps the renderer well above 150 frames/s at 512x512 on one core.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from avatar_runtime.engines.base import Frame
from avatar_runtime.engines.opencv_renderer.face import Eye, FaceGeometry

FloatArray = npt.NDArray[np.float32]

# Inside of the mouth, teeth and tongue (RGB).
_CAVITY = np.array([74, 32, 30], np.float32)
_CAVITY_DEEP = np.array([40, 14, 14], np.float32)
_TEETH = np.array([222, 214, 200], np.float32)
_TONGUE = np.array([138, 62, 64], np.float32)


@dataclass(frozen=True)
class _Region:
    """A rectangle of the frame with coordinate grids relative to an anchor point."""

    x0: int
    y0: int
    x1: int
    y1: int
    dx: FloatArray  # x - anchor_x for every pixel of the region
    dy: FloatArray

    @classmethod
    def around(
        cls, *, size: int, cx: float, cy: float, left: float, right: float, up: float, down: float
    ) -> _Region:
        x0, x1 = max(0, int(cx - left)), min(size, int(np.ceil(cx + right)))
        y0, y1 = max(0, int(cy - up)), min(size, int(np.ceil(cy + down)))
        xs = np.arange(x0, x1, dtype=np.float32) - cx
        ys = np.arange(y0, y1, dtype=np.float32) - cy
        dx, dy = np.meshgrid(xs, ys)
        return cls(x0, y0, x1, y1, dx, dy)


class FaceAnimator:
    """Everything per-job that the drawing loop needs, prepared once."""

    def __init__(self, portrait: Frame, face: FaceGeometry) -> None:
        self.portrait = portrait
        self.size = portrait.shape[0]
        self.face = face
        self._half_width = max(4.0, face.mouth_width * 0.5)
        hw = self._half_width
        chin_below = max(hw * 1.2, face.chin_y - face.mouth_y)
        self._mouth = _Region.around(
            size=self.size,
            cx=face.mouth_x,
            cy=face.mouth_y,
            left=hw * 2.0,
            right=hw * 2.0,
            up=hw * 1.1,
            down=chin_below + hw * 0.4,
        )
        self._mouth_depth = chin_below + hw * 0.4
        self._eyes = [self._eye_region(eye) for eye in (face.left_eye, face.right_eye)]
        self._pivot = (
            face.x + face.width / 2,
            min(self.size - 1.0, face.chin_y + face.height * 0.6),
        )

    def _eye_region(self, eye: Eye) -> tuple[_Region, FloatArray]:
        """The region around one eye and the colour of its upper lid, per column.

        The cascade's box is about twice the visible eye: the opening is taken as
        an ellipse of 0.72 x 0.3 of its radius.
        """
        r = eye.radius
        region = _Region.around(
            size=self.size, cx=eye.x, cy=eye.y, left=r, right=r, up=r * 0.6, down=r * 0.5
        )
        row = int(np.clip(eye.y - r * 0.55, 0, self.size - 1))
        skin = self.portrait[row, region.x0 : region.x1].astype(np.float32).reshape(1, -1, 3)
        kernel = max(3, int(r * 0.5) | 1)
        lid = np.asarray(cv2.GaussianBlur(skin, (kernel, 1), 0), np.float32).reshape(-1, 3)
        return region, lid

    def draw(
        self,
        *,
        opening: float,
        spread: float,
        blink: float,
        angle: float,
        dx: float,
        dy: float,
        scale: float,
    ) -> Frame:
        frame = self.portrait.copy()
        if opening > 0.01 or abs(spread) > 0.01:
            self._draw_mouth(frame, opening, spread)
        if blink > 0.02:
            for region, lid in self._eyes:
                self._draw_lid(frame, region, lid, blink)
        matrix = cv2.getRotationMatrix2D(self._pivot, angle, scale)
        matrix[0, 2] += dx * self.size
        matrix[1, 2] += dy * self.size
        moved = cv2.warpAffine(
            frame,
            matrix,
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        )
        return np.asarray(moved, np.uint8)

    def _draw_mouth(self, frame: Frame, opening: float, spread: float) -> None:
        """Part the lips in a lens shape, drop the jaw, and paint the mouth's inside."""
        region, hw = self._mouth, self._half_width
        dx, dy = region.dx, region.dy
        # Lips: wider for /i/, narrower and pushed together for /o/ /u/.
        width = hw * (1.0 + 0.3 * spread)
        gap = opening**0.8 * hw * 0.72
        lower, upper = gap * 0.78, gap * 0.22
        # Horizontal profile of the opening: almond-shaped, closing before the lip corners.
        lens = np.clip(1.0 - (dx / (width * 0.88)) ** 2, 0.0, 1.0) ** 0.75
        # Below the lips the whole jaw drops, widening and fading towards the chin.
        depth = np.clip(dy / self._mouth_depth, 0.0, 1.0)
        jaw_width = width * (1.0 + 0.9 * depth)
        jaw = np.sqrt(np.clip(1.0 - (dx / jaw_width) ** 2, 0.0, 1.0))
        fade_down = 0.5 * (1.0 + np.cos(np.pi * depth))
        fade_up = np.clip(1.0 + dy / (hw * 1.1), 0.0, 1.0) ** 2
        shift = np.where(dy >= 0, lower * jaw * fade_down, -upper * lens * fade_up)
        # Spread pulls pixels towards/away from the centre, strongest on the lips.
        pull = np.exp(-((dx / (hw * 1.6)) ** 2) - (dy / (hw * 0.7)) ** 2)
        map_x = (dx / (1.0 + 0.3 * spread * pull) + self.face.mouth_x).astype(np.float32)
        map_y = (dy - shift + self.face.mouth_y).astype(np.float32)
        roi = frame[region.y0 : region.y1, region.x0 : region.x1]
        warped = cv2.remap(
            self.portrait, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        if gap < 0.5:
            roi[:] = warped
            return
        # Inside of the mouth: where the lens between the parted lips is.
        top, bottom = -upper * lens, lower * lens
        inside = ((dy > top) & (dy < bottom) & (lens > 0)).astype(np.float32)
        alpha = cv2.GaussianBlur(inside, (5, 5), 0)[..., None]
        height = np.maximum(bottom - top, 1e-3)
        rel = np.clip((dy - top) / height, 0.0, 1.0)[..., None]  # 0 at the upper lip
        # Darkest in the middle of the opening, lit near the lips.
        depth = (1.0 - np.abs(2.0 * rel - 1.0)) * lens[..., None]
        colour = _CAVITY + (_CAVITY_DEEP - _CAVITY) * depth
        # Upper teeth: a soft, shaded band under the upper lip, fading at the corners.
        band = min(0.3, hw * 0.14 / max(gap, 1.0))
        teeth = np.clip(1.0 - rel / band, 0.0, 1.0) ** 0.5 * np.sqrt(lens[..., None]) * 0.8
        teeth_colour = _TEETH * (0.75 + 0.25 * np.clip(1.0 - rel / band, 0.0, 1.0))
        colour = colour + (teeth_colour - colour) * teeth
        tongue = np.clip((rel - 0.68) * 3.0, 0, 1) * float(min(1.0, opening * 1.4))
        colour = colour + (_TONGUE - colour) * tongue * 0.7
        roi[:] = (warped + (colour - warped) * alpha).astype(np.uint8)

    def _draw_lid(self, frame: Frame, region: _Region, lid: FloatArray, blink: float) -> None:
        """Lower a lid of the portrait's own skin tone over the eye, lashes at its edge."""
        r = -float(region.dy.min()) / 0.6
        rx, ry = r * 0.75, r * 0.34
        profile = np.sqrt(np.clip(1.0 - (region.dx / rx) ** 2, 0.0, 1.0))
        top = -ry * profile * 1.25  # the open eye's upper edge, with some margin
        edge = top + blink * (ry * profile * 2.25)  # the lid's margin now
        covered = ((region.dy < edge) & (region.dy > top - r * 0.2) & (profile > 0)).astype(
            np.float32
        )
        alpha = cv2.GaussianBlur(covered, (7, 7), 0)[..., None] * min(1.0, blink * 1.5)
        # The lid is a little darker towards its margin, where the lashes are.
        towards_edge = np.clip((region.dy - top) / np.maximum(edge - top, 1.0), 0.0, 1.0)
        shaded = lid[None, :, :] * (1.0 - 0.12 * towards_edge[..., None])
        lash = np.exp(-(((region.dy - edge) / max(1.0, r * 0.07)) ** 2)) * profile * blink
        roi = frame[region.y0 : region.y1, region.x0 : region.x1].astype(np.float32)
        roi += (shaded - roi) * alpha
        roi *= 1.0 - 0.45 * lash[..., None]
        frame[region.y0 : region.y1, region.x0 : region.x1] = np.clip(roi, 0, 255).astype(np.uint8)
