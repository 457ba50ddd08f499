"""How each landmark of the mouth moves, for each of the mouth's four motions.

The rules of ``mouth``'s warp, as displacements of the lips' lines, the corners, the skin
on the jaw and the cheeks, in the face's own axes (``Axes``: across the eye line and down
the face). Each point gets one (x, y) per motion: press (p, b, m), jaw, round (o, u, w),
spread (i, e); ``mesh_warp`` spreads them between the points.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from avatar_runtime.engines.opencv_renderer.contours import Contours, Points

# In half mouth widths: how far the lower lip drops on a wide-open vowel, how far rounding
# brings each corner in and spreading takes it out.
JAW_DROP = 0.45
ROUND_IN = 0.45
SPREAD_OUT = 0.16
MOTIONS = 4  # press, jaw, round, spread
# Pressing: the inner lips meet (and overlap by this many pixels); the outer lips follow by
# these shares of the way, the lower lip more (the jaw rises with it).
PRESS_OVER = 1.0
PRESS_OUTER_UP = 0.5
PRESS_OUTER_LOW = 0.85


@dataclass(frozen=True)
class Axes:
    """The face's own frame at the mouth: ``across`` the eye line, ``down`` the face."""

    centre: Points
    across: Points
    down: Points

    def coords(self, points: Points) -> tuple[Points, Points]:
        rel = points - self.centre
        return rel @ self.across, rel @ self.down

    def vectors(self, along: Points, downwards: Points) -> Points:
        """Displacements given in the face's axes, as (x, y)."""
        return np.outer(along, self.across) + np.outer(downwards, self.down)


@dataclass(frozen=True)
class Displacements:
    """How each landmark moves for each motion, in the face's axes, as (n, 2 * motions):
    (x, y) of press, jaw, round, spread."""

    axes: Axes
    hw: float
    seam: tuple[Points, Points]
    gap: tuple[Points, Points]  # the photo's gap between the inner lips, per column

    def _pack(self, a: Points, moves: list[tuple[Points | float, Points | float]]) -> Points:
        n = len(a)
        out = np.zeros((n, 2 * MOTIONS))
        for k, (along, down) in enumerate(moves):
            out[:, 2 * k : 2 * k + 2] = self.axes.vectors(
                np.broadcast_to(along, (n,)), np.broadcast_to(down, (n,))
            )
        return out

    def _lip_profile(self, a: Points) -> Points:
        """1 in the middle of the lips, 0 at the corners."""
        return np.asarray(np.clip(1.0 - (a / self.hw) ** 2, 0.0, 1.0) ** 0.8)

    def _sideways(self, a: Points, below: Points) -> Points:
        """How much a point follows the corners in and out: the lips fully, in proportion to
        their distance from the middle; the cheeks beside them less, fading outwards."""
        span = np.abs(a) / self.hw
        lateral = np.where(span <= 1, span, np.exp(-(((span - 1) / 0.7) ** 2)))
        return np.asarray(np.sign(a) * lateral * np.exp(-((below / (0.8 * self.hw)) ** 2)))

    def _jaw_share(self, a: Points, below: Points) -> Points:
        """How much of the chin's drop a skin point below the lips takes: next to the lips
        what the lip beside it takes (little at the corners), lower down all of it on the
        chin and less towards the jaw's angles."""
        on_bone = np.clip(1.0 - (a / (2.2 * self.hw)) ** 2, 0.0, 1.0) ** 0.7
        next_to_lip = self.lip_drop(a)
        height = np.clip(below / (0.8 * self.hw), 0.0, 1.0)
        return np.asarray(on_bone * (next_to_lip + (1.0 - next_to_lip) * height))

    def lip_drop(self, a: Points) -> Points:
        """The share of the jaw's drop the lower lip takes: all in the middle, 0.12 at the
        corners (they hardly move)."""
        return 0.12 + 0.88 * self._lip_profile(a)

    def _split(
        self, lines: Contours, points: Points
    ) -> tuple[Points, Points, npt.NDArray[np.bool_]]:
        """Skin points outside the lips: coordinates, and whether each is below the seam."""
        lips = np.concatenate([lines.upper_outer, lines.lower_outer[::-1]]).astype(np.float32)
        if len(points) == 0:
            return points, np.zeros(0), np.zeros(0, bool)
        outside = np.array([cv2.pointPolygonTest(lips, (float(x), float(y)), True) < -1.0
                            for x, y in points])  # fmt: skip
        skin = points[outside]
        a, b = self.axes.coords(skin)
        below = b - np.interp(a, *self.seam)
        return skin, below, below >= 0

    def _seam_points(self) -> tuple[Points, Points]:
        """The seam beside the lips: shared by both parts, so the cheeks do not tear."""
        seam_a, seam_b = self.seam
        corners = np.array([seam_a[1], seam_a[-2]])
        a = np.concatenate([corners[0] - self.hw * np.array([0.3, 0.7, 1.2]),
                            corners[1] + self.hw * np.array([0.3, 0.7, 1.2])])  # fmt: skip
        return a, np.interp(a, seam_a, seam_b)

    def _shared(self, a: Points, beside: Points) -> Points:
        """Corners and the seam beside them: the same motion seen from above and below."""
        hw = self.hw
        fade = np.clip(1.0 - beside / (0.6 * hw), 0.0, 1.0)
        side = np.sign(a)
        return self._pack(
            a,
            [
                (0.0, 0.0),
                (-0.04 * hw * side * fade, 0.12 * JAW_DROP * hw * fade),
                (-ROUND_IN * hw * self._sideways(a, np.zeros_like(a)), 0.0),
                (SPREAD_OUT * hw * self._sideways(a, np.zeros_like(a)), -0.05 * hw * fade),
            ],
        )

    def _corner_points(self, lines: Contours) -> tuple[Points, Points]:
        ends = np.concatenate([lines.corners, lines.upper_inner[[0, -1]]])
        seam_xy = self._seam_xy()
        points = np.concatenate([ends, seam_xy])
        a, _ = self.axes.coords(points)
        corner_a = np.array([self.seam[0][1], self.seam[0][-2]])
        beside = np.maximum(0.0, np.maximum(corner_a[0] - a, a - corner_a[1]))
        return points, self._shared(a, beside)

    def _seam_xy(self) -> Points:
        a, b = self._seam_points()
        return self.axes.centre + self.axes.vectors(a, b)

    def _gap_at(self, a: Points) -> Points:
        return np.interp(a, *self.gap)

    def upper(self, lines: Contours) -> tuple[Points, Points]:
        hw, jaw = self.hw, JAW_DROP * self.hw
        inner, outer = lines.upper_inner[1:-1], lines.upper_outer[1:-1]
        ia, _ = self.axes.coords(inner)
        oa, _ = self.axes.coords(outer)
        skin, below, is_below = self._split(lines, lines.mesh)
        skin = skin[~is_below]
        sa, _sb = self.axes.coords(skin)
        s_below = below[~is_below]
        corners, corner_moves = self._corner_points(lines)
        moves = [
            self._pack(
                ia,
                [
                    (0.0, self._gap_at(ia) / 2 + PRESS_OVER),
                    (0.0, -0.1 * jaw * self._lip_profile(ia)),
                    (
                        -ROUND_IN * hw * self._sideways(ia, np.zeros_like(ia)),
                        -0.06 * hw * self._lip_profile(ia),
                    ),
                    (
                        SPREAD_OUT * hw * self._sideways(ia, np.zeros_like(ia)),
                        -0.05 * hw * (ia / hw) ** 2,
                    ),
                ],
            ),
            self._pack(
                oa,
                [
                    (0.0, PRESS_OUTER_UP * self._gap_at(oa) / 2),
                    (0.0, -0.05 * jaw * self._lip_profile(oa)),
                    (
                        -ROUND_IN * hw * self._sideways(oa, np.zeros_like(oa)),
                        -0.06 * hw * self._lip_profile(oa),
                    ),
                    (
                        SPREAD_OUT * hw * self._sideways(oa, np.zeros_like(oa)),
                        0.04 * hw * self._lip_profile(oa) - 0.05 * hw * (oa / hw) ** 2,
                    ),
                ],
            ),
            self._pack(
                sa,
                [
                    (0.0, 0.0),
                    (0.0, 0.0),
                    (-ROUND_IN * hw * 0.6 * self._sideways(sa, s_below), 0.0),
                    (SPREAD_OUT * hw * 0.6 * self._sideways(sa, s_below), 0.0),
                ],
            ),
            corner_moves,
        ]
        # What lies between the inner lips (teeth in a smile) moves with the lip beside it,
        # up to the line where they meet.
        middle = (lines.upper_inner[1:-1] + lines.lower_inner[1:-1]) / 2
        points = np.concatenate([inner, outer, skin, corners, middle])
        return points, np.concatenate([*moves, moves[0]])

    def lower(self, lines: Contours) -> tuple[Points, Points]:
        hw, jaw = self.hw, JAW_DROP * self.hw
        inner, outer = lines.lower_inner[1:-1], lines.lower_outer[1:-1]
        ia, _ = self.axes.coords(inner)
        oa, _ = self.axes.coords(outer)
        skin, below, is_below = self._split(lines, np.concatenate([lines.mesh, lines.jaw]))
        skin, s_below = skin[is_below], below[is_below]
        sa, _ = self.axes.coords(skin)
        share = self._jaw_share(sa, s_below)
        rise = 0.6 * float(self.gap[1].max()) / 2
        corners, corner_moves = self._corner_points(lines)
        anchors = self._anchors(lines)

        def drop(a: Points) -> Points:
            return jaw * self.lip_drop(a)

        moves = [
            self._pack(ia, [(0.0, -(self._gap_at(ia) / 2 + PRESS_OVER)),
                            (-0.04 * hw * ia / hw, drop(ia)),
                            (-ROUND_IN * hw * self._sideways(ia, np.zeros_like(ia)),
                             0.08 * hw * self._lip_profile(ia)),
                            (SPREAD_OUT * hw * self._sideways(ia, np.zeros_like(ia)),
                             -0.05 * hw * (ia / hw) ** 2)]),
            self._pack(oa, [(0.0, -PRESS_OUTER_LOW * self._gap_at(oa) / 2),
                            (-0.04 * hw * oa / hw, 0.97 * drop(oa)),
                            (-ROUND_IN * hw * self._sideways(oa, np.zeros_like(oa)),
                             0.07 * hw * self._lip_profile(oa)),
                            (SPREAD_OUT * hw * self._sideways(oa, np.zeros_like(oa)),
                             -0.05 * hw * self._lip_profile(oa) - 0.05 * hw * (oa / hw) ** 2)]),
            self._pack(sa, [(0.0, -rise * share), (0.0, jaw * share),
                            (-ROUND_IN * hw * 0.6 * self._sideways(sa, s_below), 0.0),
                            (SPREAD_OUT * hw * 0.6 * self._sideways(sa, s_below), 0.0)]),
            corner_moves,
            np.zeros((len(anchors), 2 * MOTIONS)),
        ]  # fmt: skip
        middle = (lines.upper_inner[1:-1] + lines.lower_inner[1:-1]) / 2
        points = np.concatenate([inner, outer, skin, corners, anchors, middle])
        return points, np.concatenate([*moves, moves[0]])

    def _anchors(self, lines: Contours) -> Points:
        """Still points just outside the jaw line, below the seam: the chin drops over the
        neck, but the collar and the background beside the cheeks stay where they are."""
        a, b = self.axes.coords(lines.jaw)
        below = b - np.interp(a, *self.seam)
        jaw = lines.jaw[below > 0]
        if len(jaw) == 0:
            return np.zeros((0, 2))
        a, below = a[below > 0], below[below > 0]
        outward = jaw - self.axes.centre
        outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-6)
        reach = JAW_DROP * self.hw * self._jaw_share(a, below) + 0.25 * self.hw
        return np.asarray(jaw + outward * reach[:, None])
