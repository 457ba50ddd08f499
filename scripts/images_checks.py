"""Run the built images as the chart runs them: as uid 10001, each doing its real work.

Each check starts a working container from the image (``buildah from``), runs one command in
it with ``buildah run --user 10001:10001`` and removes the container. The operator image must
start its entry point far enough to show that it would run (``kopf run --help`` and an import
of the handlers module, which imports everything the operator runs); the CPU runtime image
renders a real video of the sample portrait that ships in the package, with no network (the
command runs in an empty network namespace, so a model that was not baked in would fail), and
the MP4 it writes to a mounted folder is opened with PyAV here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

from scripts import images_build, images_buildah

UID = 10001
# The sample portrait the package ships (each slot warms up on it), found inside the image.
FIND_PORTRAIT = (
    "import pathlib, avatar_runtime;"
    " print(pathlib.Path(avatar_runtime.__file__).parent / 'assets' / 'warmup-portrait.jpg')"
)
SAMPLE_TEXT = "Hello! This video was rendered inside the CPU runtime image."


@dataclasses.dataclass(frozen=True)
class Ran:
    """One command run inside an image."""

    image: str
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclasses.dataclass(frozen=True)
class Mp4Facts:
    video_streams: int
    audio_streams: int
    duration_seconds: float
    width: int
    height: int
    frames: int


@contextlib.contextmanager
def container(image: str) -> Iterator[str]:
    """A working container of *image*, removed afterwards."""
    name = images_buildah.buildah(["from", "--pull-never", "--quiet", image]).stdout.strip()
    try:
        yield name
    finally:
        images_buildah.buildah(["rm", name], check=False)


def run_in(
    image: str,
    argv: Sequence[str],
    *,
    volumes: Sequence[str] = (),
    offline: bool = False,
    timeout: float = 600,
) -> Ran:
    """Run *argv* inside *image* as uid 10001 (with an empty network namespace if offline)."""
    with container(image) as name:
        command = ["buildah", "run", "--isolation", images_buildah.ISOLATION]
        command += ["--user", f"{UID}:{UID}"]
        for volume in volumes:
            command += ["-v", volume]
        command += [name, "--", *argv]
        if offline:  # chroot isolation shares the host's network; unshare gives it none
            command = ["unshare", "--net", "--", *command]
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603 (our argv)
            command, capture_output=True, text=True, timeout=timeout
        )
        return Ran(
            image=image,
            argv=tuple(argv),
            returncode=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
            seconds=time.monotonic() - started,
        )


# The operator image must carry no engine: it stays small, and it imports only the API schemas.
NO_ENGINES = (
    "import importlib.util as u;"
    " found = [m for m in ('torch', 'piper', 'faster_whisper', 'av', 'cv2') if u.find_spec(m)];"
    " assert not found, found"
)


def operator_checks(image: str = images_build.OPERATOR.tag) -> list[tuple[Ran, bool]]:
    """The operator's entry point far enough to show it starts, and who it runs as."""
    uid = run_in(image, ["id", "-u"])
    kopf = run_in(image, ["kopf", "run", "--help"])
    handlers = run_in(image, ["python", "-c", "import avatar_operator.handlers"])
    engines = run_in(image, ["python", "-c", NO_ENGINES])
    return [
        (uid, uid.stdout.strip() == str(UID)),
        (kopf, kopf.returncode == 0 and "--liveness" in kopf.stdout),
        (handlers, handlers.returncode == 0),
        (engines, engines.returncode == 0),
    ]


# The renderer's face geometry: MediaPipe's Face Landmarker must load in the image and find
# the face in the sample portrait (without it the renderer falls back to Haar cascades).
LANDMARKER = (
    "import pathlib, avatar_runtime, numpy as np, PIL.Image;"
    " from avatar_runtime.engines.opencv_renderer import landmarks;"
    " assert landmarks.available(), 'no Face Landmarker';"
    " p = pathlib.Path(avatar_runtime.__file__).parent / 'assets' / 'warmup-portrait.jpg';"
    " faces = landmarks.Landmarker().faces(np.asarray(PIL.Image.open(p).convert('RGB')));"
    " print(len(faces)); assert faces, 'no face found'"
)


def landmarker_check(image: str = images_build.RUNTIME_CPU.tag) -> Ran:
    return run_in(image, ["python", "-c", LANDMARKER], offline=True)


@dataclasses.dataclass(frozen=True)
class Rendered:
    ran: Ran
    summary: dict[str, object]
    mp4: Mp4Facts


def render_check(image: str = images_build.RUNTIME_CPU.tag, *, text: str = SAMPLE_TEXT) -> Rendered:
    """``avatar-runtime render`` of the sample portrait inside the image, offline; the MP4."""
    found = run_in(image, ["python", "-c", FIND_PORTRAIT])
    if found.returncode != 0:
        raise AssertionError(f"no sample portrait in {image}:\n{found.output}")
    portrait = found.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="image-render-") as scratch:
        out = Path(scratch)
        out.chmod(0o777)  # the container writes as uid 10001
        ran = run_in(
            image,
            [
                "avatar-runtime",
                "render",
                "--image",
                portrait,
                "--text",
                text,
                "--out",
                "/out/sample.mp4",
                "--json",
            ],
            volumes=[f"{out}:/out"],
            offline=True,
        )
        if ran.returncode != 0:
            raise AssertionError(f"render failed in {image} ({ran.returncode}):\n{ran.output}")
        summary = json.loads(ran.stdout)  # --json: the summary alone on stdout
        video = out / "sample.mp4"
        if video.stat().st_uid != UID:
            raise AssertionError(f"{video} was written by uid {video.stat().st_uid}, not {UID}")
        return Rendered(ran=ran, summary=summary, mp4=probe(video))


def probe(path: Path) -> Mp4Facts:
    """Open the MP4 with PyAV and decode it to the end (a truncated file fails here)."""
    import av

    with av.open(str(path)) as media:
        videos = list(media.streams.video)
        audios = list(media.streams.audio)
        duration = float(Fraction(media.duration or 0, av.time_base))
        frames = sum(1 for _ in media.decode(video=0)) if videos else 0
        width = videos[0].codec_context.width if videos else 0
        height = videos[0].codec_context.height if videos else 0
    return Mp4Facts(
        video_streams=len(videos),
        audio_streams=len(audios),
        duration_seconds=duration,
        width=width,
        height=height,
        frames=frames,
    )


def health_check(image: str) -> list[str] | None:
    """The image's HEALTHCHECK command, as stored in its config (None: it has none)."""
    config = images_buildah.image_config(image)
    if config is None:
        return None
    check = config.get("Healthcheck")
    if not isinstance(check, dict):
        return None
    test = check.get("Test")
    return [str(part) for part in test] if isinstance(test, list) else None


def image_user(image: str) -> str | None:
    config = images_buildah.image_config(image)
    return None if config is None else str(config.get("User") or "")
