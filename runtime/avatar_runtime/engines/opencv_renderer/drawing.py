"""Draw one frame: open the mouth, close the eyes, move the head.

The mouth and jaw (``mouth``) and the lids (``eyes``) are warped along the face's
landmarks in small regions, with ``cv2.remap`` on fields prepared once per job; one affine
warp moves the head, blended over the still background through a feathered mask of the
head and neck. That keeps the renderer at hundreds of frames/s at 512x512 on one core.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from avatar_runtime.engines.base import Frame
from avatar_runtime.engines.opencv_renderer.eyes import EyeRig
from avatar_runtime.engines.opencv_renderer.face import FaceGeometry
from avatar_runtime.engines.opencv_renderer.mouth import MouthPose, MouthRig

FloatArray = npt.NDArray[np.float32]


def _head_mask(size: int, face: FaceGeometry) -> tuple[FloatArray, tuple[int, int, int, int]]:
    """Where the head and neck are (1) and the background (0), feathered, with its box.

    An ellipse over the face and hair, and the neck below it down to the frame's edge; the
    feather is wide enough that a degree or two of head motion leaves no seam.
    """
    cx, cy = face.x + face.width / 2, face.y + face.height * 0.45
    mask = np.zeros((size, size), np.float32)
    axes = (int(face.width * 0.95), int(face.height * 1.05))
    cv2.ellipse(mask, (int(cx), int(cy)), axes, 0, 0, 360, 1.0, -1)
    neck = int(face.width * 0.42)
    cv2.rectangle(mask, (int(cx) - neck, int(cy)), (int(cx) + neck, size - 1), 1.0, -1)
    feather = max(3, int(face.width * 0.25)) | 1
    soft = np.asarray(cv2.GaussianBlur(mask, (feather, feather), 0), np.float32)
    ys, xs = np.nonzero(soft > 1e-3)
    if len(xs) == 0:
        return np.zeros((1, 1), np.float32), (0, 0, 1, 1)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    return np.ascontiguousarray(soft[y0:y1, x0:x1]), (x0, y0, x1, y1)


class FaceAnimator:
    """Everything per-job that the drawing loop needs, prepared once."""

    def __init__(self, portrait: Frame, face: FaceGeometry) -> None:
        self.portrait = portrait
        self.size = portrait.shape[0]
        self.face = face
        lines = face.contours()
        self.mouth = MouthRig(portrait, lines)
        self._eyes = [
            EyeRig(portrait, lids, tilt=lines.tilt) for lids in (lines.left_lids, lines.right_lids)
        ]
        self._pivot = (
            face.x + face.width / 2,
            min(self.size - 1.0, face.chin_y + face.height * 0.6),
        )
        self._head, self._head_box = _head_mask(self.size, face)
        self._background = np.ascontiguousarray(1.0 - self._head)

    def draw(
        self,
        *,
        opening: float,
        spread: float,
        blink: float,
        angle: float,
        dx: float,
        dy: float,
        scale: float,
        press: float = 0.0,
    ) -> Frame:
        """One frame: ``opening`` 0..1, ``spread`` -1 (rounded) .. 1, ``press`` 0..1 (lips
        pressed together), ``blink`` 0..1, head ``angle`` (degrees), shift ``dx`` ``dy``
        (fractions of the frame) and ``scale``."""
        frame = self.portrait.copy()
        if opening > 0.01 or abs(spread) > 0.01 or press > 0.01:
            self.mouth.draw(frame, MouthPose(opening=opening, spread=spread, press=press))
        if blink > 0.02:
            for eye in self._eyes:
                eye.draw(frame, blink)
        # The head and neck move; the background stays (a head, not a camera, moves). Only
        # the head's box is warped: its matrix is the frame's, shifted to the box.
        x0, y0, x1, y1 = self._head_box
        matrix = cv2.getRotationMatrix2D(self._pivot, angle, scale)
        matrix[0, 2] += dx * self.size - x0
        matrix[1, 2] += dy * self.size - y0
        moved = cv2.warpAffine(
            frame,
            matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        )
        frame[y0:y1, x0:x1] = cv2.blendLinear(
            moved, np.ascontiguousarray(frame[y0:y1, x0:x1]), self._head, self._background
        )
        return frame
