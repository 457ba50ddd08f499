"""Ditto (antgroup/ditto-talkinghead) as a renderer: its code and weights come from the volume.

Ditto's code is never part of this repository: it is imported from
``MODEL_DIR/ditto/code`` (a checkout of the public repository, Apache-2.0) and
its checkpoints are read from ``MODEL_DIR/ditto/checkpoints``, TensorRT
engines where present and TensorRT imports, the PyTorch weights otherwise.

Ditto's ``StreamSDK`` works from files and writes its own MP4; this adapter
keeps its pipeline (registration, audio features, motion diffusion, warping,
decoding, put-back) and takes the frames where Ditto would write them, so the
runtime's encoder adds the audio and the captions as for any renderer. One SDK
(one copy of the weights) per job slot, as each slot owns its renderer. A
portrait's registration (face detection, crop, keypoints) is cached by the
content hash of the framed portrait, so the same face is registered once.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import logging
import queue
import sys
import tempfile
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import AudioArray, Frame, Speech, frame_count
from avatar_runtime.engines.model_volume import DITTO_CHECKPOINTS_DIR, DITTO_CODE_DIR

log = logging.getLogger(__name__)

DITTO_FPS = 25  # Ditto's audio features and motion run at 25 frames per second
DITTO_RATE = 16_000
# Online mode, as Ditto's own inference script feeds it: HuBERT windows of (3, 5, 2)
# feature frames of 640 samples (past context, new, look-ahead), one every 5 frames (0.2 s),
# after 3 frames of leading silence; the last windows are padded with silence.
ONLINE_CHUNK = (3, 5, 2)
ONLINE_WINDOW = int(sum(ONLINE_CHUNK) * 0.04 * DITTO_RATE) + 80  # 6480 samples
ONLINE_STEP = ONLINE_CHUNK[1] * 640  # 3200 samples
_REGISTRATIONS_KEPT = 32
MIN_FACE_SHARE = 0.1  # of the framed portrait's side: smaller faces are blown up into blur
OTHER_FACE_SHARE = 0.25  # a second face this big (by area) could be the speaker as well


@dataclass(frozen=True)
class DittoAvatar:
    size: int
    poster: Frame
    path: Path
    """The framed portrait as Ditto reads it (a PNG named by its content hash)."""


class _NoVideoFile:
    """Stands in Ditto's pipeline module for its MP4 writer class: ``setup`` builds one
    per job, which would start an ffmpeg process (and need imageio-ffmpeg) for a file
    never written. The adapter swaps in a ``_FrameSink`` before any frame exists."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        pass

    def __call__(self, image: Any, fmt: str = "bgr") -> None:
        raise RuntimeError("Ditto wrote a frame before the adapter took over its writer")

    def close(self) -> None:
        pass


class _FrameSink:
    """Stands where Ditto's video writer stands: frames go to the adapter, not to a file."""

    def __init__(self, frames: queue.Queue[Frame | None]) -> None:
        self._frames = frames

    def __call__(self, image: Any, fmt: str = "bgr") -> None:
        frame = np.asarray(image)
        self._frames.put(frame[..., ::-1] if fmt == "bgr" else frame)

    def close(self) -> None:
        self._frames.put(None)


def _build_cython_in_tmp() -> None:
    """Ditto's put-back imports a Cython helper through ``pyximport``, which compiles it at
    the first import into ``~/.pyxbld``; a pod's user has no writable home (read-only root,
    only /tmp is writable). The first ``pyximport.install`` decides where builds go, so
    installing it here first, into the temporary directory, makes Ditto's own call a no-op."""
    try:
        import pyximport  # type: ignore[import-untyped]
    except ImportError:
        return  # Ditto's import then names what is missing
    pyximport.install(build_dir=str(Path(tempfile.gettempdir()) / "ditto-pyxbld"), language_level=3)


def _checkpoints(model_dir: Path) -> tuple[Path, Path]:
    """TensorRT engines where present and usable, else the PyTorch weights."""
    root = model_dir / DITTO_CHECKPOINTS_DIR
    engines = sorted(root.glob("ditto_trt_*"))
    if engines:
        try:
            importlib.import_module("tensorrt")
        except ImportError:
            log.info("TensorRT engines present but tensorrt is not installed: using PyTorch")
        else:
            return root / "ditto_cfg" / "v0.4_hubert_cfg_trt.pkl", engines[0]
    return root / "ditto_cfg" / "v0.4_hubert_cfg_pytorch.pkl", root / "ditto_pytorch"


def _framed(portrait: Frame, size: int) -> Frame:
    """The centred square of the portrait at ``size``: what Ditto animates."""
    height, width = portrait.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = portrait[top : top + side, left : left + side]
    resized = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized)


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == DITTO_RATE:
        return audio.astype(np.float32)
    count = round(len(audio) * DITTO_RATE / rate)
    positions = np.arange(count) * (rate / DITTO_RATE)
    resampled: np.ndarray = np.interp(positions, np.arange(len(audio)), audio)
    return resampled.astype(np.float32)


def check_faces(registrar: Any, framed: Frame) -> None:
    """Ditto animates the largest face it detects, whatever else is in the picture:
    refuse the portraits where that guess would be wrong or blurred, with Ditto's own
    face detector, before any registration work."""
    helpers = getattr(registrar, "source2info", None)
    detector = getattr(helpers, "insightface_det", None)
    if detector is None:
        return  # a Ditto without its detector exposed: registration decides alone
    detections, _ = detector(framed)
    sides = sorted(
        ((float(x2 - x1), float(y2 - y1)) for x1, y1, x2, y2, *_ in np.asarray(detections)),
        key=lambda side: side[0] * side[1],
        reverse=True,
    )
    if not sides:
        raise JobError(
            ErrorCode.FACE_NOT_FOUND,
            "No face found in the portrait. Use a front-facing photo where the face is"
            " clearly visible.",
            field="portrait",
        )
    width, height = sides[0]
    share = min(width, height) / framed.shape[0]
    if share < MIN_FACE_SHARE:
        raise JobError(
            ErrorCode.FACE_TOO_SMALL,
            f"The face spans {share:.0%} of the framed portrait's width; it needs at least"
            f" {MIN_FACE_SHARE:.0%}. Crop the portrait closer to the face.",
            field="portrait",
        )
    rivals = [s for s in sides[1:] if s[0] * s[1] >= OTHER_FACE_SHARE * width * height]
    if rivals:
        raise JobError(
            ErrorCode.SEVERAL_FACES,
            f"The portrait shows {1 + len(rivals)} faces of similar size, so which one"
            " should speak is unclear. Crop the portrait to one face.",
            field="portrait",
        )


class DittoRenderer:
    name = "ditto"
    follows_words = False  # driven by the audio itself (HuBERT features)

    def __init__(
        self, model_dir: Path, *, scratch: Path | None = None, online: bool = False
    ) -> None:
        code = str(model_dir / DITTO_CODE_DIR)
        if code not in sys.path:
            sys.path.insert(0, code)
        self.streams_audio = online
        """Online mode: frames start from the first chunk of speech, while the rest is made."""
        module = "stream_pipeline_online" if online else "stream_pipeline_offline"
        _build_cython_in_tmp()
        pipeline = importlib.import_module(module)
        if hasattr(pipeline, "VideoWriterByImageIO"):
            setattr(pipeline, "VideoWriterByImageIO", _NoVideoFile)  # noqa: B010 - untyped module
        cfg, data_root = _checkpoints(model_dir)
        log.info("loading Ditto from %s (%s)", data_root, cfg.name)
        self._sdk = pipeline.StreamSDK(str(cfg), str(data_root))
        self._register_uncached = self._sdk.avatar_registrar
        self._sdk.avatar_registrar = self._register
        self._registrations: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._scratch = scratch or Path(tempfile.mkdtemp(prefix="ditto-avatars-"))
        self._scratch.mkdir(parents=True, exist_ok=True)
        self.registrations = 0
        """Registrations actually run (not served from the cache)."""

    @staticmethod
    def _key(source_path: str, kwargs: dict[str, Any]) -> str:
        return Path(source_path).stem + repr(sorted(kwargs.items()))

    def _register(self, source_path: str, **kwargs: Any) -> Any:
        key = self._key(source_path, kwargs)
        if key in self._registrations:
            self._registrations.move_to_end(key)
            return self._registrations[key]
        info = self._register_uncached(source_path, **kwargs)
        self.registrations += 1
        self._registrations[key] = info
        while len(self._registrations) > _REGISTRATIONS_KEPT:
            self._registrations.popitem(last=False)
        return info

    def prepare(self, portrait: Frame, *, size: int) -> DittoAvatar:
        framed = _framed(portrait, size)
        digest = hashlib.sha256(framed.tobytes()).hexdigest()[:32]
        path = self._scratch / f"{digest}-{size}.png"
        if not path.exists():
            cv2.imwrite(str(path), cv2.cvtColor(framed, cv2.COLOR_RGB2BGR))
        options: dict[str, Any] = {"max_dim": 1920, "n_frames": -1}
        if self._key(str(path), options) not in self._registrations:
            self._check_faces(framed)
        try:
            self._register(str(path), **options)
        except Exception as exc:  # Ditto says "no face" in several ways: one code for all
            raise JobError(
                ErrorCode.FACE_NOT_FOUND,
                f"Ditto could not register a face in the portrait: {exc}",
                field="portrait",
            ) from exc
        return DittoAvatar(size=size, poster=framed, path=path)

    def _check_faces(self, framed: Frame) -> None:
        check_faces(self._register_uncached, framed)

    def frames(self, avatar: DittoAvatar, speech: Speech, *, fps: int) -> Generator[Frame]:
        if self.streams_audio:
            whole = iter([speech.samples])
            return self.stream(avatar, whole, sample_rate=speech.sample_rate, fps=fps)
        return self._offline(avatar, speech, fps=fps)

    def stream(
        self, avatar: DittoAvatar, audio: Iterator[AudioArray], *, sample_rate: int, fps: int
    ) -> Generator[Frame]:
        """Online mode: frames as the speech arrives; ``frame_count(total, fps)`` in all.

        A feeder thread hands Ditto's ``run_chunk`` each window as soon as the speech
        covers it, so the first frames come while the TTS is still speaking.
        """
        sink: queue.Queue[Frame | None] = queue.Queue(maxsize=64)
        sdk = self._sdk
        failure: list[BaseException] = []
        received = [0]  # samples of speech so far, at ``sample_rate``

        def feed() -> None:
            buffer = np.zeros(ONLINE_CHUNK[0] * 640, dtype=np.float32)
            try:
                for piece in audio:
                    received[0] += len(piece)
                    buffer = np.concatenate([buffer, _to_16k(piece, sample_rate)])
                    while len(buffer) >= ONLINE_WINDOW:
                        sdk.run_chunk(buffer[:ONLINE_WINDOW], ONLINE_CHUNK)
                        buffer = buffer[ONLINE_STEP:]
                for start in range(0, len(buffer), ONLINE_STEP):
                    window = buffer[start : start + ONLINE_WINDOW]
                    sdk.run_chunk(np.pad(window, (0, ONLINE_WINDOW - len(window))), ONLINE_CHUNK)
                sdk.close()  # flushes Ditto's threads; its writer (our sink) then ends
            except BaseException as exc:  # the speech failed (or was stopped), or Ditto did
                failure.append(exc)
                stop = getattr(sdk, "stop_event", None)
                if stop is not None:
                    stop.set()
                sink.put(None)

        with tempfile.TemporaryDirectory(prefix="ditto-") as out:
            sdk.setup(str(avatar.path), str(Path(out) / "ditto.mp4"), online_mode=True)
            sdk.writer = _FrameSink(sink)
            feeder = threading.Thread(target=feed, name="ditto-feed", daemon=True)
            feeder.start()
            index, last = 0, avatar.poster
            try:
                taken = 0
                while (frame := sink.get()) is not None:
                    last, taken = self._fit(frame, avatar), taken + 1
                    # Job frames whose source frame has come, never past the speech so far.
                    ready = frame_count(received[0] / sample_rate, fps)
                    while index < ready and int(index * DITTO_FPS / fps) < taken:
                        yield last
                        index += 1
                if failure:
                    error = failure[0]
                    if isinstance(error, JobError):
                        raise error
                    raise JobError(ErrorCode.INTERNAL, f"Ditto failed: {error!r}") from error
                for _ in range(index, frame_count(received[0] / sample_rate, fps)):
                    yield last  # Ditto's last frames may trail the speech by a window
            finally:
                self._wind_down(sink, feeder)

    def _wind_down(self, sink: queue.Queue[Frame | None], driver: threading.Thread) -> None:
        """Wait for the thread driving Ditto; stopped early (a cancel), first stop Ditto's
        threads and keep draining their frames so none stays blocked on a full sink."""
        if driver.is_alive():
            stop = getattr(self._sdk, "stop_event", None)
            if stop is not None:
                stop.set()
            while driver.is_alive():
                try:
                    sink.get(timeout=0.1)
                except queue.Empty:
                    continue
        driver.join()

    @staticmethod
    def _fit(frame: Frame, avatar: DittoAvatar) -> Frame:
        if frame.shape[:2] == (avatar.size, avatar.size):
            return frame
        size = (avatar.size, avatar.size)
        return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)

    def _offline(self, avatar: DittoAvatar, speech: Speech, *, fps: int) -> Generator[Frame]:
        audio = _to_16k(speech.samples, speech.sample_rate)
        native = frame_count(len(audio) / DITTO_RATE, DITTO_FPS)
        wanted = frame_count(speech.duration, fps)
        sink: queue.Queue[Frame | None] = queue.Queue(maxsize=64)
        sdk = self._sdk
        failure: list[BaseException] = []
        with tempfile.TemporaryDirectory(prefix="ditto-") as out:
            sdk.setup(str(avatar.path), str(Path(out) / "ditto.mp4"))
            sdk.writer = _FrameSink(sink)
            sdk.setup_Nd(N_d=native)
            sdk.audio2motion_queue.put(sdk.wav2feat.wav2feat(audio))

            def finish() -> None:
                try:
                    sdk.close()  # flushes the pipeline; re-raises a worker's error
                except BaseException as exc:
                    failure.append(exc)
                    sink.put(None)

            closer = threading.Thread(target=finish, name="ditto-close", daemon=True)
            closer.start()
            try:
                yield from self._resampled(
                    sink, native=native, wanted=wanted, fps=fps, avatar=avatar
                )
            finally:
                self._wind_down(sink, closer)
        if failure:
            raise JobError(ErrorCode.INTERNAL, f"Ditto failed: {failure[0]!r}") from failure[0]

    def _resampled(
        self,
        sink: queue.Queue[Frame | None],
        *,
        native: int,
        wanted: int,
        fps: int,
        avatar: DittoAvatar,
    ) -> Iterator[Frame]:
        """Ditto's 25 frames/s mapped onto the job's rate, always exactly ``wanted`` frames."""
        last: Frame = avatar.poster
        taken = -1
        for index in range(wanted):
            source = min(native - 1, int(index * DITTO_FPS / fps))
            while taken < source:
                frame = sink.get()
                if frame is None:
                    taken = native  # ended early: hold the last frame
                    break
                last, taken = frame, taken + 1
            last = self._fit(last, avatar)
            yield last
        while taken < native - 1 and sink.get() is not None:  # let Ditto's threads finish
            taken += 1
