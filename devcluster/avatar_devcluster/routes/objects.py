"""Reading and writing objects over HTTP: get, list, create, update, patch, delete, scale.

Each verb reads its parameters from the request and hands the write to the
cluster, which applies the API server's rules; what comes back is the object
(or a Table of them, for kubectl get), in the media type ``media`` settled on
before anything was written. Watches, the one verb that streams, are
``watches``'.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from avatar_devcluster import applying, metadata, patching, tables
from avatar_devcluster.cluster import Cluster, Target
from avatar_devcluster.errors import ApiError, not_found
from avatar_devcluster.routes import media, requests

Obj = dict[str, Any]

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


async def answer(request: web.Request, cluster: Cluster, target: Target) -> web.StreamResponse:
    """One request on an object or a collection (any but a watch)."""
    rt, method = target.rt, request.method
    # As kube-apiserver does: a client that cannot read the answer gets 406 before a write.
    # Tables are for reads of objects (a Scale is not one).
    tabular = method == "GET" and target.subresource != "scale"
    offers = (media.OBJECT, media.TABLE) if tabular else (media.OBJECT,)
    table = media.negotiate(request, *offers) == media.TABLE
    if method == "GET" and not target.name:
        requests.note(
            request, verb="list", target=rt.plural, namespace=target.namespace, group=rt.group
        )
        return _list(request, cluster, target, table=table)
    requests.note(
        request,
        verb=_VERBS.get(method, method),
        target=rt.plural + (f"/{target.subresource}" * bool(target.subresource)),
        namespace=target.namespace,
        group=rt.group,
    )
    if target.subresource == "scale":
        return await _scale(request, cluster, target)
    if method == "POST" and not target.name:
        obj = cluster.create(
            rt,
            await _body(request, target),
            target.namespace,
            dry_run=requests.dry_run(request),
            strict=requests.strict(request),
        )
        return web.json_response(obj, status=201)
    if not target.name:
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
    if method == "GET":
        found = cluster.store.get(target.key)
        if found is None:
            raise not_found(rt.plural, target.name, group=rt.group)
        if table:
            include = request.query.get("includeObject", "Metadata")
            revision = found["metadata"]["resourceVersion"]
            rows = tables.table(rt, [found], include_object=include, resource_version=revision)
            return web.json_response(rows)
        return web.json_response(found)
    if method == "PUT":
        body = await _body(request, target)
        return web.json_response(
            cluster.update(
                target, body, dry_run=requests.dry_run(request), strict=requests.strict(request)
            )
        )
    if method == "PATCH":
        return await _patch(request, cluster, target)
    if method == "DELETE":
        options = await _body(request, target) if request.can_read_body else {}
        orphan = (
            options.get("propagationPolicy") == "Orphan"
            or request.query.get("propagationPolicy") == "Orphan"
        )
        return web.json_response(
            cluster.delete(target, dry_run=requests.dry_run(request), orphan=orphan)
        )
    raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")


async def _patch(request: web.Request, cluster: Cluster, target: Target) -> web.Response:
    rt = target.rt
    # Read the body before the object: no await may fall between reading the stored
    # object and writing the patched one, or a concurrent write would look like a
    # conflict (the API server applies a patch without a resourceVersion atomically).
    raw = await request.read()
    old = cluster.store.get(target.key)
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type.lower() == patching.APPLY_PATCH and not target.subresource:
        return _apply(request, cluster, target, raw, old)
    if old is None:
        raise not_found(rt.plural, target.name, group=rt.group)
    try:
        patched = patching.apply_patch(
            old, raw, content_type=content_type, kind=rt.kind, group=rt.group
        )
    except patching.PatchError as exc:
        raise ApiError(exc.status, exc.reason, exc.message) from None
    # A patch that names a resourceVersion is checked against it, as a PUT is.
    return web.json_response(
        cluster.update(
            target, patched, dry_run=requests.dry_run(request), strict=requests.strict(request)
        )
    )


def _apply(
    request: web.Request, cluster: Cluster, target: Target, raw: bytes, old: Obj | None
) -> web.Response:
    """Server-side apply: create the object, or merge in what the field manager applies."""
    try:
        applied = applying.load(raw)
        name = (applied.get("metadata") or {}).get("name")
        if name != target.name:
            raise ApiError(400, "BadRequest", f"the name of the object ({name}) does not match"
                           f" the name on the URL ({target.name})")  # fmt: skip
        result = applying.apply(
            old, applied, manager=request.query.get("fieldManager", ""), now=metadata.now()
        )
    except patching.PatchError as exc:
        raise ApiError(exc.status, exc.reason, exc.message) from None
    dry_run, strict = requests.dry_run(request), requests.strict(request)
    if old is None:
        created = cluster.create(target.rt, result, target.namespace, dry_run=dry_run,
                                 strict=strict)  # fmt: skip
        return web.json_response(created, status=201)
    return web.json_response(cluster.update(target, result, dry_run=dry_run, strict=strict))


async def _body(request: web.Request, target: Target) -> Obj:
    """The request's object; built-in kinds are read from protobuf too, as kubectl's
    typed clients send them."""
    return await media.body(request, protobuf_too=not target.rt.custom)


def _list(request: web.Request, cluster: Cluster, target: Target, *, table: bool) -> web.Response:
    rt = target.rt
    matches = requests.matcher(request)
    items = [
        requests.as_version(o, rt)
        for o in cluster.store.objects(rt.group, rt.plural, target.namespace or None)
        if matches(o)
    ]
    revision = str(cluster.store.revision)
    if table:
        include = request.query.get("includeObject", "Metadata")
        return web.json_response(
            tables.table(rt, items, include_object=include, resource_version=revision)
        )
    return web.json_response(
        {
            "kind": rt.list_kind,
            "apiVersion": rt.group_version,
            "metadata": {"resourceVersion": revision},
            "items": items,
        }
    )


def _as_scale(obj: Obj) -> Obj:
    labels = (((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


async def _scale(request: web.Request, cluster: Cluster, target: Target) -> web.Response:
    """``/scale``: the replica count of a workload as an ``autoscaling/v1`` Scale."""
    obj = cluster.store.get(target.key)
    if obj is None:
        raise not_found(target.rt.plural, target.name, group=target.rt.group)
    if request.method == "GET":
        return web.json_response(_as_scale(obj))
    scale = _as_scale(obj)
    if request.method == "PUT":
        scale = await _body(request, target)
    elif request.method == "PATCH":
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == patching.STRATEGIC_MERGE_PATCH:
            content_type = patching.MERGE_PATCH  # a Scale has no lists to merge by key
        try:
            scale = patching.apply_patch(
                scale, await request.read(), content_type=content_type, kind="Scale", group=""
            )
        except patching.PatchError as exc:
            raise ApiError(exc.status, exc.reason, exc.message) from None
    else:
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on scale")
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise ApiError(422, "Invalid", "spec.replicas: Invalid value: must be a whole number >= 0")
    obj["spec"]["replicas"] = replicas
    main = Target(rt=target.rt, namespace=target.namespace, name=target.name, subresource="")
    return web.json_response(
        _as_scale(cluster.update(main, obj, dry_run=requests.dry_run(request)))
    )
