"""Draw the embedded renderer's contact sheet: docs/engines/embedded-renderer.png.

Rows are portraits the renderer must get right (the astronaut at 512 px, upscaled to
1024 px, in greyscale, tilted 15 degrees, and with her lips closed: the renderer's own
pressed-lips frame, so the inside of the mouth is all drawn), each drawn by the renderer
as it is now and, with ``--before REV``, by the renderer of an earlier git revision above
it; columns are
the mouth at rest, an open vowel, a rounded vowel, spread lips, lips pressed for p/b/m and
a blink, at the values the renderer's curves use. Each tile is the face's neighbourhood,
enlarged, so a person can judge the mouth and the eyes.

    .venv/bin/python scripts/contact_sheet.py [--before REV] [--out PATH]

The earlier renderer is read with ``git show REV:...`` into a temporary package and
imported from there; nothing in the work tree changes.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage import data

from avatar_runtime.engines.opencv_renderer import landmarks
from avatar_runtime.engines.opencv_renderer.drawing import FaceAnimator
from avatar_runtime.engines.opencv_renderer.renderer import OpenCVRenderer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "engines" / "embedded-renderer.png"
PACKAGE = "runtime/avatar_runtime/engines/opencv_renderer"
POSES = {
    "rest": {"opening": 0.0, "spread": 0.0, "blink": 0.0},
    "a (open)": {"opening": 1.0, "spread": 0.05, "blink": 0.0},
    "o (round)": {"opening": 0.55, "spread": -0.4, "blink": 0.0},
    "i (spread)": {"opening": 0.3, "spread": 0.3, "blink": 0.0},
    "m (pressed)": {"opening": 0.0, "spread": -0.05, "blink": 0.0, "press": 1.0},
    "blink": {"opening": 0.0, "spread": 0.0, "blink": 1.0},
}
TILE = 170
LABEL = 150


def portraits(renderer: OpenCVRenderer) -> dict[str, np.ndarray]:
    photo = data.astronaut()
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    tilt = cv2.warpAffine(photo, cv2.getRotationMatrix2D((256, 256), 15, 1.0), (512, 512))
    avatar = renderer.prepare(photo, size=512)
    closed = FaceAnimator(avatar.image, avatar.face).draw(
        opening=0.0, spread=0.0, blink=0.0, angle=0.0, dx=0.0, dy=0.0, scale=1.0, press=1.0
    )
    return {
        "512 px": photo,
        "1024 px": cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC),
        "greyscale": grey,
        "tilted 15 deg": np.asarray(tilt, np.uint8),
        "lips closed": closed,
    }


def earlier_renderer(rev: str, into: Path) -> tuple[Any, Any]:
    """The renderer and FaceAnimator classes of git revision ``rev``, as package
    ``before_renderer`` under ``into``."""
    package = into / "before_renderer"
    package.mkdir()
    git = shutil.which("git") or "git"

    def show(*argv: str) -> str:
        done = subprocess.run(  # noqa: S603 (our argv)
            [git, *argv], cwd=ROOT, check=True, capture_output=True, text=True
        )
        return done.stdout

    for name in show("ls-tree", "--name-only", f"{rev}:{PACKAGE}").split():
        if not name.endswith(".py"):
            continue
        source = show("show", f"{rev}:{PACKAGE}/{name}")
        source = source.replace("avatar_runtime.engines.opencv_renderer", "before_renderer")
        # Its model file is the one in place now.
        source = source.replace(
            'Path(__file__).resolve().parents[2] / "assets" / "face_landmarker.task"',
            f"Path({str(landmarks.MODEL)!r})",
        )
        (package / name).write_text(source)
    sys.path.insert(0, str(into))
    renderer = importlib.import_module("before_renderer.renderer")
    drawing = importlib.import_module("before_renderer.drawing")
    return renderer.OpenCVRenderer, drawing.FaceAnimator


def row(name: str, portrait: np.ndarray, renderer: Any, animator_class: Any) -> np.ndarray:
    avatar = renderer.prepare(portrait, size=512)
    animator = animator_class(avatar.image, avatar.face)
    knows = set(inspect.signature(animator.draw).parameters)
    face = avatar.face
    cx, cy = int(face.x + face.width / 2), int(face.mouth_y - face.width * 0.3)
    half = int(face.width * 0.8)
    tiles = []
    for pose in POSES.values():
        values = {k: v for k, v in pose.items() if k in knows}  # earlier ones had no press
        frame = animator.draw(angle=0.0, dx=0.0, dy=0.0, scale=1.0, **values)
        crop = frame[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half]
        tiles.append(cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_CUBIC))
    label = np.full((TILE, LABEL, 3), 255, np.uint8)
    for i, line in enumerate(name.split("\n")):
        cv2.putText(label, line, (6, TILE // 2 - 6 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1)  # fmt: skip
    return np.concatenate([label, *tiles], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="REV", help="also draw this revision's renderer")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    now = OpenCVRenderer()
    with tempfile.TemporaryDirectory() as scratch:
        before = earlier_renderer(args.before, Path(scratch)) if args.before else None
        old = before[0]() if before else None
        rows = []
        for name, portrait in portraits(now).items():
            if before:
                rows.append(row(f"{name}\nbefore", portrait, old, before[1]))
                rows.append(row(f"{name}\nnow", portrait, now, FaceAnimator))
            else:
                rows.append(row(name, portrait, now, FaceAnimator))
    header = np.full((30, rows[0].shape[1], 3), 255, np.uint8)
    for i, pose_name in enumerate(POSES):
        cv2.putText(header, pose_name, (LABEL + i * TILE + 8, 21), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 0, 0), 1)  # fmt: skip
    sheet = np.concatenate([header, *rows], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
