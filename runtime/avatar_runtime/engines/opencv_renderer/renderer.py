"""The embedded renderer: a portrait brought to life on the CPU with OpenCV.

It stands in for Ditto wherever there is no GPU (laptops, CI, the demo): the
face and its landmarks are found once (MediaPipe's Face Landmarker, or OpenCV's
cascades where it is missing), then each frame warps the mouth and jaw to the
current viseme along the landmarks, blinks and moves the head slightly.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from avatar_runtime.engines.base import Frame, Speech, TimedPhone, frame_count
from avatar_runtime.engines.opencv_renderer import face as faces
from avatar_runtime.engines.opencv_renderer.drawing import FaceAnimator
from avatar_runtime.engines.opencv_renderer.face import FaceFinder, FaceGeometry, frame_portrait
from avatar_runtime.engines.opencv_renderer.motion import build_track
from avatar_runtime.engines.opencv_renderer.visemes import WordPhonemizer


@dataclass(frozen=True)
class OpenCVAvatar:
    """A framed portrait and where its eyes and mouth are."""

    size: int
    image: Frame
    face: FaceGeometry
    seed: int
    warnings: tuple[str, ...] = ()
    """What the job's result tells the user: which of several faces speaks, a small face
    enlarged."""

    @property
    def poster(self) -> Frame:
        return self.image


class OpenCVRenderer:
    name = "embedded"  # what a resource asks for: renderer: embedded
    follows_words = True

    def __init__(self) -> None:
        self._finder = FaceFinder()
        self._phonemizer: WordPhonemizer | None = None

    def prepare(self, portrait: Frame, *, size: int) -> OpenCVAvatar:
        found = self._finder.locate(portrait)
        image, framed = frame_portrait(portrait, found.face, size=size)
        enlarged = framed.width / found.face.width
        soft = faces.soft_face_warning(found.face, enlarged=enlarged, size=size)
        # Same portrait, same blinks and sway: renders are reproducible.
        seed = zlib.crc32(image[:: max(1, size // 32), :: max(1, size // 32)].tobytes())
        return OpenCVAvatar(
            size=size,
            image=image,
            face=framed,
            seed=seed,
            warnings=found.warnings + ((soft,) if soft else ()),
        )

    def frames(self, avatar: OpenCVAvatar, speech: Speech, *, fps: int) -> Iterator[Frame]:
        total = frame_count(speech.duration, fps)
        track = build_track(
            speech, phones=self._phones(speech), fps=fps, frames=total, seed=avatar.seed
        )
        animator = FaceAnimator(avatar.image, avatar.face)
        for i in range(total):
            yield animator.draw(
                opening=float(track.opening[i]),
                spread=float(track.spread[i]),
                press=float(track.press[i]),
                blink=float(track.blink[i]),
                angle=float(track.head_angle[i]),
                dx=float(track.head_dx[i]),
                dy=float(track.head_dy[i]),
                scale=float(track.head_scale[i]),
            )

    def _phones(self, speech: Speech) -> list[TimedPhone] | None:
        """TTS phoneme timings when known, else phonemes spread over the ASR's words."""
        if speech.phones:
            return speech.phones
        if not speech.words:
            return None
        if self._phonemizer is None:
            self._phonemizer = WordPhonemizer()
        return self._phonemizer.phones(speech.words)
