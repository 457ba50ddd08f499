"""Output publishing on the real local filesystem and fsspec's memory filesystem."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.pipeline.storage import OutputTarget, scratch_dir


@pytest.fixture
def memory_prefix() -> Iterator[str]:
    root = f"storage-test-{uuid.uuid4().hex}"
    yield f"memory://{root}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_directory_naming(tmp_path: Path) -> None:
    target = OutputTarget(str(tmp_path / "job"))
    assert target.url_for("video", ".mp4") == str(tmp_path / "job" / "video.mp4")
    assert target.url_for("thumbnail", ".jpg") == str(tmp_path / "job" / "thumbnail.jpg")
    assert target.url_for("captions", ".vtt") == str(tmp_path / "job" / "captions.vtt")


def test_mp4_file_naming(tmp_path: Path) -> None:
    target = OutputTarget(str(tmp_path / "renders" / "talk.mp4"))
    assert target.url_for("video", ".mp4") == str(tmp_path / "renders" / "talk.mp4")
    assert target.url_for("thumbnail", ".jpg") == str(tmp_path / "renders" / "talk.jpg")
    assert target.url_for("captions", ".vtt") == str(tmp_path / "renders" / "talk.vtt")
    assert OutputTarget("gs://b/x/talk.mp4").url_for("captions", ".vtt") == "gs://b/x/talk.vtt"
    assert OutputTarget("gs://b/x/").url_for("video", ".mp4") == "gs://b/x/video.mp4"
    assert OutputTarget("gs://b/x").url_for("video", ".mp4") == "gs://b/x/video.mp4"


def test_relative_and_file_url_targets_report_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert OutputTarget("out").url_for("video", ".mp4") == str(tmp_path / "out" / "video.mp4")
    file_url = (tmp_path / "a.mp4").as_uri()
    assert OutputTarget(file_url).url_for("video", ".mp4") == str(tmp_path / "a.mp4")


def test_publish_local_directory(tmp_path: Path, outputs: dict[str, Path]) -> None:
    destination = tmp_path / "new" / "nested"  # created on demand
    published = OutputTarget(str(destination)).publish(outputs)
    assert list(published) == ["video", "thumbnail", "captions"]
    assert sorted(p.name for p in destination.iterdir()) == [
        "captions.vtt",
        "thumbnail.jpg",
        "video.mp4",
    ]
    for kind, source in outputs.items():
        result = published[kind]
        assert Path(result.url).is_absolute()
        assert Path(result.url).read_bytes() == source.read_bytes()
        assert result.size_bytes == source.stat().st_size
        assert result.sha256 == _sha(source)
    assert published["video"].content_type == "video/mp4"
    assert published["thumbnail"].content_type == "image/jpeg"
    assert published["captions"].content_type == "text/vtt"


def test_publish_local_mp4_path(tmp_path: Path, outputs: dict[str, Path]) -> None:
    published = OutputTarget(str(tmp_path / "talk.mp4")).publish(outputs)
    assert published["video"].url == str(tmp_path / "talk.mp4")
    assert published["thumbnail"].url == str(tmp_path / "talk.jpg")
    assert published["captions"].url == str(tmp_path / "talk.vtt")


def test_failed_copy_leaves_nothing_behind(tmp_path: Path, outputs: dict[str, Path]) -> None:
    destination = tmp_path / "dest"
    files = {"thumbnail": outputs["thumbnail"], "video": tmp_path / "never-encoded.mp4"}
    with pytest.raises(JobError) as excinfo:
        OutputTarget(str(destination)).publish(files)
    assert excinfo.value.code == ErrorCode.OUTPUT_WRITE_FAILED
    assert excinfo.value.retriable
    assert "video.mp4" in excinfo.value.message
    assert list(destination.iterdir()) == []  # not even the thumbnail's partial copy


def test_failed_move_rolls_back_files_already_moved(
    tmp_path: Path, outputs: dict[str, Path]
) -> None:
    destination = tmp_path / "dest"
    (destination / "video.mp4").mkdir(parents=True)  # the video's final move will fail
    with pytest.raises(JobError) as excinfo:
        OutputTarget(str(destination)).publish(outputs)
    assert excinfo.value.code == ErrorCode.OUTPUT_WRITE_FAILED
    # Thumbnail and captions had been moved into place (video goes last): removed again.
    assert [p.name for p in destination.iterdir()] == ["video.mp4"]
    assert list((destination / "video.mp4").iterdir()) == []


def test_publish_memory_fsspec(memory_prefix: str, outputs: dict[str, Path]) -> None:
    published = OutputTarget(memory_prefix + "/job-1/").publish(outputs)
    assert published["video"].url == f"{memory_prefix}/job-1/video.mp4"
    fs = fsspec.filesystem("memory")
    for kind, source in outputs.items():
        with fsspec.open(published[kind].url, "rb") as remote:
            data = remote.read()
        assert hashlib.sha256(data).hexdigest() == published[kind].sha256 == _sha(source)
    assert sorted(fs.ls(memory_prefix + "/job-1", detail=False)) == sorted(
        f"/{memory_prefix.removeprefix('memory://')}/job-1/{name}"
        for name in ("video.mp4", "thumbnail.jpg", "captions.vtt")
    )


def test_publish_memory_failure_leaves_nothing(
    memory_prefix: str, outputs: dict[str, Path], tmp_path: Path
) -> None:
    files = {"captions": outputs["captions"], "video": tmp_path / "missing.mp4"}
    with pytest.raises(JobError) as excinfo:
        OutputTarget(memory_prefix + "/talk.mp4").publish(files)
    assert excinfo.value.code == ErrorCode.OUTPUT_WRITE_FAILED
    fs = fsspec.filesystem("memory")
    assert fs.find(memory_prefix) == []


def test_unknown_output_scheme_is_an_invalid_option() -> None:
    with pytest.raises(JobError) as excinfo:
        OutputTarget("nosuchfs://bucket/x/")
    assert excinfo.value.code == ErrorCode.INVALID_OPTION
    assert excinfo.value.field == "output"


def test_scratch_dir_is_always_removed(tmp_path: Path) -> None:
    base = tmp_path / "scratch-base"
    with scratch_dir(base) as work:
        assert work.parent == base
        (work / "sub").mkdir()
        (work / "sub" / "file.bin").write_bytes(b"x")
    assert not work.exists()
    seen: list[Path] = []

    def failing_job() -> None:
        with scratch_dir(base) as failed:
            seen.append(failed)
            (failed / "f").write_bytes(b"x")
            raise RuntimeError("job failed")

    with pytest.raises(RuntimeError):
        failing_job()
    assert not seen[0].exists()
    assert list(base.iterdir()) == []
