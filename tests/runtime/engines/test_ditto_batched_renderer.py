"""The batched Ditto engine behind the runtime's renderer interface, on the CPU.

The networks are the small stand-ins of ``test_ditto_batched_engine.py`` (Ditto's
own classes cannot run at a useful size on a CI runner, and its code is not part
of this repository); Ditto's registrar and HuBERT are stood in for here by a
registrar giving a registration of Ditto's shape (a 16 x 16 crop, rotated and
scaled into the portrait) and an encoder giving 4 features a HuBERT frame. What
is Ditto's own is checked against Ditto: the HuBERT windowing against a
re-implementation of its offline ``wav2feat`` (and Ditto's own where its code is
fetched), the put-back against OpenCV doing what Ditto's ``PutBackNumpy`` does
(and Ditto's ``PutBack`` itself where fetched, its C blend loop replaced by the
same arithmetic in numpy).
"""

from __future__ import annotations

import hashlib
import importlib
import math
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from avatar_runtime.api.jobs import JobSpec
from avatar_runtime.engines import registry
from avatar_runtime.engines.base import Speech, frame_count
from avatar_runtime.engines.ditto_batched import conditions, putback
from avatar_runtime.engines.ditto_batched.engine import BatchedDittoEngine, EngineSettings
from avatar_runtime.engines.ditto_batched.renderer import BatchedAvatar, BatchedDittoRenderer
from avatar_runtime.pipeline.runner import Pipeline
from avatar_runtime.settings import RuntimeSettings
from tests.runtime.engines.test_ditto_batched_engine import STEPS, WIDTH, _networks
from tests.runtime.pipeline.media import decode_mp4

CODE = Path(__file__).parents[3] / ".fetched" / "ditto"
HAS_DITTO = (CODE / "core" / "utils" / "get_mask.py").is_file()
CROP = 16  # the stand-in decoder's frames
SIZE = 48
FEATURES = 4
LAYOUT = conditions.ConditionLayout(emotion=True, eye_open=False, eye_ball=False, keypoints=False)
assert FEATURES + conditions.EMOTIONS == WIDTH


class Encoder:
    """HuBERT's shape (20 frames a 6480-sample window, 20 ms hop), 4 features a frame."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, windows: np.ndarray) -> np.ndarray:
        self.calls += 1
        frames = np.stack([windows[:, i * 320 : i * 320 + 400] for i in range(20)], axis=1)
        stats = [frames.mean(-1), frames.std(-1), frames.max(-1), frames.min(-1)]
        encoded: np.ndarray = np.tanh(4 * np.stack(stats, axis=-1)).astype(np.float32)
        return encoded


def _crop_to_portrait(angle: float = 12.0, scale: float = 1.6) -> np.ndarray:
    """Ditto's ``M_c2o``: the crop's centre on the portrait's, turned and enlarged."""
    matrix = np.asarray(cv2.getRotationMatrix2D((CROP / 2, CROP / 2), angle, scale))
    matrix[:, 2] += np.array([SIZE / 2 - CROP / 2, SIZE / 2 - CROP / 2 + 2])
    return np.vstack([matrix, [0, 0, 1]]).astype(np.float32)


class Registrar:
    """Ditto's ``AvatarRegistrar`` call: an image path to a registration of its shape."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: str, **options: Any) -> dict[str, Any]:
        self.calls += 1
        image = np.asarray(cv2.cvtColor(np.asarray(cv2.imread(path)), cv2.COLOR_BGR2RGB))
        seed = int(hashlib.sha256(image.tobytes()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        info = {
            "scale": 1 + 0.05 * rng.standard_normal((1, 1)),
            "pitch": rng.standard_normal((1, 66)),
            "yaw": rng.standard_normal((1, 66)),
            "roll": rng.standard_normal((1, 66)),
            "t": 0.02 * rng.standard_normal((1, 3)),
            "exp": 0.02 * rng.standard_normal((1, 63)),
            "kp": 0.3 * rng.standard_normal((1, 63)),
        }
        return {
            "x_s_info_lst": [{k: v.astype(np.float32) for k, v in info.items()}],
            "f_s_lst": [rng.standard_normal((1, 4, 2, 8, 8)).astype(np.float32)],
            "M_c2o_lst": [_crop_to_portrait()],
            "eye_open_lst": [np.ones((1, 2), np.float32)],
            "eye_ball_lst": [np.zeros((1, 6), np.float32)],
            "sc": info["kp"].reshape(-1),
            "img_rgb_lst": [image],
            "is_image_flag": True,
        }


@pytest.fixture
def renderer(tmp_path: Path) -> Iterator[BatchedDittoRenderer]:
    settings = EngineSettings(buckets=(1, 2, 4), steps=STEPS, low_water=4)
    engine = BatchedDittoEngine(_networks(), settings)
    yield BatchedDittoRenderer(
        engine,
        registrar=Registrar(),
        encoder=Encoder(),
        layout=LAYOUT,
        crop_size=CROP,
        crop={},
        scratch=tmp_path,
    )
    engine.close()


def _portrait(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return np.asarray(cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC))


def _speech(seconds: float, seed: int, rate: int = 16_000) -> Speech:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (2 + seed) * t)
    return Speech((0.3 * envelope * rng.standard_normal(len(t))).astype(np.float32), rate)


def _render(renderer: BatchedDittoRenderer, avatar: BatchedAvatar, speech: Speech) -> np.ndarray:
    return np.stack(list(renderer.frames(avatar, speech, fps=25)))


def test_two_jobs_at_once_give_each_the_frames_it_gets_alone(
    renderer: BatchedDittoRenderer,
) -> None:
    avatars = [renderer.prepare(_portrait(1), size=SIZE), renderer.prepare(_portrait(2), size=SIZE)]
    speeches = [_speech(4.1, 1), _speech(2.3, 2)]
    alone = [_render(renderer, a, s) for a, s in zip(avatars, speeches, strict=True)]
    together: list[np.ndarray] = [np.zeros(0), np.zeros(0)]

    def run(i: int) -> None:
        together[i] = _render(renderer, avatars[i], speeches[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for i, speech in enumerate(speeches):
        assert together[i].shape == (frame_count(speech.duration, 25), SIZE, SIZE, 3)
        difference = np.abs(together[i].astype(int) - alone[i].astype(int))
        assert int(difference.max()) <= 1  # fp32 on the CPU: at most a rounding step
    # the frames are the job's own, and they move
    assert np.abs(together[0][:50].astype(int) - together[1][:50].astype(int)).mean() > 1
    assert len({frame.tobytes() for frame in together[0]}) > 50


def test_frames_come_in_order_as_the_speech_arrives_in_pieces(
    renderer: BatchedDittoRenderer,
) -> None:
    avatar = renderer.prepare(_portrait(3), size=SIZE)
    speech = _speech(3.3, 3, rate=24_000)
    whole = _render(renderer, avatar, speech)
    pieces = (speech.samples[i : i + 7_000] for i in range(0, len(speech.samples), 7_000))
    streamed = np.stack(list(renderer.stream(avatar, pieces, sample_rate=24_000, fps=25)))
    assert streamed.shape == whole.shape == (frame_count(speech.duration, 25), SIZE, SIZE, 3)
    # in pieces, resampling rounds per piece: the same frames, a level or two apart at most
    assert np.abs(streamed.astype(int) - whole.astype(int)).mean() < 0.5
    at_30 = np.stack(list(renderer.frames(avatar, speech, fps=30)))
    assert len(at_30) == frame_count(speech.duration, 30)
    assert np.array_equal(at_30[0], whole[0])
    assert np.array_equal(at_30[6], whole[5])


def test_a_portrait_is_registered_once_and_its_frames_are_the_whole_portrait(
    renderer: BatchedDittoRenderer,
) -> None:
    image = _portrait(4)
    first = renderer.prepare(image, size=SIZE)
    again = renderer.prepare(image.copy(), size=SIZE)
    assert renderer.registrations == 1
    assert again.portrait is first.portrait
    renderer.prepare(_portrait(5), size=SIZE)
    assert renderer.registrations == 2
    frames = _render(renderer, first, _speech(1.0, 4))
    assert frames.shape[1:] == (SIZE, SIZE, 3)
    # outside the warped mask the portrait shows unchanged; inside, the crop
    mask = first.portrait.backdrop.mask[..., 0].numpy() if first.portrait.backdrop else None
    assert mask is not None
    outside, inside = mask == 0, mask > 0.99
    assert outside.sum() > 100
    assert inside.sum() > 100
    assert np.array_equal(frames[0][outside], first.poster[outside])
    assert np.abs(frames[0][inside].astype(int) - first.poster[inside].astype(int)).mean() > 5


def test_closing_a_job_early_leaves_the_engine_serving_others(
    renderer: BatchedDittoRenderer,
) -> None:
    avatar = renderer.prepare(_portrait(6), size=SIZE)
    frames = renderer.frames(avatar, _speech(6.0, 5), fps=25)
    next(frames)
    frames.close()
    assert len(_render(renderer, avatar, _speech(1.0, 6))) == 25


def test_a_job_through_the_pipeline_gets_a_video_from_the_shared_engine(
    renderer: BatchedDittoRenderer, engines: registry.Engines, portrait_png: Path, tmp_path: Path
) -> None:
    """The runtime's own pipeline (Piper, faster-whisper, the encoder) on this renderer."""
    pipeline = Pipeline(replace(engines, renderer=renderer), RuntimeSettings())
    try:
        spec = JobSpec(portrait=str(portrait_png), text="Hello there.", output=str(tmp_path / "o"))
        result = pipeline.run(spec.model_copy(update={"resolution": 64}))
    finally:
        pipeline.close()
    video = decode_mp4(tmp_path / "o" / "video.mp4")
    assert len(video.frames) == result.frames == frame_count(result.video_seconds, 25)
    assert video.frames[0].shape[:2] == (64, 64)
    assert renderer.registrations == 1
    assert sum(renderer.engine.batches["frames"].values()) > 0


def test_every_slot_of_a_pod_gets_the_one_shared_renderer(
    renderer: BatchedDittoRenderer,
) -> None:
    from avatar_runtime.settings import EngineSettings as Settings

    engines = registry.Engines(tts=object(), asr=object(), renderer=renderer)  # type: ignore[arg-type]
    assert registry.slot_renderer(engines, Settings()) is renderer
    embedded = registry.make_renderer(Settings())
    others = registry.Engines(tts=object(), asr=object(), renderer=embedded)  # type: ignore[arg-type]
    assert registry.slot_renderer(others, Settings()) is not embedded


def test_auto_slots_beside_the_shared_renderer_cost_a_job_not_a_renderer(
    renderer: BatchedDittoRenderer,
    engines: registry.Engines,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real pod loading (and warming up every slot) on this renderer. The GPU is faked
    (NVML's figures for an L4 with 15 GB in use after loading; there is no L4 here), and the
    renderer is said to have measured a compiled engine's 9 GB: a further renderer would
    not fit, but a further slot of the one renderer costs a job's buffers, so ``auto`` gives
    the jobs it batches, and the pod exports what a slot costs."""
    from avatar_runtime import gpu
    from avatar_runtime.service.pod import RuntimePod
    from avatar_runtime.settings import EngineSettings as Settings
    from avatar_runtime.settings import SlotSettings

    l4 = gpu.GpuMemory(0, "NVIDIA L4", used_bytes=int(15e9), total_bytes=int(24e9))
    monkeypatch.setattr(gpu, "memory", lambda: [l4])
    footprints = {**engines.gpu_footprints, "ditto": gpu.Footprint(nvml_bytes=int(9e9))}
    loaded = replace(engines, renderer=renderer, gpu_footprints=footprints)
    monkeypatch.setattr(registry, "load", lambda _: loaded)
    slots = SlotSettings()
    pod = RuntimePod(RuntimeSettings(engines=Settings(renderer="ditto"), slots=slots))
    try:
        pod.load()
        assert pod.failed is None
        assert pod.capacity().slots_total == slots.max_auto_shared == 4
        cost = pod.metrics.registry.get_sample_value("avatar_runtime_slot_gpu_memory_bytes")
        assert cost == slots.shared_slot_bytes
        # Sized by the renderer's own footprint, as for independent renderers: one slot.
        assert gpu.slots_after_load(slots, [l4], int(9e9)) == 1
    finally:
        pod.drain()


# -- Ditto's own steps, against Ditto ----------------------------------------------------


def _ditto_wav2feat(audio: np.ndarray, encode: Any) -> np.ndarray:
    """Ditto's ``Wav2FeatHubert.wav2feat`` (16 kHz), re-implemented as it reads."""
    num_f = math.ceil(len(audio) / 16000 * 25)
    split_len = int(10 * 0.04 * 16000) + 80
    pad = np.concatenate(
        [np.zeros(split_len - int(7 * 0.04 * 16000), np.float32), audio, np.zeros(split_len)]
    )
    out, i = [], 0
    while i < num_f:
        start = int(i * 0.04 * 16000)
        encoding = encode(pad[start : start + split_len].astype(np.float32)[None])[0]
        out.append(encoding[-14:-4].reshape(5, 2, -1).mean(1))
        i += 5
    return np.concatenate(out, 0)[:num_f]


@pytest.mark.parametrize("samples", [1, 640, 641, 4480, 16_001, 33_333])
def test_features_in_pieces_are_dittos_offline_features(samples: int) -> None:
    encoder = Encoder()
    audio = np.random.default_rng(samples).standard_normal(samples).astype(np.float32)
    windows = conditions.FeatureWindows(encoder)
    parts = [windows.add(audio[i : i + 2_777]) for i in range(0, samples, 2_777)]
    parts.append(windows.finish())
    got = np.concatenate([part for part in parts if len(part)])
    expected = _ditto_wav2feat(audio, encoder.encode)
    assert got.shape == (conditions.frames_for(samples), FEATURES)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def _reference_put_back(frame: np.ndarray, crop: np.ndarray, m_c2o: np.ndarray) -> np.ndarray:
    """What Ditto's put-back does (``PutBackNumpy``; ``PutBack`` the same with a C loop)."""
    h, w = frame.shape[:2]
    mask = putback.blend_mask(crop.shape[1], crop.shape[0])
    mask_w = cv2.warpAffine(mask, m_c2o[:2], dsize=(w, h), flags=cv2.INTER_LINEAR).clip(0, 1)
    crop_w = cv2.warpAffine(crop.astype(np.float32), m_c2o[:2], (w, h), flags=cv2.INTER_LINEAR)
    result = mask_w[..., None] * crop_w + (1 - mask_w[..., None]) * frame
    blended: np.ndarray = np.clip(result, 0, 255).astype(np.uint8)
    return blended


def _synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    frame = cv2.resize(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8), (600, 450))
    crop = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (512, 512))
    m_c2o = cv2.getRotationMatrix2D((256, 256), -9.0, 0.55)
    m_c2o[:, 2] += (300 - 256, 200 - 256)
    return frame, crop, np.vstack([m_c2o, [0, 0, 1]])


def test_put_back_places_the_crop_where_dittos_does() -> None:
    frame, crop, m_c2o = _synthetic()
    backdrop = putback.Backdrop(frame, m_c2o, crop_size=512)
    ours = backdrop.paste(torch.as_tensor(crop)[None])[0].numpy()
    reference = _reference_put_back(frame, crop, m_c2o)
    difference = np.abs(ours.astype(int) - reference.astype(int))
    # OpenCV samples at 1/32 of a pixel, this exactly: a level apart here and there
    assert float(difference.mean()) < 0.05
    assert int(difference.max()) <= 2
    assert np.array_equal(ours[:40], frame[:40])  # above the crop: the portrait unchanged
    assert np.abs(ours[150:250, 250:350].astype(int) - frame[150:250, 250:350]).mean() > 20


@pytest.mark.skipif(not HAS_DITTO, reason=f"Ditto's code is not fetched (no {CODE})")
def test_put_back_and_its_mask_match_dittos_own_code() -> None:
    saved = {k: v for k, v in sys.modules.items() if k == "core" or k.startswith("core.")}

    def blend(mask: Any, warped: Any, rgb: Any, out: Any) -> None:  # blend_impl.c, in numpy
        mixed = mask[..., None] * warped + (1.0 - mask[..., None]) * rgb.astype(np.float32)
        out[...] = np.clip(mixed, 0, 255).astype(np.uint8)

    sys.path.insert(0, str(CODE))
    stub = types.ModuleType("core.utils.blend")
    stub.blend_images_cy = blend  # type: ignore[attr-defined]
    sys.modules["core.utils.blend"] = stub
    try:
        get_mask = importlib.import_module("core.utils.get_mask").get_mask
        for width, height in ((512, 512), (16, 16), (100, 60)):
            expected = get_mask(width, height, 0.9, 0.9)[..., 0]
            assert np.array_equal(putback.blend_mask(width, height), expected)
        ditto_put_back = importlib.import_module("core.atomic_components.putback").PutBack()
        frame, crop, m_c2o = _synthetic()
        theirs = ditto_put_back(frame, crop.astype(np.float32), m_c2o)
        ours = putback.Backdrop(frame, m_c2o).paste(torch.as_tensor(crop)[None])[0].numpy()
        difference = np.abs(ours.astype(int) - theirs.astype(int))
        assert float(difference.mean()) < 0.05
        assert int(difference.max()) <= 2
    finally:
        sys.path.remove(str(CODE))
        for name in [k for k in sys.modules if k == "core" or k.startswith("core.")]:
            del sys.modules[name]
        sys.modules.update(saved)
