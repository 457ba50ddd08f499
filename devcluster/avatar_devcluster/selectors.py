"""Label and field selectors, in the syntax kubectl and kopf send."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from avatar_devcluster.errors import bad_request

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses: ``a in (x,y),b`` is two requirements."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


LabelCheck = Callable[[dict[str, str]], bool]


def _in(key: str, values: set[str], *, negate: bool) -> LabelCheck:
    return lambda found: (found.get(key) in values) != negate


def _equals(key: str, value: str, *, negate: bool) -> LabelCheck:
    return lambda found: (found.get(key) == value) != negate


def _exists(key: str, *, negate: bool) -> LabelCheck:
    return lambda found: (key in found) != negate


def _on_metadata(check: LabelCheck) -> Predicate:
    return lambda obj: check(obj["metadata"])


def labels(selector: str) -> Predicate:
    checks: list[LabelCheck] = []
    for part in _split(selector):
        if m := _SET.match(part):
            values = {v.strip() for v in m.group(3).split(",")}
            checks.append(_in(m.group(1), values, negate=m.group(2) == "notin"))
        elif m := _EQ.match(part):
            key, op, value = m.groups()
            checks.append(_equals(key, value, negate=op == "!="))
        elif m := _EXISTS.match(part):
            checks.append(_exists(m.group(2), negate=m.group(1) == "!"))
        else:
            raise bad_request(f"unable to parse requirement: {part!r}")

    def matches(obj: Obj) -> bool:
        found = obj.get("metadata", {}).get("labels") or {}
        return all(check(found) for check in checks)

    return matches


# The field labels kube-apiserver offers for the kinds the product lists by field:
# every kind's name and namespace, an Event's subject (``kubectl describe`` lists a
# resource's Events with them), and a Pod's node, phase and address.
FIELD_LABELS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        *(f"involvedObject.{f}" for f in
          ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")),
        "reason",
        "type",
        "source",
        "reportingComponent",
        "spec.nodeName",
        "status.phase",
        "status.podIP",
    }
)  # fmt: skip


def _field(obj: Obj, path: str) -> str:
    """A field label's value; absent fields read as the empty string, as on a cluster."""
    value: Any = obj
    for step in path.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    if path == "source" and isinstance(obj.get("source"), dict):
        value = obj["source"].get("component")
    return "" if value is None else str(value)


def _field_equals(path: str, value: str, *, negate: bool) -> Predicate:
    return lambda obj: (_field(obj, path) == value) != negate


def fields(selector: str) -> Predicate:
    checks: list[Predicate] = []
    for part in _split(selector):
        m = _EQ.match(part)
        if not m:
            raise bad_request(f"unable to parse field selector: {part!r}")
        path, op, value = m.groups()
        if path not in FIELD_LABELS:
            raise bad_request(f'field label not supported: "{path}"')
        checks.append(_field_equals(path, value, negate=op == "!="))
    return lambda obj: all(check(obj) for check in checks)
