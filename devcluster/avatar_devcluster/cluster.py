"""The cluster's state and the rules of writing it, free of HTTP.

One :class:`Cluster` holds the store, the registry of resource types and the
objects whose removal waits on a process; its ``create``, ``update`` and
``delete`` apply what the API server applies to every write: metadata rules,
admission, CRD acceptance, finalizers, cascading deletion and garbage
collection. The HTTP routes translate requests into these calls, and so do the
controllers and the kubelet, which is why this module sits below all of them:
they import it, it imports none of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from avatar_devcluster import metadata
from avatar_devcluster.errors import ApiError, already_exists, not_found
from avatar_devcluster.resources import Registry, ResourceType
from avatar_devcluster.store import Key, Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rt: ResourceType
    namespace: str  # "" for cluster-scoped or all namespaces
    name: str
    subresource: str

    @property
    def key(self) -> Key:
        return (self.rt.group, self.rt.plural, self.namespace, self.name)


class Cluster:
    """The API's state and its rules; the routes only translate HTTP into these calls."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.registry = Registry()
        self.client_verbs: dict[tuple[str, str, str, str, str, str], int] = {}
        """(user, client, verb, API group, target, namespace): requests."""
        # Objects whose removal waits for something outside the API (a pod's process to
        # end): deleting them only sets deletionTimestamp, like a finalizer would.
        self.held: set[Key] = set()
        for key in store.all_keys():
            if key[:2] == ("apiextensions.k8s.io", "customresourcedefinitions"):
                crd = store.get(key)
                if crd is not None:
                    self.registry.set_crd(crd)
        for name in ("default", "kube-system", "kube-public"):
            if store.get(("", "namespaces", "", name)) is None:
                self.create(self._rt("", "v1", "namespaces"), {"metadata": {"name": name}}, "")

    def _rt(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt

    def create(
        self,
        rt: ResourceType,
        body: Obj,
        namespace: str,
        *,
        dry_run: bool = False,
        strict: bool = False,
    ) -> Obj:
        if rt.namespaced and self.store.get(("", "namespaces", "", namespace)) is None:
            raise not_found("namespaces", namespace)
        obj = metadata.for_create(rt, body, namespace=namespace, revision=self.store.revision + 1)
        key = (rt.group, rt.plural, namespace if rt.namespaced else "", obj["metadata"]["name"])
        if self.store.get(key) is not None:
            raise already_exists(rt.plural, key[3], group=rt.group)
        obj = self._admit(rt, obj, old=None, strict=strict)
        if rt.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        if rt.kind == "CustomResourceDefinition":
            obj = self._accept_crd(obj)
        if dry_run:
            return obj
        self.store.next_revision()
        self.store.put(key, obj, created=True)
        if rt.kind == "CustomResourceDefinition":
            self.registry.set_crd(obj)
        return obj

    def update(
        self, target: Target, body: Obj, *, dry_run: bool = False, strict: bool = False
    ) -> Obj:
        rt = target.rt
        old = self.store.get(target.key)
        if old is None:
            raise not_found(rt.plural, target.name, group=rt.group)
        new = metadata.for_update(
            rt, old, body, subresource=target.subresource, revision=self.store.revision + 1
        )
        # A status write is admitted too, as the whole object it makes (schema, pruning,
        # CEL): a bad status is refused here, not found later on an unrelated write.
        new = self._admit(rt, new, old=old, strict=strict)
        if target.subresource != "status":
            metadata.bump_generation(rt, old, new)
        if rt.kind == "CustomResourceDefinition" and target.subresource != "status":
            new = self._accept_crd(new)
        if _unchanged(old, new):
            return old  # no change: no new resourceVersion, no watch event (as the API server)
        if dry_run:
            return new
        self.store.next_revision()
        meta = new["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and target.key not in self.held
        ):
            self._remove(target.key)
            return new
        self.store.put(target.key, new, created=False)
        if rt.kind == "CustomResourceDefinition":
            self.registry.set_crd(new)
        return new

    def delete(self, target: Target, *, dry_run: bool = False, orphan: bool = False) -> Obj:
        obj = self.store.get(target.key)
        if obj is None:
            raise not_found(target.rt.plural, target.name, group=target.rt.group)
        if dry_run:
            return obj
        if obj["metadata"].get("finalizers") or target.key in self.held:
            self._mark_deleted(target.key, obj)
            return obj
        return self._remove(target.key, cascade=not orphan) or obj

    def _mark_deleted(self, key: Key, obj: Obj) -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        obj["metadata"]["deletionTimestamp"] = metadata.now()
        grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        obj["metadata"]["deletionGracePeriodSeconds"] = grace if key in self.held else 0
        obj["metadata"]["resourceVersion"] = str(self.store.next_revision())
        self.store.put(key, obj, created=False)

    def remove(self, key: Key) -> None:
        """Remove an object whose deletion was held (its process ended)."""
        self.held.discard(key)
        obj = self.store.get(key)
        if obj is not None and not obj["metadata"].get("finalizers"):
            self._remove(key)

    def _remove(self, key: Key, *, cascade: bool = True) -> Obj | None:
        obj = self.store.remove(key)
        if obj is None:
            return None
        if not cascade:  # propagationPolicy: Orphan
            return obj
        uid = obj["metadata"].get("uid")
        if key[:2] == ("", "namespaces"):
            for other in self.store.all_keys():
                if other[2] == key[3] and other[:2] != ("", "namespaces"):
                    self._delete_key(other)
        elif key[:2] == ("apiextensions.k8s.io", "customresourcedefinitions"):
            for rt in self.registry.remove_crd(key[3]):
                for other in self.store.all_keys():
                    if other[:2] == (rt.group, rt.plural):
                        self._delete_key(other)
        # Garbage collection: dependents go with their owner (background propagation).
        for other in self.store.all_keys():
            dependent = self.store.get(other)
            owners = (dependent or {}).get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in owners):
                self._delete_key(other)
        return obj

    def _delete_key(self, key: Key) -> None:
        obj = self.store.get(key)
        if obj is None:
            return
        if obj["metadata"].get("finalizers") or key in self.held:
            self._mark_deleted(key, obj)
        else:
            self._remove(key)

    def _admit(self, rt: ResourceType, obj: Obj, *, old: Obj | None, strict: bool) -> Obj:
        if not rt.custom or rt.schema is None:
            return obj
        # Imported on first use: CEL's grammar takes a quarter of a second to load, which
        # what imports only the controllers (local_system, for pod_ready) need not pay.
        from avatar_devcluster import admission

        try:
            admitted = admission.admit(obj, schema=rt.schema, old=old, kind=rt.kind, group=rt.group)
            unknown = _pruned(obj, admitted, "") if strict else []
            if unknown:
                fields = ", ".join(f'unknown field "{path}"' for path in unknown)
                raise ApiError(
                    400,
                    "BadRequest",
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}:'
                    f" strict decoding error: {fields}",
                )
            return admitted
        except admission.AdmissionError as exc:
            status = exc.status()
            raise ApiError(
                422, "Invalid", status["message"], details=status.get("details")
            ) from None

    def _accept_crd(self, crd: Obj) -> Obj:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        if not spec.get("group") or not names.get("plural") or not names.get("kind"):
            raise ApiError(
                422,
                "Invalid",
                f'CustomResourceDefinition.apiextensions.k8s.io "{crd["metadata"]["name"]}" is'
                " invalid: spec: Required value: group, names.plural and names.kind are required",
            )
        expected = f"{names['plural']}.{spec['group']}"
        if crd["metadata"]["name"] != expected:
            raise ApiError(
                422,
                "Invalid",
                f'CustomResourceDefinition.apiextensions.k8s.io "{crd["metadata"]["name"]}" is'
                f' invalid: metadata.name: Invalid value: "{crd["metadata"]["name"]}": must be'
                f' spec.names.plural+"."+spec.group',
            )
        condition = {"status": "True", "lastTransitionTime": metadata.now()}
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
            "conditions": [
                {**condition, "type": "NamesAccepted", "reason": "NoConflicts",
                 "message": "no conflicts found"},
                {**condition, "type": "Established", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted"},
            ],
        }  # fmt: skip
        return crd

    def note(
        self,
        *,
        client: str,
        verb: str,
        target: str,
        namespace: str = "",
        user: str = "",
        group: str = "",
    ) -> None:
        """Which client used which verb on what, where (namespace; "" for the cluster or all
        namespaces), as whom: the chart's RBAC is checked against this."""
        key = (user, client, verb, group, target, namespace)
        if key not in self.client_verbs:
            log.info("client %s %s %s %s in %r", user or "-", client, verb, target, namespace,
                     extra={"client": client})  # fmt: skip
        self.client_verbs[key] = self.client_verbs.get(key, 0) + 1


def _pruned(sent: Any, kept: Any, path: str) -> list[str]:
    """Fields that were sent but not kept: what admission pruned as unknown."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        out: list[str] = []
        for key, value in sent.items():
            child = f"{path}.{key}" if path else key
            if path == "" and key in ("metadata", "apiVersion", "kind"):
                continue
            out += [child] if key not in kept else _pruned(value, kept[key], child)
        return out
    if isinstance(sent, list) and isinstance(kept, list):
        return [
            p
            for i, (a, b) in enumerate(zip(sent, kept, strict=False))
            for p in _pruned(a, b, f"{path}[{i}]")
        ]
    return []


def _unchanged(old: Obj, new: Obj) -> bool:
    def strip(obj: Obj) -> Obj:
        meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        return {**obj, "metadata": meta}

    return strip(old) == strip(new)
