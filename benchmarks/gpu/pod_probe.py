"""``avatar-runtime`` with a probe on the renderer, for the whole-pod benchmark.

A pod's job status says when a job was made and when it finished, not when its
first frame came. This runs the runtime's own command line unchanged, after
wrapping the Ditto renderers' ``stream`` so that each call
appends one JSON line to the file ``AVATAR_BENCH_PROBE`` names: when the call
began and when its first and last frames left the renderer (``time.time()``,
so the client can set them against its own submit times), its frame count, and
the torch allocator's peak since the last call that found the renderer idle.
Nothing else in the pod changes; without the variable it is plain
``avatar-runtime``.

    python -m benchmarks.gpu.pod_probe serve --port 8080 ...
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from avatar_runtime import cli

_lock = threading.Lock()
_active = 0


def _peak(reset: bool) -> int | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return int(torch.cuda.max_memory_allocated())


def _probed(method: Callable[..., Generator[Any]], out: Path) -> Callable[..., Iterator[Any]]:
    @functools.wraps(method)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        global _active
        with _lock:
            if _active == 0:
                _peak(reset=True)
            _active += 1
        record: dict[str, Any] = {"began": time.time(), "first_frame": None, "frames": 0}
        try:
            with contextlib.closing(method(self, *args, **kwargs)) as frames:
                for frame in frames:
                    if record["first_frame"] is None:
                        record["first_frame"] = time.time()
                    record["frames"] += 1
                    yield frame
        finally:
            record["ended"] = time.time()
            with _lock:
                _active -= 1
                record["peak_torch_bytes"] = _peak(reset=False)
                with out.open("a") as log:
                    log.write(json.dumps(record) + "\n")

    return wrapped


def install(out: Path) -> None:
    """Wrap both Ditto renderers' ``stream`` (the adapter's and the batched engine's): a
    pod with XTTS-v2 renders every text job through it (``frames`` hands over to it too)."""
    from avatar_runtime.engines.ditto_batched.renderer import BatchedDittoRenderer
    from avatar_runtime.engines.ditto_renderer import DittoRenderer

    for cls in (DittoRenderer, BatchedDittoRenderer):
        setattr(cls, "stream", _probed(cls.stream, out))  # noqa: B010 - mypy: method


def read(path: Path, *, since: float) -> list[dict[str, Any]]:
    """The probe's records of calls that began at or after ``since``."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["began"] >= since]


def main() -> int:
    probe = os.environ.get("AVATAR_BENCH_PROBE")
    if probe:
        install(Path(probe))
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
