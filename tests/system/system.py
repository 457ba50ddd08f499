"""The local system as the end-to-end tests use it: ``LocalSystem`` plus test-only helpers.

Everything is real except what cannot run here (GKE, an L4, GCS):
``avatar_devcluster.local_system`` starts the dev cluster, the runtime pods (real
``avatar-runtime serve`` processes) and the operator (a real ``kopf run``), and
kubectl is the real one. What this module adds is what only tests need: a known
token, fast retries, portraits in the buckets, texts of known lengths, and
queries of resources, Events and runtime pods.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

from avatar_devcluster import stack
from avatar_devcluster.local_system import LocalSystem
from avatar_devcluster.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
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
# Retries, lost pods and queue positions in seconds, not minutes.
OPERATOR_ENV = {
    "AVATAR_OPERATOR_RETRIES__BASE_SECONDS": "0.5",
    "AVATAR_OPERATOR_TRACKING__POD_LOST_SECONDS": "5",
    "AVATAR_OPERATOR_STATUS__QUEUE_POSITIONS_SECONDS": "0.5",
}


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


class System(LocalSystem):
    """A local system with the tests' token and operator settings, and portraits in
    ``gs://demo/`` (``portrait.png``, ``blank.png`` without a face)."""

    def __init__(
        self, root: Path, *, operator_env: dict[str, str] | None = None, chart: bool = False
    ) -> None:
        super().__init__(
            root, token=TOKEN, operator_env={**OPERATOR_ENV, **(operator_env or {})}, chart=chart
        )

    def operator_log(self) -> str:
        """The operator's log: its process's, or with ``chart`` its pods' (newest last)."""
        if not self.chart:
            return self.operator.log_text()
        logs = sorted((self.root / "cluster" / "pods").glob("*-operator-*.log"),
                      key=lambda p: p.stat().st_mtime)  # fmt: skip
        return "".join(p.read_text(errors="replace") for p in logs)

    def start(self) -> None:
        super().start()
        write_portraits(self.buckets)

    # AvatarVideos and their Events.

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

        def how_it_stands() -> str:
            return (
                f"{namespace}/{name} {wanted}; now: {self.get(name, namespace).get('status')}\n"
                f"operator log tail:\n{self.operator_log()[-3000:]}"
            )

        return wait_until(reached, timeout=timeout, what=how_it_stands)

    def events(self, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        out = self.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return [
            e
            for e in json.loads(out)["items"]
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    # Runtime pods, over their own API.

    @staticmethod
    def runtime_url(pod: dict[str, Any]) -> str:
        return f"http://{pod['status']['podIP']}:{stack.RUNTIME_PORT}"

    def runtime(self, pod: dict[str, Any]) -> httpx.Client:
        return httpx.Client(
            base_url=self.runtime_url(pod),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def pod_named(self, name: str) -> dict[str, Any]:
        out = self.kubectl("get", "pod", name, "-o", "json").stdout
        pod: dict[str, Any] = json.loads(out)
        return pod

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
