"""Step 1 of admission: structural pruning, which drops the fields a schema does not declare.

As apiextensions-apiserver prunes, silently: unknown fields go, except below
``x-kubernetes-preserve-unknown-fields`` (where only the declared fields are pruned
further) and ``apiVersion``/``kind``/``metadata`` of the root and of embedded resources.
An integral ``5.0`` sent for an integer field is stored as ``5``, as Go's JSON round trip
stores it.
"""

from __future__ import annotations

from typing import Any

from avatar_devcluster.admission import schemas
from avatar_devcluster.admission.schemas import Schema


def prune(value: Any, schema: Schema | None, *, embedded: bool = False) -> None:
    """Drop fields the schema does not know (apiextensions structural pruning)."""
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(value, schema, embedded=embedded)
        return
    if isinstance(value, dict):
        if schema is None:
            value.clear()
            return
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            if embedded and _is_object_field(key, value[key]):
                continue
            if key in props:
                prune(value[key], props[key], embedded=schemas.embeds(props[key]))
                value[key] = _as_declared_number(value[key], props[key])
            elif isinstance(extra, dict):
                prune(value[key], extra, embedded=schemas.embeds(extra))
                value[key] = _as_declared_number(value[key], extra)
            elif extra is not True:
                del value[key]
    elif isinstance(value, list):
        items = schemas.items(schema)
        for index, item in enumerate(value):
            prune(item, items, embedded=schemas.embeds(items))
            value[index] = _as_declared_number(item, items)


def _skip_prune(value: Any, schema: Schema | None, *, embedded: bool = False) -> None:
    """Below preserve-unknown-fields: keep unknown fields, prune the declared ones."""
    if schema is None:
        return
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            if (embedded or schemas.embeds(schema)) and _is_object_field(key, value[key]):
                continue
            if key in props:
                prune(value[key], props[key], embedded=schemas.embeds(props[key]))
                value[key] = _as_declared_number(value[key], props[key])
            elif isinstance(extra, dict):
                prune(value[key], extra, embedded=schemas.embeds(extra))
    elif isinstance(value, list):
        items = schemas.items(schema)
        for item in value:
            _skip_prune(item, items)


def _is_object_field(key: str, value: Any) -> bool:
    if key in ("apiVersion", "kind"):
        return isinstance(value, str)
    return key == "metadata" and isinstance(value, dict)


def _as_declared_number(value: Any, schema: Schema | None) -> Any:
    """``5.0`` for an integer field is stored as ``5``, as Go's JSON round trip does."""
    if (
        schema is not None
        and isinstance(value, float)
        and value.is_integer()
        and (schema.get("type") == "integer" or schema.get("x-kubernetes-int-or-string"))
    ):
        return int(value)
    return value
