"""The runtime pod's HTTP API (FastAPI): job routes behind a bearer token, open health
and metrics routes. Routes translate between HTTP and the pod; they decide nothing.

Every request passes the request guard first (``server.guard``: the token, the body's
size and time, typed answers to anything unexpected). Only ``POST /v1/jobs`` runs on
the thread pool (its checks take milliseconds of CPU); every other route is cheap and
runs on the event loop, so health, readiness and metrics never queue behind anything,
and a long poll holds no thread while it waits, only one of a capped number of places.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import Receive

from avatar_runtime import __version__
from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.schemas import Capacity, ErrorBody, JobRequest, JobStatus
from avatar_runtime.metrics import RuntimeMetrics
from avatar_runtime.server.guard import RequestGuard, error_body, note_job_id
from avatar_runtime.service.board import Admission, JobBoard
from avatar_runtime.service.pod import RuntimePod

# Documents the scheme in the OpenAPI schema; the guard checks the token before any body is
# read, which a FastAPI dependency (run after the body is parsed) cannot.
_bearer = HTTPBearer(auto_error=False)


class ApiError(Exception):
    """An HTTP answer with an ``ErrorBody``."""

    def __init__(
        self, status: int, error: JobError, *, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.error = error
        self.headers = headers


def _answer(status: int, error: JobError, *, headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(error), status, headers, media_type="application/json")


def _pod(request: Request) -> RuntimePod:
    pod: RuntimePod = request.app.state.pod
    return pod


class LongPolls:
    """The pod's long-poll places. Taken and given back on the event loop only, so a plain
    counter needs no lock; beyond the cap a poll is refused 429 at once, not queued."""

    def __init__(self, *, limit: int, retry_seconds: int, metrics: RuntimeMetrics) -> None:
        self.limit = limit
        self.retry_seconds = retry_seconds
        self.open = 0
        self._metrics = metrics
        metrics.long_polls.set_function(lambda: self.open)

    @contextlib.contextmanager
    def place(self) -> Iterator[None]:
        if self.open >= self.limit:
            self._metrics.requests_refused.labels("long_polls_full").inc()
            message = (
                f"{self.limit} long polls are open on this pod, the most it holds; retry in"
                f" {self.retry_seconds} s, or read without wait."
            )
            raise ApiError(
                429,
                JobError(ErrorCode.TOO_MANY_LONG_POLLS, message),
                headers={"Retry-After": str(self.retry_seconds)},
            )
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1


jobs = APIRouter(prefix="/v1", dependencies=[Depends(_bearer)], tags=["jobs"])
health = APIRouter(tags=["health"])
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 408, 409, 413, 429, 500, 503)
}


@jobs.post("/jobs", status_code=202, response_model=JobStatus, responses=_ERRORS)
def submit(body: JobRequest, request: Request, response: Response) -> JobStatus:
    # On the thread pool (a plain def): checking the text and URLs of a body of up to a few
    # hundred KB takes milliseconds of CPU, which must not stall the event loop.
    note_job_id(request.scope, body.id)
    pod = _pod(request)
    if not pod.accepting:
        why = "draining" if pod.draining else "still loading its models"
        raise ApiError(503, JobError(ErrorCode.NOT_ACCEPTING, f"This pod is {why}."))
    try:
        pod.check_request(body.to_spec())
        pod.check_engines(body.options)
        admission, status = pod.board.submit(body)
    except JobError as error:
        raise ApiError(400, error) from None
    if admission is Admission.CREATED or admission is Admission.EXISTING:
        assert status is not None
        if admission is Admission.EXISTING:
            response.status_code = 200
        return status
    if admission is Admission.CONFLICT:
        message = f"Job {body.id} exists with a different body."
        raise ApiError(409, JobError(ErrorCode.JOB_CONFLICT, message, field="id"))
    if admission is Admission.FULL:
        retry = pod.board.retry_after()
        message = f"All slots and the wait queue are full; retry in about {retry} s."
        raise ApiError(
            429, JobError(ErrorCode.POD_FULL, message), headers={"Retry-After": str(retry)}
        )
    raise ApiError(503, JobError(ErrorCode.NOT_ACCEPTING, "This pod is draining."))


def _found(status: JobStatus | None, job_id: str) -> JobStatus:
    if status is None:
        raise ApiError(404, JobError(ErrorCode.JOB_NOT_FOUND, f"No job {job_id} on this pod."))
    return status


@jobs.get("/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS)
async def read(
    job_id: str,
    request: Request,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=30,
            description=(
                "Seconds to hold the answer until the job has finished; 0 answers at once."
            ),
        ),
    ] = 0.0,
) -> JobStatus:
    """The job's status. With `wait=S` (0 to 30 seconds) it is a long poll.

    The answer comes as soon as the job is finished (succeeded, failed, cancelled or
    interrupted) or after S seconds, whichever is first; the body is the usual status
    either way. So the operator learns at once that a job ended, and refills the slot,
    while it asks only every few seconds. The default, 0, answers at once.

    A pod holds a limited number of long polls at once (`max_long_polls`); beyond it the
    answer is `429 TooManyLongPolls` with `Retry-After`, at once. A poll of a finished or
    unknown job answers at once and takes no place.
    """
    board = _pod(request).board
    status = board.status(job_id)
    if wait <= 0 or status is None or status.state.finished:
        return _found(status, job_id)
    polls: LongPolls = request.app.state.long_polls
    with polls.place():
        status = await _long_poll(board, job_id, wait=wait, receive=request.receive)
    return _found(status, job_id)


async def _long_poll(
    board: JobBoard, job_id: str, *, wait: float, receive: Receive
) -> JobStatus | None:
    """Wait for the job's end, but stop when the client hangs up, which frees the place."""
    finished = asyncio.ensure_future(board.wait_finished(job_id, wait))
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((finished, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        finished.cancel()
        gone.cancel()
    if finished.done() and not finished.cancelled():
        return finished.result()
    return board.status(job_id)  # the client has gone; this answer goes nowhere


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the (empty) body of the GET itself


@jobs.delete("/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS)
async def cancel(job_id: str, request: Request) -> JobStatus:
    return _found(_pod(request).board.cancel(job_id), job_id)


@jobs.get("/capacity", response_model=Capacity)
async def capacity(request: Request) -> Capacity:
    return _pod(request).capacity()


@health.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Liveness: fails only when loading failed (a restart may help); not while busy."""
    pod = _pod(request)
    if pod.failed:
        return JSONResponse({"status": "failed", "reason": pod.failed}, status_code=500)
    return JSONResponse({"status": "ok"})


@health.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: models loaded and warmed up, and not draining."""
    pod = _pod(request)
    if pod.accepting:
        return JSONResponse({"status": "ready"})
    state = "draining" if pod.draining else "failed" if pod.failed else "loading"
    return JSONResponse({"status": state}, status_code=503)


@health.get("/metrics")
async def metrics(request: Request) -> Response:
    # Collected on a thread of its own: a slow NVML read must not stall the event loop, and a
    # scrape must not queue behind admissions on the shared thread pool.
    executor: ThreadPoolExecutor = request.app.state.metrics_executor
    registry = _pod(request).metrics.registry
    text = await asyncio.get_running_loop().run_in_executor(executor, generate_latest, registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


def create_app(pod: RuntimePod, *, load: bool = True) -> FastAPI:
    """The ASGI app; with ``load`` the models load in the background at start-up."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if load:
            threading.Thread(target=pod.load, name="load-models", daemon=True).start()
        yield
        executor.shutdown(wait=False)

    server = pod.settings.server
    app = FastAPI(title="avatar-runtime", version=__version__, lifespan=lifespan)
    app.state.pod = pod
    app.state.metrics_executor = executor
    app.state.long_polls = LongPolls(
        limit=server.max_long_polls,
        retry_seconds=server.long_poll_retry_seconds,
        metrics=pod.metrics,
    )
    pod.metrics.track_finished(pod.board.finished)
    app.add_middleware(RequestGuard, token=pod.token, settings=server, metrics=pod.metrics)
    app.include_router(jobs)
    app.include_router(health)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return _answer(exc.status, exc.error, headers=exc.headers)

    @app.exception_handler(JobError)
    async def _job_error(_: Request, exc: JobError) -> Response:
        return _answer(400, exc)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        # Starlette's own answers (no such route, method not allowed), typed like the rest.
        message = f"{request.method} {request.url.path}: {exc.detail}"
        error = JobError(ErrorCode.INVALID_REQUEST, message)
        return _answer(exc.status_code, error, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        problem = exc.errors()[0]
        location = [str(p) for p in problem.get("loc", ()) if p != "body"]
        field = ".".join(location) or None
        message = f"{field}: {problem.get('msg')}" if field else str(problem.get("msg"))
        error = JobError(ErrorCode.INVALID_REQUEST, message, field=field)
        return _answer(400, error)

    return app
