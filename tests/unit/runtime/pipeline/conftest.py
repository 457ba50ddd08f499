"""Outputs as the encoder leaves them, for the storage and record tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def outputs(tmp_path: Path) -> dict[str, Path]:
    """Three local temp files, as the encoder leaves them."""
    work = tmp_path / "work"
    work.mkdir()
    files = {
        "video": work / "out.mp4",
        "thumbnail": work / "thumb.jpg",
        "captions": work / "captions.vtt",
    }
    files["video"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"v" * 3_000_000)
    files["thumbnail"].write_bytes(b"\xff\xd8\xff" + b"j" * 1000)
    files["captions"].write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n")
    return files
