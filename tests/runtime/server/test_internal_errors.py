"""A bug in a route is answered as a typed, retriable ``InternalError`` and logged with the job id.

A real process cannot be made to raise on purpose, so the app runs in-process
(no models loaded) with one of the pod's parts replaced by one that raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any, NoReturn

import httpx
import pytest

from avatar_runtime import logs
from avatar_runtime.server.app import create_app
from avatar_runtime.service.pod import RuntimePod
from avatar_runtime.settings import RuntimeSettings, ServerSettings, SlotSettings

TOKEN = "internal-errors-token"


class _Seen(logging.Handler):
    """Each record with the job id the logs' context gave it as it was emitted."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[tuple[logging.LogRecord, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record, logs.current_job.get()))


@pytest.fixture
def seen() -> Iterator[_Seen]:
    handler = _Seen()
    logger = logging.getLogger("avatar_runtime.server.guard")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _pod() -> RuntimePod:
    settings = RuntimeSettings(server=ServerSettings(token=TOKEN), slots=SlotSettings(count=1))
    pod = RuntimePod(settings)
    pod.ready.set()  # admits jobs without loading models
    return pod


def _call(pod: RuntimePod, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(pod, load=False))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://pod", headers=headers
        ) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(call())


def _broken(*_: object, **__: object) -> NoReturn:
    raise RuntimeError("the board broke")


def _internal_error(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 500, answer.text
    assert answer.headers["content-type"] == "application/json"
    error: dict[str, Any] = answer.json()["error"]
    assert (error["code"], error["retriable"]) == ("InternalError", True)
    return error


def test_a_route_that_raises_answers_internal_error_logged_with_the_path_job_id(
    seen: _Seen,
) -> None:
    pod = _pod()
    pod.board.status = _broken  # type: ignore[method-assign]
    error = _internal_error(_call(pod, "GET", "/v1/jobs/job-7"))
    assert "RuntimeError" in error["message"]
    assert "job-7" in error["message"]
    [(record, job_id)] = seen.records
    assert job_id == "job-7"
    assert record.exc_info is not None  # the traceback
    assert "the board broke" in str(record.exc_info[1])


def test_a_submission_that_raises_is_logged_with_the_id_from_its_body(seen: _Seen) -> None:
    pod = _pod()
    pod.board.submit = _broken  # type: ignore[method-assign]
    body = {
        "id": "job-from-body",
        "inputs": {"portrait": "https://example.com/p.png", "text": "Hello there."},
        "output": "gs://bucket/out/",
    }
    _internal_error(_call(pod, "POST", "/v1/jobs", json=body))
    [(_, job_id)] = seen.records
    assert job_id == "job-from-body"


def test_a_probe_that_raises_answers_internal_error_too(seen: _Seen) -> None:
    pod = _pod()
    pod.capacity = _broken  # type: ignore[method-assign]
    _internal_error(_call(pod, "GET", "/v1/capacity"))
    [(_, job_id)] = seen.records
    assert job_id is None
