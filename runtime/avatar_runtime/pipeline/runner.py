"""One job, start to finish: inputs → TTS → ASR ‖ (render → encode) → publish.

The engines are loaded once (``Engines.load``) and shared by every job the
process runs. For a text job the ASR runs beside rendering, unless the TTS
gives no phoneme timings (XTTS-v2) and the renderer follows words (the
embedded one): then it runs first. Where both the TTS and the renderer stream
(XTTS-v2 + Ditto online), the speech goes to the renderer chunk by chunk and the
ASR starts once it is complete. Either way the frames go through one loop
(``frame_loop``). A failed intelligibility check stops the render at the next
frame. Nothing reaches the output location until every file is complete.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobResult, JobSpec, Outputs
from avatar_runtime.engines.base import (
    AudioArray,
    PreparedAvatar,
    Speech,
    StreamingRenderer,
    StreamingTTS,
    Transcript,
    Voice,
    WarnedAvatar,
    frame_count,
)
from avatar_runtime.engines.registry import Engines
from avatar_runtime.inputs import voice as voice_input
from avatar_runtime.inputs.fetching import fetch_bytes
from avatar_runtime.inputs.portrait import decode_portrait
from avatar_runtime.inputs.speech import clean_text, decode_audio
from avatar_runtime.pipeline import alignment, audio, captions, context, frame_loop, records
from avatar_runtime.pipeline.context import JobContext, ProgressCallback
from avatar_runtime.pipeline.listening import Heard, Listener, already_heard
from avatar_runtime.pipeline.speech_feed import SpeechFeed
from avatar_runtime.pipeline.storage import OutputTarget, scratch_dir
from avatar_runtime.pipeline.workspace import JOURNAL
from avatar_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

# Recordings are decoded at this rate for the video's audio track.
_RECORDING_RATE = 24_000


class Pipeline:
    """Runs jobs on shared engines. ``run`` may be called from several threads."""

    def __init__(self, engines: Engines, settings: RuntimeSettings) -> None:
        self.engines = engines
        self.settings = settings
        self._listener = Listener(engines.asr, quality=settings.quality)

    def close(self) -> None:
        self._listener.close()

    def run(
        self,
        spec: JobSpec,
        *,
        job_id: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> JobResult:
        """Render one job; raises ``JobError`` with a stable code when it cannot.

        A job with an id (a pod's) leaves a record of its result beside its outputs,
        and is not rendered again when that record shows it finished (``records``).
        """
        source = "text" if spec.text is not None else "audio"
        log.info("job started", extra={"speech": source, "resolution": spec.resolution})
        if job_id is not None and (done := self._finished_before(spec, job_id=job_id)):
            (progress or _report_nothing)("done", 1.0)
            return done
        try:
            result = self._run(spec, job_id=job_id, progress=progress, cancel=cancel)
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
        job_id: str | None,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> JobResult:
        report = progress or _report_nothing
        started = time.perf_counter()
        timer = context.StageTimer()
        self._check_language(spec)
        target = OutputTarget(spec.output)

        # Cheap checks first: a bad text fails before anything is downloaded.
        text = clean_text(spec.text, limits=self.settings.limits) if spec.text is not None else None
        report("fetch", context.SHARES["fetch"])
        with timer.stage("fetch"):
            voice = self._fetch_voice(spec) if text is not None else None
            avatar = self._prepare_avatar(spec)
            recording = self._fetch_recording(spec) if spec.audio is not None else None

        with scratch_dir(self.settings.work_dir) as scratch:
            job = JobContext(
                spec=spec,
                text=text,
                voice=voice,
                scratch=scratch,
                report=report,
                stop=cancel or threading.Event(),
                timer=timer,
            )
            video, transcript, wer = self._speak_and_render(job, avatar=avatar, recording=recording)
            files = video.files()
            if spec.captions:
                path = scratch / "captions.vtt"
                # A text job's captions are its own words, timed by what the ASR heard.
                said = (
                    alignment.align(text, transcript.words, duration=video.seconds)
                    if text is not None
                    else transcript.words
                )
                path.write_text(captions.webvtt(said, duration=video.seconds))
                files["captions"] = path
            job.enter("upload")
            with timer.stage("upload"):
                published = target.publish(files, journal=scratch / JOURNAL)
            wall = time.perf_counter() - started
            result = JobResult(
                video_seconds=video.seconds,
                wall_seconds=wall,
                realtime_factor=wall / video.seconds,
                stages=timer.seconds,
                frames=video.frames,
                resolution=spec.resolution,
                fps=spec.fps,
                wer=wer,
                transcript=transcript.text,
                outputs=Outputs(
                    video=published["video"].model_copy(update={"duration_seconds": video.seconds}),
                    thumbnail=published["thumbnail"],
                    captions=published.get("captions"),
                ),
                warnings=list(avatar.warnings) if isinstance(avatar, WarnedAvatar) else [],
            )
            if job_id is not None:
                self._record(target, job_id=job_id, spec=spec, result=result, journal=scratch)
        report("done", 1.0)
        return result

    @staticmethod
    def _finished_before(spec: JobSpec, *, job_id: str) -> JobResult | None:
        """The result of an earlier attempt of this job, if its record and outputs show one."""
        try:
            done = records.find(OutputTarget(spec.output), job_id=job_id, spec=spec)
        except JobError:
            return None  # an output the render will refuse with its own error
        if done is not None:
            log.info(
                "finished by an earlier attempt, its outputs intact: not rendering again",
                extra={"video": done.outputs.video.url},
            )
        return done

    @staticmethod
    def _record(
        target: OutputTarget, *, job_id: str, spec: JobSpec, result: JobResult, journal: Path
    ) -> None:
        """The finished job's record, last; without it the job is still done, only not
        provably so (a second attempt would render it again)."""
        try:
            records.write(
                target, job_id=job_id, spec=spec, result=result, journal=journal / JOURNAL
            )
        except Exception as exc:
            log.warning(
                "could not write the job's record at %s: %s", records.record_url(target), exc
            )

    def _speak_and_render(
        self, job: JobContext, *, avatar: PreparedAvatar, recording: Speech | None
    ) -> tuple[frame_loop.Video, Transcript, float | None]:
        """The speech (spoken or recorded), its transcript and the video, in the order the
        engines allow."""
        heard: Heard = Future()
        speech: Speech | None = None  # a streaming render makes it as it goes
        job.check_stop()
        if job.text is None:
            assert recording is not None
            job.enter("asr")
            transcript = self._listener.transcribe(recording, job)
            speech = replace(recording, words=transcript.words)
            heard = already_heard(transcript, None)
        else:
            job.enter("tts")
            if not self._streams():
                speech, heard = self._speak(job)

        job.check_stop()
        if speech is None:
            video, heard = self._render_streaming(job, avatar=avatar)
        else:
            video = self._render(job, avatar=avatar, speech=speech)
        transcript, wer = heard.result()
        return video, transcript, wer

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
            too_large=ErrorCode.IMAGE_TOO_LARGE,
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

    def _speak(self, job: JobContext) -> tuple[Speech, Heard]:
        """The whole speech, then the ASR: beside rendering, or first where the renderer
        needs its word timings (a TTS without phoneme timings, a renderer following words)."""
        assert job.text is not None
        with job.timer.stage("tts"):
            speech = self.engines.tts.synthesize(
                job.text, language=job.spec.language, voice=job.voice, stop=job.stop
            )
        self._check_duration(speech)
        if speech.phones is not None or not self.engines.renderer.follows_words:
            return speech, self._listener.start(speech, job)
        job.enter("asr")
        transcript, wer = self._listener.check(speech, job)
        return replace(speech, words=transcript.words), already_heard(transcript, wer)

    def _render(
        self, job: JobContext, *, avatar: PreparedAvatar, speech: Speech
    ) -> frame_loop.Video:
        fps = job.spec.fps
        total = frame_count(speech.duration, fps)
        samples = audio.fit_to_length(speech.samples, round(total * speech.sample_rate / fps))
        frames = self.engines.renderer.frames(avatar, speech, fps=fps)
        video = frame_loop.encode(
            itertools.islice(frames, total),
            job=job,
            poster=avatar.poster,
            soundtrack=frame_loop.WholeSoundtrack(
                samples, sample_rate=speech.sample_rate, frames=total
            ),
            settings=self.settings.video,
        )
        self._check_frames(video, speech)
        return video

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
        self, job: JobContext, *, avatar: PreparedAvatar
    ) -> tuple[frame_loop.Video, Heard]:
        """TTS ‖ render → encode; the ASR starts once the speech is complete."""
        tts, renderer = self.engines.tts, self.engines.renderer
        assert isinstance(tts, StreamingTTS)
        assert isinstance(renderer, StreamingRenderer)
        text, spec = job.text, job.spec
        assert text is not None
        feed = SpeechFeed(
            lambda: tts.stream(text, language=spec.language, voice=job.voice, stop=job.stop),
            sample_rate=tts.sample_rate,
            max_seconds=self.settings.limits.max_audio_seconds,
            on_done=lambda seconds: job.timer.add("tts", seconds),
        )
        soundtrack = _SpokenSoundtrack(
            feed, fps=spec.fps, start_asr=lambda speech: self._listener.start(speech, job)
        )
        frames = renderer.stream(avatar, feed.chunks(), sample_rate=feed.sample_rate, fps=spec.fps)
        try:
            video = frame_loop.encode(
                frames,
                job=job,
                poster=avatar.poster,
                soundtrack=soundtrack,
                settings=self.settings.video,
            )
        except BaseException:
            first = feed.error  # set before the renderer heard of it: the speech failed first
            job.stop.set()  # the TTS stops at its next chunk
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # the renderer's cleanup stops its threads
            feed.join()
            if first is not None:
                raise first from None
            raise
        speech = feed.speech()
        self._check_duration(speech)
        self._check_frames(video, speech)
        return video, soundtrack.asr or self._listener.start(speech, job)

    def _check_frames(self, video: frame_loop.Video, speech: Speech) -> None:
        """Whatever the renderer, the video covers the speech, and no more."""
        if video.frames != frame_count(speech.duration, video.fps):
            raise JobError(
                ErrorCode.INTERNAL,
                f"The {self.engines.renderer.name} renderer gave {video.frames} frames for"
                f" {speech.duration:.2f} s at {video.fps} fps.",
            )


class _SpokenSoundtrack:
    """A streaming render's soundtrack: the speech as the TTS makes it. The ASR starts on
    the whole of it as soon as the TTS is done, while the last frames still render."""

    def __init__(self, feed: SpeechFeed, *, fps: int, start_asr: Callable[[Speech], Heard]) -> None:
        self.sample_rate = feed.sample_rate
        self.asr: Heard | None = None
        self._feed = feed
        self._fps = fps
        self._start_asr = start_asr

    def take_new(self) -> AudioArray:
        feed = self._feed
        if self.asr is None and feed.finished.is_set() and feed.error is None:
            self.asr = self._start_asr(feed.speech())
        return feed.take_new()

    def frames_expected(self, written: int) -> int:
        return max(written + 1, frame_count(self._feed.seconds(), self._fps))


def _report_nothing(stage: str, value: float) -> None:
    """Where the caller asked for no progress."""
