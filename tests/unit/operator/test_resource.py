"""An AvatarVideo as the operator reads it: times to the millisecond, the runtime's job."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from avatar_operator.resource import AvatarVideoSpec, format_time, job_request, parse_time

REPO = Path(__file__).resolve().parents[3]
T0 = dt.datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=dt.UTC)


def test_times_round_trip_with_milliseconds() -> None:
    assert parse_time(format_time(T0)) == T0
    assert parse_time("2026-11-24T12:00:00Z") == T0.replace(microsecond=0)
    assert parse_time(None) is None


def test_the_runtime_job_is_the_spec_under_the_resource_uid() -> None:
    spec = AvatarVideoSpec.model_validate(
        {
            "portrait": "gs://b/p.png",
            "text": "Hi",
            "output": "gs://b/o/",
            "resolution": 256,
            "priority": 5,
            "maxRetries": 1,
            "pool": "l4",
        }
    )
    request = job_request("3f1c-uid", spec)
    assert request.id == "3f1c-uid"
    assert request.inputs.text == "Hi"
    assert request.options.resolution == 256
    assert request.output == "gs://b/o/"
    assert spec.max_retries == 1


def test_the_spec_model_has_the_crds_fields_and_defaults() -> None:
    """The API server applies the CRD's defaults; the model's must be the same, or an
    object written before the default existed would render differently (a drift check,
    as dask-kubernetes keeps between its CRDs and its code)."""
    crd = yaml.safe_load((REPO / "crds" / "avatarvideos.avatar.dev.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = {f.alias or name: f for name, f in AvatarVideoSpec.model_fields.items()}
    assert set(fields) == set(schema["properties"])
    for name, prop in schema["properties"].items():
        field = fields[name]
        if name in schema.get("required", []):
            assert field.is_required(), name
        else:
            assert field.get_default() == prop.get("default"), name
