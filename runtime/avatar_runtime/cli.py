"""The ``avatar-runtime`` command: render one video from the command line.

``render`` runs exactly what a runtime pod runs for a job, on the engines the
settings name, and prints a JSON summary with ``--json`` for scripts and
benchmarks. Exit codes: 0 done, 2 bad input (fix the request), 3 a failure
worth retrying, 1 anything else. ``check-models`` checks a model volume as a
pod does before loading; ``fetch-models`` fills one (once, from a Job).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from avatar_runtime import __version__, logs
from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobSpec
from avatar_runtime.local_buckets import serve_gs_from
from avatar_runtime.settings import RuntimeSettings

if TYPE_CHECKING:
    from avatar_runtime import model_fetch

log = logging.getLogger("avatar_runtime.cli")

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_RETRIABLE = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar-runtime", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", help="default: WARNING for render, INFO for serve")
    parser.add_argument(
        "--log-format", choices=["text", "json"], help="default: text for render, json for serve"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser("render", help="render one talking-head video")
    render.add_argument("--image", required=True, help="portrait: path, file://, gs:// or https://")
    speech = render.add_mutually_exclusive_group(required=True)
    speech.add_argument("--text", help="text to speak")
    speech.add_argument("--audio", help="recorded speech (WAV/MP3/FLAC): path or URL")
    render.add_argument("--voice", help="voice sample path/URL or voice name (engine-specific)")
    render.add_argument("--language", default="en", help="default: en")
    render.add_argument("--resolution", type=int, default=512, help="frame side, px (default 512)")
    render.add_argument("--fps", type=int, default=25, help="default: 25")
    render.add_argument("--no-captions", action="store_true", help="skip the WebVTT captions")
    render.add_argument(
        "--out", required=True, help="output directory, .mp4 file, or URL prefix (gs://...)"
    )
    render.add_argument("--max-wer", type=float, help="intelligibility limit (default 0.5)")
    render.add_argument("--json", action="store_true", help="print a JSON summary on stdout")

    serve = commands.add_parser(
        "serve",
        help="run the runtime pod's HTTP server (settings also from AVATAR_RUNTIME_* variables)",
    )
    serve.add_argument("--host", help="listen address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="default 8080")
    serve.add_argument("--slots", help="job slots: a number, or 'auto' (default)")
    serve.add_argument("--queue-limit", type=int, help="jobs that may wait for a slot (default 4)")
    serve.add_argument("--grace", type=float, help="seconds running jobs get on SIGTERM (60)")
    serve.add_argument("--token-file", help="bearer token the job endpoints require")
    serve.add_argument("--output-root", help="allow local outputs under this directory")

    models = commands.add_parser(
        "check-models",
        help="check a model volume for the production engines (the check a pod runs at start)",
    )
    models.add_argument("--model-dir", required=True, type=Path, help="the volume's mount point")
    models.add_argument("--tts", choices=["xtts", "piper"], default="xtts")
    models.add_argument("--renderer", choices=["ditto", "embedded"], default="ditto")
    models.add_argument("--whisper", help="a Whisper model under whisper/ (e.g. large-v3)")
    models.add_argument("--json", action="store_true", help="print the findings as JSON")
    _fetch_parser(commands)
    return parser


def _fetch_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fetch = commands.add_parser(
        "fetch-models",
        help="fill a model volume from the Hugging Face Hub and GitHub, then check it"
        " (HF_TOKEN: a token for the gated XTTS-v2; HF_ENDPOINT: a mirror)",
    )
    fetch.add_argument("--model-dir", required=True, type=Path, help="the volume's mount point")
    fetch.add_argument(
        "--component",
        action="append",
        choices=["xtts", "whisper", "ditto"],
        help="fetch only this (repeatable; default: all three)",
    )
    fetch.add_argument(
        "--whisper",
        help="faster-whisper model name, into whisper/NAME (default: the name in"
        " AVATAR_RUNTIME_ENGINES__WHISPER_MODEL, else large-v3)",
    )
    fetch.add_argument("--whisper-repo", help="its Hub repository (default: faster-whisper's)")
    fetch.add_argument(
        "--ditto-trt", action="store_true", help="also Ditto's TensorRT engines (Ampere and later)"
    )
    fetch.add_argument("--ditto-commit", help="Ditto's code at another commit than the pinned one")
    fetch.add_argument("--ditto-code-sha256", help="SHA-256 of that commit's tar.gz")
    fetch.add_argument(
        "--code-base-url", help="where GitHub archives come from (default: codeload.github.com)"
    )
    fetch.add_argument(
        "--revision",
        action="append",
        default=[],
        metavar="COMPONENT=REV",
        help="Hub revision (branch, tag or commit) of a component (default: main)",
    )
    fetch.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _spec(args: argparse.Namespace) -> JobSpec:
    try:
        return JobSpec(
            portrait=args.image,
            text=args.text,
            audio=args.audio,
            voice=args.voice,
            language=args.language,
            resolution=args.resolution,
            fps=args.fps,
            captions=not args.no_captions,
            output=args.out,
        )
    except pydantic.ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"])
        raise JobError(
            ErrorCode.INVALID_OPTION, f"{field}: {problem['msg']}", field=field
        ) from None


def _progress_bar(enabled: bool) -> tuple[Any, Any]:
    """A tqdm bar on a terminal; nothing when output is piped or for ``--json``."""
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%", bar_format="{desc:<8} {bar} {percentage:3.0f}% {elapsed}")

    def update(stage: str, value: float) -> None:
        bar.set_description_str(stage)
        bar.update(max(0, round(value * 100) - bar.n))

    return bar, update


def _storage(settings: RuntimeSettings) -> None:
    """Before any job: gs:// from a local directory where configured (demo, tests)."""
    if settings.storage.local_buckets is not None:
        serve_gs_from(settings.storage.local_buckets)


def render(args: argparse.Namespace) -> int:
    settings = RuntimeSettings()
    _storage(settings)
    if args.max_wer is not None:
        settings = settings.model_copy(
            update={"quality": settings.quality.model_copy(update={"max_wer": args.max_wer})}
        )
    job_id = f"cli-{uuid.uuid4().hex[:12]}"
    bar, update = _progress_bar(sys.stderr.isatty() and not args.json)
    with logs.job_context(job_id):
        try:
            spec = _spec(args)
            from avatar_runtime.engines import registry
            from avatar_runtime.pipeline.runner import Pipeline

            if update is not None:
                update("load", 0.0)
            start = time.perf_counter()
            engines = registry.load(settings.engines)
            load_seconds = time.perf_counter() - start
            pipeline = Pipeline(engines, settings)
            try:
                result = pipeline.run(spec, progress=update)
            finally:
                pipeline.close()
        except JobError as error:
            failure: JobError | None = error
        except Exception as exc:  # the one place an unexpected error becomes an exit code
            log.exception("render failed")
            failure = JobError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        else:
            failure = None
        finally:
            if bar is not None:
                bar.close()
    if failure is not None:
        return _fail(args, failure)

    summary = {"job_id": job_id, "load_seconds": load_seconds, **result.model_dump(mode="json")}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        outputs = result.outputs
        print(f"video:     {outputs.video.url}")
        print(f"thumbnail: {outputs.thumbnail.url}")
        if outputs.captions:
            print(f"captions:  {outputs.captions.url}")
        wer = "n/a" if result.wer is None else f"{result.wer:.2f}"
        print(
            f"{result.video_seconds:.1f} s of video in {result.wall_seconds:.1f} s"
            f" (realtime factor {result.realtime_factor:.2f}, models loaded in"
            f" {load_seconds:.1f} s, WER {wer})"
        )
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _fail(args: argparse.Namespace, error: JobError) -> int:
    print(f"error: {error.code}: {error.message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": error.to_dict()}, indent=2))
    if error.code is ErrorCode.INTERNAL:
        return EXIT_INTERNAL
    return EXIT_RETRIABLE if error.retriable else EXIT_BAD_INPUT


def serve(args: argparse.Namespace) -> int:
    from avatar_runtime.server.serve import serve as run_server

    settings = RuntimeSettings()
    _storage(settings)
    server: dict[str, object] = {}
    for flag, name in [
        ("host", "host"),
        ("port", "port"),
        ("queue_limit", "queue_limit"),
        ("grace", "grace_seconds"),
        ("token_file", "token_file"),
        ("output_root", "local_output_root"),
    ]:
        if getattr(args, flag) is not None:
            server[name] = getattr(args, flag)
    update: dict[str, object] = {
        "server": settings.server.model_validate({**settings.server.model_dump(), **server})
    }
    if args.slots is not None:
        count = args.slots if args.slots == "auto" else int(args.slots)
        update["slots"] = settings.slots.model_copy(update={"count": count})
    return run_server(settings.model_copy(update=update))


def check_models(args: argparse.Namespace) -> int:
    """List what the volume has and lacks; exit 1 when anything needed is missing or damaged."""
    from avatar_runtime.engines import model_volume

    engines = [e for e in (args.tts, args.renderer) if e in model_volume.LAYOUT]
    report = model_volume.check(args.model_dir, engines=engines, whisper=args.whisper)
    if args.json:
        findings = [
            {
                "engine": f.engine,
                "path": f.needed.path,
                "state": f.state.value,
                "what": f.needed.what,
                "detail": f.detail,
            }
            for f in report.findings
        ]
        print(json.dumps({"model_dir": str(args.model_dir), "ok": report.ok,
                          "findings": findings}, indent=2))  # fmt: skip
    else:
        for f in report.findings:
            detail = f" ({f.detail})" if f.detail else ""
            print(f"{f.state.value:<18} {f.engine:<8} {f.needed.path}  {f.needed.what}{detail}")
        print(report.summary())
    return EXIT_OK if report.ok else EXIT_INTERNAL


def _fetch_request(args: argparse.Namespace) -> model_fetch.Request:
    from avatar_runtime.model_fetch import FetchError, Problem, Request, plans

    whisper = args.whisper
    if whisper is None:  # the model a pod of these settings would load from the volume
        configured = RuntimeSettings().engines.whisper_model
        whisper = configured if configured and "/" not in configured else plans.DEFAULT_WHISPER
    revisions = []
    for item in args.revision:
        component, sep, revision = item.partition("=")
        if not sep or not revision:
            raise FetchError(Problem.BAD_OPTION, f"--revision wants COMPONENT=REV, not {item!r}")
        revisions.append((component, revision))
    return Request(
        model_dir=args.model_dir,
        components=tuple(args.component or plans.COMPONENTS),
        whisper=whisper,
        whisper_repo=args.whisper_repo,
        ditto_trt=args.ditto_trt,
        ditto_commit=args.ditto_commit or plans.DITTO_CODE_COMMIT,
        ditto_code_sha256=args.ditto_code_sha256,
        code_base_url=args.code_base_url or plans.CODE_BASE_URL,
        revisions=tuple(revisions),
    )


def fetch_models(args: argparse.Namespace) -> int:
    """Fill the volume; exit 0 when the final check passes, else a one-line reason (no traceback).

    Exit 3 where trying again may help (hub unreachable, a checksum that differs),
    2 for what the user must fix (a token, a name), 1 otherwise (disk full, check failed).
    """
    from avatar_runtime import model_fetch
    from avatar_runtime.model_fetch import Problem

    def show(placed: model_fetch.Placed) -> None:
        if not args.json:
            print(
                f"{placed.outcome.value:<8} {placed.path}  ({placed.size / 1e6:.1f} MB)", flush=True
            )

    try:
        result = model_fetch.fill(model_fetch.build(_fetch_request(args)), progress=show)
    except model_fetch.FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.json:
            failure = {"ok": False, "problem": error.problem.value, "message": error.message}
            print(json.dumps(failure, indent=2))
        if error.problem.retriable:
            return EXIT_RETRIABLE
        user_to_fix = {Problem.NOT_AUTHORISED, Problem.NOT_FOUND, Problem.BAD_OPTION}
        return EXIT_BAD_INPUT if error.problem in user_to_fix else EXIT_INTERNAL
    fetched = [p for p in result.placed if p.outcome is model_fetch.Outcome.FETCHED]
    if args.json:
        summary = {
            "ok": True,
            "model_dir": str(args.model_dir),
            "commits": result.commits,
            "files": [
                {"path": p.path, "outcome": p.outcome.value, "size": p.size} for p in result.placed
            ],
        }
        print(json.dumps(summary, indent=2))
    else:
        size = sum(p.size for p in fetched)
        print(f"fetched {len(fetched)} of {len(result.placed)} ({size / 1e9:.2f} GB)")
        print(result.report.summary())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A pod's logs go to a collector (JSON lines); a person at a terminal reads text.
    pod = args.command == "serve"
    logs.configure(
        level=args.log_level or ("INFO" if pod else "WARNING"),
        json_format=(args.log_format or ("json" if pod else "text")) == "json",
    )
    if args.command == "check-models":
        return check_models(args)
    if args.command == "fetch-models":
        return fetch_models(args)
    return serve(args) if pod else render(args)
