"""The model volume check: what a pod runs before loading XTTS-v2, Ditto or Whisper.

No real weights exist here, so the volume is built from stand-in files of the
right formats (a zip for a PyTorch checkpoint, a pickle, a protobuf head for
ONNX, parsable JSON); the check reads formats and checksums, never weights.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from avatar_runtime.engines import model_volume
from avatar_runtime.engines.model_volume import State
from tests.runtime.engines.volume import build

CLI = str(Path(sys.executable).parent / "avatar-runtime")


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    return build(tmp_path, "xtts", "ditto", whisper="large-v3")


def test_a_complete_volume_passes_and_optional_files_may_be_absent(volume: Path) -> None:
    report = model_volume.check(volume, engines=["xtts", "ditto"], whisper="large-v3")
    assert report.ok, report.summary()
    absent = [f.needed.path for f in report.findings if f.state is State.ABSENT_OPTIONAL]
    assert absent == ["xtts-v2/speakers_xtts.pth"]
    assert "all" in report.summary()


def test_a_missing_file_is_named(volume: Path) -> None:
    (volume / "ditto/checkpoints/ditto_pytorch/models/warp_network.pth").unlink()
    report = model_volume.check(volume, engines=["ditto"])
    assert not report.ok
    [problem] = report.problems()
    assert problem.state is State.MISSING
    assert "ditto/checkpoints/ditto_pytorch/models/warp_network.pth missing" in report.summary()


@pytest.mark.parametrize(
    ("path", "content", "why"),
    [
        ("xtts-v2/model.pth", b"", "empty"),
        ("xtts-v2/model.pth", b"<html>404</html>", "not a PyTorch checkpoint"),
        ("xtts-v2/config.json", b"{not json", "not valid JSON"),
        ("ditto/checkpoints/ditto_cfg/v0.4_hubert_cfg_pytorch.pkl", b"text", "not a pickle"),
        ("ditto/checkpoints/ditto_pytorch/aux_models/det_10g.onnx", b"version https://git-lfs",
         "not an ONNX model"),
    ],
)  # fmt: skip
def test_a_damaged_file_is_named_with_the_reason(
    volume: Path, path: str, content: bytes, why: str
) -> None:
    (volume / path).write_bytes(content)
    report = model_volume.check(volume, engines=["xtts", "ditto"])
    [problem] = report.problems()
    assert problem.state is State.DAMAGED
    assert problem.needed.path == path
    assert why in report.summary()


def test_checksums_listed_in_sha256sums_must_match(volume: Path) -> None:
    weights = volume / "xtts-v2/model.pth"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    (volume / "xtts-v2/SHA256SUMS").write_text(f"{digest}  model.pth\n{'0' * 64}  vocab.json\n")
    report = model_volume.check(volume, engines=["xtts"])
    [problem] = report.problems()
    assert problem.needed.path == "xtts-v2/vocab.json"
    assert "sha256 differs" in problem.detail


def test_the_cli_lists_findings_and_fails_when_something_is_missing(volume: Path) -> None:
    done = subprocess.run(
        [CLI, "check-models", "--model-dir", str(volume), "--tts", "xtts", "--renderer", "ditto"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout
    assert "xtts-v2/model.pth" in done.stdout

    (volume / "xtts-v2/vocab.json").unlink()
    done = subprocess.run(
        [CLI, "check-models", "--model-dir", str(volume), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    answer = json.loads(done.stdout)
    assert answer["ok"] is False
    missing = [f["path"] for f in answer["findings"] if f["state"] == "missing"]
    assert missing == ["xtts-v2/vocab.json"]


def test_the_embedded_engines_need_nothing_from_the_volume(tmp_path: Path) -> None:
    done = subprocess.run(
        [CLI, "check-models", "--model-dir", str(tmp_path), "--tts", "piper",
         "--renderer", "embedded"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
