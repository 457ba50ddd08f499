"""Videos queued at a pool that exists nowhere: their status says so, and again once it exists.

A pool exists when an AvatarRuntimePool declares it or a runtime pod carries its label.
Nothing is said in the first interval after the operator starts: the pool watch may not
have listed every pool yet.
"""

from __future__ import annotations

from collections.abc import Iterable

from avatar_operator.dispatcher import Dispatcher
from avatar_operator.settings import POOL_LABEL


class MissingPools:
    def __init__(self, dispatcher: Dispatcher, *, namespace: str, started: float) -> None:
        self.dispatcher = dispatcher
        self.namespace = namespace
        self.started = started
        self._missing: set[str] = set()

    def note(self, declared: Iterable[str], *, now: float, grace_seconds: float) -> None:
        if now - self.started < grace_seconds:
            return
        dispatcher = self.dispatcher
        known = set(declared) | dispatcher.pods.pools()
        missing = set()
        for name, queue in dispatcher.queues.items():
            if name in known and name not in self._missing:
                continue  # the usual case: nothing to say, and no walk over its queue
            jobs = [j for e in queue.waiting() if (j := dispatcher.jobs.get(e.uid))]
            if name in known:  # it exists now: say what the videos wait for
                for job in jobs:
                    dispatcher.reporter.pool_found(job)
                continue
            if not jobs:
                continue
            missing.add(name)
            message = (
                f"Pool {name!r} does not exist: no AvatarRuntimePool {name!r} in namespace"
                f" {self.namespace!r} and no runtime pod labelled {POOL_LABEL}={name}."
                " Waiting for one (deadlineSeconds still applies)."
            )
            for job in jobs:
                dispatcher.reporter.pool_missing(job, message)
        self._missing = missing
