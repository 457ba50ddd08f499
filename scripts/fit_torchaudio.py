"""Make torchaudio importable beside a torch it was not built for (the CI's CPU torch).

PyPI's torchaudio wheels carry a compiled extension built against one torch
release and CUDA. The CPU machines here have torch 2.13 (a CPU build) and no
torchaudio of that release exists, so the extension fails to load and with it
``import torchaudio``, which coqui-tts needs. XTTS-v2 uses only torchaudio's
pure-Python parts (resampling, mel spectrograms), which work without the
extension, so when loading fails this removes the extension's files from the
virtual environment. Production images install a matching torch and torchaudio
and never run this.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

PROBE = [sys.executable, "-c", "import torchaudio"]


def main() -> int:
    failed = subprocess.run(PROBE, capture_output=True, text=True)  # noqa: S603 (fixed argv)
    if failed.returncode == 0:
        return 0
    if "Could not load this library" not in failed.stderr:
        sys.stderr.write(failed.stderr)
        return 1
    spec = importlib.util.find_spec("torchaudio")  # finds the package without importing it
    assert spec is not None
    assert spec.origin is not None
    lib = Path(spec.origin).parent / "lib"
    for path in lib.glob("*.so"):
        print(f"torchaudio: its compiled extension does not fit this torch; removing {path.name}")
        path.unlink()
    return subprocess.run(PROBE).returncode  # noqa: S603 (fixed argv)


if __name__ == "__main__":
    raise SystemExit(main())
