"""Draw one frame: open the mouth, close the eyes, move the head.

Only small regions around the mouth and the eyes are warped per frame, with
``cv2.remap`` on grids prepared once per job, and one affine warp moves the head, blended
over the still background through a feathered mask of the head and neck; that keeps the
renderer well above 150 frames/s at 512x512 on one core.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from avatar_runtime.engines.base import Frame
from avatar_runtime.engines.opencv_renderer.face import Eye, FaceGeometry

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Palette:
    """The inside of the mouth in the portrait's own tones (RGB): a greyscale photo gets a
    grey mouth, a pale one a pale mouth. The lips' colour, darkened, is the cavity and the
    tongue; the teeth are light with a trace of it."""

    cavity: FloatArray
    deep: FloatArray
    teeth: FloatArray
    tongue: FloatArray

    @classmethod
    def of(cls, portrait: Frame, face: FaceGeometry) -> _Palette:
        hw = max(4.0, face.mouth_width * 0.5)
        height, width = portrait.shape[:2]
        y0 = int(np.clip(face.mouth_y - hw * 0.5, 0, height - 1))
        y1 = int(np.clip(face.mouth_y + hw * 0.6, y0 + 1, height))
        x0 = int(np.clip(face.mouth_x - hw * 0.7, 0, width - 1))
        x1 = int(np.clip(face.mouth_x + hw * 0.7, x0 + 1, width))
        around = np.ascontiguousarray(portrait[y0:y1, x0:x1])
        # The lips are the reddest tones there (Lab a*), not the teeth a smile shows.
        redness = cv2.cvtColor(around, cv2.COLOR_RGB2LAB)[..., 1].reshape(-1)
        pixels = around.reshape(-1, 3).astype(np.float32)
        lips = pixels[redness >= np.percentile(redness, 70)].mean(axis=0)
        lips = np.maximum(lips, 1.0)
        tint = (lips / lips.mean()) ** 0.15  # 1, 1, 1 for grey lips
        return cls(
            cavity=(lips * 0.28).astype(np.float32),
            deep=(lips * 0.12).astype(np.float32),
            teeth=np.clip(218.0 * tint, 0, 255).astype(np.float32),
            tongue=(lips * 0.72).astype(np.float32),
        )


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
        xs = np.arange(x0, x1, dtype=np.float32) - np.float32(cx)
        ys = np.arange(y0, y1, dtype=np.float32) - np.float32(cy)
        dx, dy = np.meshgrid(xs, ys)
        return cls(x0, y0, x1, y1, dx, dy)


@dataclass(frozen=True)
class _MouthFields:
    """Per-job constants of the mouth warp; per frame only cheap arithmetic is left."""

    across_sq: FloatArray  # (dx / half width)^2, one row
    jaw_sq: FloatArray  # the same, widened with depth below the lips
    fade_down: FloatArray  # jaw drop: 1 at the lips, 0 at the chin, 0 above the lips
    fade_up: FloatArray  # upper lip lift: 1 at the lips, 0 at the nose, 0 below the lips
    pull: FloatArray  # how much spread moves each pixel
    anchor_x: np.float32
    map_y_rest: FloatArray  # source rows with the mouth at rest

    @classmethod
    def build(cls, region: _Region, *, hw: float, depth: float) -> _MouthFields:
        dx, dy = region.dx, region.dy
        below = np.clip(dy / depth, 0.0, 1.0)
        across_sq = (dx[:1] / hw) ** 2
        fade_down = np.where(dy >= 0, 0.5 * (1.0 + np.cos(np.pi * below)), 0.0)
        fade_up = np.where(dy < 0, np.clip(1.0 + dy / (hw * 1.1), 0.0, 1.0) ** 2, 0.0)
        return cls(
            across_sq=across_sq.astype(np.float32),
            jaw_sq=((dx / hw) ** 2 / (1.0 + 0.9 * below) ** 2).astype(np.float32),
            fade_down=fade_down.astype(np.float32),
            fade_up=fade_up.astype(np.float32),
            pull=np.exp(-((dx / (hw * 1.6)) ** 2) - (dy / (hw * 0.7)) ** 2).astype(np.float32),
            anchor_x=np.float32(dx[0, 0] * -1 + region.x0),
            map_y_rest=(dy - dy[0, 0] + region.y0).astype(np.float32),
        )


def _head_mask(size: int, face: FaceGeometry) -> tuple[FloatArray, tuple[int, int, int, int]]:
    """Where the head and neck are (1) and the background (0), feathered, with its box.

    An ellipse over the face and hair, and the neck below it down to the frame's edge; the
    feather is wide enough that a degree or two of head motion leaves no seam.
    """
    cx, cy = face.x + face.width / 2, face.y + face.height * 0.45
    mask = np.zeros((size, size), np.float32)
    axes = (int(face.width * 0.95), int(face.height * 1.05))
    cv2.ellipse(mask, (int(cx), int(cy)), axes, 0, 0, 360, 1.0, -1)
    neck = int(face.width * 0.42)
    cv2.rectangle(mask, (int(cx) - neck, int(cy)), (int(cx) + neck, size - 1), 1.0, -1)
    feather = max(3, int(face.width * 0.25)) | 1
    soft = np.asarray(cv2.GaussianBlur(mask, (feather, feather), 0), np.float32)
    ys, xs = np.nonzero(soft > 1e-3)
    if len(xs) == 0:
        return np.zeros((1, 1), np.float32), (0, 0, 1, 1)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    return np.ascontiguousarray(soft[y0:y1, x0:x1]), (x0, y0, x1, y1)


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
        self._mouth_fields = _MouthFields.build(self._mouth, hw=hw, depth=chin_below + hw * 0.4)
        self._palette = _Palette.of(portrait, face)
        self._eyes = [self._eye_region(eye) for eye in (face.left_eye, face.right_eye)]
        self._pivot = (
            face.x + face.width / 2,
            min(self.size - 1.0, face.chin_y + face.height * 0.6),
        )
        self._head, self._head_box = _head_mask(self.size, face)
        self._background = np.ascontiguousarray(1.0 - self._head)

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
        # The head and neck move; the background stays (a head, not a camera, moves). Only
        # the head's box is warped: its matrix is the frame's, shifted to the box.
        x0, y0, x1, y1 = self._head_box
        matrix = cv2.getRotationMatrix2D(self._pivot, angle, scale)
        matrix[0, 2] += dx * self.size - x0
        matrix[1, 2] += dy * self.size - y0
        moved = cv2.warpAffine(
            frame,
            matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        )
        frame[y0:y1, x0:x1] = cv2.blendLinear(
            moved, np.ascontiguousarray(frame[y0:y1, x0:x1]), self._head, self._background
        )
        return frame

    def _draw_mouth(self, frame: Frame, opening: float, spread: float) -> None:
        """Part the lips in a lens shape, drop the jaw, and paint the mouth's inside."""
        region, hw, f = self._mouth, self._half_width, self._mouth_fields
        # Lips: wider for /i/, narrower and pushed together for /o/ /u/.
        widen = np.float32(1.0 + 0.3 * spread)
        gap = opening**0.8 * hw * 0.72
        lower, upper = np.float32(gap * 0.78), np.float32(gap * 0.22)
        # Horizontal profile of the opening (one value per column): almond-shaped,
        # closing before the lip corners.
        lens = np.clip(1.0 - f.across_sq / (widen * widen * np.float32(0.88**2)), 0.0, 1.0)
        lens = np.sqrt(lens) * np.sqrt(np.sqrt(lens))  # ** 0.75, without pow
        # Below the lips the whole jaw drops, widening and fading towards the chin.
        jaw = np.sqrt(np.clip(1.0 - f.jaw_sq / (widen * widen), 0.0, 1.0))
        shift = lower * jaw * f.fade_down - upper * lens * f.fade_up
        # Spread pulls pixels towards/away from the centre, strongest on the lips.
        map_x = region.dx / (1.0 + np.float32(0.3 * spread) * f.pull) + f.anchor_x
        map_y = f.map_y_rest - shift
        roi = frame[region.y0 : region.y1, region.x0 : region.x1]
        roi[:] = cv2.remap(
            self.portrait, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        if gap >= 0.5:
            self._paint_inside(roi, lens, float(upper), float(lower), gap, opening)

    def _paint_inside(
        self, roi: Frame, lens: FloatArray, upper: float, lower: float, gap: float, opening: float
    ) -> None:
        """The inside of the mouth between the parted lips: cavity, upper teeth, tongue.

        Only the few rows the opening spans are touched.
        """
        dy_rows = self._mouth.dy[:, 0]
        rows = np.nonzero((dy_rows > -upper - 3) & (dy_rows < lower + 3))[0]
        if len(rows) == 0:
            return
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        dy = self._mouth.dy[r0:r1, :1]
        top, bottom = -upper * lens, lower * lens  # (1, width) each
        inside = ((dy > top) & (dy < bottom) & (lens > 0)).astype(np.float32)
        alpha = cv2.GaussianBlur(inside, (5, 5), 0)[..., None]
        rel = np.clip((dy - top) / np.maximum(bottom - top, 1e-3), 0.0, 1.0)[..., None]
        lens3 = lens[..., None]
        # Darkest in the middle of the opening, lit near the lips.
        tones = self._palette
        colour = tones.cavity + (tones.deep - tones.cavity) * (
            (1.0 - np.abs(2.0 * rel - 1.0)) * lens3
        )
        # Upper teeth: a soft, shaded band under the upper lip, fading at the corners.
        band = np.float32(min(0.3, self._half_width * 0.14 / max(gap, 1.0)))
        under_lip = np.clip(1.0 - rel / band, 0.0, 1.0)
        teeth = np.sqrt(under_lip) * np.sqrt(lens3) * np.float32(0.8)
        colour += (tones.teeth * (0.75 + 0.25 * under_lip) - colour) * teeth
        tongue = np.clip((rel - 0.68) * 3.0, 0, 1) * np.float32(min(1.0, opening * 1.4) * 0.7)
        colour += (tones.tongue - colour) * tongue
        part = roi[r0:r1]
        part[:] = (part + (colour - part) * alpha).astype(np.uint8)

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
