"""A stand-in for Ditto's ``StreamSDK``, written for these tests (no Ditto code or weights here).

``tests/runtime/engines/volume.py`` copies it onto a test model volume as
``ditto/code/stream_pipeline_offline.py`` and ``stream_pipeline_online.py``, the
modules a pod imports from a real volume.

Same interface as the parts of ``StreamSDK`` the runtime's adapter uses: it is
built from a config pickle and a checkpoint folder, registers a portrait
(refusing one without a face), takes audio features on ``audio2motion_queue``,
and hands ``N_d`` RGB frames to ``self.writer`` from a worker thread, which
``close()`` joins. In online mode it takes audio windows through ``run_chunk``
instead and, as Ditto does, holds the first window's frames back until the end.
The frames are the portrait, brightened frame by frame, so
a test can tell them apart. Only the runtime's tests load it, from a model
volume they build, exactly as a pod loads the real one.
"""

from __future__ import annotations

import math
import pickle
import queue
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

try:  # as Ditto's put-back imports its blend, where the test volume holds one
    from core.utils.blend import brighten  # type: ignore[import-not-found]
except ModuleNotFoundError:
    brighten = None

registrations: list[str] = []  # every registration run, for the tests to count
online_windows: list[float] = []  # monotonic time of every run_chunk, for the tests


class VideoWriterByImageIO:
    """Ditto's MP4 writer (imageio + ffmpeg), which the adapter must never let ``setup``
    open: it is replaced on this module, as on Ditto's, when the adapter loads it."""

    def __init__(self, video_path: str, **kwargs: Any) -> None:
        raise AssertionError("the adapter let Ditto open an MP4 writer (an ffmpeg process)")


class _Wav2Feat:
    feat_dim = 1024

    def wav2feat(self, audio: np.ndarray, sr: int = 16000) -> np.ndarray:
        return np.zeros((math.ceil(len(audio) / 640), self.feat_dim), dtype=np.float32)

    def __call__(self, audio_chunk: np.ndarray, chunksize: tuple[int, int, int]) -> np.ndarray:
        assert len(audio_chunk) == int(sum(chunksize) * 0.04 * 16000) + 80, len(audio_chunk)
        return np.zeros((chunksize[1], self.feat_dim), dtype=np.float32)


class _FaceDetector:
    """Ditto's InsightFace detector's interface (RGB in; rows of x1, y1, x2, y2, score
    and keypoints out), with OpenCV's frontal-face cascade inside."""

    def __init__(self) -> None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(path)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, None]:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        faces = self._cascade.detectMultiScale(gray, 1.1, 5, minSize=(12, 12))
        rows = [[x, y, x + w, y + h, 0.9] for x, y, w, h in faces]
        return np.asarray(rows, dtype=np.float32).reshape(-1, 5), None


class _Source2Info:
    def __init__(self) -> None:
        self.insightface_det = _FaceDetector()


class _AvatarRegistrar:
    """As Ditto's: ``source2info`` holds the face helpers; a call registers a portrait."""

    def __init__(self) -> None:
        self.source2info = _Source2Info()

    def __call__(self, source_path: str, **kwargs: Any) -> dict[str, Any]:
        image = cv2.imread(source_path)
        if image is None or not len(self.source2info.insightface_det(image)[0]):
            raise ValueError("no face detected in the source image")
        registrations.append(source_path)
        return {"img_rgb_lst": [cv2.cvtColor(image, cv2.COLOR_BGR2RGB)], "is_image_flag": True}


class StreamSDK:
    def __init__(self, cfg_pkl: str, data_root: str, **kwargs: Any) -> None:
        with Path(cfg_pkl).open("rb") as f:
            pickle.load(f)  # the test's own stand-in file
        assert Path(data_root).is_dir(), data_root
        self.avatar_registrar: Any = _AvatarRegistrar()
        self.wav2feat = _Wav2Feat()
        self.N_d = -1

    def setup(self, source_path: str, output_path: str, **kwargs: Any) -> None:
        self.online_mode = kwargs.get("online_mode", False)
        self.source_info = self.avatar_registrar(source_path, max_dim=1920, n_frames=-1)
        self.writer: Any = VideoWriterByImageIO(output_path + ".tmp.mp4")
        self.stop_event = threading.Event()
        self.worker_exception: BaseException | None = None
        self.audio2motion_queue: queue.Queue[Any] = queue.Queue()
        self.thread_list = [threading.Thread(target=self._worker, daemon=True)]
        for thread in self.thread_list:
            thread.start()

    def setup_Nd(self, N_d: int, **kwargs: Any) -> None:  # noqa: N802, N803 - Ditto's names
        self.N_d = N_d

    def run_chunk(self, audio_chunk: np.ndarray, chunksize: tuple[int, int, int]) -> None:
        online_windows.append(time.monotonic())
        self.audio2motion_queue.put(self.wav2feat(audio_chunk, chunksize=chunksize))

    def _frame(self, index: int) -> None:
        source = self.source_info["img_rgb_lst"][0]
        if brighten is not None:
            frame = brighten(source, index % 50)
        else:
            frame = np.clip(source.astype(np.int16) + index % 50, 0, 255).astype(np.uint8)
        self.writer(frame, fmt="rgb")

    def _online_worker(self) -> None:
        made, held = 0, 0
        while not self.stop_event.is_set():  # as Ditto's workers: poll, so a stop ends them
            try:
                features = self.audio2motion_queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if features is None:
                break
            if not held:
                held = len(features)  # the first window only primes the motion model
                continue
            for _ in range(len(features)):
                self._frame(made)
                made += 1
        for _ in range(held if not self.stop_event.is_set() else 0):
            self._frame(made)
            made += 1

    def _worker(self) -> None:
        if self.online_mode:
            self._online_worker()
            return
        features = self.audio2motion_queue.get()
        if features is None:
            return
        for index in range(self.N_d):
            if self.stop_event.is_set():
                return
            self._frame(index)
        self.audio2motion_queue.get()  # the None close() sends

    def close(self) -> None:
        self.audio2motion_queue.put(None)
        for thread in self.thread_list:
            thread.join()
        self.writer.close()
        if self.worker_exception is not None:
            raise self.worker_exception
