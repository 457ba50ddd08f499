"""Kubernetes Events about jobs, aggregated as client-go's event recorder does.

A job that waits, retries or fails again and again would otherwise add an Event
each time (hundreds a minute for a video that keeps failing its pods), filling
``kubectl describe`` and the API server's storage. So an Event that repeats for
the same resource, type and reason updates the one posted before: its ``count``,
``lastTimestamp`` and message (the latest), which ``kubectl describe`` shows as
"(x5 over 2m)". Posting is worth a try and never fails a job.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from avatar_operator.background import Background
from avatar_operator.jobs import Job
from avatar_operator.kube import Kube

# Resources whose Events are remembered (~200 bytes each), least recently posted
# forgotten first: a job's Events come within its life, and its life is short.
_KEPT = 10_000


@dataclass
class _Posted:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    name: str | None = None
    count: int = 0


class Events:
    def __init__(self, *, kube: Kube, background: Background) -> None:
        self.kube = kube
        self.background = background
        self._posted: collections.OrderedDict[str, dict[tuple[str, str], _Posted]] = (
            collections.OrderedDict()
        )

    def post(self, job: Job, type_: str, *, reason: str, message: str) -> None:
        """An Event on the job's resource, in the background; a repeat counts on the last."""
        self.background.spawn(self._post(job, type_, reason, message), f"event-{job.uid}")

    async def _post(self, job: Job, type_: str, reason: str, message: str) -> None:
        posted = self._entry(job.uid, (type_, reason))
        async with posted.lock:  # one at a time per reason, so a repeat finds the first
            try:
                if posted.name is not None and await self.kube.repeat_event(
                    job.ref, name=posted.name, count=posted.count + 1, message=message
                ):
                    posted.count += 1
                    return
                posted.name = await self.kube.event(
                    job.ref, type_=type_, reason=reason, message=message
                )
                posted.count = 1
            except Exception as exc:  # an Event is worth a try, never a failed job
                job.log.info("could not post the %s event: %s", reason, exc)

    def _entry(self, uid: str, key: tuple[str, str]) -> _Posted:
        reasons = self._posted.get(uid)
        if reasons is None:
            reasons = self._posted[uid] = {}
            while len(self._posted) > _KEPT:
                self._posted.popitem(last=False)
        else:
            self._posted.move_to_end(uid)
        return reasons.setdefault(key, _Posted())
