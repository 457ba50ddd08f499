"""The API server's wording of a field error, and the error admission raises with it.

apimachinery's ``field.Error`` prints a cause as ``<field>: <label>: <value>: <detail>``,
the bad value in Go's ``%v`` or ``%q``. Clients, tests and people reading what
``kubectl apply`` printed match on that text, so every step words its causes here:
:func:`cause`, with the Go formatting of values it needs (:func:`go_quote`,
:func:`go_float`, :func:`go_json`). :class:`AdmissionError` gathers the causes into the
422 Invalid ``Status``.
"""

from __future__ import annotations

import decimal
import json
import math
from dataclasses import dataclass
from typing import Any

_LABELS = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "InternalError": "Internal error",
    "FieldValueTypeInvalid": "Invalid value",
}

# Error types whose body never shows the bad value (apimachinery field.Error.ErrorBody).
_VALUELESS = frozenset(
    {"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError"}
)

_OMIT = object()


@dataclass(frozen=True)
class Cause:
    """One problem, as a cause in the API server's ``Status.details.causes``.

    ``message`` is the error body without the field, as the API server puts it there
    (``Invalid value: 500: spec.fps in body should be less than or equal to 60``);
    ``str(cause)`` is the ``field: message`` form used in the Status message.
    """

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class AdmissionError(Exception):
    """422 Invalid: causes as the API server reports them."""

    def __init__(self, *, kind: str, name: str, causes: list[Cause], group: str = "") -> None:
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = list(causes)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """``<Kind>.<group> "<name>" is invalid: <causes>``, bracketed when several."""
        qualified = f"{self.kind}.{self.group}" if self.group else self.kind
        head = f"{qualified} {go_quote(self.name)} is invalid"
        # Like field.ErrorList.ToAggregate: identical errors are reported once.
        unique = list(dict.fromkeys(str(cause) for cause in self.causes))
        if not unique:
            return head
        if len(unique) == 1:
            return f"{head}: {unique[0]}"
        return f"{head}: [{', '.join(unique)}]"

    def status(self) -> dict[str, Any]:
        """The ``Status`` object the API server answers with (empty fields omitted)."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        details["kind"] = self.kind
        details["causes"] = [
            {"reason": cause.reason, "message": cause.message, "field": cause.field}
            for cause in self.causes
        ]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": "Invalid",
            "details": details,
            "code": 422,
        }


def cause(reason: str, path: str, value: Any = _OMIT, detail: str = "") -> Cause:
    """A field error with apimachinery's ErrorBody wording (``<nil>`` for no field)."""
    body = _LABELS[reason]
    if reason not in _VALUELESS and value is not _OMIT:
        body = f"{body}: {_go_value(value)}"
    if detail:
        body = f"{body}: {detail}"
    return Cause(field=path or "<nil>", reason=reason, message=body)


def _go_value(value: Any) -> str:
    """A bad value as field.Error prints it: %v for scalars, %q for strings."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return _go_sharp(value)


def _go_sharp(value: Any) -> str:
    """Go's %#v of a decoded JSON value (maps sorted, as fmt prints them)."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, dict):
        inner = ", ".join(f"{go_quote(str(k))}:{_go_sharp(value[k])}" for k in sorted(value))
        return f"map[string]interface {{}}{{{inner}}}"
    if isinstance(value, list):
        return f"[]interface {{}}{{{', '.join(_go_sharp(item) for item in value)}}}"
    return _go_value(value)


def go_float(value: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form outside [1e-4, 1e6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(str(d) for d in digit_tuple)
    magnitude = len(digits) + exponent - 1
    prefix = "-" if sign else ""
    if magnitude < -4 or magnitude >= 6:
        mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if magnitude >= 0 else '-'}{abs(magnitude):02d}"
    if magnitude < 0:
        return f"{prefix}0.{'0' * (-magnitude - 1)}{digits}"
    whole = digits[: magnitude + 1].ljust(magnitude + 1, "0")
    fraction = digits[magnitude + 1 :]
    return f"{prefix}{whole}{'.' + fraction if fraction else ''}"


_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(text: str) -> str:
    """strconv.Quote: Go's %q of a string."""
    parts = []
    for ch in text:
        if ch in _GO_ESCAPES:
            parts.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            parts.append(ch)
        elif ord(ch) < 0x80:
            parts.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(parts) + '"'


def go_json(value: Any) -> str:
    """json.Marshal of an enum value (integral floats print without ``.0``)."""

    def plain(item: Any) -> Any:
        if isinstance(item, float) and item.is_integer() and abs(item) < 1e21:
            return int(item)
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        return item

    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
