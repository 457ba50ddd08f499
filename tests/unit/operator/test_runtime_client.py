"""The operator's reading of the runtime API's answers: each becomes a typed result or error.

The runtime is an httpx ``MockTransport`` here (see ``fake_runtime``): what is
tested is how the operator's real client reads status codes, bodies and headers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from avatar_operator.resource import AvatarVideoSpec, job_request
from avatar_operator.runtime_client import (
    JobNotFoundError,
    JobRejectedError,
    NoAnswerError,
    PodBusyError,
    PodFailedError,
    PodRefusedError,
    PodUnreachableError,
    RuntimeClient,
)
from avatar_runtime.api.errors import ErrorCode
from avatar_runtime.api.schemas import JobState
from tests.unit.operator.fake_runtime import (
    FakeRuntime,
    capacity,
    error_body,
    job_status,
    status_answer,
)

BASE = "http://10.0.0.1:8080"
T = TypeVar("T")
SPEC = AvatarVideoSpec.model_validate(
    {"portrait": "gs://b/p.png", "text": "Hi", "output": "gs://b/o/"}
)


def call(
    runtime: FakeRuntime,
    action: Callable[[RuntimeClient], Awaitable[T]],
    *,
    token: str | None = "s3cret",
) -> T:
    async def go() -> T:
        client = RuntimeClient(token=token, timeout=5, transport=runtime.transport())
        try:
            return await action(client)
        finally:
            await client.close()

    return asyncio.run(go())


def test_an_accepted_job_comes_back_as_its_status_and_the_token_goes_with_it() -> None:
    runtime = FakeRuntime(submits=[status_answer(job_status("uid-1", JobState.QUEUED), 202)])
    status = call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))
    assert status.state is JobState.QUEUED
    (request,) = runtime.requests
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Content-Type"] == "application/json"
    assert request.url.path == "/v1/jobs"


def test_no_token_sends_no_authorization_header() -> None:
    runtime = FakeRuntime(submits=[status_answer(job_status("uid-1", JobState.QUEUED), 202)])
    call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)), token=None)
    assert "Authorization" not in runtime.requests[0].headers


@pytest.mark.parametrize("code", [401, 403, 429, 503])
def test_a_full_draining_or_misconfigured_pod_refuses_for_now(code: int) -> None:
    """Not the job's fault: no attempt is spent on it (a wrong token is the operator's)."""
    runtime = FakeRuntime(submits=[httpx.Response(code, text="no")])
    with pytest.raises(PodRefusedError):
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))


@pytest.mark.parametrize("code", [429, 503])
def test_a_full_or_draining_pod_refuses_for_now_with_its_retry_after(code: int) -> None:
    body = error_body("PodFull", "all slots busy", retriable=True)
    runtime = FakeRuntime(submits=[httpx.Response(code, json=body, headers={"Retry-After": "3"})])
    with pytest.raises(PodRefusedError) as refused:
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))
    assert refused.value.retry_after == 3.0
    assert refused.value.error.code is ErrorCode.POD_FULL


@pytest.mark.parametrize("code", [400, 409, 413, 422])
def test_a_wrong_job_is_rejected_with_the_runtimes_code(code: int) -> None:
    body = error_body("InvalidRequest", "text: too long", retriable=False)
    runtime = FakeRuntime(submits=[httpx.Response(code, json=body)])
    with pytest.raises(JobRejectedError) as rejected:
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))
    assert rejected.value.error.code is ErrorCode.INVALID_REQUEST
    assert not rejected.value.error.retriable


def test_a_code_newer_than_the_operator_is_kept_in_the_message() -> None:
    body = error_body("PortraitTooBlurry", "the face is out of focus", retriable=False)
    runtime = FakeRuntime(submits=[httpx.Response(400, json=body)])
    with pytest.raises(JobRejectedError) as rejected:
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))
    assert rejected.value.error.code is ErrorCode.INTERNAL
    assert rejected.value.error.message == "PortraitTooBlurry: the face is out of focus"
    assert not rejected.value.error.retriable


def test_a_rejection_without_an_error_body_still_says_what_the_pod_answered() -> None:
    runtime = FakeRuntime(submits=[httpx.Response(400, text="<html>Bad Request</html>")])
    with pytest.raises(JobRejectedError) as rejected:
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))
    assert rejected.value.error.code is ErrorCode.INTERNAL
    assert "400" in rejected.value.error.message
    assert "Bad Request" in rejected.value.error.message


@pytest.mark.parametrize("answer", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")])
def test_a_pod_that_never_got_the_request_is_unreachable(answer: Exception) -> None:
    runtime = FakeRuntime(submits=[answer])
    with pytest.raises(PodUnreachableError) as raised:
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))
    assert not isinstance(raised.value, NoAnswerError)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("closed mid-answer"),
        httpx.Response(202, text="not a status"),
    ],
)
def test_a_submission_whose_answer_was_lost_may_have_been_taken(
    answer: httpx.Response | Exception,
) -> None:
    runtime = FakeRuntime(submits=[answer])
    with pytest.raises(NoAnswerError):
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))


def test_a_pod_failing_on_a_job_says_so_with_its_own_code() -> None:
    body = error_body("InternalError", "TypeError: boom", retriable=True)
    runtime = FakeRuntime(submits=[httpx.Response(500, json=body)])
    with pytest.raises(PodFailedError) as failed:
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))
    assert failed.value.status == 500
    assert failed.value.error.code is ErrorCode.INTERNAL
    assert failed.value.error.message == "TypeError: boom"


@pytest.mark.parametrize(
    "answer", [httpx.Response(500, text="Internal Server Error"), httpx.Response(404)]
)
def test_a_failure_without_the_apis_error_body_is_a_dispatch_failure(
    answer: httpx.Response,
) -> None:
    runtime = FakeRuntime(submits=[answer])
    with pytest.raises(PodFailedError) as failed:
        call(runtime, lambda c: c.submit(BASE, job_request("uid-1", SPEC)))
    assert failed.value.error.code is ErrorCode.DISPATCH_FAILED
    assert failed.value.error.retriable
    assert str(answer.status_code) in failed.value.error.message


def test_a_long_poll_asks_the_pod_to_wait_and_waits_longer_itself() -> None:
    runtime = FakeRuntime(reads=[status_answer(job_status("uid-1", JobState.RUNNING))])
    status = call(runtime, lambda c: c.read(BASE, "uid-1", wait=2.0))
    assert status.state is JobState.RUNNING
    (request,) = runtime.requests
    assert request.url.params["wait"] == "2"
    assert request.extensions["timeout"]["read"] == 7.0  # its own 5 s beyond the 2 s wait


def test_a_pod_whose_long_polls_are_full_is_busy_not_gone() -> None:
    body = error_body("TooManyLongPolls", "256 long polls are open", retriable=True)
    runtime = FakeRuntime(reads=[httpx.Response(429, json=body, headers={"Retry-After": "1"})])
    with pytest.raises(PodBusyError) as busy:
        call(runtime, lambda c: c.read(BASE, "uid-1", wait=2.0))
    assert busy.value.retry_after == 1.0
    assert not isinstance(busy.value, PodUnreachableError)


def test_a_job_the_pod_does_not_know_is_not_found() -> None:
    with pytest.raises(JobNotFoundError):
        call(FakeRuntime(), lambda c: c.read(BASE, "uid-1"))


def test_an_answer_that_is_not_a_job_status_is_not_the_runtime_api() -> None:
    runtime = FakeRuntime(reads=[httpx.Response(200, json={"hello": "world"})])
    with pytest.raises(PodUnreachableError, match="not a job status"):
        call(runtime, lambda c: c.read(BASE, "uid-1"))


def test_capacity_is_read_or_the_pod_counts_as_unreachable() -> None:
    good = FakeRuntime()
    assert call(good, lambda c: c.capacity(BASE)) == capacity()
    for answer in (httpx.Response(503), httpx.Response(200, json={"slots": "many"})):
        with pytest.raises(PodUnreachableError):
            call(FakeRuntime(capacities=[answer]), lambda c: c.capacity(BASE))


def test_a_cancel_returns_the_jobs_state() -> None:
    runtime = FakeRuntime(cancels=[status_answer(job_status("uid-1", JobState.CANCELLED))])
    assert call(runtime, lambda c: c.cancel(BASE, "uid-1")).state is JobState.CANCELLED
    assert runtime.requests[0].method == "DELETE"
