"""The batched Ditto engine's parts on the CPU: a job's motion track, the capture stand-ins,
the keypoint transform (each against a reference written from Ditto's formulas here;
``test_ditto_batched_with_ditto.py`` compares them with Ditto's own code where it is
fetched)."""

from __future__ import annotations

import math
import subprocess
import sys
import types
from typing import Any

import numpy as np
import pytest
import torch

from avatar_runtime.engines.ditto_batched import capture, keypoints
from avatar_runtime.engines.ditto_batched.motion import MotionTrack, smooth

MOTION = keypoints.MOTION_DIM


def _track(**kwargs: Any) -> MotionTrack:
    return MotionTrack(
        kp_cond=torch.zeros(MOTION), generator=torch.Generator().manual_seed(0), **kwargs
    )


def _run(track: MotionTrack, diffuse: Any) -> list[torch.Tensor]:
    shown = []
    while (window := track.next_window()) is not None:
        shown.append(track.accept(window, diffuse(window)))
    return shown


@pytest.mark.parametrize("frames", [1, 69, 70, 75, 80, 81, 150, 151, 300])
def test_the_windows_give_exactly_one_motion_per_audio_frame(frames: int) -> None:
    track = _track()
    track.feed(torch.zeros(frames, 4))
    track.end()
    shown = _run(track, lambda w: torch.zeros(80, MOTION))
    assert sum(len(s) for s in shown) == frames
    assert track.done
    assert track.frames_out == frames
    assert all(len(s) == 70 for s in shown[:-1])


def test_a_window_waits_until_the_audio_covers_it_or_ends() -> None:
    track = _track()
    track.feed(torch.zeros(79, 4))
    assert track.next_window() is None
    track.feed(torch.zeros(1, 4))
    window = track.next_window()
    assert window is not None
    assert window.valid == 70
    assert track.next_window() is None  # one window in flight at a time
    track.accept(window, torch.zeros(80, MOTION))
    assert track.next_window() is None  # 10 frames left, more audio may come
    track.end()
    last = track.next_window()
    assert last is not None
    assert last.valid == 10
    assert torch.equal(last.aud_cond[10:], last.aud_cond[9:10].expand(70, -1))  # padded
    with pytest.raises(RuntimeError, match="ended"):
        track.feed(torch.zeros(1, 4))


def test_each_window_crossfades_into_the_last_and_continues_from_it() -> None:
    track = _track()
    track.feed(torch.arange(150, dtype=torch.float32)[:, None].expand(-1, 4))
    track.end()
    conds: list[torch.Tensor] = []
    kp_conds: list[torch.Tensor] = []
    ramp = torch.arange(80, dtype=torch.float32)[:, None].expand(-1, MOTION)

    def diffuse(window: Any) -> torch.Tensor:  # window k: 100 k + its frame's index
        conds.append(window.aud_cond[:, 0].clone())
        kp_conds.append(window.kp_cond.clone())
        out: torch.Tensor = ramp + 100 * window.index
        return out

    shown = _run(track, diffuse)
    assert [len(s) for s in shown] == [70, 70, 10]
    assert torch.equal(conds[1][:3], torch.tensor([70.0, 71.0, 72.0]))  # windows every 70
    exp = slice(202, MOTION)  # the expression is not smoothed: the cross-fade shows plainly
    alpha = torch.arange(10)[:, None] / 10
    for k in (1, 2):
        tail = ramp[70:80, exp] + 100 * (k - 1)  # the last window's unshown frames
        head = ramp[:10, exp] + 100 * k
        expected = tail * (1 - alpha) + head * alpha
        torch.testing.assert_close(shown[k][:10, exp], expected)
    torch.testing.assert_close(shown[1][10:, exp], ramp[10:70, exp] + 100)
    # each window continues from the last frame shown of the one before
    assert torch.equal(kp_conds[0], torch.zeros(MOTION))
    assert torch.equal(kp_conds[1], shown[0][69])
    assert torch.equal(kp_conds[2], shown[1][69])


def test_smoothing_averages_the_pose_with_its_neighbours_as_they_were() -> None:
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(12, MOTION)).astype(np.float32)
    ours = torch.from_numpy(seq.copy())
    smooth(ours, 3, 9)
    expected = seq.copy()
    for i in range(3, 9):
        expected[i, :202] = seq[max(0, i - 1) : min(12, i + 2), :202].mean(axis=0)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-6)
    edges = torch.from_numpy(seq.copy())
    smooth(edges, 0, 12)
    np.testing.assert_allclose(edges[0, :202].numpy(), seq[:2, :202].mean(axis=0), rtol=1e-5)


def _grid_reference(d: int, h: int, w: int) -> np.ndarray:
    z, y, x = np.meshgrid(
        np.linspace(-1, 1, d), np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij"
    )
    return np.stack([x, y, z], axis=3)


def test_the_coordinate_grid_is_made_where_its_reference_lives() -> None:
    ref = torch.zeros(2, 21, 3, dtype=torch.float64)
    grid = capture.coordinate_grid((3, 4, 5), ref)
    assert grid.shape == (3, 4, 5, 3)
    assert grid.dtype == torch.float64
    assert grid.device == ref.device
    np.testing.assert_allclose(grid.numpy(), _grid_reference(3, 4, 5), atol=1e-12)
    assert grid.view(1, 1, 3, 4, 5, 3).shape[-1] == 3  # Ditto views it: it is contiguous


def test_the_mask_helper_takes_a_mask_per_sample_and_leaves_numbers_to_dittos() -> None:
    calls: list[Any] = []

    def original(shape: Any, prob: Any, device: Any) -> torch.Tensor:
        calls.append(prob)
        return torch.ones(shape, dtype=torch.bool)

    helper = capture.per_sample_mask(original)
    mask = helper((4,), 1 - torch.tensor([1.0, 1.0, 0.0, 0.0]), "cpu")
    assert mask.tolist() == [False, False, True, True]
    assert calls == []
    helper((4,), 1.0, "cpu")
    assert calls == [1.0]


def _grids(modules: capture.DittoModules) -> tuple[Any, Any]:
    return modules.util.make_coordinate_grid, modules.dense_motion.make_coordinate_grid


def test_apply_swaps_the_helpers_in_and_undo_puts_dittos_back() -> None:
    class DenseMotionNetwork:
        def create_heatmap_representations(self, *args: Any) -> Any:
            return "ditto's"

    def kp2gaussian(kp: torch.Tensor, spatial_size: Any, kp_variance: float) -> torch.Tensor:
        return kp.sum(-1)[..., None, None, None].expand(*kp.shape[:2], *spatial_size) + 0

    def grid(*args: Any, **kwargs: Any) -> str:
        return "ditto's grid"

    def mask(shape: Any, prob: Any, device: Any) -> str:
        return "ditto's mask"

    modules = capture.DittoModules(
        util=types.SimpleNamespace(make_coordinate_grid=grid),
        dense_motion=types.SimpleNamespace(
            make_coordinate_grid=grid,
            DenseMotionNetwork=DenseMotionNetwork,
            kp2gaussian=kp2gaussian,
        ),
        lmdm_model=types.SimpleNamespace(prob_mask_like=mask),
    )
    undo = capture.apply(modules)
    assert _grids(modules) == (capture.coordinate_grid, capture.coordinate_grid)
    heatmap = DenseMotionNetwork().create_heatmap_representations(
        torch.zeros(2, 22, 4, 3, 5, 5), torch.ones(2, 21, 3), torch.zeros(2, 21, 3)
    )
    assert heatmap.shape == (2, 22, 1, 3, 5, 5)
    assert torch.equal(heatmap[:, 0], torch.zeros(2, 1, 3, 5, 5))  # background channel
    assert torch.equal(heatmap[:, 1:], torch.full((2, 21, 1, 3, 5, 5), 3.0))  # driving - source
    assert modules.lmdm_model.prob_mask_like((1,), 1.0, "cpu") == "ditto's mask"
    assert capture.apply(modules)() is None  # applied twice: the second is a no-op
    undo()
    assert _grids(modules) == (grid, grid)
    assert modules.lmdm_model.prob_mask_like((1,), 1.0, "cpu") == "ditto's mask"
    assert DenseMotionNetwork().create_heatmap_representations() == "ditto's"


def test_angle_bins_give_degrees_three_a_bin_from_minus_97_5() -> None:
    bins = torch.full((3, 66), -1e4)
    for row, index in enumerate((0, 33, 65)):
        bins[row, index] = 0
    torch.testing.assert_close(keypoints.degrees(bins), torch.tensor([-97.5, 1.5, 97.5]))


def test_the_rotation_is_dittos_euler_matrix() -> None:
    pitch, yaw, roll = torch.tensor([10.0]), torch.tensor([-20.0]), torch.tensor([30.0])
    rot = keypoints.rotation(pitch, yaw, roll)[0].double()
    x, y, z = (math.radians(a) for a in (10.0, -20.0, 30.0))
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    np.testing.assert_allclose(rot.numpy(), (rz @ ry @ rx).T, atol=1e-6)


def _info(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "scale": 1 + 0.05 * rng.normal(size=(1, 1)),
        "pitch": rng.normal(size=(1, 66)),
        "yaw": rng.normal(size=(1, 66)),
        "roll": rng.normal(size=(1, 66)),
        "t": 0.02 * rng.normal(size=(1, 3)),
        "exp": 0.02 * rng.normal(size=(1, 63)),
        "kp": 0.3 * rng.normal(size=(1, 63)),
    }


def test_motion_equal_to_the_first_frames_drives_the_portrait_as_it_is() -> None:
    portrait = keypoints.PortraitMotion.of(_info(1), device="cpu")
    first = torch.randn(keypoints.MOTION_DIM)
    x_d = portrait.drive(first.expand(3, -1), first, lambda source, driving: driving)
    torch.testing.assert_close(x_d, portrait.x_s.expand(3, -1, -1), rtol=1e-5, atol=1e-5)
    moved = first.clone()
    moved[keypoints.SLICES["exp"]] += 0.1  # expression: only lips and eyes follow
    x_moved = portrait.drive(moved[None], first, lambda source, driving: driving)
    changed = (x_moved[0] - portrait.x_s).abs().sum(-1) > 1e-6
    assert set(torch.nonzero(changed).flatten().tolist()) == set(keypoints.LIPS + keypoints.EYES)


def test_the_package_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import avatar_runtime.engines.ditto_batched as b\n"
        "from avatar_runtime.engines.ditto_batched import capture, diffusion, frames, keypoints,"
        " motion, networks\n"
        "assert b.BatchScheduler and b.BatchedDittoEngine\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
