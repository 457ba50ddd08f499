"""Build the Dockerfile's targets with buildah, as a Docker engine would.

``buildah bud`` reads the same Dockerfile as ``docker build``; ``--layers`` keeps the layer
cache between runs (a warm build reuses every step whose inputs did not change), ``--format
docker`` keeps the ``HEALTHCHECK`` (the OCI format has none), and ``--pull=never`` makes a
missing base an error here instead of a pull that cannot succeed.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from scripts import images_bases, images_buildah

VERSION = "0.1.0"  # the chart's appVersion: the tag the chart deploys by default


@dataclasses.dataclass(frozen=True)
class Target:
    """One Dockerfile target, the tag it is built as, and the bases its stages start from."""

    name: str
    tag: str
    bases: tuple[images_bases.StandIn, ...]


OPERATOR = Target("operator", f"avatar-operator:{VERSION}", (images_bases.PYTHON,))
RUNTIME_CPU = Target("runtime-cpu", f"avatar-runtime-cpu:{VERSION}", (images_bases.PYTHON,))
RUNTIME_GPU = Target(
    "runtime-gpu", f"avatar-runtime-gpu:{VERSION}", (images_bases.PYTHON, images_bases.CUDA)
)
TARGETS = {t.name: t for t in (OPERATOR, RUNTIME_CPU, RUNTIME_GPU)}
DEFAULT = (OPERATOR, RUNTIME_CPU)  # what `make images` builds; the GPU image is on request


@dataclasses.dataclass(frozen=True)
class Built:
    target: Target
    seconds: float
    bases: dict[str, images_bases.BaseState]


def build(target: Target, *, root: Path, log: Path, mirror: str) -> Built:
    """Build *target* from the checkout at *root* (its bases first, when missing)."""
    started = time.monotonic()
    bases = {b.reference: images_bases.ensure(b, mirror=mirror, log=log) for b in target.bases}
    images_buildah.buildah(
        [
            "bud",
            "--isolation",
            images_buildah.ISOLATION,
            "--format",
            "docker",
            "--layers",
            "--pull=never",
            "-v",
            images_buildah.CA_MOUNT,
            "--file",
            str(root / "Dockerfile"),
            "--target",
            target.name,
            "--tag",
            target.tag,
            str(root),
        ],
        log=log,
    )
    return Built(target=target, seconds=time.monotonic() - started, bases=bases)
