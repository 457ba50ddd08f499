"""The strategic merge patch, as k8s.io/apimachinery's strategicpatch applies it.

kubectl sends one by default for built-in kinds (``kubectl apply``, ``patch``, ``edit``,
``set image``, ``rollout restart``). Unlike a merge patch it merges lists by key where
the Kubernetes API types declare one (containers by ``name``, ports by
``containerPort``): :data:`MERGE_KEYS` is that table, from the types'
``patchMergeKey`` tags. It takes the ``$patch``, ``$retainKeys``,
``$setElementOrder`` and ``$deleteFromPrimitiveList`` directives, and orders merged
lists as kube-apiserver does. ``patching`` calls :func:`merge`; a patch it cannot apply
is a :class:`~avatar_devcluster.errors.PatchError`, 400 or 422 as on the API server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from avatar_devcluster.errors import PatchError

#: Merge keys of one kind: field path -> merge key of the list there, or None for a list
#: of scalars merged as an ordered set. ``a.b[]`` is an item of the list ``a.b``. Lists
#: that are not in the table (``tolerations``, ``args``, ...) are replaced.
MergeRules = Mapping[str, str | None]


def _nest(prefix: str, rules: MergeRules) -> dict[str, str | None]:
    return {f"{prefix}.{path}": key for path, key in rules.items()}


_OBJECT_META: Final[MergeRules] = {"finalizers": None, "ownerReferences": "uid"}

_CONTAINER: Final[MergeRules] = {
    "ports": "containerPort",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
}

_POD_SPEC: Final[MergeRules] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    **_nest("containers[]", _CONTAINER),
    **_nest("initContainers[]", _CONTAINER),
    **_nest("ephemeralContainers[]", _CONTAINER),
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "schedulingGates": "name",
    "resourceClaims": "name",
}

_POD_STATUS: Final[MergeRules] = {
    "conditions": "type",
    "podIPs": "ip",
    "hostIPs": "ip",
    "resourceClaimStatuses": "name",
}

_POD_TEMPLATE: Final[MergeRules] = {**_nest("metadata", _OBJECT_META), **_nest("spec", _POD_SPEC)}

_WORKLOAD: Final[MergeRules] = {
    **_nest("spec.template", _POD_TEMPLATE),
    "status.conditions": "type",
}

#: Merge keys by (group, kind), from the ``patchStrategy``/``patchMergeKey`` tags of the
#: Kubernetes API types. Object metadata (``finalizers``, ``ownerReferences``) applies to
#: every built-in kind and is added by :func:`merge_rules`.
MERGE_KEYS: Final[Mapping[tuple[str, str], MergeRules]] = {
    ("", "Pod"): {**_nest("spec", _POD_SPEC), **_nest("status", _POD_STATUS)},
    ("", "PodTemplate"): _nest("template", _POD_TEMPLATE),
    ("", "Service"): {"spec.ports": "port", "status.conditions": "type"},
    ("", "Namespace"): {"status.conditions": "type"},
    ("apps", "Deployment"): _WORKLOAD,
    ("apps", "ReplicaSet"): _WORKLOAD,
    ("apps", "StatefulSet"): _WORKLOAD,
    ("apps", "DaemonSet"): _WORKLOAD,
}


def merge_rules(group: str, kind: str) -> dict[str, str | None]:
    """The strategic-merge list keys of a built-in kind, object metadata included."""
    return {**_nest("metadata", _OBJECT_META), **MERGE_KEYS.get((group, kind), {})}


def merge(obj: dict[str, Any], patch: dict[str, Any], *, group: str, kind: str) -> dict[str, Any]:
    """``patch`` merged into ``obj`` with the merge keys of ``kind``; both are changed."""
    return _StrategicMerge(merge_rules(group, kind)).merge_map(obj, patch, "")


_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ELEMENT_ORDER: Final = "$setElementOrder"
_DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList"
_MISSING: Final = object()


def _bad(message: str) -> PatchError:
    return PatchError(400, f"invalid strategic merge patch: {message}")


def _same(left: Any, right: Any) -> bool:
    """Equality of JSON values as Go compares them: 1, 1.0 and true all differ."""
    return type(left) is type(right) and bool(left == right)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar_id(value: Any) -> tuple[type, Any]:
    return (type(value), value)


def _directive_field(name: str, prefix: str) -> str:
    head, slash, field = name.partition("/")
    if not slash or head != prefix:
        raise _bad(f"{name!r} is not of the form {prefix}/<field>")
    return field


def _key_of(item: Any, key: str | None) -> Any:
    if key is None:
        return item
    return item.get(key, _MISSING) if isinstance(item, dict) else _MISSING


def _index(order: list[Any], item: Any, key: str | None) -> int:
    probe = _key_of(item, key)
    for i, other in enumerate(order):
        if _same(probe, _key_of(other, key)):
            return i
    return -1


def _partition(merged: list[Any], order: list[Any], key: str | None) -> tuple[list[Any], list[Any]]:
    """Split merged items into those named in ``order`` and the server-only rest."""
    named: list[Any] = []
    server_only: list[Any] = []
    for item in merged:
        found = _key_of(item, key) is not _MISSING and _index(order, item, key) >= 0
        (named if found else server_only).append(item)
    return named, server_only


def _normalize_order(
    named: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    key: str | None,
) -> list[Any]:
    """Order items as kube-apiserver does: patch order first, then the object's order.

    Patch items keep the patch's order, server-only items the object's, and the two are
    interleaved where the object orders both; items new to the object come before the
    server-only items that follow them (so a new container lands first, as in kube).
    """
    named = sorted(named, key=lambda item: _index(patch_order, item, key))
    server_only = sorted(server_only, key=lambda item: _index(server_order, item, key))
    result: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(named):
        if j >= len(named):
            result.append(server_only[i])
            i += 1
        elif i >= len(server_only):
            result.append(named[j])
            j += 1
        else:
            left = _index(server_order, server_only[i], key)
            right = _index(server_order, named[j], key)
            if 0 <= left < right:
                result.append(server_only[i])
                i += 1
            else:
                result.append(named[j])
                j += 1
    return result


class _StrategicMerge:
    """Strategic merge of a patch into an object, as k8s.io/apimachinery's strategicpatch.

    Mutates the object it is given (``apply_patch`` hands it a copy) and the parsed patch.
    """

    def __init__(self, rules: MergeRules) -> None:
        self._rules = rules

    def merge_map(
        self, original: dict[str, Any], patch: dict[str, Any], path: str
    ) -> dict[str, Any]:
        """Merge ``patch`` into the object ``original`` found at field ``path``."""
        if _DIRECTIVE in patch:
            directive = patch.pop(_DIRECTIVE)
            if directive == "replace":
                return self.merge_map({}, patch, path)
            if directive == "delete":
                return {}
            raise _bad(f"unknown patch type {directive!r} at {path or 'the top level'}")
        self._retain_keys(original, patch)
        self._set_element_order(original, patch, path)
        for name, value in patch.items():
            if name.startswith(_DELETE_FROM_PRIMITIVE_LIST):
                self._delete_from_primitive_list(original, name, value)
                continue
            if value is None:
                original.pop(name, None)
                continue
            current = original.get(name)
            field = f"{path}.{name}" if path else name
            if isinstance(current, dict) and isinstance(value, dict):
                if value.get(_DIRECTIVE) == "delete":
                    del original[name]
                else:
                    original[name] = self.merge_map(current, value, field)
            elif isinstance(current, list) and isinstance(value, list):
                original[name] = self.merge_list(current, value, field)
            else:
                new, keep = self._fresh(value, field)
                if keep:
                    original[name] = new
                else:
                    original.pop(name, None)
        return original

    def merge_list(self, original: list[Any], patch: list[Any], path: str) -> list[Any]:
        """Merge by key where the kind declares one; otherwise the patch replaces the list."""
        if path in self._rules:
            return self._merge_slice(original, patch, self._rules[path], path)
        result: list[Any] = []
        for item in patch:
            if isinstance(item, dict) and _DIRECTIVE in item:
                continue
            result.append(self._fresh(item, f"{path}[]")[0])
        return result

    def _fresh(self, value: Any, path: str) -> tuple[Any, bool]:
        """A patch value with nothing to merge into: directives applied, nulls dropped."""
        if isinstance(value, dict):
            if value.get(_DIRECTIVE) == "delete":
                return None, False
            return self.merge_map({}, value, path), True
        if isinstance(value, list):
            return self.merge_list([], value, path), True
        return value, value is not None

    def _merge_slice(
        self, original: list[Any], patch: list[Any], key: str | None, path: str
    ) -> list[Any]:
        if not original and not patch:
            return original
        _check_items(original + patch, key, path)
        if key is None:
            order = patch
            seen: set[tuple[type, Any]] = set()
            merged: list[Any] = []
            for item in original + patch:
                if _scalar_id(item) not in seen:
                    seen.add(_scalar_id(item))
                    merged.append(item)
        else:
            original, order = self._special_items(original, patch, key, path)
            merged = list(original)
            for item in order:
                if key not in item:
                    raise _bad(f"an item of {path} has no merge key {key!r}: {item}")
                at = _index(merged, item, key)
                if at >= 0:
                    merged[at] = self.merge_map(merged[at], item, f"{path}[]")
                else:
                    merged.append(self._fresh(item, f"{path}[]")[0])
        named, server_only = _partition(merged, order, key)
        return _normalize_order(named, server_only, order, original, key)

    def _special_items(
        self, original: list[Any], patch: list[Any], key: str, path: str
    ) -> tuple[list[Any], list[Any]]:
        """Apply ``$patch: delete``/``replace`` items; return the list and the rest."""
        rest: list[Any] = []
        replace = False
        for item in patch:
            if _DIRECTIVE not in item:
                rest.append(item)
                continue
            directive = item[_DIRECTIVE]
            if directive == "delete":
                if key not in item:
                    raise _bad(f"a $patch: delete item of {path} has no merge key {key!r}")
                original = [o for o in original if not _same(_key_of(o, key), item[key])]
            elif directive == "replace":
                replace = True
            elif directive == "merge":
                raise _bad("merging lists cannot yet be specified in the patch")
            else:
                raise _bad(f"unknown patch type {directive!r} in {path}")
        if replace:
            return [self._fresh(item, f"{path}[]")[0] for item in rest], []
        return original, rest

    def _retain_keys(self, original: dict[str, Any], patch: dict[str, Any]) -> None:
        if _RETAIN_KEYS not in patch:
            return
        retain = patch.pop(_RETAIN_KEYS)
        if not isinstance(retain, list):
            raise _bad("$retainKeys must be a list of field names")
        allowed = {name for name in retain if isinstance(name, str)}
        for name, value in patch.items():
            if value is None or name.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
                continue
            if name not in allowed:
                raise _bad(f"field {name!r} is patched but not in $retainKeys {retain}")
        for name in [name for name in original if name not in allowed]:
            del original[name]

    def _set_element_order(
        self, original: dict[str, Any], patch: dict[str, Any], path: str
    ) -> None:
        for directive in [name for name in patch if name.startswith(_SET_ELEMENT_ORDER)]:
            order = patch.pop(directive)
            name = _directive_field(directive, _SET_ELEMENT_ORDER)
            if not isinstance(order, list):
                raise _bad(f"{directive} must be a list")
            field = f"{path}.{name}" if path else name
            if field not in self._rules:
                continue  # not a merging list: the list in the patch replaces it
            key = self._rules[field]
            current = original.get(name)
            current = current if isinstance(current, list) else None
            listed = patch.get(name)
            if listed is not None and not isinstance(listed, list):
                raise _bad(f"{field} must be a list, as {directive} is given")
            _check_order(listed or [], order, key, field)
            if current is None and listed is None:
                continue
            if listed is None:
                merged = current or []
            else:
                merged = self._merge_slice(current or [], listed, key, field)
                del patch[name]
            named, server_only = _partition(merged, order, key)
            original[name] = _normalize_order(named, server_only, order, current or [], key)

    @staticmethod
    def _delete_from_primitive_list(original: dict[str, Any], directive: str, value: Any) -> None:
        name = _directive_field(directive, _DELETE_FROM_PRIMITIVE_LIST)
        if not isinstance(value, list) or not all(_is_scalar(v) for v in value):
            raise _bad(f"{directive} must be a list of scalars")
        current = original.get(name)
        if isinstance(current, list):
            drop = {_scalar_id(v) for v in value}
            original[name] = [v for v in current if not (_is_scalar(v) and _scalar_id(v) in drop)]


def _check_items(items: list[Any], key: str | None, path: str) -> None:
    if any(isinstance(item, list) for item in items):
        raise PatchError(422, f"lists of lists are not supported: {path}")
    if key is None:
        if not all(_is_scalar(item) for item in items):
            raise _bad(f"{path} is a list of scalars, it cannot merge objects")
        if len({type(item) for item in items}) > 1:
            raise _bad(f"the items of {path} are not all of one type")
    elif not all(isinstance(item, dict) for item in items):
        raise _bad(f"the items of {path} must be objects with the merge key {key!r}")


def _check_order(listed: list[Any], order: list[Any], key: str | None, path: str) -> None:
    """The patch's items must appear in ``$setElementOrder``, in the same order."""
    if not listed or not order:
        return
    items = [item for item in listed if not (isinstance(item, dict) and _DIRECTIVE in item)]
    i = j = 0
    while i < len(items) and j < len(order):
        if _key_of(items[i], key) is _MISSING or _key_of(order[j], key) is _MISSING:
            raise _bad(f"an item of {path} or its $setElementOrder has no merge key {key!r}")
        if _same(_key_of(items[i], key), _key_of(order[j], key)):
            i += 1
        j += 1
    if i < len(items):
        raise _bad(f"the order of {path} in the patch does not match its $setElementOrder")
