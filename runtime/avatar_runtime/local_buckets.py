"""Serve ``gs://`` from a local directory: ``gs://BUCKET/OBJECT`` is ``DIR/BUCKET/OBJECT``.

There is no Cloud Storage on a laptop or a CI machine, yet the local demo and the
end-to-end tests should pass ``gs://`` URLs through the same code as on GKE. Input
fetching and output publishing both ask fsspec for its "gs" filesystem, so
registering this one in gcsfs's place at process start is all it takes; URLs stay
``gs://...``. No path may leave the directory (``..``, absolute names, symlinks).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import fsspec
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)


class LocalBucketsFileSystem(DirFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """fsspec's "gs" filesystem over a directory; ``serve_gs_from`` binds the directory."""

    protocol = "gs"
    root: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        # fsspec.filesystem("gs") passes no path: the directory comes with the class.
        if not self.root:
            raise TypeError("use serve_gs_from(directory), which binds the directory")
        super().__init__(path=self.root, fs=LocalFileSystem(auto_mkdir=True), **options)

    def _join(self, path: Any) -> Any:
        if isinstance(path, str):
            inside = Path(self.root, self._strip_protocol(path).lstrip("/")).resolve()
            if not inside.is_relative_to(self.root):
                raise PermissionError(f"{path!r} lies outside the local buckets directory")
        return super()._join(path)


def serve_gs_from(directory: Path) -> None:
    """Make fsspec's "gs" filesystem, for this whole process, the local ``directory``."""
    root = directory.resolve()
    root.mkdir(parents=True, exist_ok=True)
    # A class per directory: fsspec caches instances per class and arguments (none here).
    bound = type(LocalBucketsFileSystem.__name__, (LocalBucketsFileSystem,), {"root": str(root)})
    fsspec.register_implementation("gs", bound, clobber=True)
    log.warning("gs:// URLs are served from the local directory %s, not Cloud Storage", root)
