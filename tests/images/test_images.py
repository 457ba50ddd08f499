"""Build the operator and CPU runtime images with buildah, then run each as uid 10001.

Skipped unless AVATAR_IMAGE_TESTS=1 (``make images-test`` sets it; CI runs that after ``make
test``): a cold build takes minutes (README "Container images"). Where no registry can be
reached the bases are stand-ins built from Debian's packages (scripts/images_bases.py); the
test reports which base it used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts import images_bases, images_build, images_buildah, images_checks

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("AVATAR_IMAGE_TESTS") != "1",
        reason="builds container images (minutes): set AVATAR_IMAGE_TESTS=1, or `make images-test`",
    ),
    pytest.mark.timeout(2400),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, images_build.Built]:
    images_buildah.require()
    log = tmp_path_factory.mktemp("images") / "build.log"
    root = Path(__file__).resolve().parents[2]
    done = {}
    for target in images_build.DEFAULT:
        try:
            done[target.name] = images_build.build(
                target, root=root, log=log, mirror=images_bases.DEFAULT_MIRROR
            )
        except images_buildah.BuildahError as error:
            pytest.fail(f"building {target.tag} failed (log: {log}):\n{error}")
        print(f"{target.tag}: built in {done[target.name].seconds:.0f} s")
    return done


def test_the_bases_are_named_as_the_dockerfile_names_them(
    built: dict[str, images_build.Built],
) -> None:
    for done in built.values():
        for reference, state in done.bases.items():
            # Here: a stand-in (Docker Hub cannot be reached); elsewhere the real image.
            print(f"{done.target.tag} starts from {reference}: {state.value}")
            assert images_bases.state(reference) is not None


@pytest.mark.parametrize("target", [t.name for t in images_build.DEFAULT])
def test_the_image_runs_as_uid_10001_with_a_health_check(
    built: dict[str, images_build.Built], target: str
) -> None:
    tag = built[target].target.tag
    assert images_checks.image_user(tag) == "10001:10001"
    check = images_checks.health_check(tag)
    assert check is not None
    assert check[0] == "CMD"
    ran = images_checks.run_in(tag, ["id", "-u"])
    assert ran.stdout.strip() == "10001"


def test_the_operator_entry_point_starts(built: dict[str, images_build.Built]) -> None:
    ran = images_checks.run_in(built["operator"].target.tag, ["kopf", "run", "--help"])
    assert ran.returncode == 0, ran.output
    assert "--liveness" in ran.output


def test_the_operator_imports_its_handlers_and_no_engine(
    built: dict[str, images_build.Built],
) -> None:
    tag = built["operator"].target.tag
    ran = images_checks.run_in(tag, ["python", "-c", "import avatar_operator.handlers"])
    assert ran.returncode == 0, ran.output
    ran = images_checks.run_in(tag, ["python", "-c", images_checks.NO_ENGINES])
    assert ran.returncode == 0, ran.output


def test_the_cpu_runtime_finds_faces_with_the_face_landmarker(
    built: dict[str, images_build.Built],
) -> None:
    ran = images_checks.landmarker_check(built["runtime-cpu"].target.tag)
    assert ran.returncode == 0, ran.output


def test_the_cpu_runtime_renders_the_sample_portrait_offline(
    built: dict[str, images_build.Built],
) -> None:
    rendered = images_checks.render_check(built["runtime-cpu"].target.tag)
    mp4 = rendered.mp4
    print(f"rendered in {rendered.ran.seconds:.1f} s inside the image: {mp4}")
    assert mp4.video_streams == 1
    assert mp4.audio_streams == 1
    assert mp4.duration_seconds > 1
    assert mp4.frames >= 25
    assert (mp4.width, mp4.height) == (512, 512)
    # The speech recogniser inside the image heard the text the TTS inside it spoke.
    wer = rendered.summary["wer"]
    assert isinstance(wer, float)
    assert wer <= 0.5
