"""What the operator writes to a resource: conditions by convention, results, retries."""

from __future__ import annotations

import datetime as dt

from avatar_operator import status as st
from avatar_operator.jobs import Conditions
from avatar_operator.resource import format_time
from avatar_runtime.api.jobs import OutputFile, Outputs, StageSeconds
from avatar_runtime.api.schemas import ErrorInfo, JobState, JobStatus

T0 = dt.datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=dt.UTC)


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    conditions: Conditions = {}
    st.set_condition(conditions, "Running", True, "Dispatched", "on pod a", generation=1, at=T0)
    later = T0 + dt.timedelta(seconds=30)
    st.set_condition(conditions, "Running", True, "Dispatched", "on pod b", generation=1, at=later)
    assert conditions["Running"]["lastTransitionTime"] == "2026-11-24T12:00:00.123Z"
    assert conditions["Running"]["message"] == "on pod b"
    st.set_condition(conditions, "Running", False, "Finished", "done", generation=1, at=later)
    assert conditions["Running"]["lastTransitionTime"] == format_time(later)
    st.set_condition(conditions, "Complete", True, "Rendered", "ok", generation=1, at=later)
    assert [c["type"] for c in st.conditions_list(conditions)] == ["Running", "Complete"]


def _file(url: str, duration: float | None = None) -> OutputFile:
    return OutputFile(url=url, size_bytes=10, sha256="ab" * 32, content_type="x/y",
                      duration_seconds=duration)  # fmt: skip


def test_a_success_carries_outputs_timings_and_clears_the_error() -> None:
    job = JobStatus(
        id="u",
        state=JobState.SUCCEEDED,
        stage="done",
        progress=1.0,
        created_at=T0,
        video_seconds=4.5,
        realtime_factor=0.3,
        wer=0.0,
        stages=StageSeconds(tts=1.0),
        outputs=Outputs(video=_file("gs://b/v.mp4", 4.5), thumbnail=_file("gs://b/t.jpg")),
    )
    patch = st.succeeded(job, finished=T0)
    assert patch["phase"] == "Succeeded"
    assert patch["progress"] == 100
    assert patch["error"] is None
    assert patch["outputs"]["video"] == {
        "url": "gs://b/v.mp4",
        "sizeBytes": 10,
        "sha256": "ab" * 32,
        "contentType": "x/y",
        "durationSeconds": 4.5,
    }
    assert patch["outputs"]["captions"] is None  # captions off: the field goes
    assert patch["stageSeconds"]["tts"] == 1.0
    assert patch["warnings"] is None  # none: the field goes (a retry's earlier ones too)


def test_a_success_says_what_the_user_should_know_within_the_crd_limits() -> None:
    notes = ["The portrait shows 2 faces; the largest front-facing one speaks.", "x" * 600]
    job = JobStatus(id="u", state=JobState.SUCCEEDED, created_at=T0, warnings=notes * 5)
    warnings = st.succeeded(job, finished=T0)["warnings"]
    assert warnings[0] == notes[0]
    assert len(warnings) == 8  # the CRD's maxItems
    assert max(map(len, warnings)) == 512  # and maxLength


def test_a_retry_says_why_and_when() -> None:
    error = ErrorInfo(code="DownloadFailed", message="HTTP 503", retriable=True)
    patch = st.queued(pool="default", position=3, attempts=1, generation=1,
                      next_attempt=T0, error=error)  # fmt: skip
    assert patch["phase"] == "Queued"
    assert patch["nextAttemptTime"] == format_time(T0)
    assert patch["error"] == {"code": "DownloadFailed", "message": "HTTP 503", "retriable": True}
    assert patch["runtimePod"] is None
    assert "DownloadFailed" in patch["message"]
