"""Ditto's 7 x 7 x 7 dense-motion mask convolution, computed through FFTs.

The dense-motion network's ``mask`` (``nn.Conv3d(142, 22, kernel_size=7,
padding=3)`` over a 16 x 64 x 64 volume; Ditto's own comment on it: "65G!
computation cost is large") is one cuDNN kernel that takes 29 % of the
renderer's GPU time on the H200 (docs/benchmarks.md, "What limits the
renderer"). A convolution is a product in the frequency domain: with the
kernel's spectrum computed once, a frame costs one real FFT of its input, a
contraction over the 142 input channels per frequency and one inverse FFT of
the 22 outputs, about 3 GFLOP instead of 140 (and memory-bound, not
FLOP-bound).

``SpectralConv3d`` is a drop-in for a stride-1, "same"-padded ``nn.Conv3d``
with an odd kernel: it computes in fp32 (more exact than the fp16 cuDNN kernel
that Ditto's autocast runs, against an fp64 convolution) and gives its input's
dtype back. The FFT size per axis is the
smallest fast size at least the input's length plus the padding, which is all a
circular convolution needs to equal the zero-padded one on the output's
extent. The spectrum is made once, for one input extent, on the convolution's
device: 1.3 GB for Ditto's sizes, and the input's spectra are made a few input
channels at a time (``VOLUMES``) so that what a batch needs beside it stays
near 0.3 GB. Measured on the H200 (``benchmarks/gpu/mask_conv.py``): 9.3 ms ->
4.5 ms at a batch of 8, error against fp64 half of cuDNN's in fp16.

It is registered as a custom operator (``avatar_ditto::spectral_conv3d``), so
``torch.compile`` treats it as one opaque call rather than tracing complex
arithmetic, and CUDA graph capture records cuFFT's kernels like any others (the
FFT plans are made in the warm-up runs before capture).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

VOLUMES = 256
"""Volumes (rows x input channels) transformed at once: 32 of the mask's 142 input
channels at a batch of 8, whose intermediates then take 0.34 GB instead of 1.28 GB, for
16 % more time in the layer (4.50 against 3.88 ms; H200, benchmarks/gpu/mask_conv.py)."""


def fast_size(n: int) -> int:
    """The smallest size >= ``n`` whose prime factors are 2, 3, 5 and 7 (cuFFT's and
    pocketfft's fast radices)."""
    size = max(1, n)
    while True:
        rest = size
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return size
        size += 1


@functools.cache
def operator() -> Any:
    """The custom operator, registered on first use (the module imports without torch)."""
    import torch

    @torch.library.custom_op(
        "avatar_ditto::spectral_conv3d",
        mutates_args=(),
        # Given, not inferred: this module's annotations are strings (``__future__``).
        schema="(Tensor x, Tensor spectrum, Tensor bias, int[] sizes, int volumes) -> Tensor",
    )
    def spectral_conv3d(
        x: torch.Tensor, spectrum: torch.Tensor, bias: torch.Tensor, sizes: list[int], volumes: int
    ) -> torch.Tensor:
        """``x`` (b, c, d, h, w) in any float dtype; ``spectrum`` (f, c, o) complex64, f the
        frequencies of an FFT of ``sizes``, flattened; returns (b, o, d, h, w) in ``x``'s
        dtype. At most ``volumes`` (rows x input channels) are transformed at once (0: all):
        the sum over input channels is accumulated chunk by chunk, so the spectrum is still
        read once, and the intermediates (an input chunk's spectrum and its transpose) stay
        at a fraction of a whole batch's (1.28 GB at a batch of 8 in one go)."""
        b, c, *spatial = x.shape
        dims = (-3, -2, -1)
        step = c if volumes <= 0 else max(1, min(c, volumes // max(1, b)))
        out_channels = spectrum.shape[2]
        mixed: torch.Tensor | None = None
        freq: tuple[int, ...] = ()
        for first in range(0, c, step):
            part = x[:, first : first + step].float()
            spectral = torch.fft.rfftn(part, s=sizes, dim=dims)  # (b, step, nd, nh, nw//2+1)
            freq = tuple(spectral.shape[2:])
            rows = spectral.reshape(b, part.shape[1], -1).permute(2, 0, 1)  # (f, b, step)
            weights = spectrum[:, first : first + step]  # (f, step, o)
            mixed = torch.bmm(rows, weights) if mixed is None else mixed.baddbmm_(rows, weights)
            del spectral, rows, part  # freed before the next chunk's are made
        assert mixed is not None  # c >= 1
        mixed = mixed.permute(1, 2, 0).reshape(b, out_channels, *freq)
        full = torch.fft.irfftn(mixed, s=sizes, dim=dims)
        d, h, w = spatial
        out = full[:, :, :d, :h, :w] + bias.view(1, -1, 1, 1, 1)
        result: torch.Tensor = out.to(x.dtype).contiguous()
        return result

    @spectral_conv3d.register_fake
    def _(
        x: torch.Tensor, spectrum: torch.Tensor, bias: torch.Tensor, sizes: list[int], volumes: int
    ) -> torch.Tensor:
        b, _, d, h, w = x.shape
        return x.new_empty((b, spectrum.shape[2], d, h, w))

    return spectral_conv3d


def kernel_spectrum(
    weight: torch.Tensor, sizes: tuple[int, int, int], padding: tuple[int, int, int]
) -> torch.Tensor:
    """(f, c, o) complex64: the spectrum of a cross-correlation kernel ``weight`` (o, c, k,
    k, k) as a circular convolution of FFT size ``sizes``, centred by ``padding``."""
    import torch

    out_channels, in_channels, *kernel = weight.shape
    frequencies = sizes[0] * sizes[1] * (sizes[2] // 2 + 1)
    spectrum = weight.new_empty((frequencies, in_channels, out_channels), dtype=torch.complex64)
    # One output channel at a time: the whole kernel padded to FFT size is 1.2 GB for Ditto's
    # mask, and its temporaries would stay in the allocator's cache (NVML counts them).
    for o in range(out_channels):
        placed = weight.new_zeros((in_channels, *sizes), dtype=torch.float32)
        # Correlation is convolution with the flipped kernel; its centre goes to index 0.
        placed[:, : kernel[0], : kernel[1], : kernel[2]] = torch.flip(
            weight[o].float(), dims=(-3, -2, -1)
        )
        placed = torch.roll(placed, shifts=tuple(-p for p in padding), dims=(-3, -2, -1))
        spectrum[:, :, o] = torch.fft.rfftn(placed, dim=(-3, -2, -1)).reshape(in_channels, -1).T
    return spectrum


@functools.cache
def spectral_conv3d_class() -> Any:
    """``SpectralConv3d``: an ``nn.Module`` made from a ``nn.Conv3d`` (built on first use:
    the module imports without torch)."""
    import torch

    class SpectralConv3d(torch.nn.Module):
        """``conv`` for inputs of extent ``spatial`` (depth, height, width), its kernel's
        spectrum made once, here, on the convolution's device; inputs of any other extent
        go to ``conv`` itself."""

        def __init__(
            self, conv: torch.nn.Conv3d, spatial: tuple[int, int, int], volumes: int = VOLUMES
        ) -> None:
            super().__init__()
            kernel = tuple(conv.kernel_size)
            padding = conv.padding
            if (
                conv.groups != 1
                or tuple(conv.stride) != (1, 1, 1)
                or tuple(conv.dilation) != (1, 1, 1)
                or isinstance(padding, str)
                or any(k % 2 == 0 or p != k // 2 for k, p in zip(kernel, padding, strict=True))
                or conv.padding_mode != "zeros"
            ):
                raise ValueError(f"not a stride-1, same-padded, odd-kernel convolution: {conv}")
            pads = tuple(int(p) for p in padding)
            self.volumes = volumes
            self.spatial = tuple(int(n) for n in spatial)
            self.sizes = [fast_size(n + p) for n, p in zip(self.spatial, pads, strict=True)]
            bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
            with torch.no_grad():
                spectrum = kernel_spectrum(conv.weight, tuple(self.sizes), pads)  # type: ignore[arg-type]
            self.register_buffer("spectrum", spectrum, persistent=False)
            self.register_buffer("bias", bias.detach().float().clone(), persistent=False)
            self.direct = conv

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if tuple(x.shape[2:]) != self.spatial:
                direct: torch.Tensor = self.direct(x)
                return direct
            out: torch.Tensor = operator()(x, self.spectrum, self.bias, self.sizes, self.volumes)
            return out

    return SpectralConv3d


def swap_mask(dense_motion: Any, spatial: tuple[int, int, int] = (16, 64, 64)) -> Any:
    """Put a ``SpectralConv3d`` in place of ``dense_motion.mask`` (a Ditto
    ``DenseMotionNetwork`` whose volumes have extent ``spatial``); returns the convolution
    it replaced."""
    original = dense_motion.mask
    if isinstance(original, spectral_conv3d_class()):
        return original.direct  # swapped already
    dense_motion.mask = spectral_conv3d_class()(original, spatial)
    return original
