"""The operator's own Kubernetes API calls: status writes, TTL deletes, pods, pools' Deployments.

kopf writes what its handlers return; the dispatcher's background work (a job
finishing long after its handler returned) writes through the official
``kubernetes`` client instead, on a small thread pool so the event loop never
blocks. Status goes through the status subresource as a JSON merge patch; so do the
scaling loop's writes (a pool's Deployments, its pods' annotations, its status), which
change only the fields they name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import logging
import socket
from typing import Any

import aiohttp
import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from avatar_operator.kube_http import KubeHttp
from avatar_operator.resource import Ref, format_time
from avatar_operator.settings import GROUP, KIND, PLURAL, POOL_PLURAL, VERSION

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"

# Once: a system call each time, which in a sandboxed pod costs ~0.6 ms of the event loop.
_HOSTNAME = socket.gethostname()


def _transient(exc: BaseException) -> bool:
    """Worth another try: the API server was busy, restarting, or briefly unreachable."""
    if isinstance(exc, ApiException):
        return exc.status in (429, 500, 502, 503, 504) or exc.status == 0
    return isinstance(
        exc,
        urllib3.exceptions.HTTPError
        | ConnectionError
        | aiohttp.ClientConnectionError
        | aiohttp.ClientPayloadError
        | TimeoutError,
    )


def _retrying() -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(_transient),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_attempt(6),
        reraise=True,
    )


class RefusedError(Exception):
    """The API server refused a write for good (invalid, forbidden, a name taken).

    ``message`` is the API server's own (its Status ``message``), which says which
    field or rule; the scaling loop shows it in the pool's status.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _refused(exc: ApiException) -> RefusedError:
    try:
        message = str(json.loads(exc.body or "{}").get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    return RefusedError(int(exc.status or 0), message or str(exc.reason or exc))


def load_config() -> None:
    """In a pod, the service account; elsewhere, the kubeconfig (``$KUBECONFIG``)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


class Kube:
    """Two lanes: the bulk (Queued writes, positions, progress, Events, the pools) and
    the urgent (what a dispatch waits on), so that a backlog of thousands queued in the
    bulk lane never stands between a free slot and its job. Status writes and Events go
    over aiohttp on the event loop (``kube_http``: a connection pool per lane); the rest
    through the official client on a thread pool per lane."""

    def __init__(
        self,
        *,
        workers: int,
        urgent_workers: int = 2,
        config: kubernetes.client.Configuration | None = None,
    ) -> None:
        """``config``: what ``load_config`` set as the default, unless given."""
        config = config or kubernetes.client.Configuration.get_default_copy()
        config.connection_pool_maxsize = workers + urgent_workers
        self._api = kubernetes.client.ApiClient(config)
        self._objects = kubernetes.client.CustomObjectsApi(self._api)
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._apps = kubernetes.client.AppsV1Api(self._api)
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kube")
        self._urgent = concurrent.futures.ThreadPoolExecutor(
            urgent_workers, thread_name_prefix="kube-urgent"
        )
        self._writes = KubeHttp(config, limit=workers)
        self._urgent_writes = KubeHttp(config, limit=urgent_workers)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._urgent.shutdown(wait=False, cancel_futures=True)
        self._api.close()
        await self._writes.close()
        await self._urgent_writes.close()

    async def _send(self, method: str, path: str, body: Any, *, urgent: bool = False) -> Any:
        http = self._urgent_writes if urgent else self._writes
        content_type = MERGE_PATCH if method == "PATCH" else "application/json"
        async for attempt in _retrying():
            with attempt:
                return await http.send(method, path, body, content_type=content_type)
        raise AssertionError("unreachable")  # AsyncRetrying either returns or raises

    async def _run(self, fn: Any, *args: Any, _urgent: bool = False, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        pool = self._urgent if _urgent else self._pool
        async for attempt in _retrying():
            with attempt:
                return await loop.run_in_executor(pool, lambda: fn(*args, **kwargs))
        raise AssertionError("unreachable")  # AsyncRetrying either returns or raises

    async def patch_status(self, ref: Ref, status: dict[str, Any], *, urgent: bool = False) -> bool:
        """Merge ``status`` into the resource's status; False when the resource is gone."""
        try:
            await self._send(
                "PATCH",
                f"/apis/{GROUP}/{VERSION}/namespaces/{ref.namespace}/{PLURAL}/{ref.name}/status",
                {"status": status},
                urgent=urgent,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def event(self, ref: Ref, *, type_: str, reason: str, message: str) -> str:
        """A core/v1 Event on the resource (what ``kubectl describe`` lists); its name."""
        now = format_time(dt.datetime.now(dt.UTC))
        body = {
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                **ref.body()["metadata"],
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "avatar-operator"},
            "reportingComponent": "avatar.dev/operator",
            "reportingInstance": _HOSTNAME,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        created = await self._send("POST", f"/api/v1/namespaces/{ref.namespace}/events", body)
        return str(created["metadata"]["name"])

    async def repeat_event(self, ref: Ref, *, name: str, count: int, message: str) -> bool:
        """Count one more of an Event posted before; False when it is gone (expired)."""
        patch = {
            "count": count,
            "message": message[:1024],
            "lastTimestamp": format_time(dt.datetime.now(dt.UTC)),
        }
        try:
            await self._send("PATCH", f"/api/v1/namespaces/{ref.namespace}/events/{name}", patch)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def delete(self, ref: Ref) -> None:
        try:
            await self._run(
                self._objects.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                body=kubernetes.client.V1DeleteOptions(
                    preconditions=kubernetes.client.V1Preconditions(uid=ref.uid)
                ),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # already gone, or a new object of the same name
                raise

    async def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod as a plain dict (as kopf's watch delivers it), or None if it does not exist."""
        try:
            pod = await self._run(self._core.read_namespaced_pod, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = self._api.sanitize_for_serialization(pod)
        return result

    # The pools' side: Deployments, pods' annotations, the pool's status.

    def _plain(self, obj: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return result

    async def deployments(self, namespace: str, *, selector: str) -> list[dict[str, Any]]:
        found = await self._run(
            self._apps.list_namespaced_deployment, namespace, label_selector=selector
        )
        return [self._plain(d) for d in found.items]

    async def create_deployment(self, namespace: str, body: dict[str, Any]) -> None:
        """Create a Deployment; ``RefusedError`` when the API server will not (invalid, taken)."""
        try:
            await self._run(self._apps.create_namespaced_deployment, namespace, body)
        except ApiException as exc:
            if _transient(exc):
                raise
            raise _refused(exc) from exc

    async def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self._run(
            self._apps.patch_namespaced_deployment,
            name,
            namespace,
            patch,
            _content_type=MERGE_PATCH,
        )

    async def replace_template(
        self, namespace: str, name: str, *, template: dict[str, Any], annotation: tuple[str, str]
    ) -> None:
        """Replace a Deployment's pod template whole (a merge patch would keep removed keys);
        ``RefusedError`` when the API server will not."""
        key = annotation[0].replace("~", "~0").replace("/", "~1")
        operations = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "add", "path": f"/metadata/annotations/{key}", "value": annotation[1]},
        ]
        try:
            await self._run(
                self._apps.patch_namespaced_deployment,
                name,
                namespace,
                operations,
                _content_type="application/json-patch+json",
            )
        except ApiException as exc:
            if _transient(exc):
                raise
            raise _refused(exc) from exc

    async def delete_deployment(self, namespace: str, name: str) -> None:
        try:
            await self._run(self._apps.delete_namespaced_deployment, name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def annotate_pod(
        self, namespace: str, name: str, annotations: dict[str, str | None]
    ) -> bool:
        """Set (a value) or remove (None) annotations of a pod; False when it is gone."""
        try:
            await self._run(
                self._core.patch_namespaced_pod,
                name,
                namespace,
                {"metadata": {"annotations": annotations}},
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def patch_pool_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Merge ``status`` into an AvatarRuntimePool's status; False when the pool is gone."""
        try:
            await self._run(
                self._objects.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                POOL_PLURAL,
                name,
                {"status": status},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
