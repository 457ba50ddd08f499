"""Build the engines a configuration names, once per process, timing each load.

This is the one place that maps engine names to classes; the GPU engines
(XTTS-v2, Ditto) register here and nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from avatar_runtime.engines.base import ASREngine, Renderer, SharedRenderer, TTSEngine
from avatar_runtime.gpu import Footprint, FootprintMeter
from avatar_runtime.settings import EngineSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Engines:
    """The models a process loads once and every job shares."""

    tts: TTSEngine
    asr: ASREngine
    renderer: Renderer[Any]
    load_seconds: dict[str, float] = field(default_factory=dict)
    gpu_footprints: dict[str, Footprint] = field(default_factory=dict)
    """GPU memory each engine took as it loaded, measured (zero on a CPU)."""


def _piper(settings: EngineSettings) -> TTSEngine:
    from avatar_runtime.engines.piper_tts import PiperTTS

    return PiperTTS(voice_path=Path(settings.piper_voice) if settings.piper_voice else None)


def whisper_on_volume(settings: EngineSettings) -> str | None:
    """The Whisper model's name when it lives on the model volume (``whisper/<name>``)."""
    name = settings.whisper_model
    if settings.model_dir is None or name is None or "/" in name:
        return None
    return name


def _whisper(settings: EngineSettings) -> ASREngine:
    from avatar_runtime.engines.model_volume import WHISPER_DIR
    from avatar_runtime.engines.whisper_asr import WhisperASR

    model = settings.whisper_model
    name = whisper_on_volume(settings)
    if name is not None and settings.model_dir is not None:
        model = str(settings.model_dir / WHISPER_DIR / name)
    return WhisperASR(
        model=model,
        device=settings.whisper_device,
        compute_type=settings.whisper_compute_type,
        threads=settings.cpu_threads,
        workers=settings.whisper_workers,
    )


def _opencv(settings: EngineSettings) -> Renderer[Any]:
    from avatar_runtime.engines.opencv_renderer import OpenCVRenderer

    return OpenCVRenderer()


def _xtts(settings: EngineSettings) -> TTSEngine:
    from avatar_runtime.engines.xtts_tts import XttsTTS

    if settings.model_dir is None:
        raise ValueError("the xtts engine needs a model volume: set engines.model_dir")
    return XttsTTS(
        settings.model_dir,
        device=settings.device,
        default_voice=settings.xtts_default_voice,
        max_audio_tokens=settings.xtts_max_audio_tokens,
        voices_kept=settings.voices_kept,
        max_batch=settings.xtts_max_batch,
        batch_window=settings.xtts_batch_window,
        chunks_ahead=settings.xtts_chunks_ahead,
        cuda_graphs=settings.xtts_cuda_graphs,
    )


TTS_ENGINES: dict[str, Callable[[EngineSettings], TTSEngine]] = {"piper": _piper, "xtts": _xtts}
ASR_ENGINES: dict[str, Callable[[EngineSettings], ASREngine]] = {"whisper": _whisper}


def _ditto(settings: EngineSettings) -> Renderer[Any]:
    from avatar_runtime.engines.ditto_renderer import DITTO_FPS, DittoRenderer

    if settings.model_dir is None:
        raise ValueError("the ditto renderer needs a model volume: set engines.model_dir")
    if settings.ditto_batched:
        from avatar_runtime.engines.ditto_batched import renderer
        from avatar_runtime.engines.ditto_batched.engine import EngineSettings as Batching

        compiled = settings.ditto_compiled
        batching = Batching(
            compiled=compiled,
            graphed=compiled,
            spectral_mask=settings.ditto_spectral_mask,
            lmdm_half=settings.ditto_lmdm_half,
            decoder_rows=settings.ditto_decoder_rows,
            job_max_fps=settings.ditto_job_max_speed * DITTO_FPS,
        )
        return renderer.load(settings.model_dir, device=_torch_device(settings), settings=batching)
    return DittoRenderer(settings.model_dir, online=settings.ditto_online)


def _torch_device(settings: EngineSettings) -> str:
    if settings.device != "auto":
        return settings.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_volume(settings: EngineSettings) -> None:
    """Before loading anything: every file the chosen engines need is on the volume, intact."""
    from avatar_runtime.engines import model_volume

    needs = [e for e in (settings.tts, settings.renderer) if e in model_volume.LAYOUT]
    whisper = whisper_on_volume(settings)
    if not needs and whisper is None:
        return
    if settings.model_dir is None:
        raise ValueError(f"engines {', '.join(needs)} need a model volume: set engines.model_dir")
    report = model_volume.check(settings.model_dir, engines=needs, whisper=whisper)
    if not report.ok:
        raise FileNotFoundError(report.summary())


RENDERERS: dict[str, Callable[[EngineSettings], Renderer[Any]]] = {
    "embedded": _opencv,
    "ditto": _ditto,
}


def _timed(
    name: str,
    build: Callable[[], T],
    seconds: dict[str, float],
    footprints: dict[str, Footprint],
) -> T:
    """Build an engine, timing it and measuring the GPU memory it takes (the warm-up each
    engine runs on itself included)."""
    meter = FootprintMeter()
    start = time.perf_counter()
    engine = build()
    seconds[name] = time.perf_counter() - start
    footprints[name] = meter.read()
    log.info(
        "%s ready in %.2f s, %.2f GB of GPU memory",
        name,
        seconds[name],
        footprints[name].bytes / 1e9,
        extra={
            "model": name,
            "gpu_nvml_bytes": footprints[name].nvml_bytes,
            "gpu_torch_bytes": footprints[name].torch_bytes,
        },
    )
    return engine


def make_renderer(settings: EngineSettings) -> Renderer[Any]:
    """A renderer of its own for each job slot (renderers keep per-job state)."""
    return RENDERERS[settings.renderer](settings)


def serves_every_slot(engines: Engines) -> bool:
    """Whether the loaded renderer is every slot's (the batched Ditto engine)."""
    renderer = engines.renderer
    return isinstance(renderer, SharedRenderer) and renderer.serves_every_slot


def slot_renderer(engines: Engines, settings: EngineSettings) -> Renderer[Any]:
    """Another slot's renderer: the loaded one where it serves every slot, else one of its
    own."""
    return engines.renderer if serves_every_slot(engines) else make_renderer(settings)


def load(settings: EngineSettings) -> Engines:
    check_volume(settings)
    seconds: dict[str, float] = {}
    gpu: dict[str, Footprint] = {}
    tts = _timed(settings.tts, lambda: TTS_ENGINES[settings.tts](settings), seconds, gpu)
    asr = _timed(settings.asr, lambda: ASR_ENGINES[settings.asr](settings), seconds, gpu)
    renderer = _timed(
        settings.renderer, lambda: RENDERERS[settings.renderer](settings), seconds, gpu
    )
    return Engines(tts=tts, asr=asr, renderer=renderer, load_seconds=seconds, gpu_footprints=gpu)
