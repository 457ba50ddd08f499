"""The protobuf wire format, as far as kubectl needs the dev cluster to speak it.

kubectl 1.32 speaks protobuf where it has no fallback to JSON. Its typed clients
(``kubectl create namespace``, ``configmap``, ``secret``, ``serviceaccount``,
``service``, ``deployment``) send their bodies as ``application/vnd.kubernetes.protobuf``,
and client-go sends a body as JSON after a 415 only when that body was CBOR, never when
it was protobuf. Its client-side validation (``kubectl apply`` of a ``kind: List``) reads
``/openapi/v2`` only as gnostic's protobuf, and fails on anything else. So:

- :func:`decode_object` reads the ``k8s\\x00`` envelope (``runtime.Unknown``) around one
  of the built-in kinds above into the object a JSON client would have sent. The field
  numbers are those of ``k8s.io/api``'s ``generated.proto``, for the fields those commands
  fill in (and the common ones near them). A body that sets any other field is refused
  with :class:`UnreadableError` (the route answers 415), never read with that field lost.
- :func:`encode_openapi_v2` writes a swagger 2.0 document (``openapi.v2``'s) as gnostic's
  ``openapi.v2.Document``: the parts kubectl reads (paths' operations with their query
  parameters and extensions, and the definitions' schemas).
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

MAGIC = b"k8s\x00"  # what starts every Kubernetes protobuf body

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class UnreadableError(ValueError):
    """A protobuf body this module cannot turn into JSON without losing part of it."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data) and shift < 70:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at
    raise UnreadableError("the body is not protobuf: a varint runs past its end")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Each field as (number, wire type, value): an int for a varint, else its bytes."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == _VARINT:
            value, at = _varint(data, at)
            yield number, wire, value
            continue
        if wire == _BYTES:
            size, at = _varint(data, at)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
        else:
            raise UnreadableError(f"the body is not protobuf: wire type {wire}")
        if at + size > len(data):
            raise UnreadableError("the body is not protobuf: a field runs past its end")
        yield number, wire, data[at : at + size]
        at += size


def _is_empty(wire: int, value: int | bytes) -> bool:
    """Whether a field the tables do not know holds only zeros: Go's protobuf encoder
    writes every field that is not a pointer, set or not, so unknown ones are common."""
    if isinstance(value, int):
        return value == 0
    if wire != _BYTES or not value:
        return not any(value)
    try:
        return all(_is_empty(w, v) for _, w, v in _fields(value))
    except UnreadableError:
        return False


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # a scalar kind below, or the name of a message in _MESSAGES
    repeated: bool = False
    map_of: str = ""  # the value kind of a map<string, V>
    keep_zero: bool = False  # a pointer in Go: written only when set, so 0 and false count


def _f(name: str, kind: str = "string", *, keep_zero: bool = False) -> _Field:
    return _Field(name, kind, keep_zero=keep_zero)


def _list(name: str, kind: str = "string") -> _Field:
    return _Field(name, kind, repeated=True)


def _map(name: str, of: str = "string") -> _Field:
    return _Field(name, "entry", map_of=of)


_META = _f("metadata", "ObjectMeta")

# field number -> field, per message; the built-in kinds and what they hold.
_MESSAGES: dict[str, dict[int, _Field]] = {
    "ObjectMeta": {
        1: _f("name"), 2: _f("generateName"), 3: _f("namespace"), 5: _f("uid"),
        6: _f("resourceVersion"), 7: _f("generation", "int"), 8: _f("creationTimestamp", "time"),
        9: _f("deletionTimestamp", "time"), 11: _map("labels"), 12: _map("annotations"),
        10: _f("deletionGracePeriodSeconds", "int", keep_zero=True),
        13: _list("ownerReferences", "OwnerReference"), 14: _list("finalizers"),
    },
    "OwnerReference": {
        5: _f("apiVersion"), 1: _f("kind"), 3: _f("name"), 4: _f("uid"),
        6: _f("controller", "bool", keep_zero=True),
        7: _f("blockOwnerDeletion", "bool", keep_zero=True),
    },
    "Namespace": {1: _META, 2: _f("spec", "NamespaceSpec"), 3: _f("status", "NamespaceStatus")},
    "NamespaceSpec": {1: _list("finalizers")},
    "NamespaceStatus": {1: _f("phase")},
    "ConfigMap": {
        1: _META, 2: _map("data"), 3: _map("binaryData", "bytes"),
        4: _f("immutable", "bool", keep_zero=True),
    },
    "Secret": {
        1: _META, 2: _map("data", "bytes"), 3: _f("type"), 4: _map("stringData"),
        5: _f("immutable", "bool", keep_zero=True),
    },
    "ServiceAccount": {
        1: _META, 2: _list("secrets", "ObjectReference"),
        3: _list("imagePullSecrets", "LocalObjectReference"),
        4: _f("automountServiceAccountToken", "bool", keep_zero=True),
    },
    "ObjectReference": {
        1: _f("kind"), 2: _f("namespace"), 3: _f("name"), 4: _f("uid"), 5: _f("apiVersion"),
        6: _f("resourceVersion"), 7: _f("fieldPath"),
    },
    "LocalObjectReference": {1: _f("name")},
    "Service": {1: _META, 2: _f("spec", "ServiceSpec")},
    "ServiceSpec": {
        1: _list("ports", "ServicePort"), 2: _map("selector"), 3: _f("clusterIP"), 4: _f("type"),
        5: _list("externalIPs"), 7: _f("sessionAffinity"), 10: _f("externalName"),
        11: _f("externalTrafficPolicy"), 17: _f("ipFamilyPolicy"), 18: _list("clusterIPs"),
        19: _list("ipFamilies"), 22: _f("internalTrafficPolicy"),
        20: _f("allocateLoadBalancerNodePorts", "bool", keep_zero=True),
    },
    "ServicePort": {
        1: _f("name"), 2: _f("protocol"), 3: _f("port", "int"), 4: _f("targetPort", "intorstr"),
        5: _f("nodePort", "int"), 6: _f("appProtocol"),
    },
    "Deployment": {1: _META, 2: _f("spec", "DeploymentSpec")},
    "DeploymentSpec": {
        1: _f("replicas", "int", keep_zero=True), 2: _f("selector", "LabelSelector"),
        3: _f("template", "PodTemplateSpec"), 4: _f("strategy", "DeploymentStrategy"),
        5: _f("minReadySeconds", "int"), 6: _f("revisionHistoryLimit", "int", keep_zero=True),
        7: _f("paused", "bool"), 9: _f("progressDeadlineSeconds", "int", keep_zero=True),
    },
    "DeploymentStrategy": {1: _f("type"), 2: _f("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: _f("maxUnavailable", "intorstr"), 2: _f("maxSurge", "intorstr")},
    "LabelSelector": {1: _map("matchLabels"), 2: _list("matchExpressions", "Requirement")},
    "Requirement": {1: _f("key"), 2: _f("operator"), 3: _list("values")},
    "PodTemplateSpec": {1: _META, 2: _f("spec", "PodSpec")},
    "PodSpec": {
        2: _list("containers", "Container"), 3: _f("restartPolicy"),
        4: _f("terminationGracePeriodSeconds", "int", keep_zero=True), 6: _f("dnsPolicy"),
        7: _map("nodeSelector"), 8: _f("serviceAccountName"),
        15: _list("imagePullSecrets", "LocalObjectReference"),
        20: _list("initContainers", "Container"),
    },
    "Container": {
        1: _f("name"), 2: _f("image"), 3: _list("command"), 4: _list("args"),
        5: _f("workingDir"), 6: _list("ports", "ContainerPort"), 7: _list("env", "EnvVar"),
        8: _f("resources", "ResourceRequirements"), 13: _f("terminationMessagePath"),
        14: _f("imagePullPolicy"), 20: _f("terminationMessagePolicy"),
    },
    "ContainerPort": {
        1: _f("name"), 2: _f("hostPort", "int"), 3: _f("containerPort", "int"),
        4: _f("protocol"), 5: _f("hostIP"),
    },
    "EnvVar": {1: _f("name"), 2: _f("value")},
    "ResourceRequirements": {1: _map("limits", "quantity"), 2: _map("requests", "quantity")},
    "DeleteOptions": {
        1: _f("gracePeriodSeconds", "int", keep_zero=True), 2: _f("preconditions", "Preconditions"),
        3: _f("orphanDependents", "bool", keep_zero=True), 4: _f("propagationPolicy"),
        5: _list("dryRun"),
    },
    "Preconditions": {1: _f("uid"), 2: _f("resourceVersion")},
}  # fmt: skip

# (apiVersion, kind) of the bodies the envelope may hold -> their message.
_KINDS = {
    **{("v1", kind): kind for kind in ("Namespace", "ConfigMap", "Secret", "ServiceAccount")},
    ("v1", "Service"): "Service",
    ("apps/v1", "Deployment"): "Deployment",
    **{(v, "DeleteOptions"): "DeleteOptions" for v in ("v1", "meta.k8s.io/v1", "apps/v1")},
}


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, wire: int, value: int | bytes, where: str) -> Any:
    if kind in ("int", "bool"):
        if not isinstance(value, int):
            raise UnreadableError(f"{where}: a {kind} that is not a varint")
        return _signed(value) if kind == "int" else bool(value)
    if not isinstance(value, bytes) or wire != _BYTES:
        raise UnreadableError(f"{where}: a {kind} that is not length-delimited")
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "string":
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise UnreadableError(f"{where}: a string that is not UTF-8") from None
    if kind in _MESSAGES:
        return _message(value, kind)
    inner = {n: v for n, _, v in _fields(value)}
    if kind == "quantity":
        return _scalar("string", _BYTES, inner.get(1, b""), where)
    if kind == "intorstr":  # type 0: intVal; type 1: strVal
        if inner.get(1, 0) == 1:
            return _scalar("string", _BYTES, inner.get(3, b""), where)
        return _signed(int(inner.get(2, 0)))
    if kind == "time":  # seconds since the epoch; the zero time is unset
        seconds = _signed(int(inner.get(1, 0)))
        if not seconds:
            return None
        when = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise ValueError(f"no such kind of field: {kind}")


def _message(data: bytes, name: str) -> Obj:
    fields = _MESSAGES[name]
    out: Obj = {}
    for number, wire, value in _fields(data):
        field = fields.get(number)
        if field is None:
            if not _is_empty(wire, value):
                raise UnreadableError(f"the dev cluster cannot read field {number} of {name}")
            continue
        where = f"{name}.{field.name}"
        if field.map_of:
            if not isinstance(value, bytes):
                raise UnreadableError(f"{where}: a map entry that is not length-delimited")
            entry = {n: (w, v) for n, w, v in _fields(value)}
            key = _scalar("string", *entry.get(1, (_BYTES, b"")), where)
            default = (_VARINT, 0) if field.map_of in ("int", "bool") else (_BYTES, b"")
            out.setdefault(field.name, {})[key] = _scalar(
                field.map_of, *entry.get(2, default), where
            )
        elif field.repeated:
            out.setdefault(field.name, []).append(_scalar(field.kind, wire, value, where))
        else:
            out[field.name] = _scalar(field.kind, wire, value, where)
    # JSON leaves out what is unset: zero values, but not a pointer's zero.
    kept = {f.name for f in fields.values() if f.keep_zero}
    return {k: v for k, v in out.items() if k in kept or v not in (None, "", 0, {}, [])}


def decode_object(body: bytes) -> Obj:
    """A ``application/vnd.kubernetes.protobuf`` body as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise UnreadableError("the body does not start with the Kubernetes protobuf envelope")
    type_meta: dict[int, Any] = {}
    raw = b""
    for number, _, value in _fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            type_meta = {n: v for n, _, v in _fields(value)}
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number == 3 and value:
            raise UnreadableError(f"the envelope's content encoding {value!r} is not supported")
    api_version = _scalar("string", _BYTES, type_meta.get(1, b""), "TypeMeta")
    kind = _scalar("string", _BYTES, type_meta.get(2, b""), "TypeMeta")
    message = _KINDS.get((api_version, kind))
    if message is None:
        raise UnreadableError(f"{kind or 'an object'} ({api_version}) is not read from protobuf")
    return {"apiVersion": api_version, "kind": kind, **_message(raw, message)}


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _bytes(number: int, payload: bytes) -> bytes:
    return _uvarint(number << 3 | _BYTES) + _uvarint(len(payload)) + payload


def _text(number: int, text: str) -> bytes:
    return _bytes(number, text.encode()) if text else b""


def _flag(number: int, value: bool) -> bytes:
    return _uvarint(number << 3 | _VARINT) + b"\x01" if value else b""


def _any(number: int, value: Any) -> bytes:
    """gnostic's ``Any``: the value as YAML text (JSON is YAML), in field 2."""
    return _bytes(number, _text(2, json.dumps(value, sort_keys=True)))


def _extensions(number: int, node: Mapping[str, Any]) -> bytes:
    """``x-`` keys as repeated ``NamedAny`` (name 1, value 2)."""
    return b"".join(
        _bytes(number, _text(1, key) + _any(2, value))
        for key, value in node.items()
        if key.startswith("x-")
    )


# Schema's scalar fields: JSON name -> (field number, how it is written).
_SCHEMA_SCALARS = {
    "$ref": (1, "string"), "format": (2, "string"), "title": (3, "string"),
    "description": (4, "string"), "multipleOf": (6, "double"), "maximum": (7, "double"),
    "exclusiveMaximum": (8, "bool"), "minimum": (9, "double"), "exclusiveMinimum": (10, "bool"),
    "maxLength": (11, "int"), "minLength": (12, "int"), "pattern": (13, "string"),
    "maxItems": (14, "int"), "minItems": (15, "int"), "uniqueItems": (16, "bool"),
    "maxProperties": (17, "int"), "minProperties": (18, "int"),
}  # fmt: skip


def _schema(node: Mapping[str, Any]) -> bytes:
    out = []
    for key, (number, how) in _SCHEMA_SCALARS.items():
        value = node.get(key)
        if value is None:
            continue
        if how == "string":
            out.append(_text(number, str(value)))
        elif how == "bool":
            out.append(_flag(number, bool(value)))
        elif how == "int":
            out.append(_uvarint(number << 3 | _VARINT) + _uvarint(int(value) & ((1 << 64) - 1)))
        else:
            out.append(_uvarint(number << 3 | _FIXED64) + struct.pack("<d", float(value)))
    if "default" in node:
        out.append(_any(5, node["default"]))
    out += [_text(19, name) for name in node.get("required", ())]
    out += [_any(20, value) for value in node.get("enum", ())]
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        out.append(_bytes(21, _bytes(1, _schema(extra))))
    elif isinstance(extra, bool):  # a oneof: false is written too
        out.append(_bytes(21, _uvarint(2 << 3 | _VARINT) + bytes([extra])))
    types = node.get("type")
    if types:
        names = [types] if isinstance(types, str) else list(types)
        out.append(_bytes(22, b"".join(_text(1, name) for name in names)))
    items = node.get("items")
    if items is not None:
        listed = [items] if isinstance(items, Mapping) else list(items)
        out.append(_bytes(23, b"".join(_bytes(1, _schema(item)) for item in listed)))
    if "properties" in node:  # written even when empty: an object with no fields
        named = node["properties"].items()
        out.append(_bytes(25, b"".join(_named(1, k, _schema(v)) for k, v in named)))
    out.append(_extensions(31, node))
    return b"".join(out)


def _named(number: int, name: str, value: bytes) -> bytes:
    return _bytes(number, _text(1, name) + _bytes(2, value))


_VERBS = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}


def _operation(node: Mapping[str, Any]) -> bytes:
    out = [_text(5, node.get("operationId", ""))]
    out += [_text(6, media) for media in node.get("produces", ())]
    out += [_text(7, media) for media in node.get("consumes", ())]
    for param in node.get("parameters", ()):
        if param.get("in") != "query":
            raise ValueError(f"only query parameters are written, not {param}")
        query = (
            _flag(1, param.get("required", False)) + _text(2, "query")
            + _text(3, param.get("description", "")) + _text(4, param["name"])
            + _text(6, param.get("type", "")) + _flag(20, param.get("uniqueItems", False))
        )  # fmt: skip
        # ParametersItem.parameter -> Parameter.non_body_parameter -> query_parameter_sub_schema
        out.append(_bytes(8, _bytes(1, _bytes(2, _bytes(3, query)))))
    out.append(_extensions(13, node))
    return b"".join(out)


def encode_openapi_v2(doc: Mapping[str, Any]) -> bytes:
    """A swagger 2.0 document as gnostic's ``openapi.v2.Document`` (responses left out:
    kubectl reads operations' parameters and extensions, and the definitions)."""
    info = doc.get("info", {})
    paths = b"".join(
        _named(2, path, b"".join(_bytes(_VERBS[v], _operation(op)) for v, op in item.items()))
        for path, item in doc.get("paths", {}).items()
    )
    definitions = b"".join(
        _named(1, name, _schema(schema)) for name, schema in doc.get("definitions", {}).items()
    )
    return (
        _text(1, doc.get("swagger", "2.0"))
        + _bytes(2, _text(1, info.get("title", "")) + _text(2, info.get("version", "")))
        + _bytes(8, paths)
        + _bytes(9, definitions)
    )
