"""Faces as MediaPipe's Face Landmarker sees them: 478 points per face, on the CPU.

Haar cascades find boxes, and on ordinary photos the wrong ones: on the astronaut portrait
upscaled to 1024 px the largest "face" is the background, and on a small face the lip line
lands under the nose. The Face Landmarker (Google's, Apache-2.0; about 15 ms a portrait
here) finds the face itself and places its eyes, lips and outline, which is what the
renderer animates. The library and its model come from PyPI
(scripts/install_face_landmarker.py); where they are missing the renderer falls back to
the cascades and says so once in the log.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avatar_runtime.engines.base import Frame

log = logging.getLogger(__name__)

MODEL = Path(__file__).resolve().parents[2] / "assets" / "face_landmarker.task"
# Detection on a copy no larger than this: the landmarker works at 256 px inside anyway.
_DETECT_SIDE = 1024
# Mesh indices (MediaPipe's canonical face mesh).
LEFT_EYE = (33, 133, 159, 145)  # outer and inner corners, upper and lower lid (image left)
RIGHT_EYE = (263, 362, 386, 374)
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
MOUTH_CORNERS = (61, 291)
# Contours, image left to right; the lips' upper and lower lines share their corners and
# pair up point by point (the n-th upper point is above the n-th lower one).
UPPER_INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
       377, 400, 378, 379, 365, 397, 288, 361, 323, 454)  # fmt: skip
# The lids' margins, outer corner to inner corner.
LEFT_UPPER_LID = (33, 246, 161, 160, 159, 158, 157, 173, 133)
LEFT_LOWER_LID = (33, 7, 163, 144, 145, 153, 154, 155, 133)
RIGHT_UPPER_LID = (263, 466, 388, 387, 386, 385, 384, 398, 362)
RIGHT_LOWER_LID = (263, 249, 390, 373, 374, 380, 381, 382, 362)


@dataclass(frozen=True)
class FaceMesh:
    """One face's landmarks in pixels of the image given (x, y), shape (478, 2)."""

    points: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)

    def centre(self, indices: tuple[int, ...]) -> tuple[float, float]:
        x, y = self.points[list(indices)].mean(axis=0)
        return float(x), float(y)

    def distance(self, a: int, b: int) -> float:
        return float(np.linalg.norm(self.points[a] - self.points[b]))


def available() -> bool:
    """Whether the library imports and the model is in place."""
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return False
    return MODEL.is_file()


class Landmarker:
    """The Face Landmarker, loaded once; ``faces`` is safe to call from several threads."""

    def __init__(self, model: Path = MODEL, *, max_faces: int = 4) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model)),
            num_faces=max_faces,
            running_mode=vision.RunningMode.IMAGE,
        )
        self._task: Any = vision.FaceLandmarker.create_from_options(options)
        self._lock = threading.Lock()
        self._closed = False
        # Closed before the interpreter tears down: MediaPipe's own __del__ fails then.
        atexit.register(self.close)

    def faces(self, image: Frame) -> list[FaceMesh]:
        """Every face found, largest first, in ``image``'s pixel coordinates."""
        import cv2
        import mediapipe as mp

        height, width = image.shape[:2]
        scale = min(1.0, _DETECT_SIDE / max(height, width))
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale,
                                                      interpolation=cv2.INTER_AREA)  # fmt: skip
        picture = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(small))
        with self._lock:
            found = self._task.detect(picture)
        size = np.array([small.shape[1], small.shape[0]], dtype=np.float64) / scale
        meshes = [
            FaceMesh(np.array([(p.x, p.y) for p in face], dtype=np.float64) * size)
            for face in found.face_landmarks
        ]
        return sorted(meshes, key=lambda m: m.box[2] * m.box[3], reverse=True)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._task.close()
                except RuntimeError:  # at exit, after its thread pool stopped: the OS frees it
                    self._task._handle = None  # so that MediaPipe's own __del__ does nothing
