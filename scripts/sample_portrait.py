"""Write the sample portrait the demo and benchmarks use.

scikit-image ships a public-domain NASA portrait (Eileen Collins, ``astronaut``),
so the demo needs no download and no image in this repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image
from skimage import data


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/portrait.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(out)
    print(out)


if __name__ == "__main__":
    main()
