"""Timing GPU work: CUDA runs asynchronously, so a clock read needs a synchronise first."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def mean_seconds(fn: Callable[[], Any], runs: int = 10) -> float:
    """Mean wall time of ``fn`` over ``runs`` calls, after one warm-up call."""
    import torch

    fn()
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(runs):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - began) / runs
