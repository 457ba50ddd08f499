"""The whole product on this machine, started one way for the demo, the tests and the benchmark.

``LocalSystem`` starts the dev cluster (a process of its own), the CRDs from
``crds/`` and the runtime token Secret; its caller then creates runtime
Deployments or runtime pools (their pods are real ``avatar-runtime serve`` processes
that the dev cluster starts, labelled as on GKE; a pool's Deployment is the operator's
to create and size) and starts the operator (a real ``kopf run``
process), in the order it needs: the benchmark starts the operator only once the
pods are ready, the demo while they load their models. Each caller's needs are
options: CPU pinning (the benchmark measures the operator alone on one core),
detached running (the demo's processes outlive its script; ``stop_detached``
stops exactly them later, by their pid files), a dev cluster in memory only (the
benchmark: writing the state file after every change would be measured too).

Everything lives under ``root``:

- ``kubeconfig``: for kubectl, kopf and the kubernetes client;
- ``buckets/``: ``gs://BUCKET/OBJECT`` is ``buckets/BUCKET/OBJECT``;
- ``logs/devcluster.log``, ``logs/operator.log``;
- ``cluster/state.json`` (the dev cluster's objects), ``cluster/pods/`` (each
  pod's log), ``cluster/verbs.json`` (requests per client, once it stopped);
- ``devcluster.pid``, ``operator.pid``: while they run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml

from avatar_devcluster import controllers, kubeconfig, running, stack
from avatar_devcluster.helm import Helm
from avatar_devcluster.kubectl import Kubectl
from avatar_devcluster.waiting import wait_until
from avatar_operator import settings

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
RUNTIME_NAMESPACE = "default"
RELEASE = "avatar"  # the chart's release, with ``chart``
STOP_SECONDS = 30.0  # SIGTERM, then this long before SIGKILL
# Where the harness creates what it starts (kubectl needs no discovery for these).
_COLLECTIONS = {
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "Secret": "/api/v1/namespaces/{namespace}/secrets",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    settings.POOL_KIND: (
        f"/apis/{settings.GROUP}/{settings.VERSION}/namespaces/{{namespace}}/{settings.POOL_PLURAL}"
    ),
}


@dataclass(frozen=True)
class Pinning:
    """The CPU of each part, as the operator benchmark splits a 2-core machine."""

    operator: int  # kopf run alone
    rest: int  # the dev cluster and the pods it starts (they inherit its affinity)


class Program:
    """One program of the system as a child process, logging to a file, with a pid file."""

    def __init__(
        self,
        *,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        pidfile: Path,
        cpu: int | None = None,
    ) -> None:
        self.argv, self.env, self.cpu = list(argv), dict(env), cpu
        self.log, self.pidfile = log, pidfile
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.argv[0]} was not started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own programs
                self.argv,
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # no terminal's Ctrl-C; detached, it outlives us
                preexec_fn=_pinned(self.cpu),
            )
        self.pidfile.write_text(f"{self.popen.pid}\n")

    def stop(self) -> None:
        """SIGTERM, a clean stop for kopf and for the dev cluster (which stops its pods)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
        self.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, as when a node dies under it."""
        assert self.popen is not None
        self.popen.kill()
        self.popen.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class LocalSystem:
    """The dev cluster with CRDs and token Secret while the block runs; see the module."""

    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        port: int = 0,
        operator_env: Mapping[str, str] | None = None,
        operator_namespaces: Sequence[str] = (),
        operator_profile: Path | None = None,
        pinning: Pinning | None = None,
        in_memory: bool = False,
        detached: bool = False,
        chart: bool = False,
    ) -> None:
        """``token``: shared by the operator and the runtime pods (default: a random one);
        ``port``: the API's (default: a free one); ``operator_env``: more operator
        settings (``AVATAR_OPERATOR_*``); ``operator_profile``: cProfile the operator
        into this file; ``detached``: leaving the block stops nothing; ``chart``: the Helm
        chart installs the CRDs, the token and the operator (``install_chart``), as on GKE,
        and ``operator`` is not used."""
        self.root = root.absolute()
        self.kubeconfig = self.root / "kubeconfig"
        self.buckets = self.root / "buckets"
        self.token = token or secrets.token_urlsafe(24)
        self.detached = detached
        self.port = port or running.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_port = running.free_port()
        self.health_port = running.free_port()
        self.chart = chart
        cluster = self.root / "cluster"
        self._verbs = cluster / "verbs.json"
        self.cluster = Program(
            argv=running.process_command(
                port=self.port,
                state=None if in_memory else cluster / "state.json",
                pod_logs=cluster / "pods",
                verbs=self._verbs,
            ),
            env=os.environ,
            log=self.root / "logs" / "devcluster.log",
            pidfile=self.root / "devcluster.pid",
            cpu=pinning.rest if pinning else None,
        )
        argv = stack.build_operator_command(operator_namespaces)
        if operator_profile is not None:  # the event loop's thread only: kopf and the dispatcher
            argv = [sys.executable, "-m", "cProfile", "-o", str(operator_profile), *argv]
        env = stack.build_operator_env(
            kubeconfig=self.kubeconfig,
            token=self.token,
            metrics_port=self.metrics_port,
            runtime_namespace=RUNTIME_NAMESPACE,
            extra=operator_env,
        )
        self.operator = Program(
            argv=argv,
            env={**os.environ, **env},
            log=self.root / "logs" / "operator.log",
            pidfile=self.root / "operator.pid",
            cpu=pinning.operator if pinning else None,
        )
        self._api: httpx.Client | None = None

    # The block: start on entry; stop on exit unless detached.

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if not self.detached:
            self.stop()

    def start(self) -> None:
        """The dev cluster (a fresh one), the CRDs and the token Secret."""
        shutil.rmtree(self.root / "cluster", ignore_errors=True)
        self.buckets.mkdir(parents=True, exist_ok=True)
        kubeconfig.write(self.kubeconfig, server=self.url)
        self._api = httpx.Client(base_url=self.url, timeout=60)
        self.cluster.start()
        try:
            wait_until(self._cluster_up, timeout=60, every=0.1, what=f"the API at {self.url}")
            if not self.chart:
                for path in sorted(CRDS.glob("*.yaml")):
                    self.create(*(d for d in yaml.safe_load_all(path.read_text()) if d))
                self.create(stack.build_token_secret(self.token, namespace=RUNTIME_NAMESPACE))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """The operator, then the dev cluster, which stops the runtime pods first."""
        self.operator.stop()
        self.cluster.stop()
        if self._api is not None:
            self._api.close()
            self._api = None

    @staticmethod
    def stop_detached(root: Path) -> list[str]:
        """Stop what a detached system under ``root`` left running; the names it stopped."""
        stopped = []
        for name in ("operator", "devcluster"):
            pidfile = root / f"{name}.pid"
            if not pidfile.exists():
                continue
            pid = int(pidfile.read_text())
            pidfile.unlink()
            if _terminate(pid):
                stopped.append(name)
        return stopped

    def _cluster_up(self) -> bool:
        if not self.cluster.running():
            raise RuntimeError(f"the dev cluster exited:\n{self.cluster.log_text()[-3000:]}")
        try:
            return self.api.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    # Objects.

    @property
    def api(self) -> httpx.Client:
        """An HTTP client of the dev cluster's API (``base_url`` set) while it runs."""
        assert self._api is not None, "the system is not running"
        return self._api

    def create(self, *manifests: Mapping[str, Any]) -> None:
        """Create CRDs, Secrets, Deployments or AvatarRuntimePools (``stack``'s)."""
        for manifest in manifests:
            namespace = manifest["metadata"].get("namespace", "default")
            path = _COLLECTIONS[manifest["kind"]].format(namespace=namespace)
            self.api.post(path, json=manifest).raise_for_status()

    @property
    def helm(self) -> Helm:
        """The real helm, pointed at this system (its own configuration under ``root``)."""
        return Helm(self.kubeconfig, home=self.root / "helm")

    def install_chart(
        self,
        *,
        release: str = RELEASE,
        pool: Mapping[str, Any] | None = None,
        operator_settings: Mapping[str, Mapping[str, Any]] | None = None,
        upgrade: bool = False,
        extra_args: Sequence[str] = (),
    ) -> str:
        """``helm install`` (or ``upgrade``) of charts/avatar-video with the dev cluster's
        overlay, into the runtime namespace; helm's output (the chart's NOTES)."""
        values = stack.build_chart_values(
            buckets=self.buckets,
            metrics_port=self.metrics_port,
            health_port=self.health_port,
            pool=pool,
            operator_settings=operator_settings,
        )
        path = self.root / "chart-values.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False))
        verb = ["upgrade"] if upgrade else ["install"]
        return self.helm(
            *verb, release, str(stack.CHART), "--namespace", RUNTIME_NAMESPACE,
            "-f", str(stack.CHART_VALUES), "-f", str(path), *extra_args,
        )  # fmt: skip

    def operator_pods(self) -> list[dict[str, Any]]:
        """The chart's operator pods (``chart``): one, or none while it is replaced."""
        answer = self.api.get(
            f"/api/v1/namespaces/{RUNTIME_NAMESPACE}/pods",
            params={"labelSelector": "app.kubernetes.io/component=operator"},
        )
        pods: list[dict[str, Any]] = answer.raise_for_status().json()["items"]
        return pods

    @property
    def kubectl(self) -> Kubectl:
        """The real kubectl, pointed at this system."""
        return Kubectl(self.kubeconfig)

    def apply(self, *manifests: str | Mapping[str, Any]) -> None:
        """``kubectl apply`` of manifests, as YAML text or as dicts."""
        docs = [yaml.safe_load(m) if isinstance(m, str) else dict(m) for m in manifests]
        self.kubectl.apply(yaml.safe_dump_all(docs))

    def local(self, url: str) -> Path:
        """Where a gs:// URL lives on this machine."""
        assert url.startswith("gs://"), url
        return self.buckets / url.removeprefix("gs://")

    # Runtime pods and the operator.

    def runtime_pods(self, *, ready: bool = True) -> list[dict[str, Any]]:
        """The pods the operator dispatches to: those with the pool label."""
        answer = self.api.get(
            f"/api/v1/namespaces/{RUNTIME_NAMESPACE}/pods",
            params={"labelSelector": settings.POOL_LABEL},
        )
        pods: list[dict[str, Any]] = answer.raise_for_status().json()["items"]
        return [p for p in pods if controllers.pod_ready(p)] if ready else pods

    def wait_for_runtime_pods(self, count: int, *, timeout: float = 180) -> list[dict[str, Any]]:
        """At least ``count`` ready runtime pods (the runtime loads its models first)."""
        pods: list[dict[str, Any]] = wait_until(
            lambda: (p := self.runtime_pods()) and len(p) >= count and p,
            timeout=timeout,
            every=0.25,
            what=f"{count} ready runtime pods (their logs: {self.root / 'cluster' / 'pods'})",
        )
        return pods

    @staticmethod
    def pod_pid(pod: Mapping[str, Any]) -> int:
        """The process of a pod the dev cluster runs (its container ID is process://PID)."""
        container_id = pod["status"]["containerStatuses"][0]["containerID"]
        return int(str(container_id).removeprefix("process://"))

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def operator_metrics(self) -> str:
        """The operator's Prometheus metrics, as text."""
        return httpx.get(self.metrics_url, timeout=5).raise_for_status().text

    def client_verbs(self) -> list[dict[str, Any]]:
        """Requests per client, verb and resource, once the dev cluster has stopped."""
        rows: list[dict[str, Any]] = (
            json.loads(self._verbs.read_text()) if self._verbs.exists() else []
        )
        return rows


def _terminate(pid: int) -> bool:
    """SIGTERM a process that is not our child; SIGKILL past ``STOP_SECONDS``. False: gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        wait_until(gone, timeout=STOP_SECONDS, what=f"process {pid} to stop")
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def _pinned(cpu: int | None) -> Callable[[], None] | None:
    """What a child runs before exec to stay on ``cpu``: affinity only, no locks taken."""
    if cpu is None:
        return None
    chosen = cpu

    def pin() -> None:
        os.sched_setaffinity(0, {chosen})

    return pin
