"""Timing GPU work: CUDA runs asynchronously, so a clock read needs a synchronise first.

On a machine without CUDA (a benchmark's smoke run on a CPU) there is nothing to wait for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn``'s result and its wall time, the GPU's work included."""
    sync()
    began = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - began


def mean_seconds(fn: Callable[[], Any], runs: int = 10) -> float:
    """Mean wall time of ``fn`` over ``runs`` calls, after one warm-up call."""
    fn()
    _, wall = timed(lambda: [fn() for _ in range(runs)])
    return wall / runs
