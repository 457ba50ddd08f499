"""Queue order through the real operator: one runtime slot, so jobs run one by one.

A long video holds the slot while the others queue; their start times (written
with milliseconds) then show the order the operator dispatched them in.
"""

from __future__ import annotations

from typing import Any

import pytest

from avatar_devcluster.waiting import wait_until
from tests.system.system import LONG_TEXT, System

pytestmark = pytest.mark.slow


def _hold_the_slot(system: System, name: str) -> None:
    system.apply(system.video(name, text=" ".join([LONG_TEXT] * 3)))
    wait_until(
        lambda: (system.get(name).get("status") or {}).get("phase") == "Running",
        timeout=60,
        what=f"{name} to hold the only slot",
    )


def _start_order(system: System, names: list[tuple[str, str]]) -> list[str]:
    statuses: dict[str, dict[str, Any]] = {}
    for namespace, name in names:
        statuses[name] = system.wait_phase(
            name, ["Succeeded", "Failed"], namespace=namespace, timeout=180
        )["status"]
    assert all(s["phase"] == "Succeeded" for s in statuses.values()), statuses
    return sorted(statuses, key=lambda n: statuses[n]["startTime"])


def test_higher_priority_goes_first_then_older(one_slot: System) -> None:
    system = one_slot
    _hold_the_slot(system, "blocker")
    system.apply(system.video("low-1", priority=0))
    system.apply(system.video("low-2", priority=0))
    system.apply(system.video("high", priority=50))
    system.apply(system.video("urgent", priority=100))
    queued = [system.get(n)["status"] for n in ("low-1", "low-2", "high", "urgent")]
    assert all(q["phase"] == "Queued" for q in queued), queued

    def positions() -> dict[str, int | None]:
        return {
            n: (system.get(n).get("status") or {}).get("queuePosition")
            for n in ("urgent", "high", "low-1", "low-2")
        }

    # Each resource's status says where it waits, and follows as others overtake it.
    wait_until(
        lambda: positions() == {"urgent": 0, "high": 1, "low-1": 2, "low-2": 3},
        timeout=20,
        what=lambda: f"queue positions in the statuses (now {positions()})",
    )
    order = _start_order(system, [("default", n) for n in ("low-1", "low-2", "high", "urgent")])
    assert order == ["urgent", "high", "low-1", "low-2"]


def test_one_namespace_s_burst_does_not_starve_another(one_slot: System) -> None:
    system = one_slot
    system.apply(*({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                   for n in ("team-a", "team-b")))  # fmt: skip
    _hold_the_slot(system, "blocker-2")
    burst = [system.video(f"a-{i}", namespace="team-a") for i in range(6)]
    system.apply(*burst)
    system.apply(system.video("b-0", namespace="team-b"))
    names = [("team-a", f"a-{i}") for i in range(6)] + [("team-b", "b-0")]
    order = _start_order(system, names)
    # Taking turns: team-b's only job runs second, not after all six of team-a's.
    assert order.index("b-0") <= 1, order
    assert [n for n in order if n.startswith("a-")] == [f"a-{i}" for i in range(6)]
