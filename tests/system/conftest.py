"""One running system per test module: starting runtime pods costs seconds each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from avatar_devcluster import stack
from tests.system.system import System, env_for_tests


def _system(
    tmp_path_factory: pytest.TempPathFactory, name: str, **deployment: Any
) -> Iterator[System]:
    with System(tmp_path_factory.mktemp(name)) as system:
        manifest = stack.build_runtime_deployment(
            buckets=system.buckets, env=env_for_tests(), **deployment
        )
        system.create(manifest)
        system.operator.start()
        system.wait_for_runtime_pods(deployment.get("replicas", 1))
        yield system


@pytest.fixture(scope="module")
def two_pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Pool ``default``: 2 runtime pods of 2 slots each."""
    yield from _system(tmp_path_factory, "two-pods", replicas=2, slots=2)


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Pool ``default``: 1 runtime pod with 1 slot, so jobs run one by one in queue order."""
    yield from _system(tmp_path_factory, "one-slot", replicas=1, slots=1)
