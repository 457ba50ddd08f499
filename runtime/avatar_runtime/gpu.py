"""GPU memory through NVML, and the slot count it allows.

NVML (``nvidia-ml-py``) reads memory without CUDA or torch, so the same code
serves the metrics and the ``--slots auto`` decision on any pod; without a
driver it reports no GPUs rather than failing.
"""

from __future__ import annotations

import logging
import sys
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


@dataclass(frozen=True)
class Footprint:
    """GPU memory an engine took while loading: NVML sees every library (CTranslate2, ONNX
    Runtime, TensorRT); torch's allocator sees only torch's tensors, without its cache."""

    nvml_bytes: int = 0
    torch_bytes: int = 0

    @property
    def bytes(self) -> int:
        return max(self.nvml_bytes, self.torch_bytes)


class FootprintMeter:
    """Reads GPU memory before and after a load; all zeros without a GPU."""

    def __init__(self) -> None:
        self._nvml = _first_used()
        self._torch = _torch_allocated()

    def read(self) -> Footprint:
        return Footprint(
            nvml_bytes=max(0, _first_used() - self._nvml),
            torch_bytes=max(0, _torch_allocated() - self._torch),
        )


def _first_used() -> int:
    gpus = memory()
    return gpus[0].used_bytes if gpus else 0


def _torch_allocated() -> int:
    """Only where torch is already imported: importing it costs seconds and a CUDA context."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return 0
    torch.cuda.synchronize()
    return int(torch.cuda.memory_allocated())


def slots_after_load(
    settings: SlotSettings, gpus: list[GpuMemory], renderer_bytes: int, *, shared: bool = False
) -> int:
    """``auto`` once the shared models and the first slot's renderer are loaded: as many
    more slots as the measured free memory holds, beside a margin, capped.

    A further slot costs another renderer (``renderer_bytes``, the first one's measured
    footprint, or ``slot_bytes`` when it measured nothing, as a CPU one does), capped at
    ``max_auto``; beside a renderer that serves every slot (``shared``) it costs only a
    job's buffers (``shared_slot_bytes``), capped at the jobs that renderer batches to
    some gain (``max_auto_shared``): sized by the renderer's own footprint, a compiled
    batched engine (9 GB) would get one slot on an L4 and gain nothing from batching.
    No GPU means one slot.
    """
    if not gpus:
        return 1
    most = settings.max_auto_shared if shared else settings.max_auto
    room = gpus[0].free_bytes - settings.margin_bytes
    return max(1, min(most, 1 + room // slot_bytes(settings, renderer_bytes, shared=shared)))


def slot_bytes(settings: SlotSettings, renderer_bytes: int, *, shared: bool = False) -> int:
    """What a further slot costs, as ``slots_after_load`` counts it."""
    if shared:
        return settings.shared_slot_bytes
    return renderer_bytes or settings.slot_bytes


def slot_count(settings: SlotSettings) -> int:
    if settings.count != "auto":
        return settings.count
    return auto_slots(settings, memory())
