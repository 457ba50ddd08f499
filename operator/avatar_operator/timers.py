"""Deadlines and TTLs: the two things that happen to a job by the clock alone.

Both are loop timers (``call_later``), not tasks sleeping, so a hundred thousand
waiting resources cost a heap entry each. Both are derived from the resource
(creation time + ``deadlineSeconds``, completion time +
``ttlSecondsAfterFinished``), so a restarted operator sets them again from the
status and they fire at the same moment.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

from avatar_operator import status as st
from avatar_operator.background import Background
from avatar_operator.jobs import Job, job_log
from avatar_operator.kube import Kube
from avatar_operator.resource import AvatarVideoSpec, Ref


def _delay_until(due: dt.datetime) -> float:
    return max(0.0, (due - st.now()).total_seconds())


class Timers:
    def __init__(self, *, kube: Kube, background: Background) -> None:
        self.kube = kube
        self.background = background
        self._ttl: dict[str, asyncio.TimerHandle] = {}

    def deadline(self, job: Job, expire: Callable[[Job], Coroutine[Any, Any, None]]) -> None:
        """Call ``expire`` once the job's deadline passes (at once if it has)."""
        if job.spec.deadline_seconds is None:
            return
        due = job.created + dt.timedelta(seconds=job.spec.deadline_seconds)
        job.handles.deadline = asyncio.get_running_loop().call_later(
            _delay_until(due), lambda: self.background.spawn(expire(job), f"deadline-{job.uid}")
        )

    @staticmethod
    def cancel_deadline(job: Job) -> None:
        if job.handles.deadline is not None:
            job.handles.deadline.cancel()
            job.handles.deadline = None

    def ttl(self, ref: Ref, spec: AvatarVideoSpec, finished: dt.datetime) -> None:
        """Delete the resource ``ttlSecondsAfterFinished`` after it finished."""
        if spec.ttl_seconds_after_finished is None or ref.uid in self._ttl:
            return
        due = finished + dt.timedelta(seconds=spec.ttl_seconds_after_finished)

        async def delete() -> None:
            self._ttl.pop(ref.uid, None)
            job_log(ref).info(
                "deleting: finished more than %d s ago", spec.ttl_seconds_after_finished
            )
            await self.kube.delete(ref)

        self._ttl[ref.uid] = asyncio.get_running_loop().call_later(
            _delay_until(due), lambda: self.background.spawn(delete(), f"ttl-{ref.uid}")
        )

    def cancel_ttl(self, uid: str) -> None:
        handle = self._ttl.pop(uid, None)
        if handle is not None:
            handle.cancel()

    def stop(self) -> None:
        for handle in self._ttl.values():
            handle.cancel()
        self._ttl.clear()
