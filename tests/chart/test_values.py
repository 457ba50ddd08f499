"""values.yaml, its schema and the README agree, and the schema refuses what it does not know.

Each value is documented by its `## @param` comment; scripts/chart_values.py writes the
README's tables and the schema's descriptions from those, and the schema of
operator.settings from the operator's settings. A typo in any value fails at install time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from avatar_operator.settings import OperatorSettings
from scripts import chart_values
from tests.chart import helm

SCHEMA: dict[str, Any] = json.loads((helm.CHART / "values.schema.json").read_text())
# Kubernetes' own structures passed through as they are: the API server checks their fields.
PASSTHROUGH = {
    "operator.affinity.nodeAffinity",
    "operator.affinity.podAffinity",
    "operator.affinity.podAntiAffinity",
}


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{key}" if path else key)
    items = node.get("items")
    for child in items if isinstance(items, list) else [items] if items else []:
        yield from _nodes(child, f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}.*")
    for child in node.get("oneOf") or []:
        yield from _nodes(child, f"{path}|")


def test_lint_passes_with_the_defaults_and_the_gke_values(helm_binary: str) -> None:
    for values in ([], ["-f", str(helm.GKE_VALUES)]):
        out = helm.run(
            "lint", str(helm.CHART), "--strict", "--kube-version", helm.KUBE_VERSION, *values
        )
        assert "0 chart(s) failed" in out


def test_the_readme_tables_and_schema_descriptions_are_current() -> None:
    wanted, problems = chart_values.build()
    assert problems == []
    for path, text in wanted.items():
        assert Path(path).read_text() == text, (
            f"{path} is out of date: run .venv/bin/python scripts/chart_values.py"
        )


def test_the_schema_is_draft_07_and_every_object_refuses_unknown_keys() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    for path, node in _nodes(SCHEMA):
        if node.get("type") != "object" or path in PASSTHROUGH:
            continue
        closed = node.get("additionalProperties")
        assert closed is False or isinstance(closed, dict), f"{path or '(top)'} is open"


def test_every_value_in_the_schema_has_a_description() -> None:
    for path, node in _nodes(SCHEMA):
        if path.endswith(("[]", ".*")) or "|" in path or not path:
            continue
        assert node.get("description"), f"{path} has no description"


def test_every_value_the_schema_knows_is_documented_by_a_param() -> None:
    """A @param covers its value and, for a map such as resources, what is inside it."""
    params = {
        key
        for section in chart_values.read_sections((helm.CHART / "values.yaml").read_text())
        for key, _ in section.params
    }
    for path, _ in _nodes(SCHEMA):
        if not path or any(mark in path for mark in "[*|"):
            continue
        parts = path.split(".")
        prefixes = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
        is_group = not prefixes & params and any(p.startswith(f"{path}.") for p in params)
        assert prefixes & params or is_group, f"{path} is in the schema but has no @param"


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("operator.replicas=2", "at '/operator': additional properties 'replicas' not allowed"),
        ("pool.gpu.acelerator=nvidia-l4", "at '/pool/gpu': additional properties 'acelerator'"),
        ("modelVolume.type=gcs", "at '/modelVolume/type'"),
        (
            "operator.settings.scaling.prometheusURL=http://p:9090",
            "at '/operator/settings/scaling': additional properties 'prometheusURL' not allowed",
        ),
        ("operator.settings.runtime.tokenFile=/t", "additional properties 'tokenFile' not allowed"),
    ],
)
def test_a_typo_in_a_value_fails_the_install_with_where_it_is(
    helm_binary: str, key: str, where: str
) -> None:
    out = helm.refused(*helm.template_args(), "--set", key)
    assert "values don't meet the specifications of the schema" in out
    assert where in out


def test_operator_settings_reach_the_operator_as_its_own_environment(
    helm_binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every setting the schema offers, set to a value unlike its default, and read back
    by the operator's own OperatorSettings from the rendered environment."""
    chosen: dict[str, dict[str, Any]] = {
        "runtime": {"port": 8181, "requestTimeoutSeconds": 4.5, "cancelTimeoutSeconds": 7},
        "tracking": {
            "longPollSeconds": 3,
            "unreachableBackoffSeconds": [0.5, 4],
            "podLostSeconds": 12,
            "capacityRefreshSeconds": 20,
        },
        "retries": {"baseSeconds": 5, "maxSeconds": 100, "maxPlatformRetries": 7},
        "status": {
            "progressIntervalSeconds": 2,
            "queuePositionsSeconds": 9,
            "queuePositionsTop": 10,
        },
        "estimates": {
            "charsPerSecond": {"en": 13.5, "de": 12},
            "defaultCharsPerSecond": 11,
            "audioPriorSeconds": 45,
        },
        "pools": {"drainSeconds": 90},
        "scaling": {
            "prometheusUrl": "http://prometheus.monitoring:9090",
            "intervalSeconds": 15,
            "scrapeTimeoutSeconds": 2,
            "throughputWindowSeconds": 600,
            "victimGraceSeconds": 30,
        },
        "gc": {"thresholds": [5000, 15, 30]},
    }
    offered = SCHEMA["properties"]["operator"]["properties"]["settings"]["properties"]
    for group, fields in offered.items():  # settings added since: a value of their type
        for field, node in fields["properties"].items():
            if field not in chosen.setdefault(group, {}):
                chosen[group][field] = {"integer": 3, "number": 3.5, "string": "x"}[node["type"]]
    objects = helm.template(set_json={"operator.settings": chosen})
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    for variable in env:
        if variable["name"].startswith("AVATAR_OPERATOR_"):
            monkeypatch.setenv(variable["name"], variable["value"])
    settings = OperatorSettings()
    for group, fields in chosen.items():
        model = getattr(settings, group)
        for field, value in fields.items():
            name = next(n for n in type(model).model_fields if chart_values.camel(n) == field)
            got = getattr(model, name)
            assert (list(got) if isinstance(got, tuple) else got) == value, f"{group}.{field}"
    assert settings.runtime.namespace == helm.NAMESPACE
    assert str(settings.runtime.token_file) == "/var/run/secrets/avatar.dev/runtime-token/token"
    assert settings.pools.token_secret == f"{helm.RELEASE}-avatar-video-runtime-token"


def test_the_schema_offers_every_operator_setting_but_those_the_chart_sets() -> None:
    offered = SCHEMA["properties"]["operator"]["properties"]["settings"]["properties"]
    names = {
        (group, name)
        for group, field in OperatorSettings.model_fields.items()
        for name in field.annotation.model_fields  # type: ignore[union-attr]
    }
    assert names >= chart_values.CHART_OWNED
    assert {(group, field) for group, node in offered.items() for field in node["properties"]} == {
        (chart_values.camel(g), chart_values.camel(n)) for g, n in names - chart_values.CHART_OWNED
    }


def test_an_undocumented_value_and_a_param_without_a_value_are_both_reported() -> None:
    text = """
## @section Things
## @param a.documented What it is.
## @param a.gone Nothing holds it.
a:
  documented: 1
  forgotten: 2
## @param whole A map documented whole.
whole:
  inside: {deeper: 3}
"""
    found = chart_values.problems(yaml.safe_load(text), chart_values.read_sections(text))
    assert found == ["@param a.gone: no such value", "a.forgotten: no @param documents it"]
