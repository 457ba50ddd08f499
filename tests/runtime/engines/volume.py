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


# A Cython helper the stand-in imports, as Ditto's put-back imports its blend: through
# pyximport, which compiles it on first import.
_BLEND_INIT = "import pyximport\npyximport.install()\n\nfrom .blend import brighten\n"
_BLEND_PYX = """# cython: language_level=3
import numpy as np


def brighten(image, int amount):
    return np.clip(image.astype(np.int16) + amount, 0, 255).astype(np.uint8)
"""


def build(
    root: Path, *engines: str, whisper: str | None = None, ditto_cython: bool = False
) -> Path:
    """Every required file of ``engines`` as a stand-in; Ditto's code is the stand-in module.

    ``ditto_cython`` adds a Cython helper to Ditto's code (compiled on first import, a few
    seconds), so that the stand-in's frames go through compiled code as Ditto's do."""
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
        if ditto_cython:
            blend = code / "core" / "utils" / "blend"
            blend.mkdir(parents=True)
            (blend / "__init__.py").write_text(_BLEND_INIT)
            (blend / "blend.pyx").write_text(_BLEND_PYX)
    return root
