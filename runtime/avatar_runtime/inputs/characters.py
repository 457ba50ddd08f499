"""Code points that no input may hold, found before anything else touches the input.

JSON can carry strings Python cannot encode back (a lone UTF-16 surrogate such as
``"\\ud800"``) and strings every lower layer chokes on (a NUL byte in a path). One
such character in a request used to surface far from where it came in, as a
``UnicodeEncodeError`` while hashing the request or a ``ValueError`` from the file
system, which the server answered with a 500. So every field is checked here first,
and refused with the character and its position named.

Messages quote user input; ``printable`` escapes these characters in them, so the
error itself can always be encoded as JSON, logged and copied into a status.
"""

from __future__ import annotations

import unicodedata


def unusable(text: str, *, controls: bool) -> str | None:
    """The first code point of ``text`` that is no character, said for a user, or None.

    Lone surrogates and Unicode non-characters (U+FFFE, U+FDD0, ...) are never text;
    with ``controls`` control characters (C0, DEL, C1: NUL, newline, ESC, ...) are
    refused too, for URLs and names, where none belongs. Text to speak keeps its tabs
    and newlines (``speech.clean_text`` turns them into spaces).
    """
    for index, char in enumerate(text):
        kind = _kind(char, controls=controls)
        if kind is not None:
            return f"U+{ord(char):04X} ({kind}) at character {index + 1}"
    return None


def printable(text: str) -> str:
    """``text`` with every control character, surrogate and non-character escaped (``\\x00``)."""
    if all(_kind(char, controls=True) is None for char in text):
        return text
    return "".join(char if _kind(char, controls=True) is None else _escaped(char) for char in text)


def _kind(char: str, *, controls: bool) -> str | None:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return "a lone UTF-16 surrogate"
    if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
        return "a Unicode non-character"
    if controls and unicodedata.category(char) == "Cc":
        return "a control character"
    return None


def _escaped(char: str) -> str:
    return ascii(char)[1:-1]  # \x00, \ud800, \uffff, \U0010fffe
