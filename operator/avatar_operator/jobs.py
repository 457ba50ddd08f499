"""One AvatarVideo's job as the operator holds it, and the logger that names it.

What a restarted operator must find again lives in ``Persisted``: it is written to
the resource's status before it is acted on, and ``admit`` rebuilds it from there.
Everything else is this process's own: what was last reported (to skip writing
the same value twice) and the asyncio handles (task, timer, lock), which die with
the process and are never needed after a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import functools
import logging
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from avatar_operator.resource import AvatarVideoSpec, Ref

log = logging.getLogger(__name__)

Conditions = dict[str, dict[str, Any]]


class Phase(enum.StrEnum):
    """``status.phase``: where the resource is, as ``kubectl get`` shows it."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)

    @classmethod
    def of(cls, value: str | None) -> Phase:
        """A status's phase; one this version does not know counts as not started yet."""
        try:
            return cls(value or cls.PENDING)
        except ValueError:
            return cls.PENDING


@dataclass
class Persisted:
    """What the status records, so a restarted operator carries on from it."""

    phase: Phase = Phase.PENDING
    attempts: int = 0
    """Attempts sent so far (an attempt a pod did not take is not counted)."""
    platform_retries: int = 0
    """Of those, the ones the platform ended (a pod preempted or removed): free retries."""
    gpu_seconds: float = 0.0
    """The job's share of its pods' time in attempts that ended (``usage``)."""
    pod: str | None = None
    """The runtime pod the current attempt runs on; None while queued."""
    started: dt.datetime | None = None
    conditions: Conditions = field(default_factory=dict)

    @property
    def user_attempts(self) -> int:
        """The attempts that count against ``maxRetries``: the platform's are free."""
        return self.attempts - self.platform_retries


@dataclass
class Reported:
    """What this process last wrote, so unchanged values are not written again."""

    progress: tuple[str | None, int] | None = None
    position: int | None = None
    """The queue position last written to the status."""
    at: float = 0.0
    """Monotonic time of the last status write."""
    unserved_noted: bool = False
    """Said already that no pod of the pool runs the engines the job asks for."""
    pool_missing: bool = False
    """Said already that the job's pool does not exist."""


@dataclass(eq=False)
class Handles:
    """This process's asyncio objects for the job; nothing to persist."""

    task: asyncio.Task[None] | None = None
    """The current attempt: sending, then following it on its pod."""
    deadline: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Status writes of one job go out one at a time, in order."""
    outbox: Outbox = field(default_factory=lambda: Outbox())
    """The status not sent yet (``reporting``): later writes merge into it."""


@dataclass
class Outbox:
    patch: dict[str, Any] = field(default_factory=dict)
    conditions: bool = False
    """Send the job's conditions with it (as they are when it goes)."""
    scheduled: bool = False
    """Waiting for a bulk writer."""


@dataclass(eq=False)
class Job:
    ref: Ref
    spec: AvatarVideoSpec
    generation: int
    created: dt.datetime
    seen: float
    """Monotonic time the operator first saw it (dispatch latency starts here)."""
    estimate: float
    """Seconds of video it is expected to make (the backlog gauge)."""
    arrival: int = 0
    """Watch order among resources created in the same second (see ``Dispatcher.noticed``)."""
    persisted: Persisted = field(default_factory=Persisted)
    reported: Reported = field(default_factory=Reported)
    handles: Handles = field(default_factory=Handles)
    accepted_once: bool = False
    """A pod accepted an attempt before (dispatch latency is observed once)."""
    closed: bool = False
    """Finished, deleted or expired: nothing more is written or sent for it."""

    @property
    def uid(self) -> str:
        return self.ref.uid

    @functools.cached_property
    def log(self) -> JobLog:
        return job_log(self.ref)


class JobLog(logging.LoggerAdapter[logging.Logger]):
    """Every line about a job names its resource and carries its uid (the runtime's job id).

    The resource goes in as kopf's own ``k8s_ref``, so kopf's formatters treat it as
    theirs: text logs get the ``[namespace/name]`` prefix, ``--log-format=json`` an
    ``object`` field, and ``job_id`` is a field of its own. ``k8s_skip`` keeps these
    lines out of kopf's Event posting: the operator posts its own Events, one per step.
    """

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def job_log(ref: Ref) -> JobLog:
    body = ref.body()
    return JobLog(
        log,
        {
            "k8s_ref": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": ref.name,
                "uid": ref.uid,
                "namespace": ref.namespace,
            },
            "k8s_skip": True,
            "job_id": ref.uid,
        },
    )
