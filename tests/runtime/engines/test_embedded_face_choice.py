"""Which face the embedded renderer animates, and what the job's result says about it.

Several faces: the largest front-facing one speaks, and the result's ``warnings`` say so
(Ditto refuses with SeveralFaces instead). A small face is enlarged to fill the video with
a warning that it will look soft; one too small to place the lips is FaceTooSmall.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobSpec
from avatar_runtime.engines.opencv_renderer import face as faces
from avatar_runtime.engines.opencv_renderer import landmarks
from avatar_runtime.engines.opencv_renderer.drawing import FaceAnimator
from avatar_runtime.engines.opencv_renderer.renderer import OpenCVRenderer
from avatar_runtime.pipeline.runner import Pipeline

ASTRONAUT = data.astronaut()


def two_people() -> np.ndarray:
    """The astronaut's head twice, side by side: 180 px and 120 px wide faces."""
    head = ASTRONAUT[30:330, 90:370]
    canvas = np.full((640, 1000, 3), 235, np.uint8)
    canvas[20:620, 10:570] = cv2.resize(head, (560, 600))
    canvas[200:600, 600:973] = cv2.resize(head, (373, 400))
    return canvas


def small_face(side: int) -> np.ndarray:
    """The astronaut shrunk to ``side`` px in a corner of a 512 px picture."""
    canvas = np.full((512, 512, 3), 235, np.uint8)
    canvas[:side, :side] = cv2.resize(ASTRONAUT, (side, side), interpolation=cv2.INTER_AREA)
    return canvas


@pytest.fixture(scope="module")
def renderer() -> OpenCVRenderer:
    return OpenCVRenderer()


def test_of_several_faces_the_largest_speaks_and_the_result_says_so(
    renderer: OpenCVRenderer,
) -> None:
    avatar = renderer.prepare(two_people(), size=512)
    assert len(avatar.warnings) == 1
    assert "2 faces" in avatar.warnings[0]
    assert "largest front-facing" in avatar.warnings[0]
    found = faces.FaceFinder().locate(two_people()).face
    assert found.width == pytest.approx(180, abs=6)
    assert found.x < 570
    opened = FaceAnimator(avatar.image, avatar.face).draw(
        opening=1.0, spread=0.0, blink=0.0, angle=0.0, dx=0.0, dy=0.0, scale=1.0
    )
    changed = np.abs(opened.astype(int) - avatar.image.astype(int)).max(axis=2) > 40
    _, xs = np.nonzero(changed)
    assert abs(np.median(xs) - avatar.face.mouth_x) < 0.1 * avatar.face.width


def test_one_clear_face_brings_no_warning(renderer: OpenCVRenderer) -> None:
    assert renderer.prepare(ASTRONAUT, size=512).warnings == ()


def test_a_small_face_enlarged_to_fill_the_video_is_said_to_look_soft(
    renderer: OpenCVRenderer,
) -> None:
    avatar = renderer.prepare(small_face(256), size=512)  # a 46 px face, enlarged 3.5x
    assert len(avatar.warnings) == 1
    assert "46 px wide" in avatar.warnings[0]
    assert "enlarged 3.5x" in avatar.warnings[0]
    # The same face into a small video is not enlarged as much: no warning.
    assert renderer.prepare(small_face(256), size=192).warnings == ()


def test_a_face_too_small_to_place_the_lips_is_face_too_small(
    renderer: OpenCVRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The landmarker's detector finds no face much under 45 px, so the floor is raised
    here to reach the check with the 46 px face."""
    monkeypatch.setattr(faces, "MIN_FACE_PIXELS", 50)
    with pytest.raises(JobError) as raised:
        renderer.prepare(small_face(256), size=512)
    assert raised.value.code is ErrorCode.FACE_TOO_SMALL
    assert raised.value.field == "portrait"
    assert "46 px" in raised.value.message


@pytest.mark.slow
def test_the_jobs_result_carries_the_warning(pipeline: Pipeline, tmp_path: Path) -> None:
    portrait = tmp_path / "two.png"
    Image.fromarray(two_people()).save(portrait)
    spec = JobSpec(portrait=str(portrait), text="Hello there.", output=str(tmp_path / "out"),
                   resolution=128)  # fmt: skip
    result = pipeline.run(spec)
    assert len(result.warnings) == 1
    assert "2 faces" in result.warnings[0]


def test_a_face_turned_near_profile_is_refused_and_a_three_quarter_one_animated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The astronaut's own landmarks, the nose tip moved along the eyes' line: at 0.3 eye
    spans (about 35 degrees) the face is animated, at 0.6 (about 55 degrees) refused."""
    finder = faces.FaceFinder()
    if finder._landmarker is None:
        pytest.skip("MediaPipe's Face Landmarker is not installed")
    (mesh,) = finder._landmarker.faces(ASTRONAUT)
    left, right = mesh.points[33], mesh.points[263]
    middle, along = (left + right) / 2, right - left

    def turned(offset: float) -> list[landmarks.FaceMesh]:
        points = mesh.points.copy()
        points[1] = middle + along * offset + [0, 30]  # below the eyes, moved sideways
        return [landmarks.FaceMesh(points)]

    monkeypatch.setattr(finder._landmarker, "faces", lambda image: turned(0.3))
    assert finder.locate(ASTRONAUT).face.width == pytest.approx(90, abs=8)
    monkeypatch.setattr(finder._landmarker, "faces", lambda image: turned(0.6))
    with pytest.raises(JobError) as refused:
        finder.locate(ASTRONAUT)
    assert refused.value.code is ErrorCode.FACE_NOT_FOUND
    assert "turned too far" in str(refused.value)
