"""The waiting jobs of one pool: priority first, then fair across namespaces, then age.

Fairness is start-time fair queuing over namespaces: each namespace has a count
of dispatches served, the next job comes from the namespace served least
(among those holding the top priority), and a namespace that was idle joins at
the current minimum, so a burst in one namespace cannot starve a single job in
another, and an idle namespace cannot bank credit for a later burst.

Every operation costs O(log n) in the jobs waiting (O(namespaces) for a pop), so
a backlog of thousands costs each dispatch no more than a short queue does: the
jobs are also kept in one sorted list by priority and age (``sortedcontainers``),
from which a job's reported position is a bisection rather than a count over
every waiting job (which made queueing a burst quadratic in its size).
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from sortedcontainers import SortedList


@dataclass(order=True)
class Entry:
    sort_key: tuple[int, float, int, int] = field(init=False, repr=False)
    uid: str = field(compare=False)
    namespace: str = field(compare=False)
    priority: int = field(compare=False)
    created: float = field(compare=False)
    """Seconds since the epoch; older goes first."""
    arrival: int = field(default=0, compare=False)
    """Order the operator's watch delivered it in: breaks ties of ``created``, which
    Kubernetes keeps to the second only."""
    not_before: float = field(default=0.0, compare=False)
    """Monotonic time before which the entry waits (a retry's backoff)."""
    seq: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self.sort_key = (-self.priority, self.created, self.arrival, self.seq)


class FairQueue:
    def __init__(self) -> None:
        self._ready: dict[str, list[Entry]] = defaultdict(list)  # namespace -> heap
        self._delayed: list[tuple[float, int, Entry]] = []
        self._entries: dict[str, Entry] = {}
        # The same entries by sort key (all unique: ``seq``), ready or delayed: the
        # order ``position`` and ``ordered`` report, kept as entries come and go.
        self._order: SortedList[Entry] = SortedList()
        self._served: dict[str, float] = defaultdict(float)
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, uid: str) -> bool:
        return uid in self._entries

    def push(self, entry: Entry) -> None:
        if entry.uid in self._entries:
            return
        entry.seq = next(self._seq)
        entry.__post_init__()
        self._entries[entry.uid] = entry
        self._order.add(entry)
        heapq.heappush(self._delayed, (entry.not_before, entry.seq, entry))

    def remove(self, uid: str) -> bool:
        """Forget a waiting job (deleted, expired); its heap slot is skipped later."""
        entry = self._entries.pop(uid, None)
        if entry is None:
            return False
        self._order.remove(entry)
        return True

    def next_due(self) -> float | None:
        """When the earliest delayed entry becomes ready (monotonic), if any is delayed."""
        while self._delayed and self._delayed[0][2].uid not in self._entries:
            heapq.heappop(self._delayed)
        return self._delayed[0][0] if self._delayed else None

    def pop(self, now: float) -> Entry | None:
        """The next job to dispatch among those whose backoff has passed."""
        self._promote(now)
        best: tuple[int, float, tuple[int, float, int, int]] | None = None
        best_ns = ""
        idle: list[str] = []
        for namespace, heap in self._ready.items():
            head = self._head(heap)
            if head is None:
                idle.append(namespace)
                continue
            rank = (-head.priority, self._served[namespace], head.sort_key)
            if best is None or rank < best:
                best, best_ns = rank, namespace
        for namespace in idle:  # each pop walks only the namespaces with jobs ready
            del self._ready[namespace]
        if best is None:
            return None
        entry = heapq.heappop(self._ready[best_ns])
        del self._entries[entry.uid]
        self._order.remove(entry)
        self._served[best_ns] += 1
        return entry

    def unpop(self, entry: Entry) -> None:
        """Put back an entry just popped that no pod could take: same place, no turn used."""
        self._entries[entry.uid] = entry
        self._order.add(entry)
        heapq.heappush(self._ready[entry.namespace], entry)
        self._served[entry.namespace] -= 1

    def waiting(self) -> list[Entry]:
        return list(self._entries.values())

    def ordered(self) -> list[Entry]:
        """The waiting entries by priority and age: the order ``queuePosition`` reports."""
        return list(self._order)

    def position(self, uid: str) -> int | None:
        """Entries ahead by priority and age (fair sharing can reorder namespaces)."""
        entry = self._entries.get(uid)
        if entry is None:
            return None
        return self._order.bisect_left(entry)

    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, entry = heapq.heappop(self._delayed)
            if self._entries.get(entry.uid) is not entry:
                continue
            heap = self._ready[entry.namespace]
            if self._head(heap) is None:  # the namespace wakes up: no banked credit
                active = [
                    self._served[ns]
                    for ns, h in self._ready.items()
                    if ns != entry.namespace and self._head(h) is not None
                ]
                if active:
                    self._served[entry.namespace] = max(self._served[entry.namespace], min(active))
            heapq.heappush(heap, entry)

    def _head(self, heap: list[Entry]) -> Entry | None:
        while heap and self._entries.get(heap[0].uid) is not heap[0]:
            heapq.heappop(heap)
        return heap[0] if heap else None
