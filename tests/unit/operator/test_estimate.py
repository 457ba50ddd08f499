"""The backlog estimate the scaling gauges read: it learns the voices' real speaking rate."""

from __future__ import annotations

from avatar_operator.estimate import BacklogEstimator
from avatar_operator.resource import AvatarVideoSpec


def test_the_backlog_estimate_learns_the_real_speaking_rate() -> None:
    estimator = BacklogEstimator(chars_per_second={"en": 10.0}, default_rate=10.0, audio_prior=30)
    spec = AvatarVideoSpec.model_validate(
        {"portrait": "gs://b/p.png", "text": "x" * 200, "output": "gs://b/o/"}
    )
    assert estimator.seconds(spec) == 20.0
    for _ in range(30):
        estimator.learn(spec, 10.0)  # the voice speaks twice as fast as the prior
    assert abs(estimator.seconds(spec) - 10.0) < 0.5
    german = spec.model_copy(update={"language": "de-AT"})
    assert estimator.seconds(german) == 20.0  # another language keeps its own prior
    recording = AvatarVideoSpec.model_validate(
        {"portrait": "gs://b/p.png", "audio": "gs://b/a.wav", "output": "gs://b/o/"}
    )
    assert estimator.seconds(recording) == 30
