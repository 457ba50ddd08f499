"""Slot counts from GPU memory, and NVML on a machine without a GPU."""

from __future__ import annotations

from avatar_runtime import gpu
from avatar_runtime.gpu import GpuMemory, auto_slots, slot_count
from avatar_runtime.settings import SlotSettings

GB = 10**9


def _card(total: float, used: float, name: str = "NVIDIA L4") -> GpuMemory:
    return GpuMemory(index=0, name=name, used_bytes=int(used), total_bytes=int(total))


def test_no_gpu_gets_one_slot() -> None:
    """A CPU-only pod still serves, one job at a time."""
    assert auto_slots(SlotSettings(), []) == 1


def test_the_seed_l4_is_capped_at_max_auto() -> None:
    """24 GB fits five slots beside the shared models, but more than three add little."""
    settings = SlotSettings()
    l4 = _card(24 * GB, 0.5 * GB)
    assert auto_slots(settings, [l4]) == settings.max_auto == 3
    uncapped = settings.model_copy(update={"max_auto": 10})
    assert auto_slots(uncapped, [l4]) == 5


def test_a_half_used_16_gb_card_gets_what_its_free_memory_fits() -> None:
    s = SlotSettings()
    card = _card(16 * GB, 8 * GB)
    room = 8 * GB - s.shared_model_bytes - s.margin_bytes
    expected = max(1, min(s.max_auto, room // s.slot_bytes))
    assert expected in (1, 2)
    assert auto_slots(s, [card]) == expected
    smaller = s.model_copy(update={"slot_bytes": GB})
    assert auto_slots(smaller, [card]) == min(s.max_auto, room // GB) > expected


def test_a_nearly_full_card_still_gets_one_slot() -> None:
    """Zero slots would make a pod that is ready but can never run anything."""
    assert auto_slots(SlotSettings(), [_card(16 * GB, 15.9 * GB)]) == 1
    assert auto_slots(SlotSettings(), [_card(2 * GB, 0)]) == 1


def test_only_the_first_gpu_decides() -> None:
    """Every slot renders on the first device, so a second card's memory does not count."""
    small, big = _card(8 * GB, 0), _card(80 * GB, 0, name="NVIDIA H100")
    assert auto_slots(SlotSettings(), [small, big]) == 1


def test_free_bytes_is_total_minus_used() -> None:
    assert _card(24 * GB, 0.5 * GB).free_bytes == int(23.5 * GB)


def test_an_explicit_slot_count_is_kept() -> None:
    assert slot_count(SlotSettings(count=2)) == 2
    assert slot_count(SlotSettings(count=7)) == 7


def test_memory_is_empty_without_an_nvidia_driver() -> None:
    """Runs NVML for real: on this GPU-less machine it must report no GPUs, not raise."""
    assert gpu.memory() == []
    assert slot_count(SlotSettings()) == 1


def test_measured_auto_fills_the_free_memory_left_after_loading() -> None:
    """Once the shared models and one renderer are in, each further slot costs what that
    renderer measured: an L4 with 12 GB left and 3.3 GB renderers gets 1 + 3, capped at 3."""
    s = SlotSettings()
    after_load = _card(24 * GB, 12 * GB)
    assert gpu.slots_after_load(s, [after_load], renderer_bytes=int(3.3 * GB)) == 3
    assert gpu.slots_after_load(s, [after_load], renderer_bytes=int(6 * GB)) == 2  # 1 + 1
    assert gpu.slots_after_load(s, [_card(24 * GB, 23 * GB)], renderer_bytes=GB) == 1
    # A renderer that measured nothing (the CPU one) is sized by the configured estimate.
    assert gpu.slots_after_load(s, [_card(24 * GB, 18 * GB)], renderer_bytes=0) == 2


def test_no_gpu_measures_nothing_and_keeps_one_slot() -> None:
    assert gpu.FootprintMeter().read() == gpu.Footprint(0, 0)
    assert gpu.slots_after_load(SlotSettings(), [], renderer_bytes=0) == 1


def test_a_slot_beside_a_renderer_that_serves_every_slot_costs_a_job_not_a_renderer() -> None:
    """The batched engine is one renderer for all slots: its 9 GB are paid once, and each
    further slot needs only a job's buffers, up to the jobs it batches to some gain."""
    s = SlotSettings()
    after_load = _card(24 * GB, 15 * GB)  # an L4 after loading a compiled batched pod
    assert gpu.slots_after_load(s, [after_load], renderer_bytes=9 * GB) == 1
    assert gpu.slots_after_load(s, [after_load], 9 * GB, shared=True) == s.max_auto_shared
    # Still bounded by memory: 0.6 GB left beside the margin holds two more jobs' buffers.
    tight = _card(24 * GB, 24 * GB - s.margin_bytes - 0.6 * GB)
    assert gpu.slots_after_load(s, [tight], 9 * GB, shared=True) == 3
    assert gpu.slots_after_load(s, [_card(24 * GB, 23.9 * GB)], 9 * GB, shared=True) == 1
    assert gpu.slots_after_load(s, [], 9 * GB, shared=True) == 1  # no GPU: one slot
    assert gpu.slot_bytes(s, 9 * GB, shared=True) == s.shared_slot_bytes
    assert gpu.slot_bytes(s, 9 * GB) == 9 * GB
    assert gpu.slot_bytes(s, 0) == s.slot_bytes
