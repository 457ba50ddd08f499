"""The operator's own Kubernetes API calls: status writes, TTL deletes, pod lookups.

kopf writes what its handlers return; the dispatcher's background work (a job
finishing long after its handler returned) writes through the official
``kubernetes`` client instead, on a small thread pool so the event loop never
blocks. Status goes through the status subresource as a JSON merge patch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import socket
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from avatar_operator.resource import Ref, format_time
from avatar_operator.settings import GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)


def _transient(exc: BaseException) -> bool:
    """Worth another try: the API server was busy, restarting, or briefly unreachable."""
    if isinstance(exc, ApiException):
        return exc.status in (429, 500, 502, 503, 504) or exc.status == 0
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError)


def load_config() -> None:
    """In a pod, the service account; elsewhere, the kubeconfig (``$KUBECONFIG``)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


class Kube:
    def __init__(self, *, workers: int) -> None:
        config = kubernetes.client.Configuration.get_default_copy()
        config.connection_pool_maxsize = workers
        self._api = kubernetes.client.ApiClient(config)
        self._objects = kubernetes.client.CustomObjectsApi(self._api)
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_transient),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_attempt(6),
            reraise=True,
        ):
            with attempt:
                return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        raise AssertionError("unreachable")  # AsyncRetrying either returns or raises

    async def patch_status(self, ref: Ref, status: dict[str, Any]) -> bool:
        """Merge ``status`` into the resource's status; False when the resource is gone."""
        try:
            await self._run(
                self._objects.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                {"status": status},
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
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        created = await self._run(self._core.create_namespaced_event, ref.namespace, body)
        name: str = created.metadata.name
        return name

    async def repeat_event(self, ref: Ref, *, name: str, count: int, message: str) -> bool:
        """Count one more of an Event posted before; False when it is gone (expired)."""
        patch = {
            "count": count,
            "message": message[:1024],
            "lastTimestamp": format_time(dt.datetime.now(dt.UTC)),
        }
        try:
            await self._run(self._core.patch_namespaced_event, name, ref.namespace, patch)
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
