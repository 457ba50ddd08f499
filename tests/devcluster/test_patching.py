"""PATCH semantics: the bodies kubectl and kopf send, applied as kube-apiserver applies them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from avatar_devcluster.patching import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
    merge_rules,
)


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "keep", "drop": "me"},
            "finalizers": ["example.com/a", "example.com/b"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "one", "uid": "u1"},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "two", "uid": "u2"},
            ],
        },
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:1",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "0"}],
                        },
                        {"name": "proxy", "image": "envoy:1"},
                    ],
                    "tolerations": [{"key": "gpu", "operator": "Exists"}],
                    "nodeSelector": {"pool": "cpu"},
                },
            },
        },
        "status": {
            "conditions": [
                {"type": "Available", "status": "False"},
                {"type": "Progressing", "status": "True"},
            ]
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "metrics", "port": 9090, "targetPort": 9090},
            ],
        },
    }


def widget() -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default", "finalizers": ["kopf.zalando.org/x"]},
        "spec": {"size": 1, "parts": ["a", "b"]},
    }


def patch(
    obj: dict[str, Any], body: Any, content_type: str = STRATEGIC_MERGE_PATCH
) -> dict[str, Any]:
    group, _, _ = obj["apiVersion"].rpartition("/")
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return apply_patch(obj, raw, content_type=content_type, kind=obj["kind"], group=group)


def strategic(obj: dict[str, Any], body: Any) -> dict[str, Any]:
    return patch(obj, body, STRATEGIC_MERGE_PATCH)


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return result


def pod_spec(body: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": body}}}


# --- JSON merge patch ------------------------------------------------------------------


def test_merge_patch_adds_labels() -> None:
    # kubectl patch deploy web --type merge -p '{"metadata":{"labels":{"a":"b"}}}'
    result = patch(deployment(), {"metadata": {"labels": {"a": "b"}}}, MERGE_PATCH)
    assert result["metadata"]["labels"] == {"app": "web", "tier": "front", "a": "b"}
    assert result["spec"] == deployment()["spec"]


def test_merge_patch_null_deletes_and_nested_nulls_are_dropped() -> None:
    body = {"metadata": {"annotations": {"drop": None}, "new": {"x": None, "y": 1}}}
    result = patch(deployment(), body, MERGE_PATCH)
    assert result["metadata"]["annotations"] == {"note": "keep"}
    assert result["metadata"]["new"] == {"y": 1}


def test_merge_patch_replaces_lists() -> None:
    body = pod_spec({"containers": [{"name": "app", "image": "app:2"}]})
    result = patch(deployment(), body, MERGE_PATCH)
    assert containers(result) == [{"name": "app", "image": "app:2"}]
    finalizers = patch(widget(), {"metadata": {"finalizers": None}}, MERGE_PATCH)
    assert "finalizers" not in finalizers["metadata"]


def test_merge_patch_on_custom_resource_as_kopf_sends_it() -> None:
    body = {"status": {"kopf": {"progress": {"h": {"retries": 1}}}}, "spec": {"parts": ["c"]}}
    result = patch(widget(), body, MERGE_PATCH)
    assert result["status"] == {"kopf": {"progress": {"h": {"retries": 1}}}}
    assert result["spec"] == {"size": 1, "parts": ["c"]}


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"[1, 2]", 422), (b"null", 400), (b'"text"', 400), (b"{not json", 400), (b"", 400)],
)
def test_merge_patch_that_is_not_an_object(body: bytes, status: int) -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), body, MERGE_PATCH)
    assert caught.value.status == status


# --- JSON patch ------------------------------------------------------------------------


def test_json_patch_replaces_replicas() -> None:
    # kubectl patch deploy web --type json -p '[{"op":"replace","path":"/spec/replicas","value":3}]'
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/b", "value": "c"},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
    ]
    result = patch(deployment(), ops, JSON_PATCH)
    assert result["spec"]["replicas"] == 3
    assert result["metadata"]["labels"]["b"] == "c"
    assert [c["name"] for c in containers(result)] == ["app"]


def test_json_patch_failed_test_is_422() -> None:
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 5},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
    ]
    with pytest.raises(PatchError) as caught:
        patch(deployment(), ops, JSON_PATCH)
    assert caught.value.status == 422
    assert caught.value.reason == "Invalid"
    assert "the server rejected our request" in caught.value.message


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "remove", "path": "/spec/missing"}],
        [{"op": "replace", "path": "/nope/deeper", "value": 1}],
        [{"op": "frobnicate", "path": "/spec"}],
        [{"op": "add", "path": "", "value": [1]}],
    ],
)
def test_json_patch_that_cannot_apply_is_422(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), ops, JSON_PATCH)
    assert caught.value.status == 422


@pytest.mark.parametrize("body", [{"op": "add"}, [1, 2], "text", None])
def test_json_patch_that_is_not_a_list_of_operations_is_400(body: Any) -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), body, JSON_PATCH)
    assert caught.value.status == 400


def test_json_patch_operation_limit_is_413() -> None:
    ops = [{"op": "test", "path": "/kind", "value": "Deployment"}] * 10001
    with pytest.raises(PatchError) as caught:
        patch(deployment(), ops, JSON_PATCH)
    assert caught.value.status == 413


# --- Strategic merge patch -------------------------------------------------------------


def test_strategic_merges_containers_by_name() -> None:
    # kubectl patch deploy web -p '{"spec":{"template":{"spec":{"containers":[...]}}}}'
    result = strategic(deployment(), pod_spec({"containers": [{"name": "app", "image": "new"}]}))
    app, proxy = containers(result)
    assert app["image"] == "new"
    assert app["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert app["env"] == deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    assert proxy == {"name": "proxy", "image": "envoy:1"}
    assert result["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "cpu"}


def test_strategic_new_container_goes_first_as_in_kube() -> None:
    # The kubectl patch tutorial: the added container lands before the existing ones.
    result = strategic(deployment(), pod_spec({"containers": [{"name": "sidecar", "image": "s"}]}))
    assert [c["name"] for c in containers(result)] == ["sidecar", "app", "proxy"]


def test_strategic_delete_directive_removes_container() -> None:
    body = pod_spec({"containers": [{"name": "proxy", "$patch": "delete"}]})
    result = strategic(deployment(), body)
    assert [c["name"] for c in containers(result)] == ["app"]


def test_strategic_merges_env_and_ports_inside_container() -> None:
    body = pod_spec(
        {
            "containers": [
                {
                    "name": "app",
                    "env": [{"name": "B", "value": "2"}, {"name": "A", "$patch": "delete"}],
                    "ports": [{"containerPort": 9090}],
                }
            ]
        }
    )
    app = containers(strategic(deployment(), body))[0]
    assert app["env"] == [{"name": "B", "value": "2"}]
    assert [p["containerPort"] for p in app["ports"]] == [9090, 8080]


def test_strategic_env_keeps_order_of_existing_items() -> None:
    body = pod_spec({"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]})
    app = containers(strategic(deployment(), body))[0]
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


def test_strategic_finalizers_are_a_union() -> None:
    body = {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}}
    result = strategic(deployment(), body)
    assert result["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]
    # Items new to the list go before the server-only ones, as kube-apiserver orders them.
    only_new = strategic(deployment(), {"metadata": {"finalizers": ["example.com/c"]}})
    assert only_new["metadata"]["finalizers"] == ["example.com/c", "example.com/a", "example.com/b"]


def test_strategic_delete_from_primitive_list() -> None:
    body = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}
    result = strategic(deployment(), body)
    assert result["metadata"]["finalizers"] == ["example.com/b"]


def test_strategic_owner_references_merge_by_uid() -> None:
    body = {
        "metadata": {
            "ownerReferences": [
                {"uid": "u2", "name": "renamed"},
                {"uid": "u1", "$patch": "delete"},
                {"apiVersion": "v1", "kind": "Secret", "name": "three", "uid": "u3"},
            ]
        }
    }
    refs = strategic(deployment(), body)["metadata"]["ownerReferences"]
    assert [(r["uid"], r["name"]) for r in refs] == [("u2", "renamed"), ("u3", "three")]
    assert refs[0]["kind"] == "ConfigMap"


def test_strategic_set_element_order_as_kubectl_set_image_sends_it() -> None:
    body = pod_spec(
        {
            "$setElementOrder/containers": [{"name": "proxy"}, {"name": "app"}],
            "containers": [{"name": "app", "image": "app:2"}],
        }
    )
    result = containers(strategic(deployment(), body))
    assert [(c["name"], c["image"]) for c in result] == [("proxy", "envoy:1"), ("app", "app:2")]


def test_strategic_set_element_order_that_contradicts_the_patch_is_400() -> None:
    body = pod_spec(
        {
            "$setElementOrder/containers": [{"name": "proxy"}],
            "containers": [{"name": "app", "image": "app:2"}],
        }
    )
    with pytest.raises(PatchError) as caught:
        strategic(deployment(), body)
    assert caught.value.status == 400


def test_strategic_null_deletes_map_keys() -> None:
    body = {
        "metadata": {"annotations": {"drop": None}},
        "spec": {"template": {"spec": {"nodeSelector": None}}},
    }
    result = strategic(deployment(), body)
    assert result["metadata"]["annotations"] == {"note": "keep"}
    assert "nodeSelector" not in result["spec"]["template"]["spec"]


def test_strategic_rollout_restart_annotation() -> None:
    body = {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}
    result = strategic(deployment(), body)
    assert result["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"},
        "annotations": {"restartedAt": "now"},
    }


def test_strategic_lists_without_merge_key_are_replaced() -> None:
    body = pod_spec({"tolerations": [{"key": "spot", "operator": "Exists"}]})
    result = strategic(deployment(), body)
    assert result["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "spot", "operator": "Exists"}
    ]


def test_strategic_replace_directive_on_list_and_map() -> None:
    body = pod_spec(
        {
            "containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}],
            "nodeSelector": {"$patch": "replace", "pool": "gpu"},
        }
    )
    spec = strategic(deployment(), body)["spec"]["template"]["spec"]
    assert spec["containers"] == [{"name": "only", "image": "x"}]
    assert spec["nodeSelector"] == {"pool": "gpu"}


def test_strategic_delete_directive_on_a_map() -> None:
    spec = strategic(deployment(), pod_spec({"nodeSelector": {"$patch": "delete"}}))
    assert "nodeSelector" not in spec["spec"]["template"]["spec"]


def test_strategic_retain_keys_clears_other_fields() -> None:
    # kubectl apply switching a Deployment from RollingUpdate to Recreate.
    body = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = strategic(deployment(), body)
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_strategic_retain_keys_must_name_the_patched_fields() -> None:
    body = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}
    with pytest.raises(PatchError) as caught:
        strategic(deployment(), body)
    assert caught.value.status == 400


def test_strategic_new_values_lose_their_directives_and_nulls() -> None:
    body = pod_spec(
        {"containers": [{"name": "new", "image": "n", "args": None, "env": [{"name": "X"}]}]}
    )
    new = containers(strategic(deployment(), body))[0]
    assert new == {"name": "new", "image": "n", "env": [{"name": "X"}]}


def test_strategic_status_conditions_merge_by_type() -> None:
    body = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
    conditions = strategic(deployment(), body)["status"]["conditions"]
    assert conditions == [
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "True"},
    ]


def test_strategic_service_ports_merge_by_port() -> None:
    body = {"spec": {"ports": [{"port": 80, "targetPort": 8081}]}}
    ports = strategic(service(), body)["spec"]["ports"]
    assert ports == [
        {"name": "http", "port": 80, "targetPort": 8081},
        {"name": "metrics", "port": 9090, "targetPort": 9090},
    ]


def test_deployment_reuses_the_pod_spec_merge_keys() -> None:
    rules = merge_rules("apps", "Deployment")
    pod = merge_rules("", "Pod")
    assert rules["spec.template.spec.containers"] == pod["spec.containers"] == "name"
    assert rules["spec.template.spec.containers[].env"] == "name"
    assert rules["spec.template.spec.initContainers[].ports"] == "containerPort"
    assert rules["metadata.finalizers"] is None
    assert "spec.template.spec.tolerations" not in rules
    assert merge_rules("events.k8s.io", "Event") == {
        "metadata.finalizers": None,
        "metadata.ownerReferences": "uid",
    }


@pytest.mark.parametrize(
    "body",
    [
        [{"metadata": {}}],
        pod_spec({"containers": [{"image": "no-name"}]}),
        pod_spec({"containers": ["app"]}),
        pod_spec({"containers": [{"name": "app", "$patch": "explode"}]}),
        {"metadata": {"$setElementOrder": []}},
        {"metadata": {"finalizers": [{"name": "x"}]}},
    ],
)
def test_strategic_malformed_patch_is_400(body: Any) -> None:
    with pytest.raises(PatchError) as caught:
        strategic(deployment(), body)
    assert caught.value.status == 400
    assert caught.value.reason == "BadRequest"


def test_strategic_on_custom_resource_is_415() -> None:
    with pytest.raises(PatchError) as caught:
        strategic(widget(), {"spec": {"size": 2}})
    assert caught.value.status == 415
    assert caught.value.reason == "UnsupportedMediaType"
    assert "application/merge-patch+json" in caught.value.message
    assert STRATEGIC_MERGE_PATCH not in caught.value.message


# --- Content types and purity ----------------------------------------------------------


@pytest.mark.parametrize("content_type", [APPLY_PATCH, "application/json", "text/plain"])
def test_unsupported_content_types_are_415(content_type: str) -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), {"spec": {"replicas": 2}}, content_type)
    assert caught.value.status == 415


def test_content_type_parameters_are_ignored() -> None:
    result = patch(deployment(), {"spec": {"replicas": 2}}, f"{MERGE_PATCH}; charset=utf-8")
    assert result["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (MERGE_PATCH, {"metadata": {"labels": None}, "spec": {"template": None}}),
        (JSON_PATCH, [{"op": "remove", "path": "/spec/template/spec/containers/0/env/0"}]),
        (
            STRATEGIC_MERGE_PATCH,
            {
                "metadata": {"finalizers": ["x"], "$deleteFromPrimitiveList/finalizers": ["a"]},
                "spec": {
                    "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                    "template": {"spec": {"containers": [{"name": "app", "env": [{"name": "C"}]}]}},
                },
                "status": {"conditions": [{"type": "Available", "$patch": "delete"}]},
            },
        ),
    ],
)
def test_input_object_is_unchanged(content_type: str, body: Any) -> None:
    original = deployment()
    snapshot = copy.deepcopy(original)
    result = patch(original, body, content_type)
    assert original == snapshot
    assert result != snapshot
