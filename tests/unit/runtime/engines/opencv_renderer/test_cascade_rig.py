"""Without the landmarker (cascades only) the same warps run on lines drawn in average
proportions: the mouth still opens, the eyes still close."""

from __future__ import annotations

import numpy as np
from skimage import data

from avatar_runtime.engines.opencv_renderer.drawing import FaceAnimator
from avatar_runtime.engines.opencv_renderer.face import FaceFinder, frame_portrait

STILL = {"angle": 0.0, "dx": 0.0, "dy": 0.0, "scale": 1.0}


def test_the_cascades_rig_opens_the_mouth_and_closes_the_eyes() -> None:
    finder = FaceFinder(use_landmarks=False)
    portrait = data.astronaut()
    image, face = frame_portrait(portrait, finder.find(portrait), size=512)
    assert face.lines is None
    animator = FaceAnimator(image, face)
    rest = animator.draw(opening=0.0, spread=0.0, blink=0.0, **STILL)
    opened = animator.draw(opening=1.0, spread=0.0, blink=0.0, **STILL)
    shut = animator.draw(opening=0.0, spread=0.0, blink=1.0, **STILL)
    # The inside of the mouth: pixels much darker than before, just below the lip line.
    inside = (rest.astype(int) - opened.astype(int)).mean(axis=2) > 60
    ys, xs = np.nonzero(inside)
    assert len(xs) > 200
    assert abs(np.median(ys) - face.mouth_y) < face.width * 0.1
    assert abs(np.median(xs) - face.mouth_x) < face.width * 0.1
    eyes = np.abs(shut.astype(int) - rest.astype(int)).max(axis=2) > 40
    ys, _ = np.nonzero(eyes)
    assert len(ys) > 20
    assert abs(np.median(ys) - face.left_eye.y) < face.width * 0.1
