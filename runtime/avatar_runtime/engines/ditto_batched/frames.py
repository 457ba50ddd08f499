"""Warp + decode for a batch of frames from any jobs: eager, or compiled and graphed per bucket.

Per frame, Ditto warps the portrait's 3-D appearance features by the source and
driving keypoints (``WarpingNetwork``) and decodes the result into a 512 x 512
image (``SPADEDecoder``), both in fp16 autocast as Ditto's wrappers run them.
``FrameRenderer.render`` does it for a batch whose rows may come from different
jobs (each row has its own portrait features), and gives RGB frames as uint8 on
the GPU, as Ditto's decoder wrapper scales them (clip to [0, 1], x 255, cut to
integers).

Compiled (``torch.compile``, default mode) and captured as one CUDA graph per
batch-size bucket, the work is done once, at load: each bucket is compiled,
warmed and captured before the first job, and a batch is then a copy into the
bucket's static inputs, a replay and a copy out. ``capture.apply`` must have
been done (Ditto's warp otherwise copies from the CPU inside the graph).

The decoder's upsampling half takes a batch ``decoder_rows`` frames at a time.
Ditto's ``SPADEDecoder`` runs six SPADE blocks at 64 x 64, then two at 128 x 128
and 256 x 256; those two hold most of a batch's intermediates (2.9 of the 3.4 GB
peak for a batch of 8, eager, H200), and a graph's pool keeps its largest
batch's peak for good. So the warp and the 64 x 64 half (most of the decoder's
arithmetic) run on the whole batch, compiled per bucket, and the upsampling
half (Ditto's own modules, in ``SPADEDecoder.forward``'s order) on
``decoder_rows`` rows at a time, compiled for that many rows (and any smaller
remainder) once, whatever the buckets. A decoder of another layout is split
whole.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from avatar_runtime.engines.ditto_batched import buckets as buckets_

if TYPE_CHECKING:
    import torch


class FrameRenderer:
    def __init__(
        self,
        warp: Any,
        decoder: Any,
        *,
        buckets: Sequence[int] = buckets_.DEFAULT_BUCKETS,
        compiled: bool = False,
        graphed: bool = False,
        feature_shape: tuple[int, ...] = (32, 16, 64, 64),
        keypoints: int = 21,
        decoder_rows: int = 0,
        pool: Any = None,
    ) -> None:
        self._pool = pool
        """The graphs' memory pool, as ``FoldedSampler``'s."""
        self._warp = warp
        self._decoder = decoder
        self.buckets = buckets_.checked(buckets)
        self.compiled = compiled
        self.graphed = graphed
        self._feature_shape = feature_shape
        self._keypoints = keypoints
        if decoder_rows < 0:
            raise ValueError(f"decoder_rows must be 0 (the whole batch) or more: {decoder_rows}")
        self.decoder_rows = decoder_rows
        """Rows the decoder takes at once; 0: the whole batch."""
        self._middle = _spade_middle(decoder)
        """Ditto's ``G_middle_*`` blocks in order, where the decoder is a ``SPADEDecoder``;
        empty for any other decoder (split whole)."""
        self._front_fn = self._front_eager
        self._back_fn = self._back_eager
        if compiled:
            import torch

            self._front_fn = torch.compile(self._front_eager, dynamic=False)
            self._back_fn = torch.compile(self._back_eager, dynamic=False)
        self._graphs: dict[int, tuple[Any, dict[str, torch.Tensor]]] = {}
        self.prepare_seconds: dict[int, float] = {}
        """Per bucket: compiling, warming and capturing, at load."""
        if compiled or graphed:
            for bucket in buckets_.capture_order(self.buckets):
                began = time.perf_counter()
                self._prepare(bucket)
                self.prepare_seconds[bucket] = time.perf_counter() - began

    @property
    def max_batch(self) -> int:
        return self.buckets[-1]

    def _front_eager(
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The warp, and a SPADE decoder's 64 x 64 half: (its output, the warped features
        every SPADE block is conditioned on)."""
        import torch

        with torch.autocast("cuda", dtype=torch.float16, enabled=feature.is_cuda):
            warped: torch.Tensor = self._warp(feature, kp_source, kp_driving)
            if not self._middle:
                return warped, warped
            x = self._decoder.fc(warped)
            for block in self._middle:
                x = block(x, warped)
        return x, warped

    def _back_eager(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """The rest of the decoder (``SPADEDecoder.forward`` from its first upsampling), to
        RGB uint8 frames."""
        import torch

        decoder = self._decoder
        with torch.autocast("cuda", dtype=torch.float16, enabled=x.is_cuda):
            if not self._middle:
                image = decoder(x)
            else:
                x = decoder.up_0(decoder.up(x), seg)
                x = decoder.up_1(decoder.up(x), seg)
                x = decoder.conv_img(torch.nn.functional.leaky_relu(x, 2e-1))
                image = torch.sigmoid(x)
        scaled: torch.Tensor = image.float().permute(0, 2, 3, 1).clamp(0, 1) * 255
        return scaled.to(torch.uint8)

    def _fn(
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        import torch

        x, seg = self._front_fn(feature, kp_source, kp_driving)
        if not self.decoder_rows or x.shape[0] <= self.decoder_rows:
            return self._back_fn(x, seg)
        rows = self.decoder_rows
        parts = zip(torch.split(x, rows), torch.split(seg, rows), strict=True)
        return torch.cat([self._back_fn(part, its_seg) for part, its_seg in parts])

    def _prepare(self, bucket: int) -> None:
        import torch

        device = next(self._warp.parameters()).device
        static = {
            "feature": torch.randn(bucket, *self._feature_shape, device=device),
            "kp_source": torch.randn(bucket, self._keypoints, 3, device=device) * 0.1,
            "kp_driving": torch.randn(bucket, self._keypoints, 3, device=device) * 0.1,
        }
        with torch.no_grad():
            side = torch.cuda.Stream() if self.graphed else None  # type: ignore[no-untyped-call]
            if side is not None:
                side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
                for _ in range(3):  # compile (first call), then settle the allocator
                    self._fn(static["feature"], static["kp_source"], static["kp_driving"])
            if side is not None:
                torch.cuda.current_stream().wait_stream(side)
            torch.cuda.synchronize()
            if not self.graphed:
                return
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                static["out"] = self._fn(
                    static["feature"], static["kp_source"], static["kp_driving"]
                )
        self._graphs[bucket] = (graph, static)

    def render(
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        """``feature`` (n, 32, 16, 64, 64), keypoints (n, 21, 3) each; returns (n, 512, 512,
        3) uint8 on the GPU."""
        import torch

        rows = feature.shape[0]
        if not self.graphed:
            with torch.no_grad():
                return self._fn(feature, kp_source, kp_driving)
        bucket = buckets_.bucket_for(rows, self.buckets)
        graph, static = self._graphs[bucket]
        static["feature"][:rows].copy_(feature)
        static["kp_source"][:rows].copy_(kp_source)
        static["kp_driving"][:rows].copy_(kp_driving)
        # Rows past ``rows`` keep an earlier batch's inputs: valid, and their output dropped.
        graph.replay()
        return static["out"][:rows].clone()


_SPADE_PARTS = ("fc", "up", "up_0", "up_1", "conv_img")


def _spade_middle(decoder: Any) -> list[Any]:
    """A ``SPADEDecoder``'s ``G_middle_0``, ``G_middle_1``, ... blocks; [] when the decoder
    does not have Ditto's layout (then it is called whole)."""
    if not all(hasattr(decoder, name) for name in _SPADE_PARTS):
        return []
    blocks: list[Any] = []
    while hasattr(decoder, f"G_middle_{len(blocks)}"):
        blocks.append(getattr(decoder, f"G_middle_{len(blocks)}"))
    return blocks
