"""The batched engine behind the runtime's renderer interface, one instance for every slot.

``BatchedDittoRenderer`` is what a pod with ``engines.ditto_batched`` loads in
place of the adapter (``engines/ditto_renderer.py``): the same name (``ditto``),
the same portrait checks and the same frames contract, but one engine
(``engine.BatchedDittoEngine``) that every slot's jobs share, so the pod hands
every slot this same object (``serves_every_slot``) instead of building one per
slot. Per job:

- ``prepare``: the framed portrait, registered once per content hash with Ditto's
  own ``AvatarRegistrar`` (face, crop, appearance features, keypoints; cached),
  gives the engine's ``Portrait``: features and motion on the GPU, the put-back
  (``putback.Backdrop``) and the constant part of its audio condition;
- ``stream`` / ``frames``: a feeder thread turns the speech, as it comes, into
  HuBERT features (``conditions.FeatureWindows``) and condition rows, and feeds
  them to the job's engine handle; the generator reads the job's frames, whole
  portraits already (put back on the GPU), copies each to the host and maps
  Ditto's 25 frames/s onto the job's rate, as the adapter does.

Thread-safe: slots call it at once; registration takes a lock, everything else
is per job or the engine's.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import pickle
import sys
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.engines.base import AudioArray, Frame, Speech, frame_count
from avatar_runtime.engines.ditto_batched import conditions
from avatar_runtime.engines.ditto_renderer import DITTO_FPS, _framed, _to_16k, check_faces
from avatar_runtime.engines.model_volume import DITTO_CHECKPOINTS_DIR, DITTO_CODE_DIR

if TYPE_CHECKING:
    import torch

    from avatar_runtime.engines.ditto_batched.engine import (
        BatchedDittoEngine,
        EngineSettings,
        Portrait,
    )

log = logging.getLogger(__name__)

CROP = {"crop_scale": 2.3, "crop_vx_ratio": 0, "crop_vy_ratio": -0.125, "crop_flag_do_rot": True}
"""Ditto's crop options for a registration (its ``StreamSDK.setup`` defaults)."""
_KEPT = 32
SEED = 0
"""Each job's diffusion noise seed: the same speech and portrait give the same video."""

Registrar = Callable[..., dict[str, Any]]
"""Ditto's ``AvatarRegistrar``: (image path, max_dim=, n_frames=, **crop) -> source_info."""


@dataclass(frozen=True)
class BatchedAvatar:
    size: int
    poster: Frame
    portrait: Portrait
    tail: torch.Tensor
    """(79,): the condition values after the features (``ConditionLayout.tail``)."""


class BatchedDittoRenderer:
    name = "ditto"
    follows_words = False  # driven by the audio itself (HuBERT features)
    streams_audio = True
    serves_every_slot = True
    """One instance, one engine, for all of a pod's slots (``base.SharedRenderer``)."""

    def __init__(
        self,
        engine: BatchedDittoEngine,
        *,
        registrar: Registrar,
        encoder: conditions.AudioEncoder,
        layout: conditions.ConditionLayout | None = None,
        crop_size: int = 512,
        crop: dict[str, Any] | None = None,
        scratch: Path | None = None,
    ) -> None:
        self.engine = engine
        self._registrar = registrar
        self._encoder = encoder
        self._layout = layout or conditions.ConditionLayout()
        self._crop_size = crop_size
        self._crop = dict(CROP if crop is None else crop)
        self._scratch = scratch or Path(tempfile.mkdtemp(prefix="ditto-batched-avatars-"))
        self._scratch.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._avatars: collections.OrderedDict[str, tuple[Portrait, Any, Frame]] = (
            collections.OrderedDict()
        )
        self.registrations = 0
        """Registrations actually run (not served from the cache)."""

    @property
    def _device(self) -> torch.device:
        import torch

        return torch.device(next(self.engine.networks.warp.parameters()).device)

    def prepare(self, portrait: Frame, *, size: int) -> BatchedAvatar:
        framed = _framed(portrait, size)
        digest = hashlib.sha256(framed.tobytes()).hexdigest()[:32]
        key = f"{digest}-{size}"
        with self._lock:
            if key in self._avatars:
                self._avatars.move_to_end(key)
                registered, tail, poster = self._avatars[key]
            else:
                registered, tail, poster = self._register(framed, key)
                self._avatars[key] = (registered, tail, poster)
                while len(self._avatars) > _KEPT:
                    self._avatars.popitem(last=False)
        return BatchedAvatar(size=size, poster=poster, portrait=registered, tail=tail)

    def _register(self, framed: Frame, key: str) -> tuple[Portrait, Any, Frame]:
        import torch

        from avatar_runtime.engines.ditto_batched.engine import Portrait
        from avatar_runtime.engines.ditto_batched.keypoints import PortraitMotion
        from avatar_runtime.engines.ditto_batched.putback import Backdrop

        check_faces(self._registrar, framed)
        path = self._scratch / f"{key}.png"
        cv2.imwrite(str(path), cv2.cvtColor(framed, cv2.COLOR_RGB2BGR))
        try:
            info = self._registrar(str(path), max_dim=1920, n_frames=-1, **self._crop)
        except Exception as exc:  # Ditto says "no face" in several ways: one code for all
            raise JobError(
                ErrorCode.FACE_NOT_FOUND,
                f"Ditto could not register a face in the portrait: {exc}",
                field="portrait",
            ) from exc
        finally:
            path.unlink(missing_ok=True)
        self.registrations += 1
        device = self._device
        image = np.ascontiguousarray(info["img_rgb_lst"][0], dtype=np.uint8)
        portrait = Portrait(
            feature=torch.as_tensor(np.asarray(info["f_s_lst"][0]), device=device).float(),
            motion=PortraitMotion.of(info["x_s_info_lst"][0], device=device),
            backdrop=Backdrop(
                image, info["M_c2o_lst"][0], crop_size=self._crop_size, device=device
            ),
        )
        tail = torch.as_tensor(self._layout.tail(info), device=device)
        return portrait, tail, image

    def frames(self, avatar: BatchedAvatar, speech: Speech, *, fps: int) -> Generator[Frame]:
        return self.stream(avatar, iter([speech.samples]), sample_rate=speech.sample_rate, fps=fps)

    def stream(
        self, avatar: BatchedAvatar, audio: Iterator[AudioArray], *, sample_rate: int, fps: int
    ) -> Generator[Frame]:
        """Frames as the speech arrives; ``frame_count(total, fps)`` of them in all."""
        handle = self.engine.open_job(avatar.portrait, seed=SEED)
        received = [0]  # samples of speech so far, at ``sample_rate``
        failure: list[BaseException] = []
        stop = threading.Event()

        def feed() -> None:
            windows = conditions.FeatureWindows(self._encoder)
            try:
                for piece in audio:
                    if stop.is_set():
                        return
                    features = windows.add(_to_16k(np.asarray(piece), sample_rate))
                    received[0] += len(piece)
                    self._feed(handle, features, avatar.tail)
                self._feed(handle, windows.finish(), avatar.tail)
                handle.end()
            except BaseException as exc:  # the speech failed (or was stopped)
                failure.append(exc)
                handle.cancel()

        feeder = threading.Thread(target=feed, name="ditto-batched-feed", daemon=True)
        feeder.start()
        index, taken, last = 0, 0, avatar.poster
        finished = False
        try:
            try:
                for frame in handle.frames():
                    last, taken = self._host(frame, avatar), taken + 1
                    ready = frame_count(received[0] / sample_rate, fps)
                    while index < ready and int(index * DITTO_FPS / fps) < taken:
                        yield last
                        index += 1
            except Exception as exc:  # the engine failed: every running job ends so
                raise JobError(ErrorCode.INTERNAL, f"Ditto failed: {exc!r}") from exc
            feeder.join()
            if failure:
                error = failure[0]
                if isinstance(error, JobError):
                    raise error
                raise JobError(ErrorCode.INTERNAL, f"Ditto failed: {error!r}") from error
            finished = True
            for _ in range(index, frame_count(received[0] / sample_rate, fps)):
                yield last  # the video covers the speech even where frames ran short
        finally:
            if not finished:
                stop.set()
                handle.cancel()

    def _feed(self, handle: Any, features: np.ndarray, tail: torch.Tensor) -> None:
        import torch

        if not len(features):
            return
        rows = torch.as_tensor(features, device=tail.device)
        handle.feed(torch.cat([rows, tail.expand(rows.shape[0], -1)], dim=1))

    @staticmethod
    def _host(frame: torch.Tensor, avatar: BatchedAvatar) -> Frame:
        image: Frame = np.ascontiguousarray(frame.numpy())  # on the host already
        if image.shape[:2] == (avatar.size, avatar.size):
            return image
        size = (avatar.size, avatar.size)
        return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def load(
    model_dir: Path,
    *,
    device: str = "cuda",
    compiled: bool = False,
    settings: EngineSettings | None = None,
) -> BatchedDittoRenderer:
    """Ditto from the model volume, batched: its networks on ``device`` (compiled and
    graphed per batch bucket at load where ``compiled``), its registrar and HuBERT.
    ``settings`` replaces the engine's whole settings (``compiled`` is then ignored)."""
    from avatar_runtime.engines.ditto_batched import engine as engine_
    from avatar_runtime.engines.ditto_batched import networks

    code = str(model_dir / DITTO_CODE_DIR)
    if code not in sys.path:
        sys.path.insert(0, code)
    import importlib

    root = model_dir / DITTO_CHECKPOINTS_DIR
    with (root / networks.CONFIG).open("rb") as f:
        cfg = pickle.load(f)  # noqa: S301 - the volume's own config, as Ditto reads it
    parse = importlib.import_module("core.atomic_components.cfg").parse_cfg
    registrar_cfg, *_, wav2feat_cfg, defaults = parse(
        str(root / networks.CONFIG), str(root / networks.MODELS), {}
    )
    registrar_module = importlib.import_module("core.atomic_components.avatar_registrar")
    registrar = registrar_module.AvatarRegistrar(**registrar_cfg)
    encoder = conditions.OnnxHubert(wav2feat_cfg["w2f_cfg"]["model_path"], device=device)
    nets = networks.load(model_dir, device=device)
    if settings is None:
        settings = engine_.EngineSettings(compiled=compiled, graphed=compiled)
    engine = engine_.BatchedDittoEngine(nets, settings)
    log.info(
        "batched Ditto ready (%s, buckets %s, HuBERT on %s, %.1f s compiling and capturing)",
        "compiled" if settings.compiled else "eager",
        ",".join(map(str, settings.buckets)),
        ",".join(encoder.providers),
        engine.prepare_seconds,
    )
    crop = {k: defaults.get(k, v) for k, v in CROP.items()}
    return BatchedDittoRenderer(
        engine,
        registrar=registrar,
        encoder=encoder,
        layout=conditions.ConditionLayout.of(cfg),
        crop=crop,
    )
