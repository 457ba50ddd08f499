"""Draw the embedded renderer's contact sheet: docs/engines/embedded-renderer.png.

Rows are portraits the renderer must get right (the astronaut at 512 px, upscaled to
1024 px, in greyscale, tilted 15 degrees); columns are mouth shapes and a blink drawn by
the real renderer (``OpenCVRenderer`` with the Face Landmarker) at its curves' values for
rest, an open vowel, a rounded vowel, spread lips and a blink. Each tile is the face's
neighbourhood, enlarged, so a person can judge the mouth.

    .venv/bin/python scripts/contact_sheet.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

from avatar_runtime.engines.opencv_renderer.drawing import FaceAnimator
from avatar_runtime.engines.opencv_renderer.renderer import OpenCVRenderer

OUT = Path(__file__).resolve().parents[1] / "docs" / "engines" / "embedded-renderer.png"
POSES = {
    "rest": {"opening": 0.0, "spread": 0.0, "blink": 0.0},
    "a (open)": {"opening": 1.0, "spread": 0.05, "blink": 0.0},
    "o (round)": {"opening": 0.55, "spread": -0.4, "blink": 0.0},
    "i (spread)": {"opening": 0.3, "spread": 0.3, "blink": 0.0},
    "blink": {"opening": 0.0, "spread": 0.0, "blink": 1.0},
}


def portraits() -> dict[str, np.ndarray]:
    photo = data.astronaut()
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    tilt = cv2.warpAffine(photo, cv2.getRotationMatrix2D((256, 256), 15, 1.0), (512, 512))
    return {
        "512 px": photo,
        "1024 px": cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC),
        "greyscale": grey,
        "tilted 15 deg": np.asarray(tilt, np.uint8),
    }


def main() -> None:
    renderer = OpenCVRenderer()
    rows = []
    for name, portrait in portraits().items():
        avatar = renderer.prepare(portrait, size=512)
        animator = FaceAnimator(avatar.image, avatar.face)
        face = avatar.face
        cx, cy, half = (
            int(face.x + face.width / 2),
            int(face.mouth_y - face.width * 0.3),
            int(face.width * 0.8),
        )
        tiles = []
        for pose in POSES.values():
            frame = animator.draw(angle=0.0, dx=0.0, dy=0.0, scale=1.0, **pose)
            crop = frame[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half]
            tiles.append(cv2.resize(crop, (200, 200), interpolation=cv2.INTER_CUBIC))
        row = np.concatenate(tiles, axis=1)
        label = np.full((200, 130, 3), 255, np.uint8)
        cv2.putText(label, name, (6, 105), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        rows.append(np.concatenate([label, row], axis=1))
    header = np.full((30, rows[0].shape[1], 3), 255, np.uint8)
    for i, pose_name in enumerate(POSES):
        cv2.putText(header, pose_name, (130 + i * 200 + 8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1)  # fmt: skip
    sheet = np.concatenate([header, *rows], axis=0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(OUT), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
