"""Piecewise-affine fields over a landmark mesh, and backward maps for ``cv2.remap``.

A warp is given where it is known, at the landmarks: how far each point moves. Between
them it is affine within each triangle of the points' Delaunay triangulation, which is
what a piecewise-affine image warp does. The fields are built once per job, one per
motion (jaw drop, rounding, ...); a frame's displacement is their weighted sum, which
keeps per-frame work to a few multiply-adds and one ``cv2.remap`` per region.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def border_ring(width: int, height: int, *, per_side: int = 6) -> npt.NDArray[np.float64]:
    """Points along a region's edge: held still, they keep a warp inside its region."""
    xs = np.linspace(0, width - 1, per_side)
    ys = np.linspace(0, height - 1, per_side)[1:-1]
    ring = [(x, 0.0) for x in xs] + [(x, height - 1.0) for x in xs]
    ring += [(0.0, y) for y in ys] + [(width - 1.0, y) for y in ys]
    return np.array(ring, dtype=np.float64)


def interpolate(
    points: npt.NDArray[np.float64], values: npt.NDArray[np.float64], *, width: int, height: int
) -> FloatArray:
    """``values`` (n, k) known at ``points`` (n, 2), affine inside each Delaunay triangle,
    at every pixel of a ``width`` x ``height`` region: (height, width, k).

    The points should cover the region (``border_ring``); a pixel outside every triangle
    takes the nearest triangle's affine extension.
    """
    points, keep = np.unique(np.round(points, 3), axis=0, return_index=True)
    values = values[keep]
    subdiv = cv2.Subdiv2D((-2, -2, width + 4, height + 4))
    inside = (
        (points[:, 0] > -2) & (points[:, 0] < width + 2) & (points[:, 1] > -2)
        & (points[:, 1] < height + 2)
    )  # fmt: skip
    points, values = points[inside], values[inside]
    subdiv.insert([(float(x), float(y)) for x, y in points])
    corners = np.asarray(subdiv.getTriangleList(), np.float64).reshape(-1, 3, 2)
    # Back from vertex coordinates to point indices; Subdiv2D's outer vertices match none.
    distance = np.linalg.norm(corners[:, :, None, :] - points[None, None, :, :], axis=3)
    index = distance.argmin(axis=2)
    valid = (distance.min(axis=2) < 0.01).all(axis=1)
    triangles = index[valid]
    a, b, c = (points[triangles[:, i]] for i in range(3))
    edges = np.stack([b - a, c - a], axis=2)  # (t, 2, 2): columns are the two edges
    det = np.linalg.det(edges)
    solid = np.abs(det) > 1e-6
    triangles, a, edges = triangles[solid], a[solid], edges[solid]
    if len(triangles) == 0:
        return np.zeros((height, width, values.shape[1]), np.float32)
    inverse = np.linalg.inv(edges)

    # Which triangle each pixel lies in: rasterised, then cracks filled from neighbours.
    label = np.full((height, width), -1, np.int32)
    for t, tri in enumerate(points[triangles]):
        cv2.fillConvexPoly(label, np.round(tri * 16).astype(np.int32), t, cv2.LINE_8, shift=4)
    while (label < 0).any():
        grown = cv2.dilate(label.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
        label = np.where(label < 0, grown, label)

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    rel = np.stack([xs, ys], axis=2) - a[label]  # (h, w, 2)
    l12 = np.einsum("hwij,hwj->hwi", inverse[label], rel)
    weights = np.concatenate([1.0 - l12.sum(axis=2, keepdims=True), l12], axis=2)  # (h, w, 3)
    field = np.einsum("hwv,hwvk->hwk", weights, values[triangles[label]])
    return np.ascontiguousarray(field, dtype=np.float32)
