"""PATCH semantics of the Kubernetes API server, for the devcluster.

kubectl and kopf change objects with PATCH requests in three formats: JSON merge patch
(kopf, ``kubectl patch --type merge``, ``kubectl label``/``annotate``, ``kubectl scale``),
JSON patch (``kubectl patch --type json``) and the strategic merge patch that kubectl sends
by default for built-in kinds (``kubectl patch``, ``kubectl apply``, ``kubectl edit``,
``kubectl set image``, ``kubectl rollout restart``). A stand-in that treated them all as
merge patches would replace whole container lists where a real cluster merges them by
name, so this module applies each format the way kube-apiserver does, including the
status codes it answers with when a patch is wrong. The first two are short and here;
the strategic merge, with its table of merge keys per kind, is ``strategic_merge``'s.

It is pure: no HTTP and no storage. The server calls :func:`apply_patch` with the stored
object and the request body, and turns a :class:`PatchError` into a ``metav1.Status``.
Server-side apply (``application/apply-patch+yaml``) is ``applying``'s: it also creates.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final, NoReturn

import jsonpatch

from avatar_devcluster import strategic_merge
from avatar_devcluster.errors import PatchError, unknown_format
from avatar_devcluster.strategic_merge import merge_rules

# What the routes and the tests import from here: PatchError and merge_rules included.
__all__ = [
    "APPLY_PATCH",
    "BUILTIN_GROUPS",
    "JSON_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "PatchError",
    "apply_patch",
    "merge_rules",
    "patch_types_for",
]

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"

#: API groups whose kinds are compiled into kube-apiserver; the rest are custom resources.
BUILTIN_GROUPS: Final = frozenset(
    {
        "",
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
    }
)

#: kube-apiserver refuses JSON patches with more operations (413).
MAX_JSON_PATCH_OPERATIONS: Final = 10000


def patch_types_for(group: str) -> tuple[str, ...]:
    """The patch content types this server accepts for a resource of ``group``."""
    if group in BUILTIN_GROUPS:
        return (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
    return (JSON_PATCH, MERGE_PATCH)


def apply_patch(
    obj: Mapping[str, Any],
    patch_body: bytes,
    *,
    content_type: str,
    kind: str,
    group: str,
) -> dict[str, Any]:
    """Return ``obj`` with the patch applied, as a new dict (``obj`` is never changed).

    ``content_type`` is the request's Content-Type header; parameters such as
    ``; charset=utf-8`` are ignored. ``kind`` and ``group`` pick the merge keys of a
    strategic merge patch. Raises :class:`PatchError`.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    accepted = patch_types_for(group)
    if media_type == APPLY_PATCH:
        raise PatchError(
            415, "server-side apply is the route's (applying.apply): " + unknown_format(accepted)
        )
    if media_type not in accepted:
        raise PatchError(415, unknown_format(accepted))

    patch = _load_json(patch_body)
    doc = copy.deepcopy(dict(obj))
    if media_type == MERGE_PATCH:
        result = _apply_merge_patch(doc, patch)
    elif media_type == JSON_PATCH:
        result = _apply_json_patch(doc, patch)
    else:
        if not isinstance(patch, dict):
            raise PatchError(
                400,
                f"error decoding patch: a strategic merge patch must be a JSON object, "
                f"not {_json_type(patch)}",
            )
        result = strategic_merge.merge(doc, patch, group=group, kind=kind)
    if not isinstance(result, dict):
        raise PatchError(422, f"the patched object is {_json_type(result)}, not a JSON object")
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise PatchError(400, f"error decoding patch: {exc}") from exc


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _apply_merge_patch(doc: dict[str, Any], patch: Any) -> Any:
    # As evanphx/json-patch, which kube-apiserver uses: a null or scalar patch is a bad
    # request; an array patch replaces the whole object, which then fails to decode (422).
    if not isinstance(patch, dict | list):
        raise PatchError(
            400, f"invalid JSON merge patch: expected an object, got {_json_type(patch)}"
        )
    return _merge(doc, patch)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return _drop_nulls(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _drop_nulls(value: Any) -> Any:
    """Drop null members of the objects in a new value (array items stay, as in kube)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _apply_json_patch(doc: dict[str, Any], patch: Any) -> Any:
    # kube-apiserver: a body that does not decode as a list of operations is 400; any
    # failure while applying (unknown op, missing path, failed test) is 422 "the server
    # rejected our request due to an error in our request".
    if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
        raise PatchError(400, "invalid JSON patch: expected an array of operation objects")
    if len(patch) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            413,
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(patch)}",
        )
    try:
        return jsonpatch.JsonPatch(patch).apply(doc, in_place=True)
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        TypeError,
        KeyError,
        IndexError,
        ValueError,
    ) as exc:
        raise PatchError(
            422, f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
