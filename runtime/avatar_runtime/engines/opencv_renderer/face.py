"""Find the face in a portrait and frame it.

MediaPipe's Face Landmarker (``landmarks``) places the eyes and the lips from 478 points
of the face itself; the largest face wins when there are several (the README says so).
Where it is not installed, OpenCV's bundled Haar cascades (inside
``opencv-python-headless``, ~60 ms on a 512 px image) find a box and the eyes, and the lip
line is searched by colour: good on a clear front-facing photo, wrong on many others.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import cv2
import cv2.data
import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import Frame
from avatar_runtime.engines.opencv_renderer import contours, landmarks

log = logging.getLogger(__name__)

# Detection runs on a copy no larger than this: cascades gain nothing from more pixels.
_DETECT_SIDE = 640
# The crop is this many face widths wide: head and shoulders, as on a video call.
_FRAMING = 3.2
# Where the face centre sits in the crop, from the top.
_FACE_HEIGHT_FRACTION = 0.42
# A face narrower than this (pixels, cheek to cheek, in the portrait as given), enlarged
# to fill the video, looks soft: the result says so. Below MIN_FACE_PIXELS there are too
# few pixels to place the lips and lids at all: refused with FaceTooSmall.
SOFT_FACE_PIXELS = 128
SOFT_ENLARGEMENT = 2.0  # ... and enlarged this much or more
MIN_FACE_PIXELS = 40
# Of several faces, the largest whose nose sits within this share of the eyes' span from
# their middle (a face turned no more than about 30 degrees) is the one that speaks.
_FRONTAL_OFFSET = 0.25
# A face whose nose sits this far out (turned about 50 degrees or more) shows too little of its
# far side to animate: with no front-facing face, it is refused as FaceNotFound.
_TURNED_OFFSET = 0.45


@dataclass(frozen=True)
class Eye:
    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class FaceGeometry:
    """Face landmarks in pixel coordinates of the image they were found in."""

    x: float
    y: float
    width: float
    height: float
    left_eye: Eye
    right_eye: Eye
    mouth_x: float
    mouth_y: float
    mouth_width: float
    lines: contours.Contours | None = field(default=None, compare=False)
    """The lips, jaw and lids where the landmarker placed them (None from the cascades)."""

    @property
    def chin_y(self) -> float:
        return self.y + self.height * 1.05

    def transformed(self, *, scale: float, dx: float, dy: float) -> FaceGeometry:
        """The same landmarks after ``p' = p * scale + (dx, dy)``."""

        def eye(e: Eye) -> Eye:
            return Eye(e.x * scale + dx, e.y * scale + dy, e.radius * scale)

        return FaceGeometry(
            x=self.x * scale + dx,
            y=self.y * scale + dy,
            width=self.width * scale,
            height=self.height * scale,
            left_eye=eye(self.left_eye),
            right_eye=eye(self.right_eye),
            mouth_x=self.mouth_x * scale + dx,
            mouth_y=self.mouth_y * scale + dy,
            mouth_width=self.mouth_width * scale,
            lines=None if self.lines is None else self.lines.transformed(scale=scale, dx=dx, dy=dy),
        )

    def contours(self) -> contours.Contours:
        """The face's lines: the landmarker's, or drawn in average proportions."""
        if self.lines is not None:
            return self.lines
        eyes = (self.left_eye, self.right_eye)
        return contours.drawn(
            mouth=(self.mouth_x, self.mouth_y),
            mouth_width=self.mouth_width,
            chin_y=self.chin_y,
            eyes=((eyes[0].x, eyes[0].y, eyes[0].radius), (eyes[1].x, eyes[1].y, eyes[1].radius)),
        )


def _cascade(name: str) -> cv2.CascadeClassifier:
    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if classifier.empty():
        raise JobError(ErrorCode.MODEL_UNAVAILABLE, f"OpenCV cascade {name} is missing")
    return classifier


_NO_FACE = (
    "No face found in the portrait. Use a front-facing photo where the face is clearly"
    " visible and at least 8% of the image's width."
)


@dataclass(frozen=True)
class Found:
    """The face to animate, and what the user should hear about the choice."""

    face: FaceGeometry
    warnings: tuple[str, ...] = ()


class FaceFinder:
    """The landmarker (or the cascades); ``locate`` is safe to call from several threads."""

    def __init__(self, *, use_landmarks: bool | None = None) -> None:
        """``use_landmarks``: None takes the landmarker where it is installed."""
        if use_landmarks is None:
            use_landmarks = landmarks.available()
            if not use_landmarks:
                log.warning("MediaPipe's Face Landmarker is not installed (run"
                            " scripts/install_face_landmarker.py): finding faces with Haar"
                            " cascades, which miss or misplace many")  # fmt: skip
        self._landmarker = None
        if use_landmarks:
            try:
                self._landmarker = landmarks.Landmarker()
            except (OSError, RuntimeError) as exc:  # its C library's own needs (libEGL)
                log.warning("MediaPipe's Face Landmarker cannot start (%s): finding faces"
                            " with Haar cascades", exc)  # fmt: skip
        self.method = "landmarks" if self._landmarker is not None else "cascades"
        self._faces = _cascade("haarcascade_frontalface_default.xml")
        self._faces_alt = _cascade("haarcascade_frontalface_alt2.xml")
        self._eyes = _cascade("haarcascade_eye.xml")

    def find(self, image: Frame) -> FaceGeometry:
        """The face to animate (``locate``), without the warnings."""
        return self.locate(image).face

    def locate(self, image: Frame) -> Found:
        """The largest front-facing face, with a warning when there were several; raises
        FaceNotFound when there is none, FaceTooSmall when it is too small to animate."""
        warnings: list[str] = []
        if self._landmarker is not None:
            faces = self._landmarker.faces(image) or self._faces_in_candidates(image)
            if not faces:
                raise JobError(ErrorCode.FACE_NOT_FOUND, _NO_FACE, field="portrait")
            chosen = next((mesh for mesh in faces if _frontal(mesh)), faces[0])
            if abs(_turn(chosen)) >= _TURNED_OFFSET:
                raise JobError(
                    ErrorCode.FACE_NOT_FOUND,
                    "The face is turned too far to the side to animate (its nose is near the"
                    " edge of the face). Use a portrait that looks at the camera, or at most"
                    " three-quarter.",
                    field="portrait",
                )
            face = _from_mesh(chosen)
            if len(faces) > 1:
                warnings.append(
                    f"The portrait shows {len(faces)} faces; the largest front-facing one"
                    f" ({face.width:.0f} px wide, at x {face.x:.0f}-{face.x + face.width:.0f},"
                    f" y {face.y:.0f}-{face.y + face.height:.0f}) is the one animated. Crop"
                    " the portrait to the face that should speak to choose another."
                )
        else:
            face = self._find_by_cascades(image)
        if face.width < MIN_FACE_PIXELS:
            raise JobError(
                ErrorCode.FACE_TOO_SMALL,
                f"The face is {face.width:.0f} px wide in the portrait; the embedded renderer"
                f" needs at least {MIN_FACE_PIXELS} px to place the lips and eyes. Use a"
                f" larger or closer photo (a face {SOFT_FACE_PIXELS} px wide or more looks"
                " sharp).",
                field="portrait",
            )
        return Found(face=face, warnings=tuple(warnings))

    def _faces_in_candidates(self, image: Frame) -> list[landmarks.FaceMesh]:
        """Faces the landmarker's detector (made for faces that fill much of the picture)
        misses in a wide shot: each cascade box, largest first, cropped and looked at
        again. A box with no face in it (a cascade's false positive) finds nothing."""
        assert self._landmarker is not None
        height, width = image.shape[:2]
        for x, y, w, h in self._candidates(image):
            side = min(max(height, width), int(max(w, h) * 3))
            left = int(np.clip(x + w / 2 - side / 2, 0, max(0, width - side)))
            top = int(np.clip(y + h / 2 - side / 2, 0, max(0, height - side)))
            crop = image[top : top + side, left : left + side]
            found = self._landmarker.faces(np.ascontiguousarray(crop))
            if found:
                offset = np.array([left, top], dtype=np.float64)
                return [landmarks.FaceMesh(mesh.points + offset) for mesh in found]
        return []

    def _candidates(self, image: Frame) -> list[tuple[float, float, float, float]]:
        """The cascades' face boxes in ``image``'s pixels, largest first."""
        scale = min(1.0, _DETECT_SIDE / max(image.shape[:2]))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        found = self._faces.detectMultiScale(gray, 1.1, 4, minSize=(24, 24))
        boxes = [tuple(float(v) / scale for v in box) for box in found]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()

    def _find_by_cascades(self, image: Frame) -> FaceGeometry:
        scale = min(1.0, _DETECT_SIDE / max(image.shape[:2]))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(24, int(min(gray.shape) * 0.08))
        faces = self._faces.detectMultiScale(gray, 1.1, 5, minSize=(min_side, min_side))
        if len(faces) == 0:
            faces = self._faces_alt.detectMultiScale(gray, 1.05, 4, minSize=(min_side, min_side))
        if len(faces) == 0:
            raise JobError(ErrorCode.FACE_NOT_FOUND, _NO_FACE, field="portrait")
        x, y, w, h = (float(v) for v in max(faces, key=lambda f: f[2] * f[3]))
        lab_a = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)[..., 1].astype(np.float32)
        geometry = self._landmarks(gray, lab_a, x, y, w, h)
        return geometry.transformed(scale=1.0 / scale, dx=0.0, dy=0.0)

    def _landmarks(
        self, gray: np.ndarray, lab_a: np.ndarray, x: float, y: float, w: float, h: float
    ) -> FaceGeometry:
        # Eyes: searched in the upper half of the face; faces' proportions fill in a miss.
        top = gray[int(y + h * 0.15) : int(y + h * 0.58), int(x) : int(x + w)]
        found = self._eyes.detectMultiScale(
            top, 1.1, 4, minSize=(max(6, int(w * 0.12)),) * 2, maxSize=(int(w * 0.4),) * 2
        )
        centres = sorted(
            ((x + ex + ew / 2, y + h * 0.15 + ey + eh / 2, ew / 2) for ex, ey, ew, eh in found),
            key=lambda c: c[0],
        )
        left = [c for c in centres if c[0] < x + w / 2]
        right = [c for c in centres if c[0] >= x + w / 2]
        default_r = w * 0.1
        lx, ly, lr = left[0] if left else (x + w * 0.3, y + h * 0.4, default_r)
        rx, ry, rr = right[-1] if right else (x + w * 0.7, y + h * 0.4, default_r)
        eye_y = (ly + ry) / 2
        span = rx - lx
        mouth_x = (lx + rx) / 2
        mouth_y = _lip_line(lab_a, mouth_x=mouth_x, guess=eye_y + span * 0.95, span=span)
        return FaceGeometry(
            x=x,
            y=y,
            width=w,
            height=h,
            left_eye=Eye(lx, ly, lr),
            right_eye=Eye(rx, ry, rr),
            mouth_x=mouth_x,
            mouth_y=mouth_y,
            mouth_width=span * 1.0,
        )


def _turn(mesh: landmarks.FaceMesh) -> float:
    """How far the nose tip sits from the middle of the eyes, in eye spans along their
    line: 0 looking at the camera, about 0.25 at 30 degrees, 0.45 near 50, 0.7 at 60."""
    left, right, nose = mesh.points[33], mesh.points[263], mesh.points[1]
    span = float(np.linalg.norm(right - left))
    if span < 1e-6:
        return math.inf
    return float((nose - (left + right) / 2) @ (right - left)) / span**2


def _frontal(mesh: landmarks.FaceMesh) -> bool:
    """Whether the face looks at the camera: its nose tip near the middle of the eyes."""
    return abs(_turn(mesh)) < _FRONTAL_OFFSET


def soft_face_warning(face: FaceGeometry, *, enlarged: float, size: int) -> str | None:
    """The warning for a small face enlarged to fill the video, if it is one."""
    if face.width >= SOFT_FACE_PIXELS or enlarged < SOFT_ENLARGEMENT:
        return None
    return (
        f"The face is only {face.width:.0f} px wide in the portrait; it is enlarged"
        f" {enlarged:.1f}x to fill the {size} px video and will look soft. A portrait with"
        f" the face {SOFT_FACE_PIXELS} px wide or more looks sharp."
    )


def _from_mesh(mesh: landmarks.FaceMesh) -> FaceGeometry:
    """The renderer's geometry from the mesh, in the proportions the drawing and the framing
    were made for: a square box from the forehead (a cascade's), eye radii of about an eye's
    width, the mouth as wide as the eyes are apart, its centre between the inner lips."""
    x, top, w, _ = mesh.box
    y, h = top - 0.05 * w, w
    lx, ly = mesh.centre(landmarks.LEFT_EYE)
    rx, ry = mesh.centre(landmarks.RIGHT_EYE)
    left_r = mesh.distance(*landmarks.LEFT_EYE[:2]) * 0.7
    right_r = mesh.distance(*landmarks.RIGHT_EYE[:2]) * 0.7
    mouth_x, mouth_y = mesh.centre((landmarks.UPPER_INNER_LIP, landmarks.LOWER_INNER_LIP))
    return FaceGeometry(
        x=x,
        y=y,
        width=w,
        height=h,
        left_eye=Eye(lx, ly, left_r),
        right_eye=Eye(rx, ry, right_r),
        mouth_x=mouth_x,
        mouth_y=mouth_y,
        mouth_width=abs(rx - lx),
        lines=contours.from_mesh(mesh.points),
    )


def _lip_line(lab_a: np.ndarray, *, mouth_x: float, guess: float, span: float) -> float:
    """Where the lips meet: midway between the upper and the lower lip.

    Lips are redder than skin (higher Lab a*), teeth and the gap between the lips
    are not, so the rows across the mouth show two a* peaks, one per lip. The
    darkest row is no good: on a smile it is the edge of the upper teeth.
    """
    top = max(0, int(guess - span * 0.35))
    half = max(2, int(span * 0.25))
    band = lab_a[top : int(guess + span * 0.4), max(0, int(mouth_x) - half) : int(mouth_x) + half]
    if band.shape[0] < 5 or band.shape[1] < 2:
        return guess
    profile = cv2.GaussianBlur(band.mean(axis=1).reshape(-1, 1), (1, 5), 0).ravel()
    floor = float(np.median(profile))
    peaks = [
        i
        for i in range(1, len(profile) - 1)
        if profile[i] >= profile[i - 1] and profile[i] > profile[i + 1] and profile[i] > floor + 2
    ]
    if not peaks:
        return guess
    best: tuple[float, float] | None = None  # (score, centre)
    for i, upper in enumerate(peaks):
        for lower in peaks[i + 1 :]:
            if not span * 0.05 <= lower - upper <= span * 0.45:
                continue
            centre = top + (upper + lower) / 2
            score = profile[upper] + profile[lower] - abs(centre - guess) / span * 10
            if best is None or score > best[0]:
                best = (score, centre)
    if best is None:  # lips pressed into one red band: its peak is the line
        strongest = max(peaks, key=lambda i: profile[i])
        return float(top + strongest)
    return best[1]


def frame_portrait(image: Frame, face: FaceGeometry, *, size: int) -> tuple[Frame, FaceGeometry]:
    """Crop a square head-and-shoulders view around the face and scale it to ``size``."""
    height, width = image.shape[:2]
    side = min(float(min(height, width)), face.width * _FRAMING)
    centre_x = face.x + face.width / 2
    centre_y = face.y + face.height / 2
    left = float(np.clip(centre_x - side / 2, 0, width - side))
    top = float(np.clip(centre_y - side * _FACE_HEIGHT_FRACTION, 0, height - side))
    crop = image[int(top) : int(top) + int(side), int(left) : int(left) + int(side)]
    scale = size / crop.shape[0]
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    framed = cv2.resize(crop, (size, size), interpolation=interpolation)
    moved = face.transformed(scale=scale, dx=-int(left) * scale, dy=-int(top) * scale)
    return np.ascontiguousarray(framed), moved
