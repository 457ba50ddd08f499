"""Shared fixtures: the sample portrait, and the real embedded engines loaded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def portrait_rgb() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut())


@pytest.fixture(scope="session")
def portrait_png(tmp_path_factory: pytest.TempPathFactory, portrait_rgb: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    Image.fromarray(portrait_rgb).save(path)
    return path


@pytest.fixture(scope="session")
def settings():  # type: ignore[no-untyped-def]
    from avatar_runtime.settings import RuntimeSettings

    return RuntimeSettings()


@pytest.fixture(scope="session")
def engines(settings):  # type: ignore[no-untyped-def]
    """Piper, faster-whisper and the OpenCV renderer, as a runtime pod loads them."""
    from avatar_runtime.engines import registry

    return registry.load(settings.engines)


@pytest.fixture(scope="session")
def pipeline(engines, settings) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from avatar_runtime.pipeline.runner import Pipeline

    runner = Pipeline(engines, settings)
    yield runner
    runner.close()
