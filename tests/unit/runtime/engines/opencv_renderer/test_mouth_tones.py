"""The inside of the mouth is painted in the portrait's own tones, not in fixed colours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from avatar_runtime.engines.base import Frame
from avatar_runtime.engines.opencv_renderer.drawing import FaceAnimator
from avatar_runtime.engines.opencv_renderer.renderer import OpenCVRenderer


@pytest.fixture(scope="module")
def renderer() -> OpenCVRenderer:
    return OpenCVRenderer()


def _open_mouth(renderer: OpenCVRenderer, portrait: Frame) -> tuple[Frame, Frame]:
    """The framed portrait with the mouth at rest and wide open (an open vowel)."""
    avatar = renderer.prepare(portrait, size=512)
    animator = FaceAnimator(avatar.image, avatar.face)
    still = {"spread": 0.0, "blink": 0.0, "angle": 0.0, "dx": 0.0, "dy": 0.0, "scale": 1.0}
    return animator.draw(opening=0.0, **still), animator.draw(opening=0.9, **still)


def _painted(rest: Frame, open_: Frame) -> np.ndarray:
    changed = np.abs(open_.astype(int) - rest.astype(int)).max(axis=2) > 60
    assert changed.sum() > 200  # the mouth opened
    painted: np.ndarray = open_[changed].astype(float)
    return painted


def test_a_greyscale_photo_gets_a_grey_mouth(renderer: OpenCVRenderer) -> None:
    grey = np.repeat(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    _rest, open_ = _open_mouth(renderer, grey)
    chroma = open_.astype(int).max(axis=2) - open_.astype(int).min(axis=2)
    assert chroma.max() <= 1


def test_the_mouths_tones_follow_the_portraits_colours(renderer: OpenCVRenderer) -> None:
    """Red and blue swapped in the photo: the painted inside swaps with them."""
    photo = data.astronaut()
    warm = _painted(*_open_mouth(renderer, photo)).mean(axis=0)
    cold = _painted(*_open_mouth(renderer, np.ascontiguousarray(photo[..., ::-1]))).mean(axis=0)
    assert warm[0] > warm[2]
    assert cold[2] > cold[0]


def test_the_head_moves_and_the_background_stays(renderer: OpenCVRenderer) -> None:
    """A head turn of 2 degrees with a small shift: the corners (background) do not move."""
    avatar = renderer.prepare(data.astronaut(), size=512)
    animator = FaceAnimator(avatar.image, avatar.face)
    rest = animator.draw(opening=0.0, spread=0.0, blink=0.0, angle=0.0, dx=0.0, dy=0.0, scale=1.0)
    turned = animator.draw(opening=0.0, spread=0.0, blink=0.0, angle=2.0, dx=0.01, dy=0.0,
                           scale=1.0)  # fmt: skip
    corners = [turned[:60, :60], turned[:60, -60:]]
    assert all(np.array_equal(c, r) for c, r in zip(corners, [rest[:60, :60], rest[:60, -60:]],
                                                    strict=True))  # fmt: skip
    face = avatar.face
    y0, y1 = int(face.y), int(face.y + face.height)
    x0, x1 = int(face.x), int(face.x + face.width)
    moved = np.abs(turned[y0:y1, x0:x1].astype(int) - rest[y0:y1, x0:x1].astype(int)).mean()
    assert moved > 3  # the face itself did move
