"""The FFT form of Ditto's mask convolution (``spectral.SpectralConv3d``) against PyTorch's own.

On the CPU, against ``nn.Conv3d`` in fp64: the same function for the kernels,
extents and channel chunks the engine can meet, the input's dtype kept, the
direct convolution at any other extent, and the same values inside
``torch.compile``. Its speed is measured on the GPU (``benchmarks/gpu/mask_conv.py``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
import torch
from torch import nn

from avatar_runtime.engines.ditto_batched import spectral
from avatar_runtime.engines.ditto_batched.engine import EngineSettings

SpectralConv3d = spectral.spectral_conv3d_class()


def _exact(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    exact: torch.Tensor = copy.deepcopy(conv).double()(x.double())
    return exact


@pytest.mark.parametrize(
    ("kernel", "extent", "channels", "volumes"),
    [
        (7, (5, 9, 11), 6, 0),  # odd extents, everything at once
        (7, (16, 16, 16), 20, 7),  # the mask's kernel, input channels in chunks of 3
        (5, (4, 6, 6), 3, 1),  # one volume at a time
        (3, (2, 8, 8), 9, 256),  # Ditto's depth-2 stand-in extent
    ],
)
def test_it_computes_the_convolution_pytorch_does(
    kernel: int, extent: tuple[int, int, int], channels: int, volumes: int
) -> None:
    torch.manual_seed(0)
    conv = nn.Conv3d(channels, 4, kernel, padding=kernel // 2)
    fft = SpectralConv3d(conv, extent, volumes=volumes)
    x = torch.randn(2, channels, *extent)
    exact = _exact(conv, x)
    ours = fft(x)
    assert ours.shape == exact.shape
    assert ours.dtype == torch.float32
    # fp32 through FFTs: as close to the exact result as PyTorch's own fp32 convolution.
    direct_error = (conv(x).double() - exact).abs().max().item()
    assert (ours.double() - exact).abs().max().item() <= max(2 * direct_error, 1e-5)


def test_the_fft_sizes_cover_the_padding_with_fast_sizes() -> None:
    conv = nn.Conv3d(142, 22, 7, padding=3)
    fft = SpectralConv3d(conv, (16, 64, 64))
    assert fft.sizes == [20, 70, 70]  # 16 + 3 -> 20 (2^2 5), 64 + 3 -> 70 (2 5 7)
    assert [spectral.fast_size(n) for n in (1, 11, 13, 67, 97)] == [1, 12, 14, 70, 98]
    assert fft.spectrum.shape == (20 * 70 * 36, 142, 22)


def test_half_inputs_give_half_outputs() -> None:
    conv = nn.Conv3d(3, 2, 3, padding=1)
    fft = SpectralConv3d(conv, (4, 4, 4))
    x = torch.randn(1, 3, 4, 4, 4)
    out = fft(x.half())
    assert out.dtype == torch.float16
    assert torch.allclose(out.float(), fft(x), atol=1e-2)


def test_another_extent_goes_to_the_direct_convolution() -> None:
    conv = nn.Conv3d(3, 2, 3, padding=1)
    fft = SpectralConv3d(conv, (4, 4, 4))
    x = torch.randn(1, 3, 5, 6, 7)
    assert torch.equal(fft(x), conv(x))


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv3d(3, 2, 3, padding=1, stride=2),
        nn.Conv3d(3, 2, 4, padding=2),
        nn.Conv3d(4, 2, 3, padding=1, groups=2),
        nn.Conv3d(3, 2, 3, padding=0),
        nn.Conv3d(3, 2, 3, padding=1, dilation=2),
        nn.Conv3d(3, 2, 3, padding=1, padding_mode="reflect"),
        nn.Conv3d(3, 2, 3, padding="same"),
    ],
    ids=["stride", "even-kernel", "groups", "valid", "dilation", "reflect", "same-string"],
)
def test_a_convolution_it_cannot_compute_is_refused(conv: nn.Conv3d) -> None:
    with pytest.raises(ValueError, match="not a stride-1"):
        SpectralConv3d(conv, (4, 4, 4))


def test_it_gives_the_same_values_inside_torch_compile() -> None:
    """As the engine's compiled warp + decode calls it: one opaque operator in the graph."""
    torch.manual_seed(1)
    conv = nn.Conv3d(5, 3, 7, padding=3)
    fft = SpectralConv3d(conv, (4, 8, 8), volumes=4)

    def head(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(fft(torch.relu(x)), dim=1)

    x = torch.randn(3, 5, 4, 8, 8)
    compiled = torch.compile(head, dynamic=False)
    assert torch.allclose(compiled(x), head(x), atol=1e-6)


class _DenseMotion(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mask = nn.Conv3d(4, 3, 7, padding=3)


def test_swapping_the_mask_keeps_the_function_and_is_done_once() -> None:
    network = _DenseMotion()
    x = torch.randn(1, 4, 4, 8, 8)
    before = network.mask(x)
    original = spectral.swap_mask(network, (4, 8, 8))
    assert isinstance(network.mask, SpectralConv3d)
    assert torch.allclose(network.mask(x), before, atol=1e-5)
    swapped = network.mask
    assert spectral.swap_mask(network, (4, 8, 8)) is original  # a second engine's swap
    assert network.mask is swapped


def test_the_pod_setting_reaches_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime's settings, as a pod reads them, give the batched engine its mask,
    LMDM precision, decoder rows and job pace (the loader is replaced: Ditto's weights are
    not here)."""
    from avatar_runtime.engines import registry
    from avatar_runtime.engines.ditto_batched import renderer
    from avatar_runtime.settings import EngineSettings as Settings

    seen: dict[str, Any] = {}

    def load(model_dir: Path, *, device: str, settings: EngineSettings) -> object:
        seen.update(device=device, settings=settings)
        return object()

    monkeypatch.setattr(renderer, "load", load)
    base = {"renderer": "ditto", "ditto_batched": True, "model_dir": tmp_path, "device": "cpu"}
    registry.RENDERERS["ditto"](Settings(**base))
    default: EngineSettings = seen["settings"]
    assert default.spectral_mask is True  # on by default
    assert default.lmdm_half is False  # Ditto's fp32 by default
    assert default.compiled is False
    assert default.decoder_rows == 2
    assert default.job_max_fps == 0  # unpaced by default
    registry.RENDERERS["ditto"](
        Settings(
            **base,
            ditto_spectral_mask=False,
            ditto_lmdm_half=True,
            ditto_compiled=True,
            ditto_decoder_rows=0,
            ditto_job_max_speed=4.0,
        )
    )
    chosen: EngineSettings = seen["settings"]
    assert chosen.spectral_mask is False
    assert chosen.lmdm_half is True
    assert chosen.decoder_rows == 0
    assert chosen.compiled is chosen.graphed is True
    assert chosen.job_max_fps == 100.0  # 4 video seconds a second, at Ditto's 25 frames/s
    with pytest.raises(pydantic.ValidationError, match="ditto_job_max_speed"):
        Settings(**base, ditto_job_max_speed=-1.0)
