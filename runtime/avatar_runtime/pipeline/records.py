"""The durable record of a finished job, next to its outputs: why a video renders once.

A pod can finish a job and die before anyone reads the result (the operator was
restarting, say); the job then goes to another pod, and only the dead pod's memory
knew that it was done. So the last thing a job writes, after its outputs, is
``manifest.json`` beside them (``talk.json`` for ``talk.mp4``): the job id, a hash
of what was asked, and the result with every output's size and sha256, written
whole or not at all. Before a job with an id renders anything, the pipeline looks
for that record: when it names the same job and the same request, and every output
it lists is there with the same sha256, the job is finished already and its result
is the record's. Anything less (no record, another job's, a file changed or
missing) and the job renders as usual, overwriting what is there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path

from pydantic import BaseModel, ValidationError

from avatar_runtime.api.jobs import JobResult, JobSpec
from avatar_runtime.pipeline.storage import OutputTarget

log = logging.getLogger(__name__)

_MAX_BYTES = 1024 * 1024  # a record is a few KB; anything larger is not one of ours


class FinishedJob(BaseModel):
    """``manifest.json``: field names are a contract with whoever reads the bucket."""

    job_id: str
    request_sha256: str
    """sha256 of the job's spec: the same id asked for something else is another job."""
    finished_at: dt.datetime
    result: JobResult


def request_hash(spec: JobSpec) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def record_url(target: OutputTarget) -> str:
    return target.url_for("manifest", ".json")


def write(
    target: OutputTarget, *, job_id: str, spec: JobSpec, result: JobResult, journal: Path
) -> None:
    """The record, after every output is in place (raises what the store raises)."""
    record = FinishedJob(
        job_id=job_id,
        request_sha256=request_hash(spec),
        finished_at=dt.datetime.now(dt.UTC),
        result=result,
    )
    data = record.model_dump_json(indent=2).encode()
    target.write_atomically(record_url(target), data, journal=journal)


def find(target: OutputTarget, *, job_id: str, spec: JobSpec) -> JobResult | None:
    """The result of this very job if it finished before and its outputs are intact."""
    data = target.read_bytes(record_url(target), max_bytes=_MAX_BYTES)
    if data is None:
        return None
    try:
        record = FinishedJob.model_validate_json(data)
    except ValidationError:
        log.warning("%s is not a job record; rendering", record_url(target))
        return None
    if record.job_id != job_id or record.request_sha256 != request_hash(spec):
        return None
    outputs = record.result.outputs
    for output in (outputs.video, outputs.thumbnail, outputs.captions):
        if output is not None and target.sha256_of(output.url) != output.sha256:
            log.warning("%s changed since the job finished; rendering again", output.url)
            return None
    return record.result
