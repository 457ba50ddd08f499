"""What a hostile client sends, as hypothesis strategies: odd text, broken URLs, any JSON.

Strings mix in what has broken servers before: lone surrogates (JSON's ``"\\ud800"``),
non-characters, control characters, URL syntax out of place (brackets, ``@``, ``%00``),
IPv6 junk, and every spelling of the metadata server's address. Job bodies come two
ways: well formed with hostile strings (what reaches admission) and of any shape.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

OUT = "<out>"
"""Stands for the pod's output root in strategies (a tmp path, known only to the test)."""

_ODD_PIECES = st.one_of(
    st.characters(),
    st.characters(categories=["Cc"]),  # NUL, newline, ESC, DEL, C1
    st.characters(categories=["Cs"]),  # lone surrogates
    st.sampled_from(["\ufffe", "\uffff", "\ufdd0", "\U0010ffff", "\u200b", "\u202e", "\ufeff"]),
    st.sampled_from(["[", "]", "@", ":", "%", "/", "?", "#", "\\", " ", ".", "..", "~"]),
    st.sampled_from(["%00", "%0a", "%2e%2e", "%2F", "%ff", "%", "%zz", "[::1]", "::", "%25"]),
)


def odd_text(*, min_size: int = 0, max_size: int = 30) -> st.SearchStrategy[str]:
    """Text with surrogates, non-characters, control characters and URL syntax mixed in."""
    return st.lists(_ODD_PIECES, min_size=min_size, max_size=max_size).map("".join)


HOSTS = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "public.example",
            "bücher.example",
            "[2001:db8::1]",
            "[::1",
            "[zz]",
            "[::1]junk",
            "junk[::1]",
            "exa[mple.com",
            "exa]mple.com",
            "[v1.x]",
            "[::1]",
            "[fe80::1%25eth0]",
            "[::ffff:169.254.169.254]",
            "[64:ff9b::a9fe:a9fe]",
            "169.254.169.254",
            "169.254.169.254.",
            "0251.0376.0251.0376",
            "2852039166",
            "0xa9fea9fe",
            "169.254.43518",
            "localhost",
            "localhost.",
            "user:secret@example.com",
            "@example.com",
            "%31%32%37.0.0.1",
            "１６９.２５４.１６９.２５４",
            "a..b",
            "x" * 70 + ".com",
            "",
        ]
    ),
    odd_text(max_size=12),
)
PORTS = st.one_of(
    st.just(""),
    st.integers(min_value=-5, max_value=70_000).map(lambda port: f":{port}"),
    st.sampled_from([":", ":http", ": 80", ":+80", ":１", ":1:2", ":99999999999999999999"]),
)
PATHS = st.one_of(
    st.sampled_from(["/p.png", "/a%00b.png", "/%2E%2E/%2e%2e/etc/x", "/x?sig=a%2Fb#f", "", "/"]),
    odd_text(max_size=15).map(lambda tail: "/" + tail),
)
SCHEMES = st.sampled_from(["https", "http", "HTTPS", "gs", "file", "ftp", "s3", "data", "c", ""])
URLS = st.one_of(
    st.builds(lambda s, h, p, path: f"{s}://{h}{p}{path}", SCHEMES, HOSTS, PORTS, PATHS),
    st.builds(lambda path: f"file://{path}", PATHS),
    st.builds(lambda path: f"{OUT}{path}", PATHS),  # local paths, some inside the output root
    st.sampled_from(["file:///nonexistent/p.png", "https://example.com/p.png", f"{OUT}/job/"]),
    odd_text(max_size=40),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too (json.dumps writes NaN, Infinity)
    st.sampled_from([10**30, -(2**63), 2**64, 1e308, -0.0, 0.5]),
    odd_text(),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(odd_text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
IDS = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True), odd_text())


LANGUAGES = st.one_of(st.sampled_from(["en", "de-AT", "EN", "en_US", "x", "en-"]), odd_text())


def _well_formed_inputs(speech: str) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs of the right shape and types, every string hostile: admission's work."""
    return st.fixed_dictionaries(
        {"portrait": URLS, speech: odd_text(max_size=60) if speech == "text" else URLS},
        optional={"voice": st.one_of(URLS, odd_text(max_size=20)), "language": LANGUAGES},
    )


WELL_FORMED_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "resolution": st.sampled_from([64, 256, 2048]),
        "fps": st.integers(min_value=1, max_value=60),
        "captions": st.booleans(),
        "tts": st.sampled_from(["xtts", "piper", None]),
        "renderer": st.sampled_from(["ditto", "embedded", None]),
    },
)
WELL_FORMED_BODIES = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True),
        "inputs": st.one_of(_well_formed_inputs("text"), _well_formed_inputs("audio")),
        "output": URLS,
    },
    optional={"options": WELL_FORMED_OPTIONS},
)


def _any_inputs(speech: str) -> st.SearchStrategy[dict[str, Any]]:
    source = odd_text(max_size=60) if speech == "text" else URLS
    return st.fixed_dictionaries(
        {"portrait": st.one_of(URLS, JSON), speech: st.one_of(source, JSON)},
        optional={
            "voice": st.one_of(URLS, odd_text(max_size=20), JSON),
            "language": st.one_of(LANGUAGES, JSON),
            "text" if speech == "audio" else "audio": st.one_of(URLS, JSON),
            "surprise": JSON,
        },
    )


ANY_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "resolution": st.one_of(st.integers(), st.sampled_from([256, 511, 4096]), JSON),
        "fps": st.one_of(st.integers(), JSON),
        "captions": st.one_of(st.booleans(), JSON),
        "tts": st.one_of(st.sampled_from(["xtts", "piper", None, "XTTS"]), JSON),
        "renderer": st.one_of(st.sampled_from(["ditto", "embedded", None]), JSON),
    },
)
ANY_BODIES = st.fixed_dictionaries(
    {
        "id": st.one_of(IDS, JSON),
        "inputs": st.one_of(_any_inputs("text"), _any_inputs("audio"), JSON),
        "output": st.one_of(URLS, JSON),
    },
    optional={"options": st.one_of(ANY_OPTIONS, JSON), "extra": JSON},
)
