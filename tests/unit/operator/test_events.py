"""Events that repeat are counted on the one posted before, as client-go's recorder does.

The Kubernetes API is a recorder here: what is tested is which Events the operator
creates and which it counts again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from avatar_operator.background import Background
from avatar_operator.events import Events
from avatar_operator.jobs import Job
from avatar_operator.resource import AvatarVideoSpec, Ref

SPEC = AvatarVideoSpec.model_validate(
    {"portrait": "gs://b/p.png", "text": "Hi", "output": "gs://b/o/"}
)


class EventStore:
    """Stands in for the API's Events: created ones by name; ``expire`` drops them all."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.created = 0

    async def event(self, ref: Ref, *, type_: str, reason: str, message: str) -> str:
        self.created += 1
        name = f"{ref.name}.{self.created}"
        self.events[name] = {"reason": reason, "type": type_, "count": 1, "message": message}
        return name

    async def repeat_event(self, ref: Ref, *, name: str, count: int, message: str) -> bool:
        if name not in self.events:
            return False
        self.events[name].update(count=count, message=message)
        return True


def job(uid: str) -> Job:
    now = dt.datetime.now(dt.UTC)
    return Job(ref=Ref("ns", uid, uid), spec=SPEC, generation=1, created=now, seen=0, estimate=1)


def post_all(store: EventStore, posts: list[tuple[Job, str, str, str]]) -> None:
    async def go() -> None:
        background = Background()
        events = Events(kube=store, background=background)  # type: ignore[arg-type]
        for target, type_, reason, message in posts:
            events.post(target, type_, reason=reason, message=message)
        await background.stop()

    asyncio.run(go())


def test_a_repeated_reason_is_one_event_with_a_count_and_the_latest_message() -> None:
    store = EventStore()
    video = job("a")
    post_all(
        store,
        [
            (video, "Normal", "Queued", "Waiting for a free slot."),
            *[(video, "Warning", "Retrying", f"attempt {n} next") for n in (2, 3, 4)],
            (video, "Normal", "Dispatched", "On rt-1."),
        ],
    )
    by_reason = {e["reason"]: e for e in store.events.values()}
    assert set(by_reason) == {"Queued", "Retrying", "Dispatched"}
    assert by_reason["Retrying"]["count"] == 3
    assert by_reason["Retrying"]["message"] == "attempt 4 next"
    assert by_reason["Queued"]["count"] == 1


def test_each_resource_counts_its_own() -> None:
    store = EventStore()
    post_all(store, [(job(uid), "Normal", "Queued", "waiting") for uid in ("a", "b", "a")])
    counts = sorted(e["count"] for e in store.events.values())
    assert counts == [1, 2]


def test_an_event_the_api_server_dropped_is_posted_anew() -> None:
    """Events expire (an hour by default); a repeat after that starts a new one."""
    store = EventStore()
    video = job("a")

    async def go() -> None:
        background = Background()
        events = Events(kube=store, background=background)  # type: ignore[arg-type]
        events.post(video, "Warning", reason="Retrying", message="first")
        events.post(video, "Warning", reason="Retrying", message="second")
        await background.stop()
        assert [e["count"] for e in store.events.values()] == [2]
        store.events.clear()  # expired
        events.post(video, "Warning", reason="Retrying", message="again")
        await background.stop()

    asyncio.run(go())
    (event,) = store.events.values()
    assert event["count"] == 1
    assert event["message"] == "again"
    assert store.created == 2
