"""The chart's CRDs are the repository's: byte for byte, so no edit to crds/ is left behind.

Helm installs charts/avatar-video/crds/ on the first install only and never upgrades it:
the README gives the `kubectl apply --server-side` for upgrades, which must apply exactly
what crds/ holds.
"""

from __future__ import annotations

import pytest

from tests.chart import helm

TOP = helm.REPO / "crds"
COPIES = helm.CHART / "crds"


def test_the_chart_holds_every_crd_and_nothing_else() -> None:
    assert sorted(p.name for p in COPIES.iterdir()) == sorted(p.name for p in TOP.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(p.name for p in TOP.glob("*.yaml")))
def test_each_copy_is_byte_identical(name: str) -> None:
    copy = COPIES / name
    assert copy.is_file(), f"{copy} is missing: cp crds/{name} charts/avatar-video/crds/"
    assert copy.read_bytes() == (TOP / name).read_bytes(), (
        f"charts/avatar-video/crds/{name} differs from crds/{name}:"
        f" cp crds/{name} charts/avatar-video/crds/"
    )


def test_the_readme_says_helm_never_upgrades_them() -> None:
    readme = (helm.CHART / "README.md").read_text()
    assert "never upgrades" in readme
    assert "kubectl apply --server-side --force-conflicts -f charts/avatar-video/crds/" in readme
