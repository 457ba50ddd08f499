"""Every knob of the operator, in one typed place, grouped by the part that reads it.

Values come from keyword arguments, then ``AVATAR_OPERATOR_*`` environment variables
(nested groups with ``__``, e.g. ``AVATAR_OPERATOR_RETRIES__BASE_SECONDS``), as the
runtime's settings do. Code receives an ``OperatorSettings`` object (or one of its
groups); nothing reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GROUP = "avatar.dev"
VERSION = "v1alpha1"
PLURAL = "avatarvideos"
KIND = "AvatarVideo"
FINALIZER = "avatar.dev/operator"
POOL_PLURAL = "avatarruntimepools"
POOL_KIND = "AvatarRuntimePool"
# Present on every runtime pod; its value is the pool the pod serves.
POOL_LABEL = "avatar.dev/runtime-pool"


class RuntimeApiSettings(BaseModel):
    """How the operator finds and talks to runtime pods."""

    namespace: str = Field(
        "default", description="Namespace of the runtime pods (the chart's release namespace)."
    )
    port: int = Field(
        8080, ge=1, le=65535, description="Runtime API port when the pod names no 'http' port."
    )
    token: str | None = Field(None, description="Bearer token for the runtime API.")
    token_file: Path | None = Field(
        None, description="File holding the runtime API token (a mounted Secret); wins over token."
    )
    request_timeout_seconds: float = Field(
        10.0, gt=0, description="Per runtime API request, seconds (a long poll adds its wait)."
    )
    cancel_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a delete or deadline waits for the runtime to stop it."
    )

    def read_token(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None
        return self.token


class TrackingSettings(BaseModel):
    """Following one attempt on one pod (``tracking``), and reading pods' capacity."""

    long_poll_seconds: float = Field(
        2.0,
        gt=0,
        le=30,
        description=(
            "How long one status read waits on the runtime for the job to finish, seconds. A"
            " finished job is seen at once; progress is mirrored at most this often."
        ),
    )
    unreachable_backoff_seconds: tuple[float, float] = Field(
        (0.2, 2.0), description="First and longest pause between reads of an unreachable pod, s."
    )
    pod_lost_seconds: float = Field(
        10.0,
        gt=0,
        description="A pod silent this long has lost its jobs, seconds; they run elsewhere.",
    )
    capacity_refresh_seconds: float = Field(
        10.0,
        gt=0,
        description="How often each pod's /v1/capacity is read again, seconds (engines, slots).",
    )


class RetrySettings(BaseModel):
    """Backoff between attempts after a retriable failure (a lost pod retries at once)."""

    base_seconds: float = Field(
        10.0, ge=0, description="Before the first retry, seconds; doubles with each attempt."
    )
    max_seconds: float = Field(300.0, ge=0, description="Longest backoff between attempts, s.")
    max_platform_retries: int = Field(
        20,
        ge=0,
        description="Attempts the platform may end (a pod preempted or removed under the job)"
        " before the video fails; these do not spend the video's maxRetries.",
    )


class StatusSettings(BaseModel):
    """How often the operator writes to resources: the API server's load grows with it."""

    progress_interval_seconds: float = Field(
        1.0, ge=0, description="Progress is written to a resource's status at most this often, s."
    )
    queue_positions_seconds: float = Field(
        5.0, gt=0, description="How often the queue positions in statuses are brought up to date."
    )
    queue_positions_top: int = Field(
        50,
        ge=0,
        description="Only the first this many queued resources of a pool get position updates"
        " (the rest keep the position they were queued at: a bounded number of writes).",
    )


class KubeSettings(BaseModel):
    """The operator's own Kubernetes API calls (status writes, Events, deletes)."""

    api_workers: int = Field(
        8,
        ge=1,
        description="Concurrent Kubernetes API calls of the bulk lane: connections for status"
        " writes and Events, threads for the rest.",
    )
    urgent_workers: int = Field(
        8,
        ge=1,
        description="More connections only for the writes a dispatch waits on (the Running"
        " status before the POST, the final phase), so a backlog's Queued writes and Events"
        " never delay them.",
    )


class EstimateSettings(BaseModel):
    """Priors for the backlog estimate (seconds of video waiting), learnt from then on."""

    chars_per_second: dict[str, float] = Field(
        default_factory=lambda: {"en": 14.0},
        description="Characters of text per second of video, by language.",
    )
    default_chars_per_second: float = Field(
        14.0, gt=0, description="For languages not in chars_per_second."
    )
    audio_prior_seconds: float = Field(
        30.0, gt=0, description="Estimate for a recording before any has been rendered, seconds."
    )


class PoolSettings(BaseModel):
    """What the operator puts into the pods of the AvatarRuntimePools it runs."""

    token_secret: str = Field(
        "avatar-runtime-token",
        description="The Secret holding the runtime API token the pods require (the chart's).",
    )
    token_secret_key: str = Field("token", description="Its key.")
    drain_seconds: float = Field(
        60.0,
        gt=0,
        description="A deleted pod's running jobs get this long before they are interrupted, s"
        " (the runtime's --grace; the pod's termination grace is 30 s more).",
    )


class ScalingSettings(BaseModel):
    """The scaling loop of AvatarRuntimePools: where the pods' figures come from, how often."""

    prometheus_url: str | None = Field(
        None,
        description="Prometheus' HTTP API (http://prometheus-operated.monitoring:9090); unset:"
        " the operator scrapes each pool's pods' /metrics itself.",
    )
    interval_seconds: float = Field(
        10.0,
        gt=0,
        description="How often each pool is sized, seconds (and at once when a video"
        " waits at a pool without pods).",
    )
    scrape_timeout_seconds: float = Field(
        3.0, gt=0, description="Per Prometheus query or pod scrape, seconds."
    )
    throughput_window_seconds: float = Field(
        300.0,
        gt=0,
        description="Throughput is measured over this window, seconds (the rate() range).",
    )
    victim_grace_seconds: float = Field(
        60.0,
        gt=0,
        description="A pod chosen for removal that is still there after this long takes jobs"
        " again, seconds (the Deployment removed another one).",
    )


class GcSettings(BaseModel):
    """Python's cyclic garbage collector in the operator process."""

    thresholds: tuple[int, int, int] = Field(
        (20_000, 20, 20),
        description="gc.set_threshold: with Python's own (700, 10, 10) a backlog of 10,000"
        " videos drew 39 full collections of up to 1.4 s each (21 s together), every one a"
        " pause of all dispatching; with these, none (docs/benchmarks.md). A first value of"
        " 0 turns the collector off.",
    )


class MetricsSettings(BaseModel):
    port: int = Field(9090, ge=0, le=65535, description="Prometheus /metrics port; 0 = off.")


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AVATAR_OPERATOR_", env_nested_delimiter="__", extra="ignore"
    )

    runtime: RuntimeApiSettings = Field(default_factory=RuntimeApiSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    retries: RetrySettings = Field(default_factory=RetrySettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    kube: KubeSettings = Field(default_factory=KubeSettings)
    estimates: EstimateSettings = Field(default_factory=EstimateSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    gc: GcSettings = Field(default_factory=GcSettings)
    pools: PoolSettings = Field(default_factory=PoolSettings)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
