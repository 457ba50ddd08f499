"""Fire-and-forget work (status writes, Events, timers' actions) that must not be lost.

asyncio keeps only weak references to tasks: a task nobody holds can be garbage
collected mid-flight. Everything the operator starts in the background goes
through one ``Background``, which holds each task until it ends and cancels what
is left when the operator stops (after a short grace, so a status write in flight
still lands).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
