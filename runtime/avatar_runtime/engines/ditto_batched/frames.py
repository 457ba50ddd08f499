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

The decoder takes a batch ``decoder_rows`` frames at a time. Its SPADE blocks at
256 x 256 hold most of a batch's intermediates (2.8 of the 3.4 GB peak for a
batch of 8, eager, H200): a graph's pool keeps its largest batch's peak for
good, and a decoder of 2 rows at that resolution still fills the GPU. Warp and
decoder are compiled apart, so the decoder is compiled for ``decoder_rows``
rows (and any smaller remainder) once, whatever the buckets.
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
        self._warp_fn = self._warp_eager
        self._decode_fn = self._decode_eager
        if compiled:
            import torch

            self._warp_fn = torch.compile(self._warp_eager, dynamic=False)
            self._decode_fn = torch.compile(self._decode_eager, dynamic=False)
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

    def _warp_eager(
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        import torch

        with torch.autocast("cuda", dtype=torch.float16, enabled=feature.is_cuda):
            warped: torch.Tensor = self._warp(feature, kp_source, kp_driving)
        return warped

    def _decode_eager(self, warped: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.autocast("cuda", dtype=torch.float16, enabled=warped.is_cuda):
            image = self._decoder(warped)
        scaled: torch.Tensor = image.float().permute(0, 2, 3, 1).clamp(0, 1) * 255
        return scaled.to(torch.uint8)

    def _fn(
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        import torch

        warped = self._warp_fn(feature, kp_source, kp_driving)
        if not self.decoder_rows or warped.shape[0] <= self.decoder_rows:
            return self._decode_fn(warped)
        parts = torch.split(warped, self.decoder_rows)
        return torch.cat([self._decode_fn(part) for part in parts])

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
