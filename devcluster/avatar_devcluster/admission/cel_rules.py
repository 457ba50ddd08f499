"""Step 5 of admission: the ``x-kubernetes-validations`` CEL rules of every schema node.

A node's rules see its value as ``self`` (the root only its ``metadata.name`` and
``generateName``) and, on update, the correlated old value as ``oldSelf``; list items
correlate only in ``list-type: map`` lists, by their keys. A transition rule (one that
mentions ``oldSelf``) is skipped on create. On update, a rule that does not mention
``oldSelf`` is not run where the value is unchanged: the API server ratchets it (CRD
validation ratcheting, on by default since 1.30: an unchanged value's errors are
ignored), so a status write does not re-check the spec's rules. A failed rule is worded
as the API server words it, from ``message``, ``messageExpression``, ``fieldPath`` and
``reason``. After a blocking schema error (``BLOCKING``) no rule runs, and one cause
(``SKIPPED``) says so. Compiling and evaluating CEL is :mod:`avatar_devcluster.cel`'s.
"""

from __future__ import annotations

import json
import re
from typing import Any

from celpy import celtypes

from avatar_devcluster.admission import messages, schemas
from avatar_devcluster.admission.messages import Cause
from avatar_devcluster.admission.schemas import Schema
from avatar_devcluster.cel import compile_rule, evaluate, to_cel

# Schema errors after which the API server does not run CEL (strategy.go hasBlockingErr).
BLOCKING = frozenset(
    {
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    }
)

SKIPPED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


def has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("x-kubernetes-validations"):
            return True
        return any(has_rules(v) for k, v in schema.items() if k != "default")
    if isinstance(schema, list):
        return any(has_rules(v) for v in schema)
    return False


def run(
    value: Any, schema: Schema | None, path: str, old: Any, out: list[Cause], *, root: bool = False
) -> None:
    """Evaluate the rules of every node; ``old`` is the correlated old value or None."""
    if value is None or schema is None:
        return
    unchanged = old is not None and value == old
    if unchanged and not _has_transition_rules(schema):
        return  # ratcheted, every rule below
    rules = schema.get("x-kubernetes-validations")
    if isinstance(rules, list) and rules:
        _evaluate_rules(value, schema, path, old, rules, out, root=root, unchanged=unchanged)
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            if root and key in schemas.OBJECT_FIELDS:
                continue
            sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
            run(item, sub, schemas.child(path, key), old_map.get(key), out)
    elif isinstance(value, list):
        items = schemas.items(schema)
        olds = _correlate_list(value, old, schema)
        for index, item in enumerate(value):
            run(item, items, f"{path}[{index}]", olds[index], out)


# Schema nodes (by id, the node kept alive beside its answer) -> whether a rule at or
# below them mentions oldSelf: those run even on an unchanged value.
_TRANSITIONS: dict[int, tuple[Schema, bool]] = {}


def _has_transition_rules(schema: Schema) -> bool:
    known = _TRANSITIONS.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    found = _mentions_transition(schema)
    if len(_TRANSITIONS) > 10_000:  # CRDs replaced many times over: start again
        _TRANSITIONS.clear()
    _TRANSITIONS[id(schema)] = (schema, found)
    return found


def _mentions_transition(schema: Any) -> bool:
    if isinstance(schema, dict):
        for rule in schema.get("x-kubernetes-validations") or []:
            source = rule.get("rule") if isinstance(rule, dict) else None
            if isinstance(source, str) and compile_rule(source).uses_old_self:
                return True
        return any(_mentions_transition(v) for k, v in schema.items() if k != "default")
    if isinstance(schema, list):
        return any(_mentions_transition(v) for v in schema)
    return False


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
    unchanged: bool,
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
            out.append(messages.cause("FieldValueInvalid", path, type_name, compiled.error))
            continue
        if compiled.uses_old_self and old is None:
            continue  # a transition rule: nothing to compare with on create
        if unchanged and not compiled.uses_old_self:
            continue  # ratcheted
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
            out.append(messages.cause("FieldValueInvalid", path, type_name, detail))
            continue
        if not isinstance(result, celtypes.BoolType):
            detail = f"rule compile error: rule must evaluate to a bool: {source.strip()}"
            out.append(messages.cause("FieldValueInvalid", path, type_name, detail))
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
            path = schemas.child(path, name)
            node = props.get(name)
        else:
            path = f"{path}[{name}]"
            extra = node.get("additionalProperties") if node else None
            node = extra if isinstance(extra, dict) else None
    return path


def _rule_failure(field: str, type_name: str, detail: str, reason: Any) -> Cause:
    if reason == "FieldValueForbidden":
        return messages.cause("FieldValueForbidden", field, detail=detail)
    if reason == "FieldValueRequired":
        return messages.cause("FieldValueRequired", field, detail=detail)
    if reason == "FieldValueDuplicate":
        return messages.cause("FieldValueDuplicate", field, type_name)
    return messages.cause("FieldValueInvalid", field, type_name, detail)
