"""Admission of custom resources, as kube-apiserver applies a CRD's structural schema.

The operator is developed against GKE, where every AvatarVideo that kubectl or kopf
writes is pruned, defaulted and validated by the API server before it is stored. If the
devcluster stored objects as sent, the operator would see fields (and miss defaults) that
a real cluster never shows it, and a manifest that GKE rejects would pass the demo. So
this package repeats apiextensions-apiserver's steps, in its order and with its messages,
one module per step, and stays free of HTTP so the server only has to call :func:`admit`:

1. ``pruning``: prune unknown fields (silently), except below
   ``x-kubernetes-preserve-unknown-fields`` and for ``apiVersion``/``kind``/``metadata``
   of the root and of embedded resources;
2. ``defaulting``: drop nulls of non-nullable fields, then apply ``default`` where a field
   is absent, recursively (into applied defaults too);
3. ``validation``: validate against the OpenAPI v3 schema with kube-openapi's checks and
   wording (the string ``format`` checks are in ``formats``);
4. ``extensions``: check embedded resources and ``x-kubernetes-list-type`` set/map
   uniqueness;
5. ``cel_rules``: evaluate the ``x-kubernetes-validations`` CEL rules (transition rules
   only on update), unless step 3 or 4 found a type, required, enum, too-long or too-many
   error: then the API server skips CEL and says so in one extra cause, and so does this.

Every problem is collected; :class:`AdmissionError` carries them all, worded as the API
server's 422 Invalid ``Status`` (``messages`` has the wording every step uses, ``schemas``
what every step reads from a schema). Ratcheting (tolerating unchanged invalid values on
update, Kubernetes 1.30+) and CEL cost limits are not implemented.
"""

from __future__ import annotations

import copy
from typing import Any

from avatar_devcluster.admission import (
    cel_rules,
    defaulting,
    extensions,
    messages,
    pruning,
    schemas,
    validation,
)
from avatar_devcluster.admission.messages import AdmissionError, Cause
from avatar_devcluster.admission.schemas import Schema

__all__ = ["AdmissionError", "Cause", "admit"]


def admit(
    obj: dict[str, Any], *, schema: Schema, old: dict[str, Any] | None, kind: str, group: str
) -> dict[str, Any]:
    """Return the object as stored: defaults applied, unknown fields pruned, validated
    (schema + x-kubernetes-validations CEL rules, transition rules with oldSelf when old is given).
    Raises AdmissionError listing ALL problems found (not just the first).

    ``obj`` is not modified. ``old`` is the stored object on update, None on create.
    """
    stored = copy.deepcopy(obj)
    pruning.prune(stored, schema, embedded=True)
    defaulting.default(stored, schema, root=True)

    body = {key: value for key, value in stored.items() if key not in schemas.OBJECT_FIELDS}
    causes: list[Cause] = []
    validation.validate(body, validation.root_schema(schema), "", causes)
    for value, node, path in extensions.walk(stored, schema, "", root=True):
        extensions.check_embedded(value, node, path, causes)
    for value, node, path in extensions.walk(stored, schema, "", root=True):
        extensions.check_list_type(value, node, path, causes)

    if cel_rules.has_rules(schema):
        if any(cause.reason in cel_rules.BLOCKING for cause in causes):
            causes.append(messages.cause("FieldValueInvalid", "", None, cel_rules.SKIPPED))
        else:
            cel_rules.run(stored, schema, "", old, causes, root=True)

    if causes:
        metadata = stored.get("metadata")
        name = metadata.get("name", "") if isinstance(metadata, dict) else ""
        raise AdmissionError(kind=kind, name=str(name or ""), causes=causes, group=group)
    return stored
