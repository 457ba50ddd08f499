"""The Ditto adapter, against a stand-in for Ditto's code (no Ditto code or weights in CI).

The stand-in (``ditto_standin.py``) has the interface
of the parts of Ditto's ``StreamSDK`` the adapter drives; it sits on a model
volume of stand-in files, loaded exactly as a pod loads the real Ditto. What is
tested is the adapter: loading from the volume, registration cached by content,
frame counts and sizes at any frame rate, clear errors for a portrait without
a face, with a face too small or with several faces (the stand-in finds faces
with OpenCV's cascade where Ditto uses InsightFace's detector), a cancel that
leaves no thread behind, and a pod that will not become ready while a file is
missing.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from avatar_devcluster.waiting import wait_until
from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import Speech, frame_count
from avatar_runtime.engines.ditto_renderer import DittoRenderer
from tests.runtime.engines import volume
from tests.runtime.server.harness import (
    SHORT_TEXT,
    job_body,
    start_runtime,
    wait_for,
    wait_unhealthy,
)

_DITTO_MODULES = ("stream_pipeline_offline", "stream_pipeline_online", "core")


def _forget_volume(tmp_path: Path) -> None:
    """Each test imports its own volume's Ditto code: drop the last one's modules and path."""
    for name in [m for m in sys.modules if m.split(".")[0] in _DITTO_MODULES]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not p.startswith(str(tmp_path))]


@pytest.fixture
def model_dir(tmp_path: Path) -> Iterator[Path]:
    yield volume.build(tmp_path / "models", "ditto")
    _forget_volume(tmp_path)


@pytest.fixture
def renderer(model_dir: Path) -> DittoRenderer:
    return DittoRenderer(model_dir, scratch=model_dir / "scratch")


def _speech(seconds: float, rate: int = 22_050) -> Speech:
    samples = (0.1 * np.sin(np.linspace(0, 2000, int(seconds * rate)))).astype(np.float32)
    return Speech(samples=samples, sample_rate=rate)


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut())  # 512 x 512, a face about a fifth of it across


def _portrait(seed: int = 0) -> np.ndarray:
    """The same face; each seed shifts the brightness, so each is a different image."""
    return np.clip(_astronaut().astype(np.int16) + seed, 0, 255).astype(np.uint8)


def test_frames_cover_the_speech_at_any_frame_rate(renderer: DittoRenderer) -> None:
    avatar = renderer.prepare(_portrait(), size=128)
    assert avatar.poster.shape == (128, 128, 3)
    for fps, expected in ((25, 50), (30, 60), (10, 20)):
        frames = list(renderer.frames(avatar, _speech(2.0), fps=fps))
        assert len(frames) == expected
        assert {f.shape for f in frames} == {(128, 128, 3)}
        assert {f.dtype for f in frames} == {np.dtype(np.uint8)}
    frames = list(renderer.frames(avatar, _speech(2.0), fps=25))
    assert not np.array_equal(frames[0], frames[10])  # Ditto's frames, not the poster


def test_a_portrait_is_registered_once_by_its_content(renderer: DittoRenderer) -> None:
    renderer.prepare(_portrait(1), size=128)
    renderer.prepare(_portrait(1).copy(), size=128)
    assert renderer.registrations == 1
    renderer.prepare(_portrait(2), size=128)
    assert renderer.registrations == 2


def test_a_portrait_without_a_face_is_a_typed_error(renderer: DittoRenderer) -> None:
    blank = np.full((200, 200, 3), 128, dtype=np.uint8)
    with pytest.raises(JobError) as raised:
        renderer.prepare(blank, size=128)
    assert raised.value.code == ErrorCode.FACE_NOT_FOUND
    assert raised.value.field == "portrait"


def test_a_face_too_small_to_animate_is_a_typed_error(renderer: DittoRenderer) -> None:
    import cv2

    canvas = np.full((768, 768, 3), 120, dtype=np.uint8)
    canvas[:256, :256] = cv2.resize(_astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    with pytest.raises(JobError) as raised:  # the face: 47 of 768 pixels across, 6%
        renderer.prepare(canvas, size=512)
    assert raised.value.code == ErrorCode.FACE_TOO_SMALL
    assert raised.value.field == "portrait"
    assert renderer.registrations == 0  # refused before Ditto's registration work


def test_a_portrait_with_two_faces_of_a_size_is_a_typed_error(renderer: DittoRenderer) -> None:
    face = _astronaut()[:256, 100:356]  # the head and shoulders
    canvas = np.full((512, 512, 3), 120, dtype=np.uint8)
    canvas[128:384] = np.concatenate([face, face[:, ::-1]], axis=1)
    with pytest.raises(JobError) as raised:
        renderer.prepare(canvas, size=256)
    assert raised.value.code == ErrorCode.SEVERAL_FACES
    assert "2 faces" in raised.value.message
    canvas[128:384, 256:] = 120  # the same picture with one face is accepted
    renderer.prepare(canvas, size=256)
    assert renderer.registrations == 1


def test_ditto_s_cython_helper_is_built_in_tmp_not_in_a_home_a_pod_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ditto compiles its put-back blend through pyximport on first import, by default into
    ``~/.pyxbld``; a pod's user has no writable home, only /tmp."""
    import tempfile

    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    importers = list(sys.meta_path)
    # Every renderer installs pyximport's hooks, and the first install picks the build
    # directory: start from none, as a pod's process does.
    sys.meta_path[:] = [f for f in importers if not type(f).__module__.startswith("pyximport")]
    root = volume.build(tmp_path / "models", "ditto", ditto_cython=True)
    try:
        renderer = DittoRenderer(root, scratch=tmp_path / "scratch")
        avatar = renderer.prepare(_portrait(), size=128)
        frames = list(renderer.frames(avatar, _speech(1.0), fps=25))
    finally:
        sys.meta_path[:] = importers  # pyximport's import hooks: this test's alone
        _forget_volume(tmp_path)
    assert len(frames) == 25
    assert list((tmp / "ditto-pyxbld").rglob("blend*.so")), "compiled into /tmp"
    assert not list(home.iterdir()), "nothing written to the home directory"


def test_stopping_early_leaves_no_ditto_thread_running(renderer: DittoRenderer) -> None:
    avatar = renderer.prepare(_portrait(), size=128)
    before = threading.active_count()
    frames = renderer.frames(avatar, _speech(30.0), fps=25)  # 750 frames
    for _ in range(3):
        next(frames)
    frames.close()  # a cancel: the encoder stops asking
    wait_until(
        lambda: threading.active_count() <= before,
        timeout=5,
        every=0.05,
        what=lambda: f"the job's threads to end: {threading.enumerate()}",
    )


def test_a_pod_renders_with_ditto_from_the_volume(
    tmp_path: Path, model_dir: Path, portrait_png: Path
) -> None:
    settings = {
        "AVATAR_RUNTIME_ENGINES__RENDERER": "ditto",
        "AVATAR_RUNTIME_ENGINES__MODEL_DIR": str(model_dir),
    }
    runtime = start_runtime(tmp_path, slots=1, queue_limit=1, env=settings)
    try:
        with runtime.client() as api:
            assert api.get("/v1/capacity").json()["engines"]["renderer"] == "ditto"
            body = job_body("by-ditto", portrait_png, runtime.out, text=SHORT_TEXT)
            body["options"] = {**body["options"], "renderer": "ditto"}
            assert api.post("/v1/jobs", json=body).status_code == 202
            done = wait_for(api, "by-ditto", states={"succeeded", "failed"})
        assert done["state"] == "succeeded", done
        assert done["outputs"]["video"]["duration_seconds"] > 1
    finally:
        runtime.stop()


def test_a_pod_with_a_file_missing_never_becomes_ready_and_names_it(
    tmp_path: Path, model_dir: Path
) -> None:
    (model_dir / "ditto/checkpoints/ditto_pytorch/models/decoder.pth").unlink()
    settings = {
        "AVATAR_RUNTIME_ENGINES__RENDERER": "ditto",
        "AVATAR_RUNTIME_ENGINES__MODEL_DIR": str(model_dir),
    }
    runtime = start_runtime(tmp_path, slots=1, queue_limit=1, env=settings, ready=False)
    try:
        health = wait_unhealthy(runtime)
        assert health.status_code == 500
        assert "ditto_pytorch/models/decoder.pth missing" in health.json()["reason"]
        assert httpx.get(f"{runtime.url}/readyz", timeout=5).status_code == 503
    finally:
        runtime.stop()


@pytest.fixture
def online(model_dir: Path) -> Iterator[DittoRenderer]:
    yield DittoRenderer(model_dir, scratch=model_dir / "scratch", online=True)
    sys.modules.pop("stream_pipeline_online", None)


def _pieces(seconds: list[float], rate: int = 24_000) -> Iterator[np.ndarray]:
    for length in seconds:
        yield (0.1 * np.sin(np.linspace(0, 900, int(length * rate)))).astype(np.float32)


def test_online_mode_covers_speech_that_arrives_in_chunks_at_any_rate(
    online: DittoRenderer,
) -> None:
    avatar = online.prepare(_portrait(), size=128)
    for fps in (25, 30, 10):
        frames = list(online.stream(avatar, _pieces([0.7, 0.9, 0.4]), sample_rate=24_000, fps=fps))
        assert len(frames) == frame_count(2.0, fps), fps
        assert {f.shape for f in frames} == {(128, 128, 3)}
    whole = list(online.frames(avatar, _speech(1.5), fps=25))  # a whole clip, through online
    assert len(whole) == frame_count(1.5, 25)


def test_online_mode_gives_frames_before_the_rest_of_the_speech_exists(
    online: DittoRenderer,
) -> None:
    """Time to first frame: a frame must come out while the second chunk is not spoken yet."""
    avatar = online.prepare(_portrait(), size=128)
    first_frame = threading.Event()

    def speech() -> Iterator[np.ndarray]:
        yield from _pieces([1.0])
        assert first_frame.wait(10), "no frame came before the rest of the speech"
        yield from _pieces([1.0])

    frames = online.stream(avatar, speech(), sample_rate=24_000, fps=25)
    first = next(frames)
    first_frame.set()
    assert len([first, *frames]) == 50


def test_online_mode_raises_the_speech_s_own_error_and_stops_ditto(
    online: DittoRenderer,
) -> None:
    avatar = online.prepare(_portrait(), size=128)
    before = threading.active_count()

    def speech() -> Iterator[np.ndarray]:
        yield from _pieces([1.0])
        raise JobError(ErrorCode.CANCELLED, "stopped while speaking")

    with pytest.raises(JobError) as raised:
        list(online.stream(avatar, speech(), sample_rate=24_000, fps=25))
    assert raised.value.code == ErrorCode.CANCELLED
    wait_until(
        lambda: threading.active_count() <= before,
        timeout=5,
        every=0.05,
        what=lambda: f"the job's threads to end: {threading.enumerate()}",
    )
