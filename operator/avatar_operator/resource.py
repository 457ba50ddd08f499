"""An AvatarVideo as the operator sees it: the spec, who it is, and what the runtime gets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from avatar_operator.settings import GROUP, KIND, VERSION
from avatar_runtime.api.schemas import (
    JobInputs,
    JobOptions,
    JobRequest,
    RendererName,
    TTSName,
)


class AvatarVideoSpec(BaseModel):
    """The CRD's spec. The API server already validated it; defaults repeat the CRD's."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    portrait: str
    text: str | None = None
    audio: str | None = None
    voice: str | None = None
    language: str = "en"
    resolution: int = 512
    fps: int = 25
    captions: bool = True
    tts: TTSName | None = None
    renderer: RendererName | None = None
    priority: int = 0
    deadline_seconds: int | None = Field(None, alias="deadlineSeconds")
    max_retries: int = Field(3, alias="maxRetries")
    output: str
    ttl_seconds_after_finished: int | None = Field(None, alias="ttlSecondsAfterFinished")
    pool: str = "default"


@dataclass(frozen=True)
class Ref:
    """Enough of the object to patch it and to attach Events to it."""

    namespace: str
    name: str
    uid: str

    def body(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
        }

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(value: dt.datetime) -> str:
    """RFC 3339 with milliseconds: jobs a second apart still sort in the order they ran."""
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ref_of(body: Mapping[str, Any]) -> Ref:
    meta = body["metadata"]
    return Ref(namespace=meta.get("namespace", ""), name=meta["name"], uid=meta["uid"])


def job_request(uid: str, spec: AvatarVideoSpec) -> JobRequest:
    """The runtime's job for this resource; the uid makes a repeated dispatch harmless."""
    return JobRequest(
        id=uid,
        inputs=JobInputs(
            portrait=spec.portrait,
            text=spec.text,
            audio=spec.audio,
            voice=spec.voice,
            language=spec.language,
        ),
        options=JobOptions(
            resolution=spec.resolution,
            fps=spec.fps,
            captions=spec.captions,
            tts=spec.tts,
            renderer=spec.renderer,
        ),
        output=spec.output,
    )
