"""Admission of custom resources, as kube-apiserver applies a CRD's structural schema.

The operator is developed against GKE, where every AvatarVideo that kubectl or kopf
writes is pruned, defaulted and validated by the API server before it is stored. If the
devcluster stored objects as sent, the operator would see fields (and miss defaults) that
a real cluster never shows it, and a manifest that GKE rejects would pass the demo. So
this module repeats apiextensions-apiserver's steps, in its order and with its messages,
and stays free of HTTP so the server only has to call :func:`admit`:

1. prune unknown fields (silently), except below ``x-kubernetes-preserve-unknown-fields``
   and for ``apiVersion``/``kind``/``metadata`` of the root and of embedded resources;
2. drop nulls of non-nullable fields, then apply ``default`` where a field is absent,
   recursively (into applied defaults too);
3. validate against the OpenAPI v3 schema with kube-openapi's checks and wording;
4. check embedded resources and ``x-kubernetes-list-type`` set/map uniqueness;
5. evaluate the ``x-kubernetes-validations`` CEL rules (transition rules only on update),
   unless step 3 or 4 found a type, required, enum, too-long or too-many error: then the
   API server skips CEL and says so in one extra cause, and so does this.

Every problem is collected; :class:`AdmissionError` carries them all, worded as the API
server's 422 Invalid ``Status``. Ratcheting (tolerating unchanged invalid values on
update, Kubernetes 1.30+) and CEL cost limits are not implemented.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import decimal
import functools
import ipaddress
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

from celpy import celtypes

from avatar_devcluster.cel import compile_rule, evaluate, to_cel

__all__ = ["AdmissionError", "Cause", "admit"]

Schema = dict[str, Any]

# The fields the API server owns at the root of every object (and of embedded resources).
_OBJECT_FIELDS = ("apiVersion", "kind", "metadata")

_LABELS = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "InternalError": "Internal error",
    "FieldValueTypeInvalid": "Invalid value",
}
# Error types whose body never shows the bad value (apimachinery field.Error.ErrorBody).
_VALUELESS = frozenset(
    {"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError"}
)
# Schema errors after which the API server does not run CEL (strategy.go hasBlockingErr).
_BLOCKING = frozenset(
    {
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    }
)
_CEL_SKIPPED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)
_OMIT = object()


@dataclass(frozen=True)
class Cause:
    """One problem, as a cause in the API server's ``Status.details.causes``.

    ``message`` is the error body without the field, as the API server puts it there
    (``Invalid value: 500: spec.fps in body should be less than or equal to 60``);
    ``str(cause)`` is the ``field: message`` form used in the Status message.
    """

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class AdmissionError(Exception):
    """422 Invalid: causes as the API server reports them."""

    def __init__(self, *, kind: str, name: str, causes: list[Cause], group: str = "") -> None:
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = list(causes)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """``<Kind>.<group> "<name>" is invalid: <causes>``, bracketed when several."""
        qualified = f"{self.kind}.{self.group}" if self.group else self.kind
        head = f"{qualified} {_go_quote(self.name)} is invalid"
        # Like field.ErrorList.ToAggregate: identical errors are reported once.
        unique = list(dict.fromkeys(str(cause) for cause in self.causes))
        if not unique:
            return head
        if len(unique) == 1:
            return f"{head}: {unique[0]}"
        return f"{head}: [{', '.join(unique)}]"

    def status(self) -> dict[str, Any]:
        """The ``Status`` object the API server answers with (empty fields omitted)."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        details["kind"] = self.kind
        details["causes"] = [
            {"reason": cause.reason, "message": cause.message, "field": cause.field}
            for cause in self.causes
        ]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": "Invalid",
            "details": details,
            "code": 422,
        }


def admit(
    obj: dict[str, Any], *, schema: Schema, old: dict[str, Any] | None, kind: str, group: str
) -> dict[str, Any]:
    """Return the object as stored: defaults applied, unknown fields pruned, validated
    (schema + x-kubernetes-validations CEL rules, transition rules with oldSelf when old is given).
    Raises AdmissionError listing ALL problems found (not just the first).

    ``obj`` is not modified. ``old`` is the stored object on update, None on create.
    """
    stored = copy.deepcopy(obj)
    _prune(stored, schema, embedded=True)
    _default(stored, schema, root=True)

    body = {key: value for key, value in stored.items() if key not in _OBJECT_FIELDS}
    causes: list[Cause] = []
    _validate(body, _root_schema(schema), "", causes)
    for value, node, path in _walk(stored, schema, "", root=True):
        _check_embedded(value, node, path, causes)
    for value, node, path in _walk(stored, schema, "", root=True):
        _check_list_type(value, node, path, causes)

    if _has_rules(schema):
        if any(cause.reason in _BLOCKING for cause in causes):
            causes.append(_cause("FieldValueInvalid", "", None, _CEL_SKIPPED))
        else:
            _run_cel(stored, schema, "", old, causes, root=True)

    if causes:
        metadata = stored.get("metadata")
        name = metadata.get("name", "") if isinstance(metadata, dict) else ""
        raise AdmissionError(kind=kind, name=str(name or ""), causes=causes, group=group)
    return stored


# --------------------------------------------------------------------------- pruning


def _prune(value: Any, schema: Schema | None, *, embedded: bool = False) -> None:
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
                _prune(value[key], props[key], embedded=_embeds(props[key]))
                value[key] = _as_declared_number(value[key], props[key])
            elif isinstance(extra, dict):
                _prune(value[key], extra, embedded=_embeds(extra))
                value[key] = _as_declared_number(value[key], extra)
            elif extra is not True:
                del value[key]
    elif isinstance(value, list):
        items = _items(schema)
        for index, item in enumerate(value):
            _prune(item, items, embedded=_embeds(items))
            value[index] = _as_declared_number(item, items)


def _skip_prune(value: Any, schema: Schema | None, *, embedded: bool = False) -> None:
    """Below preserve-unknown-fields: keep unknown fields, prune the declared ones."""
    if schema is None:
        return
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            if (embedded or _embeds(schema)) and _is_object_field(key, value[key]):
                continue
            if key in props:
                _prune(value[key], props[key], embedded=_embeds(props[key]))
                value[key] = _as_declared_number(value[key], props[key])
            elif isinstance(extra, dict):
                _prune(value[key], extra, embedded=_embeds(extra))
    elif isinstance(value, list):
        items = _items(schema)
        for item in value:
            _skip_prune(item, items)


def _is_object_field(key: str, value: Any) -> bool:
    if key in ("apiVersion", "kind"):
        return isinstance(value, str)
    return key == "metadata" and isinstance(value, dict)


def _embeds(schema: Schema | None) -> bool:
    return bool(schema and schema.get("x-kubernetes-embedded-resource"))


def _items(schema: Schema | None) -> Schema | None:
    items = schema.get("items") if schema else None
    return items if isinstance(items, dict) else None


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


# -------------------------------------------------------------------------- defaulting


def _default(value: Any, schema: Schema | None, *, root: bool = False) -> None:
    """Apply defaults where absent and drop non-nullable nulls (structural defaulting)."""
    if schema is None:
        return
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, prop in props.items():
            if root and key in _OBJECT_FIELDS:
                continue
            if prop.get("default") is not None and (
                key not in value or _non_nullable_null(value[key], prop)
            ):
                value[key] = copy.deepcopy(prop["default"])
        for key in list(value):
            if root and key in _OBJECT_FIELDS:
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
            _default(value[key], sub)
    elif isinstance(value, list):
        items = _items(schema)
        if items is None:
            return
        for index, item in enumerate(value):
            if _non_nullable_null(item, items) and items.get("default") is not None:
                value[index] = copy.deepcopy(items["default"])
            _default(value[index], items)


def _non_nullable_null(value: Any, schema: Schema) -> bool:
    return value is None and not schema.get("nullable")


# -------------------------------------------------------------------------- validation


def _root_schema(schema: Schema) -> Schema:
    """The root schema without the fields the API server validates itself."""
    root = dict(schema)
    props = root.get("properties")
    if isinstance(props, dict):
        root["properties"] = {k: v for k, v in props.items() if k not in _OBJECT_FIELDS}
    required = root.get("required")
    if isinstance(required, list):
        root["required"] = [k for k in required if k not in _OBJECT_FIELDS]
    return root


def _validate(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    """kube-openapi's SchemaValidator: type, composition, string, format, number,
    array, enum and object checks, in that order, at ``path`` and below."""
    types = _types(schema)
    if value is None:
        if types and not schema.get("nullable"):
            _type_error(path, types, "null", out)
        _check_enum(value, schema, path, out)
        return
    actual = _json_type(value)
    if types and not _type_matches(value, actual, types):
        _type_error(path, types, actual, out)
    _check_composition(value, schema, path, out)
    if isinstance(value, str):
        _check_string(value, schema, path, out)
        _check_format(value, schema, path, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, out)
    elif isinstance(value, list):
        _check_array(value, schema, path, out)
    _check_enum(value, schema, path, out)
    if isinstance(value, dict):
        _check_object(value, schema, path, out)


def _types(schema: Schema) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    declared = schema.get("type")
    if isinstance(declared, list):
        return [str(t) for t in declared]
    return [declared] if isinstance(declared, str) and declared else []


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_matches(value: Any, actual: str, types: list[str]) -> bool:
    if actual in types:
        return True
    if actual == "number" and "integer" in types:
        return float(value).is_integer()
    return actual == "integer" and "number" in types


def _type_error(path: str, types: list[str], actual: str, out: list[Cause]) -> None:
    detail = f"{path} in body must be of type {','.join(types)}: {_go_quote(actual)}"
    out.append(_cause("FieldValueTypeInvalid", path, actual, detail))


def _check_composition(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    """anyOf / oneOf / allOf / not, reported like kube-openapi (path-less summary)."""
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and any_of:
        results = [_sub_validate(value, sub, path) for sub in any_of]
        if all(results):
            out.append(_summary(f"{_go_quote(path)} must validate at least one schema (anyOf)"))
            out.extend(_fewest(results))
    one_of = schema.get("oneOf")
    if isinstance(one_of, list) and one_of:
        results = [_sub_validate(value, sub, path) for sub in one_of]
        valid = sum(1 for result in results if not result)
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            msg = f"{_go_quote(path)} must validate one and only one schema (oneOf). {found}"
            out.append(_summary(msg))
            if valid == 0:
                out.extend(_fewest(results))
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        results = [_sub_validate(value, sub, path) for sub in all_of]
        for result in results:
            out.extend(result)
        failed = sum(1 for result in results if result)
        if failed:
            suffix = ". None validated" if failed == len(results) else ""
            out.append(_summary(f"{_go_quote(path)} must validate all the schemas (allOf){suffix}"))
    not_schema = schema.get("not")
    if isinstance(not_schema, dict) and not _sub_validate(value, not_schema, path):
        out.append(_summary(f"{_go_quote(path)} must not validate the schema (not)"))


def _fewest(results: list[list[Cause]]) -> list[Cause]:
    """The alternative that came closest (kube-openapi keeps its errors)."""
    return sorted(results, key=len)[0]


def _sub_validate(value: Any, schema: Any, path: str) -> list[Cause]:
    found: list[Cause] = []
    if isinstance(schema, dict):
        _validate(value, schema, path, found)
    return found


def _summary(detail: str) -> Cause:
    """A kube-openapi composite error: the API server files it under no field."""
    return _cause("FieldValueInvalid", "", "", detail)


def _check_string(value: str, schema: Schema, path: str, out: list[Cause]) -> None:
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and len(value) > max_length:
        out.append(_cause("FieldValueTooLong", path, value, f"may not be longer than {max_length}"))
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        detail = f"{path} in body should be at least {min_length} chars long"
        out.append(_cause("FieldValueInvalid", path, value, detail))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        compiled = _regex(pattern)
        if isinstance(compiled, str):
            detail = f"{path} in body should match '{pattern}, but pattern is invalid: {compiled}'"
            out.append(_cause("FieldValueInvalid", path, value, detail))
        elif not compiled.search(value):
            detail = f"{path} in body should match '{pattern}'"
            out.append(_cause("FieldValueInvalid", path, value, detail))


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str] | str:
    """The compiled pattern (Python re standing in for Go's RE2), or why it is invalid."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        return str(exc)


def _check_format(value: str, schema: Schema, path: str, out: list[Cause]) -> None:
    fmt = schema.get("format")
    check = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if check is not None and not check(value):
        detail = f"{path} in body must be of type {fmt}: {_go_quote(value)}"
        out.append(_cause("FieldValueTypeInvalid", path, value, detail))


def _check_number(value: int | float, schema: Schema, path: str, out: list[Cause]) -> None:
    """multipleOf, maximum, minimum; integers compare with truncated bounds, like Go."""
    factor = schema.get("multipleOf")
    if _is_number(factor) and factor > 0:
        if isinstance(value, int) and float(factor).is_integer():
            ok = value % int(factor) == 0
            shown = str(int(factor))
        else:
            ratio = value / factor if factor >= 1 else (1 / factor) * value
            ok = float(ratio).is_integer()
            shown = _go_float(float(factor))
        if not ok:
            detail = f"{path} in body should be a multiple of {shown}"
            out.append(_cause("FieldValueInvalid", path, value, detail))
    for bound_key, flag_key, word in (
        ("maximum", "exclusiveMaximum", "less"),
        ("minimum", "exclusiveMinimum", "greater"),
    ):
        bound, exclusive = _bound(schema, bound_key, flag_key)
        if bound is None:
            continue
        if isinstance(value, int):
            limit: int | float = int(bound)
            shown = str(int(bound))
        else:
            limit = bound
            shown = _go_float(bound)
        if word == "less":
            bad = value >= limit if exclusive else value > limit
        else:
            bad = value <= limit if exclusive else value < limit
        if bad:
            relation = f"{word} than" if exclusive else f"{word} than or equal to"
            detail = f"{path} in body should be {relation} {shown}"
            out.append(_cause("FieldValueInvalid", path, value, detail))


def _bound(schema: Schema, bound_key: str, flag_key: str) -> tuple[float | None, bool]:
    """OpenAPI 3.0 bounds (``exclusiveMaximum: true``) or JSON Schema's numeric form."""
    bound = schema.get(bound_key)
    flag = schema.get(flag_key)
    if _is_number(flag):
        return float(flag), True
    if _is_number(bound):
        return float(bound), flag is True
    return None, False


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_array(value: list[Any], schema: Schema, path: str, out: list[Cause]) -> None:
    items = _items(schema)
    if items is not None:
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", out)
    min_items = schema.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        detail = f"{path} in body should have at least {min_items} items"
        out.append(_cause("FieldValueInvalid", path, len(value), detail))
    max_items = schema.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        out.append(_too_many(path, len(value), max_items))
    if schema.get("uniqueItems") and any(
        _same(value[i], value[j]) for i in range(len(value)) for j in range(i)
    ):
        detail = f"{path} in body shouldn't contain duplicates"
        out.append(_cause("FieldValueInvalid", path, "", detail))


def _too_many(path: str, actual: int, most: int) -> Cause:
    return _cause("FieldValueTooMany", path, actual, f"must have at most {most} items")


def _check_enum(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    allowed = schema.get("enum")
    if not isinstance(allowed, list) or not allowed:
        return
    if value is not None and any(_same(value, option) for option in allowed):
        return
    shown = [option if isinstance(option, str) else _go_json(option) for option in allowed]
    detail = "supported values: " + ", ".join(_go_quote(option) for option in shown)
    out.append(_cause("FieldValueNotSupported", path, value, detail))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _check_object(value: dict[str, Any], schema: Schema, path: str, out: list[Cause]) -> None:
    count = len(value)
    min_props = schema.get("minProperties")
    if isinstance(min_props, int) and count < min_props:
        detail = f"{path} in body should have at least {min_props} properties"
        out.append(_cause("FieldValueInvalid", path, count, detail))
        return
    max_props = schema.get("maxProperties")
    if isinstance(max_props, int) and count > max_props:
        out.append(_too_many(path, count, max_props))
        return
    props: dict[str, Schema] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, item in value.items():
            if key not in props:
                _validate(item, extra, _child(path, key), out)
    for key, prop in props.items():
        if key in value and isinstance(prop, dict):
            _validate(value[key], prop, _child(path, key), out)
    for key in schema.get("required") or []:
        if key not in value:
            out.append(_cause("FieldValueRequired", _child(path, key)))


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ------------------------------------------------- embedded resources and list types


def _walk(
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
            if root and key in _OBJECT_FIELDS:
                continue
            sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
            yield from _walk(item, sub, _child(path, key))
    elif isinstance(value, list):
        items = _items(schema)
        for index, item in enumerate(value):
            yield from _walk(item, items, f"{path}[{index}]")


def _check_embedded(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    """An embedded resource needs a string apiVersion and kind (schema/objectmeta)."""
    if not _embeds(schema) or not isinstance(value, dict):
        return
    for key in ("apiVersion", "kind"):
        if key not in value:
            out.append(_cause("FieldValueRequired", _child(path, key), detail="must not be empty"))
        elif not isinstance(value[key], str):
            out.append(
                _cause("FieldValueInvalid", _child(path, key), value[key], "must be a string")
            )
        elif not value[key]:
            out.append(_cause("FieldValueInvalid", _child(path, key), "", "must not be empty"))


def _check_list_type(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    """``x-kubernetes-list-type: set`` items and ``map`` keys must be unique."""
    list_type = schema.get("x-kubernetes-list-type")
    if not isinstance(value, list) or list_type not in ("set", "map"):
        return
    if list_type == "set":
        for index, item in enumerate(value):
            if any(_same(item, earlier) for earlier in value[:index]):
                out.append(_cause("FieldValueDuplicate", f"{path}[{index}]", item))
        return
    keys = [str(k) for k in schema.get("x-kubernetes-list-map-keys") or []]
    items = _items(schema) or {}
    props: dict[str, Schema] = items.get("properties") or {}
    seen: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            detail = "must be an object for an array of list-type map"
            out.append(_cause("FieldValueTypeInvalid", f"{path}[{index}]", item, detail))
            continue
        key = {k: item.get(k, (props.get(k) or {}).get("default")) for k in keys}
        if any(_same(key, earlier) for earlier in seen):
            out.append(_cause("FieldValueDuplicate", f"{path}[{index}]", key))
        seen.append(key)


# --------------------------------------------------------------------------------- CEL


def _has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("x-kubernetes-validations"):
            return True
        return any(_has_rules(v) for k, v in schema.items() if k != "default")
    if isinstance(schema, list):
        return any(_has_rules(v) for v in schema)
    return False


def _run_cel(
    value: Any, schema: Schema | None, path: str, old: Any, out: list[Cause], *, root: bool = False
) -> None:
    """Evaluate the rules of every node; ``old`` is the correlated old value or None."""
    if value is None or schema is None:
        return
    rules = schema.get("x-kubernetes-validations")
    if isinstance(rules, list) and rules:
        _evaluate_rules(value, schema, path, old, rules, out, root=root)
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            if root and key in _OBJECT_FIELDS:
                continue
            sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
            _run_cel(item, sub, _child(path, key), old_map.get(key), out)
    elif isinstance(value, list):
        items = _items(schema)
        olds = _correlate_list(value, old, schema)
        for index, item in enumerate(value):
            _run_cel(item, items, f"{path}[{index}]", olds[index], out)


def _correlate_list(value: list[Any], old: Any, schema: Schema) -> list[Any]:
    """Old items match new ones only in ``list-type: map`` lists, by their keys."""
    none: list[Any] = [None] * len(value)
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list):
        return none
    keys = [str(k) for k in schema.get("x-kubernetes-list-map-keys") or []]

    def key_of(item: Any) -> str | None:
        if not isinstance(item, dict):
            return None
        return json.dumps([item.get(k) for k in keys], sort_keys=True)

    by_key = {key_of(item): item for item in old if key_of(item) is not None}
    return [by_key.get(key_of(item)) for item in value]


def _evaluate_rules(
    value: Any,
    schema: Schema,
    path: str,
    old: Any,
    rules: list[Any],
    out: list[Cause],
    *,
    root: bool,
) -> None:
    type_name = str(schema.get("type") or "")
    variables: dict[str, Any] = {"self": to_cel(_cel_view(value, root=root), schema)}
    if old is not None:
        variables["oldSelf"] = to_cel(_cel_view(old, root=root), schema)
    for rule in rules:
        source = rule.get("rule") if isinstance(rule, dict) else None
        if not isinstance(source, str) or not source.strip():
            continue
        compiled = compile_rule(source)
        if compiled.error is not None:
            out.append(_cause("FieldValueInvalid", path, type_name, compiled.error))
            continue
        if compiled.uses_old_self and old is None:
            continue  # a transition rule: nothing to compare with on create
        message = str(rule.get("message") or "").strip()
        shown_rule = message or source.strip()
        result, error = evaluate(compiled, variables)
        if error is not None:
            if error == "no such overload":
                detail = (
                    f"'{error}': call arguments did not match a supported operator, "
                    f"function or macro signature for rule: {shown_rule}"
                )
            else:
                detail = f"{error} evaluating rule: {shown_rule}"
            out.append(_cause("FieldValueInvalid", path, type_name, detail))
            continue
        if not isinstance(result, celtypes.BoolType):
            detail = f"rule compile error: rule must evaluate to a bool: {source.strip()}"
            out.append(_cause("FieldValueInvalid", path, type_name, detail))
            continue
        if result:
            continue
        detail = message or f"failed rule: {shown_rule}"
        expression = rule.get("messageExpression")
        if isinstance(expression, str) and expression.strip():
            detail = _message_from_expression(expression, variables) or detail
        field = _rule_field(path, rule.get("fieldPath"), schema)
        out.append(_rule_failure(field, type_name, detail, rule.get("reason")))


def _cel_view(value: Any, *, root: bool) -> Any:
    """At the root, rules see only ``metadata.name`` and ``metadata.generateName``."""
    if not root or not isinstance(value, dict):
        return value
    view = dict(value)
    metadata = view.get("metadata")
    if isinstance(metadata, dict):
        view["metadata"] = {k: metadata[k] for k in ("name", "generateName") if k in metadata}
    return view


def _message_from_expression(expression: str, variables: dict[str, Any]) -> str | None:
    """A messageExpression's text, or None to fall back to the rule's message."""
    compiled = compile_rule(expression)
    if compiled.error is not None:
        return None
    result, error = evaluate(compiled, variables)
    if error is not None or not isinstance(result, str):
        return None
    text = str(result).strip()
    return text if text and "\n" not in text else None


def _rule_field(path: str, field_path: Any, schema: Schema) -> str:
    """``path`` extended by a rule's ``fieldPath`` (``.a.b`` or ``.a['b']``)."""
    if not isinstance(field_path, str) or not field_path:
        return path
    node: Schema | None = schema
    for dotted, quoted in re.findall(r"\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\]", field_path):
        name = dotted or re.sub(r"\\(.)", r"\1", quoted)
        props = node.get("properties") if node else None
        if isinstance(props, dict) and props:
            path = _child(path, name)
            node = props.get(name)
        else:
            path = f"{path}[{name}]"
            extra = node.get("additionalProperties") if node else None
            node = extra if isinstance(extra, dict) else None
    return path


def _rule_failure(field: str, type_name: str, detail: str, reason: Any) -> Cause:
    if reason == "FieldValueForbidden":
        return _cause("FieldValueForbidden", field, detail=detail)
    if reason == "FieldValueRequired":
        return _cause("FieldValueRequired", field, detail=detail)
    if reason == "FieldValueDuplicate":
        return _cause("FieldValueDuplicate", field, type_name)
    return _cause("FieldValueInvalid", field, type_name, detail)


# ------------------------------------------------------------------------------ formats


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def _is_date_time(text: str) -> bool:
    match = _DATE_TIME.fullmatch(text)
    if not match or not _is_date(match.group(1)):
        return False
    return int(match.group(2)) < 24 and int(match.group(3)) < 60 and int(match.group(4) or 0) < 61


def _is_duration(text: str) -> bool:
    unit = r"(?:ns|us|µs|μs|ms|s|m|h|d|w)"
    return bool(re.fullmatch(rf"[-+]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)\s*{unit}\s*)+)", text.strip()))


def _is_uri(text: str) -> bool:
    """Lenient, like Go's url.Parse: no control characters, parseable."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return False
    try:
        urllib.parse.urlsplit(text)
    except ValueError:
        return False
    return True


def _is_ip(version: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False

    return check


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _matches(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda text: compiled.fullmatch(text) is not None


_HOST_LABEL = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?{v}[0-9a-fA-F]{3}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_FORMATS: dict[str, Callable[[str], bool]] = {
    "date": _is_date,
    "date-time": _is_date_time,
    "datetime": _is_date_time,
    "duration": _is_duration,
    "uri": _is_uri,
    "email": _matches(r"[^@\s]+@[^@\s]+"),
    "hostname": _matches(rf"(?=.{{1,253}}\.?$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?"),
    "ipv4": _is_ip(4),
    "ipv6": _is_ip(6),
    "cidr": _is_cidr,
    "mac": _matches(r"(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}"),
    "uuid": _matches(_UUID.replace("{v}", "[0-9a-fA-F]")),
    "uuid3": _matches(_UUID.replace("{v}", "3")),
    "uuid4": _matches(_UUID.replace("{v}", "4")),
    "uuid5": _matches(_UUID.replace("{v}", "5")),
    "byte": _is_base64,
    "password": lambda text: True,
    "hexcolor": _matches(r"#(?:[0-9a-fA-F]{3}){1,2}"),
    "rgbcolor": _matches(r"rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)"),
}


# ------------------------------------------------------------- Go-compatible wording


def _cause(reason: str, path: str, value: Any = _OMIT, detail: str = "") -> Cause:
    """A field error with apimachinery's ErrorBody wording (``<nil>`` for no field)."""
    body = _LABELS[reason]
    if reason not in _VALUELESS and value is not _OMIT:
        body = f"{body}: {_go_value(value)}"
    if detail:
        body = f"{body}: {detail}"
    return Cause(field=path or "<nil>", reason=reason, message=body)


def _go_value(value: Any) -> str:
    """A bad value as field.Error prints it: %v for scalars, %q for strings."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_quote(value)
    return _go_sharp(value)


def _go_sharp(value: Any) -> str:
    """Go's %#v of a decoded JSON value (maps sorted, as fmt prints them)."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, dict):
        inner = ", ".join(f"{_go_quote(str(k))}:{_go_sharp(value[k])}" for k in sorted(value))
        return f"map[string]interface {{}}{{{inner}}}"
    if isinstance(value, list):
        return f"[]interface {{}}{{{', '.join(_go_sharp(item) for item in value)}}}"
    return _go_value(value)


def _go_float(value: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form outside [1e-4, 1e6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(str(d) for d in digit_tuple)
    magnitude = len(digits) + exponent - 1
    prefix = "-" if sign else ""
    if magnitude < -4 or magnitude >= 6:
        mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if magnitude >= 0 else '-'}{abs(magnitude):02d}"
    if magnitude < 0:
        return f"{prefix}0.{'0' * (-magnitude - 1)}{digits}"
    whole = digits[: magnitude + 1].ljust(magnitude + 1, "0")
    fraction = digits[magnitude + 1 :]
    return f"{prefix}{whole}{'.' + fraction if fraction else ''}"


_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_quote(text: str) -> str:
    """strconv.Quote: Go's %q of a string."""
    parts = []
    for ch in text:
        if ch in _GO_ESCAPES:
            parts.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            parts.append(ch)
        elif ord(ch) < 0x80:
            parts.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(parts) + '"'


def _go_json(value: Any) -> str:
    """json.Marshal of an enum value (integral floats print without ``.0``)."""

    def plain(item: Any) -> Any:
        if isinstance(item, float) and item.is_integer() and abs(item) < 1e21:
            return int(item)
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        return item

    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
