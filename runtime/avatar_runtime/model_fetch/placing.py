"""Files reach their real names on the volume only whole and checked.

Everything is downloaded under ``MODEL_DIR/.fetching/`` (the same filesystem,
so a rename is enough) and renamed into place after its checksum matches: a
pod that mounts the volume mid-fetch, or a fetch killed half-way, never leaves
a truncated file under a name ``check-models`` would look at.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avatar_runtime.model_fetch.errors import FetchError, Problem

STAGING = ".fetching"


def staging(model_dir: Path, name: str) -> Path:
    path = model_dir / STAGING / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_staging(model_dir: Path) -> None:
    shutil.rmtree(model_dir / STAGING, ignore_errors=True)


def place(staged: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    staged.replace(final)


def replace_tree(new: Path, final: Path, *, last: str) -> None:
    """Make ``final`` hold exactly ``new``'s files, renamed one by one, ``last`` at the end.

    File by file rather than one directory rename: a Cloud Storage FUSE mount
    renames files, but directories only where the mount allows it. ``last``
    (a marker saying the tree is complete) arrives only after everything else.
    """
    files = sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file())
    wanted = set(files)
    if final.is_dir():
        for old in sorted(final.rglob("*"), reverse=True):  # children before their directory
            if old.is_file() and old.relative_to(final) not in wanted:
                old.unlink()
            elif old.is_dir() and not any(old.iterdir()):
                old.rmdir()
    for name in sorted(files, key=lambda f: f == Path(last)):
        place(new / name, final / name)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def ensure_room(model_dir: Path, needed: int) -> None:
    """Refuse before downloading what cannot fit (a FUSE bucket reports ample room)."""
    free = shutil.disk_usage(model_dir).free
    if needed > free:
        raise FetchError(
            Problem.DISK_FULL,
            f"{model_dir} has {_size(free)} free, the files to fetch need {_size(needed)}",
        )


@contextmanager
def disk_errors(model_dir: Path) -> Iterator[None]:
    """A full disk mid-write becomes ``DISK_FULL``, naming the volume."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise FetchError(Problem.DISK_FULL, f"{model_dir} is full: {exc}") from None
        raise
