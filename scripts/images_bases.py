"""Stand-in base images: the Dockerfile's ``FROM`` images, made from Debian's packages.

Docker Hub and NVIDIA's registry cannot be reached from these machines, so the images the
Dockerfile starts from cannot be pulled. Each is replaced by a minimal Debian bookworm
(``mmdebstrap --variant=minbase``, about 45 s) that provides what the Dockerfile relies on
(``python3`` with ``venv``, ``useradd``, apt for the GPU stage), stored under the exact
reference the ``FROM`` line resolves to, and labelled as a stand-in together with a digest of
its recipe. A base whose label matches is reused: that is the cache between runs. An image of
that name without the label (a real base, on a machine that could pull one) is never touched.

The stand-ins are not the real images: bookworm's Python is 3.11.2 where the official image
carries the newest 3.11 release, and the CUDA stand-in has no CUDA libraries at all (it only
shows that the GPU stage's steps build). The image test says which base it used.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import subprocess
import tempfile
from pathlib import Path

from scripts import images_buildah

STAND_IN_LABEL = "io.avatar-video.stand-in"
RECIPE_LABEL = "io.avatar-video.stand-in-recipe"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclasses.dataclass(frozen=True)
class StandIn:
    """One base image as the Dockerfile names it, and the Debian system that replaces it."""

    reference: str  # as buildah stores a short name: docker.io/library/python:...
    replaces: str  # what the real image is, for the label and the reports
    packages: tuple[str, ...]
    suite: str = "bookworm"
    env: tuple[tuple[str, str], ...] = (
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("LANG", "C.UTF-8"),
    )

    def recipe(self) -> str:
        """A digest of everything the stand-in is made from: a change rebuilds it."""
        text = repr((self.suite, self.packages, self.env))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PYTHON = StandIn(
    reference="docker.io/library/python:3.11-slim-bookworm",
    replaces="the official python:3.11-slim-bookworm image (Docker Hub)",
    # The official image has python, pip and venv, CA certificates, netbase and tzdata.
    packages=(
        "python3",
        "python3-venv",
        "python-is-python3",
        "ca-certificates",
        "netbase",
        "tzdata",
    ),
)
CUDA = StandIn(
    reference="docker.io/nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04",
    replaces="NVIDIA's CUDA 12.8.1 + cuDNN 9 runtime on Ubuntu 24.04 (no CUDA in the stand-in)",
    # The GPU stage installs Python itself with apt, as it does on the Ubuntu base.
    packages=("ca-certificates",),
)
STAND_INS = {PYTHON.reference: PYTHON, CUDA.reference: CUDA}


class BaseState(enum.Enum):
    REAL = "a real base image (not a stand-in)"
    CACHED = "the stand-in built before (cached)"
    BUILT = "the stand-in, built now"


def ensure(standin: StandIn, *, mirror: str = DEFAULT_MIRROR, log: Path | None = None) -> BaseState:
    """Make sure an image answers to *standin*'s reference, building the stand-in if needed."""
    found = images_buildah.labels(standin.reference)
    if found is not None:
        if STAND_IN_LABEL not in found:
            return BaseState.REAL
        if found.get(RECIPE_LABEL) == standin.recipe():
            return BaseState.CACHED
    build(standin, mirror=mirror, log=log)
    return BaseState.BUILT


def state(reference: str) -> BaseState | None:
    """What the image under *reference* is now, without building anything."""
    found = images_buildah.labels(reference)
    if found is None:
        return None
    return BaseState.CACHED if STAND_IN_LABEL in found else BaseState.REAL


def build(standin: StandIn, *, mirror: str = DEFAULT_MIRROR, log: Path | None = None) -> None:
    """mmdebstrap a minbase system into a tarball, then commit it as an image."""
    with tempfile.TemporaryDirectory(prefix="standin-") as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        argv = [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(standin.packages)}",
            standin.suite,
            str(rootfs),
            mirror,
        ]
        done = subprocess.run(argv, capture_output=True, text=True)  # noqa: S603 (our argv)
        if log is not None:
            with log.open("a") as out:
                out.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            raise images_buildah.BuildahError(f"mmdebstrap failed:\n{done.stderr[-3000:]}")
        container = images_buildah.buildah(["from", "scratch"]).stdout.strip()
        try:
            images_buildah.buildah(["add", "--quiet", container, str(rootfs), "/"])
            config = ["config", "--cmd", "python3" if "python3" in standin.packages else "bash"]
            for key, value in standin.env:
                config += ["--env", f"{key}={value}"]
            config += ["--label", f"{STAND_IN_LABEL}={standin.replaces}"]
            config += ["--label", f"{RECIPE_LABEL}={standin.recipe()}"]
            images_buildah.buildah([*config, container])
            images_buildah.buildah(
                ["commit", "--quiet", "--format", "docker", container, standin.reference]
            )
        finally:
            images_buildah.buildah(["rm", container], check=False)
