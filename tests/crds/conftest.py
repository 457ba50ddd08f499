"""One dev cluster per test module with the real AvatarVideo CRD from crds/ applied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avatar_devcluster import running
from avatar_devcluster.kubectl import Kubectl

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "avatarvideos.avatar.dev.yaml"
EXAMPLES = REPO / "examples"


def avatar_video(name: str, **spec: Any) -> str:
    """An AvatarVideo manifest (JSON, which kubectl reads as YAML) with ``spec`` as given."""
    return json.dumps(
        {
            "apiVersion": "avatar.dev/v1alpha1",
            "kind": "AvatarVideo",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@pytest.fixture(scope="module")
def crd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    """A dev cluster for the module, the CRD applied as a user would (kubectl apply -f)."""
    root = tmp_path_factory.mktemp("crd-cluster")
    with running.in_thread(kubeconfig_path=root / "kubeconfig", state=root / "state.json") as dev:
        kubectl = Kubectl(dev.kubeconfig)
        applied = kubectl("apply", "-f", str(CRD))
        assert "customresourcedefinition.apiextensions.k8s.io/avatarvideos.avatar.dev created" in (
            applied.stdout
        )
        yield kubectl


@pytest.fixture
def kubectl(crd_cluster: Kubectl) -> Iterator[Kubectl]:
    """The module's cluster, with no AvatarVideo left over from the test before."""
    yield crd_cluster
    crd_cluster("delete", "avatarvideos", "--all", "--wait=false")
    assert crd_cluster("get", "avatarvideos", "-o", "name").stdout == ""
