"""Step 2 of admission: structural defaulting, after pruning and before validation.

A null of a non-nullable field is dropped (or replaced by its default), and ``default``
applies where a field is absent, recursively, into applied defaults too, as
apiextensions-apiserver defaults an object before it validates it.
"""

from __future__ import annotations

import copy
from typing import Any

from avatar_devcluster.admission import schemas
from avatar_devcluster.admission.schemas import Schema


def default(value: Any, schema: Schema | None, *, root: bool = False) -> None:
    """Apply defaults where absent and drop non-nullable nulls (structural defaulting)."""
    if schema is None:
        return
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, prop in props.items():
            if root and key in schemas.OBJECT_FIELDS:
                continue
            if prop.get("default") is not None and (
                key not in value or _non_nullable_null(value[key], prop)
            ):
                value[key] = copy.deepcopy(prop["default"])
        for key in list(value):
            if root and key in schemas.OBJECT_FIELDS:
                continue
            if key in props:
                sub: Schema = props[key]
            elif isinstance(extra, dict):
                sub = extra
            else:
                continue
            if _non_nullable_null(value[key], sub):
                if sub.get("default") is not None:
                    value[key] = copy.deepcopy(sub["default"])
                else:
                    del value[key]
                    continue
            default(value[key], sub)
    elif isinstance(value, list):
        items = schemas.items(schema)
        if items is None:
            return
        for index, item in enumerate(value):
            if _non_nullable_null(item, items) and items.get("default") is not None:
                value[index] = copy.deepcopy(items["default"])
            default(value[index], items)


def _non_nullable_null(value: Any, schema: Schema) -> bool:
    return value is None and not schema.get("nullable")
