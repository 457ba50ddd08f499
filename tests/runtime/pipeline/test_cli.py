"""The ``avatar-runtime`` command, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).parent / "avatar-runtime")


def render(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "render", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


def test_render_prints_a_json_summary(portrait_png: Path, tmp_path: Path) -> None:
    out = tmp_path / "talk.mp4"
    done = render(
        "--image", str(portrait_png), "--text", "Hi, nice to meet you.", "--out", str(out), "--json"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for key in ("video_seconds", "load_seconds", "wall_seconds", "realtime_factor", "wer"):
        assert isinstance(summary[key], float), key
    assert set(summary["stages"]) >= {"tts", "asr", "render", "encode"}
    assert summary["realtime_factor"] == summary["wall_seconds"] / summary["video_seconds"]
    outputs = summary["outputs"]
    assert outputs["video"]["url"] == str(out)
    assert outputs["captions"]["url"] == str(tmp_path / "talk.vtt")
    assert outputs["thumbnail"]["url"] == str(tmp_path / "talk.jpg")
    assert all(Path(outputs[k]["url"]).is_file() for k in ("video", "captions", "thumbnail"))
    assert "%" not in done.stderr  # no progress bar when not on a terminal


def test_gs_urls_served_from_a_local_directory(portrait_png: Path, tmp_path: Path) -> None:
    """The local demo and end-to-end tests pass gs:// URLs with no Cloud Storage around."""
    buckets = tmp_path / "buckets"
    (buckets / "b").mkdir(parents=True)
    shutil.copy(portrait_png, buckets / "b" / "portrait.png")
    done = render(
        "--image", "gs://b/portrait.png", "--text", "Hi there.", "--out", "gs://b/out/", "--json",
        env={"AVATAR_RUNTIME_STORAGE__LOCAL_BUCKETS": str(buckets)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "local directory" in done.stderr  # a warning: this is not Cloud Storage
    outputs = json.loads(done.stdout)["outputs"]
    for kind, name in [
        ("video", "video.mp4"),
        ("captions", "captions.vtt"),
        ("thumbnail", "thumbnail.jpg"),
    ]:
        assert outputs[kind]["url"] == f"gs://b/out/{name}"
        assert (buckets / "b" / "out" / name).stat().st_size == outputs[kind]["size_bytes"]
    assert len(list((buckets / "b" / "out").iterdir())) == 3  # no partial files left


def test_bad_input_exits_2_with_the_error_code(portrait_png: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = render(
        "--image",
        "https://169.254.169.254/latest/meta-data",
        "--text",
        "Hi.",
        "--out",
        str(out),
        "--json",
    )
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["code"] == "UrlTargetForbidden"
    assert "UrlTargetForbidden" in done.stderr
    assert not out.exists()


def test_text_and_audio_are_mutually_exclusive(portrait_png: Path, tmp_path: Path) -> None:
    done = render(
        "--image", str(portrait_png), "--text", "a", "--audio", "b.wav", "--out", str(tmp_path)
    )
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr
