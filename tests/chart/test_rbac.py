"""The operator's RBAC grants exactly what its code and kopf call: no wildcard, no spare verb.

The calls are read from the code itself: every Kubernetes API call in
operator/avatar_operator/kube.py (parsed, so a new call fails this test until the chart
grants it), plus the calls kopf makes for the operator's handlers (its watches, its
finalizer and progress annotations, its Events, its discovery of CRDs and, in namespaced
mode, of namespaces). The end-to-end check, calls recorded against the local Kubernetes API,
is the RBAC test of the rest of this issue.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

import pytest

from avatar_operator import settings
from tests.chart import helm

KUBE = helm.REPO / "operator" / "avatar_operator" / "kube.py"
Grant = tuple[str, str, str]  # API group, resource, verb
CLUSTER = "(cluster)"
OTHER = "some-team"  # a namespace that is neither the release's nor a listed one

# kopf's own calls for the handlers in handlers.py, in each watched namespace.
KOPF_WATCHED: set[Grant] = {
    *((settings.GROUP, settings.PLURAL, verb) for verb in ("list", "watch", "patch")),
    *((settings.GROUP, settings.POOL_PLURAL, verb) for verb in ("list", "watch")),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "events", "create"),
}
KOPF_CLUSTER: set[Grant] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}
KOPF_NAMESPACED_MODE: set[Grant] = {("", "namespaces", "list"), ("", "namespaces", "watch")}
# Checked by the API server, never called: a Deployment's owner with blockOwnerDeletion.
OWNER_CHECK: set[Grant] = {(settings.GROUP, f"{settings.POOL_PLURAL}/finalizers", "update")}
# kube.py's calls that go to the runtime namespace only (runtime pods, pools' Deployments).
RUNTIME_ONLY = {"pods", "deployments"}

_METHOD = re.compile(r"^(read|list|create|patch|delete|replace)_namespaced_([a-z_]+?)(_status)?$")
# ``self._send(VERB, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{name}/status", ...)``
_PATH = re.compile(
    r"^/(?:apis/\{GROUP\}/\{VERSION\}|api/v1)/namespaces/\{[^}]+\}/"
    r"(\{[A-Z_]+\}|[a-z]+)(?:/\{[^}]+\})?(/status)?$"
)
_HTTP_VERBS = {"POST": "create", "PATCH": "patch", "GET": "get", "DELETE": "delete"}
_VERBS = {"read": "get", "replace": "update"}
_APIS = {"_core": "", "_apps": "apps", "_objects": settings.GROUP}


def _sent(node: ast.Call) -> Grant:
    """A ``self._send("VERB", f"<path>", ...)``, by its path's template."""
    verb, path = node.args[0], node.args[1]
    assert isinstance(verb, ast.Constant), "kube.py: give _send its verb as a literal"
    template = ast.unparse(path)[2:-1]  # f"..." -> ...
    match = _PATH.match(template)
    assert match, f"kube.py sends to {template}: teach this test its resource"
    plural = match[1]
    resource = getattr(settings, plural[1:-1]) if plural.startswith("{") else plural
    group = settings.GROUP if template.startswith("/apis/") else ""
    return (group, resource + (match[2] or ""), _HTTP_VERBS[str(verb.value)])


def kube_calls() -> set[Grant]:
    """Every ``self._run(self._<api>.<method>, ...)`` and ``self._send(VERB, path, ...)`` in
    kube.py, as (group, resource, verb)."""
    found: set[Grant] = set()
    for node in ast.walk(ast.parse(KUBE.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "self._send":
            found.add(_sent(node))
            continue
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "self._run"):
            continue
        target = node.args[0]
        assert isinstance(target, ast.Attribute)
        assert isinstance(target.value, ast.Attribute)
        api, method = target.value.attr, target.attr
        match = _METHOD.match(method)
        assert match, f"kube.py calls {method}: teach this test its verb"
        verb, kind, status = match[1], match[2], match[3]
        if kind == "custom_object":
            plural = getattr(settings, ast.unparse(node.args[4]))
            resource = plural
        else:
            resource = f"{kind}s"
        found.add((_APIS[api], resource + ("/status" if status else ""), _VERBS.get(verb, verb)))
    return found


def _grants(rules: Iterable[dict[str, list[str]]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def effective(rendered: helm.Rendered, namespace: str) -> set[Grant]:
    """What the operator's service account may do in ``namespace`` (CLUSTER: cluster-scoped)."""
    roles = {
        (o["metadata"].get("namespace"), o["kind"], o["metadata"]["name"]): o["rules"]
        for o in rendered.objects
        if o["kind"] in ("Role", "ClusterRole")
    }
    account = f"{helm.RELEASE}-avatar-video-operator"
    out: set[Grant] = set()
    for binding in rendered.objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": helm.NAMESPACE}
        ]
        where = binding["metadata"].get("namespace")
        if binding["kind"] == "RoleBinding" and where != namespace:
            continue
        ref = binding["roleRef"]
        key = (where if ref["kind"] == "Role" else None, ref["kind"], ref["name"])
        out |= _grants(roles[key])
    return out


def test_kube_py_calls_are_the_ones_the_chart_was_written_for() -> None:
    """A call added to kube.py lands here first: grant it in templates/_rbac.tpl too."""
    assert kube_calls() == {
        (settings.GROUP, f"{settings.PLURAL}/status", "patch"),
        (settings.GROUP, settings.PLURAL, "delete"),
        (settings.GROUP, f"{settings.POOL_PLURAL}/status", "patch"),
        ("", "events", "create"),
        ("", "events", "patch"),
        ("", "pods", "get"),
        ("", "pods", "patch"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "create"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments", "delete"),
    }


def test_no_rule_holds_a_wildcard(rendered: helm.Rendered) -> None:
    for role in rendered.objects:
        if role["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['metadata']['name']}: {rule}"
            assert "nonResourceURLs" not in rule
            assert "resourceNames" not in rule


@pytest.mark.parametrize("scenario", ["default", "namespaced"])
def test_the_grants_are_exactly_the_calls_in_each_namespace(
    renderings: dict[str, helm.Rendered], scenario: str
) -> None:
    rendered = renderings[scenario]
    calls = kube_calls()
    watched_calls = {c for c in calls if c[1] not in RUNTIME_ONLY} | KOPF_WATCHED
    runtime_calls = watched_calls | {c for c in calls if c[1] in RUNTIME_ONLY} | OWNER_CHECK
    cluster_calls = set(KOPF_CLUSTER)
    if scenario == "namespaced":
        cluster_calls |= KOPF_NAMESPACED_MODE
        watched, unwatched = ["team-a", "team-b"], [OTHER]
        cluster_wide: set[Grant] = cluster_calls
    else:
        watched, unwatched = [OTHER], []
        cluster_wide = cluster_calls | watched_calls
    assert effective(rendered, CLUSTER) == cluster_wide
    assert effective(rendered, helm.NAMESPACE) == cluster_wide | runtime_calls
    for namespace in watched:
        assert effective(rendered, namespace) == cluster_wide | watched_calls, namespace
    for namespace in unwatched:
        assert effective(rendered, namespace) == cluster_wide, namespace


def test_namespaced_mode_watches_only_the_listed_namespaces_and_its_own(
    renderings: dict[str, helm.Rendered],
) -> None:
    rendered = renderings["namespaced"]
    args = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    scope = [a for a in args if a.startswith(("--namespace", "--all-namespaces"))]
    assert scope == ["--namespace=avatar", "--namespace=team-a", "--namespace=team-b"]
    roles = sorted(
        (r["metadata"]["namespace"], r["metadata"]["name"]) for r in rendered.of_kind("Role")
    )
    assert roles == [
        ("avatar", "avatar-avatar-video-operator-runtime"),
        ("avatar", "avatar-avatar-video-operator-watched"),
        ("team-a", "avatar-avatar-video-operator-watched"),
        ("team-b", "avatar-avatar-video-operator-watched"),
    ]
    default = renderings["default"].one("Deployment")["spec"]["template"]["spec"]
    assert "--all-namespaces" in default["containers"][0]["args"]
    assert "--standalone" in default["containers"][0]["args"]
