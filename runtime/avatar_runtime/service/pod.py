"""A runtime pod's life: load the models once, warm every slot up, serve, drain.

Loading runs in the background so ``/healthz`` answers at once while
``/readyz`` waits for the warm-up; on SIGTERM the pod stops admitting, gives
running jobs the grace period, interrupts the rest (retriable, so the operator
sends them elsewhere) and only then lets the process exit.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from avatar_runtime import gpu
from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobSpec
from avatar_runtime.api.schemas import Capacity, EngineNames, JobOptions
from avatar_runtime.engines import registry
from avatar_runtime.inputs import speech, urls
from avatar_runtime.inputs import voice as voice_input
from avatar_runtime.metrics import RuntimeMetrics
from avatar_runtime.pipeline.runner import Pipeline
from avatar_runtime.pipeline.workspace import Workspace
from avatar_runtime.service.board import JobBoard
from avatar_runtime.service.slots import Slots
from avatar_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

_WARMUP_PORTRAIT = Path(__file__).resolve().parent.parent / "assets" / "warmup-portrait.jpg"


def server_settings(settings: RuntimeSettings) -> RuntimeSettings:
    """The CLI reads local files; a pod must not let a request read its file system."""
    if "allowed_schemes" in settings.fetch.model_fields_set:
        return settings
    schemes = settings.fetch.allowed_schemes - {"file"}
    return settings.model_copy(
        update={"fetch": settings.fetch.model_copy(update={"allowed_schemes": schemes})}
    )


def read_token(settings: RuntimeSettings) -> str | None:
    server = settings.server
    if server.token_file is not None:
        token = server.token_file.read_text().strip()
        if not token:
            raise ValueError(f"token file {server.token_file} is empty")
        return token
    return server.token or None


class RuntimePod:
    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = server_settings(settings)
        self.metrics = RuntimeMetrics()
        self.token = read_token(self.settings)
        self.slot_count = gpu.slot_count(self.settings.slots)
        server = self.settings.server
        self.board = JobBoard(
            slots=self.slot_count,
            queue_limit=server.queue_limit,
            retention_seconds=server.retention_seconds,
            finished_budget_bytes=server.finished_budget_bytes,
        )
        self.metrics.track_board(
            slots=self.slot_count, busy=self.board.busy, queued=self.board.queued
        )
        self.metrics.ready.set(0)
        self.ready = threading.Event()
        self.failed: str | None = None  # why loading failed, for /healthz
        self.draining = False
        self.engines: EngineNames | None = None
        self.workspace = Workspace(self.settings.work_dir)
        self._slots: Slots | None = None

    # -- start-up ----------------------------------------------------------------------

    def load(self) -> None:
        """Load the shared models and one renderer per slot (or one for all, where it serves
        every slot), warm every slot up, go ready."""
        try:
            self._load()
        except Exception as exc:  # the pod stays alive but unready, and says why
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("loading the models failed")

    def _load(self) -> None:
        # Its own corner of the work directory, after removing what killed pods left.
        corner = self.workspace.open()
        self.settings = self.settings.model_copy(update={"work_dir": corner})
        settings = self.settings.engines
        shared = registry.load(settings)
        for model, seconds in shared.load_seconds.items():
            self.metrics.model_load.labels(model).set(seconds)
        for model, footprint in shared.gpu_footprints.items():
            self.metrics.model_gpu_memory.labels(model).set(footprint.bytes)
        batcher = getattr(shared.tts, "batcher", None)  # a TTS that speaks slots together
        if batcher is not None:
            batcher.on_batch = self.metrics.tts_batch_size.observe
        renderer_bytes = shared.gpu_footprints[settings.renderer].bytes
        one_renderer = registry.serves_every_slot(shared)
        self.metrics.slot_gpu_memory.set(
            gpu.slot_bytes(self.settings.slots, renderer_bytes, shared=one_renderer)
        )
        if self.settings.slots.count == "auto":
            self._resize(gpu.slots_after_load(
                self.settings.slots, gpu.memory(), renderer_bytes, shared=one_renderer
            ))  # fmt: skip
        pipelines = [Pipeline(shared, self.settings)]
        for _ in range(self.slot_count - 1):
            renderer = registry.slot_renderer(shared, settings)
            pipelines.append(Pipeline(replace(shared, renderer=renderer), self.settings))
        started = time.perf_counter()
        for pipeline in pipelines:
            self._warm_up(pipeline)
        self.metrics.model_load.labels("warm-up-render").set(time.perf_counter() - started)
        self.engines = EngineNames(
            tts=shared.tts.name,
            asr=shared.asr.name,
            renderer=shared.renderer.name,
            languages=sorted(shared.tts.languages & shared.asr.languages),
        )
        self._slots = Slots(board=self.board, pipelines=pipelines, metrics=self.metrics)
        self._slots.start()
        self.ready.set()
        self.metrics.ready.set(1)
        log.info("ready with %d slots", self.slot_count, extra={"slots": self.slot_count})

    def _resize(self, count: int) -> None:
        """Set the slot count ``auto`` settles on once the models' memory is measured."""
        if count != self.slot_count:
            log.info("auto slots: %d by measured GPU memory (%d estimated)", count, self.slot_count)
        self.slot_count = self.board.slots = count
        self.metrics.track_board(slots=count, busy=self.board.busy, queued=self.board.queued)

    def _warm_up(self, pipeline: Pipeline) -> None:
        """One real, tiny render per slot (the bundled portrait, to a scratch directory)."""
        settings = self.settings.model_copy(
            update={
                "fetch": self.settings.fetch.model_copy(
                    update={"allowed_schemes": frozenset({"file"})}
                )
            }
        )
        warm = Pipeline(pipeline.engines, settings)
        try:
            with tempfile.TemporaryDirectory(prefix="avatar-warmup-") as out:
                spec = JobSpec(
                    portrait=str(_WARMUP_PORTRAIT),
                    text="Ready when you are.",
                    resolution=128,
                    output=out,
                )
                warm.run(spec)
        finally:
            warm.close()

    # -- serving -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self.ready.is_set() and not self.draining

    def capacity(self) -> Capacity:
        return Capacity(
            slots_total=self.slot_count,
            slots_busy=self.board.busy(),
            queue_length=self.board.queued(),
            queue_limit=self.board.queue_limit,
            accepting=self.accepting,
            draining=self.draining,
            engines=self.engines or EngineNames(tts="", asr="", renderer="", languages=[]),
        )

    def check_request(self, spec: JobSpec) -> None:
        """Refuse, at admission, every field that could never be used, each with its own code.

        Every URL is parsed as the fetchers will parse it (UrlInvalid) and judged by
        their rules (UrlSchemeNotAllowed, UrlTargetForbidden); the text must hold only
        characters (TextInvalid), a voice's name only printable ones (VoiceUnknown);
        the output must be allowed (``check_output``). So no string a client sends
        can crash the request (hashing it, logging it), nor a fetch it was admitted for.
        """
        fetch = self.settings.fetch
        for what, source in (
            ("portrait", spec.portrait),
            ("audio", spec.audio),
            ("voice", spec.voice),
        ):
            if source is None:
                continue
            if what == "voice" and not voice_input.is_sample(source):
                voice_input.check_name(source, field="inputs.voice")
            else:
                urls.precheck(source, settings=fetch, what=what, field=f"inputs.{what}")
        if spec.text is not None:
            speech.check_text(spec.text, field="inputs.text")
        self.check_output(spec.output)
        self.check_text_length(spec.text)

    def check_text_length(self, text: str | None) -> None:
        """Text over the limit is refused at admission (TextTooLong), not once a slot has it.

        Counted as the pipeline counts it (after cleaning: whitespace collapsed, control
        characters dropped), so admission refuses exactly what would fail later; text
        with nothing to speak is left to the pipeline's own error.
        """
        if text is None:
            return
        try:
            speech.clean_text(text, limits=self.settings.limits, field="inputs.text")
        except JobError as error:
            if error.code is ErrorCode.TEXT_TOO_LONG:
                raise

    def check_engines(self, options: JobOptions) -> None:
        """A job that asks for an engine this pod does not run is refused, naming the option.

        The operator reads each pod's engines from ``/v1/capacity`` and should never
        send such a job; this is the pod keeping its side of that contract.
        """
        engines = self.engines
        for option, wanted, offered in (
            ("tts", options.tts, engines.tts if engines else None),
            ("renderer", options.renderer, engines.renderer if engines else None),
        ):
            if wanted is not None and wanted != offered:
                raise JobError(
                    ErrorCode.ENGINE_UNAVAILABLE,
                    f"this pod runs {option} {offered!r}, not {wanted!r}",
                    field=f"options.{option}",
                )

    def check_output(self, output: str) -> None:
        """Outputs go to an allowed URL scheme, or under the configured local root only.

        The URL is parsed as the inputs' are (UrlInvalid for ``gs://[bucket/``, or a
        ``%00`` in a ``file://`` path), and a local path is judged as storage will
        decode it: ``%2E%2E`` must not slip past the root check.
        """
        server = self.settings.server
        named = urls.Source(url=output, what="output", field="output")
        url = urls.parse(output, source=named)
        if url.scheme != "file":
            if url.scheme in server.output_schemes:
                return
            allowed = ", ".join(sorted(server.output_schemes)) or "none"
            raise JobError(
                ErrorCode.URL_SCHEME_NOT_ALLOWED,
                f"output scheme {url.scheme!r} is not allowed; allowed: {allowed}",
                field="output",
            )
        root = server.local_output_root
        if root is None:
            raise JobError(
                ErrorCode.URL_SCHEME_NOT_ALLOWED,
                "local outputs are not enabled on this pod; use a gs:// URL",
                field="output",
            )
        try:
            path = Path(urls.local_path(url, source=named)).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError before 3.13)
            raise named.error(
                ErrorCode.URL_INVALID, f"the path cannot be resolved: {urls.reason(exc)}"
            ) from None
        if not path.is_relative_to(root.resolve()):
            raise JobError(
                ErrorCode.URL_TARGET_FORBIDDEN,
                f"local outputs must lie under {root}",
                field="output",
            )

    # -- shutting down -----------------------------------------------------------------

    def drain(self) -> None:
        """SIGTERM: stop admitting, let running jobs finish in the grace period, stop the rest."""
        self.draining = True
        self.metrics.ready.set(0)
        grace = self.settings.server.grace_seconds
        waiting = self.board.begin_drain()
        log.info("draining: %d waiting jobs interrupted, grace %.0f s", waiting, grace)
        if not self.board.wait_idle(grace):
            stopped = self.board.interrupt_running()
            log.info("grace period over: interrupting %d running jobs", stopped)
            # A render stops at its next frame; a stage in progress (TTS, upload) ends first.
            self.board.wait_idle(30.0)
        if self._slots is not None:
            self._slots.stop()
        self.workspace.close()
        log.info("drained")
