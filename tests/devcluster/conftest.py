"""A dev cluster on a free loopback port, and the real kubectl pointed at it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from avatar_devcluster import running

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      additionalPrinterColumns:
        - {name: Size, type: integer, jsonPath: .spec.size}
        - {name: Phase, type: string, jsonPath: .status.phase}
        - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1, maximum: 10}
                colour: {type: string, enum: [red, blue], default: red}
              x-kubernetes-validations:
                - rule: "self.size != 7"
                  message: "seven is not a widget size"
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def eventually(check: Callable[[], bool], *, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def kubectl_binary() -> str | None:
    """The machine's kubectl, else the one `make test` unpacked next to the venv's Python."""
    venv_bin = str(Path(sys.executable).parent)
    return shutil.which("kubectl", path=f"{os.environ.get('PATH', '')}:{venv_bin}")


@dataclass
class Kubectl:
    kubeconfig: Path
    workdir: Path

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        binary = kubectl_binary()
        if binary is None:
            pytest.fail("kubectl is not installed; `make test` installs it")
        done = subprocess.run(
            [binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [kubectl_binary() or "kubectl", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )

    def apply(self, manifest: str) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", stdin=manifest)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[running.Running]:
    with running.in_thread(
        kubeconfig_path=tmp_path / "kubeconfig", state=tmp_path / "state.json"
    ) as dev:
        yield dev


@pytest.fixture
def kubectl(cluster: running.Running, tmp_path: Path) -> Kubectl:
    return Kubectl(cluster.kubeconfig, tmp_path)


@pytest.fixture
def widgets(kubectl: Kubectl) -> Kubectl:
    """A cluster with the Widget CRD applied."""
    kubectl.apply(WIDGET_CRD)
    return kubectl
