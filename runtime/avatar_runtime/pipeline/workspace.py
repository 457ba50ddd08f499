"""A runtime process's own corner of the work directory, and what killed ones left behind.

Every job works in a scratch directory (downloads, audio, the MP4 before upload)
and writes its outputs first as hidden partial files beside their destinations.
A process that is killed (SIGKILL, OOM, a node gone) cleans up neither. So each
process works in a corner of its own, ``avatar-runtime-<host>-<pid>-<random>``
under the work directory, held by an exclusive ``flock`` for as long as it lives
(the kernel drops the lock with the process, however it dies), and each job keeps
a journal in its scratch directory of the partial files it starts (``storage``).
A process starting under the same work directory sweeps the corners whose lock is
free: it removes the partial files their journals name, then the corners.

Nothing else is touched: only directories of this pattern, only under this work
directory, only files a journal names that have the partial pattern. Several pods
may share the work directory (the local system's pods share /tmp): a live pod's
corner is locked, so it is never swept.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from avatar_runtime.pipeline.storage import remove_partial

log = logging.getLogger(__name__)

JOURNAL = "partials.txt"
"""In a job's scratch directory: the partial outputs it started writing, one a line."""
_CORNER = re.compile(r"^\.?avatar-runtime-[A-Za-z0-9._-]+-\d+-[0-9a-f]{8}$")
_LOCK = ".lock"


@dataclass(frozen=True)
class Swept:
    corners: int
    partials: int


class Workspace:
    """This process's corner; ``open`` it at start (it sweeps first), ``close`` at exit."""

    def __init__(self, root: Path | None) -> None:
        self.root = (root or Path(tempfile.gettempdir())).absolute()
        self.path: Path | None = None
        self._lock: IO[bytes] | None = None

    def open(self) -> Path:
        swept = sweep(self.root)
        if swept.corners:
            log.info(
                "removed %d stale work corner(s) and %d partial output(s) of ended processes",
                swept.corners,
                swept.partials,
                extra={"corners": swept.corners, "partials": swept.partials},
            )
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:63] or "host"
        name = f"avatar-runtime-{host}-{os.getpid()}-{secrets.token_hex(4)}"
        # Locked before it gets a name a sweep would look at: no moment when it is free.
        making = self.root / f".{name}"
        making.mkdir(parents=True)
        lock = (making / _LOCK).open("wb")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = making.rename(self.root / name)
        self.path, self._lock = path, lock
        return path

    def close(self) -> None:
        """A clean exit leaves nothing (its jobs have ended and removed their scratch)."""
        if self.path is None or self._lock is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()
        self.path = self._lock = None


def sweep(root: Path) -> Swept:
    """Remove the corners under ``root`` whose process has ended, and their partials."""
    corners = partials = 0
    if not root.is_dir():
        return Swept(0, 0)
    for corner in root.iterdir():
        if not _CORNER.match(corner.name) or not corner.is_dir() or corner.is_symlink():
            continue
        with _unless_held(corner) as free:
            if not free:
                continue
            for journal in corner.glob(f"*/{JOURNAL}"):
                for line in journal.read_text(errors="replace").splitlines():
                    partials += remove_partial(line.strip())
            shutil.rmtree(corner, ignore_errors=True)
            corners += 1
    return Swept(corners, partials)


@contextlib.contextmanager
def _unless_held(corner: Path) -> Iterator[bool]:
    """Whether ``corner``'s lock is free (its process ended), holding it meanwhile."""
    try:
        lock = (corner / _LOCK).open("rb")
    except OSError:  # no lock file: not a corner this module made
        yield False
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
