"""The real kubectl against the dev cluster, as a user works with a cluster."""

from __future__ import annotations

import json
import time

import yaml

from avatar_devcluster.kubectl import Kubectl


def widget(name: str, size: int, **labels: str) -> str:
    label_lines = "".join(f"\n    {k}: {v}" for k, v in labels.items())
    return (
        f"apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n"
        f"  labels:{label_lines or ' {}'}\nspec:\n  size: {size}\n"
    )


def test_version_and_discovery(kubectl: Kubectl) -> None:
    assert "Server Version: v1.32.0-devcluster" in kubectl("version").stdout
    resources = kubectl("api-resources").stdout
    for kind in ("Pod", "Deployment", "Lease", "CustomResourceDefinition", "Namespace"):
        assert kind in resources
    assert "default" in kubectl("get", "namespaces").stdout


def test_applying_a_crd_serves_its_resource_with_short_name_and_columns(
    widgets: Kubectl,
) -> None:
    assert "widgets" in widgets("api-resources", "--api-group=example.com").stdout
    assert "widget.example.com/w1 created" in widgets.apply(widget("w1", 3)).stdout
    table = widgets("get", "wd").stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "PHASE", "AGE"]
    assert table[1].split()[:2] == ["w1", "3"]


def test_apply_twice_updates_and_bumps_the_generation(widgets: Kubectl) -> None:
    widgets.apply(widget("w1", 3))
    assert "unchanged" in widgets.apply(widget("w1", 3)).stdout
    assert "configured" in widgets.apply(widget("w1", 5)).stdout
    obj = json.loads(widgets("get", "widget", "w1", "-o", "json").stdout)
    assert obj["spec"]["size"] == 5
    assert obj["metadata"]["generation"] == 2
    assert obj["spec"]["colour"] == "red"  # the schema's default


def test_labels_select(widgets: Kubectl) -> None:
    widgets.apply(widget("a", 1, team="red"))
    widgets.apply(widget("b", 2, team="blue"))
    names = widgets("get", "wd", "-l", "team=red", "-o", "name").stdout.split()
    assert names == ["widget.example.com/a"]
    names = widgets("get", "wd", "-l", "team in (red,blue)", "-o", "name").stdout.split()
    assert len(names) == 2


def test_patch_merge_and_json(widgets: Kubectl) -> None:
    widgets.apply(widget("p", 2))
    widgets("patch", "wd", "p", "--type", "merge", "-p", '{"metadata":{"labels":{"x":"y"}}}')
    widgets(
        "patch",
        "wd",
        "p",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/size","value":4}]',
    )
    obj = json.loads(widgets("get", "wd", "p", "-o", "json").stdout)
    assert obj["metadata"]["labels"] == {"x": "y"}
    assert obj["spec"]["size"] == 4


def test_strategic_merge_on_a_deployment(kubectl: Kubectl) -> None:
    kubectl.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 0\n"
        "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
        "    spec:\n      containers:\n      - {name: app, image: one}\n"
        "      - {name: side, image: two}\n"
    )
    kubectl(
        "patch", "deployment", "web", "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"three"}]}}}}',
    )  # fmt: skip
    obj = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    images = {c["name"]: c["image"] for c in obj["spec"]["template"]["spec"]["containers"]}
    assert images == {"app": "three", "side": "two"}


def test_dry_run_server_stores_nothing(widgets: Kubectl) -> None:
    out = widgets("apply", "--dry-run=server", "-f", "-", stdin=widget("ghost", 2)).stdout
    assert "(server dry run)" in out
    assert "ghost" not in widgets("get", "wd", "-o", "name").stdout


def test_invalid_objects_are_refused_with_the_rules_message(widgets: Kubectl) -> None:
    too_big = widgets("apply", "-f", "-", stdin=widget("big", 11), check=False)
    assert too_big.returncode != 0
    assert "spec.size" in too_big.stderr
    assert "less than or equal to 10" in too_big.stderr
    seven = widgets("apply", "-f", "-", stdin=widget("seven", 7), check=False)
    assert seven.returncode != 0
    assert "seven is not a widget size" in seven.stderr


def test_missing_objects_are_404_not_tracebacks(widgets: Kubectl) -> None:
    missing = widgets("get", "wd", "nope", check=False)
    assert missing.returncode != 0
    assert 'Error from server (NotFound): widgets.example.com "nope" not found' in missing.stderr


def test_describe(widgets: Kubectl) -> None:
    widgets.apply(widget("d", 2, team="red"))
    out = widgets("describe", "wd", "d").stdout
    for expected in ("Name:", "team=red", "Size:"):
        assert expected in out


def test_delete_waits_for_finalizers(widgets: Kubectl) -> None:
    widgets.apply(widget("f", 2))
    widgets("patch", "wd", "f", "--type", "merge", "-p", '{"metadata":{"finalizers":["x/y"]}}')
    widgets("delete", "wd", "f", "--wait=false")
    obj = json.loads(widgets("get", "wd", "f", "-o", "json").stdout)
    assert obj["metadata"]["deletionTimestamp"]  # still there: a finalizer holds it
    widgets("patch", "wd", "f", "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
    assert widgets("get", "wd", "f", check=False).returncode != 0


def test_get_watch_sees_changes(widgets: Kubectl) -> None:
    widgets.apply(widget("w", 2))
    watcher = widgets.popen("get", "wd", "-w", "--request-timeout=10s")
    try:
        time.sleep(1.5)
        widgets("patch", "wd", "w", "--type", "merge", "-p", '{"spec":{"size":9}}')
        time.sleep(1.5)
    finally:
        watcher.terminate()
        output, _ = watcher.communicate(timeout=10)
    rows = [line.split() for line in output.splitlines() if line.startswith("w ")]
    assert [r[1] for r in rows][:2] == ["2", "9"], output


def test_unknown_fields_are_refused_as_kubectl_asks(widgets: Kubectl) -> None:
    """kubectl apply asks for strict field validation: a typo is an error, not lost data."""
    typo = widget("t", 2).replace("  size: 2", "  size: 2\n  colr: blue")
    refused = widgets("apply", "-f", "-", stdin=typo, check=False)
    assert refused.returncode != 0
    assert 'unknown field "spec.colr"' in refused.stderr
    lenient = widgets("apply", "--validate=false", "-f", "-", stdin=typo)
    assert "created" in lenient.stdout
    obj = json.loads(widgets("get", "wd", "t", "-o", "json").stdout)
    assert "colr" not in obj["spec"]  # pruned, as the API server prunes


def test_create_commands_send_protobuf_and_are_read_whole(kubectl: Kubectl) -> None:
    """kubectl's typed clients send protobuf and never retry as JSON: the dev cluster reads it."""
    assert "namespace/soak-a created" in kubectl("create", "namespace", "soak-a").stdout
    kubectl("create", "configmap", "x", "--from-literal=a=b", "--from-literal=c=", "-n", "soak-a")
    kubectl("create", "secret", "generic", "s", "--from-literal=k=v")
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=0", "--port=80")
    config = json.loads(kubectl("get", "cm", "x", "-n", "soak-a", "-o", "json").stdout)
    assert config["data"] == {"a": "b", "c": ""}
    secret = json.loads(kubectl("get", "secret", "s", "-o", "json").stdout)
    assert secret["data"] == {"k": "dg=="}
    spec = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)["spec"]
    assert spec["replicas"] == 0
    assert spec["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]


def as_list(*manifests: str) -> str:
    """One ``kind: List`` holding the manifests."""
    items = [yaml.safe_load(manifest) for manifest in manifests]
    return str(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))


IDLE_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: idle, namespace: listed}
spec:
  replicas: 0
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec: {containers: [{name: app, image: one}]}
"""


def test_apply_of_a_list_creates_then_leaves_it_unchanged(widgets: Kubectl) -> None:
    """kubectl validates a List's items itself, against the OpenAPI v2 document it reads
    as protobuf; then it applies each item."""
    manifest = as_list(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: listed}",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: listed}",
        IDLE_DEPLOYMENT,
        widget("w", 3).replace("metadata:\n", "metadata:\n  namespace: listed\n"),
    )
    names = ["namespace/listed", "configmap/settings", "deployment.apps/idle",
             "widget.example.com/w"]  # fmt: skip
    first = widgets("apply", "-f", "-", stdin=manifest).stdout
    assert first.splitlines() == [f"{name} created" for name in names]
    second = widgets("apply", "-f", "-", stdin=manifest).stdout
    assert second.splitlines() == [f"{name} unchanged" for name in names]
    obj = json.loads(widgets("get", "wd", "w", "-n", "listed", "-o", "json").stdout)
    assert obj["spec"] == {"size": 3, "colour": "red"}


def test_a_lists_items_are_validated_before_any_is_written(widgets: Kubectl) -> None:
    typo = widget("typo", 2).replace("  size: 2", "  size: 2\n  colr: blue")
    sizeless = widget("sizeless", 2).replace("  size: 2", "  colour: red")
    manifest = as_list(widget("fine", 2), typo, sizeless)
    for validate in ("--validate=strict", "--validate=true"):
        refused = widgets("apply", validate, "-f", "-", stdin=manifest, check=False)
        assert refused.returncode != 0
        assert 'unknown field "colr" in com.example.v1.Widget.spec' in refused.stderr
        assert 'missing required field "size" in com.example.v1.Widget.spec' in refused.stderr
    assert widgets("get", "wd", "-o", "name").stdout == ""  # not even the valid one
