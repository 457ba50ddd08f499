"""CRD admission: the devcluster must store and reject AvatarVideos exactly as GKE does.

kopf and kubectl only ever see what the API server returns, so these tests pin the
stored object (pruned, defaulted) and the 422 wording against kube-apiserver's, field
path by field path. They are pure: no server, no network.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from avatar_devcluster.admission import AdmissionError, Cause, admit

GROUP = "avatar.example.com"
KIND = "AvatarVideo"

# An AvatarVideo-like version schema, as it would sit under schema.openAPIV3Schema.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["portrait"],
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.text) != has(self.audio)",
                    "message": "exactly one of text or audio",
                },
                {"rule": "!has(self.text) || size(self.text) <= 5000"},
                {"rule": "self == oldSelf", "message": "spec is immutable"},
            ],
            "properties": {
                "portrait": {"type": "string", "pattern": "^(gs|https)://"},
                "text": {"type": "string"},
                "audio": {"type": "string"},
                "language": {"type": "string", "enum": ["en", "de"], "default": "en"},
                "resolution": {"type": "integer", "minimum": 128, "maximum": 2048, "default": 512},
                "fps": {"type": "integer", "default": 25, "maximum": 60},
                "priority": {"type": "integer", "default": 0},
                "captions": {"type": "boolean", "default": True},
                "output": {"type": "string"},
                "scenes": {
                    "type": "array",
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "pattern": "^[a-z]+$"},
                            "seconds": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                            "style": {"type": "string", "default": "plain"},
                        },
                    },
                },
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def video(**spec: Any) -> dict[str, Any]:
    """A valid AvatarVideo with ``spec`` fields overridden (None removes a field)."""
    body: dict[str, Any] = {"portrait": "gs://bucket/face.png", "text": "Hello there."}
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": KIND,
        "metadata": {"name": "x", "namespace": "default", "labels": {"team": "a"}},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def run(obj: dict[str, Any], *, old: dict[str, Any] | None = None) -> dict[str, Any]:
    return admit(obj, schema=SCHEMA, old=old, kind=KIND, group=GROUP)


def rejection(obj: dict[str, Any], *, old: dict[str, Any] | None = None) -> AdmissionError:
    with pytest.raises(AdmissionError) as info:
        run(obj, old=old)
    return info.value


def lines(error: AdmissionError) -> list[str]:
    return [str(cause) for cause in error.causes]


def test_defaults_are_applied_where_fields_are_absent() -> None:
    """Like the API server, absent fields are stored with their schema defaults."""
    stored = run(video(scenes=[{"name": "intro"}]))
    assert stored["spec"] == {
        "portrait": "gs://bucket/face.png",
        "text": "Hello there.",
        "language": "en",
        "resolution": 512,
        "fps": 25,
        "priority": 0,
        "captions": True,
        "scenes": [{"name": "intro", "style": "plain"}],
    }


def test_given_values_win_and_the_input_is_not_mutated() -> None:
    """Defaults never overwrite a value the client sent; the caller's dict stays intact."""
    sent = video(language="de", fps=30, captions=False)
    before = copy.deepcopy(sent)
    stored = run(sent)
    assert (stored["spec"]["language"], stored["spec"]["fps"]) == ("de", 30)
    assert stored["spec"]["captions"] is False
    assert sent == before


def test_null_for_a_defaulted_field_gets_the_default() -> None:
    """Non-nullable nulls are dropped before defaulting, so null means 'use the default'."""
    obj = video()
    obj["spec"].update(fps=None, output=None)
    stored = run(obj)
    assert stored["spec"]["fps"] == 25
    assert "output" not in stored["spec"]


def test_unknown_fields_are_pruned_silently() -> None:
    """Unknown fields in spec and in list items vanish without an error, as on GKE."""
    obj = video(colour="red", scenes=[{"name": "intro", "speed": 2}])
    obj["extra"] = {"a": 1}
    stored = run(obj)
    assert "colour" not in stored["spec"]
    assert stored["spec"]["scenes"] == [{"name": "intro", "style": "plain"}]
    assert "extra" not in stored


def test_preserve_unknown_fields_and_metadata_are_kept() -> None:
    """status preserves unknown fields; apiVersion, kind and metadata are never pruned."""
    obj = video()
    obj["status"] = {"phase": "Rendering", "progress": {"frames": 10, "nested": {"x": [1]}}}
    stored = run(obj)
    assert stored["status"] == obj["status"]
    assert stored["metadata"] == obj["metadata"]
    assert (stored["apiVersion"], stored["kind"]) == (f"{GROUP}/v1", KIND)


def test_integral_float_for_an_integer_is_stored_as_int() -> None:
    """JSON 30.0 is a valid integer for kube-openapi and comes back as 30."""
    stored = run(video(fps=30.0))
    assert stored["spec"]["fps"] == 30
    assert isinstance(stored["spec"]["fps"], int)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"fps": 500},
            "spec.fps: Invalid value: 500: spec.fps in body should be less than or equal to 60",
        ),
        (
            {"resolution": 100},
            "spec.resolution: Invalid value: 100: "
            "spec.resolution in body should be greater than or equal to 128",
        ),
        (
            {"language": "xx"},
            'spec.language: Unsupported value: "xx": supported values: "en", "de"',
        ),
        (
            {"portrait": "ftp://face.png"},
            'spec.portrait: Invalid value: "ftp://face.png": '
            "spec.portrait in body should match '^(gs|https)://'",
        ),
        (
            {"fps": "fast"},
            'spec.fps: Invalid value: "string": spec.fps in body must be of type integer: "string"',
        ),
        (
            {"fps": True},
            'spec.fps: Invalid value: "boolean": '
            'spec.fps in body must be of type integer: "boolean"',
        ),
        (
            {"captions": "yes"},
            'spec.captions: Invalid value: "string": '
            'spec.captions in body must be of type boolean: "string"',
        ),
        ({"portrait": None}, "spec.portrait: Required value"),
        (
            {"scenes": [{"name": "Intro"}]},
            'spec.scenes[0].name: Invalid value: "Intro": '
            "spec.scenes[0].name in body should match '^[a-z]+$'",
        ),
        ({"scenes": [{"seconds": 2}]}, "spec.scenes[0].name: Required value"),
        (
            {"scenes": [{"name": "a", "seconds": 0}]},
            "spec.scenes[0].seconds: Invalid value: 0: "
            "spec.scenes[0].seconds in body should be greater than 0",
        ),
        (
            {"scenes": [{"name": "a"}] * 4},
            "spec.scenes: Too many: 4: must have at most 3 items",
        ),
    ],
)
def test_each_violation_names_its_field_as_the_api_server_does(
    spec: dict[str, Any], expected: str
) -> None:
    """One violation: the exact field path and kube-apiserver's wording, first cause."""
    error = rejection(video(**spec))
    assert lines(error)[0] == expected


def test_several_violations_are_reported_together() -> None:
    """All problems come back at once, in a bracketed list like the API server's."""
    error = rejection(video(fps=500, resolution=100, audio="gs://a.wav"))
    assert lines(error) == [
        "spec.resolution: Invalid value: 100: "
        "spec.resolution in body should be greater than or equal to 128",
        "spec.fps: Invalid value: 500: spec.fps in body should be less than or equal to 60",
        'spec: Invalid value: "object": exactly one of text or audio',
    ]
    assert error.message == (
        'AvatarVideo.avatar.example.com "x" is invalid: ['
        "spec.resolution: Invalid value: 100: "
        "spec.resolution in body should be greater than or equal to 128, "
        "spec.fps: Invalid value: 500: spec.fps in body should be less than or equal to 60, "
        'spec: Invalid value: "object": exactly one of text or audio]'
    )


def test_single_cause_message_has_no_brackets() -> None:
    error = rejection(video(fps=500))
    assert error.message == (
        'AvatarVideo.avatar.example.com "x" is invalid: '
        "spec.fps: Invalid value: 500: spec.fps in body should be less than or equal to 60"
    )
    assert str(error) == error.message


def test_cel_rule_fails_with_its_message() -> None:
    """A failing rule is reported at its node, with the rule's message."""
    error = rejection(video(text=None))
    assert error.causes == [
        Cause(
            field="spec",
            reason="FieldValueInvalid",
            message='Invalid value: "object": exactly one of text or audio',
        )
    ]


def test_cel_rule_without_message_quotes_the_rule() -> None:
    error = rejection(video(text="a" * 5001))
    assert lines(error) == [
        'spec: Invalid value: "object": failed rule: !has(self.text) || size(self.text) <= 5000'
    ]


def test_cel_rules_pass_for_a_valid_object() -> None:
    assert run(video(text=None, audio="gs://bucket/voice.wav"))["spec"]["audio"]


def test_blocking_schema_errors_skip_cel_like_the_api_server() -> None:
    """A missing required field stops CEL; the API server says so in a <nil> cause."""
    error = rejection(video(portrait=None, text=None))
    assert lines(error) == [
        "spec.portrait: Required value",
        '<nil>: Invalid value: "null": some validation rules were not checked because the '
        "object was invalid; correct the existing errors to complete validation",
    ]


def test_transition_rule_is_skipped_on_create() -> None:
    """self == oldSelf has no oldSelf on create, so it is not evaluated."""
    assert run(video())["spec"]["text"] == "Hello there."


def test_transition_rule_is_enforced_on_update() -> None:
    """Changing spec against the stored object fails; an unchanged spec passes."""
    old = run(video())
    changed = copy.deepcopy(old)
    changed["spec"]["fps"] = 30
    error = rejection(changed, old=old)
    assert lines(error) == ['spec: Invalid value: "object": spec is immutable']

    same = copy.deepcopy(old)
    same["status"] = {"phase": "Done"}
    assert run(same, old=old)["status"] == {"phase": "Done"}


def test_an_unchanged_value_is_ratcheted_and_a_changed_one_checked() -> None:
    """CRD validation ratcheting (on since 1.30): an object stored before a rule came
    (its text too long now) can still have its status written; changing the value
    that breaks the rule is refused."""
    old = run(video())
    old["spec"]["text"] = "a" * 5001  # stored before the size rule existed
    status_only = copy.deepcopy(old)
    status_only["status"] = {"phase": "Running"}
    assert run(status_only, old=old)["status"] == {"phase": "Running"}

    schema = copy.deepcopy(SCHEMA)  # without the immutability rule, so spec may change
    schema["properties"]["spec"]["x-kubernetes-validations"].pop()
    longer = copy.deepcopy(old)
    longer["spec"]["text"] = "b" * 5002
    with pytest.raises(AdmissionError) as caught:
        admit(longer, schema=schema, kind=KIND, group=GROUP, old=old)
    assert "failed rule: !has(self.text) || size(self.text) <= 5000" in str(caught.value)


def test_a_transition_rule_runs_on_an_unchanged_value_too() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["x-kubernetes-validations"].append(
        {"rule": "oldSelf.text != 'frozen'", "message": "this video is frozen"}
    )
    old = run(video(text="frozen"))
    same = copy.deepcopy(old)
    same["status"] = {"phase": "Running"}
    with pytest.raises(AdmissionError) as caught:
        admit(same, schema=schema, kind=KIND, group=GROUP, old=old)
    assert "this video is frozen" in str(caught.value)


def test_update_of_a_defaulted_spec_compares_after_defaulting() -> None:
    """The new object is defaulted before oldSelf is compared, as on the API server."""
    old = run(video())
    resent = video()  # without the defaults the stored object has
    assert run(resent, old=old)["spec"] == old["spec"]


def test_rule_evaluation_error_is_a_cause_not_an_exception() -> None:
    """A rule reading a missing key reports the error and the rule, and admission goes on."""
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.audio.startsWith('gs://')"},
        {"rule": "self.text.lowerAscii() == self.text", "message": "lower case only"},
        {"rule": "self.fps > 10.5"},
        {"rule": "self.fps ==", "message": "broken"},
    ]
    with pytest.raises(AdmissionError) as info:
        admit(video(), schema=schema, old=None, kind=KIND, group=GROUP)
    assert lines(info.value) == [
        'spec: Invalid value: "object": no such key: audio evaluating rule: '
        "self.audio.startsWith('gs://')",
        "spec: Invalid value: \"object\": undeclared reference to 'lowerAscii' "
        "evaluating rule: lower case only",
        "spec: Invalid value: \"object\": 'no such overload': call arguments did not match a "
        "supported operator, function or macro signature for rule: self.fps > 10.5",
        'spec: Invalid value: "object": rule compile error: compilation failed: '
        "ERROR: <input>:1:10: Syntax error",
    ]


def test_rule_options_field_path_reason_and_message_expression() -> None:
    """fieldPath moves the cause, reason changes its type, messageExpression its text."""
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["x-kubernetes-validations"] = [
        {
            "rule": "self.output.startsWith('gs://')",
            "fieldPath": ".output",
            "reason": "FieldValueForbidden",
            "messageExpression": "'output must be in GCS, not ' + self.output",
        },
    ]
    with pytest.raises(AdmissionError) as info:
        admit(video(output="s3://b/o.mp4"), schema=schema, old=None, kind=KIND, group=GROUP)
    assert info.value.causes == [
        Cause(
            field="spec.output",
            reason="FieldValueForbidden",
            message="Forbidden: output must be in GCS, not s3://b/o.mp4",
        )
    ]


def test_rules_on_list_items_run_per_item() -> None:
    """Rules below arrays are evaluated for each item, at the item's path."""
    schema = copy.deepcopy(SCHEMA)
    scene = schema["properties"]["spec"]["properties"]["scenes"]["items"]
    scene["x-kubernetes-validations"] = [
        {"rule": "!has(self.seconds) || self.seconds < 60.0", "message": "scene too long"}
    ]
    obj = video(scenes=[{"name": "a", "seconds": 5}, {"name": "b", "seconds": 90}])
    with pytest.raises(AdmissionError) as info:
        admit(obj, schema=schema, old=None, kind=KIND, group=GROUP)
    assert lines(info.value) == ['spec.scenes[1]: Invalid value: "object": scene too long']


def test_status_object_shape() -> None:
    """kubectl and kopf read the Status body: code 422, reason Invalid, causes by field."""
    status = rejection(video(fps=500, language="xx")).status()
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": status["message"],
        "reason": "Invalid",
        "details": {
            "name": "x",
            "group": GROUP,
            "kind": KIND,
            "causes": [
                {
                    "reason": "FieldValueNotSupported",
                    "message": 'Unsupported value: "xx": supported values: "en", "de"',
                    "field": "spec.language",
                },
                {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: 500: spec.fps in body should be less than "
                    "or equal to 60",
                    "field": "spec.fps",
                },
                {
                    "reason": "FieldValueInvalid",
                    "message": 'Invalid value: "null": some validation rules were not checked '
                    "because the object was invalid; correct the existing errors to complete "
                    "validation",
                    "field": "<nil>",
                },
            ],
        },
        "code": 422,
    }
    assert status["message"].startswith('AvatarVideo.avatar.example.com "x" is invalid: [')


@pytest.mark.parametrize(
    ("node", "value", "expected"),
    [
        (
            {"type": "string", "maxLength": 3},
            "abcd",
            "spec.v: Too long: may not be longer than 3",
        ),
        (
            {"type": "string", "minLength": 2},
            "a",
            'spec.v: Invalid value: "a": spec.v in body should be at least 2 chars long',
        ),
        (
            {"type": "string", "format": "date-time"},
            "yesterday",
            'spec.v: Invalid value: "yesterday": spec.v in body must be of type date-time: '
            '"yesterday"',
        ),
        (
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
            [],
            "spec.v: Invalid value: 0: spec.v in body should have at least 1 items",
        ),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}, "maxProperties": 1},
            {"a": 1, "b": 2},
            "spec.v: Too many: 2: must have at most 1 items",
        ),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            {"a": "1"},
            'spec.v.a: Invalid value: "string": spec.v.a in body must be of type integer: "string"',
        ),
        (
            {"type": "number", "maximum": 1.5},
            2.25,
            "spec.v: Invalid value: 2.25: spec.v in body should be less than or equal to 1.5",
        ),
        (
            {"x-kubernetes-int-or-string": True},
            True,
            'spec.v: Invalid value: "boolean": spec.v in body must be of type integer,string: '
            '"boolean"',
        ),
        (
            {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            ["a", "b", "a"],
            'spec.v[2]: Duplicate value: "a"',
        ),
    ],
)
def test_other_schema_keywords(node: dict[str, Any], value: Any, expected: str) -> None:
    """The remaining structural-schema checks, each with the API server's message."""
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"v": node}}},
    }
    obj = {"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"v": value}}
    with pytest.raises(AdmissionError) as info:
        admit(obj, schema=schema, old=None, kind="K", group="g")
    assert lines(info.value) == [expected]


@pytest.mark.parametrize(
    ("node", "value"),
    [
        ({"type": "string", "format": "date-time"}, "2024-05-01T12:30:00Z"),
        ({"type": "string", "format": "uri"}, "https://example.com/a?b=c"),
        ({"type": "integer", "format": "int32"}, 7),
        ({"type": "integer", "format": "int64"}, 2**40),
        ({"type": "number"}, 3),
        ({"x-kubernetes-int-or-string": True}, "50%"),
        ({"type": "string", "nullable": True}, None),
    ],
)
def test_valid_values_pass(node: dict[str, Any], value: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"v": node}}},
    }
    obj = {"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"v": value}}
    assert admit(obj, schema=schema, old=None, kind="K", group="g")["spec"]["v"] == value


def test_embedded_resource_keeps_its_object_fields() -> None:
    """An embedded resource keeps apiVersion/kind/metadata but is pruned below them."""
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "properties": {"data": {"type": "object", "properties": {}}},
                    }
                },
            }
        },
    }
    template = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "junk": 1}
    obj = {
        "apiVersion": "v1",
        "kind": "K",
        "metadata": {"name": "n"},
        "spec": {"template": template},
    }
    stored = admit(obj, schema=schema, old=None, kind="K", group="g")
    assert stored["spec"]["template"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
    }
