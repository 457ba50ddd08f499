"""What follows an attempt: the retry rule as one pure function, without asyncio."""

from __future__ import annotations

import pytest

from avatar_operator.attempts import Failed, Retry, Succeeded, backoff, failed_send, outcome
from avatar_operator.jobs import Phase
from avatar_operator.settings import RetrySettings
from avatar_operator.tracking import AttemptEnd, Ending
from avatar_runtime.api.errors import ErrorCode
from avatar_runtime.api.schemas import ErrorInfo, JobState
from tests.unit.operator.fake_runtime import job_status

RETRIES = RetrySettings(base_seconds=10, max_seconds=300)


def ended(state: JobState, error: ErrorInfo | None = None) -> AttemptEnd:
    return AttemptEnd(Ending.FINISHED, status=job_status("uid-1", state, error=error))


def lost(reason: str = "runtime pod rt-1 is gone") -> AttemptEnd:
    return AttemptEnd(Ending.LOST, reason=reason)


def error(code: ErrorCode, *, retriable: bool) -> ErrorInfo:
    return ErrorInfo(code=code, message=f"{code} happened", retriable=retriable)


def test_a_success_is_a_success() -> None:
    result = outcome(ended(JobState.SUCCEEDED), attempts=1, max_retries=3, retries=RETRIES)
    assert isinstance(result, Succeeded)
    assert result.status.state is JobState.SUCCEEDED


def test_a_user_error_fails_at_once_with_the_runtimes_code() -> None:
    face = error(ErrorCode.FACE_NOT_FOUND, retriable=False)
    result = outcome(ended(JobState.FAILED, face), attempts=1, max_retries=3, retries=RETRIES)
    assert result == Failed(face)


def test_a_cancelled_job_ends_cancelled() -> None:
    result = outcome(ended(JobState.CANCELLED), attempts=1, max_retries=3, retries=RETRIES)
    assert isinstance(result, Failed)
    assert result.phase is Phase.CANCELLED
    assert result.error.code is ErrorCode.CANCELLED


@pytest.mark.parametrize(("attempts", "delay"), [(1, 10), (2, 20), (3, 40), (6, 300), (9, 300)])
def test_a_retriable_failure_waits_twice_as_long_each_time_up_to_the_cap(
    attempts: int, delay: float
) -> None:
    download = error(ErrorCode.DOWNLOAD_FAILED, retriable=True)
    result = outcome(
        ended(JobState.FAILED, download), attempts=attempts, max_retries=10, retries=RETRIES
    )
    assert result == Retry(delay=delay, error=download)
    assert backoff(attempts, RETRIES) == delay


def test_a_failure_without_an_error_is_retried_as_an_internal_one() -> None:
    result = outcome(ended(JobState.FAILED), attempts=1, max_retries=3, retries=RETRIES)
    assert isinstance(result, Retry)
    assert result.error is not None
    assert result.error.code is ErrorCode.INTERNAL


def test_a_lost_pod_or_a_drained_one_is_not_the_jobs_fault_no_wait() -> None:
    interrupted = error(ErrorCode.INTERRUPTED, retriable=True)
    drained = outcome(
        ended(JobState.INTERRUPTED, interrupted), attempts=2, max_retries=3, retries=RETRIES
    )
    assert drained == Retry(delay=0.0, error=interrupted, platform=True)
    gone = outcome(lost(), attempts=2, max_retries=3, retries=RETRIES)
    assert isinstance(gone, Retry)
    assert gone.delay == 0.0
    assert gone.error is not None
    assert gone.error.code is ErrorCode.RUNTIME_LOST
    assert gone.error.message == "runtime pod rt-1 is gone"


def test_the_platforms_interruptions_spend_none_of_the_users_retries() -> None:
    """A pod drained (Interrupted) or removed under a job (spot preemption, eviction, a
    scale-down) re-queues it at once, however many of its own retries it has spent."""
    interrupted = error(ErrorCode.INTERRUPTED, retriable=True)
    spent = outcome(
        ended(JobState.INTERRUPTED, interrupted),
        attempts=4,
        max_retries=3,
        retries=RETRIES,
        platform_retries=2,
    )
    assert spent == Retry(delay=0.0, error=interrupted, platform=True)
    removed = AttemptEnd(Ending.LOST, reason="runtime pod rt-1 is gone", platform=True)
    again = outcome(removed, attempts=1, max_retries=0, retries=RETRIES, platform_retries=5)
    assert isinstance(again, Retry)
    assert again.platform
    assert again.error is not None
    assert again.error.code is ErrorCode.RUNTIME_LOST
    # A pod that died on its own (a crash, perhaps the video's doing) is the user's retry.
    crashed = outcome(lost(), attempts=1, max_retries=0, retries=RETRIES, platform_retries=5)
    assert isinstance(crashed, Failed)


def test_a_platform_that_keeps_failing_ends_the_video_after_its_own_cap() -> None:
    capped = RetrySettings(base_seconds=10, max_seconds=300, max_platform_retries=2)
    removed = AttemptEnd(Ending.LOST, reason="runtime pod rt-1 is gone", platform=True)
    assert isinstance(
        outcome(removed, attempts=1, max_retries=3, retries=capped, platform_retries=1), Retry
    )
    gave_up = outcome(removed, attempts=1, max_retries=3, retries=capped, platform_retries=2)
    assert isinstance(gave_up, Failed)
    assert gave_up.error.code is ErrorCode.RUNTIME_LOST
    assert "gave up after 3 platform interruptions" in gave_up.error.message


def test_retries_end_once_max_retries_further_attempts_are_spent() -> None:
    download = error(ErrorCode.DOWNLOAD_FAILED, retriable=True)
    last_retry = outcome(
        ended(JobState.FAILED, download), attempts=3, max_retries=2, retries=RETRIES
    )
    assert isinstance(last_retry, Failed)
    assert last_retry.error.code is ErrorCode.DOWNLOAD_FAILED
    assert last_retry.error.message == "DownloadFailed happened (gave up after 3 attempts)"
    assert isinstance(
        outcome(ended(JobState.FAILED, download), attempts=2, max_retries=2, retries=RETRIES),
        Retry,
    )
    never = outcome(lost(), attempts=1, max_retries=0, retries=RETRIES)
    assert isinstance(never, Failed)
    assert never.error.code is ErrorCode.RUNTIME_LOST


def test_a_pod_failing_on_a_submission_costs_an_attempt_with_backoff_until_they_are_spent() -> None:
    """A video whose submission fails its pods (a 500 each time) is not sent round for
    ever: each failure is an attempt, with the usual backoff, and then it fails."""
    internal = error(ErrorCode.INTERNAL, retriable=True)
    assert failed_send(internal, attempts=1, max_retries=2, retries=RETRIES) == Retry(
        delay=10, error=internal
    )
    assert failed_send(internal, attempts=2, max_retries=2, retries=RETRIES) == Retry(
        delay=20, error=internal
    )
    last = failed_send(internal, attempts=3, max_retries=2, retries=RETRIES)
    assert isinstance(last, Failed)
    assert last.error.code is ErrorCode.INTERNAL
    assert "gave up after 3 attempts" in last.error.message


def test_a_submission_refused_for_good_fails_at_once() -> None:
    unauthorised = error(ErrorCode.UNAUTHORIZED, retriable=False)
    assert failed_send(unauthorised, attempts=1, max_retries=3, retries=RETRIES) == Failed(
        unauthorised
    )
