"""The chart rendered once per set of values the tests look at, by the real helm.

Scenarios: the defaults; values-gke-l4.yaml (GCS bucket, spot, monitors); namespaced mode
(two watched namespaces); the model-fetch Job on a claim and on a bucket; a CPU pool
without a model volume (as the local system runs).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart import helm

SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "gke-l4": {"values": [helm.GKE_VALUES]},
    "namespaced": {
        "values": [helm.GKE_VALUES],
        "set_json": {"operator.watchNamespaces": ["team-a", "team-b"]},
    },
    "model-fetch": {
        "set_json": {
            "modelFetch": {
                "enabled": True,
                "hfTokenSecret": {"name": "hf-token"},
                "whisperModel": "medium",
                "dittoTensorRT": True,
            },
        }
    },
    "model-fetch-gcs": {
        "values": [helm.GKE_VALUES],
        "set_json": {"modelFetch": {"enabled": True}},
    },
    "cpu-pool": {
        "set_json": {
            "pool": {
                "engines": {"tts": "piper", "renderer": "embedded"},
                "gpu": {"count": 0},
                "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "4Gi"}},
                "command": ["/opt/venv/bin/avatar-runtime", "serve"],
                "args": ["--queue-limit", "2"],
            },
            "modelVolume": {"type": "none"},
            "networkPolicy": {"prometheus": {"enabled": False}},
        }
    },
}


@pytest.fixture(scope="session")
def helm_binary() -> str:
    found = helm.binary()
    if found is None:
        pytest.fail(helm.MISSING, pytrace=False)
    return found


@pytest.fixture(scope="session")
def renderings(helm_binary: str) -> dict[str, helm.Rendered]:
    return {
        name: helm.Rendered(name, helm.template(**options)) for name, options in SCENARIOS.items()
    }


@pytest.fixture(params=sorted(SCENARIOS))
def rendered(request: pytest.FixtureRequest, renderings: dict[str, helm.Rendered]) -> helm.Rendered:
    """Each scenario in turn."""
    found: helm.Rendered = renderings[request.param]
    return found
