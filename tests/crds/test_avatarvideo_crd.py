"""The AvatarVideo CRD as a user meets it: the real kubectl against the dev cluster.

The dev cluster admits custom resources as kube-apiserver does (structural schema,
defaults, strict field validation, CEL rules), so what kubectl accepts, refuses and
prints here is what it does on GKE with the same crds/avatarvideos.avatar.dev.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from avatar_devcluster.admission import admit
from avatar_devcluster.kubectl import Kubectl
from tests.crds.conftest import CRD, EXAMPLES, avatar_video

ONE_OF = "give exactly one of text and audio"
PRINTABLE = "must not hold control characters (NUL, tab, newline, ...)"
IMMUTABLE = "spec is immutable: delete and re-create the AvatarVideo to change it"

# A valid spec that each refusal below spoils in one way.
VALID: dict[str, Any] = {
    "portrait": "gs://avatar-demo/portrait.png",
    "text": "Hello there!",
    "output": "gs://avatar-demo/videos/test/",
}

# What the operator writes, field for field (see avatar_operator.status).
FULL_STATUS: dict[str, Any] = {
    "phase": "Succeeded",
    "observedGeneration": 1,
    "conditions": [
        {
            "type": "Running",
            "status": "False",
            "reason": "Finished",
            "message": "Done.",
            "lastTransitionTime": "2025-01-02T03:04:05.678Z",
            "observedGeneration": 1,
        },
        {
            "type": "Complete",
            "status": "True",
            "reason": "Rendered",
            "message": "Rendered 6.5 s of video.",
            "lastTransitionTime": "2025-01-02T03:04:05.678Z",
            "observedGeneration": 1,
        },
    ],
    "stage": "done",
    "progress": 100,
    "queuePosition": 0,
    "attempts": 1,
    "platformRetries": 1,
    "gpuSeconds": 12.345,
    "runtimePod": "avatar-runtime-0",
    "startTime": "2025-01-02T03:03:58.001Z",
    "completionTime": "2025-01-02T03:04:05.678Z",
    "nextAttemptTime": "2025-01-02T03:05:00Z",
    "videoSeconds": 6.48,
    "realtimeFactor": 0.27,
    "wer": 0.0,
    "stageSeconds": {
        "fetch": 0.01,
        "tts": 0.4,
        "asr": 0.9,
        "render": 1.2,
        "encode": 0.3,
        "upload": 0.02,
    },
    "outputs": {
        kind: {
            "url": f"gs://avatar-demo/videos/hello/{file}",
            "sizeBytes": 12345,
            "sha256": "ab" * 32,
            "contentType": content_type,
            "durationSeconds": 6.48,
        }
        for kind, file, content_type in (
            ("video", "video.mp4", "video/mp4"),
            ("captions", "captions.vtt", "text/vtt"),
            ("thumbnail", "thumbnail.jpg", "image/jpeg"),
        )
    },
    "error": {
        "code": "OutputWriteFailed",
        "message": "the bucket said 503",
        "retriable": True,
        "field": "spec.output",
    },
    "message": "Rendered 6.5 s of video.",
}


def words(text: str) -> str:
    """``text`` with its line breaks and runs of spaces as single spaces (kubectl wraps)."""
    return " ".join(text.split())


def get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(kubectl("get", "avatarvideo", name, "-o", "json").stdout)
    return obj


def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return found


def test_hello_applies_and_reads_back_with_the_defaults(kubectl: Kubectl) -> None:
    applied = kubectl("apply", "-f", str(EXAMPLES / "hello.yaml"))
    assert applied.stdout.strip() == "avatarvideo.avatar.dev/hello created"
    obj = get(kubectl, "hello")
    assert obj["metadata"]["generation"] == 1
    spec = obj["spec"]
    assert spec["portrait"] == "gs://avatar-demo/portrait.png"
    assert spec["output"] == "gs://avatar-demo/videos/hello/"
    assert spec["text"].count(".") + spec["text"].count("!") == 2  # two friendly sentences
    assert "audio" not in spec
    assert spec["captions"] is True
    defaults = {k: spec[k] for k in ("language", "resolution", "fps", "pool", "maxRetries")}
    assert defaults == {
        "language": "en",
        "resolution": 512,
        "fps": 25,
        "pool": "default",
        "maxRetries": 3,
    }
    assert spec["priority"] == 0
    for optional in ("voice", "deadlineSeconds", "ttlSecondsAfterFinished"):
        assert optional not in spec  # no default: absent means "none"
    assert "unchanged" in kubectl("apply", "-f", str(EXAMPLES / "hello.yaml")).stdout


@pytest.mark.parametrize(
    "example",
    sorted(p.name for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("invalid-")),
)
def test_every_valid_example_applies(kubectl: Kubectl, example: str) -> None:
    assert "created" in kubectl("apply", "-f", str(EXAMPLES / example)).stdout


def test_the_example_with_text_and_audio_is_refused_with_the_rule_message(
    kubectl: Kubectl,
) -> None:
    refused = kubectl("apply", "-f", str(EXAMPLES / "invalid-text-and-audio.yaml"), check=False)
    assert refused.returncode != 0
    assert (
        'The AvatarVideo "text-and-audio" is invalid: spec: Invalid value: "object": '
        f"{ONE_OF}" in refused.stderr
    )
    assert kubectl("get", "avatarvideos", "-o", "name").stdout == ""


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in VALID.items() if k != key}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(_without("text"), f'spec: Invalid value: "object": {ONE_OF}', id="neither"),
        pytest.param(
            {**VALID, "resolution": 513},
            "spec.resolution: Invalid value: 513: "
            "spec.resolution in body should be a multiple of 2",
            id="odd-resolution",
        ),
        pytest.param(
            {**VALID, "resolution": 32},
            "spec.resolution in body should be greater than or equal to 64",
            id="tiny-resolution",
        ),
        pytest.param(
            {**VALID, "fps": 0},
            "spec.fps: Invalid value: 0: spec.fps in body should be greater than or equal to 1",
            id="fps-0",
        ),
        pytest.param(
            {**VALID, "priority": 1000},
            "spec.priority: Invalid value: 1000: "
            "spec.priority in body should be less than or equal to 100",
            id="priority-1000",
        ),
        pytest.param(
            {**VALID, "language": "English!"},
            'spec.language: Invalid value: "English!": spec.language in body should match',
            id="language-word",
        ),
        pytest.param(
            {**VALID, "portrait": "portrait.png"},
            'spec.portrait: Invalid value: "portrait.png": spec.portrait in body should match',
            id="portrait-without-scheme",
        ),
        pytest.param(
            {**VALID, "text": "a" * 5001},
            "spec.text: Too long: may not be longer than 5000",
            id="text-5001-chars",
        ),
        pytest.param({**VALID, "text": ""}, "spec.text in body should be at least 1", id="empty"),
        pytest.param(_without("output"), "spec.output: Required value", id="no-output"),
        pytest.param(
            {**VALID, "pool": "GPU_Pool"},
            'spec.pool: Invalid value: "GPU_Pool": spec.pool in body should match',
            id="pool-not-a-dns-label",
        ),
        pytest.param(
            {**VALID, "deadlineSeconds": 0},
            "spec.deadlineSeconds in body should be greater than or equal to 1",
            id="deadline-0",
        ),
        pytest.param(
            {**VALID, "maxRetries": 11},
            "spec.maxRetries in body should be less than or equal to 10",
            id="retries-11",
        ),
        pytest.param(
            {**VALID, "colour": "blue"},
            'strict decoding error: unknown field "spec.colour"',
            id="unknown-field",
        ),
        pytest.param(
            {**VALID, "portrait": "https://[::1/p.png"},
            'spec.portrait: Invalid value: "https://[::1/p.png": '
            "spec.portrait in body should match",
            id="portrait-unclosed-ipv6-bracket",
        ),
        pytest.param(
            {**VALID, "portrait": "https://[zz]/p.png"},
            'spec.portrait: Invalid value: "https://[zz]/p.png": '
            "spec.portrait in body should match",
            id="portrait-bracketed-junk",
        ),
        pytest.param(
            {**VALID, "output": "gs://[bucket/x/"},
            'spec.output: Invalid value: "gs://[bucket/x/": spec.output in body should match',
            id="output-unclosed-bracket",
        ),
        pytest.param(
            {**_without("text"), "audio": "https://exa[mple.com/a.wav"},
            "spec.audio in body should match",
            id="audio-bracket-in-host",
        ),
        pytest.param(
            {**VALID, "voice": "https://[::1]junk/v.wav"},
            "spec.voice in body should match",
            id="voice-junk-after-brackets",
        ),
        pytest.param(
            {**VALID, "voice": "voices/me.wav"},
            'spec.voice: Invalid value: "voices/me.wav": spec.voice in body should match',
            id="voice-path-without-scheme",
        ),
        pytest.param(
            {**VALID, "portrait": "https:///p.png"},
            "spec.portrait in body should match",
            id="portrait-without-host",
        ),
        pytest.param(
            {**VALID, "portrait": "gs://avatar-demo/p\x00.png"},
            f'spec.portrait: Invalid value: "string": {PRINTABLE}',
            id="portrait-nul",
        ),
        pytest.param(
            {**VALID, "output": "gs://avatar-demo/videos/x/\n"},
            f'spec.output: Invalid value: "string": {PRINTABLE}',
            id="output-trailing-newline",
        ),
        pytest.param(
            {**VALID, "voice": "Claribel\tDervla"},
            f'spec.voice: Invalid value: "string": {PRINTABLE}',
            id="voice-name-with-a-tab",
        ),
        pytest.param(
            {**_without("text"), "audio": "gs://avatar-demo/a\x85.wav"},
            f'spec.audio: Invalid value: "string": {PRINTABLE}',
            id="audio-c1-control",
        ),
    ],
)
def test_invalid_specs_are_refused(kubectl: Kubectl, spec: dict[str, Any], expected: str) -> None:
    refused = kubectl("apply", "-f", "-", stdin=avatar_video("bad", **spec), check=False)
    assert refused.returncode != 0
    assert expected in refused.stderr
    assert kubectl("get", "avatarvideos", "-o", "name").stdout == ""


@pytest.mark.parametrize(
    "urls",
    [
        pytest.param({"portrait": "https://example.com/people/ada.png?sig=a%2Fb&x=1"}, id="query"),
        pytest.param({"portrait": "http://127.0.0.1:8080/portrait.png"}, id="address-and-port"),
        pytest.param({"portrait": "https://[2001:db8::1]:8443/p.png"}, id="ipv6-in-brackets"),
        pytest.param({"portrait": "https://bücher.example/p.png"}, id="international-name"),
        pytest.param({"output": "gs://avatar-demo"}, id="bucket-only"),
        pytest.param({"output": "file:///var/avatar/out/"}, id="file-url"),
        pytest.param({"voice": "Claribel Dervla"}, id="named-voice"),
        pytest.param({"voice": "gs://avatar-demo/voices/my voice.wav"}, id="voice-sample"),
        pytest.param({"text": "Line one.\n\tLine two."}, id="text-keeps-its-newlines"),
    ],
)
def test_well_formed_urls_and_names_are_accepted(kubectl: Kubectl, urls: dict[str, str]) -> None:
    """The URL patterns refuse only what no runtime could parse, never a usable URL."""
    applied = kubectl("apply", "-f", "-", stdin=avatar_video("fine", **{**VALID, **urls}))
    assert applied.stdout.strip() == "avatarvideo.avatar.dev/fine created"
    spec = get(kubectl, "fine")["spec"]
    assert {key: spec[key] for key in urls} == urls


def test_the_spec_is_immutable_but_metadata_is_not(kubectl: Kubectl, tmp_path: Path) -> None:
    hello = EXAMPLES / "hello.yaml"
    kubectl("apply", "-f", str(hello))

    edited = tmp_path / "hello.yaml"
    edited.write_text(hello.read_text().replace("captions: true", "captions: false"))
    refused = kubectl("apply", "-f", str(edited), check=False)
    assert refused.returncode != 0
    assert f'The AvatarVideo "hello" is invalid: spec: Invalid value: "object": {IMMUTABLE}' in (
        refused.stderr
    )
    patched = kubectl(
        "patch", "av", "hello", "--type=merge", "-p", '{"spec":{"priority":5}}', check=False
    )
    assert patched.returncode != 0
    assert IMMUTABLE in patched.stderr

    # The same spec again is no change, even sent whole without the defaults.
    assert "replaced" in kubectl("replace", "-f", str(hello)).stdout
    # Labels and annotations are metadata: they change freely, the generation stays.
    kubectl("label", "avatarvideo", "hello", "team=comms")
    kubectl("annotate", "avatarvideo", "hello", "note=first")
    obj = get(kubectl, "hello")
    assert obj["metadata"]["labels"] == {"team": "comms"}
    assert obj["metadata"]["annotations"]["note"] == "first"
    assert obj["metadata"]["generation"] == 1
    assert obj["spec"]["captions"] is True
    assert kubectl("get", "av", "-l", "team=comms", "-o", "name").stdout.split() == [
        "avatarvideo.avatar.dev/hello"
    ]


def test_status_shows_in_the_printer_columns(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "hello.yaml"))
    status = {
        "phase": "Running",
        "stage": "render",
        "progress": 40,
        "runtimePod": "avatar-runtime-7f9c-0",
        "videoSeconds": 6.48,
        "attempts": 2,
    }
    kubectl(
        "patch",
        "avatarvideo",
        "hello",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    assert get(kubectl, "hello")["status"] == status

    header, row = kubectl("get", "avatarvideos").stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "POD", "VIDEO", "AGE"]
    assert row.split()[:5] == ["hello", "Running", "40", "avatar-runtime-7f9c-0", "6.48"]

    header, row = kubectl("get", "avatarvideos", "-o", "wide").stdout.splitlines()
    assert header.split() == [
        "NAME",
        "PHASE",
        "STAGE",
        "PROGRESS",
        "POD",
        "VIDEO",
        "ATTEMPTS",
        "AGE",
    ]
    assert row.split()[:7] == [
        "hello",
        "Running",
        "render",
        "40",
        "avatar-runtime-7f9c-0",
        "6.48",
        "2",
    ]


def test_the_main_resource_cannot_write_the_status(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "hello.yaml"))
    kubectl("patch", "av", "hello", "--type=merge", "-p", '{"status":{"phase":"Failed"}}')
    assert "status" not in get(kubectl, "hello")


def test_every_status_field_the_operator_writes_is_kept_and_valid() -> None:
    """Admission (pruning, then validation) leaves a full status exactly as written."""
    obj = {
        "apiVersion": "avatar.dev/v1alpha1",
        "kind": "AvatarVideo",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {**VALID},
        "status": FULL_STATUS,
    }
    stored = admit(obj, schema=schema(), old=None, kind="AvatarVideo", group="avatar.dev")
    assert stored["status"] == FULL_STATUS


def test_every_field_is_documented() -> None:
    undocumented: list[str] = []

    def visit(node: dict[str, Any], path: str) -> None:
        if path not in (".metadata",) and not node.get("description"):
            undocumented.append(path or "<root>")
        for name, child in (node.get("properties") or {}).items():
            visit(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            visit(node["items"], f"{path}[]")

    visit(schema(), "")
    assert undocumented == []


def test_an_invalid_status_is_refused(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "hello.yaml"))
    refused = kubectl(
        "patch",
        "avatarvideo",
        "hello",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Done","progress":101}}',
        check=False,
    )
    assert refused.returncode != 0
    assert 'status.phase: Unsupported value: "Done"' in refused.stderr
    assert "status.progress in body should be less than or equal to 100" in refused.stderr
    # An unknown status field is pruned, a null deletes, and the spec stays as it was.
    kubectl("patch", "avatarvideo", "hello", "--subresource=status", "--type=merge",
            "-p", '{"status":{"phase":"Queued","queuePosition":3,"bogus":1}}')  # fmt: skip
    kubectl("patch", "avatarvideo", "hello", "--subresource=status", "--type=merge",
            "-p", '{"status":{"queuePosition":null},"spec":{"fps":30}}')  # fmt: skip
    stored = json.loads(kubectl("get", "avatarvideo", "hello", "-o", "json").stdout)
    assert stored["status"] == {"phase": "Queued"}
    assert stored["spec"]["fps"] == 25


def test_short_name_and_category(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "hello.yaml"))
    for name in ("av", "avatarvideo", "avatarvideos.avatar.dev", "avatar", "all"):
        assert kubectl("get", name, "-o", "name").stdout.split() == [
            "avatarvideo.avatar.dev/hello"
        ], name
    resources = kubectl("api-resources", "--api-group=avatar.dev").stdout.splitlines()
    (videos,) = [line for line in resources if line.startswith("avatarvideos ")]
    assert videos.split() == [
        "avatarvideos",
        "av",
        "avatar.dev/v1alpha1",
        "true",
        "AvatarVideo",
    ]


def test_explain_prints_the_descriptions(kubectl: Kubectl) -> None:
    priority = words(kubectl("explain", "avatarvideo.spec.priority").stdout)
    assert "FIELD: priority <integer>" in priority
    assert "Queue priority, -100 to 100: higher goes first." in priority
    spec = words(kubectl("explain", "av.spec").stdout)
    assert "immutable" in spec
    assert "portrait <string> -required-" in spec
    progress = words(kubectl("explain", "avatarvideo.status.progress").stdout)
    assert "Percent of the current attempt done" in progress
