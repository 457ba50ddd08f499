"""A runtime pod's HTTP API as a scripted transport, for the operator's unit tests.

Stands in for the runtime process only where the behaviour under test is the
operator's own reading of the answers (the real runtime serves the end-to-end
tests, and ``test_runtime_http`` the real transport against real sockets). The
scripts are written as httpx responses and errors, which read well; the fake
turns an error into what the real transport raises for it: a connect error is
``PodUnreachableError`` (nothing was sent), any other ``NoAnswerError``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from avatar_operator.runtime_http import Answer as HttpAnswer
from avatar_operator.runtime_http import NoAnswerError, PodUnreachableError
from avatar_runtime.api.schemas import Capacity, EngineNames, JobState, JobStatus

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def job_status(job_id: str, state: JobState, **fields: Any) -> JobStatus:
    return JobStatus(id=job_id, state=state, created_at=T0, **fields)


def capacity(slots: int = 2) -> Capacity:
    engines = EngineNames(tts="piper", asr="whisper", renderer="embedded", languages=["en"])
    return Capacity(
        slots_total=slots,
        slots_busy=0,
        queue_length=0,
        queue_limit=4,
        accepting=True,
        draining=False,
        engines=engines,
    )


def error_body(code: str, message: str, *, retriable: bool) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "retriable": retriable}}


Answer = httpx.Response | Exception


@dataclass
class FakeRuntime:
    """Answers from scripts: each route pops its next answer (the last one repeats).

    ``by_job`` answers a job's submission and reads by its id instead, for tests with
    several jobs that must be told apart.
    """

    reads: list[Answer] = field(default_factory=list)
    submits: list[Answer] = field(default_factory=list)
    capacities: list[Answer] = field(
        default_factory=lambda: [httpx.Response(200, json=capacity().model_dump(mode="json"))]
    )
    cancels: list[Answer] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    by_job: dict[str, FakeRuntime] = field(default_factory=dict)

    def transport(self) -> ScriptedTransport:
        return ScriptedTransport(self)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        job = _job_id(request)
        if job in self.by_job:
            return self.by_job[job]._handle(request)
        if path == "/v1/capacity":
            script = self.capacities
        elif path == "/v1/jobs" and request.method == "POST":
            script = self.submits
        elif request.method == "DELETE":
            script = self.cancels
        else:
            script = self.reads
        if not script:
            return httpx.Response(
                404, json=error_body("JobNotFound", "no such job", retriable=False)
            )
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class ScriptedTransport:
    """The operator's ``Transport`` answering from a ``FakeRuntime``'s scripts."""

    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime

    async def request(
        self,
        method: str,
        url: str,
        *,
        pool: str,
        content: str | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> HttpAnswer:
        request = httpx.Request(
            method,
            url,
            content=content,
            headers=dict(headers),
            extensions={"timeout": {"read": timeout}},  # what the test can look at
        )
        try:
            response = self.runtime._handle(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise PodUnreachableError(f"{method} {url}: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise NoAnswerError(f"{method} {url}: {exc!r}") from exc
        response.read()
        return HttpAnswer(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        pass


def _job_id(request: httpx.Request) -> str | None:
    if request.url.path == "/v1/jobs" and request.method == "POST":
        return str(json.loads(request.content)["id"])
    if request.url.path.startswith("/v1/jobs/"):
        return request.url.path.rsplit("/", 1)[1]
    return None


def status_answer(status: JobStatus, code: int = 200) -> httpx.Response:
    return httpx.Response(code, json=json.loads(status.model_dump_json()))


def pod_body(name: str, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "rt",
        "labels": {"avatar.dev/runtime-pool": "default"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
