"""Fetching inputs from local files and gs:// (fsspec's memory filesystem stands in for GCS).

The https way has its own tests (test_inputs_https.py), the URL checks theirs
(test_inputs_urls.py).
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from PIL import Image

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs.fetching import fetch_bytes
from avatar_runtime.settings import FetchSettings

MB = 1024 * 1024


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


# -- local files ------------------------------------------------------------------------


def test_local_path_and_file_url(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    path.write_bytes(PNG)
    settings = FetchSettings()
    assert fetch_bytes(str(path), settings=settings, max_bytes=MB, what="portrait") == PNG
    assert fetch_bytes(path.as_uri(), settings=settings, max_bytes=MB, what="portrait") == PNG


def test_local_file_errors(tmp_path: Path) -> None:
    settings = FetchSettings()
    path = tmp_path / "face.png"
    path.write_bytes(b"x" * 11)
    cases = [
        (str(tmp_path / "nope.png"), ErrorCode.INPUT_NOT_FOUND, "no such file"),
        (str(tmp_path), ErrorCode.INPUT_NOT_FOUND, "directory"),
        (str(path), ErrorCode.DOWNLOAD_TOO_LARGE, "10 bytes"),
        ("file://fileserver/share/a.png", ErrorCode.URL_TARGET_FORBIDDEN, "remote host"),
    ]
    for source, code, words in cases:
        with pytest.raises(JobError) as excinfo:
            fetch_bytes(source, settings=settings, max_bytes=10, what="portrait")
        assert excinfo.value.code == code, source
        assert words in excinfo.value.message
        assert "portrait" in excinfo.value.message


# -- gs:// ------------------------------------------------------------------------------


@pytest.fixture
def gs_memory() -> Iterator[fsspec.AbstractFileSystem]:
    """fsspec's in-memory filesystem registered as "gs": a stand-in for GCS, unreachable here.

    The fetcher's gs branch only uses the generic fsspec API, which gcsfs implements.
    """
    # ``fsspec.registry`` is a read-only view; the module behind it holds the dict.
    registry = importlib.import_module("fsspec.registry")._registry  # restored below
    previous = registry.get("gs")
    fsspec.register_implementation("gs", MemoryFileSystem, clobber=True)
    fs = fsspec.filesystem("gs")
    try:
        yield fs
    finally:
        fs.rm("bucket-under-test", recursive=True)
        if previous is None:
            registry.pop("gs", None)
        else:
            fsspec.register_implementation("gs", previous, clobber=True)


def test_gs_fetch(gs_memory: fsspec.AbstractFileSystem) -> None:
    gs_memory.pipe("bucket-under-test/inputs/face.png", PNG)
    gs_memory.pipe("bucket-under-test/inputs/big.bin", b"x" * 2000)
    settings = FetchSettings()
    got = fetch_bytes(
        "gs://bucket-under-test/inputs/face.png", settings=settings, max_bytes=MB, what="portrait"
    )
    assert got == PNG
    for source, code in [
        ("gs://bucket-under-test/inputs/nope.png", ErrorCode.INPUT_NOT_FOUND),
        ("gs://bucket-under-test/inputs/big.bin", ErrorCode.DOWNLOAD_TOO_LARGE),
        ("gs://bucket-under-test/inputs", ErrorCode.INPUT_NOT_FOUND),
        ("gs://bucket-under-test", ErrorCode.INPUT_NOT_FOUND),
    ]:
        with pytest.raises(JobError) as excinfo:
            fetch_bytes(source, settings=settings, max_bytes=1000, what="audio")
        assert excinfo.value.code == code, source
        assert source in excinfo.value.message
