"""Server-side apply, as ``helm install``/``upgrade`` (Helm 4) and ``kubectl apply --server-side``
send it: the object is created, then changed to what the manager applies, and a field the
manager stops applying goes (what makes ``helm upgrade`` drop a value removed from a chart).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml

from avatar_devcluster import running
from avatar_devcluster.kubectl import Kubectl

APPLY = "application/apply-patch+yaml"
URL = "/api/v1/namespaces/default/configmaps/settings"


def _apply(api: httpx.Client, doc: dict[str, Any], manager: str = "helm") -> httpx.Response:
    return api.patch(
        URL,
        content=yaml.safe_dump(doc).encode(),
        headers={"Content-Type": APPLY},
        params={"fieldManager": manager, "fieldValidation": "Strict"} if manager else {},
    )


def _config(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
            "data": data}  # fmt: skip


@pytest.fixture
def api(cluster: running.Running) -> httpx.Client:
    return httpx.Client(base_url=cluster.url, timeout=10)


def test_an_apply_creates_the_object_and_records_its_manager(api: httpx.Client) -> None:
    created = _apply(api, _config(slots="1"))
    assert created.status_code == 201, created.text
    got = api.get(URL).json()
    assert got["data"] == {"slots": "1"}
    (entry,) = got["metadata"]["managedFields"]
    assert entry["manager"] == "helm"
    assert entry["operation"] == "Apply"
    assert entry["fieldsV1"]["f:data"] == {"f:slots": {}}


def test_a_field_the_manager_stops_applying_goes_and_others_changes_stay(
    api: httpx.Client, kubectl: Kubectl
) -> None:
    _apply(api, _config(slots="1", colour="red")).raise_for_status()
    kubectl("label", "configmap", "settings", "team=a")  # another manager's field
    changed = _apply(api, _config(slots="2"))
    assert changed.status_code == 200, changed.text
    got = json.loads(kubectl("get", "configmap", "settings", "-o", "json").stdout)
    assert got["data"] == {"slots": "2"}  # colour was the manager's, and is no longer applied
    assert got["metadata"]["labels"] == {"team": "a"}


def test_kubectl_apply_server_side_works_too(kubectl: Kubectl) -> None:
    # The real kubectl, as the chart README's CRD upgrade runs it.
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(_config(slots="3")))
    shown = kubectl("get", "configmap", "settings", "-o", "json", "--show-managed-fields")
    got = json.loads(shown.stdout)
    assert got["data"] == {"slots": "3"}
    assert got["metadata"]["managedFields"][0]["manager"] == "kubectl"


def test_an_apply_without_a_field_manager_or_with_another_name_is_refused(
    api: httpx.Client,
) -> None:
    missing = _apply(api, _config(slots="1"), manager="")
    assert missing.status_code == 400
    assert "fieldManager" in missing.json()["message"]
    other = api.patch(URL, content=yaml.safe_dump({**_config(), "metadata": {"name": "x"}}),
                      headers={"Content-Type": APPLY}, params={"fieldManager": "helm"})  # fmt: skip
    assert other.status_code == 400
    assert "does not match" in other.json()["message"]
    assert api.get(URL).status_code == 404  # nothing half-written
