"""The runtime pod's HTTP API, from the operator's side: submit, read, cancel, capacity.

Answers become typed results or exceptions the attempt can act on: the pod
refused for now (full, draining: try another), the request is wrong (a
non-retriable error to copy to the status), the pod failed on it (an error
answer: maybe the job's fault, so it costs an attempt), the job is unknown (the
pod lost it), or the pod did not answer: either the request never reached it
(``PodUnreachableError``: nothing happened there) or the answer was lost on the
way back (``NoAnswerError``: the pod may have taken the job).
"""

from __future__ import annotations

from pydantic import ValidationError

from avatar_operator.runtime_http import (
    AiohttpTransport,
    Answer,
    NoAnswerError,
    PodUnreachableError,
    RuntimeCallError,
    Transport,
)
from avatar_runtime.api.errors import ErrorCode
from avatar_runtime.api.schemas import Capacity, ErrorBody, ErrorInfo, JobRequest, JobStatus

__all__ = [
    "JobNotFoundError",
    "JobRejectedError",
    "NoAnswerError",
    "PodBusyError",
    "PodFailedError",
    "PodRefusedError",
    "PodUnreachableError",
    "RuntimeCallError",
    "RuntimeClient",
]


class PodFailedError(RuntimeCallError):
    """The pod answered a submission with an error of its own (5xx, or not the API's answer).

    Unlike a refusal, nothing says it will pass: the job itself may be what fails the
    pod, so a sender counts it as an attempt.
    """

    def __init__(self, error: ErrorInfo, status: int) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error
        self.status = status


class PodRefusedError(RuntimeCallError):
    """The pod cannot take the job now (full, draining, loading); another may."""

    def __init__(self, error: ErrorInfo, retry_after: float | None) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error
        self.retry_after = retry_after


class JobRejectedError(RuntimeCallError):
    """The pod says the job itself is wrong; no pod will take it."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class PodBusyError(PodRefusedError):
    """The pod is alive but will not hold another read now (its long polls are full)."""


class JobNotFoundError(RuntimeCallError):
    """The pod has no such job: never accepted, expired, or lost in a restart."""


def _error(response: Answer) -> ErrorInfo:
    try:
        return ErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return ErrorInfo(
            code=ErrorCode.INTERNAL,
            message=f"runtime answered {response.status_code}: {response.text[:200]}",
            retriable=True,
        )


class RuntimeClient:
    """The runtime API's calls; the connections (a pool per pod) are the transport's."""

    def __init__(
        self,
        *,
        token: str | None,
        timeout: float,
        transport: Transport | None = None,
    ) -> None:
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._timeout = timeout
        self._transport = transport or AiohttpTransport(connect_timeout=timeout)

    async def close(self) -> None:
        await self._transport.aclose()

    async def _call(
        self,
        method: str,
        base: str,
        path: str,
        *,
        json: str | None = None,
        timeout: float | None = None,
    ) -> Answer:
        return await self._transport.request(
            method,
            f"{base}{path}",
            pool=base,
            content=json,
            headers=self._json_headers if json else self._headers,
            timeout=timeout or self._timeout,
        )

    async def submit(self, base: str, request: JobRequest) -> JobStatus:
        response = await self._call("POST", base, "/v1/jobs", json=request.model_dump_json())
        if response.status_code in (200, 202):
            try:
                return self._status(response)
            except PodUnreachableError as exc:  # taken, by its status code; unreadable answer
                raise NoAnswerError(str(exc)) from exc
        if response.status_code in (401, 403, 429, 503):  # the pod's state, not the job's
            raise PodRefusedError(_error(response), _retry_after(response))
        if response.status_code in (400, 409, 413, 422):
            raise JobRejectedError(_error(response))
        raise PodFailedError(_failure(response, f"POST {base}/v1/jobs"), response.status_code)

    async def read(self, base: str, job_id: str, *, wait: float = 0.0) -> JobStatus:
        """The job's status; with ``wait``, the pod answers early when the job finishes."""
        params = f"?wait={wait:g}" if wait > 0 else ""
        response = await self._call(
            "GET", base, f"/v1/jobs/{job_id}{params}", timeout=self._timeout + wait
        )
        return self._job_answer(response)

    async def cancel(self, base: str, job_id: str) -> JobStatus:
        return self._job_answer(await self._call("DELETE", base, f"/v1/jobs/{job_id}"))

    async def capacity(self, base: str) -> Capacity:
        response = await self._call("GET", base, "/v1/capacity")
        if response.status_code != 200:
            raise PodUnreachableError(f"GET {base}/v1/capacity answered {response.status_code}")
        try:
            return Capacity.model_validate_json(response.content)
        except ValidationError as exc:
            raise PodUnreachableError(f"GET {base}/v1/capacity: not a capacity: {exc}") from exc

    def _job_answer(self, response: Answer) -> JobStatus:
        if response.status_code == 200:
            return self._status(response)
        if response.status_code == 404:
            raise JobNotFoundError(_error(response).message)
        if response.status_code == 429:
            raise PodBusyError(_error(response), _retry_after(response))
        raise PodUnreachableError(f"answered {response.status_code}: {_error(response).message}")

    @staticmethod
    def _status(response: Answer) -> JobStatus:
        try:
            return JobStatus.model_validate_json(response.content)
        except ValidationError as exc:
            raise PodUnreachableError(f"not a job status: {exc}") from exc


def _retry_after(response: Answer) -> float | None:
    """``Retry-After`` in seconds, when given as a number (an HTTP date is ignored)."""
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _failure(response: Answer, call: str) -> ErrorInfo:
    """The pod's own error if it gave one, else DispatchFailed naming what it answered."""
    try:
        return ErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return ErrorInfo(
            code=ErrorCode.DISPATCH_FAILED,
            message=f"{call} answered {response.status_code}: {response.text[:200]}",
            retriable=True,
        )
