"""Following one attempt on one runtime pod until it ends, or the pod is lost.

The operator reads the job with a long poll (the pod answers at once when the
job finishes, else after a few seconds), which makes a freed slot visible
within milliseconds while costing one request per job every few seconds. A pod
counts as lost only when the job cannot be read there: it answers that it
does not know the job, or it stays unreachable while gone from the API or for
longer than ``pod_lost_seconds``. A pod that answers it is too busy to hold
another read (429) is alive: it is asked again after its ``Retry-After``. A pod
that is only shutting down still finishes (or interrupts) its jobs and says so.

A lost attempt says whether the platform ended it (``AttemptEnd.platform``): its pod
was being deleted, or Kubernetes marked it disrupted (a spot preemption, an eviction, a
node shutdown). Such a loss is nobody's fault but the platform's and spends none of the
video's retries; a pod that merely died (a crash, perhaps the video's doing) does.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from avatar_operator.kube import Kube
from avatar_operator.pods import PodRegistry
from avatar_operator.runtime_client import (
    JobNotFoundError,
    PodBusyError,
    PodUnreachableError,
    RuntimeClient,
)
from avatar_operator.settings import TrackingSettings
from avatar_runtime.api.schemas import JobStatus


class Ending(enum.Enum):
    FINISHED = "finished"
    """The runtime says how it ended: succeeded, failed, cancelled or interrupted."""
    LOST = "lost"
    """The pod died, was deleted, or forgot the job; the job can run elsewhere."""


@dataclass(frozen=True)
class AttemptEnd:
    ending: Ending
    status: JobStatus | None = None
    reason: str = ""
    platform: bool = False
    """Lost because the platform removed the pod (deleted, preempted, evicted)."""


class Tracker:
    def __init__(
        self, *, settings: TrackingSettings, runtime: RuntimeClient, pods: PodRegistry, kube: Kube
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.pods = pods
        self.kube = kube

    async def url(self, pod_name: str) -> str | None:
        """The pod's API address; asks the API server when the watch has not told yet."""
        pod = self.pods.get(pod_name)
        if pod is not None and pod.url is not None:
            return pod.url
        body = await self.kube.pod(self.pods.namespace, pod_name)
        if body is None:
            return None
        self.pods.observe("MODIFIED", body)
        pod = self.pods.get(pod_name)
        return pod.url if pod is not None else None

    def _removed(self, pod_name: str) -> bool:
        """Whether the platform took the pod away (not a crash of its own)."""
        pod = self.pods.get(pod_name)
        return pod is None or pod.terminating or pod.disrupted

    async def follow(
        self,
        job_id: str,
        pod_name: str,
        on_progress: Callable[[JobStatus], Awaitable[None]],
    ) -> AttemptEnd:
        first, longest = self.settings.unreachable_backoff_seconds
        delay = first
        silent_since: float | None = None
        while True:
            try:
                url = await self.url(pod_name)
            except Exception as exc:  # the API server blinked; keep trying
                url, why = "", f"cannot read pod {pod_name}: {exc}"
            else:
                if url is None:
                    pod = self.pods.get(pod_name)
                    if pod is None or pod.gone:
                        return AttemptEnd(
                            Ending.LOST,
                            reason=f"runtime pod {pod_name} is gone",
                            platform=self._removed(pod_name),
                        )
                why = f"runtime pod {pod_name} has no address yet"
            if url:
                try:
                    status = await self.runtime.read(
                        url, job_id, wait=self.settings.long_poll_seconds
                    )
                except JobNotFoundError:
                    return AttemptEnd(
                        Ending.LOST, reason=f"runtime pod {pod_name} does not know the job"
                    )
                except PodBusyError as exc:  # alive, only its long polls are full: ask later
                    silent_since, delay = None, first
                    await asyncio.sleep(
                        min(exc.retry_after or 1.0, self.settings.long_poll_seconds)
                    )
                    continue
                except PodUnreachableError as exc:
                    why = str(exc)
                else:
                    if status.state.finished:
                        return AttemptEnd(Ending.FINISHED, status=status)
                    silent_since, delay = None, first
                    await on_progress(status)
                    continue
            pod = self.pods.get(pod_name)
            if pod is not None and (pod.gone or pod.terminating):
                # A pod being deleted that no longer answers has ended: no point waiting.
                return AttemptEnd(
                    Ending.LOST,
                    reason=f"runtime pod {pod_name} is gone ({why})",
                    platform=self._removed(pod_name),
                )
            now = time.monotonic()
            silent_since = silent_since or now
            if now - silent_since > self.settings.pod_lost_seconds:
                return AttemptEnd(Ending.LOST, reason=f"runtime pod {pod_name} stopped answering")
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)
