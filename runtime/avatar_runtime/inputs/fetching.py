"""Fetch an input's bytes from a local path, ``file://``, ``gs://`` or ``https://``.

The one entry point for every input: it parses the URL with the parser admission
uses and checks its scheme against the allow-list (``urls``), then reads local
files and ``gs://`` objects itself and hands ``http(s)`` to ``https``, whose
fetcher keeps users out of the cluster's network. Each way stops reading as soon
as the size limit is passed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import fsspec

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs import https, urls
from avatar_runtime.settings import FetchSettings

_CHUNK = 64 * 1024


def fetch_bytes(
    source: str,
    *,
    settings: FetchSettings,
    max_bytes: int,
    what: str,
    field: str | None = None,
    too_large: ErrorCode = ErrorCode.DOWNLOAD_TOO_LARGE,
) -> bytes:
    """Return the bytes ``source`` points to, at most ``max_bytes`` of them.

    ``what`` names the input in error messages ("portrait", "audio"); ``field`` is
    copied into the ``JobError`` so the status can point at the spec field.

    Raises ``JobError`` with URL_INVALID, URL_SCHEME_NOT_ALLOWED, URL_TARGET_FORBIDDEN,
    INPUT_NOT_FOUND, ``too_large`` (over ``max_bytes``) or DOWNLOAD_FAILED.
    """
    named = urls.Source(url=source, what=what, field=field, too_large_code=too_large)
    url = urls.checked(source, source=named, settings=settings)
    if url.scheme == "file":
        path = Path(urls.local_path(url, source=named))
        return _read_local(named, path=path, max_bytes=max_bytes)
    if url.scheme == "gs":
        return _read_gs(named, url=url, max_bytes=max_bytes)
    if url.scheme in urls.HTTP_SCHEMES:
        return https.read(named, url=url, settings=settings, max_bytes=max_bytes)
    raise named.error(
        ErrorCode.URL_SCHEME_NOT_ALLOWED,
        f"the scheme {url.scheme!r} is allowed but not supported; use file, gs or https",
    ) from None


def _read_local(source: urls.Source, *, path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as file:
            info = os.fstat(file.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise source.error(
                    ErrorCode.INPUT_NOT_FOUND, "is a directory, not a file"
                ) from None
            if not stat.S_ISREG(info.st_mode):
                raise source.error(ErrorCode.INPUT_NOT_FOUND, "is not a regular file") from None
            if info.st_size > max_bytes:
                raise source.too_large(max_bytes) from None
            data = file.read(max_bytes + 1)  # the file may have grown since fstat
    except FileNotFoundError:
        raise source.error(ErrorCode.INPUT_NOT_FOUND, "no such file") from None
    except IsADirectoryError:
        raise source.error(ErrorCode.INPUT_NOT_FOUND, "is a directory, not a file") from None
    except PermissionError:
        raise source.error(
            ErrorCode.INPUT_NOT_FOUND, "the file exists but cannot be read (permission)"
        ) from None
    except OSError as exc:
        raise source.error(
            ErrorCode.DOWNLOAD_FAILED, f"could not read the file: {exc.strerror or exc}"
        ) from None
    if len(data) > max_bytes:
        raise source.too_large(max_bytes) from None
    return data


def _read_gs(source: urls.Source, *, url: urls.Url, max_bytes: int) -> bytes:
    """Read a ``gs://`` object through any fsspec filesystem registered as "gs" (gcsfs)."""
    path = f"{url.host}{url.path}"
    if not url.host or not url.path.strip("/"):
        raise source.error(
            ErrorCode.INPUT_NOT_FOUND, "a gs:// URL needs a bucket and an object name"
        ) from None
    try:
        fs = fsspec.filesystem("gs")
        info: dict[str, Any] = fs.info(path)
        if info.get("type") == "directory":
            raise source.error(ErrorCode.INPUT_NOT_FOUND, "is a folder, not an object") from None
        size = info.get("size")
        if isinstance(size, int) and size > max_bytes:
            raise source.too_large(max_bytes) from None
        chunks: list[bytes] = []
        received = 0
        with fs.open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    raise source.too_large(max_bytes) from None
                chunks.append(chunk)
    except JobError:
        raise
    except FileNotFoundError:
        raise source.error(ErrorCode.INPUT_NOT_FOUND, "no such object") from None
    except PermissionError:
        raise source.error(
            ErrorCode.DOWNLOAD_FAILED,
            "access denied; grant the runtime's service account read access",
            retriable=False,
        ) from None
    except Exception as exc:  # gcsfs raises many kinds (HTTP, auth, network)
        raise source.error(
            ErrorCode.DOWNLOAD_FAILED, f"could not read: {urls.reason(exc)}"
        ) from None
    return b"".join(chunks)
