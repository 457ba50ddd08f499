"""Status writes in two lanes: what a dispatch waits on never queues behind a backlog.

The Kubernetes API is a recording stand-in whose bulk lane is held shut (as a burst of
10,000 Queued writes and Events holds a real one): a dispatched job's Running status
still lands at once, carrying its unsent Queued write along, and the bulk writers later
send nothing twice. The end-to-end figure is ``benchmarks/operator_benchmark.py`` at
10,000 queued (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from prometheus_client import CollectorRegistry

from avatar_operator.background import Background
from avatar_operator.jobs import Job
from avatar_operator.metrics import OperatorMetrics
from avatar_operator.reporting import Reporter, _merge
from avatar_operator.resource import AvatarVideoSpec, Ref
from avatar_operator.settings import StatusSettings


class LaneKube:
    """Records each status write with its lane; the bulk lane waits until opened."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, bool, dict[str, Any]]] = []
        self.bulk_open = asyncio.Event()
        self.events: list[str] = []

    async def patch_status(self, ref: Ref, status: dict[str, Any], *, urgent: bool = False) -> bool:
        if not urgent:
            await self.bulk_open.wait()
        self.writes.append((ref.uid, urgent, status))
        return True

    async def event(self, ref: Ref, *, type_: str, reason: str, message: str) -> str:
        self.events.append(reason)
        return f"{ref.name}.{len(self.events)}"

    async def repeat_event(self, ref: Ref, *, name: str, count: int, message: str) -> bool:
        return True


def _job(i: int) -> Job:
    spec = AvatarVideoSpec.model_validate(
        {"portrait": "gs://b/p.png", "text": "Hello there.", "output": "gs://b/o/"}
    )
    return Job(
        ref=Ref("team", f"video-{i}", f"uid-{i}"),
        spec=spec,
        generation=1,
        created=dt.datetime.now(dt.UTC),
        seen=time.monotonic(),
        estimate=3.0,
    )


def _reporter(kube: LaneKube) -> tuple[Reporter, Background]:
    background = Background()
    reporter = Reporter(
        kube=kube,  # type: ignore[arg-type]
        metrics=OperatorMetrics(CollectorRegistry()),
        settings=StatusSettings(),
        background=background,
        on_gone=lambda job: None,
    )
    return reporter, background


def test_a_dispatch_write_does_not_wait_for_a_backlog_of_queued_writes() -> None:
    async def scenario() -> tuple[LaneKube, float]:
        kube = LaneKube()
        reporter, background = _reporter(kube)
        jobs = [_job(i) for i in range(1000)]
        for job in jobs:
            reporter.queued(job, position=None, delay=0.0, error=None)
        await asyncio.sleep(0.01)  # the bulk writers take their first jobs, and wait
        began = time.monotonic()
        await asyncio.wait_for(reporter.dispatched(jobs[500], pod="pod-a", first_start=True), 1)
        took = time.monotonic() - began
        kube.bulk_open.set()
        await background.stop()
        return kube, took

    kube, took = asyncio.run(scenario())
    assert took < 0.5
    mine = [(urgent, status) for uid, urgent, status in kube.writes if uid == "uid-500"]
    # One write, urgent, with the Queued write's fields folded in and the phase it has now.
    assert len(mine) == 1
    urgent, status = mine[0]
    assert urgent
    assert status["phase"] == "Running"
    assert status["runtimePod"] == "pod-a"
    assert status["observedGeneration"] == 1  # from the Queued write it carried along
    assert status["progress"] == 0
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons["Running"] == "Dispatched"
    # Every other job's Queued status went out once, on the bulk lane.
    others = [uid for uid, urgent, _ in kube.writes if uid != "uid-500"]
    assert sorted(others) == sorted(f"uid-{i}" for i in range(1000) if i != 500)
    assert not any(urgent for uid, urgent, _ in kube.writes if uid != "uid-500")


def test_bulk_writes_of_one_job_merge_and_keep_their_order() -> None:
    async def scenario() -> LaneKube:
        kube = LaneKube()
        reporter, background = _reporter(kube)
        blockers = [_job(i) for i in range(reporter.bulk_writers)]
        for job in blockers:  # every bulk writer busy
            reporter.send(job, {"message": "first"})
        await asyncio.sleep(0.01)
        job = _job(99)
        reporter.send(job, {"queuePosition": 7, "message": "waiting"})
        reporter.send(job, {"queuePosition": 3})
        await reporter.position(job, 1)
        kube.bulk_open.set()
        await background.stop()
        return kube

    kube = asyncio.run(scenario())
    mine = [status for uid, _, status in kube.writes if uid == "uid-99"]
    assert mine == [{"queuePosition": 1, "message": "waiting"}]


def test_folding_merge_patches_is_applying_them_in_turn() -> None:
    first: dict[str, Any] = {"a": {"x": 1, "y": 2}, "b": 1, "c": [1]}
    later: dict[str, Any] = {"a": {"y": None, "z": 3}, "c": [2], "d": None}
    _merge(first, later)
    assert first == {"a": {"x": 1, "y": None, "z": 3}, "b": 1, "c": [2], "d": None}
    later["a"]["z"] = 4  # the fold copied, so the caller's patch is its own
    assert first["a"]["z"] == 3
