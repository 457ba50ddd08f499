"""Ditto's code: GitHub's tar.gz of one pinned commit, checked against its SHA-256, unpacked.

Ditto is imported from the volume, never installed, so the volume must hold
exactly the reviewed commit: the archive is refused unless its SHA-256 is the
pinned one. It is small (about 1 MB), so it is fetched whole (no resuming),
unpacked beside the target and moved in; ``.source.json``, moved in last,
records what the target holds, so a second run fetches nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from avatar_runtime.model_fetch import digests, placing
from avatar_runtime.model_fetch.errors import FetchError, Problem
from avatar_runtime.model_fetch.plans import ArchiveSource

MARKER = ".source.json"
_TIMEOUT = 60.0  # seconds without data before giving up


def _marker(source: ArchiveSource) -> dict[str, str]:
    return {"url": source.url, "commit": source.commit, "sha256": source.sha256}


def present(source: ArchiveSource, *, model_dir: Path) -> bool:
    """The target holds this archive's files, each as ``SHA256SUMS`` recorded it."""
    target = model_dir / source.target
    try:
        marker = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("sha256") != source.sha256:
        return False
    component, _, prefix = source.target.partition("/")
    sums = digests.read_sums(model_dir / component)
    mine = {name: digest for name, digest in sums.items() if name.startswith(f"{prefix}/")}
    return bool(mine) and all(
        (model_dir / component / name).is_file()
        and digests.measure(model_dir / component / name).sha256 == digest
        for name, digest in mine.items()
    )


def _download(source: ArchiveSource, into: Path) -> Path:
    if not source.url.startswith(("https://", "http://")):
        raise FetchError(Problem.BAD_OPTION, f"not an HTTP(S) URL: {source.url}")
    archive = into / "archive.tar.gz"
    digest = hashlib.sha256()
    try:
        opened = urllib.request.urlopen(source.url, timeout=_TIMEOUT)  # noqa: S310 (scheme checked)
        with opened as response, archive.open("wb") as out:
            while block := response.read(1 << 20):
                digest.update(block)
                out.write(block)
    except urllib.error.HTTPError as exc:
        problem = Problem.NOT_FOUND if exc.code == 404 else Problem.SERVER_ERROR
        raise FetchError(problem, f"{source.url} answered {exc.code}") from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        raise FetchError(Problem.UNREACHABLE, f"cannot fetch {source.url}: {reason}") from None
    if digest.hexdigest() != source.sha256:
        archive.unlink()
        raise FetchError(
            Problem.CHECKSUM_MISMATCH,
            f"{source.url}: sha256 {digest.hexdigest()}, expected {source.sha256}; nothing"
            " was unpacked (for another commit, give its --ditto-commit and --ditto-code-sha256)",
        )
    return archive


def _unpack(archive: Path, into: Path) -> Path:
    """The archive's single top directory (``<repo>-<commit>/``), unpacked under ``into``."""
    tree = into / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(tree, filter="data")  # no absolute paths, links out, or devices
    tops = list(tree.iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        raise FetchError(Problem.SERVER_ERROR, f"{archive.name}: not one top directory")
    return tops[0]


def fetch(source: ArchiveSource, *, model_dir: Path) -> dict[str, str]:
    """Download, check, unpack and move in; returns the ``SHA256SUMS`` entries of its files."""
    staging = placing.staging(model_dir, f"{source.component}-code")
    top = _unpack(_download(source, staging), staging)
    (top / MARKER).write_text(json.dumps(_marker(source), indent=2) + "\n")
    prefix = source.target.partition("/")[2]
    entries = {
        f"{prefix}/{path.relative_to(top).as_posix()}": digests.measure(path).sha256
        for path in sorted(top.rglob("*"))
        if path.is_file() and not path.is_symlink() and path.name != MARKER
    }
    placing.replace_tree(top, model_dir / source.target, last=MARKER)
    return entries
