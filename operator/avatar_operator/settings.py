"""The operator's configuration: one typed place, read from ``AVATAR_OPERATOR_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GROUP = "avatar.dev"
VERSION = "v1alpha1"
PLURAL = "avatarvideos"
KIND = "AvatarVideo"
FINALIZER = "avatar.dev/operator"
# Present on every runtime pod; its value is the pool the pod serves.
POOL_LABEL = "avatar.dev/runtime-pool"


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AVATAR_OPERATOR_", extra="ignore")

    runtime_namespace: str = Field(
        "default", description="Namespace of the runtime pods (the chart's release namespace)."
    )
    runtime_port: int = Field(
        8080, ge=1, le=65535, description="Runtime API port when the pod names no 'http' port."
    )
    runtime_token: str | None = Field(None, description="Bearer token for the runtime API.")
    runtime_token_file: Path | None = Field(
        None, description="File holding the runtime API token (a mounted Secret); wins over token."
    )
    request_timeout_seconds: float = Field(10.0, gt=0, description="Per runtime API request.")
    long_poll_seconds: float = Field(
        2.0,
        gt=0,
        le=30,
        description=(
            "How long one status read waits on the runtime for the job to finish. A finished"
            " job is seen at once; progress is mirrored at most this often."
        ),
    )
    unreachable_backoff_seconds: tuple[float, float] = Field(
        (0.2, 2.0), description="First and longest pause between reads of an unreachable pod."
    )
    pod_lost_seconds: float = Field(
        10.0,
        gt=0,
        description="A pod silent this long has lost its jobs; they run elsewhere.",
    )
    capacity_refresh_seconds: float = Field(
        10.0, gt=0, description="How often each pod's /v1/capacity is read again."
    )
    status_interval_seconds: float = Field(
        1.0, ge=0, description="Progress is written to a resource's status at most this often."
    )
    queue_status_seconds: float = Field(
        5.0, gt=0, description="How often the queue positions in statuses are brought up to date."
    )
    queue_status_top: int = Field(
        50, ge=0, description="Only the first this many queued resources get position updates."
    )
    retry_base_seconds: float = Field(
        10.0, ge=0, description="Backoff before the first retry; doubles with each attempt."
    )
    retry_max_seconds: float = Field(300.0, ge=0, description="Longest backoff between attempts.")
    cancel_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a delete waits for the runtime to stop the job."
    )
    metrics_port: int = Field(9090, ge=0, le=65535, description="Prometheus /metrics; 0 = off.")
    api_workers: int = Field(
        8, ge=1, description="Concurrent Kubernetes API calls (status writes, deletes)."
    )
    chars_per_second: dict[str, float] = Field(
        default_factory=lambda: {"en": 14.0},
        description="Prior for backlog estimates: characters of text per second of video.",
    )
    default_chars_per_second: float = Field(14.0, gt=0)
    audio_prior_seconds: float = Field(
        30.0, gt=0, description="Backlog estimate for a recording before any has been measured."
    )

    def token(self) -> str | None:
        if self.runtime_token_file is not None:
            return self.runtime_token_file.read_text().strip() or None
        return self.runtime_token
