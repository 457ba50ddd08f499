"""The operator's queue: priority, then fair turns across namespaces, then age; backoffs."""

from __future__ import annotations

from avatar_operator.queue import Entry, FairQueue


def _entry(
    uid: str, namespace: str = "a", priority: int = 0, created: float = 0.0, not_before: float = 0.0
) -> Entry:
    return Entry(
        uid=uid, namespace=namespace, priority=priority, created=created, not_before=not_before
    )


def _drain(queue: FairQueue, now: float = 0.0) -> list[str]:
    order = []
    while (entry := queue.pop(now)) is not None:
        order.append(entry.uid)
    return order


def test_priority_first_then_age() -> None:
    queue = FairQueue()
    queue.push(_entry("old-low", created=1))
    queue.push(_entry("new-low", created=2))
    queue.push(_entry("new-high", priority=10, created=3))
    queue.push(_entry("old-high", priority=10, created=0.5))
    assert _drain(queue) == ["old-high", "new-high", "old-low", "new-low"]


def test_namespaces_take_turns_within_a_priority() -> None:
    queue = FairQueue()
    for i in range(5):
        queue.push(_entry(f"a{i}", "a", created=i))
    queue.push(_entry("b0", "b", created=10))
    queue.push(_entry("b1", "b", created=11))
    assert _drain(queue) == ["a0", "b0", "a1", "b1", "a2", "a3", "a4"]


def test_an_idle_namespace_banks_no_credit() -> None:
    """Namespace b was served nothing while a ran 4 jobs; on arrival it shares, not dominates."""
    queue = FairQueue()
    for i in range(8):
        queue.push(_entry(f"a{i}", "a", created=i))
    assert _drain_n(queue, 4) == ["a0", "a1", "a2", "a3"]
    for i in range(3):
        queue.push(_entry(f"b{i}", "b", created=100 + i))
    assert _drain(queue) == ["a4", "b0", "a5", "b1", "a6", "b2", "a7"]


def _drain_n(queue: FairQueue, n: int) -> list[str]:
    return [e.uid for _ in range(n) if (e := queue.pop(0.0)) is not None]


def test_priority_beats_fairness() -> None:
    """Namespace a was served more, but its urgent job still goes before b's normal one."""
    queue = FairQueue()
    queue.push(_entry("a0", "a", created=0))
    queue.push(_entry("b0", "b", created=1))
    assert _drain_n(queue, 1) == ["a0"]
    queue.push(_entry("a-urgent", "a", priority=5, created=2))
    assert _drain(queue) == ["a-urgent", "b0"]


def test_a_backoff_holds_an_entry_until_due() -> None:
    queue = FairQueue()
    queue.push(_entry("retry", created=0, not_before=10.0))
    queue.push(_entry("fresh", created=5))
    assert queue.next_due() == 0.0
    assert _drain(queue, now=1.0) == ["fresh"]
    assert len(queue) == 1
    assert queue.pop(5.0) is None
    assert queue.next_due() == 10.0
    assert _drain(queue, now=10.0) == ["retry"]
    assert queue.next_due() is None


def test_removed_entries_never_come_out_and_pushes_are_idempotent() -> None:
    queue = FairQueue()
    queue.push(_entry("x", created=0))
    queue.push(_entry("x", created=0))
    queue.push(_entry("y", created=1))
    assert queue.position("y") == 1
    assert queue.remove("x")
    assert not queue.remove("x")
    assert queue.position("y") == 0
    assert "x" not in queue
    assert _drain(queue) == ["y"]


def test_an_entry_put_back_keeps_its_place_and_its_namespace_s_turn() -> None:
    queue = FairQueue()
    queue.push(_entry("a0", "a", created=0))
    queue.push(_entry("b0", "b", created=1))
    first = queue.pop(0.0)
    assert first is not None
    queue.unpop(first)  # no pod could take it
    assert _drain(queue) == ["a0", "b0"]
