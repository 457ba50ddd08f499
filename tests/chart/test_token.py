"""The runtime token is generated once and then kept: an upgrade renders the Secret it finds.

The template looks the Secret up in the cluster (Helm's ``lookup``), which only works
against an API server: these renders run ``helm template --dry-run=server`` against the
local Kubernetes API (the dev cluster), where the Secret is applied as an install would.
The dev cluster does not serve every kind the chart renders yet (RBAC, PodDisruptionBudget,
NetworkPolicy, PersistentVolumeClaim), and helm refuses a server-side render with kinds the
server lacks; so these renders use a copy of the chart holding the token's template alone,
with the chart's helpers, values and schema as they are.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avatar_devcluster import running
from avatar_devcluster.kubectl import Kubectl
from tests.chart import helm

SECRET = f"{helm.RELEASE}-avatar-video-runtime-token"


TEMPLATES = ("_helpers.tpl", "runtime-token.yaml")


@pytest.fixture(scope="module")
def token_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart with the token's template alone (see the module's docstring)."""
    root = tmp_path_factory.mktemp("token-chart") / "avatar-video"
    (root / "templates").mkdir(parents=True)
    for name in ("Chart.yaml", "values.yaml", "values.schema.json"):
        shutil.copyfile(helm.CHART / name, root / name)
    for name in TEMPLATES:
        shutil.copyfile(helm.CHART / "templates" / name, root / "templates" / name)
    return root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, helm_binary: str) -> Iterator[Kubectl]:
    root = tmp_path_factory.mktemp("token-cluster")
    with running.in_thread(kubeconfig_path=root / "kubeconfig") as dev:
        kubectl = Kubectl(dev.kubeconfig)
        kubectl("create", "namespace", helm.NAMESPACE)
        yield kubectl


@pytest.fixture
def clean(cluster: Kubectl, token_chart: Path) -> Iterator[Kubectl]:
    yield cluster
    cluster("delete", "secret", "-n", helm.NAMESPACE, "--all")


def render(kubectl: Kubectl, chart: Path, **values: Any) -> list[helm.Manifest]:
    """As an install or upgrade renders: with lookups answered by the cluster."""
    args = ["template", helm.RELEASE, str(chart), "-n", helm.NAMESPACE, "--dry-run=server"]
    for key, value in values.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return helm.parse(helm.run(*args, "--kubeconfig", str(kubectl.kubeconfig)))


def token_of(objects: list[helm.Manifest]) -> str:
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == SECRET
    return base64.b64decode(secret["data"]["token"]).decode()


def operator_pod(objects: list[helm.Manifest]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def apply(kubectl: Kubectl, objects: list[helm.Manifest]) -> None:
    """The Secret as `helm install` leaves it: owned by the release (an upgrade takes it on)."""
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    secret["metadata"]["annotations"] = {
        "meta.helm.sh/release-name": helm.RELEASE,
        "meta.helm.sh/release-namespace": helm.NAMESPACE,
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(secret))


def test_the_copy_renders_the_charts_own_secret(token_chart: Path, helm_binary: str) -> None:
    (secret,) = helm.parse(
        helm.run("template", helm.RELEASE, str(token_chart), "-n", helm.NAMESPACE)
    )
    (whole,) = [o for o in helm.template() if o["kind"] == "Secret"]
    del secret["data"], whole["data"]  # random without a cluster
    assert secret == whole


def test_install_generates_a_long_random_token(clean: Kubectl, token_chart: Path) -> None:
    first, second = token_of(render(clean, token_chart)), token_of(render(clean, token_chart))
    assert len(first) == 48
    assert first.isalnum()
    assert first != second  # nothing installed yet: each render is a fresh install


def test_an_upgrade_keeps_the_token_it_finds(clean: Kubectl, token_chart: Path) -> None:
    installed = render(clean, token_chart)
    apply(clean, installed)
    again = render(clean, token_chart, pool={"maxReplicas": 6})
    assert token_of(again) == token_of(installed)


def test_a_given_token_wins_over_the_kept_one(clean: Kubectl, token_chart: Path) -> None:
    apply(clean, render(clean, token_chart))
    rotated = render(clean, token_chart, runtime={"token": {"value": "rotated-token-1"}})
    assert token_of(rotated) == "rotated-token-1"


def test_with_an_existing_secret_the_chart_makes_none_and_points_at_it(helm_binary: str) -> None:
    objects = helm.template(
        set_json={"runtime": {"token": {"existingSecret": "mine", "existingSecretKey": "t"}}}
    )
    assert not [o for o in objects if o["kind"] == "Secret"]
    pod = operator_pod(objects)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "runtime-token"]
    assert volume["secret"]["secretName"] == "mine"
    assert volume["secret"]["items"] == [{"key": "t", "path": "t"}]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "runtime-token"]
    assert mount["readOnly"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AVATAR_OPERATOR_POOLS__TOKEN_SECRET"] == "mine"
    assert env["AVATAR_OPERATOR_POOLS__TOKEN_SECRET_KEY"] == "t"
    assert env["AVATAR_OPERATOR_RUNTIME__TOKEN_FILE"] == f"{mount['mountPath']}/t"
