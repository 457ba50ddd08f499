"""scripts/install_kubectl.py installs what is missing: helm alone where kubectl is there.

Only the choice is tested (no download): the unpacking is what `make test` runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import install_kubectl


def _tool(directory: Path, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with kubectl on it (as /usr/bin/kubectl here) and no helm."""
    _tool(tmp_path / "usr-bin", "kubectl")
    monkeypatch.setenv("PATH", str(tmp_path / "usr-bin"))
    return tmp_path


def test_missing_picks_helm_alone_where_kubectl_is_on_path(machine: Path) -> None:
    dest = machine / "venv-bin"
    assert install_kubectl.wanted(dest=dest, only=[], missing=True) == ["helm"]


def test_missing_picks_nothing_once_both_are_found(machine: Path) -> None:
    dest = machine / "venv-bin"
    _tool(dest, "helm")
    assert install_kubectl.wanted(dest=dest, only=[], missing=True) == []


def test_only_and_the_default_install_what_they_name(machine: Path) -> None:
    dest = machine / "venv-bin"
    assert install_kubectl.wanted(dest=dest, only=["helm"], missing=False) == ["helm"]
    assert install_kubectl.wanted(dest=dest, only=[], missing=False) == ["kubectl", "helm"]
