"""Publish a job's outputs all at once, or not at all; and give each job scratch space.

Consumers (the operator, users' scripts, a CDN) treat an existing ``video.mp4``
as "done". Writing outputs straight to their final names would expose half-written
files and half-sets (video without captions) whenever a pod dies or a bucket
write fails. So every file is first copied to a hidden ``.<name>.partial-<random>``
beside its destination, and only when all copies have succeeded are they moved to
their final names, video last. Any failure removes what this call wrote.

Local outputs are reported as absolute paths; fsspec outputs (``gs://``,
``memory://``, ...) as URLs built on the prefix the job gave. Before a partial
file is created its name goes into the job's journal (a file in its scratch
directory), so what a killed process left half-written can be found and removed
(``workspace``).
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import posixpath
import re
import secrets
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import fsspec

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import OutputFile
from avatar_runtime.inputs import urls

_CHUNK = 1024 * 1024
_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".vtt": "text/vtt",
    ".json": "application/json",
}


def content_type_for(name: str) -> str:
    """MIME type for an output file name (explicit for ours: systems disagree on .vtt)."""
    suffix = posixpath.splitext(name)[1].lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class OutputTarget:
    """Where one job's outputs go, parsed from the job's ``output`` string.

    ``output`` is a local directory, a local file ending in ``.mp4`` (the video goes
    exactly there, the other files beside it with the same stem), a ``file://``
    URL of either, or an fsspec URL (``gs://bucket/prefix/``, ``memory://x/``,
    ``gs://bucket/talk.mp4``).
    """

    def __init__(self, output: str) -> None:
        if not output.strip():
            raise JobError(ErrorCode.INVALID_OPTION, "output is empty", field="output")
        self.output = output
        # The one URL parser of inputs too: NULs, control characters and bad brackets are
        # refused here as UrlInvalid, never met by a filesystem call.
        parsed = urls.parse(output, source=urls.Source(url=output, what="output", field="output"))
        scheme = parsed.scheme
        self._scheme = scheme
        self._fs: Any = None  # made on first use: gcsfs looks for credentials when created
        if scheme == "file":  # a path, or a file:// URL (its path percent-decoded)
            path = Path(parsed.path)
            self._local_root: Path | None = path.absolute()
            self._remote_root = ""
            self.single_file = path.suffix.lower() == ".mp4"
        else:
            try:
                fsspec.get_filesystem_class(scheme)  # only checks that one exists
            except (ImportError, ValueError) as exc:
                raise JobError(
                    ErrorCode.INVALID_OPTION,
                    f"output {output!r}: no filesystem for {scheme}:// ({exc})",
                    field="output",
                ) from None
            self._local_root = None
            self._remote_root = output
            self.single_file = parsed.path.lower().endswith(".mp4")

    @property
    def is_local(self) -> bool:
        return self._local_root is not None

    def _remote(self) -> Any:
        if self._fs is None:
            self._fs = fsspec.filesystem(self._scheme)
        return self._fs

    def url_for(self, kind: str, suffix: str) -> str:
        """The final location of the ``kind`` output ("video", "thumbnail", "captions").

        For a ``.mp4`` target the video is the target itself and others share its
        stem (``talk.mp4``, ``talk.jpg``, ``talk.vtt``); otherwise ``<kind><suffix>``
        inside the directory or prefix (``video.mp4``, ``thumbnail.jpg``, ...).
        """
        if self._local_root is not None:
            root = self._local_root
            if not self.single_file:
                return str(root / f"{kind}{suffix}")
            return str(root if kind == "video" else root.with_suffix(suffix))
        if not self.single_file:
            prefix = (
                self._remote_root if self._remote_root.endswith("/") else self._remote_root + "/"
            )
            return f"{prefix}{kind}{suffix}"
        if kind == "video":
            return self._remote_root
        stem, _ = posixpath.splitext(self._remote_root)
        return f"{stem}{suffix}"

    def publish(
        self, files: Mapping[str, Path], *, journal: Path | None = None
    ) -> dict[str, OutputFile]:
        """Copy local ``files`` (kind -> temp path) to their final names, all or none.

        The destination suffix is the local file's suffix. Returns kind -> OutputFile
        with size and sha256 of the bytes written. Raises ``JobError``
        OUTPUT_WRITE_FAILED, after removing everything this call wrote. Each partial
        name is appended to ``journal`` before the partial file is created.
        """
        # Video last: whoever waits for the video finds the rest already in place.
        order = sorted(files, key=lambda kind: kind == "video")
        staged: list[tuple[str, str, str]] = []  # (kind, partial, final)
        moved: list[str] = []
        results: dict[str, OutputFile] = {}
        current = ""
        try:
            for kind in order:
                source = files[kind]
                final = self.url_for(kind, source.suffix)
                current = final
                partial = _partial_name(final, local=self.is_local)
                if journal is not None:
                    _note(journal, partial)
                staged.append((kind, partial, final))
                size, digest = self._copy(source, partial)
                results[kind] = OutputFile(
                    url=final, size_bytes=size, sha256=digest, content_type=content_type_for(final)
                )
            for _, partial, final in staged:
                current = final
                self._move(partial, final)
                moved.append(final)
        except Exception as exc:
            for _, partial, _final in staged:
                self._remove(partial)
            for final in moved:
                self._remove(final)
            raise JobError(
                ErrorCode.OUTPUT_WRITE_FAILED, f"could not write {current}: {_first_line(exc)}"
            ) from exc
        return {kind: results[kind] for kind in files}

    def write_atomically(self, url: str, data: bytes, *, journal: Path) -> None:
        """``data`` at ``url`` (a sibling of the outputs), whole or not at all."""
        partial = _partial_name(url, local=self.is_local)
        _note(journal, partial)
        with tempfile.NamedTemporaryFile() as staged:
            staged.write(data)
            staged.flush()
            try:
                self._copy(Path(staged.name), partial)
                self._move(partial, url)
            except BaseException:
                self._remove(partial)
                raise

    def read_bytes(self, url: str, *, max_bytes: int) -> bytes | None:
        """The file at ``url`` (an output or a sibling), or None when there is none."""
        try:
            if self.is_local:
                path = Path(url)
                if not path.is_file() or path.stat().st_size > max_bytes:
                    return None
                return path.read_bytes()
            fs = self._remote()
            if not fs.exists(url) or fs.size(url) > max_bytes:
                return None
            data: bytes = fs.cat_file(url)
            return data
        except OSError:
            return None

    def sha256_of(self, url: str) -> str | None:
        """The sha256 of the file at ``url``, reading it once; None when it is not there."""
        digest = hashlib.sha256()
        try:
            if self.is_local:
                with Path(url).open("rb") as reader:
                    _pump(reader, _Discard(), digest)
            else:
                with self._remote().open(url, "rb") as reader:
                    _pump(reader, _Discard(), digest)
        except OSError:  # FileNotFoundError included
            return None
        return digest.hexdigest()

    # -- filesystem operations, local or fsspec ----------------------------------------

    def _copy(self, source: Path, partial: str) -> tuple[int, str]:
        """Copy ``source`` to ``partial``, returning its size and sha256 (one read)."""
        digest = hashlib.sha256()
        with source.open("rb") as reader:
            if self.is_local:
                Path(partial).parent.mkdir(parents=True, exist_ok=True)
                with Path(partial).open("xb") as writer:
                    size = _pump(reader, writer, digest)
                    writer.flush()
                    os.fsync(writer.fileno())  # durable before it is renamed into place
            else:
                fs = self._remote()
                with contextlib.suppress(Exception):  # object stores have no real folders
                    fs.makedirs(posixpath.dirname(partial), exist_ok=True)
                with fs.open(partial, "wb") as writer:
                    size = _pump(reader, writer, digest)
        return size, digest.hexdigest()

    def _move(self, partial: str, final: str) -> None:
        if self.is_local:
            Path(partial).replace(final)
        else:
            self._remote().mv(partial, final)

    def _remove(self, path: str) -> None:
        with contextlib.suppress(Exception):  # best effort: we are already failing
            if self.is_local:
                Path(path).unlink(missing_ok=True)
            elif self._remote().exists(path):
                self._remote().rm(path)


@contextlib.contextmanager
def scratch_dir(base: Path | None = None, *, prefix: str = "avatar-job-") -> Iterator[Path]:
    """A fresh per-job directory under ``base`` (default: the system temp), always removed."""
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base, ignore_cleanup_errors=True) as path:
        yield Path(path)


class _Discard:
    """A writer that keeps nothing: ``_pump`` only to hash."""

    def write(self, chunk: bytes) -> int:
        return len(chunk)


def _pump(reader: BinaryIO, writer: Any, digest: hashlib._Hash) -> int:
    size = 0
    while chunk := reader.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        writer.write(chunk)
    return size


PARTIAL_PATTERN = re.compile(r"^\..+\.partial-[0-9a-f]{16}$")
"""The base name of every partial file this module writes, and of nothing else."""


def remove_partial(name: str) -> bool:
    """Remove a partial file a journal named (a path or an fsspec URL); False if it was not one.

    Only names of the partial pattern are touched, so a damaged or hostile journal
    cannot make a pod delete anything else.
    """
    if not PARTIAL_PATTERN.match(posixpath.basename(name)):
        return False
    scheme = urllib.parse.urlsplit(name).scheme.lower()
    with contextlib.suppress(Exception):  # gone already, or the store is down: best effort
        if len(scheme) <= 1:
            Path(name).unlink(missing_ok=True)
        elif scheme == "file":
            Path(urllib.request.url2pathname(urllib.parse.urlsplit(name).path)).unlink(
                missing_ok=True
            )
        else:
            fs = fsspec.filesystem(scheme)
            if fs.exists(name):
                fs.rm(name)
    return True


def _note(journal: Path, partial: str) -> None:
    """One more partial name in the journal, on disk before the partial file exists."""
    with journal.open("a", encoding="utf-8") as out:
        out.write(partial + "\n")
        out.flush()


def _partial_name(final: str, *, local: bool) -> str:
    """A hidden, unique name beside ``final`` (same directory, so the move is a rename)."""
    tag = secrets.token_hex(8)
    if local:
        path = Path(final)
        return str(path.with_name(f".{path.name}.partial-{tag}"))
    head, name = posixpath.split(final)
    return f"{head}/.{name}.partial-{tag}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
