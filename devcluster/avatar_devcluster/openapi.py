"""OpenAPI documents (v3 per group-version, and a v2 summary) built from the registry.

kubectl reads them before ``apply``: when a resource's PATCH operation takes the
``fieldValidation`` parameter, kubectl leaves validation to the server (which
admission does) instead of downloading schemas to validate itself. CRD schemas
are included, so ``kubectl explain`` describes custom resources.
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


def v2(registry: Registry) -> Obj:
    """A JSON swagger 2.0 summary (kubectl asks for protobuf first and falls back to v3)."""
    return {
        "swagger": "2.0",
        "info": {"title": "avatar-devcluster", "version": "v1.32.0-devcluster"},
        "paths": {},
        "definitions": {_schema_name(rt): _schema(rt) for rt in registry.all()},
    }
