"""The Dockerfile's promises, read from the file itself (fast; no buildah needed).

Each image target runs as uid 10001 and has a health check; every ``FROM`` has a stand-in
base for machines that cannot pull it; the pins are exact and cover every dependency the
image's extra declares (a dependency added to pyproject.toml without `scripts/images.py lock`
would go in unpinned). The build-and-run test is tests/images/test_images.py.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts import images_bases, images_build

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+$")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, rest in instructions():
        if word == "FROM":
            name = rest.split()[-1]
            current = found.setdefault(name, [])
        if current is not None:
            current.append((word, rest))
    return found


def resolved_bases() -> set[str]:
    """Each FROM that names an image (not a stage), with the ARG defaults filled in."""
    defaults = {}
    for word, rest in instructions():
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            defaults[key] = value
    names = set(stages())
    bases = set()
    for word, rest in instructions():
        if word == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], rest.split()[0])
            if image not in names:
                bases.add(image)
    return bases


def full_reference(image: str) -> str:
    """A short name as buildah and docker expand it."""
    name = image if "/" in image else f"library/{image}"
    return name if name.split("/")[0].count(".") else f"docker.io/{name}"


@pytest.mark.parametrize("target", sorted(images_build.TARGETS))
def test_every_image_runs_as_uid_10001_with_a_health_check(target: str) -> None:
    stage = stages()[target]
    words = [word for word, _ in stage]
    assert ("USER", "10001:10001") in stage
    assert "HEALTHCHECK" in words
    # The user is set after the last RUN: nothing the image runs later is root.
    assert max(i for i, w in enumerate(words) if w == "RUN") < words.index("USER")


def test_every_base_has_a_stand_in() -> None:
    assert {full_reference(b) for b in resolved_bases()} == set(images_bases.STAND_INS)


def test_no_other_package_index_is_used() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "--index-url" not in text
    assert "--extra-index-url" not in text


def pins(name: str) -> dict[str, str]:
    lines = (ROOT / "images" / f"{name}.txt").read_text().splitlines()
    entries = [line for line in lines if line.strip() and not line.startswith("#")]
    assert all(PIN.match(line) for line in entries), entries
    return {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in entries}


def extra_dependencies(extra: str) -> set[str]:
    """The names pyproject.toml's *extra* asks for, with the base dependencies and the
    extras it includes (``avatar-video[server]``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for text in [*project["dependencies"], *project["optional-dependencies"][extra]]:
        req = Requirement(text)
        if canonicalize_name(req.name) == "avatar-video":
            for inner in req.extras:
                names |= extra_dependencies(inner)
        else:
            names.add(canonicalize_name(req.name))
    return names


@pytest.mark.parametrize(
    ("image", "extras"),
    [
        ("operator", ["operator"]),
        ("runtime-cpu", ["cpu"]),
        ("runtime-gpu", ["cpu", "xtts", "ditto"]),
    ],
)
def test_the_pins_cover_every_dependency_of_the_image(image: str, extras: list[str]) -> None:
    pinned = pins(image)
    wanted = set().union(*(extra_dependencies(extra) for extra in extras))
    missing = sorted(wanted - set(pinned))
    assert not missing, f"run `python scripts/images.py lock {image}`: {missing} are not pinned"


def test_the_operator_image_pins_no_engine() -> None:
    assert not {"torch", "piper-tts", "faster-whisper", "av"} & set(pins("operator"))
