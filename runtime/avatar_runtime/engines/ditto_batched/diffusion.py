"""LMDM motion diffusion for many jobs' windows at once, guidance folded into one batch.

Ditto's sampler (``LMDM.ddim_sample``) diffuses one 80-frame window at a time
and runs its denoiser twice per step, once without the audio condition and
once with it (classifier-free guidance, weight 2). Here the windows of several
jobs go through each of the 50 DDIM steps together, and both guidance passes
go into the same batch (the first half with the condition dropped, the second
with it kept, through the per-sample mask of ``capture.per_sample_mask``): one
denoiser call of ``2 x windows`` rows per step instead of ``2 x windows``
calls of one row.

The schedule (time pairs, the per-step coefficients and noise) is the one
Ditto's own ``LMDM.setup`` computes; the starting noise of each window is given
by the caller (drawn from the job's own generator), so a window's motion does
not depend on which other windows share its batch. In fp32, as Ditto runs its
LMDM; ``half`` runs the denoiser (not the DDIM update) in fp16 autocast
instead, which Ditto does not. With ``graphed``, the whole 50-step loop is
captured as one CUDA graph per batch-size bucket at load, and a batch is a copy
in, a replay and a copy out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from avatar_runtime.engines.ditto_batched import buckets as buckets_

if TYPE_CHECKING:
    import torch


class FoldedSampler:
    """Ditto's DDIM loop over a batch of windows; ``lmdm`` is Ditto's ``LMDM`` module with
    ``capture.apply`` done (its denoiser must take a per-sample drop mask)."""

    def __init__(
        self,
        lmdm: Any,
        *,
        steps: int = 50,
        buckets: Sequence[int] = buckets_.DEFAULT_BUCKETS,
        graphed: bool = False,
        half: bool = False,
        pool: Any = None,
    ) -> None:
        lmdm.setup(steps)
        self.half = half
        self._pool = pool
        """The graphs' memory pool (``torch.cuda.graph_pool_handle``), shared with other
        graphs that never replay at the same time; None: a pool per graph."""
        self._lmdm = lmdm
        self.buckets = buckets_.checked(buckets)
        self.frames = int(lmdm.seq_frames)
        self.motion_dim = int(lmdm.motion_feat_dim)
        self.graphed = graphed
        self._graphs: dict[int, tuple[Any, dict[str, torch.Tensor]]] = {}
        if graphed:
            for bucket in buckets_.capture_order(self.buckets):
                self._graphs[bucket] = self._capture(bucket)

    @property
    def max_batch(self) -> int:
        return self.buckets[-1]

    def _loop(self, kp_cond: torch.Tensor, aud_cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        import torch

        lmdm = self._lmdm
        rows = x.shape[0]
        drop = torch.cat([x.new_ones(rows), x.new_zeros(rows)])  # unguided, then guided
        cond_frame = torch.cat([kp_cond, kp_cond])
        cond = torch.cat([aud_cond, aud_cond])
        weight = lmdm.guidance_weight
        for i, (_, time_next) in enumerate(lmdm.time_pairs):
            time = lmdm.time_cond_list[i].expand(rows)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.half and x.is_cuda):
                both = lmdm.model(
                    torch.cat([x, x]), cond_frame, cond, torch.cat([time, time]), drop
                )
            both = both.float()  # the DDIM update stays in fp32 either way
            unguided, guided = both[:rows], both[rows:]
            x_start = lmdm.maybe_clip(unguided + (guided - unguided) * weight)
            if time_next < 0:
                return x_start  # type: ignore[no-any-return]
            pred_noise = lmdm.predict_noise_from_start(x, time, x_start)
            x = (
                x_start * lmdm.alpha_next_sqrt_list[i]
                + lmdm.c_list[i] * pred_noise
                + lmdm.sigma_list[i] * lmdm.noise_list[i]
            )
        return x

    def _capture(self, bucket: int) -> tuple[Any, dict[str, torch.Tensor]]:
        import torch

        device = self._lmdm.alphas_cumprod.device
        static = {
            "kp_cond": torch.zeros(bucket, self.motion_dim, device=device),
            "aud_cond": torch.zeros(
                bucket, self.frames, int(self._lmdm.audio_feat_dim), device=device
            ),
            "x": torch.randn(bucket, self.frames, self.motion_dim, device=device),
        }
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):  # warm up: kernels chosen, rotary caches filled
                self._loop(static["kp_cond"], static["aud_cond"], static["x"])
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool), torch.no_grad():
            static["out"] = self._loop(static["kp_cond"], static["aud_cond"], static["x"])
        return graph, static

    def sample(
        self, kp_cond: torch.Tensor, aud_cond: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """Motion for ``rows`` windows: ``kp_cond`` (rows, 265), ``aud_cond`` (rows, 80,
        audio width), ``x`` the starting noise (rows, 80, 265); returns (rows, 80, 265)."""
        import torch

        rows = x.shape[0]
        if not self.graphed:
            with torch.no_grad():
                return self._loop(kp_cond, aud_cond, x)
        bucket = buckets_.bucket_for(rows, self.buckets)
        graph, static = self._graphs[bucket]
        # The rows in order, then the last one repeated (``buckets_.padding_index``), copied
        # on the GPU: an index tensor made from a list here would be a host-to-device copy,
        # which waits for everything queued before it and leaves the GPU idle behind it.
        for name, rows_in in (("kp_cond", kp_cond), ("aud_cond", aud_cond), ("x", x)):
            target = static[name]
            target[:rows].copy_(rows_in)
            if rows < bucket:
                target[rows:].copy_(rows_in[-1:].expand(bucket - rows, *rows_in.shape[1:]))
        graph.replay()
        return static["out"][:rows].clone()
