"""Piecewise-affine fields: exact at the landmarks, affine between them."""

from __future__ import annotations

import numpy as np

from avatar_runtime.engines.opencv_renderer import mesh_warp


def test_an_affine_motion_is_reproduced_everywhere() -> None:
    rng = np.random.default_rng(3)
    points = np.concatenate([rng.uniform(5, 55, (20, 2)), mesh_warp.border_ring(60, 40)])
    points[:, 1] *= 40 / 60
    values = np.stack([0.3 * points[:, 0] - 2.0, points[:, 0] * 0.1 + points[:, 1] * 0.5], axis=1)
    field = mesh_warp.interpolate(points, values, width=60, height=40)
    ys, xs = np.mgrid[0:40, 0:60]
    assert field.shape == (40, 60, 2)
    assert np.allclose(field[..., 0], 0.3 * xs - 2.0, atol=1e-3)
    assert np.allclose(field[..., 1], 0.1 * xs + 0.5 * ys, atol=1e-3)


def test_a_moved_point_moves_only_its_neighbourhood() -> None:
    ring = mesh_warp.border_ring(80, 80)
    points = np.concatenate([ring, [[40.0, 40.0], [20.0, 20.0], [60.0, 60.0]]])
    values = np.zeros((len(points), 1))
    values[len(ring)] = 5.0  # only the middle point moves
    field = mesh_warp.interpolate(points, values, width=80, height=80)[..., 0]
    assert field[40, 40] == np.float32(5.0)
    assert abs(field[20, 20]) < 1e-6
    assert abs(field[60, 60]) < 1e-6
    assert np.abs(field[0]).max() < 1e-6
    assert np.abs(field[:, 0]).max() < 1e-6
    assert 0.0 < field[40, 30] < 5.0
