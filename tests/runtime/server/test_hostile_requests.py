"""A runtime pod's routes under hostile input: never a 5xx, always a typed refusal.

One real pod (the embedded engines, loaded and warmed up once for the module) behind
its real FastAPI app, called in-process through Starlette's TestClient: the property
tests send hundreds of requests each, which a process over loopback would make slow.
No traffic leaves the machine: DNS is refused for the module, so a job that is
admitted fails at its first fetch, in milliseconds, and frees the slot.

Every answer must be below 500; every 4xx must be an ``ErrorBody`` whose code is an
``ErrorCode`` the route can give, the same code each time the request is repeated.
The example tests pin the answer to each case of the robustness report (a surrogate,
a NUL, IPv6 junk, every spelling of the metadata server's address).
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from avatar_runtime.api.errors import ErrorCode
from avatar_runtime.api.schemas import Capacity, ErrorBody, JobStatus
from avatar_runtime.server.app import create_app
from avatar_runtime.service.pod import RuntimePod
from avatar_runtime.settings import FetchSettings, RuntimeSettings, ServerSettings, SlotSettings
from tests.runtime.server import hostile_inputs as hostile
from tests.runtime.server.hostile_inputs import OUT

TOKEN = "hostile-requests-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# What each route may answer a refusal with: status -> codes.
CLIENT_ERRORS = {
    400: {"InvalidRequest"},
    401: {"Unauthorized"},
    408: {"InvalidRequest"},
    413: {"RequestTooLarge"},
}
SUBMIT_REFUSALS = {
    **CLIENT_ERRORS,
    400: {
        "InvalidRequest",
        "InvalidOption",
        "UrlInvalid",
        "UrlSchemeNotAllowed",
        "UrlTargetForbidden",
        "TextInvalid",
        "VoiceUnknown",
        "EngineUnavailable",
    },
    409: {"JobConflict"},
    429: {"PodFull"},
}
# A 404 is JobNotFound, or InvalidRequest where an id with a "/" leaves the route (405
# where what is left is /v1/jobs, a route for POST only).
JOB_REFUSALS = {
    **CLIENT_ERRORS,
    404: {"JobNotFound", "InvalidRequest"},
    405: {"InvalidRequest"},
    429: {"TooManyLongPolls"},
}
PROPERTY = settings(
    max_examples=200,
    deadline=None,  # 2 shared cores: time is bounded by the example counts instead
    database=None,  # no .hypothesis/ in the checkout; a failure prints its example
    suppress_health_check=[HealthCheck.too_slow],
)


class Answer(Protocol):
    """What the tests read of a response (the test client's is httpx's, or httpx2's)."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


@dataclass(frozen=True)
class Pod:
    client: TestClient
    out: Path

    def submit(self, body: Any, *, raw: bytes | None = None) -> Answer:
        """POST ``body`` as JSON escaped to ASCII (surrogates as ``\\ud800``, as JSON allows)."""
        content = raw if raw is not None else json.dumps(body).replace(OUT, str(self.out))
        headers = {**AUTH, "Content-Type": "application/json"}
        return self.client.post("/v1/jobs", content=content, headers=headers)

    def job(self, method: str, job_id: str, **params: str) -> Answer:
        """``method`` on ``/v1/jobs/{job_id}``, the id one path segment however odd it is.

        The app sees the path uvicorn would give it for ``quote(job_id)``: the test client
        percent-decodes a path twice (httpx's URL, then its own ``unquote``), so the id
        is quoted twice here; dots are quoted too, or ``..`` would be a dot segment.
        """
        once = urllib.parse.quote(job_id, safe="", errors="surrogatepass").replace(".", "%2E")
        segment = urllib.parse.quote(once, safe="")
        return self.client.request(method, f"/v1/jobs/{segment}", params=params, headers=AUTH)


def _no_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
    raise socket.gaierror(socket.EAI_NONAME, f"no DNS in these tests ({host!r})")


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "work").mkdir()
    out = root / "out"
    out.mkdir()
    runtime_settings = RuntimeSettings(
        fetch=FetchSettings(allowed_schemes=frozenset({"file", "https"})),
        server=ServerSettings(
            token=TOKEN,
            local_output_root=out,
            output_schemes=frozenset(),  # gs:// outputs refused: no GCS is reached either
            queue_limit=2,
            grace_seconds=0,
        ),
        slots=SlotSettings(count=1),
        work_dir=root / "work",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", _no_dns)
        runtime = RuntimePod(runtime_settings)
        runtime.load()
        assert runtime.failed is None, runtime.failed
        assert runtime.accepting
        try:
            with TestClient(create_app(runtime, load=False), base_url="http://pod") as client:
                yield Pod(client=client, out=out)
        finally:
            runtime.drain()


def typed_error(answer: Answer, refusals: dict[int, set[str]]) -> dict[str, Any] | None:
    """The answer's error if it is a refusal; fails on a 5xx or an untyped 4xx."""
    assert answer.status_code < 500, f"{answer.status_code}: {answer.text}"
    if answer.status_code < 400:
        return None
    body = answer.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    # Checked before ErrorBody reads it: that model turns codes it does not know into
    # InternalError, which would hide a code missing from ErrorCode.
    assert error["code"] in refusals.get(answer.status_code, set()), (answer.status_code, error)
    assert error["code"] in {code.value for code in ErrorCode}
    ErrorBody.model_validate(body)
    return error


def assert_stable(first: Answer, again: Answer) -> None:
    """A refusal is a property of the request: repeating it gets the same answer."""

    def seen(answer: Answer) -> tuple[int, str, str | None]:
        error = answer.json()["error"]
        return answer.status_code, error["code"], error.get("field")

    assert seen(again) == seen(first)


# -- properties ---------------------------------------------------------------------------------


def _admitted_or_refused(pod: Pod, body: dict[str, Any]) -> None:
    answer = pod.submit(body)
    error = typed_error(answer, SUBMIT_REFUSALS)
    if error is None:
        assert answer.status_code in (200, 202), answer.text
        JobStatus.model_validate(answer.json())
        event(f"{answer.status_code}")
        return
    event(f"{answer.status_code} {error['code']} {error.get('field')}")
    if answer.status_code == 400:
        assert_stable(answer, pod.submit(body))


@PROPERTY
@given(body=hostile.WELL_FORMED_BODIES)
def test_a_well_formed_job_with_hostile_strings_is_admitted_or_refused_with_a_typed_code(
    pod: Pod, body: dict[str, Any]
) -> None:
    _admitted_or_refused(pod, body)


@PROPERTY
@given(body=hostile.ANY_BODIES)
def test_a_job_body_of_any_shape_is_admitted_or_refused_with_a_typed_code(
    pod: Pod, body: dict[str, Any]
) -> None:
    _admitted_or_refused(pod, body)


@settings(PROPERTY, max_examples=100)
@given(body=hostile.JSON)
def test_any_json_document_as_a_job_is_refused_with_a_typed_error(pod: Pod, body: Any) -> None:
    error = typed_error(pod.submit(body), SUBMIT_REFUSALS)
    assert error is not None
    assert error["code"] == "InvalidRequest"


@settings(PROPERTY, max_examples=100)
@given(raw=st.binary(max_size=300))
def test_bytes_that_are_no_json_are_refused_with_a_typed_error(pod: Pod, raw: bytes) -> None:
    error = typed_error(pod.submit(None, raw=raw), SUBMIT_REFUSALS)
    assert error is not None


@PROPERTY
@given(
    method=st.sampled_from(["GET", "DELETE"]),
    job_id=hostile.odd_text(min_size=1),
    wait=st.one_of(
        st.none(),
        st.floats().map(str),
        st.integers().map(str),
        st.sampled_from(["30", "30.0000001", "-1", "nan", "inf", "1e400", "0x10", "", " 1"]),
        st.text(max_size=10),
    ),
)
def test_reading_or_cancelling_any_id_is_answered_with_a_typed_error(
    pod: Pod, method: str, job_id: str, wait: str | None
) -> None:
    params = {"wait": wait} if wait is not None and method == "GET" else {}
    answer = pod.job(method, job_id, **params)
    if typed_error(answer, JOB_REFUSALS) is None:
        JobStatus.model_validate(answer.json())  # an id the body property happened to submit
    elif answer.status_code in (400, 404, 405):
        assert_stable(answer, pod.job(method, job_id, **params))


@settings(PROPERTY, max_examples=100)
@given(
    path=st.sampled_from(["/v1/capacity", "/healthz", "/readyz", "/metrics"]),
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=3),
    token=st.one_of(
        st.none(),
        st.just(TOKEN),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")),
    ),
)
def test_capacity_and_probes_answer_whatever_the_query_and_token(
    pod: Pod, path: str, query: dict[str, str], token: str | None
) -> None:
    headers = {b"Authorization": f"Bearer {token}".encode("latin-1")} if token is not None else {}
    answer = pod.client.get(path, params=query, headers=headers)
    if typed_error(answer, CLIENT_ERRORS) is not None:
        assert (path, answer.status_code) == ("/v1/capacity", 401)  # probes need no token
        return
    assert answer.status_code == 200
    if path == "/v1/capacity":
        assert Capacity.model_validate(answer.json()).accepting


# -- the cases of the robustness report, one by one -----------------------------------------------


def _valid(job_id: str) -> dict[str, Any]:
    return {
        "id": job_id,
        "inputs": {"portrait": "https://example.com/p.png", "text": "Hello there."},
        "output": f"{OUT}/{job_id}/",
    }


METADATA_SPELLINGS = [
    "169.254.169.254",
    "0251.0376.0251.0376",
    "2852039166",
    "0xa9fea9fe",
    "169.254.43518",
    "169.254.169.254.",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
]

FORBIDDEN = "UrlTargetForbidden"
INVALID = "InvalidRequest"
CASES = [
    # (id, where, value, code, field)
    ("surrogate-text", "text", "Hello \ud800 there", "TextInvalid", "inputs.text"),
    ("low-surrogate-text", "text", "\udc00", "TextInvalid", "inputs.text"),
    ("non-character-text", "text", "Hello \uffff", "TextInvalid", "inputs.text"),
    ("nul-output", "output", "gs://bucket/x\x00/", "UrlInvalid", "output"),
    ("nul-local-output", "output", f"{OUT}/a\x00b/", "UrlInvalid", "output"),
    ("pct00-file-output", "output", f"file://{OUT}/a%00b/", "UrlInvalid", "output"),
    ("pct00-file-portrait", "portrait", "file:///tmp/a%00b.png", "UrlInvalid", "inputs.portrait"),
    ("unclosed-v6-portrait", "portrait", "https://[::1/p.png", "UrlInvalid", "inputs.portrait"),
    ("junk-v6-portrait", "portrait", "https://[zz]/p.png", "UrlInvalid", "inputs.portrait"),
    ("unclosed-v6-voice", "voice", "https://[::1/v.wav", "UrlInvalid", "inputs.voice"),
    ("junk-v6-voice", "voice", "https://[zz]/v.wav", "UrlInvalid", "inputs.voice"),
    ("unclosed-v6-audio", "audio", "https://[::1/a.wav", "UrlInvalid", "inputs.audio"),
    ("unclosed-v6-output", "output", "https://[::1/x/", "UrlInvalid", "output"),
    ("unclosed-bucket-output", "output", "gs://[bucket/x/", "UrlInvalid", "output"),
    ("bracket-in-host", "portrait", "https://exa[mple.com/p.png", "UrlInvalid", "inputs.portrait"),
    ("junk-after-v6", "portrait", "https://[::1]junk/p.png", "UrlInvalid", "inputs.portrait"),
    ("junk-before-v6", "portrait", "https://junk[::1]/p.png", "UrlInvalid", "inputs.portrait"),
    (
        "port-out-of-range",
        "portrait",
        "https://example.com:99999/",
        "UrlInvalid",
        "inputs.portrait",
    ),
    # A surrogate in a field with a length limit never reaches admission: pydantic refuses it.
    ("surrogate-in-url", "portrait", "https://example.com/\ud800", INVALID, "inputs.portrait"),
    ("surrogate-in-output", "output", "gs://bucket/\udfff/", INVALID, "output"),
    ("newline-in-url", "voice", "https://example.com/v.wav\n", "UrlInvalid", "inputs.voice"),
    ("nul-voice-name", "voice", "Claribel\x00Dervla", "VoiceUnknown", "inputs.voice"),
    ("surrogate-voice-name", "voice", "Ana \ud800", INVALID, "inputs.voice"),
    ("surrogate-language", "language", "en\ud800", "InvalidRequest", "inputs.language"),
    ("nul-language", "language", "en\x00", "InvalidRequest", "inputs.language"),
    *[
        (f"metadata-{host}", "portrait", f"https://{host}/v1/", FORBIDDEN, "inputs.portrait")
        for host in METADATA_SPELLINGS
    ],
    ("localhost-dot", "portrait", "https://localhost./p.png", FORBIDDEN, "inputs.portrait"),
    ("loopback-v6", "portrait", "https://[::1]/p.png", FORBIDDEN, "inputs.portrait"),
]


@pytest.mark.parametrize(
    ("number", "where", "value", "code", "field"),
    [pytest.param(number, *case[1:], id=case[0]) for number, case in enumerate(CASES)],
)
def test_each_reported_input_is_refused_with_its_code_and_field(
    pod: Pod, number: int, where: str, value: str, code: str, field: str
) -> None:
    body = _valid(f"reported-{number}")
    if where == "output":
        body["output"] = value
    elif where == "audio":
        body["inputs"] = {"portrait": "https://example.com/p.png", "audio": value}
    else:
        body["inputs"][where] = value
    answer = pod.submit(body)
    assert answer.status_code == 400, answer.text
    error = typed_error(answer, SUBMIT_REFUSALS)
    assert error is not None
    assert (error["code"], error["field"], error["retriable"]) == (code, field, False)
    assert pod.job("GET", body["id"]).status_code == 404  # nothing was admitted


def test_a_refusal_quotes_the_bad_character_escaped_not_raw(pod: Pod) -> None:
    body = _valid("escaped")
    body["output"] = "gs://bucket/x\x00\x1b/"
    message = pod.submit(body).json()["error"]["message"]
    assert "gs://bucket/x\\x00\\x1b/" in message
    assert "U+0000 (a control character) at character 14" in message


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"id": "\xff\xfe"}', id="not-utf-8"),
        pytest.param(b'{"id": "a", "options": {"fps": ' + b"9" * 5000 + b"}}", id="5000-digits"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000-deep"),
        pytest.param(b'{"id": "a", "id": "b"', id="truncated"),
        pytest.param(b"", id="empty"),
    ],
)
def test_bodies_json_cannot_parse_get_a_typed_refusal(pod: Pod, raw: bytes) -> None:
    error = typed_error(pod.submit(None, raw=raw), SUBMIT_REFUSALS)
    assert error is not None
    assert error["code"] == "InvalidRequest"


@pytest.mark.parametrize(
    ("job_id", "status"),
    [
        ("a/b", 404),
        ("/", 405),  # /v1/jobs// is /v1/jobs to the router: POST only
        (".", 404),
        ("..", 404),
        ("%00", 404),
        ("\x00", 404),
        ("\ud800", 404),
        (" ", 404),
        ("x" * 5000, 404),
    ],
)
def test_odd_ids_in_the_path_are_typed_refusals(pod: Pod, job_id: str, status: int) -> None:
    for method in ("GET", "DELETE"):
        answer = pod.job(method, job_id)
        assert answer.status_code == status, answer.text
        assert typed_error(answer, JOB_REFUSALS) is not None
