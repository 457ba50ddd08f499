"""Frames batches to the host (``ditto_batched.host``): every row, in order, each ready
when its own batch's copy is, not when the GPU's later work is."""

from __future__ import annotations

import pytest
import torch

from avatar_runtime.engines.ditto_batched.host import to_host


def test_a_batch_on_the_cpu_gives_its_rows_as_they_are() -> None:
    batch = torch.randint(0, 255, (3, 4, 4, 3), dtype=torch.uint8)
    frames = [frame.ready() for frame in to_host(batch)]
    assert len(frames) == 3
    for row, frame in enumerate(frames):
        assert torch.equal(frame, batch[row])


def test_rows_of_different_sizes_each_arrive_whole() -> None:
    rows = [
        torch.full((4, 4, 3), 1, dtype=torch.uint8),
        torch.full((6, 2, 3), 2, dtype=torch.uint8),
    ]
    frames = [frame.ready() for frame in to_host(rows)]
    assert [tuple(f.shape) for f in frames] == [(4, 4, 3), (6, 2, 3)]
    assert [int(f[0, 0, 0]) for f in frames] == [1, 2]


def test_nothing_in_gives_nothing_out() -> None:
    assert to_host([]) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")
def test_a_frame_is_ready_before_the_work_queued_after_its_batch() -> None:
    """What the copy is for: a reader of batch k no longer waits for batches k+1, k+2."""
    batch = torch.randint(0, 255, (2, 512, 512, 3), dtype=torch.uint8, device="cuda")
    frames = to_host(batch)
    a = torch.randn(4096, 4096, device="cuda")
    for _ in range(50):  # the driver's next batches: a second or so of GPU work
        a = a @ a / 64
    first = frames[0].ready()
    assert not torch.cuda.current_stream().query()  # the later work is still running
    assert first.device.type == "cpu"
    assert first.is_pinned()
    assert torch.equal(first, batch[0].cpu())
    torch.cuda.synchronize()
