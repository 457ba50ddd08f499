"""Content negotiation, in one place: what a body is read as, what an answer is sent as.

kube-apiserver reads a request's body by its ``Content-Type`` and refuses one it has
no decoder for with 415 ``UnsupportedMediaType``; it picks the answer's media type from
the ``Accept`` header, in the client's order of preference, and answers 406
``NotAcceptable`` when it can send none of them. Clients count on both: kubectl sends
``Accept: application/vnd.kubernetes.protobuf,application/json`` and reads the JSON it
gets, and asks for ``as=Table`` with plain JSON after it. Every route reads its body
with :func:`body` and picks its answer with :func:`negotiate` (or :func:`json`), so all
of them agree.

The dev cluster answers in JSON (and the OpenAPI v2 document in gnostic's protobuf,
which kubectl's validation reads only so); it reads JSON, YAML and, for the built-in
kinds kubectl's typed clients send that way, protobuf (``protobuf``).
"""

from __future__ import annotations

import json as json_
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from avatar_devcluster.errors import bad_request, not_acceptable, unsupported_media_type
from avatar_devcluster.routes import protobuf

Obj = dict[str, Any]

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"


@dataclass(frozen=True)
class Offer:
    """One way a route can answer: the Content-Type it sends, the media types an Accept
    clause may name to get it, and the ``as=`` transform a clause must ask for (Table)."""

    content_type: str
    media_types: tuple[str, ...]
    transform: str = ""
    transform_versions: tuple[str, ...] = ()


#: An object, a list, a Status or a discovery document, as JSON.
OBJECT = Offer(JSON, (JSON,))
#: ``kubectl get``'s columns: ``application/json;as=Table;v=v1;g=meta.k8s.io``.
TABLE = Offer(JSON, (JSON,), transform="Table", transform_versions=("v1",))
#: The OpenAPI v2 document as gnostic's protobuf; kube-openapi takes both names for it.
OPENAPI_V2_PROTOBUF = Offer(
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
    (
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    ),
)


@dataclass(frozen=True)
class _Clause:
    media_type: str  # type/subtype, either part possibly "*"
    quality: float
    params: dict[str, str]

    def matches(self, offer: Offer) -> bool:
        kind, _, sub = self.media_type.partition("/")
        named = self.media_type in offer.media_types or (
            kind in ("*", offer.media_types[0].partition("/")[0]) and sub == "*"
        )
        if not named:
            return False
        transform = self.params.get("as", "")
        if not offer.transform:
            # PartialObjectMetadata: the whole object has the metadata kubectl reads.
            return transform in ("", "PartialObjectMetadata", "PartialObjectMetadataList")
        return (
            transform == offer.transform
            and self.params.get("g") == "meta.k8s.io"
            and self.params.get("v") in offer.transform_versions
        )


def _clauses(accept: str) -> list[_Clause]:
    """The Accept header's clauses, the client's favourite first (by quality, then the
    more specific before a wildcard, then in the order written)."""
    clauses = []
    for part in (accept or "*/*").split(","):
        media_type, *raw_params = (piece.strip() for piece in part.split(";"))
        if not media_type:
            continue
        params = dict(p.partition("=")[::2] for p in raw_params if p)
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            clauses.append(_Clause(media_type.lower(), quality, params))
    return sorted(
        clauses,
        key=lambda c: (-c.quality, c.media_type.startswith("*"), c.media_type.endswith("/*")),
    )


def negotiate(request: web.Request, *offers: Offer) -> Offer:
    """The first of ``offers`` the client's Accept header takes, or 406."""
    for clause in _clauses(request.headers.get("Accept", "")):
        for offer in offers:
            if clause.matches(offer):
                return offer
    raise not_acceptable(dict.fromkeys(o.content_type for o in offers))


def json(request: web.Request, document: Any, *, status: int = 200) -> web.Response:
    """A JSON answer, for a client whose Accept header takes JSON (else 406)."""
    negotiate(request, OBJECT)
    return web.json_response(document, status=status)


def _decoders(protobuf_too: bool) -> tuple[str, ...]:
    return (JSON, YAML, PROTOBUF) if protobuf_too else (JSON, YAML)


async def body(request: web.Request, *, protobuf_too: bool) -> Obj:
    """The request's body as an object, by its Content-Type (none: JSON).

    ``protobuf_too``: the resource is a built-in kind, which kube-apiserver also reads
    as protobuf (custom resources are JSON or YAML only). Any other media type, or a
    protobuf body ``protobuf`` cannot read whole, is 415 in kube-apiserver's words."""
    header = request.headers.get("Content-Type", "")
    media_type = header.split(";", 1)[0].strip().lower() or JSON
    accepted = _decoders(protobuf_too)
    if media_type not in accepted:
        raise unsupported_media_type(accepted)
    raw = await request.read()
    found: Any
    if media_type == PROTOBUF:
        try:
            found = protobuf.decode_object(raw)
        except protobuf.UnreadableError as exc:
            raise unsupported_media_type(_decoders(False), why=str(exc)) from None
    elif media_type == YAML:
        try:
            found = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise bad_request(f"the body is not YAML: {exc}") from None
    else:
        try:
            found = json_.loads(raw)
        except (json_.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise bad_request("the body must be an object")
    return found
