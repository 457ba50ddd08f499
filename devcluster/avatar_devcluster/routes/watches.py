"""Watches: a collection's changes, streamed as the API server streams them.

A watch starts with the objects that exist (no ``resourceVersion``) or replays
the store's history after the one given (410 Gone once it is older than the
history), then follows live changes until ``timeoutSeconds``. Selectors apply
to every event: an object that leaves the selection is DELETED for the
watcher, one that enters it ADDED. Quiet watches that allow bookmarks get the
current resourceVersion every ``bookmark_seconds``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from avatar_devcluster import tables
from avatar_devcluster.cluster import Cluster, Target
from avatar_devcluster.errors import bad_request, gone
from avatar_devcluster.routes import media, requests
from avatar_devcluster.store import Change

Obj = dict[str, Any]
_BATCH = 1000  # events a watch sends in one write, at most


async def stream(
    request: web.Request, cluster: Cluster, target: Target, *, bookmark_seconds: float
) -> web.StreamResponse:
    rt = target.rt
    matches = requests.matcher(request)
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
    table = media.negotiate(request, media.OBJECT, media.TABLE) == media.TABLE
    since = request.query.get("resourceVersion", "")
    try:
        revision = int(since) if since not in ("", "0") else 0
        timeout = float(request.query.get("timeoutSeconds", "1800"))
    except ValueError:
        raise bad_request("invalid resourceVersion or timeoutSeconds") from None
    watcher = cluster.store.subscribe(lambda change: seen_as(change) is not None)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    include = request.query.get("includeObject", "Metadata")

    def line(kind: str, obj: Obj) -> bytes:
        if table and kind != "ERROR" and kind != "BOOKMARK":
            obj = tables.table(rt, [obj], include_object=include,
                               resource_version=obj["metadata"]["resourceVersion"])  # fmt: skip
        return json.dumps({"type": kind, "object": obj}).encode() + b"\n"

    async def send(kind: str, obj: Obj) -> None:
        await response.write(line(kind, obj))

    async def send_all(events: Iterable[tuple[str, Obj]]) -> None:
        """In writes of up to ``_BATCH`` events: one write each fell behind a burst."""
        lines: list[bytes] = []
        for kind, obj in events:
            lines.append(line(kind, requests.as_version(obj, rt)))
            if len(lines) >= _BATCH:
                await response.write(b"".join(lines))
                lines = []
        if lines:
            await response.write(b"".join(lines))

    try:
        if since in ("", "0"):
            await send_all(
                ("ADDED", obj)
                for obj in cluster.store.objects(rt.group, rt.plural, namespace or None)
                if matches(obj)
            )
        else:
            backlog = cluster.store.history_since(revision)
            if backlog is None:
                expired = gone(f"too old resource version: {revision} ({cluster.store.revision})")
                await send("ERROR", expired.status())
                return response
            await send_all((kind, change.object) for change in backlog if (kind := seen_as(change)))
        bookmarks = request.query.get("allowWatchBookmarks") in ("1", "true")
        deadline = asyncio.get_running_loop().time() + timeout
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            changes: list[Change] = []
            if watcher.queue.empty():
                try:
                    changes.append(
                        await asyncio.wait_for(watcher.queue.get(), min(left, bookmark_seconds))
                    )
                except TimeoutError:
                    if bookmarks:
                        current = str(cluster.store.revision)
                        marker = {"kind": rt.kind, "apiVersion": rt.group_version,
                                  "metadata": {"resourceVersion": current}}  # fmt: skip
                        await send("BOOKMARK", marker)
                    continue
            while not watcher.queue.empty() and len(changes) < _BATCH:
                changes.append(watcher.queue.get_nowait())
            await send_all((kind, c.object) for c in changes if (kind := seen_as(c)))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        cluster.store.unsubscribe(watcher)
    return response
