"""OpenAPI documents (v3 per group-version, and v2 for all) built from the registry.

kubectl reads them before ``apply``: when a resource's PATCH operation takes the
``fieldValidation`` parameter, kubectl leaves validation to the server (which
admission does) instead of validating itself. A ``kind: List`` is the exception:
kubectl validates its items itself, against the v2 document's definitions, so those
carry the CRDs' schemas made fit for v2 the way apiextensions-apiserver makes them
(:func:`v2_schema`), and unknown fields in a List's custom resources are still
reported. Built-in kinds have no schema here, so their definitions accept anything.
CRD schemas are in the v3 documents too, so ``kubectl explain`` describes custom
resources.

The v2 document's PATCH operations name no patch types (``consumes``): kubectl then
computes strategic merge patches for built-in kinds from its compiled-in types, which
know the lists' merge keys, and JSON merge patches for custom resources.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from avatar_devcluster.resources import Registry, ResourceType

Obj = dict[str, Any]

_QUERY = ("fieldValidation", "fieldManager", "dryRun", "pretty")


def _schema_name(rt: ResourceType) -> str:
    reverse = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reverse}.{rt.version}.{rt.kind}"


def _operation(rt: ResourceType, action: str, ref: str) -> Obj:
    return {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY
        ],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}
        },
    }


def _paths(rt: ResourceType) -> dict[str, Obj]:
    base = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    collection = (
        f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else (f"{base}/{rt.plural}")
    )
    ref = f"#/components/schemas/{_schema_name(rt)}"
    item = {
        action: _operation(rt, verb, ref)
        for action, verb in (
            ("get", "get"),
            ("put", "put"),
            ("patch", "patch"),
            ("delete", "delete"),
        )
    }
    paths = {
        collection: {"get": _operation(rt, "list", ref), "post": _operation(rt, "post", ref)},
        f"{collection}/{{name}}": item,
    }
    if rt.status_subresource:
        paths[f"{collection}/{{name}}/status"] = {
            "get": _operation(rt, "get", ref),
            "put": _operation(rt, "put", ref),
            "patch": _operation(rt, "patch", ref),
        }
    return paths


def _schema(rt: ResourceType) -> Obj:
    schema: Obj = dict(rt.schema) if rt.schema else {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True,
    }  # fmt: skip
    properties = dict(schema.get("properties") or {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties.setdefault("metadata", {"type": "object"})
    return {
        **schema,
        "properties": properties,
        "x-kubernetes-group-version-kind": [
            {"group": rt.group, "version": rt.version, "kind": rt.kind}
        ],
    }


def group_version_doc(registry: Registry, group: str, version: str) -> Obj | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Obj] = {}
    schemas: dict[str, Obj] = {}
    for rt in types:
        paths.update(_paths(rt))
        schemas[_schema_name(rt)] = _schema(rt)
    return {
        "openapi": "3.0.0",
        "info": {"title": "avatar-devcluster", "version": "v1.32.0-devcluster"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _doc_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def index(registry: Registry) -> Obj:
    """``/openapi/v3``: one entry per group-version, with a hash that changes with it."""
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = group_version_doc(registry, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
            path = _doc_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


_V2_DROPPED = ("allOf", "anyOf", "oneOf", "not", "nullable")


def v2_schema(schema: Obj) -> Obj:
    """A structural v3 schema as kubectl's v2 reader can take it: without the junctors and
    ``nullable`` (a nullable value is left untyped), and without the properties or items
    of a value that keeps unknown fields (an object of those is left untyped too), as
    apiextensions-apiserver publishes a CRD's schema in v2."""
    out = {k: v for k, v in schema.items() if k not in _V2_DROPPED}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: v2_schema(v) for k, v in out["properties"].items()}
        nullable = {k for k, v in schema["properties"].items() if v.get("nullable")}
        if nullable and "required" in out:
            out["required"] = [name for name in out["required"] if name not in nullable]
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = v2_schema(out[key])
    if schema.get("nullable") or schema.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("properties", None)
        out.pop("items", None)
        if schema.get("nullable") or out.get("type") == "object":
            out.pop("type", None)
    if out.get("type") == "array" and "items" not in out:
        out.pop("type")  # kubectl cannot read an array without an item schema
    return out


def _v2_operation(rt: ResourceType, action: str) -> Obj:
    return {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
        "parameters": [
            {"name": name, "in": "query", "type": "string", "uniqueItems": True} for name in _QUERY
        ],
        "responses": {
            "200": {
                "description": "OK",
                "schema": {"$ref": f"#/definitions/{_schema_name(rt)}"},
            }
        },
    }


def v2(registry: Registry) -> Obj:
    """The swagger 2.0 document: each resource's operations and each kind's schema.

    kubectl asks for it as protobuf (``routes.protobuf`` writes it so); the paths have
    v3's shape, the definitions are :func:`v2_schema` of v3's."""
    paths: dict[str, Obj] = {}
    for rt in registry.all():
        for path, operations in _paths(rt).items():
            actions = {verb: op["x-kubernetes-action"] for verb, op in operations.items()}
            paths[path] = {verb: _v2_operation(rt, action) for verb, action in actions.items()}
    return {
        "swagger": "2.0",
        "info": {"title": "avatar-devcluster", "version": "v1.32.0-devcluster"},
        "paths": paths,
        "definitions": {_schema_name(rt): v2_schema(_schema(rt)) for rt in registry.all()},
    }
