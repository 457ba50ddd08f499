"""The string ``format`` checks of kube-openapi (``date-time``, ``uri``, ``ipv4``, ...).

One checker per format name, as lenient as kube-openapi's own (``uri`` accepts what Go's
url.Parse does, ``password`` anything); a format not listed is not checked. Validation
(step 3) reports a string that fails its format as a type error.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import re
import urllib.parse
from collections.abc import Callable


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def _is_date_time(text: str) -> bool:
    match = _DATE_TIME.fullmatch(text)
    if not match or not _is_date(match.group(1)):
        return False
    return int(match.group(2)) < 24 and int(match.group(3)) < 60 and int(match.group(4) or 0) < 61


def _is_duration(text: str) -> bool:
    unit = r"(?:ns|us|µs|μs|ms|s|m|h|d|w)"
    return bool(re.fullmatch(rf"[-+]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)\s*{unit}\s*)+)", text.strip()))


def _is_uri(text: str) -> bool:
    """Lenient, like Go's url.Parse: no control characters, parseable."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return False
    try:
        urllib.parse.urlsplit(text)
    except ValueError:
        return False
    return True


def _is_ip(version: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False

    return check


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _matches(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda text: compiled.fullmatch(text) is not None


_HOST_LABEL = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?{v}[0-9a-fA-F]{3}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
CHECKS: dict[str, Callable[[str], bool]] = {
    "date": _is_date,
    "date-time": _is_date_time,
    "datetime": _is_date_time,
    "duration": _is_duration,
    "uri": _is_uri,
    "email": _matches(r"[^@\s]+@[^@\s]+"),
    "hostname": _matches(rf"(?=.{{1,253}}\.?$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?"),
    "ipv4": _is_ip(4),
    "ipv6": _is_ip(6),
    "cidr": _is_cidr,
    "mac": _matches(r"(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}"),
    "uuid": _matches(_UUID.replace("{v}", "[0-9a-fA-F]")),
    "uuid3": _matches(_UUID.replace("{v}", "3")),
    "uuid4": _matches(_UUID.replace("{v}", "4")),
    "uuid5": _matches(_UUID.replace("{v}", "5")),
    "byte": _is_base64,
    "password": lambda text: True,
    "hexcolor": _matches(r"#(?:[0-9a-fA-F]{3}){1,2}"),
    "rgbcolor": _matches(r"rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)"),
}
