"""Logging set-up: JSON lines for machines, plain text for people, job id on every line.

The job id lives in a context variable, so every log line emitted while a job
runs carries it, whichever module logs and however deep.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pythonjsonlogger.json import JsonFormatter

current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


class _JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = current_job.get()
        return True


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = current_job.set(job_id)
    try:
        yield
    finally:
        current_job.reset(token)


def configure(*, level: str = "WARNING", json_format: bool = False) -> None:
    """Send logs to stderr (stdout is for results, e.g. ``render --json``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdFilter())
    if json_format:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(job_id)s",
                rename_fields={"levelname": "level", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [job=%(job_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per HTTP request is noise when an operator polls every job: DEBUG only.
    logging.getLogger("uvicorn.access").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    )
