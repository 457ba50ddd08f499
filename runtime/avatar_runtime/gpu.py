"""GPU memory through NVML, and the slot count it allows.

NVML (``nvidia-ml-py``) reads memory without CUDA or torch, so the same code
serves the metrics and the ``--slots auto`` decision on any pod; without a
driver it reports no GPUs rather than failing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from avatar_runtime.settings import SlotSettings

log = logging.getLogger(__name__)

_init_lock = threading.Lock()
_nvml_ready: bool | None = None


@dataclass(frozen=True)
class GpuMemory:
    index: int
    name: str
    used_bytes: int
    total_bytes: int

    @property
    def free_bytes(self) -> int:
        return self.total_bytes - self.used_bytes


def _nvml() -> bool:
    global _nvml_ready
    with _init_lock:
        if _nvml_ready is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml_ready = True
            except Exception as exc:  # no library, no driver, no device: all mean "no GPU"
                log.debug("NVML unavailable: %s", exc)
                _nvml_ready = False
        return _nvml_ready


def memory() -> list[GpuMemory]:
    """Memory of every visible GPU; empty without a GPU."""
    if not _nvml():
        return []
    import pynvml

    out = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        out.append(
            GpuMemory(
                index=index,
                name=name.decode() if isinstance(name, bytes) else str(name),
                used_bytes=int(info.used),
                total_bytes=int(info.total),
            )
        )
    return out


def auto_slots(settings: SlotSettings, gpus: list[GpuMemory]) -> int:
    """Slots that fit the first GPU's free memory beside the shared models, capped.

    The seed's L4 (24 GB, 3.4 GB shared, 3.3 GB a slot, 1.5 GB margin) fits 5,
    capped at 3: more independent renderers add little throughput.
    """
    if not gpus:
        return 1
    room = gpus[0].free_bytes - settings.shared_model_bytes - settings.margin_bytes
    return max(1, min(settings.max_auto, room // settings.slot_bytes))


def slot_count(settings: SlotSettings) -> int:
    if settings.count != "auto":
        return settings.count
    return auto_slots(settings, memory())
