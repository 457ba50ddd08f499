"""The dev cluster's HTTP API, on aiohttp.

Why not kmock's ``KubernetesEmulator``: kmock is a mocking DSL (``kmock['/path'] <<
payload``) for scripted answers in tests, and an API server that the real
kubectl and kopf can live with needs the opposite: a store with one
resourceVersion counter, watch history, admission, metadata rules. Each of
those is a small module here (``store``, ``metadata``, ``admission``,
``patching``, ``tables``, ``selectors``); this module only routes HTTP to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from avatar_devcluster import metadata, openapi, selectors, tables
from avatar_devcluster.controllers import Deployments
from avatar_devcluster.errors import ApiError, already_exists, bad_request, gone, not_found
from avatar_devcluster.kubelet import Kubelet
from avatar_devcluster.resources import Registry, ResourceType
from avatar_devcluster.store import Change, Key, Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]
JSON = "application/json"
SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-devcluster",
    "gitCommit": "devcluster",
    "gitTreeState": "clean",
    "buildDate": "2026-11-24T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_BOOKMARK_SECONDS = 5.0


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rt: ResourceType
    namespace: str  # "" for cluster-scoped or all namespaces
    name: str
    subresource: str

    @property
    def key(self) -> Key:
        return (self.rt.group, self.rt.plural, self.namespace, self.name)


class Cluster:
    """The API's state and its rules; the routes below only translate HTTP."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.registry = Registry()
        self.client_verbs: dict[tuple[str, str, str], int] = {}
        # Objects whose removal waits for something outside the API (a pod's process to
        # end): deleting them only sets deletionTimestamp, like a finalizer would.
        self.held: set[Key] = set()
        for key in store.all_keys():
            if key[:2] == ("apiextensions.k8s.io", "customresourcedefinitions"):
                crd = store.get(key)
                if crd is not None:
                    self.registry.set_crd(crd)
        for name in ("default", "kube-system", "kube-public"):
            if store.get(("", "namespaces", "", name)) is None:
                self.create(self._rt("", "v1", "namespaces"), {"metadata": {"name": name}}, "")

    def _rt(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt

    # -- writes --------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        body: Obj,
        namespace: str,
        *,
        dry_run: bool = False,
        strict: bool = False,
    ) -> Obj:
        if rt.namespaced and self.store.get(("", "namespaces", "", namespace)) is None:
            raise not_found("namespaces", namespace)
        obj = metadata.for_create(rt, body, namespace=namespace, revision=self.store.revision + 1)
        key = (rt.group, rt.plural, namespace if rt.namespaced else "", obj["metadata"]["name"])
        if self.store.get(key) is not None:
            raise already_exists(rt.plural, key[3], group=rt.group)
        obj = self._admit(rt, obj, old=None, strict=strict)
        if rt.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        if rt.kind == "CustomResourceDefinition":
            obj = self._accept_crd(obj)
        if dry_run:
            return obj
        self.store.next_revision()
        self.store.put(key, obj, created=True)
        if rt.kind == "CustomResourceDefinition":
            self.registry.set_crd(obj)
        return obj

    def update(
        self, target: Target, body: Obj, *, dry_run: bool = False, strict: bool = False
    ) -> Obj:
        rt = target.rt
        old = self.store.get(target.key)
        if old is None:
            raise not_found(rt.plural, target.name, group=rt.group)
        new = metadata.for_update(
            rt, old, body, subresource=target.subresource, revision=self.store.revision + 1
        )
        # A status write is admitted too, as the whole object it makes (schema, pruning,
        # CEL): a bad status is refused here, not found later on an unrelated write.
        new = self._admit(rt, new, old=old, strict=strict)
        if target.subresource != "status":
            metadata.bump_generation(rt, old, new)
        if rt.kind == "CustomResourceDefinition" and target.subresource != "status":
            new = self._accept_crd(new)
        if _unchanged(old, new):
            return old  # no change: no new resourceVersion, no watch event (as the API server)
        if dry_run:
            return new
        self.store.next_revision()
        meta = new["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and target.key not in self.held
        ):
            self._remove(target.key)
            return new
        self.store.put(target.key, new, created=False)
        if rt.kind == "CustomResourceDefinition":
            self.registry.set_crd(new)
        return new

    def delete(self, target: Target, *, dry_run: bool = False, orphan: bool = False) -> Obj:
        obj = self.store.get(target.key)
        if obj is None:
            raise not_found(target.rt.plural, target.name, group=target.rt.group)
        if dry_run:
            return obj
        if obj["metadata"].get("finalizers") or target.key in self.held:
            self._mark_deleted(target.key, obj)
            return obj
        return self._remove(target.key, cascade=not orphan) or obj

    def _mark_deleted(self, key: Key, obj: Obj) -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        obj["metadata"]["deletionTimestamp"] = metadata.now()
        grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        obj["metadata"]["deletionGracePeriodSeconds"] = grace if key in self.held else 0
        obj["metadata"]["resourceVersion"] = str(self.store.next_revision())
        self.store.put(key, obj, created=False)

    def remove(self, key: Key) -> None:
        """Remove an object whose deletion was held (its process ended)."""
        self.held.discard(key)
        obj = self.store.get(key)
        if obj is not None and not obj["metadata"].get("finalizers"):
            self._remove(key)

    def _remove(self, key: Key, *, cascade: bool = True) -> Obj | None:
        obj = self.store.remove(key)
        if obj is None:
            return None
        if not cascade:  # propagationPolicy: Orphan
            return obj
        uid = obj["metadata"].get("uid")
        if key[:2] == ("", "namespaces"):
            for other in self.store.all_keys():
                if other[2] == key[3] and other[:2] != ("", "namespaces"):
                    self._delete_key(other)
        elif key[:2] == ("apiextensions.k8s.io", "customresourcedefinitions"):
            for rt in self.registry.remove_crd(key[3]):
                for other in self.store.all_keys():
                    if other[:2] == (rt.group, rt.plural):
                        self._delete_key(other)
        # Garbage collection: dependents go with their owner (background propagation).
        for other in self.store.all_keys():
            dependent = self.store.get(other)
            owners = (dependent or {}).get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in owners):
                self._delete_key(other)
        return obj

    def _delete_key(self, key: Key) -> None:
        obj = self.store.get(key)
        if obj is None:
            return
        if obj["metadata"].get("finalizers") or key in self.held:
            self._mark_deleted(key, obj)
        else:
            self._remove(key)

    def _admit(self, rt: ResourceType, obj: Obj, *, old: Obj | None, strict: bool) -> Obj:
        if not rt.custom or rt.schema is None:
            return obj
        from avatar_devcluster import admission

        try:
            admitted = admission.admit(obj, schema=rt.schema, old=old, kind=rt.kind, group=rt.group)
            unknown = _pruned(obj, admitted, "") if strict else []
            if unknown:
                fields = ", ".join(f'unknown field "{path}"' for path in unknown)
                raise ApiError(
                    400,
                    "BadRequest",
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}:'
                    f" strict decoding error: {fields}",
                )
            return admitted
        except admission.AdmissionError as exc:
            status = exc.status()
            raise ApiError(
                422, "Invalid", status["message"], details=status.get("details")
            ) from None

    def _accept_crd(self, crd: Obj) -> Obj:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        if not spec.get("group") or not names.get("plural") or not names.get("kind"):
            raise ApiError(
                422,
                "Invalid",
                f'CustomResourceDefinition.apiextensions.k8s.io "{crd["metadata"]["name"]}" is'
                " invalid: spec: Required value: group, names.plural and names.kind are required",
            )
        expected = f"{names['plural']}.{spec['group']}"
        if crd["metadata"]["name"] != expected:
            raise ApiError(
                422,
                "Invalid",
                f'CustomResourceDefinition.apiextensions.k8s.io "{crd["metadata"]["name"]}" is'
                f' invalid: metadata.name: Invalid value: "{crd["metadata"]["name"]}": must be'
                f' spec.names.plural+"."+spec.group',
            )
        condition = {"status": "True", "lastTransitionTime": metadata.now()}
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
            "conditions": [
                {**condition, "type": "NamesAccepted", "reason": "NoConflicts",
                 "message": "no conflicts found"},
                {**condition, "type": "Established", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted"},
            ],
        }  # fmt: skip
        return crd

    def note(self, request: web.Request, verb: str, target: str) -> None:
        """Which client used which verb on what: the chart's RBAC is checked against this."""
        client = request.headers.get("User-Agent", "unknown").split(" ")[0]
        key = (client, verb, target)
        if key not in self.client_verbs:
            log.info("client %s %s %s", client, verb, target, extra={"client": client})
        self.client_verbs[key] = self.client_verbs.get(key, 0) + 1


def _pruned(sent: Any, kept: Any, path: str) -> list[str]:
    """Fields that were sent but not kept: what admission pruned as unknown."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        out: list[str] = []
        for key, value in sent.items():
            child = f"{path}.{key}" if path else key
            if path == "" and key in ("metadata", "apiVersion", "kind"):
                continue
            out += [child] if key not in kept else _pruned(value, kept[key], child)
        return out
    if isinstance(sent, list) and isinstance(kept, list):
        return [
            p
            for i, (a, b) in enumerate(zip(sent, kept, strict=False))
            for p in _pruned(a, b, f"{path}[{i}]")
        ]
    return []


def _unchanged(old: Obj, new: Obj) -> bool:
    def strip(obj: Obj) -> Obj:
        meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        return {**obj, "metadata": meta}

    return strip(old) == strip(new)


# -- routing ---------------------------------------------------------------------------


CLUSTER = web.AppKey("cluster", Cluster)


def _cluster(request: web.Request) -> Cluster:
    return request.app[CLUSTER]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _target(cluster: Cluster, group: str, version: str, tail: str) -> Target:
    parts = [p for p in tail.split("/") if p]
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


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


async def _body(request: web.Request) -> Obj:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def _strict(request: web.Request) -> bool:
    """``fieldValidation=Strict`` (kubectl apply's default): unknown fields are errors."""
    return request.query.get("fieldValidation") == "Strict"


def _dry_run(request: web.Request) -> bool:
    return request.query.get("dryRun") == "All"


async def resource(request: web.Request) -> web.StreamResponse:
    cluster = _cluster(request)
    group = request.match_info.get("group", "")
    version = request.match_info["version"]
    target = _target(cluster, group, version, request.match_info["tail"])
    rt, method = target.rt, request.method
    if method == "GET" and not target.name:
        watch = request.query.get("watch") in ("1", "true")
        cluster.note(request, "watch" if watch else "list", rt.plural)
        if watch:
            return await _watch(request, cluster, target)
        return _list(request, cluster, target)
    verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    cluster.note(
        request,
        verb.get(method, method),
        rt.plural + (f"/{target.subresource}" * bool(target.subresource)),
    )
    if target.subresource == "scale":
        return await _scale(request, cluster, target)
    if method == "POST" and not target.name:
        obj = cluster.create(
            rt,
            await _body(request),
            target.namespace,
            dry_run=_dry_run(request),
            strict=_strict(request),
        )
        return _json(obj, 201)
    if not target.name:
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
    if method == "GET":
        found = cluster.store.get(target.key)
        if found is None:
            raise not_found(rt.plural, target.name, group=rt.group)
        if _wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            revision = found["metadata"]["resourceVersion"]
            return _json(tables.table(rt, [found], include_object=include,
                                      resource_version=revision))  # fmt: skip
        return _json(found)
    if method == "PUT":
        body = await _body(request)
        return _json(
            cluster.update(target, body, dry_run=_dry_run(request), strict=_strict(request))
        )
    if method == "PATCH":
        from avatar_devcluster import patching

        # Read the body before the object: no await may fall between reading the stored
        # object and writing the patched one, or a concurrent write would look like a
        # conflict (the API server applies a patch without a resourceVersion atomically).
        raw = await request.read()
        old = cluster.store.get(target.key)
        if old is None:
            raise not_found(rt.plural, target.name, group=rt.group)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            patched = patching.apply_patch(
                old, raw, content_type=content_type, kind=rt.kind, group=rt.group
            )
        except patching.PatchError as exc:
            raise ApiError(exc.status, exc.reason, exc.message) from None
        # A patch that names a resourceVersion is checked against it, as a PUT is.
        return _json(
            cluster.update(target, patched, dry_run=_dry_run(request), strict=_strict(request))
        )
    if method == "DELETE":
        options = await _body(request) if request.can_read_body else {}
        orphan = (
            options.get("propagationPolicy") == "Orphan"
            or request.query.get("propagationPolicy") == "Orphan"
        )
        return _json(cluster.delete(target, dry_run=_dry_run(request), orphan=orphan))
    raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")


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
        return _json(_as_scale(obj))
    from avatar_devcluster import patching

    scale = _as_scale(obj)
    if request.method == "PUT":
        scale = await _body(request)
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
    return _json(_as_scale(cluster.update(main, obj, dry_run=_dry_run(request))))


def _matcher(request: web.Request, target: Target) -> Any:
    by_labels = selectors.labels(request.query.get("labelSelector", ""))
    by_fields = selectors.fields(request.query.get("fieldSelector", ""))
    return lambda obj: by_labels(obj) and by_fields(obj)


def _list(request: web.Request, cluster: Cluster, target: Target) -> web.Response:
    rt = target.rt
    matches = _matcher(request, target)
    items = [
        _as_version(o, rt)
        for o in cluster.store.objects(rt.group, rt.plural, target.namespace or None)
        if matches(o)
    ]
    revision = str(cluster.store.revision)
    if _wants_table(request):
        include = request.query.get("includeObject", "Metadata")
        return _json(tables.table(rt, items, include_object=include, resource_version=revision))
    return _json(
        {
            "kind": rt.list_kind,
            "apiVersion": rt.group_version,
            "metadata": {"resourceVersion": revision},
            "items": items,
        }
    )


def _as_version(obj: Obj, rt: ResourceType) -> Obj:
    """Objects of a multi-version CRD are stored once and served as the version asked for."""
    obj["apiVersion"] = rt.group_version
    return obj


async def _watch(request: web.Request, cluster: Cluster, target: Target) -> web.StreamResponse:
    rt = target.rt
    matches = _matcher(request, target)
    namespace = target.namespace

    def in_scope(change: Change) -> bool:
        meta = change.object["metadata"]
        return (change.group, change.plural) == (rt.group, rt.plural) and (
            not namespace or meta.get("namespace") == namespace
        )

    def seen_as(change: Change) -> str | None:
        """The event this watcher sees: an object leaving the selection is DELETED for it,
        one entering it ADDED, as the API server reports them."""
        if not in_scope(change):
            return None
        now = matches(change.object)
        if change.type != "MODIFIED" or change.previous is None:
            return change.type if now else None
        before = matches(change.previous)
        if now and before:
            return "MODIFIED"
        return "ADDED" if now else "DELETED" if before else None

    # Parameters are checked before the stream starts: afterwards no error can be sent.
    since = request.query.get("resourceVersion", "")
    try:
        revision = int(since) if since not in ("", "0") else 0
        timeout = float(request.query.get("timeoutSeconds", "1800"))
    except ValueError:
        raise bad_request("invalid resourceVersion or timeoutSeconds") from None
    watcher = cluster.store.subscribe(lambda change: seen_as(change) is not None)
    response = web.StreamResponse(headers={"Content-Type": JSON})
    await response.prepare(request)
    table = _wants_table(request)
    include = request.query.get("includeObject", "Metadata")

    async def send(kind: str, obj: Obj) -> None:
        if table and kind != "ERROR" and kind != "BOOKMARK":
            obj = tables.table(rt, [obj], include_object=include,
                               resource_version=obj["metadata"]["resourceVersion"])  # fmt: skip
        await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

    try:
        if since in ("", "0"):
            for obj in cluster.store.objects(rt.group, rt.plural, namespace or None):
                if matches(obj):
                    await send("ADDED", _as_version(obj, rt))
        else:
            backlog = cluster.store.history_since(revision)
            if backlog is None:
                expired = gone(f"too old resource version: {revision} ({cluster.store.revision})")
                await send("ERROR", expired.status())
                return response
            for change in backlog:
                if (kind := seen_as(change)) is not None:
                    await send(kind, _as_version(change.object, rt))
        bookmarks = request.query.get("allowWatchBookmarks") in ("1", "true")
        deadline = asyncio.get_running_loop().time() + timeout
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                change = await asyncio.wait_for(watcher.queue.get(), min(left, _BOOKMARK_SECONDS))
            except TimeoutError:
                if bookmarks:
                    current = str(cluster.store.revision)
                    marker = {"kind": rt.kind, "apiVersion": rt.group_version,
                              "metadata": {"resourceVersion": current}}  # fmt: skip
                    await send("BOOKMARK", marker)
                continue
            if (kind := seen_as(change)) is not None:
                await send(kind, _as_version(change.object, rt))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        cluster.store.unsubscribe(watcher)
    return response


# -- discovery -------------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version",
             "/openapi/v2", "/openapi/v3"]  # fmt: skip
    for group, versions in _cluster(request).registry.groups().items():
        if group:
            paths += [f"/apis/{group}"] + [f"/apis/{group}/{v}" for v in versions]
    return _json({"paths": sorted(paths)})


async def version(_: web.Request) -> web.Response:
    return _json(SERVER_VERSION)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def api_versions(_: web.Request) -> web.Response:
    return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})


def _group_doc(group: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


async def api_groups(request: web.Request) -> web.Response:
    groups = [
        _group_doc(group, versions)
        for group, versions in sorted(_cluster(request).registry.groups().items())
        if group
    ]
    return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})


async def api_group(request: web.Request) -> web.Response:
    group = request.match_info["group"]
    versions = _cluster(request).registry.groups().get(group)
    if not versions:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return _json({"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)})


async def resource_list(request: web.Request) -> web.Response:
    group = request.match_info.get("group", "")
    version_ = request.match_info["version"]
    types = _cluster(request).registry.in_group_version(group, version_)
    if not types:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    resources = [entry for rt in types for entry in rt.discovery()]
    gv = f"{group}/{version_}" if group else version_
    return _json({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                  "resources": resources})  # fmt: skip


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return _json(exc.status(), exc.code)
    except web.HTTPException as exc:
        if exc.status == 404:
            return _json(ApiError(404, "NotFound", "the server could not find the requested"
                                  " resource").status(), 404)  # fmt: skip
        raise
    except Exception as exc:  # a bug: say so as a Status, log the traceback
        log.exception("internal error on %s %s", request.method, request.path)
        return _json(ApiError(500, "InternalError", f"{type(exc).__name__}: {exc}").status(), 500)


async def openapi_index(request: web.Request) -> web.Response:
    return _json(openapi.index(_cluster(request).registry))


async def openapi_doc(request: web.Request) -> web.Response:
    tail = request.match_info["tail"].split("/")
    group, version_ = (tail[1], tail[2]) if tail[0] == "apis" and len(tail) == 3 else ("", tail[-1])
    doc = openapi.group_version_doc(_cluster(request).registry, group, version_)
    if doc is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return _json(doc)


async def openapi_v2(request: web.Request) -> web.Response:
    return _json(openapi.v2(_cluster(request).registry))


def create_app(store: Store, *, pod_logs: Path | None = None) -> web.Application:
    """The API, with the controllers a cluster runs: the kubelet and Deployments."""
    app = web.Application(middlewares=[_errors], client_max_size=8 * 1024 * 1024)
    cluster = app[CLUSTER] = Cluster(store)
    logs = pod_logs or Path(tempfile.gettempdir()) / "avatar-devcluster-pods"
    kubelet = Kubelet(cluster, log_dir=logs)

    async def controllers(_: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(kubelet.run(), name="kubelet"),
            asyncio.create_task(Deployments(cluster).run(), name="deployments"),
        ]
        yield
        for task in tasks:
            task.cancel()
        await kubelet.stop()

    app.cleanup_ctx.append(controllers)
    app.router.add_get("/", root)
    app.router.add_get("/version", version)
    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, healthz)
    app.router.add_get("/openapi/v3", openapi_index)
    app.router.add_get("/openapi/v3/{tail:.+}", openapi_doc)
    app.router.add_get("/openapi/v2", openapi_v2)
    app.router.add_get("/api", api_versions)
    app.router.add_get("/apis", api_groups)
    app.router.add_get("/api/{version}", resource_list)
    app.router.add_get("/apis/{group}", api_group)
    app.router.add_get("/apis/{group}/{version}", resource_list)
    app.router.add_route("*", "/api/{version}/{tail:.+}", resource)
    app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", resource)
    return app


@contextlib.asynccontextmanager
async def serving(
    store: Store, *, host: str, port: int, pod_logs: Path | None = None
) -> AsyncIterator[web.AppRunner]:
    # handler_cancellation: a watch whose client went away ends at once.
    runner = web.AppRunner(create_app(store, pod_logs=pod_logs), access_log=None,
                           shutdown_timeout=1, handler_cancellation=True)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield runner
    finally:
        await runner.cleanup()
