"""Write the Helm chart's value documentation from its sources, or check that it is current.

Each value is described once, by its ``## @param KEY DESCRIPTION`` comment in
``charts/avatar-video/values.yaml`` (the syntax of Bitnami's readme-generator-for-helm,
with ``## @section TITLE`` opening a table). From those comments this writes:

- the README's tables of values (between the ``values-table`` markers), each value with
  its description and default;
- the ``description`` of each value in ``values.schema.json``, which keeps its types and
  constraints by hand;
- the schema of ``operator.settings`` whole, from the operator's own settings
  (``operator/avatar_operator/settings.py``): every group and field the chart does not set
  itself, in camelCase, with pydantic's types, bounds and descriptions. A typo there, or
  a setting the operator no longer has, fails ``helm install``.

Every value must have a ``@param`` (its own, or an ancestor's that covers a whole map), and
every ``@param`` must name a value the schema knows.

    python scripts/chart_values.py           # rewrite the README and the schema
    python scripts/chart_values.py --check   # exit 1, saying what is stale, if either is
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from avatar_operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "avatar-video"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
README = CHART / "README.md"
START = "<!-- values-table:start (scripts/chart_values.py writes this part) -->"
END = "<!-- values-table:end -->"

# Operator settings the chart sets from its own values: a user setting them would break
# what the chart wires together (the token Secret, the namespace, the metrics port).
CHART_OWNED = {
    ("runtime", "namespace"),
    ("runtime", "token"),
    ("runtime", "token_file"),
    ("pools", "token_secret"),
    ("pools", "token_secret_key"),
    ("metrics", "port"),
}

_PARAM = re.compile(r"^\s*## @param (\S+)\s+(.+?)\s*$")
_SECTION = re.compile(r"^\s*## @section (.+?)\s*$")


@dataclasses.dataclass
class Section:
    title: str
    params: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def read_sections(text: str) -> list[Section]:
    sections: list[Section] = []
    for line in text.splitlines():
        if match := _SECTION.match(line):
            sections.append(Section(match[1]))
        elif match := _PARAM.match(line):
            if not sections:
                raise SystemExit(f"values.yaml: @param {match[1]} comes before any @section")
            sections[-1].params.append((match[1], match[2]))
    return sections


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted keys of the values that are not maps with keys (an empty map is a value)."""
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{path}.")
        else:
            yield path


def _lookup(tree: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def problems(values: Mapping[str, Any], sections: list[Section]) -> list[str]:
    """Values without a @param, and @params without a value."""
    keys = [key for section in sections for key, _ in section.params]
    found = [
        f"@param {key}: listed twice" for key in sorted({k for k in keys if keys.count(k) > 1})
    ]
    found += [f"@param {key}: no such value" for key in keys if not _lookup(values, key)[0]]
    covered = set(keys)
    for leaf in _leaves(values):
        parts = leaf.split(".")
        if not any(".".join(parts[:n]) in covered for n in range(1, len(parts) + 1)):
            found.append(f"{leaf}: no @param documents it")
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(value: Any) -> str:
    """The default as JSON (what YAML reads the same): ``""``, ``[]``, ``{"cpu": "6"}``."""
    return f"`{_cell(json.dumps(value, separators=(', ', ': ')))}`"


def tables(values: Mapping[str, Any], sections: list[Section]) -> str:
    out: list[str] = []
    for section in sections:
        out += [
            f"### {section.title}",
            "",
            "| Name | Description | Default |",
            "| --- | --- | --- |",
        ]
        for key, description in section.params:
            out.append(f"| `{key}` | {_cell(description)} | {_default(_lookup(values, key)[1])} |")
        out.append("")
    return "\n".join(out).rstrip("\n")


def with_tables(readme: str, table: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"{README}: the markers {START!r} and {END!r} are missing")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


# The operator's settings, as JSON Schema (draft-07).


def camel(name: str) -> str:
    """``long_poll_seconds`` -> ``longPollSeconds`` (Helm's ``snakecase`` turns it back)."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _type(annotation: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # X | None: a value is X (Helm drops nulls)
        (only,) = [arg for arg in args if arg is not type(None)]
        return _type(only)
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}
    if annotation in simple:
        return {"type": simple[annotation]}
    if origin is tuple:
        items = [_type(arg) for arg in args]
        return {"type": "array", "items": items, "minItems": len(items), "maxItems": len(items)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(args[1])}
    if origin is typing.Literal:
        return {"enum": list(args)}
    raise SystemExit(f"settings.py: no JSON Schema type for {annotation!r}: add one here")


def _bounds(field: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            out["minimum"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            out["exclusiveMinimum"] = item.gt
        elif isinstance(item, annotated_types.Le):
            out["maximum"] = item.le
        elif isinstance(item, annotated_types.Lt):
            out["exclusiveMaximum"] = item.lt
    return out


def settings_schema(description: str) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for group, group_field in OperatorSettings.model_fields.items():
        model = group_field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise SystemExit(f"settings.py: the group {group} is not a model of its fields")
        fields: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            if (group, name) in CHART_OWNED:
                continue
            env = f"AVATAR_OPERATOR_{group.upper()}__{name.upper()}"
            text = field.description or f"See {model.__name__}.{name}."
            fields[camel(name)] = {
                "description": f"{text} ({env})",
                **_type(field.annotation),
                **_bounds(field),
            }
        if fields:
            groups[camel(group)] = {
                "type": "object",
                "description": (model.__doc__ or group).strip().splitlines()[0],
                "additionalProperties": False,
                "properties": fields,
            }
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": groups,
    }


def _node(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in key.split("."):
        node = ((node or {}).get("properties") or {}).get(part)
    return node


def with_descriptions(
    schema: dict[str, Any], sections: list[Section]
) -> tuple[dict[str, Any], list[str]]:
    """The schema with each @param's description on its value; values it does not know."""
    schema = json.loads(json.dumps(schema))
    missing: list[str] = []
    for section in sections:
        for key, description in section.params:
            node = _node(schema, key)
            if node is None:
                missing.append(f"values.schema.json: no schema for {key}")
            elif key == "operator.settings":
                parent = _node(schema, "operator")
                assert parent is not None
                parent["properties"]["settings"] = settings_schema(description)
            else:
                node["description"] = description
    return schema, missing


def build() -> tuple[dict[str, str], list[str]]:
    """The README and the schema as they should be, and what is wrong with the sources."""
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    sections = read_sections(text)
    schema, missing = with_descriptions(json.loads(SCHEMA.read_text()), sections)
    wanted = {
        str(README): with_tables(README.read_text(), tables(values, sections)),
        str(SCHEMA): json.dumps(schema, indent=2, ensure_ascii=False) + "\n",
    }
    return wanted, problems(values, sections) + missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    wanted, found = build()
    for problem in found:
        print(problem, file=sys.stderr)
    stale = [path for path, text in wanted.items() if Path(path).read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run python scripts/chart_values.py", file=sys.stderr)
        return 1 if stale or found else 0
    for path in stale:
        Path(path).write_text(wanted[path])
        print(f"wrote {path}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
