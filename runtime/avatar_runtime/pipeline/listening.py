"""The ASR's part in a job: the transcript for captions, and the intelligibility check.

For a text job the ASR mostly runs beside rendering, on a thread of its own, so
its seconds hide behind the render's. Its verdict can still end the render: a
failed check stops the job (``JobContext.fail``), and the frame loop ends at its next
frame with that failure rather than finishing a video with the wrong words.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor

from avatar_runtime.api.errors import JobError
from avatar_runtime.engines.base import ASREngine, Speech, Transcript
from avatar_runtime.pipeline import audio, intelligibility
from avatar_runtime.pipeline.context import JobContext
from avatar_runtime.settings import QualitySettings

Heard = Future[tuple[Transcript, float | None]]
"""The transcript and its word error rate against the text (None for a recording)."""


class Listener:
    """Transcribes a job's speech, now or beside the render; ``close`` when done with it."""

    def __init__(self, asr: ASREngine, *, quality: QualitySettings) -> None:
        self._asr = asr
        self._quality = quality
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def transcribe(self, speech: Speech, job: JobContext) -> Transcript:
        """The words heard and when, timed as the job's ASR stage."""
        with job.timer.stage("asr"):
            rate = self._asr.sample_rate
            for_asr = Speech(
                samples=audio.resample(speech.samples, from_rate=speech.sample_rate, to_rate=rate),
                sample_rate=rate,
            )
            return self._asr.transcribe(for_asr, language=job.spec.language)

    def check(self, speech: Speech, job: JobContext) -> tuple[Transcript, float | None]:
        """The transcript and its WER, or IntelligibilityLow (which also stops the job)."""
        assert job.text is not None
        transcript = self.transcribe(speech, job)
        try:
            wer = intelligibility.check(
                job.text,
                transcript.text,
                language=job.spec.language,
                max_wer=self._quality.max_wer,
                max_cer=self._quality.max_cer,
                retriable_cer=self._quality.retriable_cer,
            )
        except JobError as error:
            job.fail(error)  # no point finishing a video with the wrong words
            raise
        return transcript, wer

    def start(self, speech: Speech, job: JobContext) -> Heard:
        """``check`` on the ASR's own thread, beside whatever this thread does next."""
        # Run in a copy of this context, so the ASR's log lines carry the job id.
        return self._pool.submit(contextvars.copy_context().run, self.check, speech, job)


def already_heard(transcript: Transcript, wer: float | None) -> Heard:
    """A result known before rendering starts, in the shape ``Listener.start`` gives."""
    done: Heard = Future()
    done.set_result((transcript, wer))
    return done
