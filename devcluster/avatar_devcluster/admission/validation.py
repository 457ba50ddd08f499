"""Step 3 of admission: the OpenAPI v3 schema, with kube-openapi's checks and wording.

kube-openapi's SchemaValidator checks, at each node and in this order: type,
composition (anyOf, oneOf, allOf, not), string length and pattern, format, numeric
bounds and multiples, array items and sizes, enum, then object size, properties and
required fields. The messages are kube-openapi's (``spec.fps in body should be less than
or equal to 60``), so what kubectl prints here is what GKE prints. Python's ``re`` stands
in for Go's RE2; the format checks themselves are in ``formats``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from avatar_devcluster.admission import formats, messages, schemas
from avatar_devcluster.admission.messages import Cause
from avatar_devcluster.admission.schemas import Schema


def root_schema(schema: Schema) -> Schema:
    """The root schema without the fields the API server validates itself."""
    root = dict(schema)
    props = root.get("properties")
    if isinstance(props, dict):
        root["properties"] = {k: v for k, v in props.items() if k not in schemas.OBJECT_FIELDS}
    required = root.get("required")
    if isinstance(required, list):
        root["required"] = [k for k in required if k not in schemas.OBJECT_FIELDS]
    return root


def validate(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
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
    detail = f"{path} in body must be of type {','.join(types)}: {messages.go_quote(actual)}"
    out.append(messages.cause("FieldValueTypeInvalid", path, actual, detail))


def _check_composition(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    """anyOf / oneOf / allOf / not, reported like kube-openapi (path-less summary)."""
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and any_of:
        results = [_sub_validate(value, sub, path) for sub in any_of]
        if all(results):
            out.append(
                _summary(f"{messages.go_quote(path)} must validate at least one schema (anyOf)")
            )
            out.extend(_fewest(results))
    one_of = schema.get("oneOf")
    if isinstance(one_of, list) and one_of:
        results = [_sub_validate(value, sub, path) for sub in one_of]
        valid = sum(1 for result in results if not result)
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            msg = (
                f"{messages.go_quote(path)} must validate one and only one schema (oneOf). {found}"
            )
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
            out.append(
                _summary(f"{messages.go_quote(path)} must validate all the schemas (allOf){suffix}")
            )
    not_schema = schema.get("not")
    if isinstance(not_schema, dict) and not _sub_validate(value, not_schema, path):
        out.append(_summary(f"{messages.go_quote(path)} must not validate the schema (not)"))


def _fewest(results: list[list[Cause]]) -> list[Cause]:
    """The alternative that came closest (kube-openapi keeps its errors)."""
    return sorted(results, key=len)[0]


def _sub_validate(value: Any, schema: Any, path: str) -> list[Cause]:
    found: list[Cause] = []
    if isinstance(schema, dict):
        validate(value, schema, path, found)
    return found


def _summary(detail: str) -> Cause:
    """A kube-openapi composite error: the API server files it under no field."""
    return messages.cause("FieldValueInvalid", "", "", detail)


def _check_string(value: str, schema: Schema, path: str, out: list[Cause]) -> None:
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and len(value) > max_length:
        out.append(
            messages.cause("FieldValueTooLong", path, value, f"may not be longer than {max_length}")
        )
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        detail = f"{path} in body should be at least {min_length} chars long"
        out.append(messages.cause("FieldValueInvalid", path, value, detail))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        compiled = _regex(pattern)
        if isinstance(compiled, str):
            detail = f"{path} in body should match '{pattern}, but pattern is invalid: {compiled}'"
            out.append(messages.cause("FieldValueInvalid", path, value, detail))
        elif not compiled.search(value):
            detail = f"{path} in body should match '{pattern}'"
            out.append(messages.cause("FieldValueInvalid", path, value, detail))


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str] | str:
    """The compiled pattern (Python re standing in for Go's RE2), or why it is invalid."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        return str(exc)


def _check_format(value: str, schema: Schema, path: str, out: list[Cause]) -> None:
    fmt = schema.get("format")
    check = formats.CHECKS.get(fmt) if isinstance(fmt, str) else None
    if check is not None and not check(value):
        detail = f"{path} in body must be of type {fmt}: {messages.go_quote(value)}"
        out.append(messages.cause("FieldValueTypeInvalid", path, value, detail))


def _check_number(value: int | float, schema: Schema, path: str, out: list[Cause]) -> None:
    """multipleOf, maximum, minimum; integers compare with truncated bounds, like Go."""
    factor = schema.get("multipleOf")
    if schemas.is_number(factor) and factor > 0:
        if isinstance(value, int) and float(factor).is_integer():
            ok = value % int(factor) == 0
            shown = str(int(factor))
        else:
            ratio = value / factor if factor >= 1 else (1 / factor) * value
            ok = float(ratio).is_integer()
            shown = messages.go_float(float(factor))
        if not ok:
            detail = f"{path} in body should be a multiple of {shown}"
            out.append(messages.cause("FieldValueInvalid", path, value, detail))
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
            shown = messages.go_float(bound)
        if word == "less":
            bad = value >= limit if exclusive else value > limit
        else:
            bad = value <= limit if exclusive else value < limit
        if bad:
            relation = f"{word} than" if exclusive else f"{word} than or equal to"
            detail = f"{path} in body should be {relation} {shown}"
            out.append(messages.cause("FieldValueInvalid", path, value, detail))


def _bound(schema: Schema, bound_key: str, flag_key: str) -> tuple[float | None, bool]:
    """OpenAPI 3.0 bounds (``exclusiveMaximum: true``) or JSON Schema's numeric form."""
    bound = schema.get(bound_key)
    flag = schema.get(flag_key)
    if schemas.is_number(flag):
        return float(flag), True
    if schemas.is_number(bound):
        return float(bound), flag is True
    return None, False


def _check_array(value: list[Any], schema: Schema, path: str, out: list[Cause]) -> None:
    items = schemas.items(schema)
    if items is not None:
        for index, item in enumerate(value):
            validate(item, items, f"{path}[{index}]", out)
    min_items = schema.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        detail = f"{path} in body should have at least {min_items} items"
        out.append(messages.cause("FieldValueInvalid", path, len(value), detail))
    max_items = schema.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        out.append(_too_many(path, len(value), max_items))
    if schema.get("uniqueItems") and any(
        schemas.same(value[i], value[j]) for i in range(len(value)) for j in range(i)
    ):
        detail = f"{path} in body shouldn't contain duplicates"
        out.append(messages.cause("FieldValueInvalid", path, "", detail))


def _too_many(path: str, actual: int, most: int) -> Cause:
    return messages.cause("FieldValueTooMany", path, actual, f"must have at most {most} items")


def _check_enum(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    allowed = schema.get("enum")
    if not isinstance(allowed, list) or not allowed:
        return
    if value is not None and any(schemas.same(value, option) for option in allowed):
        return
    shown = [option if isinstance(option, str) else messages.go_json(option) for option in allowed]
    detail = "supported values: " + ", ".join(messages.go_quote(option) for option in shown)
    out.append(messages.cause("FieldValueNotSupported", path, value, detail))


def _check_object(value: dict[str, Any], schema: Schema, path: str, out: list[Cause]) -> None:
    count = len(value)
    min_props = schema.get("minProperties")
    if isinstance(min_props, int) and count < min_props:
        detail = f"{path} in body should have at least {min_props} properties"
        out.append(messages.cause("FieldValueInvalid", path, count, detail))
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
                validate(item, extra, schemas.child(path, key), out)
    for key, prop in props.items():
        if key in value and isinstance(prop, dict):
            validate(value[key], prop, schemas.child(path, key), out)
    for key in schema.get("required") or []:
        if key not in value:
            out.append(messages.cause("FieldValueRequired", schemas.child(path, key)))
