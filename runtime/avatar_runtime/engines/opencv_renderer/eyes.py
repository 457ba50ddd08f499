"""Blinks: the upper lid comes down over the eye, its lashes along its edge.

Nothing is painted over the eye. In the face's own axes (so a tilted head blinks along its
own axis), each column of the eye region is remapped: the lid's skin, from a little below
the brow to the lid's margin, is stretched down until the margin reaches the lower lid,
covering the eye. The portrait's own lashes, at the margin, come down with it; a faint
line in the darkest tone found along the margin marks the lid's edge. A small or turned
eye has a small lid and a short stretch: no flat patches of colour.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from avatar_runtime.engines.base import Frame
from avatar_runtime.engines.opencv_renderer.contours import Lids

FloatArray = npt.NDArray[np.float32]

# The lid's skin stretched down spans this many eye widths above the margin.
_LID_SKIN = 0.55


class EyeRig:
    """One eye, prepared once per job."""

    def __init__(self, portrait: Frame, lids: Lids, *, tilt: float) -> None:
        self.portrait = portrait
        across = np.array([math.cos(tilt), math.sin(tilt)])
        down = np.array([-across[1], across[0]])
        ends = np.stack([lids.upper[0], lids.upper[-1]])
        centre = ends.mean(axis=0)
        eye_width = max(2.0, float(np.linalg.norm(ends[1] - ends[0])))

        def coords(points: npt.NDArray[np.float64]) -> tuple[FloatArray, FloatArray]:
            rel = points - centre
            return (rel @ across).astype(np.float32), (rel @ down).astype(np.float32)

        up_a, up_b = coords(lids.upper)
        low_a, low_b = coords(lids.lower)
        skin = _LID_SKIN * eye_width
        a_lo, a_hi = float(min(up_a.min(), low_a.min())), float(max(up_a.max(), low_a.max()))
        b_lo, b_hi = float(up_b.min()) - skin - 2.0, float(low_b.max()) + 2.0
        box = centre + np.array(
            [[a, b] for a in (a_lo - 2, a_hi + 2) for b in (b_lo, b_hi)]
        ) @ np.stack([across, down])
        height, width = portrait.shape[:2]
        x0, y0 = np.clip(np.floor(box.min(axis=0)).astype(int), 0, [width - 2, height - 2])
        x1, y1 = np.clip(np.ceil(box.max(axis=0)).astype(int), [x0 + 2, y0 + 2], [width, height])
        self._box = (int(x0), int(y0), int(x1), int(y1))
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self._x, self._y = xs, ys
        a, b = coords(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64))
        shape = xs.shape
        self._b = b.reshape(shape)
        up_order, low_order = np.argsort(up_a), np.argsort(low_a)
        upper = np.interp(a, up_a[up_order], up_b[up_order]).reshape(shape)
        lower = np.interp(a, low_a[low_order], low_b[low_order]).reshape(shape)
        self._upper = upper.astype(np.float32)
        self._opening = np.maximum(lower - upper, 0.0).astype(np.float32)
        self._top = (upper - skin).astype(np.float32)
        self._down = down.astype(np.float32)
        biggest = max(float(self._opening.max()), 1e-3)
        self._lash_width = np.float32(max(0.8, 0.035 * eye_width))
        self._lash_weight = np.sqrt(self._opening / biggest).astype(np.float32)
        self._lash = self._lash_tone(portrait, lids)

    @staticmethod
    def _lash_tone(portrait: Frame, lids: Lids) -> FloatArray:
        """The darkest tone along the upper lid's margin: the portrait's own lashes."""
        height, width = portrait.shape[:2]
        xs = np.clip(np.round(lids.upper[:, 0]).astype(int), 0, width - 1)
        ys = np.clip(np.round(lids.upper[:, 1]).astype(int), 0, height - 1)
        samples = np.concatenate(
            [portrait[np.clip(ys + k, 0, height - 1), xs] for k in (-1, 0, 1)]
        ).astype(np.float32)
        luma = samples.mean(axis=1)
        return np.asarray(samples[luma <= np.percentile(luma, 35)].mean(axis=0), np.float32)

    def draw(self, frame: Frame, blink: float) -> None:
        """Close the eye by ``blink`` (0 open .. 1 shut) in ``frame``, a copy of the portrait."""
        x0, y0, x1, y1 = self._box
        b, top, upper = self._b, self._top, self._upper
        edge = upper + np.float32(blink) * self._opening
        # Rows between the lid's top and its new edge show the lid, stretched from its rest.
        on_lid = (b >= top) & (b < edge)
        stretch = (upper - top) / np.maximum(edge - top, 1e-3)
        source = np.where(on_lid, top + (b - top) * stretch, b)
        shift = source - b
        map_x = self._x + shift * self._down[0]
        map_y = self._y + shift * self._down[1]
        roi = cv2.remap(self.portrait, map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT101).astype(np.float32)  # fmt: skip
        # The lid's margin: a soft line of the lashes' tone just above the edge.
        lash = np.exp(-(((b - edge + self._lash_width) / self._lash_width) ** 2))
        alpha = lash * self._lash_weight * np.float32(0.35 * min(1.0, blink * 1.4))
        roi += (self._lash - roi) * alpha[..., None]
        frame[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)
