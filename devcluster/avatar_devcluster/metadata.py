"""Object metadata as the API server owns it.

Clients send what they want; the server decides uid, resourceVersion,
creationTimestamp, generation (bumped on spec changes only), generateName
suffixes, and keeps the status subresource apart from the main resource.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
import string
import uuid
from typing import Any

from avatar_devcluster.errors import ApiError
from avatar_devcluster.resources import ResourceType

Obj = dict[str, Any]

_NAME_ALPHABET = string.ascii_lowercase + string.digits
_SERVER_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content(rt: ResourceType, obj: Obj) -> Obj:
    """What a generation counts: the spec (for kinds without one, all but metadata/status)."""
    if "spec" in obj:
        return {"spec": obj["spec"]}
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def for_create(rt: ResourceType, obj: Obj, *, namespace: str, revision: int) -> Obj:
    obj = copy.deepcopy(obj)
    obj["apiVersion"] = rt.group_version
    obj["kind"] = rt.kind
    meta = obj.setdefault("metadata", {})
    if not meta.get("name"):
        prefix = meta.get("generateName")
        if not prefix:
            raise ApiError(
                422,
                "Invalid",
                f"{rt.kind}.{rt.group or 'core'} is invalid: metadata.name: Required value:"
                " name or generateName is required",
            )
        meta["name"] = prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    if rt.namespaced:
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the"
                " request",
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    for name in _SERVER_FIELDS:
        meta.pop(name, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    meta["generation"] = 1
    meta["resourceVersion"] = str(revision)
    if rt.status_subresource and rt.custom:
        obj.pop("status", None)  # a custom resource's status is written through /status only
    return obj


def for_update(rt: ResourceType, old: Obj, new: Obj, *, subresource: str, revision: int) -> Obj:
    """The stored object after a PUT (or a PATCH's result) on the resource or its status."""
    new = copy.deepcopy(new)
    old_meta, meta = old["metadata"], new.setdefault("metadata", {})
    sent = meta.get("resourceVersion")
    if sent not in (None, "") and sent != old_meta["resourceVersion"]:
        raise _conflict(rt, old_meta["name"])
    if subresource == "status":
        # Only the status changes through /status; everything else stays as stored.
        stored = copy.deepcopy(old)
        stored["status"] = new.get("status")
        if stored["status"] is None:
            stored.pop("status")
        new = stored
        meta = new["metadata"]
    else:
        if rt.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        for name in ("uid", "creationTimestamp", "deletionTimestamp", "namespace"):
            if name in old_meta:
                meta[name] = old_meta[name]
            else:
                meta.pop(name, None)
        if meta.get("name") not in (None, "", old_meta["name"]):
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta['name']}) does not match the name on the URL"
                f" ({old_meta['name']})",
            )
        meta["name"] = old_meta["name"]
        meta["generation"] = old_meta.get("generation", 1)
    new["apiVersion"] = old["apiVersion"]
    new["kind"] = old["kind"]
    meta["resourceVersion"] = str(revision)
    return new


def bump_generation(rt: ResourceType, old: Obj, new: Obj) -> None:
    """After admission (defaults filled in): a spec that did not change keeps its generation."""
    generation = int(old["metadata"].get("generation", 1))
    new["metadata"]["generation"] = generation + (_content(rt, old) != _content(rt, new))


def _conflict(rt: ResourceType, name: str) -> ApiError:
    from avatar_devcluster.errors import conflict

    return conflict(rt.plural, name, group=rt.group)
