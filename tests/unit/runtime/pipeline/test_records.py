"""The finished job's record: found only for the same job, the same request, intact outputs.

Real files: a local directory and fsspec's memory filesystem, as ``test_storage``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from avatar_runtime.api.jobs import JobResult, JobSpec, Outputs
from avatar_runtime.pipeline import records
from avatar_runtime.pipeline.storage import OutputTarget
from tests.unit.runtime.factories import job_result


def _published(target: OutputTarget, files: dict[str, Path], journal: Path) -> JobResult:
    published = target.publish(files, journal=journal)
    return job_result().model_copy(
        update={
            "outputs": Outputs(
                video=published["video"],
                thumbnail=published["thumbnail"],
                captions=published["captions"],
            )
        }
    )


@pytest.fixture(params=["local", "memory"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> OutputTarget:
    if request.param == "local":
        return OutputTarget(str(tmp_path / "out"))
    return OutputTarget(f"memory://records-{uuid.uuid4().hex}/videos/")


def _spec(output: str, text: str = "Hello there.") -> JobSpec:
    return JobSpec(portrait="gs://b/p.png", text=text, output=output)


def test_a_finished_job_is_found_by_its_record_with_its_result(
    target: OutputTarget, outputs: dict[str, Path], tmp_path: Path
) -> None:
    spec = _spec(target.output)
    result = _published(target, outputs, tmp_path / "journal")
    records.write(target, job_id="uid-1", spec=spec, result=result, journal=tmp_path / "journal")
    assert records.record_url(target).endswith("manifest.json")
    assert records.find(target, job_id="uid-1", spec=spec) == result


def test_another_job_or_another_request_is_not_it(
    target: OutputTarget, outputs: dict[str, Path], tmp_path: Path
) -> None:
    spec = _spec(target.output)
    result = _published(target, outputs, tmp_path / "journal")
    records.write(target, job_id="uid-1", spec=spec, result=result, journal=tmp_path / "journal")
    assert records.find(target, job_id="uid-2", spec=spec) is None
    assert records.find(target, job_id="uid-1", spec=_spec(target.output, "Bye.")) is None


def test_a_changed_or_missing_output_means_render_again(
    tmp_path: Path, outputs: dict[str, Path]
) -> None:
    target = OutputTarget(str(tmp_path / "out"))
    spec = _spec(target.output)
    result = _published(target, outputs, tmp_path / "journal")
    records.write(target, job_id="uid-1", spec=spec, result=result, journal=tmp_path / "journal")
    video = Path(result.outputs.video.url)
    video.write_bytes(video.read_bytes()[:-1] + b"!")  # same size, other bytes
    assert records.find(target, job_id="uid-1", spec=spec) is None
    video.unlink()
    assert records.find(target, job_id="uid-1", spec=spec) is None


def test_no_record_or_not_a_record_means_render(tmp_path: Path) -> None:
    target = OutputTarget(str(tmp_path / "out"))
    spec = _spec(target.output)
    assert records.find(target, job_id="uid-1", spec=spec) is None
    (tmp_path / "out").mkdir()
    Path(records.record_url(target)).write_text('{"job_id": "uid-1"}')
    assert records.find(target, job_id="uid-1", spec=spec) is None


def test_a_single_file_target_keeps_its_record_beside_it(tmp_path: Path) -> None:
    target = OutputTarget(str(tmp_path / "talk.mp4"))
    assert records.record_url(target) == str(tmp_path / "talk.json")


def test_the_record_and_every_partial_are_in_the_journal_before_they_exist(
    tmp_path: Path, outputs: dict[str, Path]
) -> None:
    target = OutputTarget(str(tmp_path / "out"))
    journal = tmp_path / "journal"
    result = _published(target, outputs, journal)
    records.write(target, job_id="uid-1", spec=_spec(target.output), result=result, journal=journal)
    names = [Path(line).name for line in journal.read_text().splitlines()]
    assert len(names) == 4
    assert {n.split(".partial-")[0] for n in names} == {
        ".video.mp4",
        ".thumbnail.jpg",
        ".captions.vtt",
        ".manifest.json",
    }
    assert not [p for p in (tmp_path / "out").iterdir() if ".partial-" in p.name]
