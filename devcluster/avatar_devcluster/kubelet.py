"""Pods as local processes: the kubelet's part, for pods that opt in.

A pod whose annotation ``devcluster.avatar.dev/process: "true"`` is set runs its
first container's command and args as a process on this machine, with the
container's env (values, downward-API ``fieldRef``, Secret and ConfigMap keys)
and ``$(VAR)`` expansion as Kubernetes does. Each pod gets its own loopback
address (127.0.x.y) as ``status.podIP``, so replicas listen on the same port
side by side, as on GKE; an address where one of the container's ports is taken
already (another dev cluster on the same machine, a benchmark's stand-in pods) is
skipped, as no pod IP of a real cluster is ever in use twice. Readiness comes from
the container's HTTP readiness probe, the phase from the process; deleting the pod
sends SIGTERM, then SIGKILL after the grace period, and the object goes once the
process has ended.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

from avatar_devcluster import metadata, mounts
from avatar_devcluster.cluster import Cluster, Target
from avatar_devcluster.store import Change, Key

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ANNOTATION = "devcluster.avatar.dev/process"
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_PROBE_SECONDS = 0.5


def wants_process(pod: Obj) -> bool:
    annotations = pod.get("metadata", {}).get("annotations") or {}
    return str(annotations.get(ANNOTATION, "")).lower() == "true"


def _free(address: str, port: int) -> bool:
    """Whether nothing listens on ``address:port`` yet (a bind there would succeed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def expand(text: str, env: dict[str, str]) -> str:
    """``$(VAR)`` from the container's env; unknown references stay as written."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


class Kubelet:
    def __init__(self, cluster: Cluster, *, log_dir: Path, server: str | None = None) -> None:
        """``server``: the API's URL, for pods that mount their service account's token."""
        self.cluster = cluster
        self.log_dir = log_dir
        self.server = server
        self._processes: dict[Key, asyncio.subprocess.Process] = {}
        self._terminating: set[Key] = set()
        self._addresses: dict[Key, str] = {}
        self._next_address = 2

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        watcher = self.cluster.store.subscribe(lambda c: (c.group, c.plural) == ("", "pods"))
        try:
            for pod in self.cluster.store.objects("", "pods"):
                await self._sync(pod)
            while True:
                change: Change = await watcher.queue.get()
                if change.type != "DELETED":
                    await self._sync(change.object)
        finally:
            self.cluster.store.unsubscribe(watcher)

    async def stop(self) -> None:
        """The dev cluster is stopping: end every process (they restart with it)."""
        for key in list(self._processes):
            await self._terminate(key, grace=5.0, remove=False)

    def _key(self, pod: Obj) -> Key:
        meta = pod["metadata"]
        return ("", "pods", meta.get("namespace", ""), meta["name"])

    async def _sync(self, pod: Obj) -> None:
        if not wants_process(pod):
            return
        key = self._key(pod)
        if pod["metadata"].get("deletionTimestamp"):
            if key in self._processes and key not in self._terminating:
                # Once: every later change to the deleting pod (its readiness, say) must
                # not signal again, as a second SIGTERM means "stop now" to many servers.
                self._terminating.add(key)
                grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 30)
                asyncio.get_running_loop().create_task(self._terminate(key, grace=grace))
            elif key in self.cluster.held:
                self.cluster.remove(key)
            return
        phase = (pod.get("status") or {}).get("phase")
        if key not in self._processes and phase in (None, "Pending", "Running"):
            await self._start(key, pod)

    # -- starting ---------------------------------------------------------------------------

    def _address(self, key: Key, ports: list[int]) -> str:
        """The pod's loopback address: the next one where none of its ports is taken."""
        if key not in self._addresses:
            for _ in range(1000):
                n = self._next_address
                self._next_address += 1
                address = f"127.0.{n // 250}.{n % 250 + 1}"
                if all(_free(address, port) for port in ports):
                    break
                log.info("pod %s/%s: %s has a port taken, skipping it", key[2], key[3], address)
            self._addresses[key] = address
        return self._addresses[key]

    def _env(
        self, pod: Obj, container: Obj, address: str, volumes: dict[str, Path]
    ) -> dict[str, str]:
        meta = pod["metadata"]
        fields = {
            "status.podIP": address,
            "status.hostIP": "127.0.0.1",
            "metadata.name": meta["name"],
            "metadata.namespace": meta.get("namespace", ""),
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": "devcluster",
        }
        env = dict(os.environ)  # PATH and the virtualenv come from the dev cluster's own
        # The node's "image" is the dev cluster's virtualenv: `kopf`, `avatar-runtime` resolve.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.pop("KUBECONFIG", None)
        config = mounts.service_account_kubeconfig(pod, self.log_dir.parent / "accounts",
                                                   self.server)  # fmt: skip
        if config is not None:
            env["KUBECONFIG"] = str(config)
        for item in container.get("env") or []:
            name, source = item["name"], item.get("valueFrom") or {}
            if "value" in item:
                env[name] = mounts.mapped(expand(str(item["value"]), env), volumes)
            elif "fieldRef" in source:
                env[name] = fields.get(source["fieldRef"].get("fieldPath", ""), "")
            elif "secretKeyRef" in source or "configMapKeyRef" in source:
                value = self._key_ref(meta.get("namespace", ""), source)
                if value is not None:
                    env[name] = value
        return env

    def _key_ref(self, namespace: str, source: Obj) -> str | None:
        secret = "secretKeyRef" in source
        ref = source["secretKeyRef" if secret else "configMapKeyRef"]
        plural = "secrets" if secret else "configmaps"
        obj = self.cluster.store.get(("", plural, namespace, ref.get("name", "")))
        if obj is None:
            return None
        if secret and ref.get("key") in (obj.get("data") or {}):
            return base64.b64decode(obj["data"][ref["key"]]).decode()
        value = (obj.get("stringData") or obj.get("data") or {}).get(ref.get("key"))
        return None if value is None else str(value)

    async def _start(self, key: Key, pod: Obj) -> None:
        containers = (pod.get("spec") or {}).get("containers") or []
        if not containers:
            return
        container = containers[0]
        ports = [int(p["containerPort"]) for p in container.get("ports") or []
                 if str(p.get("containerPort", "")).isdigit()]  # fmt: skip
        address = self._address(key, ports)
        volumes = mounts.volumes(
            self.cluster.store, pod, container, self.log_dir.parent / "volumes"
        )
        env = self._env(pod, container, address, volumes)
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        argv = [mounts.mapped(expand(str(a), env), volumes) for a in words]
        if not argv:
            await self._set_status(key, phase="Failed", address=address, ready=False,
                                   reason="the container has no command")  # fmt: skip
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{key[2]}_{key[3]}.log"
        try:
            with log_path.open("ab") as output:
                process = await asyncio.create_subprocess_exec(
                    *argv, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
        except OSError as exc:
            await self._set_status(key, phase="Failed", address=address, ready=False,
                                   reason=f"cannot start: {exc}")  # fmt: skip
            return
        self._processes[key] = process
        self.cluster.held.add(key)
        log.info("pod %s/%s: started pid %d on %s", key[2], key[3], process.pid, address)
        await self._set_status(key, phase="Running", address=address, ready=False, pid=process.pid)
        asyncio.get_running_loop().create_task(self._supervise(key, process, container, address))

    # -- running ----------------------------------------------------------------------------

    async def _supervise(
        self, key: Key, process: asyncio.subprocess.Process, container: Obj, address: str
    ) -> None:
        probe = ((container.get("readinessProbe") or {}).get("httpGet")) or None
        ready = probe is None
        if ready:
            await self._set_status(
                key, phase="Running", address=address, ready=True, pid=process.pid
            )
        while process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), _PROBE_SECONDS)
            if process.returncode is not None or probe is None:
                continue
            now_ready = await asyncio.to_thread(_http_ok, address, probe, container)
            if now_ready != ready:
                ready = now_ready
                await self._set_status(
                    key, phase="Running", address=address, ready=ready, pid=process.pid
                )
        code = process.returncode
        if self._processes.get(key) is process:
            del self._processes[key]
        log.info("pod %s/%s: process exited with %s", key[2], key[3], code)
        phase = "Succeeded" if code == 0 else "Failed"
        await self._set_status(key, phase=phase, address=address, ready=False)
        pod = self.cluster.store.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self.cluster.remove(key)
        else:
            self.cluster.held.discard(key)

    async def _terminate(self, key: Key, *, grace: float, remove: bool = True) -> None:
        process = self._processes.get(key)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        if not remove:
            self._processes.pop(key, None)
        self._terminating.discard(key)

    async def _set_status(
        self,
        key: Key,
        *,
        phase: str,
        address: str,
        ready: bool,
        reason: str = "",
        pid: int | None = None,
    ) -> None:
        """Write the pod's status; ``pid`` of a running process becomes its container id.

        Kubernetes names a container ``<runtime>://<id>``; here ``process://<pid>``,
        so tests (and people) can find, signal or kill a pod's process.
        """
        pod = self.cluster.store.get(key)
        if pod is None:
            return
        status = dict(pod.get("status") or {})
        status.update(phase=phase, podIP=address, podIPs=[{"ip": address}], hostIP="127.0.0.1")
        status.setdefault("startTime", metadata.now())
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        running = phase == "Running"
        status["containerStatuses"] = [
            {"name": name, "ready": ready and running, "started": running, "restartCount": 0,
             "image": c.get("image", ""), "imageID": "",
             "state": {"running": {"startedAt": status["startTime"]}} if running
             else {"terminated": {"reason": reason or phase}}}
            for name, c in zip(names, (pod.get("spec") or {}).get("containers") or [], strict=True)
        ]  # fmt: skip
        if running and pid is not None and status["containerStatuses"]:
            status["containerStatuses"][0]["containerID"] = f"process://{pid}"
        status["conditions"] = [
            {"type": t, "status": "True" if ok else "False", "lastTransitionTime": metadata.now()}
            for t, ok in (("PodScheduled", True), ("Initialized", True),
                          ("ContainersReady", ready and running), ("Ready", ready and running))
        ]  # fmt: skip
        if reason:
            status["message"] = reason
        pod["status"] = status
        rt = self.cluster.registry.get("", "v1", "pods")
        assert rt is not None
        target = Target(rt=rt, namespace=key[2], name=key[3], subresource="status")
        pod["metadata"].pop("resourceVersion", None)
        self.cluster.update(target, pod)


def _http_ok(address: str, probe: Obj, container: Obj) -> bool:
    port = probe.get("port")
    if isinstance(port, str):  # a named port
        named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        port = named.get(port, port)
    url = f"http://{address}:{port}{probe.get('path', '/')}"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= int(response.status) < 400
    except OSError:
        return False
