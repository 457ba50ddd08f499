"""How much video a waiting job will make: the backlog the scaling policy reads.

Text: characters / speaking rate of the language. The rate starts from a
prior and learns from every finished job (an exponential average of the real
rate), so the backlog tracks the voices actually in use. A recording's length
is unknown until it is fetched: the average of those rendered so far.
"""

from __future__ import annotations

from avatar_operator.resource import AvatarVideoSpec

_WEIGHT = 0.2  # of each new measurement in the running average


class BacklogEstimator:
    def __init__(
        self, *, chars_per_second: dict[str, float], default_rate: float, audio_prior: float
    ) -> None:
        self._rates = dict(chars_per_second)
        self._default = default_rate
        self._audio = audio_prior

    def _rate(self, language: str) -> float:
        base = language.split("-")[0]
        return self._rates.get(language) or self._rates.get(base) or self._default

    def seconds(self, spec: AvatarVideoSpec) -> float:
        if spec.text is None:
            return self._audio
        return len(spec.text) / self._rate(spec.language)

    def learn(self, spec: AvatarVideoSpec, video_seconds: float) -> None:
        if video_seconds <= 0:
            return
        if spec.text is None:
            self._audio += _WEIGHT * (video_seconds - self._audio)
            return
        measured = len(spec.text) / video_seconds
        rate = self._rate(spec.language)
        self._rates[spec.language] = rate + _WEIGHT * (measured - rate)
