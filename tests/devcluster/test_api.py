"""The dev cluster's API over raw HTTP, as kopf and client libraries see it.

test_kubectl.py checks what a user sees through kubectl; these tests check the
API semantics underneath (metadata, conflicts, watches, tables, deletion,
discovery, patch types) with plain ``httpx`` requests, so a failure names the
exact request and answer that differ from kube-apiserver.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from avatar_devcluster import app, running
from avatar_devcluster.store import Store
from avatar_devcluster.waiting import wait_until
from tests.devcluster.conftest import WIDGET_CRD

Obj = dict[str, Any]

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
ALL_WIDGETS = "/apis/example.com/v1/widgets"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
NAMESPACES = "/api/v1/namespaces"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
def api(cluster: running.Running) -> Iterator[httpx.Client]:
    """A plain HTTP client on the dev cluster (no kubeconfig, no client library)."""
    with httpx.Client(base_url=cluster.url, timeout=10) as client:
        yield client


@pytest.fixture
def crd_api(api: httpx.Client) -> httpx.Client:
    """The client, on a cluster with the Widget CRD created."""
    ok(api.post(CRDS, json=yaml.safe_load(WIDGET_CRD)), 201)
    return api


@dataclass(frozen=True)
class Space:
    """A namespace of its own on the module's shared cluster (see ``space``)."""

    api: httpx.Client
    namespace: str

    @property
    def widgets(self) -> str:
        return f"/apis/example.com/v1/namespaces/{self.namespace}/widgets"

    def create(self, name: str, size: int = 2, **labels: str) -> Obj:
        return create_widget(self.api, name, size, namespace=self.namespace, **labels)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One cluster with the Widget CRD for the watch tests. A watch whose client has gone
    keeps its handler until its next write or timeoutSeconds, and stopping a cluster waits
    up to a second for such handlers: one cluster for them all pays that once."""
    home = tmp_path_factory.mktemp("shared")
    with (
        running.in_thread(kubeconfig_path=home / "kubeconfig", state=home / "state.json") as dev,
        httpx.Client(base_url=dev.url, timeout=10) as client,
    ):
        ok(client.post(CRDS, json=yaml.safe_load(WIDGET_CRD)), 201)
        yield client


_SPACES = itertools.count()


@pytest.fixture
def space(shared: httpx.Client) -> Space:
    """A fresh namespace on the shared cluster: each watch test sees only its own objects."""
    namespace = f"watch-{next(_SPACES)}"
    ok(shared.post(NAMESPACES, json={"metadata": {"name": namespace}}), 201)
    return Space(shared, namespace)


def ok(response: httpx.Response, code: int = 200) -> Obj:
    assert response.status_code == code, response.text
    body: Obj = response.json()
    return body


def failure(response: httpx.Response, code: int, reason: str) -> Obj:
    """Assert that the answer is a ``metav1.Status`` failure, as clients parse it."""
    assert response.status_code == code, response.text
    assert "Traceback" not in response.text
    assert response.headers["Content-Type"].startswith("application/json")
    status: Obj = response.json()
    assert status["kind"] == "Status"
    assert status["apiVersion"] == "v1"
    assert status["status"] == "Failure"
    assert status["code"] == code
    assert status["reason"] == reason
    return status


def widget(name: str, size: int = 2, *, namespace: str | None = None, **labels: str) -> Obj:
    meta: Obj = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta,
            "spec": {"size": size}}  # fmt: skip


def create_widget(
    api: httpx.Client, name: str, size: int = 2, *, namespace: str = "default", **labels: str
) -> Obj:
    path = f"/apis/example.com/v1/namespaces/{namespace}/widgets"
    return ok(api.post(path, json=widget(name, size, **labels)), 201)


def patch(api: httpx.Client, path: str, body: Any, headers: dict[str, str] = MERGE) -> Obj:
    return ok(api.patch(path, content=json.dumps(body), headers=headers))


def rv(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


def names(api: httpx.Client, path: str, **params: str) -> list[str]:
    return [item["metadata"]["name"] for item in ok(api.get(path, params=params))["items"]]


def list_revision(api: httpx.Client, path: str = WIDGETS) -> int:
    return rv(ok(api.get(path)))


@contextlib.contextmanager
def watching(api: httpx.Client, path: str, **params: str) -> Iterator[Iterator[Obj]]:
    """The events of a watch, parsed from the newline-delimited JSON stream as they come."""
    query = {"watch": "1", "timeoutSeconds": "2", **params}
    with api.stream("GET", path, params=query) as response:
        assert response.status_code == 200
        yield (json.loads(line) for line in response.iter_lines() if line.strip())


def take(events: Iterator[Obj], count: int) -> list[Obj]:
    got = list(itertools.islice(events, count))
    assert len(got) == count, f"the watch ended after {got}"
    return got


def kinds_and_names(events: list[Obj]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


# -- create ------------------------------------------------------------------------------


def test_create_sets_the_server_owned_metadata(crd_api: httpx.Client) -> None:
    """Clients never choose uid, resourceVersion, creationTimestamp or generation: kopf keys
    its state on the uid and compares generations to tell spec changes from status ones."""
    body = widget("w1")
    body["metadata"].update(uid="mine", resourceVersion="999", generation=7)
    created = ok(crd_api.post(WIDGETS, json=body), 201)
    meta = created["metadata"]
    assert meta["uid"] not in ("", "mine")
    assert meta["resourceVersion"] != "999"
    assert meta["generation"] == 1
    assert TIMESTAMP.match(meta["creationTimestamp"])
    assert meta["namespace"] == "default"
    assert ok(crd_api.get(f"{WIDGETS}/w1")) == created


def test_one_resource_version_counter_across_kinds(crd_api: httpx.Client) -> None:
    """resourceVersions come from one counter (etcd's revision): watches of different kinds
    and list resourceVersions are comparable, and each write is strictly later."""
    versions = [
        rv(ok(crd_api.post(CONFIGMAPS, json={"metadata": {"name": "c"}}), 201)),
        rv(create_widget(crd_api, "w")),
        rv(ok(crd_api.post(NAMESPACES, json={"metadata": {"name": "team"}}), 201)),
        rv(patch(crd_api, f"{CONFIGMAPS}/c", {"data": {"k": "v"}})),
    ]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert list_revision(crd_api, CONFIGMAPS) == list_revision(crd_api) >= versions[-1]


def test_generate_name_gives_unique_names(crd_api: httpx.Client) -> None:
    """kopf and controllers create children with generateName and rely on distinct names."""
    body = {"metadata": {"generateName": "w-"}, "spec": {"size": 2}}
    made = [ok(crd_api.post(WIDGETS, json=body), 201)["metadata"]["name"] for _ in range(5)]
    assert len(set(made)) == 5
    assert all(re.fullmatch(r"w-[a-z0-9]{5}", name) for name in made)
    assert sorted(made) == names(crd_api, WIDGETS)


def test_creating_an_existing_name_is_409_already_exists(crd_api: httpx.Client) -> None:
    """Clients tell 'already there' from other failures by reason AlreadyExists."""
    create_widget(crd_api, "w")
    status = failure(crd_api.post(WIDGETS, json=widget("w")), 409, "AlreadyExists")
    assert status["message"] == 'widgets.example.com "w" already exists'
    assert status["details"] == {"name": "w", "group": "example.com", "kind": "widgets"}


def test_missing_objects_are_404_not_found_in_the_api_servers_words(
    crd_api: httpx.Client,
) -> None:
    """kubectl prints the message as is and kopf branches on 404: the format must match
    kube-apiserver's, for every verb, and never be a traceback."""
    for response in (
        crd_api.get(f"{WIDGETS}/nope"),
        crd_api.put(f"{WIDGETS}/nope", json=widget("nope")),
        crd_api.patch(f"{WIDGETS}/nope", content="{}", headers=MERGE),
        crd_api.delete(f"{WIDGETS}/nope"),
    ):
        status = failure(response, 404, "NotFound")
        assert status["message"] == 'widgets.example.com "nope" not found'
        assert status["details"] == {"name": "nope", "group": "example.com", "kind": "widgets"}
    core = failure(crd_api.get(f"{CONFIGMAPS}/nope"), 404, "NotFound")
    assert core["message"] == 'configmaps "nope" not found'
    unknown = failure(crd_api.get("/apis/example.com/v1/namespaces/default/gadgets"), 404,
                      "NotFound")  # fmt: skip
    assert unknown["message"] == "the server could not find the requested resource"


def test_a_body_that_is_not_json_is_400_status(crd_api: httpx.Client) -> None:
    """A malformed request is the client's error (400 Status), not a server crash."""
    response = crd_api.post(WIDGETS, content=b"{not json",
                            headers={"Content-Type": "application/json"})  # fmt: skip
    failure(response, 400, "BadRequest")


def test_creating_in_a_missing_namespace_is_404(crd_api: httpx.Client) -> None:
    """Namespaced objects need their namespace, as kube-apiserver's admission insists."""
    response = crd_api.post("/apis/example.com/v1/namespaces/nope/widgets", json=widget("w"))
    status = failure(response, 404, "NotFound")
    assert status["message"] == 'namespaces "nope" not found'


# -- update ------------------------------------------------------------------------------


def test_update_with_a_stale_resource_version_is_409_conflict(crd_api: httpx.Client) -> None:
    """Optimistic concurrency: a write based on an old read must fail, not overwrite."""
    old = create_widget(crd_api, "w")
    patch(crd_api, f"{WIDGETS}/w", {"spec": {"size": 3}})
    old["spec"]["size"] = 4
    status = failure(crd_api.put(f"{WIDGETS}/w", json=old), 409, "Conflict")
    assert status["message"] == (
        'Operation cannot be fulfilled on widgets.example.com "w": the object has been'
        " modified; please apply your changes to the latest version and try again"
    )
    stale_patch = {"metadata": {"resourceVersion": old["metadata"]["resourceVersion"]}}
    response = crd_api.patch(f"{WIDGETS}/w", content=json.dumps(stale_patch), headers=MERGE)
    failure(response, 409, "Conflict")
    assert ok(crd_api.get(f"{WIDGETS}/w"))["spec"]["size"] == 3


def test_update_without_a_resource_version_is_unconditional(crd_api: httpx.Client) -> None:
    """A PUT that names no resourceVersion overwrites whatever is stored."""
    created = create_widget(crd_api, "w")
    patch(crd_api, f"{WIDGETS}/w", {"spec": {"size": 3}})
    body = widget("w", 5)
    body["spec"]["colour"] = "red"
    updated = ok(crd_api.put(f"{WIDGETS}/w", json=body))
    assert updated["spec"] == {"size": 5, "colour": "red"}
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert rv(updated) > rv(created)


def test_generation_counts_spec_changes_only(crd_api: httpx.Client) -> None:
    """kopf (and every controller's observedGeneration) relies on generation moving on
    spec changes and not on metadata ones."""
    create_widget(crd_api, "w")
    labelled = patch(crd_api, f"{WIDGETS}/w", {"metadata": {"labels": {"team": "red"}}})
    assert labelled["metadata"]["generation"] == 1
    resized = patch(crd_api, f"{WIDGETS}/w", {"spec": {"size": 4}})
    assert resized["metadata"]["generation"] == 2
    resized["metadata"]["annotations"] = {"note": "x"}
    annotated = ok(crd_api.put(f"{WIDGETS}/w", json=resized))
    assert annotated["metadata"]["generation"] == 2


def test_a_no_op_update_keeps_the_resource_version(crd_api: httpx.Client) -> None:
    """Writing what is stored changes nothing: no new resourceVersion, so no watch event,
    so no reconcile loop for an operator that patches the same values again."""
    created = create_widget(crd_api, "w")
    assert rv(ok(crd_api.put(f"{WIDGETS}/w", json=created))) == rv(created)
    assert rv(patch(crd_api, f"{WIDGETS}/w", {"spec": {"size": 2}})) == rv(created)
    assert list_revision(crd_api) == rv(created)


# -- status subresource ------------------------------------------------------------------


def test_status_subresource_writes_change_only_status(crd_api: httpx.Client) -> None:
    """With a status subresource, /status is the only way to write status and changes
    nothing else: the operator's status updates cannot clobber a user's spec."""
    created = create_widget(crd_api, "w")
    body = {**created, "spec": {"size": 9}, "status": {"phase": "Running"}}
    put = ok(crd_api.put(f"{WIDGETS}/w/status", json=body))
    assert put["status"] == {"phase": "Running"}
    assert put["spec"] == created["spec"]
    assert put["metadata"]["generation"] == 1
    patched = patch(crd_api, f"{WIDGETS}/w/status",
                    {"status": {"phase": "Done"}, "spec": {"size": 8},
                     "metadata": {"labels": {"x": "y"}}})  # fmt: skip
    assert patched["status"] == {"phase": "Done"}
    assert patched["spec"] == created["spec"]
    assert patched["metadata"]["labels"] == {}
    assert ok(crd_api.get(f"{WIDGETS}/w")) == patched


def test_main_resource_writes_ignore_status(crd_api: httpx.Client) -> None:
    """...and the main resource ignores status: a user's apply cannot reset the status."""
    with_status = {**widget("w"), "status": {"phase": "Forged"}}
    created = ok(crd_api.post(WIDGETS, json=with_status), 201)
    assert "status" not in created
    patch(crd_api, f"{WIDGETS}/w/status", {"status": {"phase": "Running"}})
    stored = ok(crd_api.get(f"{WIDGETS}/w"))
    body = {**stored, "spec": {"size": 3, "colour": "red"}, "status": {"phase": "Forged"}}
    put = ok(crd_api.put(f"{WIDGETS}/w", json=body))
    assert put["spec"]["size"] == 3
    assert put["status"] == {"phase": "Running"}
    merged = patch(crd_api, f"{WIDGETS}/w", {"spec": {"size": 4}, "status": {"phase": "Forged"}})
    assert merged["status"] == {"phase": "Running"}
    assert ok(crd_api.get(f"{WIDGETS}/w"))["status"] == {"phase": "Running"}


# A CRD whose status has a schema of its own (the Widget's preserves unknown fields), as
# AvatarVideo's has: what the operator writes through /status is admitted against it.
GADGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer, maximum: 10}
            status:
              type: object
              x-kubernetes-validations:
                - rule: "!has(oldSelf.phase) || oldSelf.phase != 'Done' || self.phase == 'Done'"
                  message: "a Done gadget stays Done"
              properties:
                phase: {type: string, enum: [Queued, Running, Done]}
                progress: {type: integer, minimum: 0, maximum: 100}
                queuePosition: {type: integer}
                attempts: {type: integer, default: 0}
"""
GADGETS = "/apis/example.com/v1/namespaces/default/gadgets"


@pytest.fixture
def gadget_api(api: httpx.Client) -> httpx.Client:
    """The client, on a cluster with the Gadget CRD and one Gadget ``g`` of size 2."""
    ok(api.post(CRDS, json=yaml.safe_load(GADGET_CRD)), 201)
    ok(api.post(GADGETS, json={"metadata": {"name": "g"}, "spec": {"size": 2}}), 201)
    return api


def test_an_invalid_status_write_is_422_naming_the_field(gadget_api: httpx.Client) -> None:
    """/status writes are validated as the whole object they make, in kube-apiserver's
    words: a bad status is refused when written, not found later on an unrelated write."""
    before = ok(gadget_api.get(f"{GADGETS}/g"))
    bad = {"status": {"phase": "Finished", "progress": 101}}
    response = gadget_api.patch(f"{GADGETS}/g/status", content=json.dumps(bad), headers=MERGE)
    status = failure(response, 422, "Invalid")
    assert status["message"].startswith('Gadget.example.com "g" is invalid: [')
    assert (
        "status.progress: Invalid value: 101: status.progress in body should be less than"
        " or equal to 100" in status["message"]
    )
    causes = {cause["field"]: cause for cause in status["details"]["causes"]}
    assert causes["status.phase"]["reason"] == "FieldValueNotSupported"
    assert causes["status.progress"] == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: 101: status.progress in body should be less than or"
        " equal to 100",
        "field": "status.progress",
    }
    assert (status["details"]["name"], status["details"]["kind"]) == ("g", "Gadget")
    put = {**before, "status": {"progress": -1}}
    failure(gadget_api.put(f"{GADGETS}/g/status", json=put), 422, "Invalid")
    assert ok(gadget_api.get(f"{GADGETS}/g")) == before


def test_status_writes_are_pruned_and_defaulted_and_keep_the_spec(
    gadget_api: httpx.Client,
) -> None:
    """Unknown status fields vanish, defaults fill in, whatever else the body says about the
    spec or labels is ignored, and a merge patch's null deletes a status field."""
    written = patch(gadget_api, f"{GADGETS}/g/status",
                    {"status": {"phase": "Queued", "queuePosition": 3, "bogus": 1},
                     "spec": {"size": 9}, "metadata": {"labels": {"x": "y"}}})  # fmt: skip
    assert written["status"] == {"phase": "Queued", "queuePosition": 3, "attempts": 0}
    assert written["spec"] == {"size": 2}
    assert written["metadata"]["generation"] == 1
    assert "labels" not in written["metadata"]
    cleared = patch(gadget_api, f"{GADGETS}/g/status", {"status": {"queuePosition": None}})
    assert cleared["status"] == {"phase": "Queued", "attempts": 0}
    assert ok(gadget_api.get(f"{GADGETS}/g")) == cleared
    # A spec that would be invalid never gets in through /status: it is not even looked at.
    body = {**cleared, "spec": {"size": 99}, "status": {"phase": "Running"}}
    put = ok(gadget_api.put(f"{GADGETS}/g/status", json=body))
    assert (put["spec"], put["status"]) == ({"size": 2}, {"phase": "Running", "attempts": 0})


def test_status_transition_rules_see_the_old_status(gadget_api: httpx.Client) -> None:
    """CEL rules on the status run on /status writes, with oldSelf the stored status."""
    patch(gadget_api, f"{GADGETS}/g/status", {"status": {"phase": "Done"}})
    back = {"status": {"phase": "Running"}}
    response = gadget_api.patch(f"{GADGETS}/g/status", content=json.dumps(back), headers=MERGE)
    status = failure(response, 422, "Invalid")
    assert status["message"] == (
        'Gadget.example.com "g" is invalid: status: Invalid value: "object": a Done gadget'
        " stays Done"
    )
    done = patch(gadget_api, f"{GADGETS}/g/status", {"status": {"progress": 100}})
    assert done["status"] == {"phase": "Done", "progress": 100, "attempts": 0}


def test_strict_status_writes_name_unknown_fields(gadget_api: httpx.Client) -> None:
    """With fieldValidation=Strict an unknown status field is a 400, as for the resource."""
    response = gadget_api.patch(
        f"{GADGETS}/g/status",
        params={"fieldValidation": "Strict"},
        content=json.dumps({"status": {"phase": "Queued", "bogus": 1}}),
        headers=MERGE,
    )
    status = failure(response, 400, "BadRequest")
    assert status["message"].endswith('strict decoding error: unknown field "status.bogus"')
    assert "status" not in ok(gadget_api.get(f"{GADGETS}/g"))


# -- list --------------------------------------------------------------------------------


def test_list_is_a_kind_list_with_a_resource_version(crd_api: httpx.Client) -> None:
    """Informers (kopf's included) list, then watch from the list's resourceVersion."""
    last = create_widget(crd_api, "b")
    create_widget(crd_api, "a")
    listed = ok(crd_api.get(WIDGETS))
    assert listed["kind"] == "WidgetList"
    assert listed["apiVersion"] == "example.com/v1"
    assert int(listed["metadata"]["resourceVersion"]) > rv(last)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "b"]
    assert all(i["kind"] == "Widget" and i["apiVersion"] == "example.com/v1"
               for i in listed["items"])  # fmt: skip


def test_label_selectors(crd_api: httpx.Client) -> None:
    """Every label selector operator, with Kubernetes' rule that != and notin also match
    objects without the label."""
    create_widget(crd_api, "red", team="red", tier="front")
    create_widget(crd_api, "blue", team="blue")
    create_widget(crd_api, "none")
    expected = {
        "team=red": ["red"],
        "team==red": ["red"],
        "team!=red": ["blue", "none"],
        "team in (red,blue)": ["blue", "red"],
        "team notin (red)": ["blue", "none"],
        "team": ["blue", "red"],
        "!team": ["none"],
        "team=red,tier=front": ["red"],
        "team,!tier": ["blue"],
        "team=green": [],
    }
    for selector, want in expected.items():
        assert names(crd_api, WIDGETS, labelSelector=selector) == want, selector
    failure(crd_api.get(WIDGETS, params={"labelSelector": "team in red"}), 400, "BadRequest")


def test_field_selectors_and_all_namespaces(crd_api: httpx.Client) -> None:
    """metadata.name/namespace field selectors (kubectl get NAME -w, kopf) and the
    all-namespaces collection an operator with --all-namespaces watches."""
    ok(crd_api.post(NAMESPACES, json={"metadata": {"name": "other"}}), 201)
    create_widget(crd_api, "a")
    create_widget(crd_api, "b")
    create_widget(crd_api, "a", namespace="other")
    assert names(crd_api, WIDGETS) == ["a", "b"]
    assert names(crd_api, "/apis/example.com/v1/namespaces/other/widgets") == ["a"]
    everywhere = ok(crd_api.get(ALL_WIDGETS))["items"]
    assert sorted((w["metadata"]["namespace"], w["metadata"]["name"]) for w in everywhere) == [
        ("default", "a"), ("default", "b"), ("other", "a"),
    ]  # fmt: skip
    assert names(crd_api, WIDGETS, fieldSelector="metadata.name=b") == ["b"]
    assert names(crd_api, WIDGETS, fieldSelector="metadata.name!=b") == ["a"]
    in_other = ok(crd_api.get(ALL_WIDGETS, params={"fieldSelector": "metadata.namespace=other"}))
    assert [w["metadata"]["namespace"] for w in in_other["items"]] == ["other"]
    both = {"fieldSelector": "metadata.name=a,metadata.namespace=default"}
    assert len(ok(crd_api.get(ALL_WIDGETS, params=both))["items"]) == 1
    response = crd_api.get(WIDGETS, params={"fieldSelector": "spec.size=2"})
    failure(response, 400, "BadRequest")


# -- watch -------------------------------------------------------------------------------


def test_watch_without_resource_version_lists_then_follows(space: Space) -> None:
    """A watch from nothing starts with ADDED for what exists, then streams live changes."""
    api, widgets = space.api, space.widgets
    space.create("a")
    space.create("b")
    with watching(api, widgets) as events:
        assert kinds_and_names(take(events, 2)) == [("ADDED", "a"), ("ADDED", "b")]
        patched = patch(api, f"{widgets}/a", {"spec": {"size": 5}})
        ok(api.delete(f"{widgets}/b"))
        modified, deleted = take(events, 2)
    assert kinds_and_names([modified, deleted]) == [("MODIFIED", "a"), ("DELETED", "b")]
    assert modified["object"] == patched
    assert rv(deleted["object"]) > rv(patched)


def test_watch_from_a_resource_version_sends_only_later_changes(space: Space) -> None:
    """Resuming a watch (after a list, or a dropped connection) must replay exactly what
    happened after that resourceVersion: nothing twice, nothing lost."""
    api, widgets = space.api, space.widgets
    space.create("a")
    since = list_revision(api, widgets)
    patch(api, f"{widgets}/a", {"spec": {"size": 3}})
    space.create("b")
    with watching(api, widgets, resourceVersion=str(since)) as events:
        assert kinds_and_names(take(events, 2)) == [("MODIFIED", "a"), ("ADDED", "b")]
        space.create("c")  # the next event is live: no more history came first
        assert kinds_and_names(take(events, 1)) == [("ADDED", "c")]


def test_watch_history_is_bounded_and_older_revisions_are_gone() -> None:
    """The store keeps the last 2000 changes; a watch from before them must get 410 (so
    the client relists) rather than silently miss changes."""
    store = Store()
    key = ("example.com", "widgets", "default", "w")
    for i in range(2005):
        revision = store.next_revision()
        obj = {"metadata": {"name": "w", "resourceVersion": str(revision)}}
        store.put(key, obj, created=i == 0)
    kept = store.history_since(store.revision - 2000)
    assert kept is not None
    assert [c.resource_version for c in kept] == list(range(6, 2006))
    assert store.history_since(store.revision - 2001) is None
    assert store.history_since(0) is None
    assert store.history_since(store.revision) == []


def test_watch_from_a_too_old_revision_is_an_error_event_410(tmp_path: Path) -> None:
    """Over HTTP, an expired resourceVersion is an ERROR event carrying a 410 Status, which
    is what kopf and client-go watch for to relist. A restart forgets the history, so a
    resourceVersion from before it is too old."""
    state = tmp_path / "state.json"
    with running.in_thread(kubeconfig_path=tmp_path / "kc", state=state) as dev:
        client = httpx.Client(base_url=dev.url, timeout=10)
        ok(client.post(CRDS, json=yaml.safe_load(WIDGET_CRD)), 201)
        old = rv(create_widget(client, "w"))
        create_widget(client, "x")
        client.close()
    with (
        running.in_thread(kubeconfig_path=tmp_path / "kc", state=state) as dev,
        httpx.Client(base_url=dev.url, timeout=10) as client,
        watching(client, WIDGETS, resourceVersion=str(old)) as events,
    ):
        (event,) = take(events, 1)
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert "too old resource version" in status["message"]


def test_watch_bookmarks(space: Space, monkeypatch: pytest.MonkeyPatch) -> None:
    """With allowWatchBookmarks a quiet watch still learns the current resourceVersion
    (a BOOKMARK), so a reconnect resumes from it and not from an expired one. The server
    sends one after 5 quiet seconds; the interval is shortened here to keep the test fast
    (the constant lives in the server's module, which runs in this process)."""
    monkeypatch.setattr(app, "_BOOKMARK_SECONDS", 0.2)
    api, widgets = space.api, space.widgets
    space.create("a")
    current = list_revision(api, widgets)
    started = time.monotonic()
    with watching(api, widgets, allowWatchBookmarks="true", resourceVersion=str(current),
                  timeoutSeconds="3") as events:  # fmt: skip
        (event,) = take(events, 1)
    assert time.monotonic() - started < 2
    assert event["type"] == "BOOKMARK"
    assert event["object"]["kind"] == "Widget"
    assert event["object"]["apiVersion"] == "example.com/v1"
    assert event["object"]["metadata"]["resourceVersion"] == str(current)
    with watching(api, widgets, resourceVersion=str(current), timeoutSeconds="1") as events:
        assert list(events) == []  # not asked for: no bookmarks, and timeoutSeconds ends it


def test_watch_with_a_label_selector_sees_only_matching_objects(space: Space) -> None:
    """A label-selected watch (as an operator filtering on its own labels) must not
    deliver events for other objects."""
    api, widgets = space.api, space.widgets
    space.create("a", team="red")
    space.create("b", team="blue")
    with watching(api, widgets, labelSelector="team=red") as events:
        assert kinds_and_names(take(events, 1)) == [("ADDED", "a")]
        space.create("c", team="blue")
        patch(api, f"{widgets}/b", {"spec": {"size": 4}})
        space.create("d", team="red")
        assert kinds_and_names(take(events, 1)) == [("ADDED", "d")]


# -- tables ------------------------------------------------------------------------------


def test_table_has_the_crds_printer_columns(crd_api: httpx.Client) -> None:
    """kubectl get asks for a Table and prints its columns: Name, then the CRD's
    additionalPrinterColumns, cells taken from each object by jsonPath."""
    create_widget(crd_api, "a", 3)
    patch(crd_api, f"{WIDGETS}/a/status", {"status": {"phase": "Running"}})
    create_widget(crd_api, "b", 5)
    table = ok(crd_api.get(WIDGETS, headers=TABLE))
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert int(table["metadata"]["resourceVersion"]) == list_revision(crd_api)
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Size", "Phase", "Age"]
    assert [c["type"] for c in table["columnDefinitions"]] == [
        "string", "integer", "string", "date",
    ]  # fmt: skip
    cells = [row["cells"] for row in table["rows"]]
    assert [c[:3] for c in cells] == [["a", 3, "Running"], ["b", 5, None]]
    assert all(re.fullmatch(r"\d+s", c[3]) for c in cells)
    first = table["rows"][0]["object"]
    assert first["kind"] == "PartialObjectMetadata"
    assert first["apiVersion"] == "meta.k8s.io/v1"
    assert first["metadata"]["name"] == "a"
    assert "spec" not in first


def test_table_include_object(crd_api: httpx.Client) -> None:
    """includeObject=Object (kubectl get -o custom-columns, and watch tables) embeds the
    whole object in each row."""
    created = create_widget(crd_api, "a", 3)
    table = ok(crd_api.get(WIDGETS, headers=TABLE, params={"includeObject": "Object"}))
    assert table["rows"][0]["object"] == created


# -- delete ------------------------------------------------------------------------------


def test_finalizers_hold_deletion_until_removed(space: Space) -> None:
    """kopf adds a finalizer to every object it handles: deleting must only mark it
    (deletionTimestamp) until the finalizer is removed, then delete it for real."""
    api, widgets = space.api, space.widgets
    body = widget("w")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    created = ok(api.post(widgets, json=body), 201)
    with watching(api, widgets, resourceVersion=str(rv(created))) as events:
        deleting = ok(api.delete(f"{widgets}/w"))
        assert TIMESTAMP.match(deleting["metadata"]["deletionTimestamp"])
        stored = ok(api.get(f"{widgets}/w"))
        assert stored["metadata"]["deletionTimestamp"] == deleting["metadata"]["deletionTimestamp"]
        assert stored["metadata"]["finalizers"] == ["example.com/hold"]
        (marked,) = take(events, 1)
        assert marked["type"] == "MODIFIED"
        assert marked["object"]["metadata"]["deletionTimestamp"]
        patch(api, f"{widgets}/w", {"metadata": {"finalizers": None}})
        failure(api.get(f"{widgets}/w"), 404, "NotFound")
        (deleted,) = take(events, 1)
    assert kinds_and_names([deleted]) == [("DELETED", "w")]


def test_owner_references_cascade(crd_api: httpx.Client) -> None:
    """Garbage collection: the operator's ConfigMaps (owned by a Widget through
    ownerReferences) go when the Widget goes."""
    owner = create_widget(crd_api, "w")
    ref = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w",
           "uid": owner["metadata"]["uid"], "controller": True}  # fmt: skip
    ok(crd_api.post(CONFIGMAPS, json={"metadata": {"name": "owned", "ownerReferences": [ref]}}),
       201)  # fmt: skip
    ok(crd_api.post(CONFIGMAPS, json={"metadata": {"name": "free"}}), 201)
    ok(crd_api.delete(f"{WIDGETS}/w"))
    wait_until(
        lambda: crd_api.get(f"{CONFIGMAPS}/owned").status_code == 404,
        timeout=3,
        every=0.02,
        what="the owned ConfigMap to go",
    )
    assert ok(crd_api.get(f"{CONFIGMAPS}/free"))["metadata"]["name"] == "free"


def test_deleting_a_namespace_deletes_what_is_in_it(crd_api: httpx.Client) -> None:
    """Tests clean up by deleting their namespace; nothing may survive in it."""
    ok(crd_api.post(NAMESPACES, json={"metadata": {"name": "team"}}), 201)
    create_widget(crd_api, "w", namespace="team")
    create_widget(crd_api, "w")
    team_cms = "/api/v1/namespaces/team/configmaps"
    ok(crd_api.post(team_cms, json={"metadata": {"name": "c"}}), 201)
    ok(crd_api.delete(f"{NAMESPACES}/team"))
    wait_until(
        lambda: crd_api.get(f"{NAMESPACES}/team").status_code == 404,
        timeout=3,
        every=0.02,
        what="the namespace to go",
    )
    assert ok(crd_api.get(team_cms))["items"] == []
    everywhere = ok(crd_api.get(ALL_WIDGETS))["items"]
    assert [(w["metadata"]["namespace"], w["metadata"]["name"]) for w in everywhere] == [
        ("default", "w"),
    ]  # fmt: skip


# -- dry run -----------------------------------------------------------------------------


def test_dry_run_changes_nothing(crd_api: httpx.Client) -> None:
    """dryRun=All (kubectl --dry-run=server) answers as the write would, storing nothing:
    no object, no change, no deletion, no new resourceVersion."""
    created = create_widget(crd_api, "w")
    before = list_revision(crd_api)
    dry = {"dryRun": "All"}
    ghost = ok(crd_api.post(WIDGETS, params=dry, json=widget("ghost")), 201)
    assert ghost["metadata"]["name"] == "ghost"
    assert ghost["spec"]["colour"] == "red"  # admitted (defaulted) as a real create would be
    failure(crd_api.get(f"{WIDGETS}/ghost"), 404, "NotFound")
    resized = {**created, "spec": {"size": 5, "colour": "red"}}
    assert ok(crd_api.put(f"{WIDGETS}/w", params=dry, json=resized))["spec"]["size"] == 5
    response = crd_api.patch(f"{WIDGETS}/w", params=dry, content='{"spec":{"size":6}}',
                             headers=MERGE)  # fmt: skip
    assert ok(response)["spec"]["size"] == 6
    ok(crd_api.delete(f"{WIDGETS}/w", params=dry))
    assert ok(crd_api.get(f"{WIDGETS}/w")) == created
    assert list_revision(crd_api) == before


# -- persistence -------------------------------------------------------------------------


def test_objects_and_the_revision_survive_a_restart(tmp_path: Path) -> None:
    """`make demo` restarts the dev cluster: objects, CRDs and the resourceVersion counter
    must come back, or clients holding resourceVersions would see time run backwards."""
    state, kubeconfig = tmp_path / "state.json", tmp_path / "kubeconfig"
    with (
        running.in_thread(kubeconfig_path=kubeconfig, state=state) as dev,
        httpx.Client(base_url=dev.url, timeout=10) as client,
    ):
        ok(client.post(CRDS, json=yaml.safe_load(WIDGET_CRD)), 201)
        created = create_widget(client, "w", team="red")
        ok(client.post(CONFIGMAPS, json={"metadata": {"name": "c"}, "data": {"k": "v"}}), 201)
        revision = list_revision(client)
    with (
        running.in_thread(kubeconfig_path=kubeconfig, state=state) as dev,
        httpx.Client(base_url=dev.url, timeout=10) as client,
    ):
        assert ok(client.get(f"{WIDGETS}/w")) == created
        assert ok(client.get(f"{CONFIGMAPS}/c"))["data"] == {"k": "v"}
        assert list_revision(client) == revision
        later = create_widget(client, "x")
        assert rv(later) > revision
        assert rv(patch(client, f"{WIDGETS}/w", {"spec": {"size": 3}})) > rv(later)


# -- CRDs and discovery ------------------------------------------------------------------


def test_crd_is_established(crd_api: httpx.Client) -> None:
    """kopf and kubectl wait for condition Established=True before using a CRD."""
    crd = ok(crd_api.get(f"{CRDS}/widgets.example.com"))
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"
    assert crd["status"]["storedVersions"] == ["v1"]


def test_deleting_a_crd_removes_its_api_and_objects(crd_api: httpx.Client) -> None:
    """Deleting a CRD takes its resource out of discovery and deletes its objects, so a
    re-created CRD starts empty."""
    create_widget(crd_api, "w")
    ok(crd_api.delete(f"{CRDS}/widgets.example.com"))
    failure(crd_api.get("/apis/example.com/v1"), 404, "NotFound")
    failure(crd_api.get(WIDGETS), 404, "NotFound")
    groups = [g["name"] for g in ok(crd_api.get("/apis"))["groups"]]
    assert "example.com" not in groups
    ok(crd_api.post(CRDS, json=yaml.safe_load(WIDGET_CRD)), 201)
    assert names(crd_api, WIDGETS) == []


def test_discovery_lists_the_custom_resource(crd_api: httpx.Client) -> None:
    """kubectl resolves `wd` and kopf resolves Widget through discovery: the resource with
    its short names and its status subresource must be listed."""
    assert ok(crd_api.get("/api"))["versions"] == ["v1"]
    core = {r["name"] for r in ok(crd_api.get("/api/v1"))["resources"]}
    assert {"namespaces", "configmaps", "pods"} <= core
    groups = {g["name"]: g for g in ok(crd_api.get("/apis"))["groups"]}
    assert groups["example.com"]["preferredVersion"]["groupVersion"] == "example.com/v1"
    assert ok(crd_api.get("/apis/example.com"))["versions"][0]["version"] == "v1"
    listing = ok(crd_api.get("/apis/example.com/v1"))
    assert listing["groupVersion"] == "example.com/v1"
    resources = {r["name"]: r for r in listing["resources"]}
    assert resources["widgets"]["shortNames"] == ["wd"]
    assert resources["widgets"]["kind"] == "Widget"
    assert resources["widgets"]["namespaced"] is True
    assert {"watch", "patch", "list"} <= set(resources["widgets"]["verbs"])
    assert set(resources["widgets/status"]["verbs"]) == {"get", "patch", "update"}


def test_openapi_v3_describes_the_custom_resource(crd_api: httpx.Client) -> None:
    """kubectl apply reads /openapi/v3: the PATCH path's fieldValidation parameter makes it
    leave validation to the server, and x-kubernetes-group-version-kind ties paths and
    schemas to kinds (kubectl explain)."""
    index = ok(crd_api.get("/openapi/v3"))["paths"]
    assert "apis/example.com/v1" in index
    assert "api/v1" in index
    doc = ok(crd_api.get(index["apis/example.com/v1"]["serverRelativeURL"]))
    item = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
    parameters = [p["name"] for p in item["patch"]["parameters"]]
    assert "fieldValidation" in parameters
    gvk = {"group": "example.com", "version": "v1", "kind": "Widget"}
    assert item["patch"]["x-kubernetes-group-version-kind"] == gvk
    schema = doc["components"]["schemas"]["com.example.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"] == [gvk]
    assert schema["properties"]["spec"]["properties"]["size"]["type"] == "integer"


# -- patch content types -----------------------------------------------------------------


def test_merge_and_json_patches_on_a_configmap(api: httpx.Client) -> None:
    """kopf sends merge patches, kubectl --type json JSON patches; both by Content-Type."""
    ok(api.post(CONFIGMAPS, json={"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}),
       201)  # fmt: skip
    merged = patch(api, f"{CONFIGMAPS}/c", {"data": {"b": None, "c": "3"}})
    assert merged["data"] == {"a": "1", "c": "3"}
    ops = [{"op": "test", "path": "/data/a", "value": "1"},
           {"op": "replace", "path": "/data/a", "value": "9"},
           {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]  # fmt: skip
    patched = patch(api, f"{CONFIGMAPS}/c", ops, JSON_PATCH)
    assert patched["data"] == {"a": "9", "c": "3"}
    assert patched["metadata"]["labels"] == {"x": "y"}
    failing = [{"op": "test", "path": "/data/a", "value": "1"}]
    response = api.patch(f"{CONFIGMAPS}/c", content=json.dumps(failing), headers=JSON_PATCH)
    failure(response, 422, "Invalid")
    assert ok(api.get(f"{CONFIGMAPS}/c"))["data"] == {"a": "9", "c": "3"}


def test_strategic_merge_patch_on_a_deployment(api: httpx.Client) -> None:
    """kubectl's default patch type for built-in kinds merges containers by name."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "one"},
                                        {"name": "side", "image": "two"}]},
            },
        },
    }  # fmt: skip
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    ok(api.post(deployments, json=deployment), 201)
    body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "three"}]}}}}
    patched = patch(api, f"{deployments}/web", body, STRATEGIC)
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert {c["name"]: c["image"] for c in containers} == {"app": "three", "side": "two"}
    assert patched["metadata"]["generation"] == 2


def test_strategic_merge_patch_on_a_custom_resource_is_415(crd_api: httpx.Client) -> None:
    """Custom resources have no strategic merge metadata: kube-apiserver answers 415 and
    kubectl then falls back to a merge patch."""
    create_widget(crd_api, "w")
    response = crd_api.patch(f"{WIDGETS}/w", content='{"spec":{"size":3}}', headers=STRATEGIC)
    status = failure(response, 415, "UnsupportedMediaType")
    assert "application/merge-patch+json" in status["message"]
    assert ok(crd_api.get(f"{WIDGETS}/w"))["spec"]["size"] == 2


# -- known divergences from kube-apiserver (see the reasons) --------------------------------


def test_single_object_get_as_table(crd_api: httpx.Client) -> None:
    """`kubectl get wd NAME` asks for a Table; a plain object makes it print NAME/AGE only."""
    create_widget(crd_api, "a", 3)
    table = ok(crd_api.get(f"{WIDGETS}/a", headers=TABLE))
    assert table["kind"] == "Table"
    assert table["rows"][0]["cells"][:2] == ["a", 3]


def test_watch_with_a_bad_resource_version_is_400(crd_api: httpx.Client) -> None:
    """A bad watch parameter must be a 400 Status, not a second response written into the
    already-started chunked 200 (clients see a protocol error)."""
    response = crd_api.get(WIDGETS, params={"watch": "1", "resourceVersion": "abc"})
    failure(response, 400, "BadRequest")


def test_a_put_omitting_a_defaulted_field_is_a_no_op(crd_api: httpx.Client) -> None:
    """A PUT of the same manifest (without the schema's defaulted colour) changes nothing;
    bumping generation makes operators reconcile for nothing."""
    created = create_widget(crd_api, "w")
    updated = ok(crd_api.put(f"{WIDGETS}/w", json=widget("w")))
    assert updated["spec"] == created["spec"]
    assert updated["metadata"]["generation"] == 1
    assert rv(updated) == rv(created)


def test_label_selected_watch_sees_objects_leave_and_enter(space: Space) -> None:
    """An object that stops matching a watch's selector is DELETED for that watch, one that
    starts matching is ADDED, so the watcher's cache stays right."""
    api, widgets = space.api, space.widgets
    space.create("a", team="red")
    with watching(api, widgets, labelSelector="team=red", timeoutSeconds="1") as events:
        take(events, 1)
        patch(api, f"{widgets}/a", {"metadata": {"labels": {"team": "blue"}}})
        patch(api, f"{widgets}/a", {"metadata": {"labels": {"team": "red"}}})
        assert [e["type"] for e in take(events, 2)] == ["DELETED", "ADDED"]
