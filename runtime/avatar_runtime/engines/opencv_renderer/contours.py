"""The lines of a face that the animation moves: lips, jaw and eyelids.

The renderer warps the portrait along these (``mouth``, ``eyes``), so they must sit on the
face itself: from MediaPipe's mesh they do. Where only the Haar cascades ran there is no
mesh, and the same lines are drawn from the few points the cascades give (a mouth line, two
eyes), in average proportions: a rougher rig, but the same warps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from avatar_runtime.engines.opencv_renderer import landmarks

Points = npt.NDArray[np.float64]
"""(n, 2) pixel coordinates (x, y)."""


@dataclass(frozen=True)
class Lids:
    """One eye's lid margins, outer corner to inner corner, both ending at the corners."""

    upper: Points
    lower: Points

    def moved(self, scale: float, offset: Points) -> Lids:
        return Lids(self.upper * scale + offset, self.lower * scale + offset)


@dataclass(frozen=True)
class Contours:
    """Lips (inner and outer, paired point by point, image left to right), the jaw line
    from ear to ear, both eyes' lids and the whole mesh (for the skin between them)."""

    upper_inner: Points
    lower_inner: Points
    upper_outer: Points
    lower_outer: Points
    jaw: Points
    left_lids: Lids
    right_lids: Lids
    mesh: Points = field(default_factory=lambda: np.zeros((0, 2)))

    @property
    def tilt(self) -> float:
        """The face's roll in radians: the angle of the line from eye to eye."""
        left = (self.left_lids.upper[0] + self.left_lids.upper[-1]) / 2
        right = (self.right_lids.upper[0] + self.right_lids.upper[-1]) / 2
        return math.atan2(float(right[1] - left[1]), float(right[0] - left[0]))

    @property
    def corners(self) -> Points:
        return np.stack([self.upper_outer[0], self.upper_outer[-1]])

    def transformed(self, *, scale: float, dx: float, dy: float) -> Contours:
        offset = np.array([dx, dy], dtype=np.float64)
        return Contours(
            upper_inner=self.upper_inner * scale + offset,
            lower_inner=self.lower_inner * scale + offset,
            upper_outer=self.upper_outer * scale + offset,
            lower_outer=self.lower_outer * scale + offset,
            jaw=self.jaw * scale + offset,
            left_lids=self.left_lids.moved(scale, offset),
            right_lids=self.right_lids.moved(scale, offset),
            mesh=self.mesh * scale + offset,
        )


def from_mesh(points: Points) -> Contours:
    def line(indices: tuple[int, ...]) -> Points:
        return np.ascontiguousarray(points[list(indices)], dtype=np.float64)

    return Contours(
        upper_inner=line(landmarks.UPPER_INNER_LIPS),
        lower_inner=line(landmarks.LOWER_INNER_LIPS),
        upper_outer=line(landmarks.UPPER_OUTER_LIPS),
        lower_outer=line(landmarks.LOWER_OUTER_LIPS),
        jaw=line(landmarks.JAW),
        left_lids=Lids(line(landmarks.LEFT_UPPER_LID), line(landmarks.LEFT_LOWER_LID)),
        right_lids=Lids(line(landmarks.RIGHT_UPPER_LID), line(landmarks.RIGHT_LOWER_LID)),
        mesh=np.asarray(points, dtype=np.float64),
    )


def drawn(
    *,
    mouth: tuple[float, float],
    mouth_width: float,
    chin_y: float,
    eyes: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> Contours:
    """Contours in average proportions from a mouth line and two eyes (x, y, radius)."""
    (lx, ly, lr), (rx, ry, rr) = eyes
    tilt = math.atan2(ry - ly, rx - lx)
    across = np.array([math.cos(tilt), math.sin(tilt)])
    down = np.array([-across[1], across[0]])
    centre = np.array(mouth, dtype=np.float64)
    hw = mouth_width / 2
    u = np.linspace(-1.0, 1.0, 11)
    bulge = np.sqrt(1.0 - u**2)

    def curve(origin: Points, half: float, depth: float, xs: Points, profile: Points) -> Points:
        return origin + np.outer(xs * half, across) + np.outer(profile * depth, down)

    chin = max(hw * 1.2, (chin_y - centre[1]) * math.cos(tilt))
    t = np.linspace(-math.pi, 0.0, 21)
    jaw = centre + np.outer(np.cos(t) * hw * 2.3, across) - np.outer(np.sin(t) * chin, down)

    def lids(x: float, y: float, r: float) -> Lids:
        origin = np.array([x, y])
        xs = np.linspace(-1.0, 1.0, 9)
        arc = np.sqrt(1.0 - xs**2)
        return Lids(
            curve(origin, r * 0.72, -r * 0.32, xs, arc), curve(origin, r * 0.72, r * 0.22, xs, arc)
        )

    return Contours(
        upper_inner=curve(centre, hw * 0.92, 0.0, u, bulge),
        lower_inner=curve(centre, hw * 0.92, 0.0, u, bulge),
        upper_outer=curve(centre, hw, -hw * 0.16, u, bulge),
        lower_outer=curve(centre, hw, hw * 0.24, u, bulge),
        jaw=jaw,
        left_lids=lids(lx, ly, lr),
        right_lids=lids(rx, ry, rr),
    )
