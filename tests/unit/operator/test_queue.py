"""The operator's queue: priority, then fair turns across namespaces, then age; backoffs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_positions_follow_pushes_pops_removals_and_unpops() -> None:
    """A position is the count of waiting entries ahead by priority and age, at every step."""
    queue = FairQueue()
    for i in range(4):
        queue.push(_entry(f"a{i}", "a", created=i))
    queue.push(_entry("b-urgent", "b", priority=5, created=9))
    assert [queue.position(u) for u in ("b-urgent", "a0", "a1", "a2", "a3")] == [0, 1, 2, 3, 4]
    assert [e.uid for e in queue.ordered()] == ["b-urgent", "a0", "a1", "a2", "a3"]
    first = queue.pop(0.0)
    assert first is not None
    assert first.uid == "b-urgent"
    assert queue.position("b-urgent") is None
    assert queue.position("a0") == 0
    queue.unpop(first)  # no pod could take it: ahead of everyone again
    assert queue.position("a0") == 1
    assert queue.remove("a1")
    assert [queue.position(u) for u in ("b-urgent", "a0", "a2", "a3")] == [0, 1, 2, 3]
    queue.push(_entry("a-older", "a", created=-1))
    assert queue.position("a-older") == 1
    assert queue.position("a3") == 4
    assert [e.uid for e in queue.ordered()] == ["b-urgent", "a-older", "a0", "a2", "a3"]


def test_an_entry_in_backoff_keeps_its_place_in_the_positions() -> None:
    queue = FairQueue()
    queue.push(_entry("retry", created=0, not_before=10.0))
    queue.push(_entry("fresh", created=5))
    assert queue.position("retry") == 0
    assert queue.position("fresh") == 1
    assert _drain(queue, now=1.0) == ["fresh"]
    assert queue.position("retry") == 0


def test_a_namespace_that_empties_and_returns_keeps_its_count() -> None:
    """Served ahead of the others (urgent jobs), briefly empty: it does not come back level."""
    queue = FairQueue()
    for i in range(3):
        queue.push(_entry(f"a-urgent{i}", "a", priority=5, created=i))
    for i in range(5):
        queue.push(_entry(f"b{i}", "b", created=10 + i))
    assert _drain_n(queue, 4) == ["a-urgent0", "a-urgent1", "a-urgent2", "b0"]  # a: 3, b: 1
    queue.push(_entry("a3", "a", created=0.5))  # older than b's, but a was served more
    queue.push(_entry("a4", "a", created=0.6))
    assert _drain(queue) == ["b1", "b2", "a3", "b3", "a4", "b4"]


@dataclass
class _NaiveQueue:
    """The queue's rules written the slow, obvious way: every answer a scan of all entries."""

    entries: dict[str, Entry] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)
    served: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def push(self, entry: Entry) -> None:
        self.entries.setdefault(entry.uid, entry)

    def remove(self, uid: str) -> None:
        self.entries.pop(uid, None)
        self.ready.discard(uid)

    def pop(self, now: float) -> str | None:
        due = [e for e in self.entries.values() if e.uid not in self.ready and e.not_before <= now]
        for entry in sorted(due, key=lambda e: (e.not_before, e.seq)):
            busy = {self.entries[u].namespace for u in self.ready}
            if entry.namespace not in busy:  # it wakes: at least the least served active one
                active = [self.served[ns] for ns in busy]
                if active:
                    self.served[entry.namespace] = max(self.served[entry.namespace], min(active))
            self.ready.add(entry.uid)
        if not self.ready:
            return None
        best = min(
            (self.entries[u] for u in self.ready),
            key=lambda e: (-e.priority, self.served[e.namespace], e.sort_key),
        )
        self.remove(best.uid)
        self.served[best.namespace] += 1
        return best.uid

    def unpop(self, entry: Entry) -> None:
        self.entries[entry.uid] = entry
        self.ready.add(entry.uid)
        self.served[entry.namespace] -= 1

    def position(self, uid: str) -> int:
        key = self.entries[uid].sort_key
        return sum(e.sort_key < key for e in self.entries.values())


_pushes = st.tuples(
    st.just("push"),
    st.integers(0, 11),  # the uid: some pushed again while waiting, some after a pop (a retry)
    st.sampled_from("abc"),  # namespace
    st.integers(0, 2),  # priority
    st.integers(0, 4),  # created: ties are common, as Kubernetes' seconds make them
    st.sampled_from([0.0, 0.0, 1.0, 3.0]),  # not_before, from now
)
_pops = st.tuples(st.just("pop"), st.integers(0, 2))  # how far the clock moves first
_removals = st.tuples(st.just("remove"), st.integers(0, 11))
_unpops = st.tuples(st.just("unpop"))  # put back the last entry popped and not put back


@settings(database=None, max_examples=300, deadline=None)
@given(st.lists(st.one_of(_pushes, _pops, _removals, _unpops), max_size=60))
def test_order_and_positions_match_a_naive_queue(operations: list[tuple[object, ...]]) -> None:
    """Pops, positions and the reported order stay those of the scan-everything version."""
    queue, naive = FairQueue(), _NaiveQueue()
    now, arrivals = 0.0, 0
    popped: list[Entry] = []  # since the last push or removal, as the dispatch loop unpops
    for operation in operations:
        match operation:
            case ("push", int(uid), str(namespace), int(priority), int(created), float(delay)):
                entry = _entry(f"u{uid}", namespace, priority, created, now + delay)
                entry.arrival, arrivals = arrivals % 3, arrivals + 1
                queue.push(entry)  # numbers it (seq); the naive queue reads the same object
                naive.push(entry)
                popped.clear()
            case ("pop", int(step)):
                now += step
                got = queue.pop(now)
                assert (got.uid if got else None) == naive.pop(now)
                popped += [got] if got else []
            case ("remove", int(uid)):
                assert queue.remove(f"u{uid}") == (f"u{uid}" in naive.entries)
                naive.remove(f"u{uid}")
                popped.clear()
            case ("unpop",) if popped:
                entry = popped.pop()
                queue.unpop(entry)
                naive.unpop(entry)
        assert len(queue) == len(naive.entries)
        assert all(queue.position(uid) == naive.position(uid) for uid in naive.entries)
        assert [e.uid for e in queue.ordered()] == [
            e.uid for e in sorted(naive.entries.values(), key=lambda e: e.sort_key)
        ]
