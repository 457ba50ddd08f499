"""Model volumes for tests, built from stand-in files of the right formats (no real weights)."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

from avatar_runtime.engines import model_volume
from avatar_runtime.engines.model_volume import Kind

# Our own stand-in for Ditto's StreamSDK (no Ditto code is ever in this repository): it is
# written onto a test volume under the module name the runtime imports from a real one.
STANDIN = Path(__file__).with_name("ditto_standin.py")


def write_standin(path: Path, kind: Kind) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind is Kind.DIR:
        path.mkdir(exist_ok=True)
    elif kind is Kind.JSON:
        path.write_text(json.dumps({"stand_in": True}))
    elif kind is Kind.TORCH:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps({"weights": []}))
    elif kind is Kind.PICKLE:
        path.write_bytes(pickle.dumps({"cfg": 1}))
    elif kind is Kind.ONNX:
        path.write_bytes(b"\x08\x07\x12\x04test")  # ir_version 7, producer "test"
    else:
        path.write_bytes(b"stand-in")


def build(root: Path, *engines: str, whisper: str | None = None) -> Path:
    """Every required file of ``engines`` as a stand-in; Ditto's code is the stand-in module."""
    needed = [n for e in engines for n in model_volume.LAYOUT[e]]
    if whisper:
        needed += model_volume.whisper_layout(whisper)
    for item in needed:
        if not item.optional:
            write_standin(root / item.path, item.kind)
    if "ditto" in engines:
        code = root / model_volume.DITTO_CODE_DIR
        shutil.copy(STANDIN, code / "stream_pipeline_offline.py")
        shutil.copy(STANDIN, code / "stream_pipeline_online.py")
    return root
