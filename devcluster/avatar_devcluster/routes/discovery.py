"""What clients ask before anything else: version, health, API groups, resources, OpenAPI.

kubectl and kopf discover the resources a server has before they touch one
(``/api``, ``/apis``, ``/apis/<group>/<version>``), and kubectl reads the
OpenAPI documents before ``apply`` and ``explain``. Everything here is read
from the registry, so a CRD's resources appear as soon as it is stored.
Every answer is JSON (``media.json``: 406 for a client that takes none), and the
OpenAPI v2 document is gnostic's protobuf too: kubectl's validation reads it only so.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from avatar_devcluster import openapi
from avatar_devcluster.errors import ApiError
from avatar_devcluster.routes import media, protobuf, requests

Obj = dict[str, Any]

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


async def root(request: web.Request) -> web.Response:
    paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version",
             "/openapi/v2", "/openapi/v3"]  # fmt: skip
    for group, versions in requests.cluster_of(request).registry.groups().items():
        if group:
            paths += [f"/apis/{group}"] + [f"/apis/{group}/{v}" for v in versions]
    return media.json(request, {"paths": sorted(paths)})


async def version(request: web.Request) -> web.Response:
    return media.json(request, SERVER_VERSION)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def api_versions(request: web.Request) -> web.Response:
    return media.json(
        request, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    )


def _group_doc(group: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


async def api_groups(request: web.Request) -> web.Response:
    groups = [
        _group_doc(group, versions)
        for group, versions in sorted(requests.cluster_of(request).registry.groups().items())
        if group
    ]
    return media.json(request, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})


async def api_group(request: web.Request) -> web.Response:
    group = request.match_info["group"]
    versions = requests.cluster_of(request).registry.groups().get(group)
    if not versions:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return media.json(
        request, {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}
    )


async def resource_list(request: web.Request) -> web.Response:
    group = request.match_info.get("group", "")
    version_ = request.match_info["version"]
    types = requests.cluster_of(request).registry.in_group_version(group, version_)
    if not types:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    resources = [entry for rt in types for entry in rt.discovery()]
    gv = f"{group}/{version_}" if group else version_
    return media.json(request, {"kind": "APIResourceList", "apiVersion": "v1",
                                "groupVersion": gv, "resources": resources})  # fmt: skip


async def openapi_index(request: web.Request) -> web.Response:
    return media.json(request, openapi.index(requests.cluster_of(request).registry))


async def openapi_doc(request: web.Request) -> web.Response:
    tail = request.match_info["tail"].split("/")
    group, version_ = (tail[1], tail[2]) if tail[0] == "apis" and len(tail) == 3 else ("", tail[-1])
    doc = openapi.group_version_doc(requests.cluster_of(request).registry, group, version_)
    if doc is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return media.json(request, doc)


async def openapi_v2(request: web.Request) -> web.Response:
    """``/openapi/v2`` as JSON, or as gnostic's protobuf: kubectl asks for that only."""
    offer = media.negotiate(request, media.OBJECT, media.OPENAPI_V2_PROTOBUF)
    doc = openapi.v2(requests.cluster_of(request).registry)
    if offer == media.OPENAPI_V2_PROTOBUF:
        return web.Response(body=protobuf.encode_openapi_v2(doc), content_type=offer.content_type)
    return web.json_response(doc)
