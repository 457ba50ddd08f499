"""Build the container images here with buildah, run them, and keep their pins.

    python scripts/images.py build [TARGET ...]   # default: operator runtime-cpu (make images)
    python scripts/images.py test                 # build both, then run each as uid 10001
    python scripts/images.py lock [TARGET ...]    # rebuild unpinned, write images/TARGET.txt

There is no Docker engine and no registry for images on these machines: the bases are
stand-ins made from Debian's packages (scripts/images_bases.py), built once and cached in
buildah's storage, and every layer is cached between runs too. ``make images-test`` runs the
same checks as pytest (tests/images/test_images.py), which is what CI runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import images_bases, images_build, images_buildah, images_checks

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "images"
LOG = ROOT / "out" / "images" / "build.log"
WHEEL_STAGE = images_build.Target("wheel", "avatar-wheel-stage:lock", (images_bases.PYTHON,))


def _targets(names: Sequence[str]) -> list[images_build.Target]:
    unknown = sorted(set(names) - set(images_build.TARGETS))
    if unknown:
        raise SystemExit(f"unknown target {', '.join(unknown)}: {', '.join(images_build.TARGETS)}")
    return [images_build.TARGETS[name] for name in names] or list(images_build.DEFAULT)


def build(names: Sequence[str], *, mirror: str) -> list[images_build.Built]:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    built = []
    for target in _targets(names):
        print(f"building {target.tag} (target {target.name}; log: {LOG}) ...", flush=True)
        done = images_build.build(target, root=ROOT, log=LOG, mirror=mirror)
        bases = "; ".join(f"{ref}: {state.value}" for ref, state in done.bases.items())
        print(f"  built {target.tag} in {done.seconds:.0f} s (bases: {bases})", flush=True)
        built.append(done)
    return built


def test(*, mirror: str) -> int:
    """Build the default images, then run each one's checks; 0 when all pass."""
    build([], mirror=mirror)
    failures = 0
    for ran, ok in images_checks.operator_checks():
        failures += not ok
        print(
            f"  {'ok  ' if ok else 'FAIL'} {ran.image}: {' '.join(ran.argv)} ({ran.seconds:.1f} s)"
        )
        if not ok:
            print(ran.output)
    ran = images_checks.landmarker_check()
    failures += ran.returncode != 0
    print(f"  {'ok  ' if ran.returncode == 0 else 'FAIL'} {ran.image}: Face Landmarker loads")
    if ran.returncode != 0:
        print(ran.output)
    started = time.monotonic()
    rendered = images_checks.render_check()
    mp4 = rendered.mp4
    ok = mp4.video_streams == 1 and mp4.audio_streams == 1 and mp4.duration_seconds > 1
    failures += not ok
    print(
        f"  {'ok  ' if ok else 'FAIL'} {images_build.RUNTIME_CPU.tag}: avatar-runtime render "
        f"({time.monotonic() - started:.1f} s): {mp4}, WER {rendered.summary.get('wer')}"
    )
    return 1 if failures else 0


def lock(names: Sequence[str], *, mirror: str) -> None:
    """Rebuild each target with no pins and write what it installed as its pins."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(WHEEL_STAGE, "/opt/build/bin/pip")] if not names else []
    jobs += [(target, "pip") for target in _targets(names)]
    for target, pip in jobs:
        _pins(target).write_text(_header(target))
        print(f"locking {target.name}: building it unpinned ...", flush=True)
        images_build.build(target, root=ROOT, log=LOG, mirror=mirror)
        write_pins(target, pip=pip)


def _pins(target: images_build.Target) -> Path:
    return PINS / ("build.txt" if target is WHEEL_STAGE else f"{target.name}.txt")


def _header(target: images_build.Target) -> str:
    command = "lock" if target is WHEEL_STAGE else f"lock {target.name}"
    return (
        f"# The `{target.name}` image's Python packages: `pip freeze` of it, written by\n"
        f"# `python scripts/images.py {command}` (Dockerfile).\n"
    )


def write_pins(target: images_build.Target, *, pip: str = "pip") -> None:
    """Write the built image's `pip freeze` as its pins."""
    # mediapipe is pinned by scripts/install_face_landmarker.py, which installs it without its
    # declared dependencies: in the pins, `pip check` would miss them.
    freeze = [pip, "freeze", "--all", "--exclude", "avatar-video", "--exclude", "mediapipe"]
    ran = images_checks.run_in(target.tag, freeze)
    if ran.returncode != 0:
        raise images_buildah.BuildahError(f"pip freeze failed in {target.tag}:\n{ran.output}")
    lines = sorted(line for line in ran.stdout.splitlines() if "==" in line)
    _pins(target).write_text(_header(target) + "\n".join(lines) + "\n")
    print(f"  {_pins(target).relative_to(ROOT)}: {len(lines)} packages", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", default=images_bases.DEFAULT_MIRROR, help="Debian mirror")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "lock"):
        command = commands.add_parser(name)
        command.add_argument("targets", nargs="*", help=", ".join(images_build.TARGETS))
    commands.add_parser("test")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a TextIOWrapper
    images_buildah.require()
    if args.command == "build":
        build(args.targets, mirror=args.mirror)
        return 0
    if args.command == "lock":
        lock(args.targets, mirror=args.mirror)
        return 0
    return test(mirror=args.mirror)


if __name__ == "__main__":
    raise SystemExit(main())
