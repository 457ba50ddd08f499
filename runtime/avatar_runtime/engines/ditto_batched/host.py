"""A frames batch to the host: its copies queued right behind it, and the event that ends them.

A reader that copies its own frame out (``frame.cpu()``) waits, in the stream's
order, for everything the driver has queued on the GPU by then: the batches
after its own too. Each job's encoder then waits for other batches at every
frame, and the encoding and the rendering take turns instead of overlapping (in
the pod on the H200, one job's frames took 1.4 s of waiting and 0.9 s of
encoding, one after the other). Copied here into pinned memory right behind its
batch, a frame is ready as soon as its own batch is, and the reader waits for
that batch's event alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class HostFrame:
    """One frame on the host, once ``done`` (a CUDA event; None: already there)."""

    image: torch.Tensor
    done: Any = None

    def ready(self) -> torch.Tensor:
        """The frame, after its batch's copy has finished."""
        if self.done is not None:
            self.done.synchronize()
        return self.image


def to_host(images: torch.Tensor | Sequence[torch.Tensor]) -> list[HostFrame]:
    """Every row of ``images`` (a batch, or a list where the rows' sizes differ) on the host.

    On a GPU the copies are queued on the current stream into pinned memory (one for a
    batch tensor, one a row for a list), with one event after them; on a CPU the rows are
    the frames.
    """
    import torch

    rows = list(images)
    if not rows or not rows[0].is_cuda:
        return [HostFrame(row) for row in rows]
    if isinstance(images, torch.Tensor):
        batch = torch.empty(images.shape, dtype=images.dtype, pin_memory=True)
        batch.copy_(images, non_blocking=True)
        copied = list(batch)
    else:
        copied = []
        for row in rows:
            host = torch.empty(row.shape, dtype=row.dtype, pin_memory=True)
            host.copy_(row, non_blocking=True)
            copied.append(host)
    done = torch.cuda.Event()  # type: ignore[no-untyped-call]
    done.record()
    return [HostFrame(image, done) for image in copied]
