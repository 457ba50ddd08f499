"""``kubectl get``'s columns: the server answers ``Accept: ...;as=Table`` with rows.

Custom resources get their CRD's ``additionalPrinterColumns`` (after Name, before
Age), built-in kinds a Name and an Age column, as kube-apiserver prints them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from avatar_devcluster.resources import ResourceType

Obj = dict[str, Any]

_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[\?\(@\.(\w+)==\"([^\"]*)\"\)\]")


def json_path(obj: Any, path: str) -> Any:
    """The subset of JSONPath printer columns use: ``.a.b``, ``[0]``, ``[?(@.type=="X")]``."""
    value = obj
    for field, index, key, want in _STEP.findall(path.strip().strip("{}")):
        if value is None:
            return None
        if field:
            value = value.get(field) if isinstance(value, dict) else None
        elif index:
            value = (
                value[int(index)] if isinstance(value, list) and len(value) > int(index) else None
            )
        else:
            matches = [v for v in value or [] if isinstance(v, dict) and str(v.get(key)) == want]
            value = matches[0] if matches else None
    return value


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))  # with or without .fff
    seconds = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= 120):
            return f"{seconds // size}{unit}"
    return f"{max(0, seconds)}s"


def _cell(value: Any, column_type: str) -> Any:
    if value is None:
        return None
    if column_type == "date":
        return _age(str(value))
    if column_type == "integer" and isinstance(value, int | float):
        return int(value)
    if column_type == "number" and isinstance(value, int | float):
        return value
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value) if column_type == "string" else value


def _pod_cells(pod: Obj) -> list[Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(bool(s.get("ready")) for s in statuses)
    phase = (pod.get("status") or {}).get("phase", "Pending")
    if pod["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    return [f"{ready}/{total}", phase, restarts]


def _deployment_cells(deployment: Obj) -> list[Any]:
    status = deployment.get("status") or {}
    want = (deployment.get("spec") or {}).get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    return [f"{ready}/{want}", status.get("updatedReplicas", 0), status.get("availableReplicas", 0)]


def _event_cells(event: Obj) -> list[Any]:
    subject = event.get("involvedObject") or {}
    return [
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(subject.get('kind', '')).lower()}/{subject.get('name', '')}",
        event.get("message", ""),
    ]


# The columns kube-apiserver prints for the built-in kinds the product uses.
_BUILTIN: dict[tuple[str, str], tuple[list[tuple[str, str]], Any]] = {
    ("", "Pod"): ([("Ready", "string"), ("Status", "string"), ("Restarts", "integer")], _pod_cells),
    ("", "Event"): (
        [("Type", "string"), ("Reason", "string"), ("Object", "string"), ("Message", "string")],
        _event_cells,
    ),
    ("apps", "Deployment"): (
        [("Ready", "string"), ("Up-to-date", "integer"), ("Available", "integer")],
        _deployment_cells,
    ),
}


def table(
    rt: ResourceType, objects: list[Obj], *, include_object: str, resource_version: str
) -> Obj:
    columns: list[dict[str, Any]] = [
        {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."},
    ]  # fmt: skip
    printer = list(rt.printer_columns)
    for column in printer:
        columns.append(
            {
                "name": column.name,
                "type": column.type,
                "format": column.format,
                "priority": column.priority,
                "description": column.description,
            }
        )
    builtin_columns, builtin_cells = _BUILTIN.get((rt.group, rt.kind), ([], None))
    for name, kind in builtin_columns:
        columns.append({"name": name, "type": kind, "format": "", "priority": 0, "description": ""})
    has_age = any(c.name.lower() == "age" for c in printer)
    if not has_age:
        columns.append(
            {"name": "Age", "type": "string", "format": "", "priority": 0,
             "description": "Time since the object was created."}
        )  # fmt: skip
    rows = []
    for obj in objects:
        cells: list[Any] = [obj["metadata"]["name"]]
        cells += [_cell(json_path(obj, c.json_path), c.type) for c in printer]
        if builtin_cells is not None:
            cells += builtin_cells(obj)
        if not has_age:
            cells.append(_age(obj["metadata"].get("creationTimestamp")))
        rows.append({"cells": cells, "object": _row_object(obj, include_object)})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }


def _row_object(obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
