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

import asyncio
import collections

import httpx
from pydantic import ValidationError

from avatar_runtime.api.errors import ErrorCode
from avatar_runtime.api.schemas import Capacity, ErrorBody, ErrorInfo, JobRequest, JobStatus


class RuntimeCallError(Exception):
    """Base of what a runtime call can raise."""


class PodUnreachableError(RuntimeCallError):
    """No answer, or not an answer of the runtime API."""


class NoAnswerError(PodUnreachableError):
    """The request went out but no answer came back: the pod may have acted on it."""


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


def _error(response: httpx.Response) -> ErrorInfo:
    try:
        return ErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return ErrorInfo(
            code=ErrorCode.INTERNAL,
            message=f"runtime answered {response.status_code}: {response.text[:200]}",
            retriable=True,
        )


class RuntimeClient:
    """One connection pool per runtime pod. httpcore checks every connection of a pool
    for expiry on each request (a socket poll each), so one pool shared by a fleet's
    long polls made each request cost O(pods x slots); a pod's own pool holds its slots'
    few connections. Pools of pods not used for a while are closed (at most ``pools``)."""

    def __init__(
        self,
        *,
        token: str | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        pools: int = 512,
    ) -> None:
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._transport = transport
        self._timeout = timeout
        self._pools: collections.OrderedDict[str, httpx.AsyncClient] = collections.OrderedDict()
        self._max_pools = pools
        self._closing: set[asyncio.Task[None]] = set()

    def _http(self, base: str) -> httpx.AsyncClient:
        client = self._pools.get(base)
        if client is not None:
            self._pools.move_to_end(base)
            return client
        client = self._pools[base] = httpx.AsyncClient(
            headers=self._headers,
            timeout=httpx.Timeout(self._timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            transport=self._transport,
        )
        while len(self._pools) > self._max_pools:  # the least recently used pod's
            _, old = self._pools.popitem(last=False)
            task = asyncio.get_running_loop().create_task(old.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return client

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), collections.OrderedDict()
        await asyncio.gather(*(p.aclose() for p in pools), *self._closing)

    async def _call(
        self,
        method: str,
        base: str,
        path: str,
        *,
        json: str | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            return await self._http(base).request(
                method,
                f"{base}{path}",
                content=json,
                headers={"Content-Type": "application/json"} if json else None,
                timeout=timeout or self._timeout,
            )
        except _NOT_SENT as exc:
            raise PodUnreachableError(f"{method} {base}{path}: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise NoAnswerError(f"{method} {base}{path}: {exc!r}") from exc

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

    def _job_answer(self, response: httpx.Response) -> JobStatus:
        if response.status_code == 200:
            return self._status(response)
        if response.status_code == 404:
            raise JobNotFoundError(_error(response).message)
        if response.status_code == 429:
            raise PodBusyError(_error(response), _retry_after(response))
        raise PodUnreachableError(f"answered {response.status_code}: {_error(response).message}")

    @staticmethod
    def _status(response: httpx.Response) -> JobStatus:
        try:
            return JobStatus.model_validate_json(response.content)
        except ValidationError as exc:
            raise PodUnreachableError(f"not a job status: {exc}") from exc


# Failures before any byte of the request reached the pod.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, when given as a number (an HTTP date is ignored)."""
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _failure(response: httpx.Response, call: str) -> ErrorInfo:
    """The pod's own error if it gave one, else DispatchFailed naming what it answered."""
    try:
        return ErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return ErrorInfo(
            code=ErrorCode.DISPATCH_FAILED,
            message=f"{call} answered {response.status_code}: {response.text[:200]}",
            retriable=True,
        )
