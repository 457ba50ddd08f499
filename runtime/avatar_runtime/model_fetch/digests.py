"""How a file is known to be the one its source lists, and the ``SHA256SUMS`` that record it.

The hub lists each file's size and either its Git LFS SHA-256 (weights) or its
git blob id (small text files, a SHA-1 of ``blob <size>\\0`` and the bytes):
one pass over a file gives both, and the SHA-256 that ``SHA256SUMS`` keeps so
``check-models`` can verify the volume later without the hub.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from avatar_runtime.engines import model_volume

_BLOCK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What a source says about a file: always its size, and at least one checksum."""

    size: int
    sha256: str | None = None
    git_sha1: str | None = None


@dataclass(frozen=True, kw_only=True)
class Measured:
    size: int
    sha256: str
    git_sha1: str


def measure(path: Path) -> Measured:
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            sha256.update(block)
            git.update(block)
    return Measured(size=size, sha256=sha256.hexdigest(), git_sha1=git.hexdigest())


def difference(measured: Measured, expected: Expected) -> str:
    """Why the file is not the expected one; empty when it is."""
    if measured.size != expected.size:
        return f"{measured.size} bytes, the source lists {expected.size}"
    if expected.sha256 is not None and measured.sha256 != expected.sha256.lower():
        return f"sha256 {measured.sha256}, the source lists {expected.sha256}"
    if expected.git_sha1 is not None and measured.git_sha1 != expected.git_sha1.lower():
        return f"git blob id {measured.git_sha1}, the source lists {expected.git_sha1}"
    return ""


def intact(path: Path, expected: Expected) -> Measured | None:
    """The file's measure when it is already the expected one (size compared before hashing)."""
    if not path.is_file() or path.stat().st_size != expected.size:
        return None
    measured = measure(path)
    return None if difference(measured, expected) else measured


read_sums = model_volume.read_sums  # the file the volume's check reads, read one way


def record_sums(component_dir: Path, entries: Mapping[str, str]) -> None:
    """Add ``entries`` (path relative to the component: sha256) to its ``SHA256SUMS``.

    Lines for files that are gone are dropped, so the listing stays true for
    ``sha256sum -c`` as well; the file is replaced in one rename.
    """
    sums = {
        name: digest
        for name, digest in read_sums(component_dir).items()
        if (component_dir / name).is_file()
    }
    sums.update(entries)
    if not sums:
        return
    component_dir.mkdir(parents=True, exist_ok=True)
    listing = component_dir / model_volume.SUMS
    partial = listing.with_name(f".{model_volume.SUMS}.partial")
    partial.write_text("".join(f"{sums[name]}  {name}\n" for name in sorted(sums)))
    partial.replace(listing)
