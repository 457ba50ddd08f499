"""The batched engine's parts against Ditto's own code, where Ditto's code is fetched.

Ditto's code is never part of this repository: these tests run where a checkout
of antgroup/ditto-talkinghead sits in ``.fetched/ditto`` (git-ignored) or where
``DITTO_CODE`` names one, and are skipped otherwise (CI has none; the stand-in
tests in ``test_ditto_batched_engine.py`` run there). On the CPU, with Ditto's
real classes and random weights: the capture stand-ins against Ditto's helpers,
the folded, batched sampler against Ditto's ``LMDM.ddim_sample``, the keypoint
step against Ditto's ``MotionStitch`` (its default path for a still portrait).
Ditto's warping network takes seconds a frame on a CPU: it is compared on the GPU
(``benchmarks/gpu/ditto_batched.py``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from avatar_runtime.engines.ditto_batched import capture, keypoints
from avatar_runtime.engines.ditto_batched.diffusion import FoldedSampler

CODE = Path(os.environ.get("DITTO_CODE", Path(__file__).parents[3] / ".fetched" / "ditto"))

pytestmark = pytest.mark.skipif(
    not (CODE / "core" / "models" / "modules").is_dir(),
    reason=f"Ditto's code is not fetched (no {CODE}; set DITTO_CODE to a checkout)",
)


@pytest.fixture(scope="module")
def ditto() -> Iterator[dict[str, Any]]:
    """Ditto's modules, imported from the checkout, with Ditto's own helpers saved before
    the stand-ins go in; afterwards every module of it is forgotten again."""
    sys.path.insert(0, str(CODE))
    util = importlib.import_module("core.models.modules.util")
    dense_motion = importlib.import_module("core.models.modules.dense_motion")
    saved = {
        "grid": util.make_coordinate_grid,
        "heatmap": dense_motion.DenseMotionNetwork.create_heatmap_representations,
    }
    undo = capture.apply(capture.DittoModules.imported())
    try:
        yield {
            "modules": importlib.import_module("core.models.modules"),
            "dense_motion": dense_motion,
            "motion_stitch": importlib.import_module("core.atomic_components.motion_stitch"),
            "audio2motion": importlib.import_module("core.atomic_components.audio2motion"),
            **saved,
        }
    finally:
        undo()
        for name in [m for m in sys.modules if m.split(".")[0] == "core"]:
            del sys.modules[name]
        sys.path.remove(str(CODE))


def test_the_coordinate_grid_equals_dittos(ditto: dict[str, Any]) -> None:
    for dtype in (torch.float32, torch.float64):
        ref = torch.zeros(1, 21, 3, dtype=dtype)
        ours = capture.coordinate_grid((16, 64, 64), ref)
        assert torch.equal(ours, ditto["grid"]((16, 64, 64), ref))


def test_the_heatmap_equals_dittos(ditto: dict[str, Any]) -> None:
    feature = torch.randn(2, 22, 4, 16, 8, 8)
    kp_d, kp_s = 0.5 * torch.randn(2, 21, 3), 0.5 * torch.randn(2, 21, 3)
    network = ditto["dense_motion"].DenseMotionNetwork
    ours = network.create_heatmap_representations(None, feature, kp_d, kp_s)
    theirs = ditto["heatmap"](None, feature, kp_d, kp_s)
    assert torch.equal(ours, theirs)


def test_the_folded_batched_sampler_matches_dittos_ddim_sample(ditto: dict[str, Any]) -> None:
    """Ditto's LMDM class at a reduced size (20-frame windows, a 64-wide condition; its
    transformer as shipped), so that it runs in seconds on a CPU."""
    torch.manual_seed(0)
    frames, width = 20, 64
    lmdm = (
        ditto["modules"]
        .LMDM(motion_feat_dim=265, audio_feat_dim=width, seq_frames=frames, device="cpu")
        .eval()
    )
    # Ditto's schedule has a NaN at few steps (the square root of a rounding below zero:
    # at 3 steps, and at 5 with torch 2.13); 10 steps give a clean one.
    steps = 10
    sampler = FoldedSampler(lmdm, steps=steps, buckets=(1, 2))
    kp = 0.3 * torch.randn(2, 265)
    aud = 0.5 * torch.randn(2, frames, width)
    noise = torch.randn(2, frames, 265)
    torch.manual_seed(5)
    noise[1] = torch.randn(1, frames, 265)[0]  # what ddim_sample will draw after the same seed
    together = sampler.sample(kp, aud, noise)
    torch.manual_seed(5)
    reference = lmdm.ddim_sample(kp[1:2], aud[1:2], steps)
    assert torch.isfinite(reference).all()
    torch.testing.assert_close(together[1:2], reference, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(together[0:1], reference, atol=1e-2)  # another window differs


def _info(rng: np.random.Generator) -> dict[str, np.ndarray]:
    def f32(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (scale * rng.normal(size=shape)).astype(np.float32)

    return {
        "scale": (1 + f32(1, 1, scale=0.05)).astype(np.float32),
        "pitch": f32(1, 66),
        "yaw": f32(1, 66),
        "roll": f32(1, 66),
        "t": f32(1, 3, scale=0.02),
        "exp": f32(1, 63, scale=0.02),
        "kp": f32(1, 63, scale=0.3),
    }


def test_the_keypoints_match_dittos_motion_stitch(ditto: dict[str, Any]) -> None:
    rng = np.random.default_rng(2)
    x_s_info = _info(rng)
    motion = rng.normal(size=(6, 265)).astype(np.float32)
    stitch_class = ditto["motion_stitch"].MotionStitch
    theirs = stitch_class.__new__(stitch_class)  # no checkpoint: setup needs none
    theirs.setup(is_image_flag=True, x_s_info=x_s_info)
    theirs.stitch_net = lambda source, driving: driving  # compared without stitching
    to_dict = ditto["audio2motion"]._cvt_LP_motion_info
    expected = [theirs(x_s_info, to_dict(m, "arr2dic"))[1] for m in motion]

    portrait = keypoints.PortraitMotion.of(x_s_info, device="cpu")
    ours = portrait.drive(
        torch.from_numpy(motion), torch.from_numpy(motion[0]), lambda source, driving: driving
    )
    np.testing.assert_allclose(ours.numpy(), np.concatenate(expected), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        portrait.x_s.numpy(), theirs.x_s[0], rtol=1e-5, atol=1e-6
    )  # the portrait's own keypoints too


def test_dittos_stitching_network_takes_the_batch(ditto: dict[str, Any]) -> None:
    stitch = ditto["modules"].StitchingNetwork().eval()
    x_s, x_d = torch.randn(5, 21, 3), torch.randn(5, 21, 3)
    with torch.no_grad():
        together = stitch(x_s, x_d)
        alone = torch.cat([stitch(x_s[i : i + 1], x_d[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_the_fft_mask_keeps_dittos_dense_motion(ditto: dict[str, Any]) -> None:
    """Ditto's ``DenseMotionNetwork`` at a reduced size (8 feature channels over 16 x 16 x
    16; Ditto's mask kernel, 7 x 7 x 7, over 118 channels): the same mask, deformation and
    occlusion with the FFT mask (``spectral.swap_mask``) as with Ditto's own."""
    from avatar_runtime.engines.ditto_batched import spectral

    torch.manual_seed(3)
    network = (
        ditto["dense_motion"]
        .DenseMotionNetwork(
            block_expansion=8,
            num_blocks=2,
            max_features=32,
            num_kp=21,
            feature_channel=8,
            reshape_depth=16,
            compress=4,
        )
        .eval()
    )
    feature = torch.randn(2, 8, 16, 16, 16)
    kp_s = 0.3 * torch.randn(2, 21, 3)
    kp_d = kp_s + 0.05 * torch.randn(2, 21, 3)
    with torch.no_grad():
        theirs = network(feature, kp_d, kp_s)
        spectral.swap_mask(network.float(), (16, 16, 16))
        ours = network(feature, kp_d, kp_s)
    assert isinstance(network.mask, spectral.spectral_conv3d_class())
    assert network.mask.spatial == (16, 16, 16)  # the FFT path, not the direct fallback
    for key in ("mask", "deformation", "occlusion_map"):
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-5)


def test_the_decoder_in_row_chunks_gives_dittos_frames(ditto: dict[str, Any]) -> None:
    """Ditto's ``SPADEDecoder`` at a reduced size (64 channels over 8 x 8): its 64 x 64
    half on the whole batch and its upsampling half 2 rows at a time (``FrameRenderer``,
    ``decoder_rows=2``) give the frames its own ``forward`` gives, scaled as Ditto's
    wrapper scales them."""
    from avatar_runtime.engines.ditto_batched.frames import FrameRenderer

    torch.manual_seed(4)
    decoder = ditto["modules"].SPADEDecoder(block_expansion=16, max_features=64).eval()

    class Unwarped(torch.nn.Module):
        def forward(self, feature: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
            return feature

    feature = torch.randn(5, 64, 8, 8)
    keypoints_ = torch.zeros(5, 21, 3)
    renderer = FrameRenderer(Unwarped(), decoder, decoder_rows=2)
    assert len(renderer._middle) == 6  # Ditto's layout: split after its 64 x 64 half
    with torch.no_grad():
        theirs = (decoder(feature).permute(0, 2, 3, 1).clamp(0, 1) * 255).to(torch.uint8)
    ours = renderer.render(feature, keypoints_, keypoints_)
    assert ours.shape == theirs.shape == (5, 64, 64, 3)  # x 8: two upsamplings, a shuffle
    assert int((ours.int() - theirs.int()).abs().max()) <= 1
    assert float(theirs.float().std()) > 1.0
