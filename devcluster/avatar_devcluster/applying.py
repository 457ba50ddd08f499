"""Server-side apply (``PATCH`` as ``application/apply-patch+yaml``), as Helm 4 and
``kubectl apply --server-side`` send it.

An apply says "these are the fields I, ``fieldManager``, want, with these values". The API
server merges them into the object (creating it if absent), records which fields the
manager now owns in ``metadata.managedFields`` (as ``FieldsV1``), and removes the fields the
manager owned before and no longer applies. That last step is what makes ``helm upgrade``
drop a value taken out of the chart, so it is done here as kube-apiserver does.

What this stand-in leaves out, said once: lists are atomic (replaced whole; kube-apiserver
merges lists with merge keys, such as containers by name, item by item), and there is no
conflict detection between managers (a field another manager set is overwritten as if
``force=true``). Neither changes what the product's chart and operator do: only Helm
applies, and the operator writes with merge patches fields Helm never sets (replicas of the
pools' Deployments, statuses, annotations on pods).

It is pure: the route reads the request and stores the result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from avatar_devcluster.errors import PatchError

Obj = dict[str, Any]
Fields = dict[str, Any]  # FieldsV1: {"f:spec": {"f:replicas": {}}}, leaves are {}

# Set by the server, never owned by an applier.
_SERVER_METADATA = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)


def load(body: bytes) -> Obj:
    """The applied configuration (YAML, or JSON, which is YAML too)."""
    try:
        doc = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise PatchError(400, f"error decoding YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise PatchError(400, "error decoding YAML: an apply must be an object")
    return doc


def apply(old: Mapping[str, Any] | None, applied: Obj, *, manager: str, now: str) -> Obj:
    """The object after ``manager`` applies ``applied`` to ``old`` (None: it is created)."""
    if not manager:
        raise PatchError(400, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required"
                         " value: is required for apply patch")  # fmt: skip
    owned = _owned_fields(applied)
    if old is None:
        result = copy.deepcopy(applied)
        entries: list[Obj] = []
    else:
        result = copy.deepcopy(dict(old))
        entries = list((old.get("metadata") or {}).get("managedFields") or [])
        before = next(
            (
                e.get("fieldsV1") or {}
                for e in entries
                if e.get("manager") == manager and e.get("operation") == "Apply"
            ),
            {},
        )
        _remove(result, before, owned)
        _merge(result, applied)
    entries = [e for e in entries if not (e.get("manager") == manager
                                          and e.get("operation") == "Apply")]  # fmt: skip
    entries.append(
        {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": applied.get("apiVersion", ""),
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": owned,
        }
    )
    result.setdefault("metadata", {})["managedFields"] = entries
    return result


def _owned_fields(applied: Mapping[str, Any]) -> Fields:
    """The fields an apply sets, as FieldsV1 (lists and scalars are leaves)."""
    out: Fields = {}
    for key, value in applied.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in _SERVER_METADATA}
        out[f"f:{key}"] = _owned_fields(value) if isinstance(value, Mapping) and value else {}
    return out


def _remove(obj: Obj, before: Fields, now: Fields) -> None:
    """Drop from ``obj`` what the manager owned ``before`` and does not apply ``now``."""
    for field, children in before.items():
        if not field.startswith("f:"):
            continue
        key = field[2:]
        if field not in now:
            obj.pop(key, None)
        elif children and isinstance(obj.get(key), dict):
            _remove(obj[key], children, now[field])


def _merge(obj: Obj, applied: Mapping[str, Any]) -> None:
    for key, value in applied.items():
        if isinstance(value, Mapping) and isinstance(obj.get(key), dict):
            _merge(obj[key], value)  # an empty map owns the field, and leaves its entries
        else:
            obj[key] = copy.deepcopy(value)
