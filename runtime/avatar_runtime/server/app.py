"""The runtime pod's HTTP API (FastAPI): job routes behind a bearer token, open health
and metrics routes. Routes translate between HTTP and the pod; they decide nothing.
"""

from __future__ import annotations

import contextlib
import hmac
import threading
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from avatar_runtime import __version__
from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.schemas import Capacity, ErrorBody, ErrorInfo, JobRequest, JobStatus
from avatar_runtime.service.board import Admission
from avatar_runtime.service.pod import RuntimePod

_bearer = HTTPBearer(auto_error=False)


class ApiError(Exception):
    """An HTTP answer with an ``ErrorBody``."""

    def __init__(
        self, status: int, error: JobError, *, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.error = error
        self.headers = headers


def _body(error: JobError) -> dict[str, object]:
    return ErrorBody(error=ErrorInfo(**error.to_dict())).model_dump(mode="json")


def _pod(request: Request) -> RuntimePod:
    pod: RuntimePod = request.app.state.pod
    return pod


def _authorised(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token = _pod(request).token
    if token is None:
        return
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(
            401,
            JobError(ErrorCode.UNAUTHORIZED, "A valid bearer token is required."),
            headers={"WWW-Authenticate": "Bearer"},
        )


jobs = APIRouter(prefix="/v1", dependencies=[Depends(_authorised)], tags=["jobs"])
health = APIRouter(tags=["health"])
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 429, 503)
}


@jobs.post("/jobs", status_code=202, response_model=JobStatus, responses=_ERRORS)
def submit(body: JobRequest, request: Request, response: Response) -> JobStatus:
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
def read(
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
    """
    board = _pod(request).board
    status = board.wait_finished(job_id, wait) if wait > 0 else board.status(job_id)
    return _found(status, job_id)


@jobs.delete("/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS)
def cancel(job_id: str, request: Request) -> JobStatus:
    return _found(_pod(request).board.cancel(job_id), job_id)


@jobs.get("/capacity", response_model=Capacity)
def capacity(request: Request) -> Capacity:
    return _pod(request).capacity()


@health.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """Liveness: fails only when loading failed (a restart may help); not while busy."""
    pod = _pod(request)
    if pod.failed:
        return JSONResponse({"status": "failed", "reason": pod.failed}, status_code=500)
    return JSONResponse({"status": "ok"})


@health.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Readiness: models loaded and warmed up, and not draining."""
    pod = _pod(request)
    if pod.accepting:
        return JSONResponse({"status": "ready"})
    state = "draining" if pod.draining else "failed" if pod.failed else "loading"
    return JSONResponse({"status": state}, status_code=503)


@health.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(_pod(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(pod: RuntimePod, *, load: bool = True) -> FastAPI:
    """The ASGI app; with ``load`` the models load in the background at start-up."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if load:
            threading.Thread(target=pod.load, name="load-models", daemon=True).start()
        yield

    app = FastAPI(title="avatar-runtime", version=__version__, lifespan=lifespan)
    app.state.pod = pod
    app.include_router(jobs)
    app.include_router(health)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.error), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(JobError)
    async def _job_error(_: Request, exc: JobError) -> JSONResponse:
        return JSONResponse(_body(exc), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problem = exc.errors()[0]
        location = [str(p) for p in problem.get("loc", ()) if p != "body"]
        field = ".".join(location) or None
        message = f"{field}: {problem.get('msg')}" if field else str(problem.get("msg"))
        error = JobError(ErrorCode.INVALID_REQUEST, message, field=field)
        return JSONResponse(_body(error), status_code=400)

    return app
