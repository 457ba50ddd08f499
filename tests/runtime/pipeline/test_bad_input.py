"""Every kind of bad input ends in a typed error with a stable code and no output.

The jobs run on the real engines; each case checks the error code, that the
message names the problem, and that the output directory is left empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobSpec
from avatar_runtime.engines.registry import Engines
from avatar_runtime.pipeline.runner import Pipeline
from avatar_runtime.settings import Limits, QualitySettings, RuntimeSettings
from tests.runtime.pipeline.media import write_wav


def run(pipeline: Pipeline, out: Path, **spec: object) -> JobError:
    spec.setdefault("text", "Hello there.")
    with pytest.raises(JobError) as caught:
        pipeline.run(JobSpec(output=str(out), **spec))
    assert not out.exists() or list(out.iterdir()) == [], "a failed job left files behind"
    return caught.value


@pytest.fixture
def strict(engines: Engines) -> Iterator[Pipeline]:
    """A pipeline on the same engines with tight limits, to reach them with small inputs."""
    settings = RuntimeSettings(
        limits=Limits(max_text_chars=80, max_audio_seconds=2.0),
        quality=QualitySettings(max_wer=0.0, max_cer=0.0, retriable_cer=0.0),
    )
    runner = Pipeline(engines, settings)
    yield runner
    runner.close()


def test_unreadable_portrait(pipeline: Pipeline, tmp_path: Path) -> None:
    bogus = tmp_path / "portrait.png"
    bogus.write_text("not an image at all")
    error = run(pipeline, tmp_path / "out", portrait=str(bogus))
    assert error.code is ErrorCode.IMAGE_UNREADABLE
    assert error.field == "portrait"


def test_portrait_over_the_pixel_limit(
    engines: Engines, portrait_png: Path, tmp_path: Path
) -> None:
    runner = Pipeline(engines, RuntimeSettings(limits=Limits(max_image_pixels=200_000)))
    try:
        error = run(runner, tmp_path / "out", portrait=str(portrait_png))  # 512x512 > 200k px
    finally:
        runner.close()
    assert error.code is ErrorCode.IMAGE_TOO_LARGE


def test_portrait_without_a_face(pipeline: Pipeline, tmp_path: Path) -> None:
    from skimage import data

    coffee = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(coffee)
    error = run(pipeline, tmp_path / "out", portrait=str(coffee))
    assert error.code is ErrorCode.FACE_NOT_FOUND
    assert "face" in error.message.lower()


def test_empty_text(pipeline: Pipeline, portrait_png: Path, tmp_path: Path) -> None:
    error = run(pipeline, tmp_path / "out", portrait=str(portrait_png), text="   \n\t ")
    assert error.code is ErrorCode.TEXT_EMPTY


def test_text_over_the_length_limit(strict: Pipeline, portrait_png: Path, tmp_path: Path) -> None:
    error = run(strict, tmp_path / "out", portrait=str(portrait_png), text="word " * 40)
    assert error.code is ErrorCode.TEXT_TOO_LONG
    assert "80" in error.message


def test_audio_over_the_length_limit(strict: Pipeline, portrait_png: Path, tmp_path: Path) -> None:
    t = np.arange(3 * 16_000) / 16_000
    write_wav(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16_000)
    error = run(
        strict,
        tmp_path / "out",
        portrait=str(portrait_png),
        text=None,
        audio=str(tmp_path / "long.wav"),
    )
    assert error.code is ErrorCode.AUDIO_TOO_LONG


def test_undecodable_audio(pipeline: Pipeline, portrait_png: Path, tmp_path: Path) -> None:
    noise = tmp_path / "speech.mp3"
    noise.write_bytes(np.random.default_rng(0).integers(0, 255, 50_000, dtype=np.uint8).tobytes())
    error = run(pipeline, tmp_path / "out", portrait=str(portrait_png), text=None, audio=str(noise))
    assert error.code is ErrorCode.AUDIO_UNREADABLE


def test_unsupported_language(pipeline: Pipeline, portrait_png: Path, tmp_path: Path) -> None:
    error = run(pipeline, tmp_path / "out", portrait=str(portrait_png), language="tlh")
    assert error.code is ErrorCode.LANGUAGE_UNSUPPORTED
    assert error.field == "language"


@pytest.mark.parametrize("url", ["ftp://example.com/face.png", "http://example.com/face.png"])
def test_url_scheme_not_allowed(pipeline: Pipeline, tmp_path: Path, url: str) -> None:
    error = run(pipeline, tmp_path / "out", portrait=url)
    assert error.code is ErrorCode.URL_SCHEME_NOT_ALLOWED


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/computeMetadata/v1/face.png",  # GKE metadata server
        "https://127.0.0.1/face.png",
        "https://10.0.0.7/face.png",
        "https://192.168.1.20/face.png",
        "https://[::1]/face.png",
        "https://localhost/face.png",
    ],
)
def test_url_to_internal_addresses_is_refused(pipeline: Pipeline, tmp_path: Path, url: str) -> None:
    """Refused before any connection is made (the fetcher checks the resolved address)."""
    error = run(pipeline, tmp_path / "out", portrait=url)
    assert error.code is ErrorCode.URL_TARGET_FORBIDDEN


def test_a_portrait_over_the_byte_limit_is_image_too_large_however_it_comes(
    engines: Engines, portrait_png: Path, tmp_path: Path
) -> None:
    """Refused as it is read (here a file; gs:// and https stop the download there): the
    portrait's own code, as the README's table says, not a generic download error."""
    settings = RuntimeSettings(limits=Limits(max_image_bytes=10_000))
    runner = Pipeline(engines, settings)
    try:
        error = run(runner, tmp_path / "out", portrait=f"file://{portrait_png}")
    finally:
        runner.close()
    assert error.code is ErrorCode.IMAGE_TOO_LARGE
    assert error.field == "portrait"
    assert "10000 bytes" in error.message


def test_unintelligible_speech_fails_the_job(
    strict: Pipeline, portrait_png: Path, tmp_path: Path
) -> None:
    """Made-up words cannot be heard back exactly; with limits of 0 the job fails."""
    error = run(
        strict, tmp_path / "out", portrait=str(portrait_png), text="Zorblax fnargle quimpet."
    )
    assert error.code is ErrorCode.INTELLIGIBILITY_LOW
    assert error.retriable is False


def test_one_of_text_or_audio(portrait_png: Path, tmp_path: Path) -> None:
    with pytest.raises(JobError) as caught:
        JobSpec(portrait=str(portrait_png), output=str(tmp_path), text="hi", audio="a.wav")
    assert caught.value.code is ErrorCode.INVALID_OPTION
