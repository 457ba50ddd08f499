"""Finding the face with MediaPipe's Face Landmarker (the real model, on the CPU).

The portraits where the Haar cascades go wrong or drift: an upscaled photo, a greyscale
one, a tilted head, two people; and a picture with no face. `make test` installs the
landmarker (scripts/install_face_landmarker.py), so the first test fails if it did not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from skimage import data

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.opencv_renderer.face import FaceFinder, FaceGeometry

ASTRONAUT = data.astronaut()


@pytest.fixture(scope="module")
def finder() -> Iterator[FaceFinder]:
    found = FaceFinder()
    yield found
    found.close()


@pytest.fixture(scope="module")
def reference(finder: FaceFinder) -> FaceGeometry:
    return finder.find(ASTRONAUT)


def test_the_landmarker_is_what_finds_faces(finder: FaceFinder) -> None:
    assert finder.method == "landmarks"


def test_the_mouth_is_between_the_lips_below_the_eyes(reference: FaceGeometry) -> None:
    # The astronaut's face: eyes near x 204 and 246 at y 102, lips meeting near (223, 146).
    assert reference.left_eye.x < reference.mouth_x < reference.right_eye.x
    assert reference.mouth_x == pytest.approx(223, abs=4)
    assert reference.mouth_y == pytest.approx(146, abs=4)
    assert reference.left_eye.y == pytest.approx(102, abs=4)


@pytest.mark.parametrize("side", [768, 1024])
def test_an_upscaled_photo_gives_the_same_face(
    finder: FaceFinder, reference: FaceGeometry, side: int
) -> None:
    found = finder.find(cv2.resize(ASTRONAUT, (side, side), interpolation=cv2.INTER_CUBIC))
    scale = 512 / side
    assert found.mouth_x * scale == pytest.approx(reference.mouth_x, abs=2)
    assert found.mouth_y * scale == pytest.approx(reference.mouth_y, abs=2)
    assert found.width * scale == pytest.approx(reference.width, rel=0.05)


def test_a_greyscale_photo_gives_the_same_face(finder: FaceFinder, reference: FaceGeometry) -> None:
    grey = np.repeat(cv2.cvtColor(ASTRONAUT, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    found = finder.find(grey)
    assert (found.mouth_x, found.mouth_y) == pytest.approx(
        (reference.mouth_x, reference.mouth_y), abs=3
    )


def test_a_tilted_head_keeps_the_mouth_on_the_lips(
    finder: FaceFinder, reference: FaceGeometry
) -> None:
    matrix = cv2.getRotationMatrix2D((256, 256), 15, 1.0)
    found = finder.find(np.asarray(cv2.warpAffine(ASTRONAUT, matrix, (512, 512)), np.uint8))
    expected = matrix @ np.array([reference.mouth_x, reference.mouth_y, 1.0])
    assert math.dist((found.mouth_x, found.mouth_y), tuple(expected)) < 4
    tilt = math.degrees(math.atan2(found.right_eye.y - found.left_eye.y,
                                   found.right_eye.x - found.left_eye.x))  # fmt: skip
    assert tilt == pytest.approx(-15, abs=4)  # the eyes' line turned with the head


def test_of_two_people_the_larger_face_is_the_one_animated(finder: FaceFinder) -> None:
    canvas = np.full((600, 1000, 3), 235, np.uint8)
    canvas[44:556, 20:532] = ASTRONAUT  # large
    canvas[300:556, 700:956] = cv2.resize(ASTRONAUT, (256, 256))  # half the size
    found = finder.find(canvas)
    assert 20 < found.mouth_x < 532


def test_a_picture_without_a_face_is_face_not_found(finder: FaceFinder) -> None:
    with pytest.raises(JobError) as raised:
        finder.find(data.coffee())
    assert raised.value.code is ErrorCode.FACE_NOT_FOUND
    assert raised.value.field == "portrait"
