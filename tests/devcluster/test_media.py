"""Content negotiation over raw HTTP: 415 for bodies, 406 for answers, protobuf where kubectl
needs it (its typed clients' bodies, the OpenAPI v2 document its validation reads).

test_kubectl.py shows that the real kubectl works; these tests pin the answers underneath
in kube-apiserver's words, and the protobuf reading, field by field.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import yaml

from avatar_devcluster import openapi, running
from avatar_devcluster.routes import protobuf
from tests.devcluster.conftest import WIDGET_CRD
from tests.devcluster.test_api import CRDS, NAMESPACES, failure, ok

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
PROTOBUF = {"Content-Type": "application/vnd.kubernetes.protobuf"}
KUBECTL_ACCEPT = {"Accept": "application/vnd.kubernetes.protobuf,application/json"}
OPENAPI_PB = {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}

# The body `kubectl create namespace soak-a` (v1.32) sends: every ObjectMeta field that is
# not a pointer written empty, an empty spec, a status with an empty phase.
KUBECTL_NAMESPACE = (
    b'k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1e\n\x16\n\x06soak-a\x12\x00\x1a\x00"\x00*\x00'
    b'2\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00"\x00'
)


def field(number: int, payload: bytes | str) -> bytes:
    """One length-delimited protobuf field (a payload under 128 bytes)."""
    data = payload.encode() if isinstance(payload, str) else payload
    assert len(data) < 128
    return bytes([number << 3 | 2, len(data)]) + data


def varint_field(number: int, value: int) -> bytes:
    assert value < 128
    return bytes([number << 3, value])


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """The ``runtime.Unknown`` envelope every Kubernetes protobuf body comes in."""
    return b"k8s\x00" + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


def configmap(name: str, *extra: bytes) -> bytes:
    meta = field(1, field(1, name) + field(2, "") + field(11, field(1, "team") + field(2, "")))
    data = field(2, field(1, "a") + field(2, "b"))
    return envelope("v1", "ConfigMap", meta + data + b"".join(extra))


@pytest.fixture
def api(cluster: running.Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.url, timeout=10) as client:
        yield client


@pytest.fixture
def crd_api(api: httpx.Client) -> httpx.Client:
    ok(api.post(CRDS, json=yaml.safe_load(WIDGET_CRD)), 201)
    return api


def test_kubectls_protobuf_namespace_is_created_and_answered_in_json(api: httpx.Client) -> None:
    created = api.post(NAMESPACES, content=KUBECTL_NAMESPACE, headers=PROTOBUF | KUBECTL_ACCEPT)
    assert created.headers["Content-Type"].startswith("application/json")
    namespace = ok(created, 201)
    assert namespace["metadata"]["name"] == "soak-a"
    assert namespace["metadata"]["uid"]  # the server's own, not the body's empty one


def test_a_protobuf_body_keeps_set_values_and_leaves_out_unset_ones() -> None:
    secret = protobuf.decode_object(
        envelope(
            "v1", "Secret", field(1, field(1, "s")) + field(2, field(1, "k") + field(2, b"\x00v"))
        )
    )
    assert secret == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                      "data": {"k": "AHY="}}  # fmt: skip
    # A pointer's zero (replicas: 0) is set; a label's empty value is a value.
    spec = varint_field(1, 0) + field(3, field(1, field(11, field(1, "app") + field(2, ""))))
    deployment = protobuf.decode_object(envelope("apps/v1", "Deployment", field(2, spec)))
    assert deployment["spec"] == {"replicas": 0, "template": {"metadata": {"labels": {"app": ""}}}}
    port = field(
        1, field(1, "http") + varint_field(3, 80) + field(4, varint_field(1, 1) + field(3, "web"))
    )
    service = protobuf.decode_object(envelope("v1", "Service", field(2, port)))
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "web"}]


def test_a_protobuf_field_the_dev_cluster_cannot_read_is_415_and_nothing_is_written(
    api: httpx.Client,
) -> None:
    refused = api.post(CONFIGMAPS, content=configmap("odd", field(9, "x")), headers=PROTOBUF)
    status = failure(refused, 415, "UnsupportedMediaType")
    assert "field 9 of ConfigMap" in status["message"]
    assert status["message"].startswith("the body of the request was in an unknown format")
    failure(api.get(f"{CONFIGMAPS}/odd"), 404, "NotFound")
    # Zeros in fields it does not know are what Go writes for unset ones: those are fine.
    ok(api.post(CONFIGMAPS, content=configmap("even", field(9, "")), headers=PROTOBUF), 201)
    assert ok(api.get(f"{CONFIGMAPS}/even"))["metadata"]["labels"] == {"team": ""}


def test_a_protobuf_body_for_a_custom_resource_is_415_json_or_yaml(crd_api: httpx.Client) -> None:
    body = envelope("example.com/v1", "Widget", field(1, field(1, "w")))
    status = failure(
        crd_api.post(WIDGETS, content=body, headers=PROTOBUF), 415, "UnsupportedMediaType"
    )
    assert status["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml"
    )


def test_an_unknown_content_type_is_415_naming_what_the_server_reads(api: httpx.Client) -> None:
    refused = api.post(CONFIGMAPS, content=b"a=b", headers={"Content-Type": "text/plain"})
    assert failure(refused, 415, "UnsupportedMediaType")["message"].endswith(
        "application/json, application/yaml, application/vnd.kubernetes.protobuf"
    )
    garbage = api.post(CONFIGMAPS, content=b"not protobuf", headers=PROTOBUF)
    failure(garbage, 415, "UnsupportedMediaType")


def test_yaml_and_untyped_bodies_are_read(api: httpx.Client) -> None:
    manifest = "metadata: {name: from-yaml}\ndata: {a: b}\n"
    ok(api.post(CONFIGMAPS, content=manifest, headers={"Content-Type": "application/yaml"}), 201)
    ok(api.post(CONFIGMAPS, content=b'{"metadata": {"name": "untyped"}}'), 201)
    assert ok(api.get(f"{CONFIGMAPS}/from-yaml"))["data"] == {"a": "b"}


def test_an_accept_the_server_cannot_answer_is_406_before_anything_is_written(
    api: httpx.Client,
) -> None:
    only_protobuf = {"Accept": "application/vnd.kubernetes.protobuf"}
    refused = api.post(CONFIGMAPS, json={"metadata": {"name": "c"}}, headers=only_protobuf)
    status = failure(refused, 406, "NotAcceptable")
    assert status["message"] == "only the following media types are accepted: application/json"
    failure(api.get(f"{CONFIGMAPS}/c"), 404, "NotFound")
    failure(api.get("/api", headers=only_protobuf), 406, "NotAcceptable")
    ok(api.get("/api", headers={"Accept": "application/*"}))


def test_accept_is_read_in_the_clients_order_of_preference(api: httpx.Client) -> None:
    table = "application/json;as=Table;v=v1;g=meta.k8s.io"
    assert ok(api.get(CONFIGMAPS, headers={"Accept": f"{table},application/json"}))["kind"] == (
        "Table"
    )
    plain = {"Accept": f"{table};q=0.5, application/json"}
    assert ok(api.get(CONFIGMAPS, headers=plain))["kind"] == "ConfigMapList"
    # A Table of an unknown version, or of a write, is not offered: JSON if also accepted.
    other = {"Accept": "application/json;as=Table;v=v9;g=meta.k8s.io, */*"}
    assert ok(api.get(CONFIGMAPS, headers=other))["kind"] == "ConfigMapList"
    write = api.post(CONFIGMAPS, json={"metadata": {"name": "t"}}, headers={"Accept": table})
    failure(write, 406, "NotAcceptable")


def test_openapi_v2_is_json_or_gnostic_protobuf(crd_api: httpx.Client) -> None:
    doc = ok(crd_api.get("/openapi/v2"))
    assert doc["swagger"] == "2.0"
    widget_doc = doc["definitions"]["com.example.v1.Widget"]
    assert widget_doc["x-kubernetes-group-version-kind"] == [
        {"group": "example.com", "version": "v1", "kind": "Widget"}
    ]
    patch = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": True} in (
        patch["parameters"]
    )
    encoded = crd_api.get("/openapi/v2", headers=OPENAPI_PB)
    assert encoded.status_code == 200
    assert encoded.headers["Content-Type"] == (
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    )
    assert encoded.content.startswith(b"\n\x032.0")  # Document.swagger = "2.0"
    assert b"com.example.v1.Widget" in encoded.content
    failure(crd_api.get("/openapi/v2", headers={"Accept": "text/html"}), 406, "NotAcceptable")


def test_v2_schemas_drop_what_kubectls_v2_reader_cannot_take() -> None:
    schema = {
        "type": "object",
        "required": ["a", "n"],
        "properties": {
            "a": {"type": "string", "anyOf": [{"pattern": "x"}]},
            "n": {"type": "object", "nullable": True, "properties": {"x": {"type": "string"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"kept": {"type": "string"}}},
            "list": {"type": "array", "x-kubernetes-preserve-unknown-fields": True,
                     "items": {"type": "string"}},
        },
    }  # fmt: skip
    assert openapi.v2_schema(schema) == {
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": {"type": "string"},
            "n": {},
            "free": {"x-kubernetes-preserve-unknown-fields": True},
            "list": {"x-kubernetes-preserve-unknown-fields": True},
        },
    }
