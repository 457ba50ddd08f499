"""What every stage of one job needs to know about it, in one frozen object.

A job's stages all read the same few things: the spec, the cleaned text and the
voice to speak it in, where to write, and three ways to talk back (the stage
timer, the progress callback, the stop event). Passing them together keeps the
stages' signatures down to what differs between them (the speech, the avatar).
Frozen because several threads read it at once (the slot's, the TTS feed's, the
ASR's); the timer, the stop event and the failure that set it are the only parts
meant to change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from avatar_runtime.api.errors import ErrorCode, JobError
from avatar_runtime.api.jobs import JobSpec, StageSeconds
from avatar_runtime.engines.base import Voice

ProgressCallback = Callable[[str, float], None]
"""Called with (stage, overall progress 0..1) as a job advances."""

SHARES: Final = {"fetch": 0.0, "tts": 0.05, "asr": 0.1, "render": 0.12, "upload": 0.95}
"""The share of the whole job done when each stage starts, for the progress figure."""


class StageTimer:
    """Wall seconds per stage. Each stage is timed by one thread only, so no lock."""

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


@dataclass(frozen=True)
class JobContext:
    """One job, as the stages after fetching see it."""

    spec: JobSpec
    text: str | None
    """The text to speak, cleaned; None for a recording."""
    voice: Voice | None
    """The voice to speak ``text`` in, fetched where the TTS clones voices."""
    scratch: Path
    """The job's own directory, removed when it ends: files wait here until published."""
    report: ProgressCallback
    stop: threading.Event = field(default_factory=threading.Event)
    """Set by a cancel or a deadline, and by ``fail`` (a failed intelligibility check)."""
    timer: StageTimer = field(default_factory=StageTimer)
    _failures: list[JobError] = field(default_factory=list)

    def fail(self, error: JobError) -> None:
        """Stop the job because of ``error``, found on another thread: every stage that
        stops because of it reports it, not a cancellation."""
        self._failures.append(error)
        self.stop.set()

    def enter(self, stage: str) -> None:
        """Report that ``stage`` has begun."""
        self.report(stage, SHARES[stage])

    def rendered(self, fraction: float) -> None:
        """Report how much of the video is rendered (0..1)."""
        start, end = SHARES["render"], SHARES["upload"]
        self.report("render", start + (end - start) * fraction)

    def check_stop(self) -> None:
        """Between stages and frames: a stopped job ends here, before its outputs exist."""
        if self.stop.is_set():
            if self._failures:
                raise self._failures[0]
            raise JobError(ErrorCode.CANCELLED, "The job was stopped before it finished.")
