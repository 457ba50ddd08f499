"""Engine selection through the whole system: a pool with a Piper pod and an XTTS-v2 pod.

Real operator (kopf run), real runtime processes from two Deployments, the dev
cluster over HTTP. The XTTS-v2 pod loads a model volume with random weights
(``tests/runtime/engines/xtts_volume.py``; no real weights can be downloaded here), so
its speech is noise of a capped length and its intelligibility gate is off;
what is checked is that each resource reaches the pod that runs its engines,
that the XTTS pod clones the resource's voice sample, and that a bad sample
fails the resource at once with its own code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatar_devcluster import stack
from avatar_runtime.engines.piper_tts import PiperTTS
from tests.runtime.engines import xtts_volume
from tests.runtime.pipeline.media import decode_mp4, write_wav
from tests.system.system import System, env_for_tests

pytestmark = pytest.mark.slow

TOKENS = 40  # audio tokens per chunk on the XTTS pod: random weights never stop


@pytest.fixture(scope="module")
def mixed_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("mixed-pool")
    models = xtts_volume.build(root / "models")
    with System(root) as system:
        piper = stack.build_runtime_deployment(
            buckets=system.buckets, name="runtime-piper", slots=1, env=env_for_tests()
        )
        xtts = stack.build_runtime_deployment(
            buckets=system.buckets,
            name="runtime-xtts",
            slots=1,
            env={
                **env_for_tests(),
                "AVATAR_RUNTIME_ENGINES__TTS": "xtts",
                "AVATAR_RUNTIME_ENGINES__MODEL_DIR": str(models),
                "AVATAR_RUNTIME_ENGINES__DEVICE": "cpu",
                "AVATAR_RUNTIME_ENGINES__XTTS_MAX_AUDIO_TOKENS": str(TOKENS),
                "AVATAR_RUNTIME_QUALITY__MAX_WER": "100",  # random weights speak noise
            },
        )
        system.create(piper, xtts)
        system.operator.start()
        voices = system.buckets / "demo" / "voices"
        voices.mkdir(parents=True)
        said = PiperTTS().synthesize(
            "Good morning, everyone. This is a recording of my own voice, made so that the"
            " avatar can speak with it in every video from now on.",
            language="en",
        )
        write_wav(voices / "me.wav", said.samples, said.sample_rate)
        write_wav(voices / "short.wav", said.samples[: said.sample_rate], said.sample_rate)
        system.wait_for_runtime_pods(2)
        yield system


def _pod_engines(system: System) -> dict[str, str]:
    engines = {}
    for pod in system.runtime_pods():
        with system.runtime(pod) as client:
            engines[pod["metadata"]["name"]] = client.get("/v1/capacity").json()["engines"]["tts"]
    return engines


def test_each_video_reaches_the_pod_that_runs_its_engines(mixed_pool: System) -> None:
    system = mixed_pool
    by_pod = _pod_engines(system)
    assert sorted(by_pod.values()) == ["piper", "xtts"]
    system.apply(
        system.video("cloned", tts="xtts", voice="gs://demo/voices/me.wav"),
        system.video("bundled", tts="piper"),
    )
    cloned = system.wait_phase("cloned", ["Succeeded", "Failed"], timeout=180)["status"]
    bundled = system.wait_phase("bundled", ["Succeeded", "Failed"], timeout=180)["status"]
    assert (cloned["phase"], bundled["phase"]) == ("Succeeded", "Succeeded"), (
        cloned.get("error"),
        bundled.get("error"),
    )
    assert by_pod[cloned["runtimePod"]] == "xtts"
    assert by_pod[bundled["runtimePod"]] == "piper"
    video = decode_mp4(system.local(cloned["outputs"]["video"]["url"]))
    # One sentence chunk of TOKENS audio tokens (1024 samples at 22.05 kHz each).
    assert video.audio_seconds == pytest.approx(TOKENS * 1024 / 22_050, abs=0.3)
    assert np.asarray(video.frames[0]).shape == (256, 256, 3)


def test_a_voice_sample_too_short_to_clone_fails_at_once(mixed_pool: System) -> None:
    system = mixed_pool
    system.apply(system.video("short-voice", tts="xtts", voice="gs://demo/voices/short.wav"))
    status = system.wait_phase("short-voice", ["Failed", "Succeeded"], timeout=120)["status"]
    assert status["phase"] == "Failed"
    assert status["attempts"] == 1
    assert status["error"]["code"] == "VoiceTooShort"
    assert status["error"]["retriable"] is False
    assert not Path(system.local("gs://demo/out/default/short-voice/")).exists()
