"""What every route reads from a request, in one place so the routes read it alike.

The cluster the server holds, the object or collection a URL names, the query's
flags (``dryRun``, ``fieldValidation``, ``watch``) and selectors, the client that
sent it; and the version an object is served as. The body, and the media type of
the answer, are ``media``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from avatar_devcluster import selectors
from avatar_devcluster.cluster import Cluster, Target
from avatar_devcluster.errors import ApiError
from avatar_devcluster.resources import ResourceType

Obj = dict[str, Any]

CLUSTER = web.AppKey("cluster", Cluster)


def cluster_of(request: web.Request) -> Cluster:
    return request.app[CLUSTER]


def target(request: web.Request, cluster: Cluster) -> Target:
    """The object, or the collection, that ``/api[s]/<group>/<version>/<tail>`` names."""
    group = request.match_info.get("group", "")
    version = request.match_info["version"]
    parts = [p for p in request.match_info["tail"].split("/") if p]
    namespace = ""
    if (
        len(parts) >= 3
        and parts[0] == "namespaces"
        and cluster.registry.get(group, version, parts[2])
    ):
        namespace, parts = parts[1], parts[2:]
    if not parts:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    rt = cluster.registry.get(group, version, parts[0])
    if rt is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if namespace and not rt.namespaced:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if sub and not (
        (sub == "status" and rt.status_subresource) or (sub == "scale" and rt.scale_subresource)
    ):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if rt.namespaced and name and not namespace:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Target(rt=rt, namespace=namespace, name=name, subresource=sub)


def note(
    request: web.Request, *, verb: str, target: str, namespace: str = "", group: str = ""
) -> None:
    """Count the request for its client (the first word of its User-Agent) and its user
    (a pod's service account, from the token the kubelet gave it; ``mounts``)."""
    client = request.headers.get("User-Agent", "unknown").split(" ")[0]
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    user = token if token.startswith("system:serviceaccount:") else ""
    cluster_of(request).note(
        client=client, verb=verb, target=target, namespace=namespace, user=user, group=group
    )


def watching(request: web.Request) -> bool:
    return request.query.get("watch") in ("1", "true")


def strict(request: web.Request) -> bool:
    """``fieldValidation=Strict`` (kubectl apply's default): unknown fields are errors."""
    return request.query.get("fieldValidation") == "Strict"


def dry_run(request: web.Request) -> bool:
    return request.query.get("dryRun") == "All"


def matcher(request: web.Request) -> Callable[[Obj], bool]:
    """The request's label and field selectors, as one predicate."""
    by_labels = selectors.labels(request.query.get("labelSelector", ""))
    by_fields = selectors.fields(request.query.get("fieldSelector", ""))
    return lambda obj: by_labels(obj) and by_fields(obj)


def as_version(obj: Obj, rt: ResourceType) -> Obj:
    """Objects of a multi-version CRD are stored once and served as the version asked for."""
    obj["apiVersion"] = rt.group_version
    return obj
