"""The mouth and jaw, moved by warping the portrait along its lips and jaw line.

Each landmark of the lips, the jaw and the skin between them gets a displacement for four
motions (``lip_motions``), in the face's own axes (across the eye line and down the face,
so a tilted head opens along its own axis):

- *jaw*: the lower lip, the chin and the skin on the jawbone drop; the upper lip lifts a
  little; the corners come in and down a little;
- *round* (o, u, w): the corners come in and the lips push out (they look fuller);
- *spread* (i, e): the corners go out and up a little, the lips thin;
- *press* (p, b, m): the inner lips meet, wherever they were in the photo (a smile that
  shows teeth closes too), and the jaw rises with them.

Between the landmarks the motion is piecewise-affine over their triangulation
(``mesh_warp``), built once per job for the parts above and below the line where the lips
meet, so the lips can part. Where they part, the inside of the mouth shows: shaded from the
portrait's own lip tones (``Palette``), darkest in the middle, the upper teeth under the
upper lip where the photo shows none of its own, the tongue low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from avatar_runtime.engines.base import Frame
from avatar_runtime.engines.opencv_renderer import lip_motions, mesh_warp
from avatar_runtime.engines.opencv_renderer.contours import Contours

FloatArray = npt.NDArray[np.float32]

# ``cv2.remap``'s second map: none with a two-channel first map (its stubs miss that case).
_ONE_MAP: Any = None


@dataclass(frozen=True)
class MouthPose:
    opening: float  # 0 lips at rest .. 1 jaw dropped
    spread: float  # -1 rounded .. 1 wide
    press: float  # 0 .. 1 lips pressed together

    def weights(self) -> FloatArray:
        rounding, spreading = max(0.0, -self.spread), max(0.0, self.spread)
        # Pressed lips stay pressed: a /b/ before /o/ is rounded a little, never parted.
        rounding *= 1.0 - 0.6 * self.press
        return np.array([self.press, self.opening, rounding, spreading], np.float32)


@dataclass(frozen=True)
class Palette:
    """The inside of the mouth in the portrait's own tones (RGB): a greyscale photo gets a
    grey mouth, a pale one a pale mouth. The lips' colour, darkened, is the cavity and the
    tongue; the teeth are light with a trace of the skin's colour (ivory on warm skin)."""

    cavity: FloatArray
    deep: FloatArray
    teeth: FloatArray
    tongue: FloatArray

    @classmethod
    def of(cls, portrait: Frame, lines: Contours) -> Palette:
        lips = np.concatenate([lines.upper_outer, lines.lower_outer, lines.lower_inner])
        height, width = portrait.shape[:2]
        x0, y0 = np.clip(lips.min(axis=0).astype(int), 0, [width - 1, height - 1])
        x1, y1 = np.clip(lips.max(axis=0).astype(int) + 1, [x0 + 1, y0 + 1], [width, height])
        around = np.ascontiguousarray(portrait[y0:y1, x0:x1])
        # The lips are the reddest tones there (Lab a*), not the teeth a smile shows.
        redness = cv2.cvtColor(around, cv2.COLOR_RGB2LAB)[..., 1].reshape(-1)
        pixels = around.reshape(-1, 3).astype(np.float32)
        tone = pixels[redness >= np.percentile(redness, 70)].mean(axis=0)
        tone = np.maximum(tone, 1.0)
        # The least red tones there are the skin around the lips (or a smile's teeth).
        skin = np.maximum(pixels[redness <= np.percentile(redness, 30)].mean(axis=0), 1.0)
        tint = (skin / skin.mean()) ** 0.35  # 1, 1, 1 for a grey photo
        return cls(
            cavity=(tone * 0.3).astype(np.float32),
            deep=(tone * 0.13).astype(np.float32),
            teeth=np.clip(232.0 * tint, 0, 255).astype(np.float32),
            tongue=(tone * 0.62).astype(np.float32),
        )


class MouthRig:
    """Per-job fields of the mouth warp; ``draw`` applies one pose to a frame."""

    def __init__(self, portrait: Frame, lines: Contours) -> None:
        self.portrait = portrait
        self.palette = Palette.of(portrait, lines)
        tilt = lines.tilt
        across = np.array([math.cos(tilt), math.sin(tilt)])
        axes = lip_motions.Axes(
            centre=(lines.upper_inner[5] + lines.lower_inner[5]) / 2,
            across=across,
            down=np.array([-across[1], across[0]]),
        )
        corner_a, _ = axes.coords(lines.corners)
        hw = max(4.0, float(corner_a[1] - corner_a[0]) / 2)
        self._hw = hw
        self._box = self._region(portrait, lines, axes, hw)
        x0, y0, x1, y1 = self._box
        width, height = x1 - x0, y1 - y0
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        a, b = axes.coords(np.stack([xs.ravel(), ys.ravel()], axis=1))
        self._grid = np.stack([xs, ys], axis=2).astype(np.float32)
        self._a = a.reshape(height, width).astype(np.float32)

        # The line where the lips meet (midway between the inner lips), carried on
        # sideways past the corners: above it the upper part's warp, below it the lower's.
        seam_a, seam_b = axes.coords((lines.upper_inner + lines.lower_inner) / 2)
        outer_a, outer_b = axes.coords(lines.corners)
        seam_a = np.concatenate([[outer_a[0] - 4 * hw], outer_a[:1], seam_a, outer_a[1:],
                                 [outer_a[1] + 4 * hw]])  # fmt: skip
        seam_b = np.concatenate([outer_b[:1], outer_b[:1], seam_b, outer_b[1:], outer_b[1:]])
        order = np.argsort(seam_a, kind="stable")
        seam_a, seam_b = seam_a[order], seam_b[order]
        self._s = (b - np.interp(a, seam_a, seam_b)).reshape(height, width).astype(np.float32)
        self._inner_corners = (float(seam_a[2]), float(seam_a[-3]))

        up_a, up_b = axes.coords(lines.upper_inner)
        _low_a, low_b = axes.coords(lines.lower_inner)
        gap = np.maximum(0.0, low_b - up_b)
        self._rest_gap = float(gap.max())
        rig = lip_motions.Displacements(axes=axes, hw=hw, seam=(seam_a, seam_b), gap=(up_a, gap))
        upper_pts, upper_moves = rig.upper(lines)
        lower_pts, lower_moves = rig.lower(lines)
        origin = np.array([x0, y0], dtype=np.float64)
        ring = mesh_warp.border_ring(width, height)
        still = np.zeros((len(ring), 2 * lip_motions.MOTIONS))
        fields = []
        for pts, moves in ((upper_pts, upper_moves), (lower_pts, lower_moves)):
            fields.append(
                mesh_warp.interpolate(
                    np.concatenate([pts - origin, ring]),
                    np.concatenate([moves, still]),
                    width=width,
                    height=height,
                ).reshape(height, width, lip_motions.MOTIONS, 2)
            )
        upper, lower = fields
        below = (self._s >= 0)[..., None, None]
        chosen = np.where(below, lower, upper)  # (h, w, motions, 2)
        self._warp = [np.ascontiguousarray(chosen[:, :, k]) for k in range(lip_motions.MOTIONS)]
        # Where the inside of the mouth can show at all (every motion at full weight): only
        # there are the lips' edges computed per frame.
        down = axes.down.astype(np.float32)
        top, bottom = upper @ down, lower @ down  # (h, w, motions) across the face's axis
        reach = (self._s > np.minimum(top, 0).sum(axis=2) - 1) & (
            self._s < np.maximum(bottom, 0).sum(axis=2) + 1
        )
        left, right = self._inner_corners
        reach &= (self._a > left - 0.3 * hw) & (self._a < right + 0.3 * hw)
        rows, cols = np.nonzero(reach.any(axis=1))[0], np.nonzero(reach.any(axis=0))[0]
        r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 1)
        c0, c1 = (int(cols[0]), int(cols[-1]) + 1) if len(cols) else (0, 1)
        self._inner = (r0, r1, c0, c1)
        self._top = np.ascontiguousarray(top[r0:r1, c0:c1].reshape(-1, lip_motions.MOTIONS))
        self._bottom = np.ascontiguousarray(bottom[r0:r1, c0:c1].reshape(-1, lip_motions.MOTIONS))
        self._s_inner = np.ascontiguousarray(self._s[r0:r1, c0:c1])
        self._a_inner = np.ascontiguousarray(self._a[r0:r1, c0:c1])
        self._origin = np.array([x0, y0], np.float32)
        # Per pixel: how far below the seam it is, and how far along the mouth: read at
        # each pixel's source, they say whether the lips parted over it.
        self._seam_coords = np.ascontiguousarray(np.dstack([self._s, self._a]))
        # Along the lips' line the two parts move apart: there the motion, read back at the
        # source, would blend both parts (a streak of teeth between pressed lips). The
        # refinement is for the chin and the neck; the lips keep the plain backward map.
        beside = np.maximum(left - self._a, self._a - right)
        near = np.maximum(np.abs(self._s) - 1.0, beside) / 5.0
        self._refine = np.ascontiguousarray(np.clip(near, 0.0, 1.0)[..., None], np.float32)

    @staticmethod
    def _region(
        portrait: Frame, lines: Contours, axes: lip_motions.Axes, hw: float
    ) -> tuple[int, int, int, int]:
        """The box the warp may touch: nose to below the dropped chin, cheek to cheek."""
        _, upper_b = axes.coords(lines.upper_outer)
        _, jaw_b = axes.coords(lines.jaw)
        top = float(upper_b.min()) - 0.6 * hw
        bottom = max(float(jaw_b.max()), 1.2 * hw) + lip_motions.JAW_DROP * hw + 0.9 * hw
        corners = np.array([[-2.2 * hw, top], [2.2 * hw, top], [-2.2 * hw, bottom],
                            [2.2 * hw, bottom]])  # fmt: skip
        xy = axes.centre + axes.vectors(corners[:, 0], corners[:, 1])
        height, width = portrait.shape[:2]
        x0, y0 = np.clip(np.floor(xy.min(axis=0)).astype(int), 0, [width - 2, height - 2])
        x1, y1 = np.clip(np.ceil(xy.max(axis=0)).astype(int), [x0 + 2, y0 + 2], [width, height])
        return int(x0), int(y0), int(x1), int(y1)

    def draw(self, frame: Frame, pose: MouthPose) -> None:
        """Warp the mouth region of ``frame`` (a copy of the portrait) into ``pose``."""
        weights = pose.weights()
        if not weights.any():
            return
        x0, y0, x1, y1 = self._box
        moved: FloatArray | None = None
        for part, weight in zip(self._warp, weights.tolist(), strict=True):
            if weight:
                moved = part * np.float32(weight) if moved is None else np.asarray(
                    cv2.scaleAdd(part, weight, moved), np.float32)  # fmt: skip
        assert moved is not None
        # Backward map: where each pixel comes from. One fixed-point step corrects for the
        # displacement being known at the source, not at the destination.
        local = self._grid - moved - self._origin
        refined = cv2.remap(moved, local, _ONE_MAP, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        source = self._grid - moved - (np.asarray(refined, np.float32) - moved) * self._refine
        roi = frame[y0:y1, x0:x1]
        roi[:] = cv2.remap(self.portrait, source, _ONE_MAP, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT101)  # fmt: skip
        r0, r1, c0, c1 = self._inner
        top = (self._top @ weights).reshape(r1 - r0, c1 - c0)
        bottom = (self._bottom @ weights).reshape(r1 - r0, c1 - c0)
        if float((bottom - top).max()) > 0.5:
            # Where each pixel comes from by its own side's motion (the refined map blends
            # both sides at the seam, where the lips part).
            inner = np.ascontiguousarray(local[r0:r1, c0:c1])
            at_source = np.asarray(cv2.remap(self._seam_coords, inner, _ONE_MAP,
                                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                                   np.float32)  # fmt: skip
            self._paint_inside(roi[r0:r1, c0:c1], top, bottom, at_source, pose)

    def _paint_inside(
        self,
        roi: Frame,
        top: FloatArray,
        bottom: FloatArray,
        at_source: FloatArray,
        pose: MouthPose,
    ) -> None:
        """Between the parted lips: the cavity, upper teeth, tongue, in the portrait's tones.

        A pixel is inside the mouth where its source lies across the seam from it (the lip
        that was there moved away), between the lips' corners as the photo has them.
        """
        s, a, hw = self._s_inner, self._a_inner, self._hw
        s_source, a_source = at_source[..., 0], at_source[..., 1]
        left, right = self._inner_corners
        across = np.clip(np.minimum(a_source - left, right - a_source) / (0.1 * hw), 0.0, 1.0)
        crossed = np.where(s >= 0, 0.5 - s_source, 0.5 + s_source)
        alpha = np.clip(crossed, 0.0, 1.0) * across
        rows = np.nonzero(alpha.max(axis=1) > 0)[0]
        if len(rows) == 0:
            return
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        alpha, s, a = alpha[r0:r1], s[r0:r1], a[r0:r1]
        top, bottom = top[r0:r1], bottom[r0:r1]
        gap = np.maximum(bottom - top, 1e-3)
        rel = np.clip((s - top) / gap, 0.0, 1.0)[..., None]
        centre = np.clip(1.0 - (2.0 * a / max(right - left, 1.0)) ** 2, 0.0, 1.0)[..., None]
        depth = np.clip(gap / (0.35 * hw), 0.0, 1.0)[..., None]
        tones = self.palette
        # Darkest in the middle of a wide opening, lighter by the lips.
        colour = tones.cavity + (tones.deep - tones.cavity) * (
            (1.0 - np.abs(2.0 * rel - 1.0)) * depth * np.sqrt(centre)
        )
        # Upper teeth under the upper lip, only where the photo shows none of its own.
        own_teeth = float(np.clip(2.0 - self._rest_gap / (0.08 * hw), 0.0, 1.0))
        if own_teeth > 0:
            # Incisors' height under the lip, a crisp lower edge, thin shadows between the
            # teeth (about a fifth of the half mouth wide), shaded at the top by the lip.
            band = np.minimum(0.4, 0.2 * hw / gap)[..., None]
            under_lip = np.clip((1.0 - rel / band) * 3.0, 0.0, 1.0)
            tooth = np.abs(a / (0.22 * hw)) % 1.0
            between = np.exp(-(((tooth - 0.5) / 0.05) ** 2))[..., None]
            teeth = under_lip * centre**0.3 * np.float32(own_teeth)
            shade = (0.86 + 0.14 * np.clip(rel / band, 0.0, 1.0)) * (1.0 - 0.12 * between)
            colour += (tones.teeth * shade - colour) * teeth
        tongue = np.clip((rel - 0.7) * 3.0, 0, 1) * np.float32(min(1.0, pose.opening * 1.4) * 0.6)
        colour += (tones.tongue - colour) * tongue * centre
        part = roi[r0:r1]
        part[:] = (part + (colour - part) * alpha[..., None]).astype(np.uint8)
