"""The runtime pod's pure parts: settings, the token, and admission checks on URLs.

No model is loaded: ``RuntimePod`` loads only in ``load()``, which no test calls.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobSpec
from avatar_runtime.inputs.urls import precheck
from avatar_runtime.service.pod import RuntimePod, read_token, server_settings
from avatar_runtime.settings import FetchSettings, RuntimeSettings, ServerSettings


def _pod(**server: Any) -> RuntimePod:
    return RuntimePod(RuntimeSettings(server=ServerSettings(**server)))


def _spec(portrait: str = "https://example.com/p.png", **extra: Any) -> JobSpec:
    fields: dict[str, Any] = {"text": "hi", "output": "gs://b/x/", **extra}
    if "audio" in extra:
        fields.pop("text")
    return JobSpec(portrait=portrait, **fields)


def _refused(call: Any, *args: Any) -> JobError:
    with pytest.raises(JobError) as caught:
        call(*args)
    return caught.value


# -- settings and token ----------------------------------------------------------------


def test_a_pod_does_not_read_local_files_by_default() -> None:
    """A request must not be able to make the pod read its own file system."""
    schemes = server_settings(RuntimeSettings()).fetch.allowed_schemes
    assert "file" not in schemes
    assert {"gs", "https"} <= schemes


def test_schemes_the_operator_set_explicitly_are_kept() -> None:
    explicit = RuntimeSettings(fetch=FetchSettings(allowed_schemes=frozenset({"file", "https"})))
    assert server_settings(explicit).fetch.allowed_schemes == {"file", "https"}


def test_token_from_settings_and_none_when_unset() -> None:
    assert read_token(RuntimeSettings()) is None
    assert read_token(RuntimeSettings(server=ServerSettings(token="s3cret"))) == "s3cret"


def test_token_file_wins_and_is_stripped(tmp_path: Path) -> None:
    """A mounted Secret usually ends in a newline, which is not part of the token."""
    path = tmp_path / "token"
    path.write_text("from-file\n")
    settings = RuntimeSettings(server=ServerSettings(token="inline", token_file=path))
    assert read_token(settings) == "from-file"


@pytest.mark.parametrize("content", ["", " \n"])
def test_an_empty_token_file_is_an_error(tmp_path: Path, content: str) -> None:
    """An empty Secret must not silently switch authentication off."""
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(ValueError, match="empty"):
        read_token(RuntimeSettings(server=ServerSettings(token_file=path)))


def test_capacity_before_loading_refuses_work() -> None:
    capacity = _pod().capacity()
    assert not capacity.accepting
    assert not capacity.draining
    assert capacity.slots_total == 1  # no GPU here
    assert (capacity.slots_busy, capacity.queue_length) == (0, 0)


# -- outputs ---------------------------------------------------------------------------


def test_gs_outputs_are_allowed_by_default() -> None:
    _pod().check_output("gs://bucket/videos/a/")


def test_other_output_schemes_are_refused() -> None:
    error = _refused(_pod().check_output, "memory://x/")
    assert (error.code, error.field) == (ErrorCode.URL_SCHEME_NOT_ALLOWED, "output")


def test_local_outputs_are_refused_without_a_root(tmp_path: Path) -> None:
    error = _refused(_pod().check_output, str(tmp_path / "out"))
    assert error.code is ErrorCode.URL_SCHEME_NOT_ALLOWED


def test_local_outputs_inside_the_root_are_allowed(tmp_path: Path) -> None:
    pod = _pod(local_output_root=tmp_path)
    pod.check_output(str(tmp_path / "job-a" / "talk.mp4"))
    pod.check_output((tmp_path / "job-b").as_uri())


@pytest.mark.parametrize("escape", ["../etc", "../../etc/cron.d/x", "a/../../etc"])
def test_local_outputs_outside_the_root_are_forbidden(tmp_path: Path, escape: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    pod = _pod(local_output_root=root)
    for output in (f"{root}/{escape}", f"file://{root}/{escape}"):
        error = _refused(pod.check_output, output)
        assert (error.code, error.field) == (ErrorCode.URL_TARGET_FORBIDDEN, "output")


def test_absolute_paths_elsewhere_are_forbidden(tmp_path: Path) -> None:
    pod = _pod(local_output_root=tmp_path)
    for output in ("/etc/x", "file:///etc/x"):
        assert _refused(pod.check_output, output).code is ErrorCode.URL_TARGET_FORBIDDEN


def test_a_symlink_out_of_the_root_is_forbidden(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    error = _refused(_pod(local_output_root=root).check_output, str(root / "link" / "x"))
    assert error.code is ErrorCode.URL_TARGET_FORBIDDEN


def test_a_percent_encoded_escape_from_the_root_is_forbidden(tmp_path: Path) -> None:
    """Storage writes to url2pathname(path), so %2E%2E is '..' by the time it writes."""
    root = tmp_path / "root"
    root.mkdir()
    error = _refused(
        _pod(local_output_root=root).check_output, f"file://{root}/%2E%2E/%2E%2E/etc/x/"
    )
    assert error.code is ErrorCode.URL_TARGET_FORBIDDEN


# -- inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "portrait",
    [
        "https://169.254.169.254/x.png",
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://[::1]/x",
        "https://10.1.2.3/x",
    ],
)
def test_inputs_at_internal_addresses_are_refused(portrait: str) -> None:
    """The metadata server and cluster services must be unreachable through a job."""
    error = _refused(_pod().check_request, _spec(portrait))
    assert (error.code, error.field) == (ErrorCode.URL_TARGET_FORBIDDEN, "inputs.portrait")


@pytest.mark.parametrize("portrait", ["ftp://x/y", "file:///etc/passwd", "/etc/passwd"])
def test_inputs_with_schemes_a_pod_does_not_fetch_are_refused(portrait: str) -> None:
    error = _refused(_pod().check_request, _spec(portrait))
    assert (error.code, error.field) == (ErrorCode.URL_SCHEME_NOT_ALLOWED, "inputs.portrait")


def test_audio_and_voice_urls_are_checked_under_their_own_field() -> None:
    pod = _pod()
    error = _refused(pod.check_request, _spec(audio="https://10.0.0.1/a.wav"))
    assert error.field == "inputs.audio"
    error = _refused(pod.check_request, _spec(voice="https://10.0.0.1/v.wav"))
    assert error.field == "inputs.voice"
    pod.check_request(_spec(voice="en_US-amy"))  # a named voice is no URL


def test_a_bad_output_fails_the_request_check() -> None:
    error = _refused(_pod().check_request, _spec(output="memory://x/"))
    assert error.field == "output"


def test_public_host_names_pass_without_a_dns_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admission must stay fast and never hang on DNS; names are checked when fetched."""

    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"DNS lookup during admission: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    _pod().check_request(_spec("https://example.com/p.png", voice="gs://b/voice.wav"))


def test_precheck_allows_private_addresses_when_configured() -> None:
    """Local development points inputs at 127.0.0.1 on purpose."""
    url = "https://127.0.0.1/x"
    with pytest.raises(JobError):
        precheck(url, settings=FetchSettings(), what="portrait")
    precheck(url, settings=FetchSettings(allow_private_networks=True), what="portrait")
