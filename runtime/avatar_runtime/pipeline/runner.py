"""One job, start to finish: inputs → TTS → ASR ‖ (render → encode) → publish.

The engines are loaded once (``Engines.load``) and shared by every job the
process runs. For a text job the ASR runs beside rendering, unless the TTS
gives no phoneme timings (XTTS-v2) and the renderer follows words (the
embedded one): then it runs first. A failed intelligibility check stops the
render at the next frame. Nothing reaches the output location until every
file is complete.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobResult, JobSpec, Outputs, StageSeconds
from avatar_runtime.engines.base import (
    PreparedAvatar,
    Speech,
    StreamingRenderer,
    StreamingTTS,
    Transcript,
    Voice,
    frame_count,
)
from avatar_runtime.engines.registry import Engines
from avatar_runtime.inputs import voice as voice_input
from avatar_runtime.inputs.fetching import fetch_bytes
from avatar_runtime.inputs.portrait import decode_portrait
from avatar_runtime.inputs.speech import clean_text, decode_audio
from avatar_runtime.pipeline import audio, captions, intelligibility
from avatar_runtime.pipeline.encoding import Mp4Writer, write_thumbnail
from avatar_runtime.pipeline.speech_feed import SpeechFeed
from avatar_runtime.pipeline.storage import OutputTarget, scratch_dir
from avatar_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float], None]
"""Called with (stage, overall progress 0..1) as a job advances."""

# Share of the whole job each stage accounts for, for the progress figure.
_PROGRESS = {"fetch": 0.0, "tts": 0.05, "asr": 0.1, "render": 0.12, "upload": 0.95}
# Recordings are decoded at this rate for the video's audio track.
_RECORDING_RATE = 24_000


class _Timer:
    def __init__(self) -> None:
        self.seconds = StageSeconds()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        setattr(self.seconds, name, getattr(self.seconds, name) + seconds)


class Pipeline:
    """Runs jobs on shared engines. ``run`` may be called from several threads."""

    def __init__(self, engines: Engines, settings: RuntimeSettings) -> None:
        self.engines = engines
        self.settings = settings
        self._asr_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")

    def close(self) -> None:
        self._asr_pool.shutdown(wait=True)

    def run(
        self,
        spec: JobSpec,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> JobResult:
        """Render one job; raises ``JobError`` with a stable code when it cannot."""
        source = "text" if spec.text is not None else "audio"
        log.info("job started", extra={"speech": source, "resolution": spec.resolution})
        try:
            result = self._run(spec, progress=progress, cancel=cancel)
        except JobError as error:
            log.info("job failed: %s", error, extra={"error": error.to_dict()})
            raise
        log.info(
            "job finished: %.1f s of video in %.1f s",
            result.video_seconds,
            result.wall_seconds,
            extra={
                "video_seconds": result.video_seconds,
                "wall_seconds": result.wall_seconds,
                "realtime_factor": result.realtime_factor,
                "stages": result.stages.model_dump(),
                "wer": result.wer,
            },
        )
        return result

    def _run(
        self,
        spec: JobSpec,
        *,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> JobResult:
        report = progress or (lambda _stage, _value: None)
        stop = cancel or threading.Event()
        started = time.perf_counter()
        timer = _Timer()
        self._check_language(spec)
        target = OutputTarget(spec.output)

        # Cheap checks first: a bad text fails before anything is downloaded.
        text = clean_text(spec.text, limits=self.settings.limits) if spec.text is not None else None
        report("fetch", _PROGRESS["fetch"])
        with timer.stage("fetch"):
            voice = self._fetch_voice(spec) if text is not None else None
            avatar = self._prepare_avatar(spec)
            recording = self._fetch_recording(spec) if spec.audio is not None else None

        transcript_future: Future[tuple[Transcript, float | None]] = Future()
        speech: Speech | None = None  # a streaming render makes it as it goes
        _check_stop(stop)
        if text is None:
            assert recording is not None
            report("asr", _PROGRESS["asr"])
            transcript = self._transcribe(recording, spec.language, timer)
            speech = replace(recording, words=transcript.words)
            transcript_future.set_result((transcript, None))
        else:
            report("tts", _PROGRESS["tts"])
            if not self._streams():
                speech, transcript_future = self._speak(spec, text, voice, timer, report, stop)

        _check_stop(stop)
        with scratch_dir(self.settings.work_dir) as scratch:
            try:
                if speech is None:
                    assert text is not None
                    files, speech, transcript_future = self._render_streaming(
                        spec, text, voice, avatar, scratch, timer, report, stop
                    )
                else:
                    files = self._render(spec, avatar, speech, scratch, timer, report, stop)
            except JobError as error:
                # A render stopped by a failed intelligibility check reports that failure.
                if error.code is ErrorCode.CANCELLED and transcript_future.done():
                    transcript_future.result()
                raise
            transcript, wer = transcript_future.result()
            total = frame_count(speech.duration, spec.fps)
            video_seconds = total / spec.fps
            if spec.captions:
                path = scratch / "captions.vtt"
                path.write_text(captions.webvtt(transcript.words, duration=video_seconds))
                files["captions"] = path
            report("upload", _PROGRESS["upload"])
            with timer.stage("upload"):
                published = target.publish(files)

        wall = time.perf_counter() - started
        report("done", 1.0)
        return JobResult(
            video_seconds=video_seconds,
            wall_seconds=wall,
            realtime_factor=wall / video_seconds,
            stages=timer.seconds,
            frames=total,
            resolution=spec.resolution,
            fps=spec.fps,
            wer=wer,
            transcript=transcript.text,
            outputs=Outputs(
                video=published["video"].model_copy(update={"duration_seconds": video_seconds}),
                thumbnail=published["thumbnail"],
                captions=published.get("captions"),
            ),
        )

    # -- stages ---------------------------------------------------------------

    def _check_language(self, spec: JobSpec) -> None:
        lang = spec.language.split("-")[0].lower()
        engines = [self.engines.asr] + ([self.engines.tts] if spec.text is not None else [])
        for engine in engines:
            if lang not in engine.languages:
                raise JobError(
                    ErrorCode.LANGUAGE_UNSUPPORTED,
                    f"Language {spec.language!r} is not supported by the {engine.name} engine"
                    f" (supported: {', '.join(sorted(engine.languages))}).",
                    field="language",
                )

    def _prepare_avatar(self, spec: JobSpec) -> PreparedAvatar:
        limits = self.settings.limits
        data = fetch_bytes(
            spec.portrait,
            settings=self.settings.fetch,
            max_bytes=limits.max_image_bytes,
            what="portrait",
            field="portrait",
        )
        image = decode_portrait(data, limits=limits)
        avatar: PreparedAvatar = self.engines.renderer.prepare(image, size=spec.resolution)
        return avatar

    def _fetch_voice(self, spec: JobSpec) -> Voice | None:
        """The sample to clone, fetched and checked only where the TTS can clone it."""
        if spec.voice is None or not self.engines.tts.clones_voices:
            return spec.voice
        settings = self.settings
        return voice_input.resolve(spec.voice, fetch=settings.fetch, limits=settings.limits)

    def _fetch_recording(self, spec: JobSpec) -> Speech:
        assert spec.audio is not None
        limits = self.settings.limits
        data = fetch_bytes(
            spec.audio,
            settings=self.settings.fetch,
            max_bytes=limits.max_audio_bytes,
            what="audio",
            field="audio",
        )
        samples = decode_audio(data, sample_rate=_RECORDING_RATE, limits=limits)
        return Speech(samples=samples, sample_rate=_RECORDING_RATE)

    def _check_duration(self, speech: Speech) -> None:
        limit = self.settings.limits.max_audio_seconds
        if speech.duration > limit:
            raise JobError(
                ErrorCode.TEXT_TOO_LONG,
                f"The text makes {speech.duration:.0f} s of speech; the limit is {limit:.0f} s.",
                field="text",
            )

    def _transcribe(self, speech: Speech, language: str, timer: _Timer) -> Transcript:
        with timer.stage("asr"):
            rate = self.engines.asr.sample_rate
            for_asr = Speech(
                samples=audio.resample(speech.samples, from_rate=speech.sample_rate, to_rate=rate),
                sample_rate=rate,
            )
            return self.engines.asr.transcribe(for_asr, language=language)

    def _transcribe_and_check(
        self, speech: Speech, spec: JobSpec, text: str, timer: _Timer, stop: threading.Event
    ) -> tuple[Transcript, float | None]:
        transcript = self._transcribe(speech, spec.language, timer)
        try:
            wer = intelligibility.check(
                text, transcript.text, max_wer=self.settings.quality.max_wer
            )
        except JobError:
            stop.set()  # no point finishing a video with the wrong words
            raise
        return transcript, wer

    def _render(
        self,
        spec: JobSpec,
        avatar: PreparedAvatar,
        speech: Speech,
        scratch: Path,
        timer: _Timer,
        report: ProgressCallback,
        stop: threading.Event,
    ) -> dict[str, Path]:
        total = frame_count(speech.duration, spec.fps)
        samples = audio.fit_to_length(speech.samples, round(total * speech.sample_rate / spec.fps))
        video_path, thumb_path = scratch / "video.mp4", scratch / "thumbnail.jpg"
        write_thumbnail(avatar.poster, thumb_path)
        span = _PROGRESS["upload"] - _PROGRESS["render"]
        frames = self.engines.renderer.frames(avatar, speech, fps=spec.fps)
        with Mp4Writer(
            video_path,
            size=spec.resolution,
            fps=spec.fps,
            audio=samples,
            sample_rate=speech.sample_rate,
            settings=self.settings.video,
        ) as writer:
            for index in range(total):
                _check_stop(stop)
                tick = time.perf_counter()
                frame = next(frames)
                tock = time.perf_counter()
                writer.write(frame)
                timer.add("render", tock - tick)
                timer.add("encode", time.perf_counter() - tock)
                if index % max(1, spec.fps // 2) == 0:
                    report("render", _PROGRESS["render"] + span * index / total)
            tick = time.perf_counter()
        timer.add("encode", time.perf_counter() - tick)
        return {"video": video_path, "thumbnail": thumb_path}

    def _speak(
        self,
        spec: JobSpec,
        text: str,
        voice: Voice | None,
        timer: _Timer,
        report: ProgressCallback,
        stop: threading.Event,
    ) -> tuple[Speech, Future[tuple[Transcript, float | None]]]:
        """The whole speech, then the ASR: beside rendering, or first where the renderer
        needs its word timings (a TTS without phoneme timings, a renderer following words)."""
        with timer.stage("tts"):
            speech = self.engines.tts.synthesize(
                text, language=spec.language, voice=voice, stop=stop
            )
        self._check_duration(speech)
        if speech.phones is not None or not self.engines.renderer.follows_words:
            return speech, self._start_asr(speech, spec, text, timer, stop)
        report("asr", _PROGRESS["asr"])
        transcript, wer = self._transcribe_and_check(speech, spec, text, timer, stop)
        done: Future[tuple[Transcript, float | None]] = Future()
        done.set_result((transcript, wer))
        return replace(speech, words=transcript.words), done

    def _streams(self) -> bool:
        """Speech goes to the renderer chunk by chunk where both ends can (XTTS-v2 + Ditto
        online): the first frames come while the rest is still being spoken."""
        renderer, tts = self.engines.renderer, self.engines.tts
        return (
            isinstance(renderer, StreamingRenderer)
            and renderer.streams_audio
            and isinstance(tts, StreamingTTS)
        )

    def _render_streaming(
        self,
        spec: JobSpec,
        text: str,
        voice: Voice | None,
        avatar: PreparedAvatar,
        scratch: Path,
        timer: _Timer,
        report: ProgressCallback,
        stop: threading.Event,
    ) -> tuple[dict[str, Path], Speech, Future[tuple[Transcript, float | None]]]:
        """TTS ‖ render → encode; the ASR starts once the speech is complete."""
        tts, renderer = self.engines.tts, self.engines.renderer
        assert isinstance(tts, StreamingTTS)
        assert isinstance(renderer, StreamingRenderer)
        feed = SpeechFeed(
            lambda: tts.stream(text, language=spec.language, voice=voice, stop=stop),
            sample_rate=tts.sample_rate,
            max_seconds=self.settings.limits.max_audio_seconds,
            on_done=lambda seconds: timer.add("tts", seconds),
        )
        video_path, thumb_path = scratch / "video.mp4", scratch / "thumbnail.jpg"
        write_thumbnail(avatar.poster, thumb_path)
        frames = renderer.stream(avatar, feed.chunks(), sample_rate=feed.sample_rate, fps=spec.fps)
        asr: Future[tuple[Transcript, float | None]] | None = None
        span = _PROGRESS["upload"] - _PROGRESS["render"]
        count = 0
        try:
            with Mp4Writer(
                video_path,
                size=spec.resolution,
                fps=spec.fps,
                sample_rate=feed.sample_rate,
                settings=self.settings.video,
            ) as writer:
                while True:
                    _check_stop(stop)
                    tick = time.perf_counter()
                    frame = next(frames, None)
                    if frame is None:
                        break
                    tock = time.perf_counter()
                    writer.add_audio(feed.take_new())
                    writer.write(frame)
                    timer.add("render", tock - tick)
                    timer.add("encode", time.perf_counter() - tock)
                    count += 1
                    if asr is None and feed.finished.is_set() and feed.error is None:
                        asr = self._start_asr(feed.speech(), spec, text, timer, stop)
                    if count % max(1, spec.fps // 2) == 0:
                        expected = max(count + 1, frame_count(feed.seconds(), spec.fps))
                        report("render", _PROGRESS["render"] + span * count / expected)
                writer.add_audio(feed.take_new())
        except BaseException:
            first = feed.error  # set before the renderer heard of it: the speech failed first
            stop.set()  # the TTS stops at its next chunk
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # the renderer's cleanup stops its threads
            feed.join()
            if first is not None:
                raise first from None
            raise
        speech = feed.speech()
        self._check_duration(speech)
        if count != frame_count(speech.duration, spec.fps):
            raise JobError(
                ErrorCode.INTERNAL,
                f"The {renderer.name} renderer gave {count} frames for"
                f" {speech.duration:.2f} s at {spec.fps} fps.",
            )
        if asr is None:
            asr = self._start_asr(speech, spec, text, timer, stop)
        return {"video": video_path, "thumbnail": thumb_path}, speech, asr

    def _start_asr(
        self, speech: Speech, spec: JobSpec, text: str, timer: _Timer, stop: threading.Event
    ) -> Future[tuple[Transcript, float | None]]:
        # Run in a copy of this context, so the ASR's log lines carry the job id.
        return self._asr_pool.submit(
            contextvars.copy_context().run,
            self._transcribe_and_check,
            speech,
            spec,
            text,
            timer,
            stop,
        )


def _check_stop(stop: threading.Event) -> None:
    """Between stages and frames: a stopped job ends here, before its outputs exist."""
    if stop.is_set():
        raise JobError(ErrorCode.CANCELLED, "The job was stopped before it finished.")
