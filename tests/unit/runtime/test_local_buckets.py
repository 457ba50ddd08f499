"""gs:// served from a local directory: what the local demo and end-to-end tests run on."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.inputs.fetching import fetch_bytes
from avatar_runtime.local_buckets import serve_gs_from
from avatar_runtime.pipeline.storage import OutputTarget
from avatar_runtime.settings import FetchSettings, RuntimeSettings

MB = 1024 * 1024


@pytest.fixture
def buckets(tmp_path: Path) -> Iterator[Path]:
    """gs:// served from ``tmp_path/buckets`` for one test; the process's own "gs" after."""
    # ``fsspec.registry`` is a read-only view; the module behind it holds the dict.
    registry = importlib.import_module("fsspec.registry")._registry
    previous = registry.get("gs")
    root = tmp_path / "buckets"
    serve_gs_from(root)
    try:
        yield root
    finally:
        if previous is None:
            registry.pop("gs", None)
        else:
            fsspec.register_implementation("gs", previous, clobber=True)


def _fetch(url: str) -> bytes:
    return fetch_bytes(url, settings=FetchSettings(), max_bytes=MB, what="portrait")


def test_the_setting_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert RuntimeSettings().storage.local_buckets is None
    monkeypatch.setenv("AVATAR_RUNTIME_STORAGE__LOCAL_BUCKETS", str(tmp_path))
    assert RuntimeSettings().storage.local_buckets == tmp_path


def test_inputs_are_read_from_dir_bucket_object(buckets: Path) -> None:
    (buckets / "b" / "in").mkdir(parents=True)
    (buckets / "b" / "in" / "face.png").write_bytes(b"portrait bytes")
    assert _fetch("gs://b/in/face.png") == b"portrait bytes"
    with pytest.raises(JobError) as missing:
        _fetch("gs://b/in/nope.png")
    assert missing.value.code is ErrorCode.INPUT_NOT_FOUND


def test_outputs_are_published_as_gs_urls_into_the_directory(buckets: Path, tmp_path: Path) -> None:
    """The partial-then-rename publishing works, and nothing partial is left behind."""
    files = {"video": tmp_path / "out.mp4", "thumbnail": tmp_path / "thumb.jpg"}
    files["video"].write_bytes(b"video bytes")
    files["thumbnail"].write_bytes(b"thumbnail bytes")
    published = OutputTarget("gs://b/jobs/one/").publish(files)
    assert published["video"].url == "gs://b/jobs/one/video.mp4"
    assert published["thumbnail"].url == "gs://b/jobs/one/thumbnail.jpg"
    job = buckets / "b" / "jobs" / "one"
    assert sorted(p.name for p in job.iterdir()) == ["thumbnail.jpg", "video.mp4"]
    assert (job / "video.mp4").read_bytes() == b"video bytes"
    assert _fetch(published["thumbnail"].url) == b"thumbnail bytes"  # and back through gs://


def test_paths_cannot_leave_the_directory(buckets: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for requests")
    (buckets / "b").mkdir()
    (buckets / "b" / "link").symlink_to(tmp_path)
    for url in ("gs://b/../../secret.txt", "gs://b/link/secret.txt"):
        with pytest.raises(JobError) as refused:
            _fetch(url)
        assert refused.value.code is ErrorCode.DOWNLOAD_FAILED, url
        assert not refused.value.retriable
    fs = fsspec.filesystem("gs")
    with pytest.raises(PermissionError):
        fs.open("gs://b/../../secret.txt", "rb")
    assert not fs.exists(str(secret))  # an absolute name stays inside: no such object

    video = tmp_path / "out.mp4"
    video.write_bytes(b"video bytes")
    with pytest.raises(JobError) as write:
        OutputTarget("gs://b/../../escaped/").publish({"video": video})
    assert write.value.code is ErrorCode.OUTPUT_WRITE_FAILED
    assert not (tmp_path / "escaped").exists()
