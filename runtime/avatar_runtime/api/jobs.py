"""What a job asks for and what it returns.

These models are the core the CLI and the runtime's HTTP API share: the CLI
builds a ``JobSpec`` itself, the API from a ``JobRequest`` (``schemas``), and a
finished job's stage seconds and outputs go back in its ``JobStatus``, which the
operator copies into the AvatarVideo's status. Field names are part of that
contract.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from avatar_runtime.api.errors import ErrorCode, JobError


class JobSpec(BaseModel):
    """One render: a portrait plus either text to speak or a recording."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    portrait: str = Field(description="Portrait image: local path, file://, gs:// or https:// URL.")
    text: str | None = Field(None, description="Text to speak. Exactly one of text and audio.")
    audio: str | None = Field(None, description="Recorded speech (WAV/MP3/FLAC) path or URL.")
    voice: str | None = Field(None, description="Voice sample path or URL, or a named voice.")
    language: str = Field("en", min_length=2, max_length=16, description="BCP-47 language code.")
    resolution: int = Field(512, ge=64, le=2048, description="Output width and height, pixels.")
    fps: int = Field(25, ge=1, le=60, description="Output frames per second.")
    captions: bool = Field(True, description="Write WebVTT captions.")
    output: str = Field(
        description="Where outputs go: a directory, a file ending in .mp4, or an fsspec URL prefix."
    )

    @model_validator(mode="after")
    def _one_speech_source(self) -> JobSpec:
        if (self.text is None) == (self.audio is None):
            raise JobError(
                ErrorCode.INVALID_OPTION, "Give exactly one of text and audio.", field="text"
            )
        if self.resolution % 2:
            raise JobError(
                ErrorCode.INVALID_OPTION,
                "resolution must be even (H.264 with 4:2:0 chroma needs even sizes).",
                field="resolution",
            )
        return self


class OutputFile(BaseModel):
    """One file the job wrote, as a consumer needs it to verify and serve it."""

    url: str
    size_bytes: int
    sha256: str
    content_type: str
    duration_seconds: float | None = Field(None, description="Playing time (video only).")


class Outputs(BaseModel):
    video: OutputFile
    thumbnail: OutputFile
    captions: OutputFile | None = None


class StageSeconds(BaseModel):
    """Wall seconds spent in each stage. Stages overlap, so they may sum past the total."""

    fetch: float = 0.0
    tts: float = 0.0
    asr: float = 0.0
    render: float = 0.0
    encode: float = 0.0
    upload: float = 0.0


class JobResult(BaseModel):
    video_seconds: float = Field(description="Length of the rendered video.")
    wall_seconds: float = Field(description="The job itself, after models were loaded.")
    realtime_factor: float = Field(description="wall_seconds / video_seconds; below 1 is faster.")
    stages: StageSeconds
    frames: int
    resolution: int
    fps: int
    wer: float | None = Field(description="Word error rate, transcript vs. text; None for audio.")
    transcript: str
    outputs: Outputs
    warnings: list[str] = Field(
        default_factory=list,
        description="What the user should know about a job that succeeded (which of several"
        " faces speaks, a small face enlarged).",
    )
