"""``avatar-runtime fetch-models`` fills a model volume that ``check-models`` accepts.

No model hub is reachable here: these run against a local stand-in of the
Hugging Face Hub's HTTP endpoint and of GitHub's archive server
(``tests/runtime/hub_standin.py``, pointed at through ``HF_ENDPOINT`` and
``--code-base-url``), serving tiny files of the right formats, not the real
models. The stand-in's XTTS-v2 is gated, as the real one is.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from avatar_runtime import cli
from avatar_runtime.engines import model_volume
from avatar_runtime.model_fetch import plans
from tests.runtime.engines.volume import write_standin
from tests.runtime.hub_standin import HubStandIn, Repo

TOKEN = "hf_standin_token"
WHISPER = "large-v3"
WHISPER_REPO = "Systran/faster-whisper-large-v3"
# Big enough that huggingface_hub writes a 10 MB chunk before a dropped connection.
WHISPER_WEIGHTS = 12 * 1024 * 1024


def _standin_bytes(tmp: Path, kind: model_volume.Kind) -> bytes:
    path = tmp / "file"
    write_standin(path, kind)
    data = path.read_bytes()
    path.unlink()
    return data


def _repos(tmp: Path) -> dict[str, Repo]:
    """Every file the volume needs, in the repository it comes from, plus some it must skip."""
    xtts: dict[str, bytes] = {"README.md": b"# XTTS-v2\n"}
    ditto: dict[str, bytes] = {
        "ditto_trt_Ampere_Plus/decoder_fp16.engine": b"trt",
        "ditto_onnx/decoder.onnx": b"\x08\x07",
    }
    for needed in model_volume.LAYOUT["xtts"]:
        xtts[needed.path.removeprefix("xtts-v2/")] = _standin_bytes(tmp, needed.kind)
    for needed in model_volume.LAYOUT["ditto"]:
        if needed.path.startswith(model_volume.DITTO_CHECKPOINTS_DIR):
            name = needed.path.removeprefix(f"{model_volume.DITTO_CHECKPOINTS_DIR}/")
            ditto[name] = _standin_bytes(tmp, needed.kind)
    whisper = {
        "README.md": b"# whisper\n",
        "vocabulary.json": b'["a", "b"]',
        "model.bin": os.urandom(WHISPER_WEIGHTS),
    }
    for needed in model_volume.whisper_layout(WHISPER):
        name = needed.path.removeprefix(f"whisper/{WHISPER}/")
        whisper.setdefault(name, _standin_bytes(tmp, needed.kind))

    def lfs(files: dict[str, bytes]) -> set[str]:
        return {p for p in files if p.endswith((".pth", ".bin", ".pkl", ".onnx", ".engine"))}

    return {
        "coqui/XTTS-v2": Repo(xtts, lfs(xtts), "a" * 40, token=TOKEN),
        WHISPER_REPO: Repo(whisper, lfs(whisper), "b" * 40),
        plans.DITTO_REPO: Repo(ditto, lfs(ditto), "c" * 40),
    }


def _code_archive(commit: str = plans.DITTO_CODE_COMMIT, *, without: str = "") -> bytes:
    """A tiny tar.gz laid out as GitHub's archive of Ditto's repository."""
    top = f"ditto-talkinghead-{commit}"
    files = {
        "core/__init__.py": b"",
        "core/models/__init__.py": b"",
        "stream_pipeline_offline.py": b"class StreamSDK: ...\n",
        "stream_pipeline_online.py": b"class StreamSDK: ...\n",
        "LICENSE": b"Apache-2.0\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            if name == without:
                continue
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Volume(NamedTuple):
    hub: HubStandIn
    model_dir: Path
    code_sha256: str


@pytest.fixture
def volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Volume]:
    archive = _code_archive()
    hub = HubStandIn(
        repos=_repos(tmp_path), archives={(plans.DITTO_CODE_REPO, plans.DITTO_CODE_COMMIT): archive}
    )
    hub.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    try:
        yield Volume(hub, tmp_path / "models", hashlib.sha256(archive).hexdigest())
    finally:
        hub.stop()


def fetch(volume: Volume, *extra: str) -> int:
    return cli.main(
        [
            "fetch-models",
            "--model-dir",
            str(volume.model_dir),
            "--whisper",
            WHISPER,
            "--code-base-url",
            volume.hub.url,
            "--ditto-code-sha256",
            volume.code_sha256,
            *extra,
        ]
    )


def check_models(volume: Volume) -> int:
    return cli.main(
        [
            "check-models",
            "--model-dir",
            str(volume.model_dir),
            "--tts",
            "xtts",
            "--renderer",
            "ditto",
            "--whisper",
            WHISPER,
        ]
    )


def served(volume: Volume, repo: str, path: str) -> bytes:
    return volume.hub.repos[repo].files[path]


def test_a_fresh_fetch_gives_a_volume_check_models_accepts(
    volume: Volume, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetch(volume) == 0
    out = capsys.readouterr().out
    assert "fetched  xtts-v2/model.pth" in out
    assert check_models(volume) == 0
    root = volume.model_dir
    assert (root / "whisper" / WHISPER / "model.bin").read_bytes() == served(
        volume, WHISPER_REPO, "model.bin"
    )
    for component in ("xtts-v2", "whisper", "ditto"):
        assert (root / component / "SHA256SUMS").is_file()
    sums = (root / "ditto" / "SHA256SUMS").read_text()
    assert "checkpoints/ditto_pytorch/models/decoder.pth" in sums
    assert "code/stream_pipeline_online.py" in sums
    # Only what the runtime loads: no TensorRT engines unless asked, no READMEs, no leftovers.
    assert not (root / "ditto" / "checkpoints" / "ditto_trt_Ampere_Plus").exists()
    assert not (root / "ditto" / "checkpoints" / "ditto_onnx").exists()
    assert not (root / "xtts-v2" / "README.md").exists()
    assert sorted(p.name for p in root.iterdir()) == ["ditto", "whisper", "xtts-v2"]


def test_tensorrt_engines_come_when_asked_for(volume: Volume) -> None:
    assert fetch(volume, "--ditto-trt", "--component", "ditto") == 0
    engines = volume.model_dir / "ditto" / "checkpoints" / "ditto_trt_Ampere_Plus"
    assert (engines / "decoder_fp16.engine").read_bytes() == b"trt"
    assert not (volume.model_dir / "xtts-v2").exists()


def test_a_second_run_downloads_nothing(volume: Volume, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetch(volume) == 0
    volume.hub.requests.clear()
    capsys.readouterr()
    assert fetch(volume) == 0
    assert volume.hub.downloads() == []
    out = capsys.readouterr().out
    assert "fetched 0 of" in out
    assert "present  xtts-v2/model.pth" in out


def test_a_connection_dropped_mid_file_resumes_and_the_file_is_right(volume: Volume) -> None:
    volume.hub.drop_once.add((WHISPER_REPO, "model.bin"))
    assert fetch(volume, "--component", "whisper") == 0
    weights = volume.model_dir / "whisper" / WHISPER / "model.bin"
    assert weights.read_bytes() == served(volume, WHISPER_REPO, "model.bin")
    resumed = [r.range for r in volume.hub.downloads() if r.path.endswith("/model.bin")]
    assert resumed[0] is None
    assert resumed[1] is not None
    resumed_from = int(resumed[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_from < WHISPER_WEIGHTS  # from what was written, not from the start


def test_a_run_that_fails_midway_keeps_what_it_fetched_and_the_next_fetches_the_rest(
    volume: Volume,
) -> None:
    volume.hub.fail.add(("coqui/XTTS-v2", "vocab.json"))
    assert fetch(volume, "--component", "xtts") == cli.EXIT_RETRIABLE
    assert not (volume.model_dir / "xtts-v2" / "vocab.json").exists()
    volume.hub.fail.clear()
    volume.hub.requests.clear()
    assert fetch(volume, "--component", "xtts") == 0
    assert [r.path.rsplit("/", 1)[1] for r in volume.hub.downloads()] == ["vocab.json"]


def test_a_damaged_file_on_the_volume_is_fetched_again(volume: Volume) -> None:
    assert fetch(volume) == 0
    weights = volume.model_dir / "xtts-v2" / "model.pth"
    weights.write_bytes(weights.read_bytes()[:-3] + b"bad")  # same size, other bytes
    assert check_models(volume) == 1
    volume.hub.requests.clear()
    assert fetch(volume) == 0
    assert weights.read_bytes() == served(volume, "coqui/XTTS-v2", "model.pth")
    assert [r.path.rsplit("/", 1)[1] for r in volume.hub.downloads()] == ["model.pth"]
    assert check_models(volume) == 0


@pytest.mark.parametrize("path", ["model.pth", "config.json"])  # an LFS file, a plain one
def test_a_file_served_with_a_wrong_checksum_is_refused_and_not_put_in_place(
    volume: Volume, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    volume.hub.corrupt.add(("coqui/XTTS-v2", path))
    assert fetch(volume, "--component", "xtts") == cli.EXIT_RETRIABLE
    err = capsys.readouterr().err
    assert f"checksum-mismatch: xtts-v2/{path} from coqui/XTTS-v2" in err
    assert "Traceback" not in err
    assert not (volume.model_dir / "xtts-v2" / path).exists()
    assert not list(volume.model_dir.rglob(path))  # nor a copy anywhere on the volume


def test_a_code_archive_with_another_checksum_is_refused(
    volume: Volume, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "0" * 64
    code = ["--component", "ditto", "--ditto-code-sha256", wrong]
    assert fetch(volume, *code) == cli.EXIT_RETRIABLE
    err = capsys.readouterr().err
    assert f"expected {wrong}" in err
    assert not (volume.model_dir / "ditto" / "code").exists()


def test_ditto_code_at_another_commit_replaces_the_old_one_entirely(volume: Volume) -> None:
    assert fetch(volume, "--component", "ditto") == 0
    commit = "d" * 40
    archive = _code_archive(commit, without="core/models/__init__.py")
    volume.hub.archives[(plans.DITTO_CODE_REPO, commit)] = archive
    other = ["--ditto-commit", commit, "--ditto-code-sha256", hashlib.sha256(archive).hexdigest()]
    assert fetch(volume, "--component", "ditto", *other) == 0
    code = volume.model_dir / "ditto" / "code"
    assert (code / "core" / "__init__.py").is_file()
    assert not (code / "core" / "models").exists()
    assert commit in (code / ".source.json").read_text()
    assert "core/models" not in (volume.model_dir / "ditto" / "SHA256SUMS").read_text()


def test_a_gated_repository_without_a_token_says_to_set_hf_token(
    volume: Volume, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    assert fetch(volume, "--component", "xtts") == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "coqui/XTTS-v2 is gated" in err
    assert "set HF_TOKEN" in err
    assert "Traceback" not in err
    assert not (volume.model_dir / "xtts-v2" / "model.pth").exists()


def test_an_unreachable_hub_is_named(
    volume: Volume, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert fetch(volume, "--component", "whisper") == cli.EXIT_RETRIABLE
    err = capsys.readouterr().err
    assert "unreachable: cannot reach http://127.0.0.1:9" in err


def test_a_volume_too_small_is_refused_before_downloading(
    volume: Volume, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    def nearly_full(path: object) -> shutil._ntuple_diskusage:
        return shutil._ntuple_diskusage(total=10**9, used=10**9 - 1000, free=1000)

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    assert fetch(volume, "--component", "whisper") == cli.EXIT_INTERNAL
    assert "disk-full" in capsys.readouterr().err
    assert volume.hub.downloads() == []


def test_a_repository_lacking_a_needed_file_fails_the_final_check_naming_it(
    volume: Volume, capsys: pytest.CaptureFixture[str]
) -> None:
    del volume.hub.repos["coqui/XTTS-v2"].files["vocab.json"]
    assert fetch(volume, "--component", "xtts") == cli.EXIT_INTERNAL
    assert "xtts-v2/vocab.json missing" in capsys.readouterr().err


def test_the_whisper_model_is_the_one_the_pods_are_set_to_load(
    volume: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume.hub.repos["Systran/faster-whisper-small"] = volume.hub.repos[WHISPER_REPO]
    monkeypatch.setenv("AVATAR_RUNTIME_ENGINES__WHISPER_MODEL", "small")
    whisper_only = ["--model-dir", str(volume.model_dir), "--component", "whisper"]
    assert cli.main(["fetch-models", *whisper_only]) == 0
    assert (volume.model_dir / "whisper" / "small" / "model.bin").is_file()
    assert not (volume.model_dir / "whisper" / plans.DEFAULT_WHISPER).exists()
