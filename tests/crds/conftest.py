"""One dev cluster per test module with the real CRDs from crds/ applied."""

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
POOL_CRD = REPO / "crds" / "avatarruntimepools.avatar.dev.yaml"
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
    """A dev cluster for the module, the CRDs applied as a user would (kubectl apply -f)."""
    root = tmp_path_factory.mktemp("crd-cluster")
    with running.in_thread(kubeconfig_path=root / "kubeconfig", state=root / "state.json") as dev:
        kubectl = Kubectl(dev.kubeconfig)
        applied = kubectl("apply", "-f", str(CRD), "-f", str(POOL_CRD))
        for name in ("avatarvideos.avatar.dev", "avatarruntimepools.avatar.dev"):
            assert f"customresourcedefinition.apiextensions.k8s.io/{name} created" in (
                applied.stdout
            )
        yield kubectl


@pytest.fixture
def kubectl(crd_cluster: Kubectl) -> Iterator[Kubectl]:
    """The module's cluster, with no AvatarVideo or pool left over from the test before."""
    yield crd_cluster
    for plural in ("avatarvideos", "avatarruntimepools"):
        crd_cluster("delete", plural, "--all", "--wait=false")
        assert crd_cluster("get", plural, "-o", "name").stdout == ""
