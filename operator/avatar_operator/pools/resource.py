"""An AvatarRuntimePool as the operator reads it: its spec (the CRD's defaults), its ref.

The API server has validated and defaulted the object; the model repeats the CRD's
defaults (a test keeps them equal) so that an object written before a default existed
reads the same. ``policy`` turns the spec into the pure policy's knobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from avatar_operator.scaling.policy import PoolPolicy
from avatar_operator.settings import GROUP, POOL_KIND, VERSION
from avatar_runtime.api.schemas import RendererName, TTSName

_MODEL = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Engines(BaseModel):
    model_config = _MODEL

    tts: TTSName = "xtts"
    renderer: RendererName = "ditto"


class Gpu(BaseModel):
    model_config = _MODEL

    accelerator: str = "nvidia-l4"
    count: int = 1


class Spot(BaseModel):
    model_config = _MODEL

    enabled: bool = False
    on_demand_floor: int | None = Field(None, alias="onDemandFloor")


class ModelVolume(BaseModel):
    model_config = _MODEL

    persistent_volume_claim: str | None = Field(None, alias="persistentVolumeClaim")
    gcs_bucket: str | None = Field(None, alias="gcsBucket")
    mount_path: str = Field("/models", alias="mountPath")


class EnvVar(BaseModel):
    model_config = _MODEL

    name: str
    value: str | None = None


class Resources(BaseModel):
    model_config = _MODEL

    requests: dict[str, int | str] | None = None
    limits: dict[str, int | str] | None = None


class PodTemplate(BaseModel):
    model_config = _MODEL

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    env: list[EnvVar] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    service_account_name: str | None = Field(None, alias="serviceAccountName")
    resources: Resources | None = None


class PoolSpec(BaseModel):
    """The CRD's spec; the defaults repeat the CRD's."""

    model_config = _MODEL

    image: str
    engines: Engines = Field(default_factory=Engines)
    gpu: Gpu = Field(default_factory=Gpu)
    spot: Spot = Field(default_factory=Spot)
    model_volume: ModelVolume | None = Field(None, alias="modelVolume")
    min_replicas: int = Field(0, alias="minReplicas")
    max_replicas: int = Field(4, alias="maxReplicas")
    slots_per_pod: int | Literal["auto"] = Field("auto", alias="slotsPerPod")
    target_queue_wait_seconds: int = Field(120, alias="targetQueueWaitSeconds")
    scale_down_delay_seconds: int = Field(300, alias="scaleDownDelaySeconds")
    idle_before_zero_seconds: int = Field(600, alias="idleBeforeZeroSeconds")
    pod_template: PodTemplate | None = Field(None, alias="podTemplate")

    @property
    def on_demand_floor(self) -> int:
        """Replicas kept on on-demand nodes: all of them without spot, else the floor."""
        if not self.spot.enabled:
            return self.max_replicas
        return self.spot.on_demand_floor or 0

    def policy(self) -> PoolPolicy:
        return PoolPolicy(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            target_wait_seconds=float(self.target_queue_wait_seconds),
            scale_down_delay_seconds=float(self.scale_down_delay_seconds),
            idle_before_zero_seconds=float(self.idle_before_zero_seconds),
        )


@dataclass(frozen=True)
class Pool:
    """One pool: who it is (for owner references and status writes) and its spec."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: PoolSpec

    def owner_reference(self) -> dict[str, Any]:
        """What the pool's Deployments carry, so deleting the pool deletes them."""
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": POOL_KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def pool_of(body: Mapping[str, Any]) -> Pool:
    """The pool in a watched object (raises pydantic's ValidationError on a bent spec)."""
    meta = body["metadata"]
    return Pool(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        uid=meta["uid"],
        generation=int(meta.get("generation") or 1),
        spec=PoolSpec.model_validate(dict(body.get("spec") or {})),
    )
