"""The whole system for end-to-end tests: dev cluster, CRDs, runtime pods, operator.

Everything is real except what cannot run here (GKE, an L4, GCS): the API is
the project's dev cluster over HTTP, the runtime pods are real
``avatar-runtime serve`` processes started by it from a Deployment, the
operator is a real ``kopf run`` process, and kubectl is the real one. gs:// is
a local directory (``buckets``), which the runtime is told through its setting.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from avatar_devcluster import running, stack
from tests.devcluster.conftest import Kubectl

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
SHORT_TEXT = "Hi there, nice to meet you."
LONG_TEXT = (
    "This video takes a while. It talks about the weather, the news, and the plans for the"
    " weekend, and then it talks some more, so that there is time to look at it while it"
    " renders, to cancel it, or to stop something in the middle of it. Then it says goodbye,"
    " and thanks everybody for watching until the very end of this rather long message."
)
# About 2 minutes of speech: long enough to delete, expire or kill mid-render.
VERY_LONG_TEXT = " ".join([LONG_TEXT] * 7)
TOKEN = "e2e-token"  # a shared secret for tests only


def wait_until(check: Callable[[], Any], *, timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Operator:
    kubeconfig: Path
    log: Path
    metrics_port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = stack.operator_env(
            kubeconfig=self.kubeconfig,
            token=TOKEN,
            metrics_port=self.metrics_port,
            extra=self.env,
        )
        self.process = subprocess.Popen(
            stack.operator_command(),
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, as when a node dies under it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text: str = answer.read().decode()
            return text


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@dataclass
class System:
    root: Path
    cluster: running.Running
    kubectl: Kubectl
    buckets: Path
    operator: Operator

    # -- resources --------------------------------------------------------------------------

    def apply(self, *manifests: str | dict[str, Any]) -> None:
        docs = [yaml.safe_load(m) if isinstance(m, str) else m for m in manifests]
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    @staticmethod
    def video(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
        body = {
            "portrait": "gs://demo/portrait.png",
            "output": f"gs://demo/out/{namespace}/{name}/",
            "resolution": 256,
        }
        body.update(spec)
        if "audio" not in body:
            body.setdefault("text", SHORT_TEXT)
        return {
            "apiVersion": "avatar.dev/v1alpha1",
            "kind": "AvatarVideo",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        }

    def get(self, name: str, namespace: str = "default") -> dict[str, Any]:
        out = self.kubectl("get", "avatarvideo", name, "-n", namespace, "-o", "json").stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def all(self, namespace: str | None = None) -> list[dict[str, Any]]:
        scope = ["-n", namespace] if namespace else ["-A"]
        out = self.kubectl("get", "avatarvideos", *scope, "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def wait_phase(
        self, name: str, phases: Iterable[str], *, namespace: str = "default", timeout: float = 90
    ) -> dict[str, Any]:
        wanted = set(phases)

        def reached() -> dict[str, Any] | None:
            obj = self.get(name, namespace)
            return obj if (obj.get("status") or {}).get("phase") in wanted else None

        try:
            result: dict[str, Any] = wait_until(reached, timeout=timeout, what=f"{name} {wanted}")
        except AssertionError:
            raise AssertionError(
                f"{namespace}/{name} not {wanted}: {self.get(name, namespace).get('status')}\n"
                f"operator log tail:\n{self.operator_log()[-3000:]}"
            ) from None
        return result

    def events(self, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        out = self.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return [
            e
            for e in json.loads(out)["items"]
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    def operator_log(self) -> str:
        return self.operator.log.read_text(errors="replace") if self.operator.log.exists() else ""

    def local(self, url: str) -> Path:
        """Where a gs:// URL lives on this machine."""
        assert url.startswith("gs://"), url
        return self.buckets / url.removeprefix("gs://")

    # -- runtime pods ------------------------------------------------------------------------

    def runtime_pods(self, *, ready: bool = True) -> list[dict[str, Any]]:
        out = self.kubectl("get", "pods", "-l", stack.POOL_LABEL, "-o", "json").stdout
        pods: list[dict[str, Any]] = json.loads(out)["items"]
        if ready:
            pods = [p for p in pods if stack.pod_ready(p)]
        return pods

    def wait_runtime_pods(self, count: int, timeout: float = 180) -> list[dict[str, Any]]:
        pods: list[dict[str, Any]] = wait_until(
            lambda: (p := self.runtime_pods()) and len(p) >= count and p,
            timeout=timeout,
            what=f"{count} ready runtime pods",
        )
        return pods

    @staticmethod
    def runtime_url(pod: dict[str, Any]) -> str:
        return f"http://{pod['status']['podIP']}:8080"

    def runtime(self, pod: dict[str, Any]) -> httpx.Client:
        return httpx.Client(
            base_url=self.runtime_url(pod),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )

    def pod_named(self, name: str) -> dict[str, Any]:
        out = self.kubectl("get", "pod", name, "-o", "json").stdout
        pod: dict[str, Any] = json.loads(out)
        return pod

    @staticmethod
    def pid(pod: dict[str, Any]) -> int:
        container_id = pod["status"]["containerStatuses"][0]["containerID"]
        return int(str(container_id).removeprefix("process://"))

    def runtime_jobs_total(self) -> float:
        """Renders started across all ready runtime pods (their own counters)."""
        total = 0.0
        for pod in self.runtime_pods():
            text = httpx.get(f"{self.runtime_url(pod)}/metrics", timeout=5).text
            for outcome in ("succeeded", "failed", "cancelled", "interrupted"):
                total += metric(text, "avatar_runtime_jobs_total", f'outcome="{outcome}"')
        return total


def write_portraits(buckets: Path) -> None:
    from PIL import Image
    from skimage import data

    demo = buckets / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).resize((256, 256)).save(demo / "portrait.png")
    Image.new("RGB", (256, 256), (128, 128, 128)).save(demo / "blank.png")  # no face


def start_system(
    root: Path,
    *,
    deployments: Iterable[str],
    operator_env: dict[str, str] | None = None,
) -> tuple[System, Callable[[], None]]:
    """Bring everything up; returns the system and a function that takes it down."""
    buckets = root / "buckets"
    write_portraits(buckets)
    state = root / "cluster" / "state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    context = running.in_thread(kubeconfig_path=root / "kubeconfig", state=state)
    cluster = context.__enter__()
    kubectl = Kubectl(cluster.kubeconfig, root)
    operator = Operator(
        kubeconfig=cluster.kubeconfig,
        log=root / "operator.log",
        metrics_port=running.free_port(),
        env={
            "AVATAR_OPERATOR_RETRY_BASE_SECONDS": "0.5",
            "AVATAR_OPERATOR_POD_LOST_SECONDS": "5",
            "AVATAR_OPERATOR_QUEUE_STATUS_SECONDS": "0.5",
            **(operator_env or {}),
        },
    )
    system = System(root, cluster, kubectl, buckets, operator)
    try:
        kubectl("apply", "-f", str(CRDS))
        system.apply(stack.token_secret(TOKEN), *deployments)
        operator.start()
    except BaseException:
        context.__exit__(None, None, None)
        raise

    def stop() -> None:
        operator.stop()
        context.__exit__(None, None, None)

    return system, stop


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def env_for_tests() -> dict[str, str]:
    """Runtime pods in tests may read from a local HTTP server (the retry test's)."""
    return {
        "AVATAR_RUNTIME_FETCH__ALLOWED_SCHEMES": '["gs", "https", "http"]',
        "AVATAR_RUNTIME_FETCH__ALLOW_PRIVATE_NETWORKS": "true",
        "AVATAR_RUNTIME_FETCH__TIMEOUT_SECONDS": "5",
        # A deleted pod gives its running jobs 2 s (not 60) before it interrupts them.
        "AVATAR_RUNTIME_SERVER__GRACE_SECONDS": "2",
    }


def live(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
