"""Step 4 of admission: the ``x-kubernetes-*`` markers checked after the OpenAPI schema.

apiextensions-apiserver checks two markers itself, after kube-openapi's validation: an
``x-kubernetes-embedded-resource`` needs a non-empty string ``apiVersion`` and ``kind``;
an ``x-kubernetes-list-type: set`` list needs unique items, a ``map`` list unique keys
(``x-kubernetes-list-map-keys``, defaults counted). Both visit the nodes of the stored
object with :func:`walk`, parents first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from avatar_devcluster.admission import messages, schemas
from avatar_devcluster.admission.messages import Cause
from avatar_devcluster.admission.schemas import Schema


def walk(
    value: Any, schema: Schema | None, path: str, *, root: bool = False
) -> Iterator[tuple[Any, Schema, str]]:
    """Every (value, schema node, path) below the root, parents first."""
    if schema is None:
        return
    yield value, schema, path
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if root and key in schemas.OBJECT_FIELDS:
                continue
            sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
            yield from walk(item, sub, schemas.child(path, key))
    elif isinstance(value, list):
        items = schemas.items(schema)
        for index, item in enumerate(value):
            yield from walk(item, items, f"{path}[{index}]")


def check_embedded(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    """An embedded resource needs a string apiVersion and kind (schema/objectmeta)."""
    if not schemas.embeds(schema) or not isinstance(value, dict):
        return
    for key in ("apiVersion", "kind"):
        if key not in value:
            out.append(
                messages.cause(
                    "FieldValueRequired", schemas.child(path, key), detail="must not be empty"
                )
            )
        elif not isinstance(value[key], str):
            out.append(
                messages.cause(
                    "FieldValueInvalid", schemas.child(path, key), value[key], "must be a string"
                )
            )
        elif not value[key]:
            out.append(
                messages.cause(
                    "FieldValueInvalid", schemas.child(path, key), "", "must not be empty"
                )
            )


def check_list_type(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    """``x-kubernetes-list-type: set`` items and ``map`` keys must be unique."""
    list_type = schema.get("x-kubernetes-list-type")
    if not isinstance(value, list) or list_type not in ("set", "map"):
        return
    if list_type == "set":
        for index, item in enumerate(value):
            if any(schemas.same(item, earlier) for earlier in value[:index]):
                out.append(messages.cause("FieldValueDuplicate", f"{path}[{index}]", item))
        return
    keys = [str(k) for k in schema.get("x-kubernetes-list-map-keys") or []]
    items = schemas.items(schema) or {}
    props: dict[str, Schema] = items.get("properties") or {}
    seen: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            detail = "must be an object for an array of list-type map"
            out.append(messages.cause("FieldValueTypeInvalid", f"{path}[{index}]", item, detail))
            continue
        key = {k: item.get(k, (props.get(k) or {}).get("default")) for k in keys}
        if any(schemas.same(key, earlier) for earlier in seen):
            out.append(messages.cause("FieldValueDuplicate", f"{path}[{index}]", key))
        seen.append(key)
