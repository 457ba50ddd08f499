"""The runtime's HTTP contract: what the operator sends and reads back.

The operator imports the ``avatar_runtime.api`` package (``errors``, ``jobs`` and
this module) and nothing else of the runtime, so all three stay free of engines,
numpy and web frameworks (``.importlinter`` checks it). Field names are part of
the interface; add fields, never rename them.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from avatar_runtime.api.errors import ErrorCode
from avatar_runtime.api.jobs import JobSpec, Outputs, StageSeconds

# A Kubernetes uid, or any other id of the same alphabet.
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# A BCP 47 tag's shape, in either case: the CRD's (lower-case primary subtag) is narrower, so
# nothing the API server admits is refused here, and no control character gets through.
LANGUAGE_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"


class JobInputs(BaseModel):
    """What a job renders from. The URLs, the text and a voice's name are checked at
    admission (``RuntimePod.check_request``), where each refusal gets its own code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    portrait: str = Field(min_length=1, max_length=4096, description="Image URL (gs://, https://).")
    text: str | None = Field(None, description="Text to speak. Exactly one of text and audio.")
    audio: str | None = Field(None, max_length=4096, description="Recorded speech URL.")
    voice: str | None = Field(None, max_length=4096, description="Voice sample URL or name.")
    language: str = Field("en", min_length=2, max_length=16, pattern=LANGUAGE_PATTERN)

    @model_validator(mode="after")
    def _one_speech_source(self) -> JobInputs:
        if (self.text is None) == (self.audio is None):
            raise ValueError("give exactly one of text and audio")
        return self


TTSName = Literal["xtts", "piper"]
RendererName = Literal["ditto", "embedded"]


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution: int = Field(512, ge=64, le=2048, multiple_of=2, description="Frame side, px.")
    fps: int = Field(25, ge=1, le=60)
    captions: bool = True
    tts: TTSName | None = Field(None, description="Speech engine; None: the pod's own.")
    renderer: RendererName | None = Field(None, description="Renderer; None: the pod's own.")


class JobRequest(BaseModel):
    """``POST /v1/jobs``. The id is the AvatarVideo's uid: resubmitting never renders twice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=JOB_ID_PATTERN)
    inputs: JobInputs
    options: JobOptions = Field(default_factory=JobOptions)
    output: str = Field(min_length=1, max_length=4096, description="Output URL prefix.")

    def fingerprint(self) -> str:
        """Same id with the same fingerprint is a resubmission; with another, a conflict."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def to_spec(self) -> JobSpec:
        return JobSpec(
            portrait=self.inputs.portrait,
            text=self.inputs.text,
            audio=self.inputs.audio,
            voice=self.inputs.voice,
            language=self.inputs.language,
            resolution=self.options.resolution,
            fps=self.options.fps,
            captions=self.options.captions,
            output=self.output,
        )


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


class ErrorInfo(BaseModel):
    code: ErrorCode
    message: str
    retriable: bool
    field: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unknown_code(cls, data: Any) -> Any:
        """A code newer than this side (a runtime upgraded before its operator) is kept in
        the message and read as InternalError, so the answer is still understood."""
        if isinstance(data, dict) and "code" in data and not isinstance(data["code"], ErrorCode):
            code = str(data["code"])
            if code not in ErrorCode.__members__.values():
                message = f"{code}: {data.get('message', '')}"
                return {**data, "code": ErrorCode.INTERNAL, "message": message}
        return data


class JobStatus(BaseModel):
    """``GET /v1/jobs/{id}``: everything the operator mirrors into the resource status."""

    id: str
    state: JobState
    stage: str | None = Field(None, description="fetch, tts, asr, render, upload, done")
    progress: float = Field(0.0, ge=0.0, le=1.0)
    queue_position: int | None = Field(None, description="0 = next to start; None unless queued")
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    stages: StageSeconds | None = None
    video_seconds: float | None = None
    realtime_factor: float | None = None
    wer: float | None = None
    outputs: Outputs | None = None
    warnings: list[str] = Field(default_factory=list, description="JobResult.warnings")
    error: ErrorInfo | None = None


class EngineNames(BaseModel):
    tts: str
    asr: str
    renderer: str
    languages: list[str]


class Capacity(BaseModel):
    """``GET /v1/capacity``: what the operator's dispatcher needs to pick a pod."""

    slots_total: int
    slots_busy: int
    queue_length: int
    queue_limit: int
    accepting: bool
    draining: bool
    engines: EngineNames


class ErrorBody(BaseModel):
    """Every non-2xx answer of the job API."""

    error: ErrorInfo
