"""Admission limits and shutdown of a real runtime process (2 slots, no auth)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from avatar_devcluster.waiting import wait_until
from tests.runtime.server.harness import (
    LONG_TEXT,
    SHORT_TEXT,
    Runtime,
    files_under,
    job_body,
    poll_until,
    start_runtime,
    wait_for,
)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    process = start_runtime(tmp_path, slots=2, queue_limit=1, grace=4.0)
    yield process
    process.stop()


def test_a_full_pod_answers_429_and_cancels_what_waits(
    runtime: Runtime, portrait_png: Path
) -> None:
    """2 slots + 1 queue place: the 4th job is refused with Retry-After (no auth set)."""
    with runtime.client() as api:
        for i in range(3):
            body = job_body(f"long-{i}", portrait_png, runtime.out, LONG_TEXT)
            assert api.post("/v1/jobs", json=body).status_code == 202
        full = api.post("/v1/jobs", json=job_body("one-too-many", portrait_png, runtime.out))
        assert full.status_code == 429
        assert int(full.headers["Retry-After"]) >= 1
        assert full.json()["error"]["code"] == "PodFull"
        assert full.json()["error"]["retriable"] is True
        # The second job takes its slot a moment after it was accepted (a busy machine can
        # make that moment long): wait for the pod to settle, then it is 2 + 1.
        capacity = wait_until(
            lambda: (c := api.get("/v1/capacity").json())["slots_busy"] == 2 and c,
            timeout=30,
            what="both slots busy",
        )
        assert (capacity["slots_busy"], capacity["queue_length"]) == (2, 1)

        waiting = api.delete("/v1/jobs/long-2").json()  # the queued one: cancelled at once
        assert waiting["state"] == "cancelled"
        for job_id in ("long-0", "long-1"):
            api.delete(f"/v1/jobs/{job_id}")
            assert wait_for(api, job_id, states={"cancelled"}, timeout=15)["state"] == "cancelled"
        assert api.get("/v1/capacity").json()["slots_busy"] == 0
        assert files_under(runtime.out) == []


def test_sigterm_drains_then_exits_0(runtime: Runtime, portrait_png: Path) -> None:
    """A job that ends within the grace period succeeds; one that cannot is interrupted."""
    long_text = " ".join([LONG_TEXT] * 2)
    with runtime.client() as api:
        short = job_body("short", portrait_png, runtime.out, SHORT_TEXT)
        assert api.post("/v1/jobs", json=short).status_code == 202
        poll_until(api, "short", lambda s: s["stage"] in {"render", "upload", "done"})
        long = job_body("long", portrait_png, runtime.out, long_text)
        long["options"]["resolution"] = 512
        assert api.post("/v1/jobs", json=long).status_code == 202
        poll_until(api, "long", lambda s: s["state"] == "running")

        runtime.process.send_signal(signal.SIGTERM)
        poll_until(api, "long", lambda _: api.get("/readyz").status_code == 503, timeout=5)
        refused = api.post("/v1/jobs", json=job_body("late", portrait_png, runtime.out))
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "NotAccepting"
        # Finished jobs stay readable while the pod drains.
        assert wait_for(api, "short", states={"succeeded", "failed"})["state"] == "succeeded"

    assert runtime.process.wait(timeout=60) == 0
    ended = {
        r["job_id"]: r
        for r in runtime.log_records()
        if str(r.get("message", "")).startswith("job ended")
    }
    assert ended["short"]["state"] == "succeeded"
    assert ended["long"]["state"] == "interrupted"
    assert ended["long"]["error"]["code"] == "Interrupted"
    assert ended["long"]["error"]["retriable"] is True
    assert [p.name for p in files_under(runtime.out / "short")] == [
        "captions.vtt",
        "manifest.json",  # the job's record, written last
        "thumbnail.jpg",
        "video.mp4",
    ]
    assert files_under(runtime.out / "long") == []  # nothing half-written
