"""An AvatarRuntimePool as the operator reads it: the CRD's fields and defaults, the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from avatar_operator.pools.resource import PoolSpec, pool_of
from avatar_operator.scaling.policy import PoolPolicy

REPO = Path(__file__).resolve().parents[4]


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / "avatarruntimepools.avatar.dev.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def _same(model: type[BaseModel], schema: dict[str, Any], path: str) -> None:
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    assert set(fields) == set(schema["properties"]), path
    for name, prop in schema["properties"].items():
        field = fields[name]
        where = f"{path}.{name}"
        if name in schema.get("required", []):
            assert field.is_required(), where
            continue
        nested = _model_of(field.annotation)
        if prop.get("type") == "object" and "properties" in prop and nested is not None:
            _same(nested, prop, where)
            if prop.get("default") == {}:  # the API server fills in the nested defaults
                assert field.get_default(call_default_factory=True) == nested(), where
            else:
                assert "default" not in prop, where
                assert field.get_default() is None, where
        else:
            assert field.get_default() == prop.get("default"), where


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def test_the_spec_model_has_the_crds_fields_and_defaults_at_every_level() -> None:
    """A drift check, as for the AvatarVideo: an object written before a default existed
    must read as the API server would default it now."""
    _same(PoolSpec, _schema(), "spec")


def test_a_pool_reads_with_its_owner_reference_and_policy() -> None:
    pool = pool_of(
        {
            "metadata": {"name": "l4", "namespace": "avatar", "uid": "u-1", "generation": 3},
            "spec": {
                "image": "europe-docker.pkg.dev/p/avatar/runtime-gpu:1.0",
                "minReplicas": 1,
                "maxReplicas": 8,
                "slotsPerPod": 2,
                "targetQueueWaitSeconds": 60,
                "scaleDownDelaySeconds": 30,
                "idleBeforeZeroSeconds": 90,
                "spot": {"enabled": True, "onDemandFloor": 2},
            },
        }
    )
    assert pool.generation == 3
    assert pool.owner_reference() == {
        "apiVersion": "avatar.dev/v1alpha1",
        "kind": "AvatarRuntimePool",
        "name": "l4",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert pool.spec.slots_per_pod == 2
    assert pool.spec.on_demand_floor == 2
    assert pool.spec.policy() == PoolPolicy(
        min_replicas=1,
        max_replicas=8,
        target_wait_seconds=60.0,
        scale_down_delay_seconds=30.0,
        idle_before_zero_seconds=90.0,
    )


def test_without_spot_every_replica_is_on_demand_and_unset_floor_is_zero() -> None:
    plain = PoolSpec.model_validate({"image": "i", "maxReplicas": 5})
    assert plain.on_demand_floor == 5
    spot = PoolSpec.model_validate({"image": "i", "spot": {"enabled": True}})
    assert spot.on_demand_floor == 0
    assert PoolSpec.model_validate({"image": "i"}).slots_per_pod == "auto"
