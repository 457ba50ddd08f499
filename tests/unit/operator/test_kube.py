"""The operator's status writes and Events (``kube_http``), against the local Kubernetes API.

The dev cluster is the project's own API server over HTTP, with the real
AvatarVideo CRD; what is checked is what ``kubectl`` then shows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from avatar_devcluster import running
from avatar_devcluster.kubectl import Kubectl
from avatar_operator.kube import Kube
from avatar_operator.resource import Ref

ROOT = Path(__file__).resolve().parents[3]
VIDEO = """
apiVersion: avatar.dev/v1alpha1
kind: AvatarVideo
metadata: {name: hello, namespace: default}
spec: {portrait: "gs://b/p.png", text: "Hello there.", output: "gs://b/out/"}
"""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Kubectl, kubernetes.client.Configuration]]:
    with running.in_thread(kubeconfig_path=tmp_path / "kubeconfig") as dev:
        kubectl = Kubectl(dev.kubeconfig)
        kubectl.apply((ROOT / "crds" / "avatarvideos.avatar.dev.yaml").read_text())
        kubectl.apply(VIDEO)
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(dev.kubeconfig), client_configuration=config
        )
        yield kubectl, config


def video_ref(kubectl: Kubectl) -> Ref:
    body = json.loads(kubectl("get", "avatarvideo", "hello", "-o", "json").stdout)
    return Ref("default", "hello", body["metadata"]["uid"])


def test_status_writes_land_on_either_lane_and_a_missing_resource_says_so(
    api: tuple[Kubectl, kubernetes.client.Configuration],
) -> None:
    kubectl, config = api
    ref = video_ref(kubectl)

    async def go() -> tuple[bool, bool, bool]:
        kube = Kube(workers=2, urgent_workers=1, config=config)
        try:
            bulk = await kube.patch_status(ref, {"phase": "Queued", "queuePosition": 3})
            urgent = await kube.patch_status(ref, {"phase": "Running"}, urgent=True)
            gone = await kube.patch_status(Ref("default", "nope", "u"), {"phase": "Running"})
        finally:
            await kube.close()
        return bulk, urgent, gone

    assert asyncio.run(go()) == (True, True, False)
    status = json.loads(kubectl("get", "avatarvideo", "hello", "-o", "json").stdout)["status"]
    assert status["phase"] == "Running"
    assert status["queuePosition"] == 3  # merged, not replaced


def test_an_event_is_posted_and_a_repeat_counts_on_it(
    api: tuple[Kubectl, kubernetes.client.Configuration],
) -> None:
    kubectl, config = api
    ref = video_ref(kubectl)

    async def go() -> tuple[str, bool]:
        kube = Kube(workers=2, config=config)
        try:
            name = await kube.event(ref, type_="Normal", reason="Queued", message="Waiting.")
            again = await kube.repeat_event(ref, name=name, count=2, message="Still waiting.")
        finally:
            await kube.close()
        return name, again

    name, again = asyncio.run(go())
    assert again
    event = json.loads(kubectl("get", "event", name, "-o", "json").stdout)
    assert (event["reason"], event["count"], event["message"]) == ("Queued", 2, "Still waiting.")
    assert event["involvedObject"]["uid"] == ref.uid
    described = kubectl("describe", "avatarvideo", "hello").stdout
    assert "Still waiting." in described
