"""The dev cluster's HTTP server, on aiohttp: routes, errors as Status, the controllers.

Why not kmock's ``KubernetesEmulator``: kmock is a mocking DSL (``kmock['/path'] <<
payload``) for scripted answers in tests, and an API server that the real
kubectl and kopf can live with needs the opposite: a store with one
resourceVersion counter, watch history, admission, metadata rules. Each of
those is a small module here (``store``, ``metadata``, ``admission``,
``patching``, ``tables``, ``selectors``), the rules of a write are
``cluster``'s, the HTTP side of each area of the API is a module of
``routes``; this module puts the routes on one server, turns errors into
``Status`` answers and runs the controllers (the kubelet, Deployments) beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from avatar_devcluster.cluster import Cluster
from avatar_devcluster.controllers import Deployments
from avatar_devcluster.errors import ApiError
from avatar_devcluster.kubelet import Kubelet
from avatar_devcluster.routes import discovery, objects, requests, watches
from avatar_devcluster.store import Store

log = logging.getLogger(__name__)

# Re-exported: the benchmarks read the client verbs of the cluster a runner serves.
CLUSTER = requests.CLUSTER

# How long a watch that allows bookmarks stays quiet before it gets one. Read on every
# watch, so a test running the server in its own process can shorten it.
_BOOKMARK_SECONDS = 5.0


async def _resource(request: web.Request) -> web.StreamResponse:
    """Any URL of an object or a collection: a watch streams, the rest is one answer."""
    cluster = requests.cluster_of(request)
    target = requests.target(request, cluster)
    if request.method == "GET" and not target.name and requests.watching(request):
        requests.note(
            request,
            verb="watch",
            target=target.rt.plural,
            namespace=target.namespace,
            group=target.rt.group,
        )
        return await watches.stream(request, cluster, target, bookmark_seconds=_BOOKMARK_SECONDS)
    return await objects.answer(request, cluster, target)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return web.json_response(exc.status(), status=exc.code)
    except web.HTTPException as exc:
        if exc.status == 404:
            missing = ApiError(404, "NotFound", "the server could not find the requested resource")
            return web.json_response(missing.status(), status=404)
        raise
    except Exception as exc:  # a bug: say so as a Status, log the traceback
        log.exception("internal error on %s %s", request.method, request.path)
        internal = ApiError(500, "InternalError", f"{type(exc).__name__}: {exc}")
        return web.json_response(internal.status(), status=500)


def create_app(
    store: Store, *, pod_logs: Path | None = None, server: str | None = None
) -> web.Application:
    """The API, with the controllers a cluster runs: the kubelet and Deployments.

    ``server``: the API's own URL, which pods that talk to the API are given."""
    app = web.Application(middlewares=[_errors], client_max_size=8 * 1024 * 1024)
    cluster = app[CLUSTER] = Cluster(store)
    logs = pod_logs or Path(tempfile.gettempdir()) / "avatar-devcluster-pods"
    kubelet = Kubelet(cluster, log_dir=logs, server=server)

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
    app.router.add_get("/", discovery.root)
    app.router.add_get("/version", discovery.version)
    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, discovery.healthz)
    app.router.add_get("/openapi/v3", discovery.openapi_index)
    app.router.add_get("/openapi/v3/{tail:.+}", discovery.openapi_doc)
    app.router.add_get("/openapi/v2", discovery.openapi_v2)
    app.router.add_get("/api", discovery.api_versions)
    app.router.add_get("/apis", discovery.api_groups)
    app.router.add_get("/api/{version}", discovery.resource_list)
    app.router.add_get("/apis/{group}", discovery.api_group)
    app.router.add_get("/apis/{group}/{version}", discovery.resource_list)
    app.router.add_route("*", "/api/{version}/{tail:.+}", _resource)
    app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", _resource)
    return app


@contextlib.asynccontextmanager
async def serving(
    store: Store, *, host: str, port: int, pod_logs: Path | None = None
) -> AsyncIterator[web.AppRunner]:
    # handler_cancellation: a watch whose client went away ends at once.
    server = f"http://{host}:{port}" if port else None
    runner = web.AppRunner(create_app(store, pod_logs=pod_logs, server=server), access_log=None,
                           shutdown_timeout=1, handler_cancellation=True)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield runner
    finally:
        await runner.cleanup()
