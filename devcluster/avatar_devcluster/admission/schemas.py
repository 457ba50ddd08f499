"""What every step reads from a structural schema, and JSON equality as Go compares it.

A structural schema nests ``properties``, ``additionalProperties`` and ``items``, and
each step walks it beside the object. The pieces of that walk are here so that the steps
agree on them: the fields the API server owns at the root (``OBJECT_FIELDS``), a list's
item schema, embedded resources, the ``a.b[0]`` paths that causes name, and JSON
equality (:func:`same`) for enums, sets and map keys.
"""

from __future__ import annotations

from typing import Any, TypeGuard

Schema = dict[str, Any]

# The fields the API server owns at the root of every object (and of embedded resources).
OBJECT_FIELDS = ("apiVersion", "kind", "metadata")


def embeds(schema: Schema | None) -> bool:
    return bool(schema and schema.get("x-kubernetes-embedded-resource"))


def items(schema: Schema | None) -> Schema | None:
    items = schema.get("items") if schema else None
    return items if isinstance(items, dict) else None


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
