"""Shared fixtures: the sample portrait, and the real embedded engines loaded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar_runtime.engines import registry
from avatar_runtime.pipeline.runner import Pipeline
from avatar_runtime.settings import RuntimeSettings


@pytest.fixture(scope="session")
def portrait_rgb() -> np.ndarray:
    """A public-domain NASA portrait that scikit-image ships (no download)."""
    from skimage import data

    return np.asarray(data.astronaut())


@pytest.fixture(scope="session")
def portrait_png(tmp_path_factory: pytest.TempPathFactory, portrait_rgb: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    Image.fromarray(portrait_rgb).save(path)
    return path


@pytest.fixture(scope="session")
def settings() -> RuntimeSettings:
    return RuntimeSettings()


@pytest.fixture(scope="session")
def engines(settings: RuntimeSettings) -> registry.Engines:
    """Piper, faster-whisper and the OpenCV renderer, as a runtime pod loads them."""
    return registry.load(settings.engines)


@pytest.fixture(scope="session")
def pipeline(engines: registry.Engines, settings: RuntimeSettings) -> Iterator[Pipeline]:
    runner = Pipeline(engines, settings)
    yield runner
    runner.close()
