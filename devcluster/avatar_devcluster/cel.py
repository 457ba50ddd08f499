"""CEL for ``x-kubernetes-validations``, on cel-python instead of cel-go.

A real kube-apiserver evaluates a CRD's validation rules with cel-go, typing each node's
value from the structural schema. The devcluster has no Go, so this module does the same
with cel-python and hides that library's differences from admission's CEL step
(:mod:`avatar_devcluster.admission.cel_rules`):

* values are converted the way Kubernetes types them (``number`` is always a double,
  ``format: date-time`` a timestamp, property names escaped as ``foo__dash__bar``);
* a rule is compiled once per distinct source text and the AST is inspected for
  ``oldSelf``, which is what makes it a transition rule;
* evaluation never raises: errors come back as text worded like cel-go's
  (``no such key: x``, ``no such overload``), ready for the API server's message.

cel-python 0.5 implements the CEL standard library (``has``, ``size``, ``in``,
``startsWith``, ``endsWith``, ``contains``, ``matches``, ``all``/``exists``/
``exists_one``/``map``/``filter``, conversions, timestamps) but none of the Kubernetes
extension libraries: ``url()``/``isURL``, ``quantity()``, ``ip()``/``cidr()``,
``isSorted``/``sum``/``min``/``max``/``indexOf`` on lists, the string extensions
(``lowerAscii``, ``upperAscii``, ``trim``, ``split``, ``join``, ``replace``,
``substring``, ``indexOf``, ``format``), ``authorizer``, and optionals (``self.?x``,
which does not even parse). A rule using one of them reports an evaluation error cause
(``undeclared reference to 'lowerAscii' evaluating rule: ...``) rather than passing.
Comparisons between int and double (``self.fps > 10.5`` on an integer) are a
``no such overload`` error, as in cel-go without cross-type numeric comparisons.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

__all__ = [
    "CompiledRule",
    "compile_rule",
    "escape_property",
    "evaluate",
    "to_cel",
]

_ENV = celpy.Environment()

# CEL keywords a property name cannot be used as without escaping (apiserver's list).
_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}
_EXPAND = re.compile(r"__|[-./]|[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class CompiledRule:
    """One rule, compiled once: what the API server keeps per CRD version."""

    source: str
    program: celpy.Runner | None
    error: str | None
    uses_old_self: bool


@functools.lru_cache(maxsize=2048)
def compile_rule(source: str) -> CompiledRule:
    """Compile ``source`` (cached per text, as every object of a CRD reuses its rules).

    A syntax error is kept in ``error`` worded like the API server's
    ``rule compile error: ...`` rather than raised, so admission can report it as a cause.
    """
    try:
        ast = _ENV.compile(source)
    except CELParseError as exc:
        where = ""
        if exc.line is not None and exc.column is not None:
            where = f"<input>:{exc.line}:{exc.column}: "
        return CompiledRule(
            source=source,
            program=None,
            error=f"rule compile error: compilation failed: ERROR: {where}Syntax error",
            uses_old_self=False,
        )
    return CompiledRule(
        source=source,
        program=_ENV.program(ast),
        error=None,
        uses_old_self=_mentions_old_self(ast),
    )


def _mentions_old_self(ast: lark.Tree[Any]) -> bool:
    """True if ``oldSelf`` appears as a variable (not as ``x.oldSelf`` or in a string)."""
    for node in ast.iter_subtrees():
        if node.data == "ident" and node.children and str(node.children[0]) == "oldSelf":
            return True
    return False


def evaluate(rule: CompiledRule, variables: dict[str, Any]) -> tuple[Any, str | None]:
    """Run ``rule`` with ``variables`` (CEL values); return ``(result, error text)``.

    Nothing escapes: a cel-python exception of any kind becomes the error text.
    """
    if rule.program is None:
        return None, rule.error or "rule did not compile"
    try:
        result: Any = rule.program.evaluate(variables)
    except CELEvalError as exc:
        return None, _describe(exc)
    except Exception as exc:  # cel-python raises plain Python errors on some inputs
        return None, _describe(exc)
    if isinstance(result, CELEvalError):
        return None, _describe(result)
    return result, None


def _describe(exc: BaseException) -> str:
    """Word a cel-python error the way cel-go does, as the API server quotes it."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    text = text.split(" (in activation", 1)[0]
    if isinstance(exc, CELEvalError) and len(exc.args) > 1:
        cause = exc.args[1]
        if cause is IndexError:
            return "index out of bounds"
        if cause is ZeroDivisionError:
            return "division by zero"
    member = re.fullmatch(r"no such member in mapping: '(.*)'", text)
    if member:
        return f"no such key: {member.group(1)}"
    if text.startswith(("found no matching overload", "no such overload")):
        return "no such overload"
    return text


def escape_property(name: str) -> str | None:
    """The CEL identifier of property ``name`` (``foo-bar`` -> ``foo__dash__bar``).

    None when Kubernetes cannot expose it (it starts with a digit or has other symbols).
    """
    if not name or name[0].isdigit():
        return None
    if name in _RESERVED:
        return f"__{name}__"
    ok = True

    def replace(match: re.Match[str]) -> str:
        nonlocal ok
        escaped = _ESCAPES.get(match.group(0))
        if escaped is None:
            ok = False
            return ""
        return escaped

    escaped = _EXPAND.sub(replace, name)
    return escaped if ok else None


def to_cel(value: Any, schema: dict[str, Any] | None) -> Any:
    """Convert a JSON value to CEL, typed by its schema node as the API server types it."""
    if value is None:
        return None
    if schema is None:
        return json_to_cel(value)
    kind = schema.get("type")
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out: dict[celtypes.StringType, Any] = {}
        for key, item in value.items():
            if key in props:
                name = escape_property(key)
                if name is not None:
                    out[celtypes.StringType(name)] = to_cel(item, props[key])
            elif isinstance(extra, dict):
                out[celtypes.StringType(key)] = to_cel(item, extra)
            else:
                out[celtypes.StringType(key)] = json_to_cel(item)
        return celtypes.MapType(out)
    if isinstance(value, list):
        items = schema.get("items")
        item_schema = items if isinstance(items, dict) else None
        return celtypes.ListType([to_cel(item, item_schema) for item in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int | float):
        if kind == "number":
            return celtypes.DoubleType(float(value))
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            return celtypes.IntType(int(value))
        return json_to_cel(value)
    if isinstance(value, str) and kind == "string":
        return _typed_string(value, schema.get("format"))
    return json_to_cel(value)


def _typed_string(value: str, fmt: Any) -> Any:
    """Strings with a time or byte format are timestamps, durations or bytes in K8s CEL."""
    try:
        if fmt in ("date-time", "datetime"):
            return celtypes.TimestampType(value)
        if fmt == "date":
            return celtypes.TimestampType(f"{value}T00:00:00Z")
        if fmt == "duration":
            return celtypes.DurationType(value)
        if fmt == "byte":
            return celtypes.BytesType(base64.b64decode(value, validate=True))
    except (ValueError, TypeError, binascii.Error):
        pass  # schema validation reports the bad format; CEL sees the plain string
    return celtypes.StringType(value)
