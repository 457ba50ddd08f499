"""A dev cluster on a free loopback port, and the real kubectl pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from avatar_devcluster import running
from avatar_devcluster.kubectl import Kubectl

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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[running.Running]:
    with running.in_thread(
        kubeconfig_path=tmp_path / "kubeconfig", state=tmp_path / "state.json"
    ) as dev:
        yield dev


@pytest.fixture
def kubectl(cluster: running.Running, tmp_path: Path) -> Kubectl:
    return Kubectl(cluster.kubeconfig)


@pytest.fixture
def widgets(kubectl: Kubectl) -> Kubectl:
    """A cluster with the Widget CRD applied."""
    kubectl.apply(WIDGET_CRD)
    return kubectl
